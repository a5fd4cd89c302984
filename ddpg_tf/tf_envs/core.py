"""What the TensorFlow environments share: reset randomness, dtypes, actions, same-step autoreset.

Every environment module (:mod:`.pendulum`, :mod:`.mountain_car`) is a set of pure functions
of tensors with a batch dimension ``n`` (one row per copy)::

    state, obs = reset(seed, n, dtype, params)
    state, obs, reward, terminated, truncated = step(state, action, params)
    state, obs, reward, terminated, truncated, final_obs = step_autoreset(state, action, seed, params)

``state`` is a NamedTuple of ``[n]`` tensors ending in ``elapsed_steps`` (int32, the
``TimeLimit`` counter); ``obs`` is ``[n, obs_dim]`` float32 (gymnasium's observation dtype);
``reward`` is ``[n]`` in the state's dtype; ``terminated``/``truncated`` are ``[n]`` bool.
Nothing is stateful, so the functions run eagerly, inside ``tf.function`` and inside a
``tf.while_loop`` alike.

Random numbers: a stateless seed or a Generator gives the same reset states on every call in one
compilation mode, but XLA (``jit_compile=True``) draws other numbers from the same seed than
TensorFlow's own kernels do (true of TensorFlow's random ops in general).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from ddpg_tf._quiet import tf
from ddpg_tf.errors import UsageError

Seed = Any
"""A stateless seed (an int ``[2]`` tensor or array, as ``tf.random.stateless_uniform`` takes)
or a ``tf.random.Generator``. With a seed the caller derives a fresh one per call (e.g.
``tf.random.split``) and the result is a function of it; a Generator advances its own state,
which ``tf.train.Checkpoint`` can save."""

State = TypeVar("State", bound=tuple)
"""A state NamedTuple (``PendulumState``, ``MountainCarState``)."""


def as_dtype(dtype: Any) -> tf.DType:
    """``tf.float32`` or ``tf.float64`` from a name, NumPy dtype or ``tf.DType``."""
    try:
        converted = tf.as_dtype(dtype)
    except TypeError:
        converted = None
    if converted not in (tf.float32, tf.float64):
        raise UsageError(f"dtype must be float32 or float64, not {dtype!r}")
    return converted


def uniform(seed: Seed, shape: Any, dtype: tf.DType) -> tf.Tensor:
    """Uniform numbers in [0, 1) from a stateless seed or a ``tf.random.Generator``."""
    if isinstance(seed, tf.random.Generator):
        return seed.uniform(shape, dtype=dtype)
    return tf.random.stateless_uniform(shape, seed=seed, dtype=dtype)


def action_column(action: Any, dtype: tf.DType) -> tf.Tensor:
    """The ``[n]`` force/torque column of an ``[n, 1]`` action, in the dtype the step computes it in.

    Gymnasium's dynamics handle the action in the action's own dtype (NumPy keeps a float32
    array float32 against Python floats), so with a float64 state a float32 or float64 action
    keeps its dtype, and the step repeats NumPy's arithmetic for it. Any other dtype becomes
    float32, the action space's dtype. With a float32 state everything is float32.
    """
    action = tf.convert_to_tensor(action)
    if dtype == tf.float32 or action.dtype not in (tf.float32, tf.float64):
        action = tf.cast(action, tf.float32)
    if action.shape.rank is not None and (action.shape.rank != 2 or action.shape[1] not in (1, None)):
        raise UsageError(f"actions must have shape [n, 1], not {action.shape}")
    return action[:, 0]


def rounded32(x: tf.Tensor) -> tf.Tensor:
    """``x`` rounded to float32 and back to its dtype (NumPy storing it in a float32 array)."""
    return tf.cast(tf.cast(x, tf.float32), x.dtype)


def sin(x: tf.Tensor) -> tf.Tensor:
    """sin x, evaluated in float64 and rounded to x's dtype.

    TensorFlow's float32 sin/cos on CPU give a different last bit in the vectorised lanes than in
    the scalar tail for about one value in five, so in float32 a copy's result would depend on the
    batch size and its place in the batch; the float64 kernels do not (and agree with C's libm).
    """
    return tf.cast(tf.sin(tf.cast(x, tf.float64)), x.dtype)


def cos(x: tf.Tensor) -> tf.Tensor:
    """cos x, evaluated in float64 and rounded to x's dtype (see :func:`sin`)."""
    return tf.cast(tf.cos(tf.cast(x, tf.float64)), x.dtype)


def const(value: float, dtype: tf.DType) -> tf.Tensor:
    """A scalar constant (``tf.where`` does not convert Python floats to the other branch's dtype)."""
    return tf.constant(value, dtype)


def select(mask: Any, new: State, old: State) -> State:
    """Per copy, ``new``'s row where ``mask`` ([n] bool), else ``old``'s."""
    return type(old)(*(tf.where(mask, a, b) for a, b in zip(new, old, strict=True)))


def step_autoreset(step: Callable[..., tuple], reset: Callable[..., tuple], state: State, action: Any,
                   seed: Seed, params: tuple) -> tuple:
    """``step``, then replace the copies that ended by fresh ones from ``reset`` (same-step autoreset).

    Returns ``(state, obs, reward, terminated, truncated, final_obs)``: ``obs`` and ``state`` are
    the reset ones where ``terminated | truncated``, ``final_obs`` is the observation the step
    reached for every copy (the true last observation of an ended episode), as gymnasium's
    ``SyncVectorEnv`` in ``AutoresetMode.SAME_STEP`` returns it in ``info["final_obs"]``.
    A fresh state is drawn for every copy and kept only where one ended, so the result for a
    copy depends on the seed and its position in the batch, not on which other copies ended.
    """
    state, obs, reward, terminated, truncated = step(state, action, params)
    ended = terminated | truncated
    dtype = state[0].dtype
    fresh, fresh_obs = reset(seed, tf.shape(ended)[0], dtype, params)
    state = select(ended, fresh, state)
    next_obs = tf.where(ended[:, None], fresh_obs, obs)
    return state, next_obs, reward, terminated, truncated, obs


def float32_of(value: float) -> float:
    """The float32 nearest ``value``, as a Python float (what NumPy compares a float32 with)."""
    return float(np.float32(value))
