"""The DDPG agent: networks, targets, optimisers, noise, and the one compiled train step.

Lillicrap et al. (2015), Algorithm 1. Per gradient step, in one ``tf.function``:

1. critic: minimise 1/N sum_i (Q(s_i, a_i) - y_i)^2 with y_i = r_i + gamma (1 - terminated_i)
   Q'(s'_i, mu'(s'_i)), plus the optional L2 penalty on the critic's kernels;
2. actor: descend the deterministic policy gradient computed by the selected style
   (:mod:`ddpg_tf.losses`), using the critic just updated (as in Algorithm 1);
3. targets: Polyak averaging theta' <- tau theta + (1 - tau) theta' by variable assigns.

Options beyond the paper, all off in the DDPG presets: TD3 (Fujimoto et al. 2018: twin
critics with the min target, actor and target updates every ``policy_delay`` critic updates,
target policy smoothing), n-step returns, observation normalisation
(:mod:`ddpg_tf.normalization`) and adaptive parameter-space noise (Plappert et al. 2018).

Deviations from the paper: TD targets bootstrap through time-limit truncations (only true
termination is masked), and every checkpoint ends the episode in progress as such a
truncation (for exact resume); uniform random actions for the first ``learning_starts`` steps;
actions clipped to the bounds before ``env.step`` (and the target action too, for an
unsquashed ``linear`` actor); layer norm instead of batch norm (optional); Gaussian
exploration by default (OU available, with a ``dt``); the L2 penalty covers the critic's
kernels, not its biases; Adam with epsilon 1e-7 added to the uncorrected sqrt(v), i.e. before
bias correction, as in Keras (``adam_epsilon_placement="torch"`` adds it after, as PyTorch
does); optional gradient clipping by global norm. ``eager=True`` runs the same Python
functions without ``tf.function`` for debugging.

Random streams: every initialiser, noise process and sampler has its own seed derived from
``config.seed`` by :func:`ddpg_tf.config.stream_seed` under a fixed stream name.
"""

from __future__ import annotations

import ddpg_tf._quiet  # noqa: F401  (before keras: silences TensorFlow's start-up)

from typing import Any

import keras
import numpy as np

from ddpg_tf import losses
from ddpg_tf._quiet import tf
from ddpg_tf.compiled import compile_function
from ddpg_tf.config import Config, stream_seed
from ddpg_tf.networks import batch_split, build_actor, build_critic, copy_weights
from ddpg_tf.noise import (ActionNoise, AdaptiveParamNoise, ClippedGaussian, OrnsteinUhlenbeckNoise,
                           make_noise)
