"""DDPG's losses and the two actor-update styles, as small pure functions of tensors.

Notation (Lillicrap et al. 2015, Algorithm 1): actor mu(s|theta), critic Q(s, a|w), targets
mu', Q', a batch of N transitions (s_i, a_i, r_i, s'_i, terminated_i).

The deterministic policy gradient (Silver et al. 2014) is

    grad_theta J = 1/N sum_i  grad_a Q(s_i, a)|_{a = mu(s_i)}  .  grad_theta mu(s_i)

where the "." is a vector-Jacobian product: the row vector dQ/da (1 x action_dim) times the
Jacobian d mu / d theta (action_dim x |theta|), which reverse-mode autodiff evaluates by
back-propagating dQ/da through the actor. Nothing of shape action_dim x |theta| is formed.

The styles below compute the same gradient and differ only in where dQ/da exists:

* :func:`actor_grads_direct` differentiates ``-mean_i Q(s_i, mu(s_i))`` w.r.t. theta on one
  tape; dQ/da is an intermediate of back-propagation (OpenAI Baselines, SB3, CleanRL).
* :func:`actor_grads_chain_rule` first materialises dQ/da, then back-propagates
  ``-dQ/da / N`` through mu with ``output_gradients`` (tutorial style). Because dQ/da is a
  tensor here, it can be transformed before it reaches the actor.
* :func:`actor_grads_dpg_surrogate` also materialises dQ/da, then differentiates the
  surrogate ``1/N sum_i 0.5 ||sg(a_i + dQ/da_i) - a_i||^2`` (TF-Agents, Acme, rlax), whose
  gradient w.r.t. a_i is -dQ/da_i / N.
"""

from __future__ import annotations

import ddpg_tf._quiet  # noqa: F401  (before keras: silences TensorFlow's start-up)

from collections.abc import Callable, Sequence
from typing import NamedTuple

import keras

from ddpg_tf._quiet import tf

DqdaTransform = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
"""``transform(dq_da, actions) -> dq_da'``, applied by styles that materialise dQ/da."""


class ActorGradients(NamedTuple):
    """What an actor-update style returns."""

    grads: list[tf.Tensor]
    """Gradient of the actor loss w.r.t. ``actor.trainable_variables`` (descend on it)."""
    loss: tf.Tensor
    """Scalar actor loss -mean_i Q(s_i, mu(s_i))."""
    q: tf.Tensor
    """Q(s_i, mu(s_i)), shape (N, 1)."""
    dq_da: tf.Tensor
    """dQ(s_i, a)/da at a = mu(s_i), shape (N, action_dim), before any transform."""
    actions: tf.Tensor
    """mu(s_i), shape (N, action_dim)."""


def td_target(rewards: tf.Tensor, terminated: tf.Tensor, next_q: tf.Tensor,
              gamma: float | tf.Tensor) -> tf.Tensor:
    """y_i = r_i + gamma (1 - terminated_i) Q'(s'_i, mu'(s'_i)).

    Only true termination stops bootstrapping; a time-limit truncation keeps the
    bootstrap term, since s'_i there is a real state the episode was cut off in.
    All arguments have shape (N, 1).
    """
    return rewards + gamma * (1.0 - terminated) * next_q


def n_step_td_target(rewards: tf.Tensor, terminated: tf.Tensor, next_q: tf.Tensor,
                     gamma: float | tf.Tensor, steps: tf.Tensor) -> tf.Tensor:
    """y_i = R_i + gamma^m_i (1 - terminated_i) Q'(s_{i+m_i}, mu'(s_{i+m_i})) for n-step returns.

    ``rewards`` holds R_i = sum_{k<m_i} gamma^k r_{i+k}, ``steps`` the number m_i <= n of
    rewards in it (fewer than n when the episode ended first), ``next_q`` the target value
    at the state m_i steps on. A termination inside the window removes the bootstrap term; a
    truncation keeps it, discounted by the steps actually taken. With m_i = 1 this is
    :func:`td_target`. All arguments have shape (N, 1).
    """
    # (a Python gamma becomes a constant of the rewards' dtype directly: tf.cast would round
    # it through float32 first)
    gamma = tf.cast(gamma, rewards.dtype) if tf.is_tensor(gamma) else tf.constant(gamma, rewards.dtype)
    return rewards + tf.pow(gamma, steps) * (1.0 - terminated) * next_q


def clipped_double_q(next_q1: tf.Tensor, next_q2: tf.Tensor) -> tf.Tensor:
    """TD3's clipped double Q-learning target value min(Q1', Q2') (Fujimoto et al. 2018, eq. 10):
    the smaller of two independently trained estimates counters the overestimation that
    maximising one critic builds up."""
    return tf.minimum(next_q1, next_q2)


