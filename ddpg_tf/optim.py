"""Adam with one fused kernel per variable.

Kingma & Ba (2015), with epsilon in one of two places (``epsilon_placement``):

    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
    tensorflow: theta <- theta - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    torch:      theta <- theta - lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)

``tensorflow`` adds epsilon to the uncorrected sqrt(v) (``keras.optimizers.Adam``,
``tf.raw_ops.ApplyAdam``; Keras' default eps is 1e-7); ``torch`` adds it after bias correction
(``torch.optim.Adam``, default 1e-8), which is the tensorflow form with epsilon
eps sqrt(1 - b2^t), so both run the same fused kernel. The two differ while sqrt(v) is small
against eps, i.e. for tiny gradients and in the first steps.

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
                 beta_2: float = 0.999, epsilon: float = 1e-7, name: str | None = None,
                 epsilon_placement: str = "tensorflow") -> None:
        super().__init__(name=name)
        if epsilon_placement not in ("tensorflow", "torch"):
            raise ValueError(f"epsilon_placement must be tensorflow or torch, got {epsilon_placement!r}")
        self.learning_rate = float(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.epsilon_placement = epsilon_placement
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
                beta2_power = tf.pow(b2, step)
                epsilon = tf.constant(self.epsilon, dtype)
                if self.epsilon_placement == "torch":  # eps after bias correction: eps sqrt(1 - b2^t) here
                    epsilon = epsilon * tf.sqrt(1.0 - beta2_power)
                scalars[dtype] = dict(
                    beta1_power=tf.pow(b1, step), beta2_power=beta2_power, beta1=b1, beta2=b2,
                    lr=tf.constant(self.learning_rate, dtype) * tf.cast(lr_scale, dtype),
                    epsilon=epsilon)
            return scalars[dtype]

        for var, m, v, g in zip(variables, self.m, self.v, grads, strict=True):
            tf.raw_ops.ResourceApplyAdam(var=_handle(var), m=m.handle, v=v.handle, grad=g,
                                         use_locking=False, **constants(g.dtype))
        self.iterations.assign_add(1)
