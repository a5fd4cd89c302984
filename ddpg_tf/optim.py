"""Adam with one fused kernel per variable.

Kingma & Ba (2015), the form with epsilon outside the square root, as in
``keras.optimizers.Adam``:

    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
    theta <- theta - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)

Keras 3's Adam issues about ten small ops per variable; ``tf.raw_ops.ResourceApplyAdam``
does the same update in one kernel, which matters for DDPG's small networks where op
dispatch, not arithmetic, dominates a CPU update. Differences from Keras' Adam: every
constant is kept in the variables' dtype (Keras rounds lr and betas through float32 even for
float64 variables), and ``lr_scale`` lets the compiled step turn an update into a no-op
without a ``tf.cond``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ddpg_tf._quiet import tf


def _handle(variable: object) -> tf.Tensor:
    """The resource handle of a ``tf.Variable`` or a Keras 3 variable wrapping one."""
    if isinstance(variable, tf.Variable):
        return variable.handle
    return variable.value.handle  # type: ignore[attr-defined]


class Adam(tf.Module):
    """Adam over a fixed list of variables; its moments and step count are checkpointable."""

    def __init__(self, variables: Sequence[tf.Variable], learning_rate: float, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, name: str | None = None) -> None:
        super().__init__(name=name)
        self.learning_rate = float(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.m = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name=f"m{i}")
                  for i, v in enumerate(variables)]
        self.v = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name=f"v{i}")
                  for i, v in enumerate(variables)]

    def apply_gradients(self, grads: Sequence[tf.Tensor], variables: Sequence[tf.Variable],
                        lr_scale: tf.Tensor | float = 1.0) -> None:
        """One Adam step; ``lr_scale`` multiplies the learning rate (0 leaves the weights as
        they are, though the moments still absorb ``grads``)."""
        scalars: dict[tf.DType, dict[str, tf.Tensor]] = {}  # per dtype, computed once

        def constants(dtype: tf.DType) -> dict[str, tf.Tensor]:
            if dtype not in scalars:
                step = tf.cast(self.iterations + 1, dtype)
                b1, b2 = tf.constant(self.beta_1, dtype), tf.constant(self.beta_2, dtype)
                scalars[dtype] = dict(
                    beta1_power=tf.pow(b1, step), beta2_power=tf.pow(b2, step), beta1=b1, beta2=b2,
                    lr=tf.constant(self.learning_rate, dtype) * tf.cast(lr_scale, dtype),
                    epsilon=tf.constant(self.epsilon, dtype))
            return scalars[dtype]

        for var, m, v, g in zip(variables, self.m, self.v, grads, strict=True):
            tf.raw_ops.ResourceApplyAdam(var=_handle(var), m=m.handle, v=v.handle, grad=g,
                                         use_locking=False, **constants(g.dtype))
        self.iterations.assign_add(1)
