"""The TensorFlow environments behind gymnasium's interfaces: one ``gymnasium.Env``, one ``VectorEnv``.

The single env mirrors gymnasium's class: same spaces, same constructor arguments and reset
options, NumPy out, no truncation of its own (``gym.make`` adds the registry's ``TimeLimit``,
as for gymnasium's env). The vector env runs n copies in one compiled call per step,
truncates at ``max_episode_steps`` itself and autoresets in the same step, like
``SyncVectorEnv(..., autoreset_mode=AutoresetMode.SAME_STEP)``: ``info["final_obs"]`` (an
object array, ``None`` for the copies that did not end) and ``info["_final_obs"]`` (the mask),
plus the empty ``info["final_info"]`` and its mask ``info["_final_info"]``.

Randomness comes from gymnasium's seeding: ``reset(seed=...)`` seeds ``self.np_random``, which
draws the stateless TensorFlow seed of each reset (and, in the vector env, of each step's
autoresets), so ``np_random`` is the whole random state.
"""

from __future__ import annotations

import copy
import importlib
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control import utils as classic_utils
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

import ddpg_tf.tf_envs.core as core
import ddpg_tf.tf_envs.mountain_car as mountain_car
import ddpg_tf.tf_envs.pendulum as pendulum
from ddpg_tf._quiet import tf
from ddpg_tf.errors import UsageError


