"""The DDPG agent: networks, targets, optimisers, noise, and the one compiled train step.

Lillicrap et al. (2015), Algorithm 1. Per gradient step, in one ``tf.function``:

1. critic: minimise 1/N sum_i (Q(s_i, a_i) - y_i)^2 with y_i = r_i + gamma (1 - terminated_i)
   Q'(s'_i, mu'(s'_i)), plus the optional L2 penalty on the critic's kernels;
2. actor: descend the deterministic policy gradient computed by the selected style
   (:mod:`ddpg_tf.losses`), using the critic just updated (as in Algorithm 1);
3. targets: Polyak averaging theta' <- tau theta + (1 - tau) theta' by variable assigns.

Deviations from the paper: TD targets bootstrap through time-limit truncations (only true
termination is masked), and every checkpoint ends the episode in progress as such a
truncation (for exact resume); uniform random actions for the first ``learning_starts`` steps;
actions clipped to the bounds before ``env.step`` (and the target action too, for an
unsquashed ``linear`` actor); layer norm instead of batch norm (optional); Gaussian
exploration by default (OU available, with a ``dt``); the L2 penalty covers the critic's
kernels, not its biases; Adam with epsilon 1e-7 added to sqrt(v) after bias correction, as in
Keras; optional gradient clipping by global norm. ``eager=True`` runs the same Python
functions without ``tf.function`` for debugging.
"""

from __future__ import annotations

import ddpg_tf._quiet  # noqa: F401  (before keras: silences TensorFlow's start-up)

from typing import Any

import keras
import numpy as np

from ddpg_tf import losses
from ddpg_tf._quiet import tf
from ddpg_tf.config import Config
from ddpg_tf.networks import build_actor, build_critic, copy_weights
from ddpg_tf.noise import ActionNoise, make_noise
from ddpg_tf.optim import Adam
from ddpg_tf.replay_buffer import Batch, ReplayBuffer


