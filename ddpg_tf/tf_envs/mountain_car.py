"""MountainCarContinuous-v0 in TensorFlow: batched, pure functions, the dynamics of gymnasium 1.4.

Source: ``gymnasium/envs/classic_control/continuous_mountain_car.py`` of gymnasium 1.4.0
(``Continuous_MountainCarEnv``) and its registration (``max_episode_steps=999``). With the
force f = clip(a, -1, 1)::

    v' = clip(v + 0.0015 f − 0.0025 cos(3x), ±0.07)
    x' = clip(x + v', [-1.2, 0.6]);  v' = 0 if x' = -1.2 and v' < 0   (inelastic left wall)
    terminated = x' ≥ 0.45 and v' ≥ goal_velocity
    reward = 100 [terminated] − 0.1 a²                                (a unclipped)

Gymnasium stores the state as float32 after every step but keeps reset's float64 state for the
first step, and NumPy then mixes float32 and float64 by the types at hand (NEP 50: a Python float
meeting a float32 scalar is rounded to float32). With ``dtype=float64`` (the default) this module
repeats that arithmetic operation by operation, so it agrees with gymnasium to the last bit
(tested: states, observations and flags bit-identical over whole episodes, rewards to 1e-12):

* first step after a reset (``elapsed_steps == 0``): x, v are float64; ``3x`` and the cosine are
  float64; ``0.0015 f`` is float32 for a float32 action inside [-1, 1] and float64 when the
  action was clipped (then f is the Python float ±1.0);
* later steps: x, v are float32; ``3x`` is rounded to float32, the cosine term is computed in
  float64 and rounded to float32, the velocity and position updates are float32; clip bounds
  that replace a value are the Python floats (0.07 rather than float32(0.07)), comparisons with
  a float32 are in float32;
* a float64 action inside the bounds makes the velocity and position updates float64, as NumPy
  would (a float32 scalar plus a float64 one is float64);
* the new state is rounded to float32 (stored in the state's dtype) and so is the observation;
  the reward is float64, ``a²`` computed from the action's value (gymnasium's ``math.pow`` can
  differ from our ``a * a`` by one float64 ulp for a float64 action).

The reset position is U[low, high) = U[-0.6, -0.4) by default (reset options ``low``/``high``),
the velocity 0; the start positions come from TensorFlow's random numbers, not gymnasium's
``np_random`` (same distribution, other numbers for a seed; float64 uniforms have 52 random
bits, NumPy's 53).

With ``dtype=float32`` every operation is float32 except the cosine (float64, rounded: see
:func:`core.sin`), so trajectories agree to float32 rounding. Under XLA (``jit_compile=True``,
which fuses multiply-adds on CPU) the float64 steps stayed bit-identical in our test (the float32
roundings in between leave little to fuse).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ddpg_tf._quiet import tf
import ddpg_tf.tf_envs.core as core

MIN_ACTION = -1.0
MAX_ACTION = 1.0
MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GOAL_POSITION = 0.45
POWER = 0.0015
OBS_LOW = (MIN_POSITION, -MAX_SPEED)
OBS_HIGH = (MAX_POSITION, MAX_SPEED)


class MountainCarParams(NamedTuple):
    """Constructor arguments and reset options of gymnasium's env, and the time limit."""

    goal_velocity: float = 0.0
    """The velocity needed at the goal (``gym.make(..., goal_velocity=...)``)."""
    max_episode_steps: int = 999
    """Steps until truncation (the registry's ``TimeLimit``)."""
    low: float = -0.6
    """The start position is uniform in [low, high) (reset option ``low``)."""
    high: float = -0.4
    """(reset option ``high``)."""


DEFAULT_PARAMS = MountainCarParams()


class MountainCarState(NamedTuple):
    """One row per copy: gymnasium's ``env.unwrapped.state`` and the TimeLimit counter."""

    position: tf.Tensor
    """x ([n], float32 or float64)."""
    velocity: tf.Tensor
    """v ([n])."""
    elapsed_steps: tf.Tensor
    """Steps since reset ([n], int32); 0 also tells the step that x, v are reset's float64 values."""


def observation(state: MountainCarState) -> tf.Tensor:
    """(x, v) as float32 ([n, 2])."""
    return tf.cast(tf.stack([state.position, state.velocity], axis=1), tf.float32)


def reset(seed: core.Seed, n: Any, dtype: Any = tf.float64,
          params: MountainCarParams = DEFAULT_PARAMS) -> tuple[MountainCarState, tf.Tensor]:
    """``n`` fresh copies: x ~ U[low, high), v = 0; returns (state, obs)."""
    dtype = core.as_dtype(dtype)
    # NumPy's uniform(low, high) = low + (high - low) · U[0, 1)
    position = params.low + (params.high - params.low) * core.uniform(seed, tf.reshape(n, [1]), dtype)
    state = MountainCarState(position, tf.zeros_like(position), tf.zeros_like(position, tf.int32))
    return state, observation(state)