def _as_numpy_action(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    action = np.asarray(action)
    if action.dtype not in (np.float32, np.float64):
        action = action.astype(np.float32)
    if action.shape != shape:
        raise UsageError(f"actions must have shape {shape}, not {action.shape}")
    return action


class _Spec:
    """What the wrappers need to know of one environment module."""

    module: Any
    params_type: type
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box

    @staticmethod
    def reset_params(params: Any, options: dict | None) -> Any:
        return params


class _PendulumSpec(_Spec):
    module = pendulum
    params_type = pendulum.PendulumParams
    # as gymnasium builds them: high = [1, 1, max_speed] float32, torque in [-2, 2]
    _high = np.array(pendulum.OBS_HIGH, dtype=np.float32)
    observation_space = gym.spaces.Box(low=-_high, high=_high, dtype=np.float32)
    action_space = gym.spaces.Box(low=-pendulum.MAX_TORQUE, high=pendulum.MAX_TORQUE, shape=(1,),
                                  dtype=np.float32)

    @staticmethod
    def reset_params(params: pendulum.PendulumParams, options: dict | None) -> pendulum.PendulumParams:
        if options is None:
            return params
        x = classic_utils.verify_number_and_cast(options.get("x_init", pendulum.DEFAULT_PARAMS.x_init))
        y = classic_utils.verify_number_and_cast(options.get("y_init", pendulum.DEFAULT_PARAMS.y_init))
        return params._replace(x_init=x, y_init=y)


class _MountainCarSpec(_Spec):
    module = mountain_car
    params_type = mountain_car.MountainCarParams
    observation_space = gym.spaces.Box(low=np.array(mountain_car.OBS_LOW, dtype=np.float32),
                                       high=np.array(mountain_car.OBS_HIGH, dtype=np.float32),
                                       dtype=np.float32)
    action_space = gym.spaces.Box(low=mountain_car.MIN_ACTION, high=mountain_car.MAX_ACTION, shape=(1,),
                                  dtype=np.float32)

    @staticmethod
    def reset_params(params: mountain_car.MountainCarParams,
                     options: dict | None) -> mountain_car.MountainCarParams:
        defaults = mountain_car.DEFAULT_PARAMS
        low, high = classic_utils.maybe_parse_reset_bounds(options, defaults.low, defaults.high)
        return params._replace(low=low, high=high)


def _draw_seed(rng: np.random.Generator) -> tf.Tensor:
    """A stateless TensorFlow seed drawn from gymnasium's ``np_random``."""
    return tf.constant(rng.integers(0, 2**63 - 1, size=2, dtype=np.int64))


class _TFEnv(gym.Env):
    """One copy of a TensorFlow environment as a ``gymnasium.Env`` (see the subclasses)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "rgb_array"], "render_fps": 30}
    _spec: ClassVar[type[_Spec]]
    _renderer_type: ClassVar[str]

    def __init__(self, render_mode: str | None = None, dtype: Any = "float64", **params: Any) -> None:
        self.dtype = core.as_dtype(dtype)
        self.render_mode = render_mode
        self.observation_space = copy.deepcopy(self._spec.observation_space)  # each env seeds its own
        self.action_space = copy.deepcopy(self._spec.action_space)
        self.params = self._spec.params_type(**params)
        self._step = tf.function(lambda state, action: self._spec.module.step(state, action, self.params))
        self.state: Any = None
        """The core state (a NamedTuple of [1] tensors), None before the first reset."""
        self._last_action: np.ndarray | None = None
        self._renderer: gym.Env | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        params = self._spec.reset_params(self.params, options)
        self.state, obs = self._spec.module.reset(_draw_seed(self.np_random), 1, self.dtype, params)
        self._last_action = None
        if self.render_mode == "human":
            self.render()
        return obs.numpy()[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.state is None:
            raise UsageError("call reset() before step()")
        action = _as_numpy_action(action, self.action_space.shape)
        self.state, obs, reward, terminated, _ = self._step(self.state, action[None])
        self._last_action = action
        if self.render_mode == "human":
            self.render()
        # truncated=False: the time limit is the TimeLimit wrapper gym.make adds, as for gymnasium's env
        return obs.numpy()[0], float(reward.numpy()[0]), bool(terminated.numpy()[0]), False, {}

    def render(self) -> Any:
        """Draw with gymnasium's own env class (needs pygame), given this env's state."""
        if self.render_mode is None:
            gym.logger.warn("render() needs a render_mode: make the env with render_mode='rgb_array'")
            return None
        if self._renderer is None:
            module, name = self._renderer_type.rsplit(":", 1)
            self._renderer = getattr(importlib.import_module(module), name)(render_mode=self.render_mode)
        self._renderer.state = np.array([float(field.numpy()[0]) for field in self.state[:2]])
        self._renderer.last_u = None if self._last_action is None else self._last_action[0]
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class TFPendulumEnv(_TFEnv):
    """Pendulum-v1 computed by :mod:`ddpg_tf.tf_envs.pendulum` (``ddpg_tf/TFPendulum-v1``).

    Arguments as gymnasium's ``PendulumEnv`` (``render_mode``, ``g``) plus ``dtype`` (float64, the
    default, agrees with gymnasium to the last bits; float32 to float32 rounding). Reset options
    ``x_init``, ``y_init`` as gymnasium's.
    """

    _spec = _PendulumSpec
    _renderer_type = "gymnasium.envs.classic_control.pendulum:PendulumEnv"

    def __init__(self, render_mode: str | None = None, g: float = 10.0, dtype: Any = "float64") -> None:
        super().__init__(render_mode=render_mode, dtype=dtype, g=g)


class TFMountainCarContinuousEnv(_TFEnv):
    """MountainCarContinuous-v0 computed by :mod:`ddpg_tf.tf_envs.mountain_car`
    (``ddpg_tf/TFMountainCarContinuous-v0``).

    Arguments as gymnasium's ``Continuous_MountainCarEnv`` (``render_mode``, ``goal_velocity``)
    plus ``dtype``. Reset options ``low``, ``high`` as gymnasium's.
    """

    _spec = _MountainCarSpec
    _renderer_type = "gymnasium.envs.classic_control.continuous_mountain_car:Continuous_MountainCarEnv"

    def __init__(self, render_mode: str | None = None, goal_velocity: float = 0.0,
                 dtype: Any = "float64") -> None:
        super().__init__(render_mode=render_mode, dtype=dtype, goal_velocity=goal_velocity)


class _TFVectorEnv(gym.vector.VectorEnv):
    """n copies of a TensorFlow environment as a ``VectorEnv`` (see the subclasses)."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}
    _spec: ClassVar[type[_Spec]]

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, dtype: Any = "float64",
                 **params: Any) -> None:
        if max_episode_steps is not None:
            params["max_episode_steps"] = int(max_episode_steps)
        self.num_envs = int(num_envs)
        if self.num_envs < 1:
            raise UsageError(f"num_envs must be at least 1, not {num_envs}")
        self.dtype = core.as_dtype(dtype)
        self.single_observation_space = copy.deepcopy(self._spec.observation_space)
        self.single_action_space = copy.deepcopy(self._spec.action_space)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.params = self._spec.params_type(**params)
        self._step = tf.function(lambda state, action, seed: self._spec.module.step_autoreset(
            state, action, seed, self.params))
        self.state: Any = None
        """The core state (a NamedTuple of [num_envs] tensors), None before the first reset."""

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Reset all copies, or those of ``options["reset_mask"]``; ``seed`` is one int (or None)
        for all copies together."""
        if seed is not None and not isinstance(seed, int | np.integer):
            raise UsageError(f"seed must be one int (or None) for all copies, not {seed!r}")
        super().reset(seed=None if seed is None else int(seed))
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        params = self._spec.reset_params(self.params, options or None)
        fresh, obs = self._spec.module.reset(_draw_seed(self.np_random), self.num_envs, self.dtype, params)
        if mask is not None:
            mask = np.asarray(mask)
            if self.state is None or mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise UsageError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), "
                                 "after a first full reset")
            fresh = core.select(mask, fresh, self.state)
            obs = self._spec.module.observation(fresh)
        self.state = fresh
        return obs.numpy(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        if self.state is None:
            raise UsageError("call reset() before step()")
        actions = _as_numpy_action(actions, self.action_space.shape)
        self.state, obs, reward, terminated, truncated, final_obs = self._step(
            self.state, actions, _draw_seed(self.np_random))
        terminated, truncated = terminated.numpy(), truncated.numpy()
        infos: dict[str, Any] = {}
        ended = terminated | truncated
        if ended.any():
            final = np.full(self.num_envs, None, dtype=object)
            final_obs = final_obs.numpy()
            for i in np.flatnonzero(ended):
                final[i] = final_obs[i]
            infos = {"final_obs": final, "_final_obs": ended, "final_info": {},
                     "_final_info": ended.copy()}
        return obs.numpy(), reward.numpy().astype(np.float64), terminated, truncated, infos


class TFPendulumVectorEnv(_TFVectorEnv):
    """n copies of :class:`TFPendulumEnv` stepped in one call (``gym.make_vec("ddpg_tf/TFPendulum-v1", n)``).

    ``max_episode_steps`` defaults to 200 (``gym.make_vec`` passes the registry's); ``g``, ``dtype``
    as for the single env.
    """

    _spec = _PendulumSpec

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, g: float = 10.0,
                 dtype: Any = "float64") -> None:
        super().__init__(num_envs=num_envs, max_episode_steps=max_episode_steps, dtype=dtype, g=g)


class TFMountainCarContinuousVectorEnv(_TFVectorEnv):
    """n copies of :class:`TFMountainCarContinuousEnv` stepped in one call
    (``gym.make_vec("ddpg_tf/TFMountainCarContinuous-v0", n)``); ``max_episode_steps`` defaults to 999."""

    _spec = _MountainCarSpec

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, goal_velocity: float = 0.0,
                 dtype: Any = "float64") -> None:
        super().__init__(num_envs=num_envs, max_episode_steps=max_episode_steps, dtype=dtype,
                         goal_velocity=goal_velocity)
