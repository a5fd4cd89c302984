"""Creating and checking Gymnasium environments.

DDPG needs a flat Box observation and a bounded Box action space; anything else is a usage
error reported before a single file is written.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from ddpg_tf.errors import EnvError


def make_env(env_id: str, *, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """``gym.make`` with Gymnasium's lookup errors turned into :class:`EnvError`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if render_mode is not None:
                kwargs["render_mode"] = render_mode
            env = gym.make(env_id, **kwargs)
        except gym.error.Error as exc:
            raise EnvError(f"cannot make environment {env_id!r}: {exc} Check the id; "
                           "`python -c 'import gymnasium; gymnasium.pprint_registry()'` lists them") from None
        except ImportError as exc:
            raise EnvError(f"environment {env_id!r} needs a missing package ({exc}); install it, for "
                           "MuJoCo tasks: pip install 'gymnasium[mujoco]'") from None
    check_spaces(env, env_id)
    return env


def check_spaces(env: gym.Env, env_id: str = "") -> None:
    """Raise :class:`EnvError` unless observations and actions are finite, flat Boxes."""
    name = env_id or str(env.spec.id if env.spec else env)
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(act_space, gym.spaces.Box):
        env.close()
        raise EnvError(f"{name} has a {type(act_space).__name__} action space; DDPG needs continuous "
                       "(Box) actions: choose a continuous-control env such as Pendulum-v1")
    if not isinstance(obs_space, gym.spaces.Box):
        env.close()
        raise EnvError(f"{name} has a {type(obs_space).__name__} observation space; this package "
                       "needs a flat Box: wrap it with gymnasium.wrappers.FlattenObservation")
    if len(obs_space.shape) != 1 or len(act_space.shape) != 1:
        env.close()
        raise EnvError(f"{name} has observation shape {obs_space.shape} and action shape "
                       f"{act_space.shape}; only 1-D vectors are supported: use a state-based env "
                       "or flatten/encode the observations first")
    if not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
        env.close()
        raise EnvError(f"{name} has unbounded actions; DDPG's actor needs finite bounds: give the "
                       "action space finite low/high with an ActionWrapper")


def space_dims(env: gym.Env) -> tuple[int, np.ndarray, np.ndarray]:
    """(observation dimension, action low, action high)."""
    return (int(env.observation_space.shape[0]), np.asarray(env.action_space.low, np.float64),
            np.asarray(env.action_space.high, np.float64))


def rng_state(env: gym.Env) -> dict[str, Any]:
    """The RNG states that determine an env's future: its own and its action space's."""
    return {"env": env.unwrapped.np_random.bit_generator.state,
            "action_space": env.action_space.np_random.bit_generator.state}


def set_rng_state(env: gym.Env, state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    env.unwrapped.np_random.bit_generator.state = state["env"]
    env.action_space.np_random.bit_generator.state = state["action_space"]


def make_vector_env(env_id: str, num_envs: int) -> gym.vector.SyncVectorEnv:
    """``num_envs`` copies of ``env_id`` stepped in turn in this process, with same-step
    autoreset: a copy whose episode ends is reset within that ``step``, which returns the reset
    observation and reports the episode's last one as ``info["final_obs"]``."""
    first = make_env(env_id)  # raises EnvError (and checks the spaces) before any other copy
    copies = iter([first] + [make_env(env_id) for _ in range(num_envs - 1)])
    return gym.vector.SyncVectorEnv([lambda: next(copies) for _ in range(num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def vector_rng_state(envs: gym.vector.SyncVectorEnv) -> dict[str, Any]:
    """The RNG states of every copy and of the batched action space."""
    return {"envs": [rng_state(env) for env in envs.envs],
            "action_space": envs.action_space.np_random.bit_generator.state}


def set_vector_rng_state(envs: gym.vector.SyncVectorEnv, state: dict[str, Any]) -> None:
    """Inverse of :func:`vector_rng_state`."""
    if len(state["envs"]) != len(envs.envs):
        raise ValueError(f"the checkpoint holds {len(state['envs'])} environments, not {len(envs.envs)}")
    for env, env_state in zip(envs.envs, state["envs"], strict=True):
        set_rng_state(env, env_state)
    envs.action_space.np_random.bit_generator.state = state["action_space"]
