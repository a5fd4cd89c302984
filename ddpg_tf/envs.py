"""Creating and checking Gymnasium environments.

DDPG needs a flat Box observation and a bounded Box action space; anything else is a usage
error reported before a single file is written. While training, every observation is checked
against the declared space's shape and every reward must be a number: an environment that
breaks its own declaration raises :class:`EnvError` at the step it does so, before anything
from that step is stored.
"""

from __future__ import annotations

import numbers
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
    """Raise :class:`EnvError` (closing ``env``) unless observations and actions are finite,
    flat Boxes."""
    name = env_id or str(env.spec.id if env.spec else env)
    try:
        check_space_types(env.observation_space, env.action_space, name)
    except EnvError:
        env.close()
        raise


def check_space_types(obs_space: gym.Space, act_space: gym.Space, name: str) -> None:
    """Raise :class:`EnvError` unless both spaces are flat Boxes and the actions are bounded."""
    if not isinstance(act_space, gym.spaces.Box):
        raise EnvError(f"{name} has a {type(act_space).__name__} action space; DDPG needs continuous "
                       "(Box) actions: choose a continuous-control env such as Pendulum-v1")
    if not isinstance(obs_space, gym.spaces.Box):
        raise EnvError(f"{name} has a {type(obs_space).__name__} observation space; this package "
                       "needs a flat Box: wrap it with gymnasium.wrappers.FlattenObservation")
    if len(obs_space.shape) != 1 or len(act_space.shape) != 1:
        raise EnvError(f"{name} has observation shape {obs_space.shape} and action shape "
                       f"{act_space.shape}; only 1-D vectors are supported: use a state-based env "
                       "or flatten/encode the observations first")
    if not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
        raise EnvError(f"{name} has unbounded actions; DDPG's actor needs finite bounds: give the "
                       "action space finite low/high with an ActionWrapper")


def check_env_id(env_id: str) -> None:
    """Make ``env_id`` once to check that it exists and has usable spaces, then close it
    (the command line's check before TensorFlow starts). Raises :class:`EnvError`."""
    make_env(env_id).close()


def check_same_spaces(env: Any, reference: EnvBatch, role: str) -> None:
    """Raise :class:`EnvError` unless ``env`` (e.g. the evaluation environment) has the
    observation and action shapes and action bounds of ``reference``."""
    obs_space = getattr(env, "observation_space", None)
    act_space = getattr(env, "action_space", None)
    name = env_id_of(env)
    if not isinstance(obs_space, gym.spaces.Box) or not isinstance(act_space, gym.spaces.Box):
        check_space_types(obs_space, act_space, f"{role} {name}")
    same = (obs_space.shape == reference.observation_space.shape
            and act_space.shape == reference.action_space.shape
            and np.array_equal(act_space.low, reference.action_space.low)
            and np.array_equal(act_space.high, reference.action_space.high))
    if not same:
        raise EnvError(f"{role} {name} has observation shape {obs_space.shape} and actions {act_space}, "
                       f"but the training env has {reference.observation_space.shape} and "
                       f"{reference.action_space}; pass an {role} with the training env's spaces")


def checked_observation(obs: Any, shape: tuple[int, ...], env: Any, call: str) -> np.ndarray:
    """``obs`` as an array, or :class:`EnvError` if it does not have the declared ``shape``
    or is not numeric."""
    arr = np.asarray(obs)
    if arr.shape != shape or arr.dtype.kind not in "fiub":  # float, int, unsigned, bool
        raise EnvError(f"{env_id_of(env)}.{call} returned an observation of shape {arr.shape} and dtype "
                       f"{arr.dtype}, but its observation space declares numbers of shape {shape}: fix the "
                       "environment or its observation_space")
    return arr


_NUMBER_TYPES = frozenset((float, int, np.float64, np.float32))
"""Reward types accepted without the slower ``numbers.Real`` check (every step)."""


def checked_reward(reward: Any, env: Any) -> float:
    """``reward`` as a float, or :class:`EnvError` if it is not a number."""
    if type(reward) in _NUMBER_TYPES or isinstance(reward, numbers.Real):
        return float(reward)
    if isinstance(reward, np.ndarray) and reward.shape == () and np.issubdtype(reward.dtype, np.number):
        return float(reward)
    raise EnvError(f"{env_id_of(env)}.step() returned a reward of type {type(reward).__name__} "
                   f"({reward!r:.40}); a reward must be one number")


def space_dims(env: gym.Env | EnvBatch) -> tuple[int, np.ndarray, np.ndarray]:
    """(observation dimension, action low, action high) of one copy."""
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


# --- one interface for one environment and for N copies ----------------------------------
class EnvBatch:
    """N environment copies as the training loop drives them (N = 1 for a plain ``gym.Env``).

    Arrays have a leading copy axis. :meth:`step` resets a copy whose episode ended within the
    same call and returns, besides the (reset) observations, each copy's true successor of
    the step (its final observation where the episode ended) and which copies produced a
    transition (all of them, except after a ``NEXT_STEP`` vector env's reset step).
    """

    num_envs: int
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box

    def reset(self, seed: int | None = None) -> np.ndarray: ...
    def reset_copies(self, mask: np.ndarray) -> np.ndarray:
        """Reset the copies where ``mask`` is true; returns every copy's observation."""
        raise NotImplementedError
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]: ...
    def sample_actions(self) -> np.ndarray: ...
    def seed_actions(self, seed: int) -> None:
        """Seed the action space :meth:`sample_actions` draws from."""
    def close(self) -> None: ...
    def rng_state(self) -> dict[str, Any] | None: ...
    def set_rng_state(self, state: dict[str, Any] | None) -> None: ...