def step(state: MountainCarState, action: Any,
         params: MountainCarParams = DEFAULT_PARAMS) -> tuple[MountainCarState, tf.Tensor, tf.Tensor,
                                                              tf.Tensor, tf.Tensor]:
    """One step of every copy; ``action`` is the force, ``[n, 1]``.

    Returns ``(state, obs, reward, terminated, truncated)``. The comments give gymnasium's line
    and the NumPy types it meets (f32: a NumPy float32 scalar; py: a Python float; f64).
    """
    dtype = state.position.dtype
    a = core.action_column(action, dtype)
    action32 = a.dtype == tf.float32  # static: decides which of gymnasium's NumPy types meet
    a = tf.cast(a, dtype)
    x, v = state.position, state.velocity
    r32 = core.rounded32

    def rounded_if(is32: Any, value: float) -> tf.Tensor:
        # a Python float meeting a float32 scalar is rounded to float32 first (NEP 50)
        return tf.where(is32, core.const(core.float32_of(value), dtype), core.const(value, dtype))

    first = tf.equal(state.elapsed_steps, 0)  # x, v are still reset's float64 values
    # force = min(max(a, -1.0), 1.0): a (f32) inside the bounds, the bound (py) outside
    clipped = (a < MIN_ACTION) | (a > MAX_ACTION)
    force = tf.clip_by_value(a, MIN_ACTION, MAX_ACTION)
    # velocity += force·power − 0.0025·cos(3·position)   (math.cos: float64, of a float32 3x later on)
    slope = 0.0025 * core.cos(tf.where(first, 3.0 * x, r32(3.0 * x)))
    if action32:
        # f32 force · py power − py slope: float32; a clipped (py) force: float64
        push = tf.where(clipped, force * POWER - slope,
                        r32(r32(force * core.float32_of(POWER)) - r32(slope)))
    else:  # f64 force: float64 (a clipped force is py: float64 too)
        push = force * POWER - slope
    # f64 velocity (first step) + push: float64; f32 velocity + (f32 or py) push: float32;
    # f32 velocity + f64 push (a float64 action inside the bounds): float64
    v_is32 = ~first & (clipped | action32)
    v = tf.where(v_is32, r32(r32(v) + r32(push)), v + push)
    # if velocity > max_speed: velocity = max_speed (py); then the same for -max_speed
    v_high = v > rounded_if(v_is32, MAX_SPEED)
    v_low = ~v_high & (v < rounded_if(v_is32, -MAX_SPEED))
    v = tf.where(v_high, core.const(MAX_SPEED, dtype), tf.where(v_low, core.const(-MAX_SPEED, dtype), v))
    v_is64 = ~v_is32 & ~v_high & ~v_low  # an f64 velocity; a replaced one is py
    v_is32 = v_is32 & ~v_high & ~v_low
    # position += velocity: f64 position (first step): float64; f32 position + (f32 or py)
    # velocity: float32; f32 position + f64 velocity: float64
    x_is32 = ~first & ~v_is64
    x = tf.where(x_is32, r32(r32(x) + r32(v)), x + v)
    # if position > max_position: position = max_position (py); then the same for min_position
    x_high = x > rounded_if(x_is32, MAX_POSITION)
    x_low = ~x_high & (x < rounded_if(x_is32, MIN_POSITION))
    x = tf.where(x_high, core.const(MAX_POSITION, dtype), tf.where(x_low, core.const(MIN_POSITION, dtype), x))
    x_is32 = x_is32 & ~x_high & ~x_low
    # if position == min_position and velocity < 0: velocity = 0   (inelastic wall)
    at_wall = tf.equal(x, rounded_if(x_is32, MIN_POSITION)) & (v < 0.0)
    v = tf.where(at_wall, tf.zeros_like(v), v)
    v_is32 = v_is32 & ~at_wall  # the int 0
    # terminated = position >= goal_position and velocity >= goal_velocity
    terminated = ((x >= rounded_if(x_is32, GOAL_POSITION))
                  & (v >= rounded_if(v_is32, params.goal_velocity)))
    # reward = 100.0 [terminated] − math.pow(action[0], 2) · 0.1   (the unclipped action)
    reward = tf.where(terminated, core.const(100.0, dtype), core.const(0.0, dtype)) - tf.square(a) * 0.1
    # self.state = np.array([position, velocity], dtype=np.float32)
    elapsed = state.elapsed_steps + 1
    new_state = MountainCarState(r32(x), r32(v), elapsed)
    truncated = elapsed >= params.max_episode_steps
    return new_state, observation(new_state), reward, terminated, truncated


def step_autoreset(state: MountainCarState, action: Any, seed: core.Seed,
                   params: MountainCarParams = DEFAULT_PARAMS) -> tuple:
    """:func:`step`, resetting the copies that ended in the same call (see :func:`core.step_autoreset`).

    Returns ``(state, obs, reward, terminated, truncated, final_obs)``.
    """
    return core.step_autoreset(step, reset, state, action, seed, params)