from ddpg_tf.normalization import ObservationNormalizer, normalizing_policy
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
                               seed=stream_seed(seed, "actor_init"), dtype=self.dtype, name=name,
                               final_init=config.final_init)

        def critic(name: str, stream: str = "critic_init") -> keras.Model:
            return build_critic(self.obs_dim, self.action_dim, config.critic_hidden,
                                action_layer=config.critic_action_layer, layer_norm=config.layer_norm,
                                seed=stream_seed(seed, stream), dtype=self.dtype, name=name,
                                final_init=config.final_init)

        def adam(variables: list[Any], lr: float, name: str) -> Adam:
            return Adam(variables, lr, epsilon=config.adam_epsilon, name=name,
                        epsilon_placement=config.adam_epsilon_placement)

        self.actor, self.actor_target = actor("actor"), actor("actor_target")
        self.critic, self.critic_target = critic("critic"), critic("critic_target")
        copy_weights(self.actor, self.actor_target)
        copy_weights(self.critic, self.critic_target)
        # The actor's tanh output, for the saturation diagnostics (shares the actor's layers).
        self._squash = (keras.Model(self.actor.inputs, self.actor.get_layer("squash").output)
                        if config.actor_output == "tanh" else None)

        self.actor_optimizer = adam(self.actor.trainable_variables, config.actor_lr, "actor_adam")
        self.critic_optimizer = adam(self.critic.trainable_variables, config.critic_lr, "critic_adam")
        # (critic, target, optimiser) of each critic; TD3's second one has its own initialisation.
        self.critics = [(self.critic, self.critic_target, self.critic_optimizer)]
        if config.twin_critics:
            self.critic2 = critic("critic2", "critic2_init")
            self.critic2_target = critic("critic2_target", "critic2_init")
            copy_weights(self.critic2, self.critic2_target)
            self.critic2_optimizer = adam(self.critic2.trainable_variables, config.critic_lr, "critic2_adam")
            self.critics.append((self.critic2, self.critic2_target, self.critic2_optimizer))
        # The networks as the train step calls them: on batch_chunks slices of each batch.
        k = config.batch_chunks
        self._critics_split = [batch_split(critic, k) for critic, _, _ in self.critics]
        self._actor_split, self._critic_split = batch_split(self.actor, k), self._critics_split[0]
        self._targets_split = [batch_split(target, k) for _, target, _ in self.critics]
        self._actor_target_split = batch_split(self.actor_target, k)
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="updates")
        """Train steps run so far (skipped ones included)."""
        self.nonfinite_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_updates")
        """Train steps skipped because a loss or gradient was NaN or infinite."""

        self.noise: ActionNoise = make_noise(
            config.noise, self.action_low, self.action_high, sigma=config.noise_sigma,
            seed=stream_seed(seed, "exploration_noise"), ou_theta=config.ou_theta, ou_dt=config.ou_dt,
            dtype=self.dtype, copies=config.num_envs, units=config.noise_units)
        self._low = tf.constant(self.action_low, self.dtype)
        self._high = tf.constant(self.action_high, self.dtype)
        self._half_range = tf.constant((self.action_high - self.action_low) / 2.0, self.dtype)
        self.target_smoothing = (ClippedGaussian(self.action_low, self.action_high, config.target_noise,
                                                 config.target_noise_clip,
                                                 seed=stream_seed(seed, "target_smoothing"), dtype=self.dtype,
                                                 units=config.noise_units)
                                 if config.target_noise > 0 else None)
        self.obs_norm = (ObservationNormalizer(self.obs_dim, config.obs_norm_clip, dtype=self.dtype)
                         if config.obs_norm else None)
        self.param_noise: AdaptiveParamNoise | None = None
        if config.noise == "param":
            self.param_noise = AdaptiveParamNoise(config.param_noise_init, config.noise_sigma,
                                                  config.param_noise_alpha,
                                                  seed=stream_seed(seed, "param_noise"),
                                                  dtype=self.dtype)
            self.perturbed_actor = actor("perturbed_actor")
            self.adaptive_actor = actor("adaptive_actor")  # measures the distance for adaptation
            self._perturb = self.compile(self._perturb_actor, [])
        # Metrics of the latest actor update, reported on the steps a policy delay skips it.
        if config.policy_delay > 1:
            self._last_actor = {k: tf.Variable(tf.zeros((), self.dtype), trainable=False, name=k)
                                for k in ("loss/actor", "grad/actor_norm", "grad/dqda_norm")}
            # (so with a policy delay, train_step batches must have config.batch_size rows)
            self._last_actor["hist/policy_actions"] = tf.Variable(
                tf.zeros((config.batch_size, self.action_dim), self.dtype), trainable=False,
                name="policy_actions")
        self.actor_gradients = losses.ACTOR_GRADIENT_STYLES[config.actor_update]
        self.dqda_transform = losses.make_dqda_transform(config.dqda_transform, self._low, self._high,
                                                         config.dqda_clip)
        # Actions within this distance of a bound count as "at the bound" in diagnostics.
        self._bound_tol = tf.constant(1e-3 * (self.action_high - self.action_low) / 2.0, self.dtype)

        obs = tf.TensorSpec((None, self.obs_dim), self.dtype)
        act = tf.TensorSpec((None, self.action_dim), self.dtype)
        col = tf.TensorSpec((None, 1), self.dtype)
        one = tf.TensorSpec((self.obs_dim,), self.dtype)
        batch_spec = [obs, act, col, obs, col] + ([col] if config.n_step > 1 else [])
        if config.n_step > 1:
            self._train = self.compile(self._train_step, batch_spec)
        else:  # the signature must cover every parameter: leave out bootstrap_steps
            self._train = self.compile(lambda o, a, r, o2, d: self._train_step(o, a, r, o2, d),
                                         batch_spec)
        self._diagnose = self.compile(self._diagnostics, [obs])
        # Greedy actions for one observation (evaluation, predict) and for a batch; exploring
        # actions for the batch of num_envs observations the training loop steps with.
        self._act_one_greedy = self.compile(lambda o: self.act_in_graph(o[None], False)[0], [one],
                                              stage_inputs=True)
        self._act_one_explore = self.compile(lambda o: self.act_in_graph(o[None], True)[0], [one],
                                               stage_inputs=True)
        self._act_greedy = self.compile(lambda o: self.act_in_graph(o, False), [obs])
        self._act_explore = self.compile(lambda o: self.act_in_graph(o, True), [obs])

    def compile(self, fn: Any, signature: list[tf.TensorSpec], stage_inputs: bool = False) -> Any:
        """``fn`` as a ``tf.function`` (XLA with ``jit_compile``) called through the
        low-overhead path of :mod:`ddpg_tf.compiled`; ``fn`` itself when ``eager``."""
        return compile_function(fn, signature, jit_compile=self.config.jit_compile, eager=self.config.eager,
                                stage_inputs=stage_inputs, fast_calls=self.config.fast_calls)

    # --- the compiled step -----------------------------------------------------------
    def _train_step(self, observations: tf.Tensor, actions: tf.Tensor, rewards: tf.Tensor,
                    next_observations: tf.Tensor, terminated: tf.Tensor,
                    bootstrap_steps: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        cfg = self.config
        if self.obs_norm is not None:  # networks see normalised observations, replay keeps raw ones
            observations = self.obs_norm(observations)
            next_observations = self.obs_norm(next_observations)
        # Critic. y = r + gamma (1 - terminated) Q'(s', mu'(s')); targets run in inference mode.
        target = self._td_target(rewards, next_observations, terminated, bootstrap_steps)
        critic_ok, metrics = self._update_critics(observations, actions, target)
        # Actor and targets, every policy_delay-th update (TD3); each update in plain DDPG.
        if cfg.policy_delay == 1:
            ok, actor_metrics = self._update_actor_and_targets(observations, critic_ok)
        else:
            def update() -> tf.Tensor:
                ok, values = self._update_actor_and_targets(observations, critic_ok)
                for key, var in self._last_actor.items():
                    var.assign(values[key])
                return ok

            due = (self.updates + 1) % cfg.policy_delay == 0  # TD3: after the 2nd, 4th, ... update
            ok = tf.cond(due, update, lambda: critic_ok)
            actor_metrics = {k: v.read_value() for k, v in self._last_actor.items()}
        self.updates.assign_add(1)
        self.nonfinite_updates.assign_add(tf.cast(tf.logical_not(ok), tf.int64))
        metrics.update(actor_metrics)
        return metrics

    def _td_target(self, rewards: tf.Tensor, next_observations: tf.Tensor, terminated: tf.Tensor,
                   bootstrap_steps: tf.Tensor | None) -> tf.Tensor:
        cfg = self.config
        next_actions = self._actor_target_split(next_observations, training=False)
        if self.target_smoothing is not None:  # TD3: clip(mu'(s') + clip(eps, -c, c), low, high)
            noise = self.target_smoothing.sample(tf.shape(next_actions)[0])
            next_actions = losses.smoothed_target_actions(next_actions, noise, self._low, self._high)
        elif cfg.actor_output == "linear":  # an unsquashed actor may leave the bounds; the env clips
            next_actions = tf.clip_by_value(next_actions, self._low, self._high)
        next_q = self._targets_split[0]([next_observations, next_actions], training=False)
        if cfg.twin_critics:  # TD3: bootstrap from min(Q1', Q2')
            next_q2 = self._targets_split[1]([next_observations, next_actions], training=False)
            next_q = losses.clipped_double_q(next_q, next_q2)
        if bootstrap_steps is None:
            return losses.td_target(rewards, terminated, next_q, cfg.gamma)
        return losses.n_step_td_target(rewards, terminated, next_q, cfg.gamma, bootstrap_steps)

    def _update_critics(self, observations: tf.Tensor, actions: tf.Tensor,
                        target: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """One Adam step of each critic on the TD error to ``target``; returns whether every
        loss and gradient was finite, and the metrics of the first critic."""
        cfg = self.config
        all_ok = tf.constant(True)
        metrics: dict[str, tf.Tensor] = {}
        for i, (critic, _, optimizer) in enumerate(self.critics):
            with tf.GradientTape() as tape:
                q = self._critics_split[i]([observations, actions], training=True)
                td_loss = losses.critic_loss(q, target)
                loss = td_loss
                if cfg.critic_l2 > 0:
                    kernels = [v for v in critic.trainable_variables if "kernel" in v.path]
                    loss = loss + losses.l2_penalty(kernels, cfg.critic_l2)
            variables = critic.trainable_variables
            grads, norm = losses.clip_by_global_norm(tape.gradient(loss, variables), cfg.max_grad_norm)
            # A non-finite loss or gradient must not reach the weights: its update runs with a
            # zero learning rate and tau (no tf.cond, which would cost a nested function call),
            # is counted, and the training loop stops with an error before the next checkpoint.
            ok = tf.math.is_finite(loss) & tf.math.is_finite(norm)
            optimizer.apply_gradients(_zero_if_not(ok, grads), variables, lr_scale=tf.cast(ok, self.dtype))
            all_ok = all_ok & ok
            suffix = "" if i == 0 else str(i + 1)
            metrics.update({f"loss/critic{suffix}": td_loss, f"loss/critic{suffix}_total": loss,
                            f"grad/critic{suffix}_norm": norm})
            if i == 0:
                metrics.update({"q/mean": tf.reduce_mean(q), "q/target_mean": tf.reduce_mean(target),
                                "hist/q": q})
        return all_ok, metrics

    def _update_actor_and_targets(self, observations: tf.Tensor,
                                  critic_ok: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        cfg = self.config
        # Actor. grad_theta J = 1/N sum_i dQ/da|a=mu(s_i) . dmu(s_i)/dtheta (see losses.py),
        # using the critic just updated (Q1 under TD3).
        step = self._actor_gradients(observations)
        actor_vars = self.actor.trainable_variables
        actor_grads, actor_norm = losses.clip_by_global_norm(step.grads, cfg.max_grad_norm)
        ok = critic_ok & tf.math.is_finite(step.loss) & tf.math.is_finite(actor_norm)
        self.actor_optimizer.apply_gradients(_zero_if_not(ok, actor_grads), actor_vars,
                                             lr_scale=tf.cast(ok, self.dtype))

        # Targets. theta' <- tau theta + (1 - tau) theta'  (tau = 0 after a skipped update).
        tau = tf.where(ok, tf.constant(cfg.tau, self.dtype), tf.constant(0.0, self.dtype))
        losses.soft_update(self.actor_target.weights, self.actor.weights, tau)
        for critic, critic_target, _ in self.critics:
            losses.soft_update(critic_target.weights, critic.weights, tau)
        metrics = {
            "loss/actor": step.loss,
            "grad/actor_norm": actor_norm,
            "grad/dqda_norm": tf.reduce_mean(tf.norm(step.dq_da, axis=-1)),
        }
        metrics["hist/policy_actions"] = step.actions
        return ok, metrics

    def _actor_gradients(self, observations: tf.Tensor) -> losses.ActorGradients:
        actor, critic = self._actor_split, self._critic_split
        if self.dqda_transform is None:
            return self.actor_gradients(actor, critic, observations)
        return self.actor_gradients(actor, critic, observations, self.dqda_transform)

    def _diagnostics(self, observations: tf.Tensor) -> dict[str, tf.Tensor]:
        """Compare the gradient the configured style would apply with the direct gradient on
        the same weights and batch (nothing is updated)."""
        if self.obs_norm is not None:
            observations = self.obs_norm(observations)
        applied = self._actor_gradients(observations)
        direct = losses.actor_grads_direct(self.actor, self.critic, observations)
        cosine, rel_diff = losses.flat_cosine_and_rel_diff(applied.grads, direct.grads)
        a = applied.actions  # the actor's own output: pre-noise, pre-clip
        at_bound = tf.logical_or(a >= self._high - self._bound_tol, a <= self._low + self._bound_tol)
        outside = tf.logical_or(a > self._high, a < self._low)
        diag = {
            "diag/grad_cosine": cosine,
            "diag/grad_rel_diff": rel_diff,
            "diag/actions_at_bound": tf.reduce_mean(tf.cast(at_bound, self.dtype)),
            "diag/actions_outside_bounds": tf.reduce_mean(tf.cast(outside, self.dtype)),
            "diag/policy_action_abs_max": tf.reduce_max(tf.abs(a)),
        }
        if self._squash is not None:
            # y = tanh(z) exactly ±1: d tanh/dz = 1 - y² is exactly 0 there, so that component
            # passes no gradient to the actor. The actor's tanh (networks.rounded_tanh) is ±1
            # from 13 ln 2 ≈ 9.01 in float32, as PyTorch's; this runs the same ops as training.
            flat = tf.equal(tf.abs(self._squash(observations)), 1.0)
            diag["diag/actor_zero_grad"] = tf.reduce_mean(tf.cast(flat, self.dtype))
            diag["diag/actor_states_without_grad"] = tf.reduce_mean(
                tf.cast(tf.reduce_all(flat, axis=1), self.dtype))
        return diag

    # --- graph ops: the agent's parts for code that compiles its own loop -------------------
    # The methods named *_in_graph build ops and are meant to be called inside a function
    # compiled with :meth:`compile` (the fused step below, ddpg_tf/in_graph.py): they read and
    # assign the agent's variables and return tensors, never NumPy.
    def act_in_graph(self, observations: tf.Tensor, explore: bool) -> tf.Tensor:
        """Actions for a batch of observations (one per environment copy): mu(s), plus each
        copy's exploration noise if ``explore`` (or from the perturbed actor with parameter
        noise), clipped to the bounds."""
        x = observations if self.obs_norm is None else self.obs_norm(observations)
        if explore and self.param_noise is not None:  # the perturbed copy explores; no action noise
            return tf.clip_by_value(self.perturbed_actor(x, training=False), self._low, self._high)
        actions = self.actor(x, training=False)
        if explore:
            actions = actions + self.noise.sample_n(tf.shape(actions)[0])
        return tf.clip_by_value(actions, self._low, self._high)

    def random_actions_in_graph(self, generator: tf.random.Generator, n: int) -> tf.Tensor:
        """``n`` actions drawn uniformly within the bounds from ``generator`` (the warm-up)."""
        u = generator.uniform([n, self.action_dim], dtype=self.dtype)
        return self._low + (self._high - self._low) * u

    # --- parameter-space noise (Plappert et al. 2018) ------------------------------------
    def _perturb_actor(self) -> None:
        self.param_noise.perturb(self.actor.weights, self.perturbed_actor.weights)

    def _adapt_param_noise(self) -> dict[str, tf.Tensor]:
        """Perturb a scratch copy with the current std, measure its action distance to the
        actor on a replay batch, and move the std towards the target distance."""
        noise = self.param_noise
        std = noise.std.read_value()
        noise.perturb(self.actor.weights, self.adaptive_actor.weights)
        observations = self._replay_observations(self._noise_generator)
        if self.obs_norm is not None:
            observations = self.obs_norm(observations)
        distance = losses.policy_distance(self.actor(observations, training=False),
                                          self.adaptive_actor(observations, training=False),
                                          self._half_range)
        noise.adapt(distance)
        return {"noise/param_std": std, "noise/param_distance": distance}

    # --- the training loop's calls: storing, training and acting, fused -----------------
    def bind_replay(self, buffer: ReplayBuffer) -> None:
        """Use ``buffer`` for :meth:`step` and :meth:`train_on_replay`: they store packed
        transitions into its variables and draw training batches from it in-graph."""
        self.replay = buffer
        self._diag_generator = tf.random.Generator.from_seed(stream_seed(self.config.seed, "diagnostics"))
        if self.param_noise is not None:
            self._noise_generator = tf.random.Generator.from_seed(
                stream_seed(self.config.seed, "param_noise_replay"))
            self._adapt = self.compile(self._adapt_param_noise, [])
        self._train_replay_rounds = self.compile(self.update_rounds_in_graph, [tf.TensorSpec((), tf.int64)])
        self._diagnose_replay = self.compile(self._diagnostics_on_replay, [])
        # A row count other than num_envs (n-step windows, dropped transitions) is stored by a
        # call of its own, without XLA, so the fused calls keep one shape (no compile per count).
        rows = tf.TensorSpec((None, buffer.width), buffer.storage.dtype)
        self._store_any = compile_function(self.store_in_graph, [rows], eager=self.config.eager,
                                           fast_calls=self.config.fast_calls)
        self._steps: dict[tuple[bool, bool, str | None], Any] = {}

    def step(self, rows: np.ndarray | None = None, *, train: bool = False,
             act: np.ndarray | str | None = None) -> tuple[np.ndarray | None, dict[str, tf.Tensor] | None]:
        """The training loop's per-step work in one compiled call: store ``rows`` (packed
        transitions, shape (k, width), see ``ReplayBuffer.pack``), then with ``train`` run
        ``gradient_steps`` x ``num_envs`` updates on batches replayed from the bound buffer,
        then select exploring actions from the updated actor for the observations ``act``
        (shape (num_envs, obs_dim)), or with ``act="next"`` for the next observations of the
        ``rows`` (one row per copy, in order: the usual step, where no episode ended). Returns
        (actions or None, the last update's metrics or None).

        The same numbers as separate calls for each part; one call per variant used is compiled
        on its first use. Rows of a count other than num_envs are stored by a separate call."""
        if rows is not None and len(rows) != self.config.num_envs:
            if len(rows):
                self._store_any(rows)
            rows = None
        if isinstance(act, str):
            if act != "next" or rows is None:
                raise ValueError("act='next' needs num_envs rows to take the next observations from")
            mode: str | None = "next"
        else:
            mode = None if act is None else "given"
        key = (rows is not None, train, mode)
        if key == (False, False, None):
            return None, None
        fn = self._steps.get(key)
        if fn is None:
            fn = self._steps[key] = self._compile_step(*key)
        # Only the inputs the variant takes: each input of a call costs time.
        if mode == "given":
            observations = np.asarray(act, self.dtype)
            out = fn(rows, observations) if rows is not None else fn(observations)
        else:
            out = fn(rows) if rows is not None else fn()
        if mode is None:
            return None, out if train else None
        actions, metrics = out
        return actions.numpy(), metrics if train else None

    def _compile_step(self, store: bool, train: bool, act: str | None) -> Any:
        """The fused call storing (num_envs rows), training and acting as asked."""
        n, width = self.config.num_envs, self.replay.width
        signature = ([tf.TensorSpec((n, width), self.replay.storage.dtype)] if store else []) + (
            [tf.TensorSpec((n, self.obs_dim), self.dtype)] if act == "given" else [])
        a, b = self.replay.columns["next_observations"]

        def fused(*args: tf.Tensor) -> Any:
            if store:
                self.store_in_graph(args[0])
            metrics = self.update_in_graph() if train else {}
            if act is None:
                return metrics if train else None
            observations = args[-1] if act == "given" else tf.cast(args[0][:, a:b], self.dtype)
            return self.act_in_graph(observations, True), metrics

        # The inputs have fixed shapes: passed through staging tensors (compiled.py).
        return self.compile(fused, signature, stage_inputs=True)

    def store_in_graph(self, rows: tf.Tensor) -> None:
        """Store packed transitions (``ReplayBuffer.pack_rows``) in the bound buffer; with
        observation normalisation, update its statistics with their observations."""
        self.replay.add_rows(rows)
        if self.obs_norm is not None:  # statistics follow every stored observation
            a, b = self.replay.columns["observations"]
            self.obs_norm.update(rows[:, a:b])

    def update_in_graph(self) -> dict[str, tf.Tensor]:
        """``gradient_steps`` x ``num_envs`` updates on batches drawn from the bound buffer; the
        last update's metrics."""
        metrics: dict[str, tf.Tensor] = {}
        for _ in range(self.config.gradient_steps * self.config.num_envs):
            b = self.replay.unpack(self.replay.sample_rows(self.config.batch_size))
            n_step = () if b.bootstrap_steps is None else (b.bootstrap_steps,)
            metrics = self._train_step(b.observations, b.actions, b.rewards, b.next_observations,
                                       b.terminated, *n_step)
        return metrics

    def update_rounds_in_graph(self, rounds: tf.Tensor) -> dict[str, tf.Tensor]:
        """``rounds`` (>= 1) rounds of :meth:`update_in_graph` in one call; the metrics are the
        last round's. The first ``rounds - 1`` run in a ``tf.while_loop`` whose body ends only
        after its stateful ops (automatic control dependencies), so the rounds run in order and
        draw the same batches as separate calls."""
        def body(i: tf.Tensor) -> tuple[tf.Tensor]:
            self.update_in_graph()
            return (i + 1,)

        tf.while_loop(lambda i: i < rounds - 1, body, (tf.constant(0, tf.int64),))
        return self.update_in_graph()

    def _diagnostics_on_replay(self) -> dict[str, tf.Tensor]:
        # A generator of its own, so diagnostics never shift the training batches' stream.
        return self._diagnostics(self._replay_observations(self._diag_generator))

    def _replay_observations(self, generator: tf.random.Generator) -> tf.Tensor:
        """A batch of stored observations drawn with ``generator`` (not the training batches'
        generator, so side computations never shift the training stream)."""
        idx = generator.uniform([self.config.batch_size], 0, self.replay.stored, dtype=tf.int64)
        return self.replay.unpack(tf.gather(self.replay.storage, idx)).observations

    def train_on_replay(self, rounds: int = 1) -> dict[str, tf.Tensor]:
        """``gradient_steps`` x ``num_envs`` updates on batches from the bound replay buffer,
        repeated ``rounds`` times in one compiled call: the same numbers as ``rounds`` calls
        (bit for bit without XLA; with XLA, which compiles the loop body separately, to float
        rounding), with no return to Python between them (for many updates on a fixed buffer,
        like Stable-Baselines3's ``train(gradient_steps=...)``). Returns the last round's
        metrics."""
        if isinstance(rounds, bool) or not isinstance(rounds, int | np.integer) or rounds < 1:
            raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
        if rounds == 1:
            return self.step(train=True)[1]
        return self._train_replay_rounds(np.int64(rounds))

    def adapt_param_noise(self) -> dict[str, tf.Tensor]:
        """One adaptation step of the parameter-noise std on a replay batch (``param`` noise)."""
        return self._adapt()

    def replay_diagnostics(self) -> dict[str, tf.Tensor]:
        """Live gradient diagnostics on a batch drawn from the bound replay buffer."""
        return self._diagnose_replay()

    # --- public API ------------------------------------------------------------------
    def train_step(self, batch: Batch) -> dict[str, tf.Tensor]:
        """One critic, actor and target update on ``batch``; returns metric tensors."""
        n_step = () if self.config.n_step == 1 else (batch.bootstrap_steps,)
        return self._train(batch.observations, batch.actions, batch.rewards,
                           batch.next_observations, batch.terminated, *n_step)

    def diagnostics(self, batch: Batch) -> dict[str, tf.Tensor]:
        """Live gradient diagnostics on ``batch`` (see :meth:`_diagnostics`)."""
        return self._diagnose(batch.observations)

    def act(self, observations: np.ndarray, explore: bool = True) -> np.ndarray:
        """Actions for one observation (obs_dim,) or a batch (n, obs_dim): mu(s), clipped to
        the bounds; with ``explore``, plus the exploration noise (a batch of num_envs rows for
        OU noise, one row per environment copy) or from the perturbed actor (parameter noise)."""
        obs = np.asarray(observations, dtype=self.dtype)
        n = 1 if obs.ndim == 1 else len(obs)
        if explore and isinstance(self.noise, OrnsteinUhlenbeckNoise) and n != self.config.num_envs:
            raise ValueError(f"OU noise keeps one process per environment copy: pass {self.config.num_envs} "
                             f"observations, got {n}")
        if obs.ndim == 1:
            return (self._act_one_explore if explore else self._act_one_greedy)(obs).numpy()
        return (self._act_explore if explore else self._act_greedy)(obs).numpy()

    def reset_noise(self, done: np.ndarray | None = None) -> None:
        """Called when episodes start: restarts the OU process of every copy (``done`` None)
        or of the copies where ``done`` is true; redraws the parameter-noise perturbation
        (shared by all copies, so redrawn whenever any copy starts an episode)."""
        self.noise.reset(done)
        if self.param_noise is not None:
            self._perturb()

    def policy(self) -> keras.Model:
        """The deterministic policy as one plain-Keras model from raw observations to actions
        (the actor, behind the frozen observation normaliser when ``obs_norm`` is on)."""
        if self.obs_norm is None:
            return self.actor
        return normalizing_policy(self.actor, self.obs_norm)

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
            **({"critic2": self.critic2, "critic2_target": self.critic2_target,
                "critic2_optimizer": self.critic2_optimizer} if self.config.twin_critics else {}),
            **({"target_smoothing": self.target_smoothing} if self.target_smoothing is not None else {}),
            **({"obs_norm": self.obs_norm} if self.obs_norm is not None else {}),
            **({"last_actor_metrics": self._last_actor} if self.config.policy_delay > 1 else {}),
            **({"param_noise": self.param_noise, "perturbed_actor": self.perturbed_actor}
               if self.param_noise is not None else {}),
            **({"param_noise_generator": self._noise_generator}
               if self.param_noise is not None and hasattr(self, "replay") else {}),
        }


def _zero_if_not(ok: tf.Tensor, grads: list[tf.Tensor]) -> list[tf.Tensor]:
    """``grads`` if ``ok`` else zeros (so NaNs never enter the Adam moments)."""
    # multiply_no_nan(g, 0) is 0 even where g is NaN or infinite; g * 1 is g exactly.
    keep = tf.cast(ok, grads[0].dtype)
    return [tf.math.multiply_no_nan(g, keep) for g in grads]
