"""Observation normalisation with running statistics (tensorflow-probability).

The statistics (sample count, mean, sum of squared residuals) live in variables, so they are
saved in checkpoints, and are updated in-graph with every stored transition's observation
by ``tfp.experimental.stats.RunningVariance`` (Welford / Chan et al. parallel update, which
stays accurate where the naive sum-of-squares formula cancels).

Networks see ``clip(x * scale + offset, -clip, clip)`` with ``scale = 1 / sqrt(var + eps)``
and ``offset = -mean * scale``: the affine form of (x - mean) / std that a Keras
``Rescaling`` layer computes, so the exported policy (:func:`normalizing_policy`) applies the
very same arithmetic. Until two observations have been seen the variance counts as 1.

The count is kept in the networks' dtype: in float32 it stops growing at 2**24 (about 16.8M
transitions), after which the variance estimate would drift upwards; use float64 for longer runs.

Not in the DDPG paper; SB3's ``VecNormalize`` and TF-Agents' ``NormalizedActorNetwork`` do the
same with an ``eps`` of 1e-8 and a clip of 10 (our defaults). Rewards are not normalised.
"""

from __future__ import annotations

import keras
import numpy as np

from ddpg_tf._quiet import tf, tfp

EPSILON = 1e-8


class ObservationNormalizer(tf.Module):
    """Running mean and variance of observations, and the clipped affine map they define."""

    def __init__(self, obs_dim: int, clip: float = 10.0, dtype: str = "float32",
                 name: str = "obs_norm") -> None:
        super().__init__(name=name)
        self.dtype = tf.as_dtype(dtype)
        self.clip = float(clip)
        self.count = tf.Variable(tf.zeros((), self.dtype), trainable=False, name="count")
        self.mean = tf.Variable(tf.zeros((obs_dim,), self.dtype), trainable=False, name="mean")
        self.sum_squared_residuals = tf.Variable(tf.zeros((obs_dim,), self.dtype), trainable=False,
                                                 name="sum_squared_residuals")

    def update(self, observations: tf.Tensor) -> None:
        """Fold a batch of observations, shape (N, obs_dim), into the statistics."""
        running = tfp.experimental.stats.RunningVariance(
            num_samples=self.count, mean=self.mean,
            sum_squared_residuals=self.sum_squared_residuals, event_ndims=0)
        running = running.update(tf.cast(observations, self.dtype), axis=0)
        self.count.assign(running.num_samples)
        self.mean.assign(running.mean)
        self.sum_squared_residuals.assign(running.sum_squared_residuals)

    def variance(self) -> tf.Tensor:
        """Population variance of the observations seen; 1 until two have been seen."""
        var = self.sum_squared_residuals / tf.maximum(self.count, 1.0)
        return tf.where(self.count > 1.0, var, tf.ones_like(var))

    def scale_and_offset(self) -> tuple[tf.Tensor, tf.Tensor]:
        """(1 / sqrt(var + eps), -mean / sqrt(var + eps))."""
        scale = tf.math.rsqrt(self.variance() + EPSILON)
        return scale, -self.mean * scale

    def __call__(self, observations: tf.Tensor) -> tf.Tensor:
        scale, offset = self.scale_and_offset()
        return tf.clip_by_value(observations * scale + offset, -self.clip, self.clip)


def normalizing_policy(actor: keras.Model, normalizer: ObservationNormalizer) -> keras.Model:
    """A plain-Keras model ``raw observation -> action``: the normaliser's current statistics
    frozen into a ``Rescaling`` layer and a clip, followed by ``actor``. Loading it needs only
    Keras (no ddpg_tf), so deployment feeds raw observations exactly as the agent did."""
    scale, offset = (np.asarray(t.numpy()) for t in normalizer.scale_and_offset())
    dtype = actor.inputs[0].dtype
    obs = keras.Input(tuple(actor.inputs[0].shape[1:]), name="raw_observation", dtype=dtype)
    x = keras.layers.Rescaling(scale=scale, offset=offset, name="obs_norm", dtype=dtype)(obs)
    x = keras.ops.clip(x, -normalizer.clip, normalizer.clip)
    return keras.Model(obs, actor(x), name=f"{actor.name}_with_obs_norm")
