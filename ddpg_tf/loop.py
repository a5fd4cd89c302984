"""The training loop: plain Python around the agent's one compiled call per iteration.

One loop for one environment and for N copies (``num_envs``): each iteration steps every
copy, stores the transitions it completed, and runs ``num_envs`` x ``gradient_steps`` updates
and the selection of the next actions in one compiled call (:meth:`DDPGAgent.step`). A copy
whose episode ends is reset within the same iteration (same-step autoreset), its exploration
noise restarted, and the loop goes on. Logging, evaluation, checkpoints and the progress bar
are callbacks (:mod:`ddpg_tf.callbacks`) called after each iteration.

Step counters count transitions of all copies: an evaluation, log or checkpoint falls on the
iteration that reaches a multiple of its interval and is recorded at that iteration's step.
Seeds: the training environments' first reset gets ``stream_seed(seed, "train_env")`` (copy i:
that plus i, Gymnasium's vector convention), the action space ``stream_seed(seed,
"action_space")``, the evaluation environment ``stream_seed(seed, "eval_env")`` and the replay
sampler ``stream_seed(seed, "replay")`` (:func:`ddpg_tf.config.stream_seed`).

When updates run: with ``update_schedule="every-step"`` the fused call of each iteration runs
them once ``learning_starts`` steps have passed and the buffer holds a batch (with
``train_during_warmup``: from the first stored transition on); with ``"episode-end"`` each
finished episode is followed by gradient_steps x its length updates in one call (the TD3
authors' schedule; a checkpoint's cut is not an episode end and runs none).

Resume rule: every checkpoint ends the episodes in progress as time-limit truncations (their
last transitions keep bootstrapping), so a resumed run, which starts with a reset, follows the
uninterrupted one exactly. The actions the fused call selected at a checkpoint are dropped.

Non-finite data: by default an observation or reward that is NaN/Inf stops training with a
:class:`TrainingError`; with ``skip_nonfinite`` the transition is dropped, the copy's n-step
window is cut there (as a truncation) and, if the observation was bad, that copy restarts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ddpg_tf.agent import DDPGAgent
from ddpg_tf.callbacks import CallbackList, StepInfo, reached
from ddpg_tf.checkpointing import Checkpointer
from ddpg_tf.config import Config, stream_seed
from ddpg_tf.envs import EnvBatch, rng_state, set_rng_state, space_dims
from ddpg_tf.errors import TrainingError
from ddpg_tf.replay_buffer import NStepWindow, ReplayBuffer
from ddpg_tf.rundir import append_evaluation, evaluate_policy
from ddpg_tf.runtime import seed_everything


class Learner:
    """A training run in progress: the agent, its replay buffer, the environments, the loop's
    counters and the episodes in progress, advanced by :meth:`iterate`."""

    def __init__(self, config: Config, envs: EnvBatch, eval_env: gym.Env,
                 run_dir: Path | None = None) -> None:
        self.config, self.envs, self.eval_env, self.run_dir = config, envs, eval_env, run_dir
        seed_everything(config)
        obs_dim, low, high = space_dims(envs)
        self.agent = DDPGAgent(config, obs_dim, low, high)
        self.buffer = ReplayBuffer(config.buffer_size, obs_dim, len(low),
                                   seed=stream_seed(config.seed, "replay"), dtype=config.dtype,
                                   n_step=config.n_step)
        self.agent.bind_replay(self.buffer)
        self.checkpointer = (Checkpointer(run_dir, self.trackables(), config.keep_checkpoints)
                             if run_dir is not None else None)
        envs.seed_actions(stream_seed(config.seed, "action_space"))
        eval_env.reset(seed=stream_seed(config.seed, "eval_env"))
        n = self.n = envs.num_envs
        self.step = self.episode = 0
        self.target_step = 0
        """The step the current ``learn`` call trains to."""
        self.reset_seed: int | None = stream_seed(config.seed, "train_env")
        """Seed of the first reset (None after a restore: the env RNG states were restored)."""
        self.obs: np.ndarray | None = None
        """Each copy's current observation; None when every copy must be reset first."""
        self.next_actions: np.ndarray | None = None
        self.windows = [NStepWindow(config.n_step, config.gamma) for _ in range(n)]
        self.returns, self.lengths = np.zeros(n), np.zeros(n, np.int64)
        # Rows stored since each copy's episode began, counted back from the newest row of the
        # buffer: a checkpoint flags each copy's latest row as truncated.
        self.back_to_last: list[int | None] = [None] * n
        self.stored = 0  # transitions ever stored, mirrored here to avoid reading the variable
        self.metrics: dict[str, Any] | None = None
        self.skipped_nonfinite = 0
        self.episode_returns: list[float] = []
        self.evaluations: list[tuple[int, float, float]] = []
        """(step, mean return, std of returns) of each evaluation run by this process."""
        self.callbacks = CallbackList([])
        self.model: Any = None
        """The model (``ddpg_tf.model.DDPG``) that callbacks are called with."""
        self.stop = False
        self.info = StepInfo(new_steps=n)
        self.episode_cuts: list[Any] = []
        """Schedules (``due(step, new_steps, final)``) of the callbacks that end the episodes
        in progress, such as checkpoints: on those steps no next actions are selected."""

    # --- state --------------------------------------------------------------------------
    def trackables(self) -> dict[str, Any]:
        """Everything a checkpoint of this run holds besides the replay buffer and the step."""
        return self.agent.trackables()

    def restore(self, checkpointer: Checkpointer) -> None:
        """Continue from ``checkpointer``'s latest checkpoint (weights, optimisers, noise,
        counters, replay buffer, environment RNGs). Raises ``CheckpointError``/``ValueError``."""
        step, episode, extras, buffer_file = checkpointer.restore_latest()
        if buffer_file is not None:
            self.buffer.load(buffer_file)
        self.envs.set_rng_state(extras["env"])
        set_rng_state(self.eval_env, extras["eval_env"])
        self.step, self.episode, self.stored = step, episode, len(self.buffer)
        self.reset_seed, self.obs, self.next_actions = None, None, None

    # --- one iteration ------------------------------------------------------------------
    def iterate(self) -> StepInfo:
        """Step every copy once, store, update and pick the next actions; then the callbacks."""
        cfg, agent, envs, n = self.config, self.agent, self.envs, self.n
        info = self.info
        info.episodes, info.scalars = [], {}
        if self.obs is None:
            self.obs = envs.reset(seed=self.reset_seed)
            self.reset_seed = None
            agent.reset_noise()
            self.returns[:], self.lengths[:] = 0.0, 0
            self.back_to_last = [None] * n
        if self.next_actions is not None:
            actions, self.next_actions = self.next_actions, None
        elif self.step < cfg.learning_starts:
            actions = envs.sample_actions()
        else:
            actions = agent.act(self.obs, explore=True)
        obs, rewards, terminated, truncated, successors, valid = envs.step(actions)
        ended = terminated | truncated
        restart = None
        # One test for the whole step: a sum is finite only if every term is (an overflow
        # only sends the step down the slower, exact path).
        if math.isfinite(rewards.sum() + successors.sum() + (0.0 if obs is successors else obs.sum())):
            rows, owners = self._windows_push(actions, rewards, terminated, truncated, successors, valid)
            self.returns += rewards * valid
        else:
            rows, owners, restart = self._push_finite(actions, rewards, terminated, truncated,
                                                      successors, obs, valid)
            self.returns += np.where(valid & np.isfinite(rewards), rewards, 0.0)
        self.back_to_last = _shift(self.back_to_last, owners)
        self.stored += len(rows)
        self.lengths += valid
        self.step += n
        done = ended & valid
        if restart is not None and restart.any():
            done |= restart
            obs = envs.reset_copies(restart)
        episode_steps = 0  # with the episode-end schedule: the length of the episode that ended
        if done.any():
            episode_steps = int(self.lengths[0])
            for i in np.flatnonzero(done):
                self._end_episode(i)
            agent.reset_noise(done)
        self.obs = obs

        per_step = cfg.update_schedule == "every-step"
        train = per_step and self._updates_due()
        final = self.step >= self.target_step
        # One compiled call stores the rows, runs the updates on replayed batches and selects
        # the next actions from the updated actor (same numbers as separate calls), unless the
        # episodes end after this step (a checkpoint), which would drop those actions.
        act: np.ndarray | str | None = None
        if train and cfg.fuse_act:
            # No episode ended (the next states are the rows'): act on the stored next states.
            act = "next" if obs is successors and len(rows) == n else obs
        if act is not None:
            for cut in self.episode_cuts:
                if cut.due(self.step, n, final):
                    act = None
                    break
        packed = None if not rows else rows[0][None] if len(rows) == 1 else np.stack(rows)
        self.next_actions, metrics = agent.step(packed, train=train, act=act)
        if train:
            self.metrics = metrics
        elif not per_step and episode_steps and self._updates_due():
            # TD3 authors' schedule: as many updates as the episode had steps, after it ended.
            self.metrics = agent.train_on_replay(rounds=episode_steps)
        if reached(self.step, n, cfg.log_every):
            self.check_updates_finite()
        if (agent.param_noise is not None and self.metrics is not None
                and reached(self.step, n, cfg.param_noise_adapt_every)):
            info.scalars.update(agent.adapt_param_noise())

        info.step, info.final = self.step, final
        info.metrics, info.actions = self.metrics, actions
        if self.callbacks.on_step(self.model, info) is False:
            self.stop = True
        return info

    def _updates_due(self) -> bool:
        """Whether updates may run now: after the warm-up once the buffer holds a batch, or
        (``train_during_warmup``) as soon as it holds a transition."""
        return bool(updates_due(self.config, self.step, min(self.stored, self.config.buffer_size)))

    def _windows_push(self, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                      truncated: np.ndarray, successors: np.ndarray,
                      valid: np.ndarray) -> tuple[list[np.ndarray], list[int]]:
        """Each copy's step into its n-step window; the packed rows completed (one per copy
        with n = 1; none early in an episode and several at its end with n > 1) and owners."""
        rows: list[np.ndarray] = []
        owners: list[int] = []
        pack, obs = self.buffer.pack, self.obs
        for i in range(self.n):
            if not valid[i]:
                continue
            # successors[i] is the true next state even when the episode ended (autoreset).
            for t in self.windows[i].push(obs[i], actions[i], float(rewards[i]), successors[i],
                                          bool(terminated[i]), bool(truncated[i])):
                rows.append(pack(*t))
                owners.append(i)
        return rows, owners

    def _push_finite(self, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                     truncated: np.ndarray, successors: np.ndarray, obs: np.ndarray,
                     valid: np.ndarray) -> tuple[list[np.ndarray], list[int], np.ndarray]:
        """:meth:`_windows_push` for a step where some copy returned NaN/Inf: raise, or (with
        ``skip_nonfinite``) drop those transitions and cut their windows; returns the copies to
        restart (those without a usable observation)."""
        keep = valid.copy()
        restart = np.zeros(self.n, bool)
        cut: list[int] = []
        for i in np.flatnonzero(valid):
            bad = ("observation" if not np.isfinite(successors[i]).all()
                   else "reward" if not np.isfinite(rewards[i]) else None)
            if bad is None and np.isfinite(obs[i]).all():
                continue
            if not self.config.skip_nonfinite:
                raise TrainingError(f"the environment returned a non-finite {bad or 'observation'} at step "
                                    f"{self.step + self.n}; fix the environment or set skip_nonfinite "
                                    "(--skip-nonfinite) to drop such transitions")
            self.skipped_nonfinite += 1
            if bad is not None:
                keep[i] = False
                cut.append(i)
            # No valid state to continue from: that copy starts a new episode.
            restart[i] = bad == "observation" or not np.isfinite(obs[i]).all()
        self.info.scalars["data/nonfinite_skipped"] = self.skipped_nonfinite
        rows, owners = self._windows_push(actions, rewards, terminated, truncated, successors, keep)
        for i in cut:  # n-step windows must not reach across the dropped step: cut as truncations
            for t in self.windows[i].flush():
                rows.append(self.buffer.pack(*t))
                owners.append(i)
        return rows, owners, restart & ~(terminated | truncated)

    def _end_episode(self, i: int) -> None:
        self.episode += 1
        ret, length = float(self.returns[i]), int(self.lengths[i])
        self.episode_returns.append(ret)
        self.info.episodes.append((ret, length))
        self.returns[i], self.lengths[i] = 0.0, 0
        self.back_to_last[i] = None

    # --- evaluation and checkpoints ------------------------------------------------------
    def evaluate(self, episodes: int) -> np.ndarray:
        """Run and record an evaluation of the deterministic policy (callbacks notified)."""
        returns = evaluate_policy(lambda o: self.agent.act(o, explore=False), self.eval_env, episodes)
        self.evaluations.append((self.step, float(returns.mean()), float(returns.std())))
        if self.run_dir is not None:
            append_evaluation(self.run_dir, self.step, returns)
        if self.callbacks.on_evaluation(self.model, self.step, returns) is False:
            self.stop = True
        return returns

    def end_episodes(self) -> None:
        """The resume rule: end every episode in progress as a truncation (flushing the
        n-step windows), so the next iteration starts with a reset."""
        if self.obs is None:
            return
        in_progress = np.flatnonzero(self.lengths > 0)
        for i in in_progress:
            pending = self.windows[i].flush()
            if pending:
                self.agent.step(np.stack([self.buffer.pack(*t) for t in pending]))
                self.stored += len(pending)
                self.back_to_last = _shift(self.back_to_last, [i] * len(pending))
        self.buffer.mark_truncated([b for b in self.back_to_last if b is not None])
        for i in in_progress:
            self._end_episode(i)
        self.obs, self.next_actions = None, None

    def save_checkpoint(self, checkpointer: Checkpointer) -> str:
        """End the episodes in progress and write a checkpoint with ``checkpointer``."""
        self.check_updates_finite(checkpointer.latest)
        self.end_episodes()
        extras = {"env": self.envs.rng_state(), "eval_env": rng_state(self.eval_env),
                  "buffer_saved": self.config.save_buffer, "num_envs": self.n}
        return checkpointer.save(self.step, self.episode, extras,
                                 buffer_saver=self.buffer.save if self.config.save_buffer else None)

    def checkpoint(self) -> str:
        """A checkpoint in the run directory (callbacks notified)."""
        assert self.checkpointer is not None, "checkpoints need a run directory"
        path = self.save_checkpoint(self.checkpointer)
        if self.callbacks.on_checkpoint(self.model, self.step, path) is False:
            self.stop = True
        return path

    def check_updates_finite(self, last_checkpoint: str | None = None) -> None:
        """Stop (before any further checkpoint) if an update met a NaN/Inf loss or gradient."""
        if int(self.agent.nonfinite_updates.numpy()) == 0:
            return
        last_checkpoint = last_checkpoint or (self.checkpointer.latest if self.checkpointer else None)
        kept = (f"the last good checkpoint {last_checkpoint} is kept" if last_checkpoint
                else "no checkpoint was written")
        raise TrainingError(f"a loss or gradient became NaN/Inf in an update before step {self.step} (the "
                            f"update was skipped); {kept}; try a lower learning rate or --max-grad-norm")


def updates_due(config: Config, step: Any, buffered: Any) -> Any:
    """Whether updates may run after ``step`` steps with ``buffered`` transitions in the buffer:
    after the warm-up once it holds a batch, or (``train_during_warmup``) once it holds one.
    Python numbers or tensors (the in-graph loop), hence ``&``."""
    if config.train_during_warmup:
        return buffered > 0
    return (step > config.learning_starts) & (buffered >= config.batch_size)


def _shift(back_to_last: list[int | None], owners: list[int]) -> list[int | None]:
    """Each copy's distance from its latest row to the newest row of the buffer after
    appending rows owned by ``owners`` (in order)."""
    k = len(owners)
    if k == 0:
        return back_to_last
    shifted = [None if b is None else b + k for b in back_to_last]
    for j, i in enumerate(owners):
        shifted[i] = k - 1 - j
    return shifted
