"""The whole training loop in one graph, for environments written in TensorFlow.

For Pendulum-v1 and MountainCarContinuous-v0 (:mod:`ddpg_tf.tf_envs`, the dynamics of
gymnasium 1.4), :class:`InGraphLearner` runs every step between two of the loop's stops (a log,
evaluation, diagnostics or checkpoint step, or the end of ``learn``) in one compiled call: a
``tf.while_loop`` whose body is one iteration of :class:`ddpg_tf.loop.Learner`'s loop,

    a_t = uniform in the action bounds             while step < learning_starts
        = clip(mu(s_t) + noise, bounds)            after (the agent's exploring action)
    s_t+1, r_t, terminated, truncated = env.step(s_t, a_t)     (same-step autoreset)
    store (s_t, a_t, r_t, s_t+1, terminated, truncated)         (s_t+1: the true successor)
    num_envs x gradient_steps updates on replayed batches       once updates are due
        (with the episode-end schedule: gradient_steps x the episode's length, after it ends)
    restart the exploration noise of the copies whose episode ended,

returning to Python only for what the callbacks do at those stops (PureJaxRL/gymnax do this
for JAX). Same algorithm as the Python loop, same update rule, same counters and the same
conditions for when updates start; the environment's resets and the warm-up's random actions
come from TensorFlow generators instead of gymnasium's NumPy ones, so a seed gives other
episodes than ``--no-in-graph`` does.

Exact resume: the environment state, the episodes in progress and every generator are
variables of the checkpoint, so a checkpoint cuts no episode (unlike the Python loop's resume
rule) and a run resumed from it continues bit for bit; so does a run cut into other chunks
(tests/test_in_graph.py). Both update schedules run in-graph (with ``episode-end``, the
updates after an episode are a ``tf.while_loop`` of its length). Needs gaussian, ou or no
action noise and ``n_step`` 1 (:func:`unsupported`); the environment must be given by its id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ddpg_tf._quiet import tf
from ddpg_tf.callbacks import StepInfo, reached
from ddpg_tf.config import Config, stream_seed
from ddpg_tf.envs import EnvBatch
from ddpg_tf.loop import Learner, updates_due
from ddpg_tf.tf_envs import MOUNTAIN_CAR_ID, PENDULUM_ID, mountain_car, pendulum

ENV_MODULES: dict[str, Any] = {
    "Pendulum-v1": pendulum, PENDULUM_ID: pendulum,
    "MountainCarContinuous-v0": mountain_car, MOUNTAIN_CAR_ID: mountain_car,
}
"""Environment ids the in-graph loop runs, and the module of pure functions it uses."""

MAX_ITERATIONS = 1000
"""Most loop iterations per compiled call (the episode record is sized for them); a stop
further away takes several calls (numbers unchanged)."""


def unsupported(config: Config, env: Any) -> str | None:
    """Why ``config`` on ``env`` (an id or an environment object) cannot train in-graph, or None."""
    if not isinstance(env, str):
        return "the environment is an object, not an id"
    if env not in ENV_MODULES:
        return f"{env} has no TensorFlow version (those that have: Pendulum-v1, MountainCarContinuous-v0)"
    if config.noise == "param":
        return "parameter noise perturbs the actor between episodes in Python"
    if config.n_step != 1:
        return "n-step returns are assembled in Python"
    return None


class InGraphState(tf.Module):
    """What the in-graph loop carries between calls, all in variables the checkpoint holds:
    the environment copies' state and observations, the episodes in progress, the step
    counter and the generators of resets and warm-up actions."""

    def __init__(self, module: Any, n: int, action_dim: int, seed: int) -> None:
        super().__init__(name="in_graph")
        self.module = module
        state, obs = module.reset(tf.constant([0, 0], tf.int64), n)  # shapes and dtypes only
        self.state_type = type(state)
        self.env_state = [tf.Variable(tf.zeros_like(s), trainable=False, name=f"env_{name}")
                          for s, name in zip(state, state._fields, strict=True)]
        self.observations = tf.Variable(tf.zeros_like(obs), trainable=False, name="observations")
        self.returns = tf.Variable(tf.zeros([n], tf.float64), trainable=False, name="returns")
        self.lengths = tf.Variable(tf.zeros([n], tf.int64), trainable=False, name="lengths")
        self.started = tf.Variable(False, trainable=False, name="started")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.reset_generator = tf.random.Generator.from_seed(stream_seed(seed, "train_env"))
        self.action_generator = tf.random.Generator.from_seed(stream_seed(seed, "action_space"))
        # Not state: what one call reports (ended episodes, the last actions).
        self.ended = tf.Variable(tf.zeros([MAX_ITERATIONS * n, 2], tf.float64), trainable=False,
                                 name="ended_episodes")
        self.ended_count = tf.Variable(0, dtype=tf.int64, trainable=False, name="ended_count")
        self.last_actions = tf.Variable(tf.zeros([n, action_dim], tf.float32), trainable=False,
                                        name="last_actions")

    def checkpointed(self) -> dict[str, Any]:
        """The variables a checkpoint must hold (the per-call report is left out)."""
        return {"env_state": self.env_state, "observations": self.observations,
                "returns": self.returns, "lengths": self.lengths, "started": self.started,
                "step": self.step, "reset_generator": self.reset_generator,
                "action_generator": self.action_generator}

    def start(self) -> None:
        """Reset every copy (eagerly, once per run: a restored run has started)."""
        state, obs = self.module.reset(self.reset_generator, int(self.observations.shape[0]))
        for var, value in zip(self.env_state, state, strict=True):
            var.assign(value)
        self.observations.assign(obs)
        self.started.assign(True)

    def read_env_state(self) -> Any:
        """The copies' state as the environment module's NamedTuple."""
        return self.state_type(*(v.read_value() for v in self.env_state))


class InGraphLearner(Learner):
    """:class:`Learner` whose :meth:`iterate` runs up to the next stop in one compiled call."""

    def __init__(self, config: Config, envs: EnvBatch, eval_env: gym.Env,
                 run_dir: Path | None = None) -> None:
        self.action_dim = int(envs.action_space.shape[-1])
        self.graph = InGraphState(ENV_MODULES[config.env_id], envs.num_envs, self.action_dim, config.seed)
        super().__init__(config, envs, eval_env, run_dir)
        self.reset_seed = None  # the environment copies are reset from the in-graph generator
        # The update's metrics as zeros, for the iterations before learning starts.
        spec = tf.function(self.agent.update_in_graph).get_concrete_function().structured_outputs
        self._no_metrics = {k: tf.zeros(v.shape, v.dtype) for k, v in spec.items()}
        self._run = self.agent.compile(self._iterations, [tf.TensorSpec((), tf.int64)])

    def trackables(self) -> dict[str, Any]:
        return {**super().trackables(), "in_graph": self.graph.checkpointed()}

    # --- the compiled loop ----------------------------------------------------------------
    def _iterations(self, k: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """``k`` iterations; returns whether any updated and the last update's metrics."""
        self.graph.ended_count.assign(0)

        def body(i: tf.Tensor, trained: tf.Tensor, metrics: dict[str, tf.Tensor]) -> tuple:
            did, metrics = self._iteration(metrics)
            return i + 1, trained | did, metrics

        _, trained, metrics = tf.while_loop(lambda i, *_: i < k, body,
                                            (tf.constant(0, tf.int64), tf.constant(False), self._no_metrics))
        return trained, metrics

    def _iteration(self, metrics: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        cfg, agent, g, replay = self.config, self.agent, self.graph, self.agent.replay
        n = self.n
        obs = g.observations.read_value()
        # Act: uniform random actions during the warm-up, then mu(s) + noise, clipped.
        actions = tf.cond(g.step < cfg.learning_starts,
                          lambda: agent.random_actions_in_graph(g.action_generator, n),
                          lambda: agent.act_in_graph(tf.cast(obs, agent.dtype), True))
        state, next_obs, reward, terminated, truncated, final_obs = g.module.step_autoreset(
            g.read_env_state(), tf.cast(actions, tf.float32), g.reset_generator)
        # Store (s, a, r, s' = the true successor, terminated, truncated).
        agent.store_in_graph(replay.pack_rows(obs, actions, reward, final_obs, terminated, truncated))
        step = g.step.assign_add(n)
        due = updates_due(cfg, step, replay.stored)
        returns = g.returns + tf.cast(reward, tf.float64)
        lengths = g.lengths + 1
        done = terminated | truncated
        if cfg.update_schedule == "every-step":
            metrics = tf.cond(due, agent.update_in_graph, lambda: metrics)
        else:  # TD3 authors' schedule (one copy): after an episode, as many updates as it had steps
            due = due & done[0]
            metrics = tf.cond(due, lambda: agent.update_rounds_in_graph(lengths[0]), lambda: metrics)
        slots = g.ended_count + tf.cumsum(tf.cast(done, tf.int64)) - 1
        ended = tf.stack([returns, tf.cast(lengths, tf.float64)], axis=1)
        g.ended.scatter_nd_update(tf.boolean_mask(slots, done)[:, None], tf.boolean_mask(ended, done))
        g.ended_count.assign_add(tf.reduce_sum(tf.cast(done, tf.int64)))
        g.returns.assign(tf.where(done, tf.zeros_like(returns), returns))
        g.lengths.assign(tf.where(done, tf.zeros_like(lengths), lengths))
        agent.noise.reset_where(done)
        for var, value in zip(g.env_state, state, strict=True):
            var.assign(value)
        g.observations.assign(next_obs)
        g.last_actions.assign(tf.cast(actions, tf.float32))
        return due, metrics

    # --- the loop's iteration, as Learner.iterate ----------------------------------------------
    def iterate(self) -> StepInfo:
        """Run to the next stop (log, evaluation, diagnostics, checkpoint, end of ``learn``, or
        MAX_ITERATIONS iterations), then the callbacks, as one iteration of the usual loop."""
        cfg, n, info = self.config, self.n, self.info
        info.episodes, info.scalars = [], {}
        if not bool(self.graph.started.numpy()):
            self.graph.start()
        stops = [self.target_step] + [_next_multiple(self.step, every)
                                      for every in (cfg.log_every, cfg.eval_every, cfg.checkpoint_every,
                                                    cfg.diag_every) if every > 0]
        k = max(1, min(min(stops) - self.step, MAX_ITERATIONS * n) // n)
        trained, metrics = self._run(np.int64(k))
        if bool(trained):
            self.metrics = metrics
        count = int(self.graph.ended_count.numpy())
        for ret, length in self.graph.ended.numpy()[:count]:
            self.episode += 1
            self.episode_returns.append(float(ret))
            info.episodes.append((float(ret), int(length)))
        self.step += k * n
        self.stored += k * n
        info.new_steps = k * n
        if reached(self.step, k * n, cfg.log_every):
            self.check_updates_finite()
        final = self.step >= self.target_step
        info.step, info.final = self.step, final
        info.metrics, info.actions = self.metrics, self.graph.last_actions.numpy()
        if self.callbacks.on_step(self.model, info) is False:
            self.stop = True
        return info

    # --- state ------------------------------------------------------------------------------
    def end_episodes(self) -> None:
        """Nothing to end: the episodes in progress are part of the checkpoint."""


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every