class DDPGAgent:
    """State of a DDPG learner and its compiled ``train_step`` / ``act`` functions."""

    def __init__(self, config: Config, obs_dim: int, action_low: np.ndarray,
                 action_high: np.ndarray) -> None:
        self.config = config
        self.obs_dim = int(obs_dim)
        self.action_low = np.asarray(action_low, np.float64)
        self.action_high = np.asarray(action_high, np.float64)
        self.action_dim = int(self.action_low.shape[0])
        self.dtype = config.dtype
        seed = config.seed

        def actor(name: str) -> keras.Model:
            return build_actor(self.obs_dim, self.action_low, self.action_high, config.actor_hidden,
                               output=config.actor_output, layer_norm=config.layer_norm,
                               seed=seed, dtype=self.dtype, name=name)

        def critic(name: str) -> keras.Model:
            return build_critic(self.obs_dim, self.action_dim, config.critic_hidden,
                                action_layer=config.critic_action_layer, layer_norm=config.layer_norm,
                                seed=seed + 5000, dtype=self.dtype, name=name)

        self.actor, self.actor_target = actor("actor"), actor("actor_target")
        self.critic, self.critic_target = critic("critic"), critic("critic_target")
        copy_weights(self.actor, self.actor_target)
        copy_weights(self.critic, self.critic_target)

        self.actor_optimizer = Adam(self.actor.trainable_variables, config.actor_lr, name="actor_adam")
        self.critic_optimizer = Adam(self.critic.trainable_variables, config.critic_lr, name="critic_adam")
        self.critic_kernels = [v for v in self.critic.trainable_variables if "kernel" in v.path]
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="updates")
        """Train steps run so far (skipped ones included)."""
        self.nonfinite_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_updates")
        """Train steps skipped because a loss or gradient was NaN or infinite."""

        self.noise: ActionNoise = make_noise(
            config.noise, self.action_low, self.action_high, sigma=config.noise_sigma,
            seed=seed + 7000, ou_theta=config.ou_theta, ou_dt=config.ou_dt, dtype=self.dtype)
        self._low = tf.constant(self.action_low, self.dtype)
        self._high = tf.constant(self.action_high, self.dtype)
        self.actor_gradients = losses.ACTOR_GRADIENT_STYLES[config.actor_update]
        self.dqda_transform = losses.make_dqda_transform(config.dqda_transform, self._low, self._high,
                                                         config.dqda_clip)
        # Actions within this distance of a bound count as "at the bound" in diagnostics.
        self._bound_tol = tf.constant(1e-3 * (self.action_high - self.action_low) / 2.0, self.dtype)

        obs = tf.TensorSpec((None, self.obs_dim), self.dtype)
        act = tf.TensorSpec((None, self.action_dim), self.dtype)
        col = tf.TensorSpec((None, 1), self.dtype)
        one = tf.TensorSpec((self.obs_dim,), self.dtype)
        batch_spec = [obs, act, col, obs, col]
        self._train = self._compiled(self._train_step, batch_spec)
        self._diagnose = self._compiled(self._diagnostics, [obs])
        self._act_explore = self._compiled(lambda o: self._act(o, True), [one])
        self._act_greedy = self._compiled(lambda o: self._act(o, False), [one])

    def _compiled(self, fn: Any, signature: list[tf.TensorSpec]) -> Any:
        """``fn`` as a concrete ``tf.function`` (XLA with ``jit_compile``), traced on first use;
        ``fn`` itself when ``eager``. Calling the concrete function directly skips the
        signature matching of a ``tf.function`` call (about 0.15 ms per call on CPU)."""
        if self.config.eager:
            return lambda *args: fn(*(tf.convert_to_tensor(a) for a in args))
        compiled = tf.function(fn, input_signature=signature, jit_compile=self.config.jit_compile or None)
        concrete: list[Any] = []

        def call(*args: Any) -> Any:
            if not concrete:
                concrete.append(compiled.get_concrete_function())
            return concrete[0](*args)

        return call

    # --- the compiled step -----------------------------------------------------------
    def _train_step(self, observations: tf.Tensor, actions: tf.Tensor, rewards: tf.Tensor,
                    next_observations: tf.Tensor, terminated: tf.Tensor) -> dict[str, tf.Tensor]:
        cfg = self.config
        # Critic. y = r + gamma (1 - terminated) Q'(s', mu'(s')); targets run in inference mode.
        next_actions = self.actor_target(next_observations, training=False)
        if cfg.actor_output == "linear":  # an unsquashed actor may leave the bounds; the env clips
            next_actions = tf.clip_by_value(next_actions, self._low, self._high)
        next_q = self.critic_target([next_observations, next_actions], training=False)
        target = losses.td_target(rewards, terminated, next_q, cfg.gamma)
        with tf.GradientTape() as tape:
            q = self.critic([observations, actions], training=True)
            td_loss = losses.critic_loss(q, target)
            loss = td_loss
            if cfg.critic_l2 > 0:
                loss = loss + losses.l2_penalty(self.critic_kernels, cfg.critic_l2)
        critic_vars = self.critic.trainable_variables
        critic_grads, critic_norm = losses.clip_by_global_norm(tape.gradient(loss, critic_vars),
                                                               cfg.max_grad_norm)
        # A non-finite loss or gradient must not reach the weights: its update runs with a
        # zero learning rate and tau (no tf.cond, which would cost a nested function call),
        # is counted, and the training loop stops with an error before the next checkpoint.
        critic_ok = tf.math.is_finite(loss) & tf.math.is_finite(critic_norm)
        self.critic_optimizer.apply_gradients(_zero_if_not(critic_ok, critic_grads), critic_vars,
                                              lr_scale=tf.cast(critic_ok, self.dtype))

        # Actor. grad_theta J = 1/N sum_i dQ/da|a=mu(s_i) . dmu(s_i)/dtheta (see losses.py).
        step = self._actor_gradients(observations)
        actor_vars = self.actor.trainable_variables
        actor_grads, actor_norm = losses.clip_by_global_norm(step.grads, cfg.max_grad_norm)
        ok = critic_ok & tf.math.is_finite(step.loss) & tf.math.is_finite(actor_norm)
        self.actor_optimizer.apply_gradients(_zero_if_not(ok, actor_grads), actor_vars,
                                             lr_scale=tf.cast(ok, self.dtype))

        # Targets. theta' <- tau theta + (1 - tau) theta'  (tau = 0 after a skipped update).
        tau = tf.where(ok, tf.constant(cfg.tau, self.dtype), tf.constant(0.0, self.dtype))
        losses.soft_update(self.actor_target.weights, self.actor.weights, tau)
        losses.soft_update(self.critic_target.weights, self.critic.weights, tau)
        self.updates.assign_add(1)
        self.nonfinite_updates.assign_add(tf.cast(tf.logical_not(ok), tf.int64))
        return {
            "loss/critic": td_loss,
            "loss/critic_total": loss,
            "loss/actor": step.loss,
            "q/mean": tf.reduce_mean(q),
            "q/target_mean": tf.reduce_mean(target),
            "grad/critic_norm": critic_norm,
            "grad/actor_norm": actor_norm,
            "grad/dqda_norm": tf.reduce_mean(tf.norm(step.dq_da, axis=-1)),
            "hist/q": q,
            "hist/policy_actions": step.actions,
        }

    def _actor_gradients(self, observations: tf.Tensor) -> losses.ActorGradients:
        if self.dqda_transform is None:
            return self.actor_gradients(self.actor, self.critic, observations)
        return self.actor_gradients(self.actor, self.critic, observations, self.dqda_transform)

    def _diagnostics(self, observations: tf.Tensor) -> dict[str, tf.Tensor]:
        """Compare the gradient the configured style would apply with the direct gradient on
        the same weights and batch (nothing is updated)."""
        applied = self._actor_gradients(observations)
        direct = losses.actor_grads_direct(self.actor, self.critic, observations)
        cosine, rel_diff = losses.flat_cosine_and_rel_diff(applied.grads, direct.grads)
        a = applied.actions  # the actor's own output: pre-noise, pre-clip
        at_bound = tf.logical_or(a >= self._high - self._bound_tol, a <= self._low + self._bound_tol)
        outside = tf.logical_or(a > self._high, a < self._low)
        return {
            "diag/grad_cosine": cosine,
            "diag/grad_rel_diff": rel_diff,
            "diag/actions_at_bound": tf.reduce_mean(tf.cast(at_bound, self.dtype)),
            "diag/actions_outside_bounds": tf.reduce_mean(tf.cast(outside, self.dtype)),
            "diag/policy_action_abs_max": tf.reduce_max(tf.abs(a)),
        }

    def _act(self, observation: tf.Tensor, explore: bool) -> tf.Tensor:
        action = self.actor(observation[None], training=False)[0]
        if explore:
            action = action + self.noise.sample()
        return tf.clip_by_value(action, self._low, self._high)

    # --- steps fused with replay storage (one compiled call per environment step) -------
    def bind_replay(self, buffer: ReplayBuffer) -> None:
        """Compile the per-step calls of the training loop against ``buffer``'s variables:
        ``store``, ``store_and_train`` and ``store_train_and_act`` each take the newest packed
        transition (one host-to-tensor copy per step) and do the rest in-graph."""
        self.replay = buffer
        self._diag_generator = tf.random.Generator.from_seed(self.config.seed + 9000)
        row = [tf.TensorSpec((buffer.width,), buffer.storage.dtype)]
        self._store = self._compiled(buffer.add_row, row)
        self._train_replay = self._compiled(self._replay_updates, [])
        self._store_train = self._compiled(self._store_and_train, row)
        self._store_train_act = self._compiled(self._store_train_and_act, row)
        self._diagnose_replay = self._compiled(self._diagnostics_on_replay, [])

    def _replay_updates(self) -> dict[str, tf.Tensor]:
        metrics: dict[str, tf.Tensor] = {}
        for _ in range(self.config.gradient_steps):
            b = self.replay.unpack(self.replay.sample_rows(self.config.batch_size))
            metrics = self._train_step(b.observations, b.actions, b.rewards, b.next_observations,
                                       b.terminated)
        return metrics

    def _store_and_train(self, row: tf.Tensor) -> dict[str, tf.Tensor]:
        self.replay.add_row(row)
        return self._replay_updates()

    def _store_train_and_act(self, row: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        self.replay.add_row(row)
        metrics = self._replay_updates()
        a, b = self.replay.columns["next_observations"]
        return self._act(row[a:b], True), metrics

    def _diagnostics_on_replay(self) -> dict[str, tf.Tensor]:
        # A generator of its own, so diagnostics never shift the training batches' stream.
        size = self.replay._size
        idx = self._diag_generator.uniform([self.config.batch_size], 0, size, dtype=tf.int64)
        rows = tf.gather(self.replay.storage, idx)
        return self._diagnostics(self.replay.unpack(rows).observations)

    def store(self, row: np.ndarray) -> None:
        """Append a packed transition (``ReplayBuffer.pack``) without training."""
        self._store(row)

    def train_on_replay(self) -> dict[str, tf.Tensor]:
        """``gradient_steps`` updates on batches from the bound replay buffer."""
        return self._train_replay()

    def store_and_train(self, row: np.ndarray) -> dict[str, tf.Tensor]:
        """Append a packed transition, then ``gradient_steps`` updates on replayed batches."""
        return self._store_train(row)

    def store_train_and_act(self, row: np.ndarray) -> tuple[np.ndarray, dict[str, tf.Tensor]]:
        """:meth:`store_and_train`, then the exploring action for the row's next observation
        from the updated actor: the per-step work of training in one compiled call."""
        action, metrics = self._store_train_act(row)
        return action.numpy(), metrics

    def replay_diagnostics(self) -> dict[str, tf.Tensor]:
        """Live gradient diagnostics on a batch drawn from the bound replay buffer."""
        return self._diagnose_replay()

    # --- public API ------------------------------------------------------------------
    def train_step(self, batch: Batch) -> dict[str, tf.Tensor]:
        """One critic, actor and target update on ``batch``; returns metric tensors."""
        return self._train(batch.observations, batch.actions, batch.rewards,
                           batch.next_observations, batch.terminated)

    def diagnostics(self, batch: Batch) -> dict[str, tf.Tensor]:
        """Live gradient diagnostics on ``batch`` (see :meth:`_diagnostics`)."""
        return self._diagnose(batch.observations)

    def act(self, observation: np.ndarray, explore: bool = True) -> np.ndarray:
        """Action for one observation: mu(s) (+ noise if ``explore``), clipped to the bounds."""
        obs = np.asarray(observation, dtype=self.dtype)
        fn = self._act_explore if explore else self._act_greedy
        return fn(obs).numpy()

    def reset_noise(self) -> None:
        self.noise.reset()

    def trackables(self) -> dict[str, Any]:
        """Everything of the agent a checkpoint must hold."""
        return {
            "actor": self.actor, "critic": self.critic,
            "actor_target": self.actor_target, "critic_target": self.critic_target,
            "actor_optimizer": self.actor_optimizer, "critic_optimizer": self.critic_optimizer,
            "noise": self.noise, "updates": self.updates,
            # The replay buffer itself (rows, position, sampling RNG) is saved beside the
            # checkpoint, compressed; see ReplayBuffer.save.
            **({"diag_generator": self._diag_generator} if hasattr(self, "replay") else {}),
        }


def _zero_if_not(ok: tf.Tensor, grads: list[tf.Tensor]) -> list[tf.Tensor]:
    """``grads`` if ``ok`` else zeros (so NaNs never enter the Adam moments)."""
    return [tf.where(ok, g, tf.zeros_like(g)) for g in grads]
