"""The four ways to DDPG's actor gradient that ``python -m ddpg_tf.gradcheck`` compares.

Each is ``way(actor, critic, observations) -> gradient per actor.trainable_variables`` of
-1/N sum_i Q(s_i, mu(s_i|theta)). Three are :mod:`ddpg_tf.losses`' own; ``jacobian`` (here)
forms the per-sample Jacobian explicitly, to show what the chain rule's "multiplication" is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

    from ddpg_tf._quiet import tf

WAY_NAMES: tuple[str, ...] = ("direct", "chain-rule", "jacobian", "surrogate")
"""The four ways, in table order; ``direct`` is the reference the others are compared with."""

GradientFn = Callable[["keras.Model", "keras.Model", "tf.Tensor"], list["tf.Tensor"]]
"""``way(actor, critic, observations) -> gradient per actor.trainable_variables``."""


def actor_grads_direct(actor: keras.Model, critic: keras.Model, observations: tf.Tensor) -> list[tf.Tensor]:
    """``direct``: one tape over -mean Q(s, mu(s)) (see :mod:`ddpg_tf.losses`)."""
    from ddpg_tf import losses

    return list(losses.actor_grads_direct(actor, critic, observations).grads)


def actor_grads_chain_rule(actor: keras.Model, critic: keras.Model,
                           observations: tf.Tensor) -> list[tf.Tensor]:
    """``chain-rule``: dQ/da, then ``output_gradients=-dQ/da / N`` through mu."""
    from ddpg_tf import losses

    return list(losses.actor_grads_chain_rule(actor, critic, observations).grads)


def actor_grads_jacobian(actor: keras.Model, critic: keras.Model,
                         observations: tf.Tensor) -> list[tf.Tensor]:
    """``jacobian``: explicit per-sample Jacobians contracted with dQ/da.

    For each weight tensor w, ``J = tape.jacobian(mu(s), w)`` has shape (N, A, *w.shape):
    J[i, j] = d mu_j(s_i) / d w. The gradient of -1/N sum_i Q(s_i, mu(s_i)) is

        -1/N sum_i sum_j dQ/da[i, j] * J[i, j]

    a contraction over the action axis j (a vector-Jacobian product per sample) and a sum
    over the batch axis i; never an outer product. ``tape.batch_jacobian`` does not apply:
    it needs the differentiated-with-respect-to tensor to carry the batch axis, and the
    weights do not. Memory and time grow with N * A * |theta|, which is why nobody trains
    this way; autodiff on the other three evaluates the same sum without forming J.
    """
    from ddpg_tf import losses
    from ddpg_tf._quiet import tf

    variables = actor.trainable_variables
    with tf.GradientTape() as tape:
        actions = actor(observations, training=True)
    jacobians = tape.jacobian(actions, variables)
    dq_da, _ = losses.dqda(critic, observations, actions)  # (N, A)
    n = tf.cast(tf.shape(observations)[0], dq_da.dtype)
    grads = []
    for var, jac in zip(variables, jacobians, strict=True):
        flat = tf.reshape(jac, [tf.shape(jac)[0], tf.shape(jac)[1], -1])  # (N, A, |w|)
        contracted = tf.einsum("na,nap->p", dq_da, flat)  # sum over samples n and actions a
        grads.append(-tf.reshape(contracted, var.shape) / n)
    return grads


def actor_grads_surrogate(actor: keras.Model, critic: keras.Model,
                          observations: tf.Tensor) -> list[tf.Tensor]:
    """``surrogate``: the DPG surrogate loss 0.5 ||sg(a + dQ/da) - a||^2, batch-averaged."""
    from ddpg_tf import losses

    return list(losses.actor_grads_dpg_surrogate(actor, critic, observations).grads)


WAYS: dict[str, GradientFn] = {
    "direct": actor_grads_direct,
    "chain-rule": actor_grads_chain_rule,
    "jacobian": actor_grads_jacobian,
    "surrogate": actor_grads_surrogate,
}
"""Each way by name; looked up at run time (tests replace entries to inject a wrong gradient)."""