def smoothed_target_actions(next_actions: tf.Tensor, noise: tf.Tensor, low: tf.Tensor,
                            high: tf.Tensor) -> tf.Tensor:
    """TD3's target policy smoothing: clip(mu'(s') + clip(eps, -c, c), low, high); ``noise`` is
    the already clipped eps, so Q' is averaged over a small neighbourhood of mu'(s')."""
    return tf.clip_by_value(next_actions + noise, low, high)


def policy_distance(actions: tf.Tensor, perturbed_actions: tf.Tensor, half_range: tf.Tensor) -> tf.Tensor:
    """Plappert et al. (2018)'s distance for DDPG, in units of the half action range:
    sqrt(mean over samples and components of ((mu(s) - mu~(s)) / half_range)^2)."""
    return tf.sqrt(tf.reduce_mean(tf.square((actions - perturbed_actions) / half_range)))


def critic_loss(q: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean squared TD error 1/N sum_i (Q(s_i, a_i) - y_i)^2; ``target`` is not differentiated."""
    return tf.reduce_mean(tf.square(q - tf.stop_gradient(target)))


def l2_penalty(kernels: Sequence[tf.Variable], coef: float) -> tf.Tensor:
    """0.5 * coef * sum_W ||W||^2 (the paper's critic weight decay with coef = 1e-2)."""
    return coef * tf.add_n([tf.nn.l2_loss(k) for k in kernels])


def actor_loss_direct(q: tf.Tensor) -> tf.Tensor:
    """J's negation for gradient descent: -1/N sum_i Q(s_i, mu(s_i))."""
    return -tf.reduce_mean(q)


def dqda(critic: keras.Model, observations: tf.Tensor, actions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """dQ(s_i, a)/da at the given actions, shape (N, action_dim), and Q itself (N, 1).

    Each sample's Q depends only on its own action, so the gradient of sum_i Q_i w.r.t. the
    (N, action_dim) action tensor is exactly the stack of per-sample gradients.
    """
    with tf.GradientTape() as tape:
        tape.watch(actions)
        q = critic([observations, actions], training=False)
    return tape.gradient(q, actions), q


def actor_grads_direct(actor: keras.Model, critic: keras.Model,
                       observations: tf.Tensor) -> ActorGradients:
    """Direct style: one tape over -mean Q(s, mu(s)), differentiated w.r.t. theta."""
    with tf.GradientTape() as tape:
        actions = actor(observations, training=True)
        q = critic([observations, actions], training=False)
        loss = actor_loss_direct(q)
    # The same backward pass also yields d loss/d a = -dQ/da / N; we read it for logging only.
    grads, dloss_da = tape.gradient(loss, (actor.trainable_variables, actions))
    n = tf.cast(tf.shape(observations)[0], dloss_da.dtype)
    return ActorGradients(grads, loss, q, -dloss_da * n, actions)


def actor_grads_chain_rule(actor: keras.Model, critic: keras.Model, observations: tf.Tensor,
                           transform: DqdaTransform | None = None) -> ActorGradients:
    """Chain-rule style: dQ/da first, then the vector-Jacobian product through mu.

    grad_theta J = sum_i (-dQ/da_i / N) . d mu(s_i)/d theta, which is what
    ``tape.gradient(mu(s), theta, output_gradients=-dQ/da / N)`` evaluates. dQ/da is
    divided by N exactly once, here; the result equals :func:`actor_grads_direct`.
    """
    with tf.GradientTape() as tape:
        actions = actor(observations, training=True)
    dq_da, q = dqda(critic, observations, actions)
    applied = dq_da if transform is None else transform(dq_da, actions)
    n = tf.cast(tf.shape(observations)[0], dq_da.dtype)
    grads = tape.gradient(actions, actor.trainable_variables, output_gradients=-applied / n)
    return ActorGradients(grads, actor_loss_direct(q), q, dq_da, actions)


def dpg_surrogate_loss(actions: tf.Tensor, dq_da: tf.Tensor) -> tf.Tensor:
    """The DPG surrogate (TF-Agents, Acme, rlax): 1/N sum_i 0.5 ||sg(a_i + dQ/da_i) - a_i||^2.

    Its value is 0.5 mean_i ||dQ/da_i||^2, unrelated to Q, but its gradient w.r.t. a_i is
    -(sg(a_i + dQ/da_i) - a_i) / N = -dQ/da_i / N: exactly the chain-rule output gradient, so
    back-propagating it through mu gives the DPG. ``dq_da`` must not depend on theta
    (it comes from a separate tape, and is stopped here as well).

    Numerics: we evaluate sg(a + g) - a as g - (a - sg(a)), the same function of a (both
    are g at a = sg(a), with derivative -1), but without rounding a + g. In float32 the
    textbook form loses about eps * |a| / |g| of relative precision (1e-4 when |a| ~ 1 and
    |dQ/da| ~ 1e-3); this form reproduces the chain-rule gradient to float rounding.
    """
    g = tf.stop_gradient(dq_da)
    residual = g - (actions - tf.stop_gradient(actions))  # == sg(a + g) - a, exactly g in value
    return tf.reduce_mean(0.5 * tf.reduce_sum(tf.square(residual), axis=-1))


def actor_grads_dpg_surrogate(actor: keras.Model, critic: keras.Model, observations: tf.Tensor,
                              transform: DqdaTransform | None = None) -> ActorGradients:
    """Surrogate style: dQ/da first, then an ordinary loss whose gradient w.r.t. a is -dQ/da / N."""
    with tf.GradientTape() as tape:
        actions = actor(observations, training=True)
        with tape.stop_recording():  # dQ/da is a constant of the surrogate: no path to theta
            dq_da, q = dqda(critic, observations, actions)
            applied = dq_da if transform is None else transform(dq_da, actions)
        surrogate = dpg_surrogate_loss(actions, applied)
    grads = tape.gradient(surrogate, actor.trainable_variables)
    return ActorGradients(grads, actor_loss_direct(q), q, dq_da, actions)


# --- dQ/da transforms (only for styles that materialise dQ/da) ---------------------------
def invert_gradients(dq_da: tf.Tensor, actions: tf.Tensor, low: tf.Tensor, high: tf.Tensor) -> tf.Tensor:
    """Hausknecht & Stone (2016), inverting gradients, per action component:

        dQ/da * (high - a) / (high - low)   if dQ/da > 0  (the update would increase a)
        dQ/da * (a - low)  / (high - low)   otherwise     (it would decrease a)

    The push shrinks to zero at a bound and reverses once an (unsquashed) action is beyond it.
    """
    width = high - low
    return tf.where(dq_da > 0, dq_da * (high - actions) / width, dq_da * (actions - low) / width)


def clip_dqda_value(dq_da: tf.Tensor, clip: float) -> tf.Tensor:
    """Element-wise clip of dQ/da to [-clip, clip]."""
    return tf.clip_by_value(dq_da, -clip, clip)


def clip_dqda_norm(dq_da: tf.Tensor, clip: float) -> tf.Tensor:
    """Rescale each sample's dQ/da to L2 norm at most ``clip``."""
    return tf.clip_by_norm(dq_da, clip, axes=[-1])


def make_dqda_transform(name: str, low: tf.Tensor, high: tf.Tensor,
                        clip: float = 1.0) -> DqdaTransform | None:
    """The transform named by ``--dqda-transform`` as ``f(dq_da, actions)``; None for ``none``."""
    if name == "none":
        return None
    if name == "invert":
        return lambda g, a: invert_gradients(g, a, tf.cast(low, g.dtype), tf.cast(high, g.dtype))
    if name == "clip-value":
        return lambda g, a: clip_dqda_value(g, clip)
    if name == "clip-norm":
        return lambda g, a: clip_dqda_norm(g, clip)
    raise ValueError(f"unknown dQ/da transform {name!r}")


ACTOR_GRADIENT_STYLES: dict[str, Callable[..., ActorGradients]] = {
    "direct": actor_grads_direct,
    "chain-rule": actor_grads_chain_rule,
    "dpg-surrogate": actor_grads_dpg_surrogate,
}
"""Every actor-update style by its ``--actor-update`` name."""



def flat_cosine_and_rel_diff(grads: Sequence[tf.Tensor],
                             reference: Sequence[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """Cosine similarity and relative difference ||g - r|| / ||r|| of two gradient lists,
    each flattened into one vector."""
    g = tf.concat([tf.reshape(x, [-1]) for x in grads], 0)
    r = tf.concat([tf.reshape(x, [-1]) for x in reference], 0)
    tiny = tf.constant(1e-30, g.dtype)
    cosine = tf.reduce_sum(g * r) / tf.maximum(tf.norm(g) * tf.norm(r), tiny)
    return cosine, tf.norm(g - r) / tf.maximum(tf.norm(r), tiny)


def soft_update(target_variables: Sequence[tf.Variable], online_variables: Sequence[tf.Variable],
                tau: float | tf.Tensor) -> None:
    """Polyak averaging, in place: theta' <- tau theta + (1 - tau) theta'."""
    keep = 1.0 - tau
    for target, online in zip(target_variables, online_variables, strict=True):
        target.assign(tau * online + keep * target)


def clip_by_global_norm(grads: Sequence[tf.Tensor], max_norm: float) -> tuple[list[tf.Tensor], tf.Tensor]:
    """Return grads rescaled to global norm at most ``max_norm`` (0 = unchanged) and the norm
    before clipping."""
    norm = tf.linalg.global_norm(list(grads))
    if max_norm > 0:
        clipped, _ = tf.clip_by_global_norm(list(grads), max_norm, use_norm=norm)
        return clipped, norm
    return list(grads), norm