class SingleEnv(EnvBatch):
    """A plain ``gym.Env`` as a batch of one, with no vector-env machinery in the step."""

    def __init__(self, env: gym.Env) -> None:
        self.env, self.num_envs = env, 1
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self._shape = tuple(getattr(env.observation_space, "shape", None) or ())
        self._valid = np.ones(1, bool)
        self._obs: np.ndarray | None = None

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._obs = checked_observation(self.env.reset(seed=seed)[0], self._shape, self.env, "reset()")[None]
        return self._obs

    def reset_copies(self, mask: np.ndarray) -> np.ndarray:
        return self.reset() if mask[0] else self._obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        obs, reward, terminated, truncated, _ = self.env.step(actions[0])
        successor = checked_observation(obs, self._shape, self.env, "step()")[None]
        reward = checked_reward(reward, self.env)
        if terminated or truncated:
            self._obs = checked_observation(self.env.reset()[0], self._shape, self.env, "reset()")[None]
        else:
            self._obs = successor  # the same array: the loop then checks it only once
        return (self._obs, np.array([reward], np.float64), np.array([terminated]), np.array([truncated]),
                successor, self._valid)

    def sample_actions(self) -> np.ndarray:
        return self.action_space.sample()[None]

    def seed_actions(self, seed: int) -> None:
        self.action_space.seed(seed)

    def close(self) -> None:
        self.env.close()

    def rng_state(self) -> dict[str, Any] | None:
        return rng_state(self.env)

    def set_rng_state(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            set_rng_state(self.env, state)


class VectorEnv(EnvBatch):
    """A ``gymnasium.vector.VectorEnv`` (same-step or next-step autoreset)."""

    def __init__(self, envs: gym.vector.VectorEnv) -> None:
        self.envs, self.num_envs = envs, int(envs.num_envs)
        self.observation_space = envs.single_observation_space
        self.action_space = envs.single_action_space
        mode = envs.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        if mode not in (gym.vector.AutoresetMode.SAME_STEP, gym.vector.AutoresetMode.NEXT_STEP):
            raise EnvError(f"the vector environment's autoreset mode is {mode}; use SAME_STEP or "
                           "NEXT_STEP (gymnasium.vector.AutoresetMode)")
        self.same_step = mode == gym.vector.AutoresetMode.SAME_STEP
        self._resetting = np.zeros(self.num_envs, bool)
        self._obs: np.ndarray | None = None

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._resetting[:] = False
        self._obs = self._checked(self.envs.reset(seed=seed)[0], "reset()")
        return self._obs

    def _checked(self, obs: Any, call: str) -> np.ndarray:
        return checked_observation(obs, (self.num_envs, *self.observation_space.shape), self.envs, call)

    def reset_copies(self, mask: np.ndarray) -> np.ndarray:
        obs = self._checked(self.envs.reset(options={"reset_mask": np.asarray(mask, bool)})[0], "reset()")
        self._resetting[mask] = False
        self._obs = np.where(np.asarray(mask)[:, None], obs, self._obs)
        return self._obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        obs, rewards, terminated, truncated, info = self.envs.step(actions)
        obs = self._checked(obs, "step()")
        rewards = np.asarray(rewards)
        if rewards.shape != (self.num_envs,) or not np.issubdtype(rewards.dtype, np.number):
            raise EnvError(f"{env_id_of(self.envs)}.step() returned rewards of shape {rewards.shape} and "
                           f"dtype {rewards.dtype}; expected {self.num_envs} numbers, one per copy")
        ended = np.logical_or(terminated, truncated)
        successors = obs
        if self.same_step and ended.any():
            # The copy already shows its reset observation; the step's successor is final_obs.
            successors = obs.copy()
            for i in np.flatnonzero(ended):
                successors[i] = info["final_obs"][i]
        valid = ~self._resetting  # next-step autoreset: this step only reset those copies
        if not self.same_step:
            self._resetting = ended.copy()
        self._obs = obs
        return obs, np.asarray(rewards, np.float64), terminated, truncated, successors, valid

    def sample_actions(self) -> np.ndarray:
        return self.envs.action_space.sample()

    def seed_actions(self, seed: int) -> None:
        self.envs.action_space.seed(seed)

    def close(self) -> None:
        self.envs.close()

    def rng_state(self) -> dict[str, Any] | None:
        if not isinstance(self.envs, gym.vector.SyncVectorEnv):
            return None  # the copies live in other processes: their RNGs cannot be read
        return vector_rng_state(self.envs)

    def set_rng_state(self, state: dict[str, Any] | None) -> None:
        if state is not None and isinstance(self.envs, gym.vector.SyncVectorEnv):
            set_vector_rng_state(self.envs, state)


def env_batch(env: gym.Env | gym.vector.VectorEnv) -> EnvBatch:
    """``env`` as the training loop drives it, after checking its spaces."""
    if isinstance(env, gym.vector.VectorEnv):
        batch: EnvBatch = VectorEnv(env)
    elif isinstance(env, gym.Env):
        batch = SingleEnv(env)
    else:
        raise EnvError(f"expected a gymnasium.Env, a gymnasium.vector.VectorEnv or an environment id, "
                       f"got {type(env).__name__}")
    check_space_types(batch.observation_space, batch.action_space, env_id_of(env))
    return batch


def env_id_of(env: Any) -> str:
    """The registered id of ``env`` (its class name when it is not registered)."""
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(getattr(env, "unwrapped", env)).__name__
