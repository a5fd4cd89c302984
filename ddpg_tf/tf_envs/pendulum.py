"""Pendulum-v1 in TensorFlow: batched, pure functions, the dynamics of gymnasium 1.4.

Source: ``gymnasium/envs/classic_control/pendulum.py`` of gymnasium 1.4.0 (``PendulumEnv``)
and its registration (``max_episode_steps=200``). The state is (θ, θ̇) with θ = 0 upright; the
observation is (cos θ, sin θ, θ̇) as float32; the reward is
``-(angle_normalize(θ)² + 0.1 θ̇² + 0.001 u²)`` with u the torque clipped to [-2, 2]; the episode
never terminates and is truncated after 200 steps.

Differences from gymnasium, with ``dtype=float64`` (the default):

* The same float32 arithmetic where gymnasium has it: NumPy computes ``3.0 * u`` and
  ``0.001 * u**2`` in the action's dtype, float32 for actions from the action space, so this
  does too (a float64 action is handled in float64, as NumPy would).
* Gymnasium squares with C's ``pow`` (``x**2`` on NumPy scalars), we multiply (``x * x``,
  correctly rounded). glibc's ``powf`` is off by one float32 ulp for about 0.1% of torques,
  which moves that step's reward by up to 5e-10; ``pow`` in float64 by one ulp (~2e-15).
  The state and observations are not affected: the reward does not feed the dynamics.
* The reset draws from the same distribution, U([-x_init, x_init] × [-y_init, y_init]), but from
  TensorFlow's random numbers, so a seed gives other start states than gymnasium's
  ``np_random`` (and float64 uniforms have 52 random bits, NumPy's 53).

With ``dtype=float32`` every operation is float32 except sin and cos (float64, rounded: see
:func:`core.sin`); a step from a given state agrees to float32 rounding (1e-5), but the rounding
grows along an episode (the pendulum is chaotic): up to ~4e-4 after 200 steps. Under XLA
(``jit_compile=True``) float64 is not bit-identical either: XLA on CPU fuses ``a * b + c`` into one
rounding (FMA), and the states drift apart by ~1e-10 over 200 steps.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from ddpg_tf._quiet import tf
import ddpg_tf.tf_envs.core as core

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05
MASS = 1.0
LENGTH = 1.0
OBS_HIGH = (1.0, 1.0, MAX_SPEED)
"""Observation bounds (cos θ, sin θ, θ̇); the box is [-OBS_HIGH, OBS_HIGH]."""


class PendulumParams(NamedTuple):
    """Constructor arguments and reset options of gymnasium's ``PendulumEnv``, and the time limit."""

    g: float = 10.0
    """Gravity (``gym.make("Pendulum-v1", g=...)``)."""
    max_episode_steps: int = 200
    """Steps until truncation (the registry's ``TimeLimit``)."""
    x_init: float = math.pi
    """θ starts uniform in [-x_init, x_init] (reset option ``x_init``)."""
    y_init: float = 1.0
    """θ̇ starts uniform in [-y_init, y_init] (reset option ``y_init``)."""


DEFAULT_PARAMS = PendulumParams()


class PendulumState(NamedTuple):
    """One row per copy: gymnasium's ``env.unwrapped.state`` and the TimeLimit counter."""

    theta: tf.Tensor
    """θ in radians, not normalised ([n], float32 or float64)."""
    theta_dot: tf.Tensor
    """θ̇ in rad/s ([n])."""
    elapsed_steps: tf.Tensor
    """Steps since reset ([n], int32)."""


def angle_normalize(x: tf.Tensor) -> tf.Tensor:
    """x wrapped to [-π, π): ``((x + π) mod 2π) − π`` with a floored mod, as NumPy's ``%``."""
    return tf.math.floormod(x + math.pi, 2 * math.pi) - math.pi


def observation(state: PendulumState) -> tf.Tensor:
    """(cos θ, sin θ, θ̇) computed in the state's dtype, stored as float32 ([n, 3])."""
    return tf.cast(tf.stack([core.cos(state.theta), core.sin(state.theta), state.theta_dot], axis=1),
                   tf.float32)


def reset(seed: core.Seed, n: Any, dtype: Any = tf.float64,
          params: PendulumParams = DEFAULT_PARAMS) -> tuple[PendulumState, tf.Tensor]:
    """``n`` fresh copies: θ ~ U[-x_init, x_init), θ̇ ~ U[-y_init, y_init); returns (state, obs)."""
    dtype = core.as_dtype(dtype)
    high = tf.constant([params.x_init, params.y_init], dtype)
    low = -high
    # NumPy's uniform(low, high) = low + (high - low) · U[0, 1)
    draw = low + (high - low) * core.uniform(seed, tf.stack([n, 2]), dtype)
    state = PendulumState(draw[:, 0], draw[:, 1], tf.zeros([n], tf.int32))
    return state, observation(state)


def step(state: PendulumState, action: Any,
         params: PendulumParams = DEFAULT_PARAMS) -> tuple[PendulumState, tf.Tensor, tf.Tensor,
                                                           tf.Tensor, tf.Tensor]:
    """One step of every copy; ``action`` is the torque, ``[n, 1]``.

    Returns ``(state, obs, reward, terminated, truncated)``; ``terminated`` is always False.
    """
    dtype = state.theta.dtype
    th, thdot = state.theta, state.theta_dot
    u = tf.clip_by_value(core.action_column(action, dtype), -MAX_TORQUE, MAX_TORQUE)
    # cost = angle_normalize(θ)² + 0.1 θ̇² + 0.001 u²   (the u term in the action's dtype, as NumPy)
    costs = (tf.square(angle_normalize(th)) + 0.1 * tf.square(thdot)
             + tf.cast(0.001 * tf.square(u), dtype))
    # θ̈ = 3g/(2l) sin θ + 3/(m l²) u;   θ̇' = clip(θ̇ + θ̈ dt, ±8);   θ' = θ + θ̇' dt  (semi-implicit Euler)
    gravity = 3 * params.g / (2 * LENGTH)
    torque = tf.cast(3.0 / (MASS * LENGTH**2) * u, dtype)
    new_thdot = thdot + (gravity * core.sin(th) + torque) * DT
    new_thdot = tf.clip_by_value(new_thdot, -MAX_SPEED, MAX_SPEED)
    new_th = th + new_thdot * DT
    elapsed = state.elapsed_steps + 1
    new_state = PendulumState(new_th, new_thdot, elapsed)
    terminated = tf.zeros_like(elapsed, tf.bool)
    truncated = elapsed >= params.max_episode_steps
    return new_state, observation(new_state), -costs, terminated, truncated


def step_autoreset(state: PendulumState, action: Any, seed: core.Seed,
                   params: PendulumParams = DEFAULT_PARAMS) -> tuple:
    """:func:`step`, resetting the copies that ended in the same call (see :func:`core.step_autoreset`).

    Returns ``(state, obs, reward, terminated, truncated, final_obs)``.
    """
    return core.step_autoreset(step, reset, state, action, seed, params)
