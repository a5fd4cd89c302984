"""The training loop: plain Python around the agent's compiled step.

Interaction, replay, evaluation, TensorBoard logging, checkpoints and export live here;
the gradient math lives in :mod:`ddpg_tf.losses` and :mod:`ddpg_tf.agent`.

Every check that can fail because of user input (flags, environment, run directory,
checkpoint compatibility) runs before anything is written to disk.
"""

from __future__ import annotations

import csv
import json
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ddpg_tf._quiet  # noqa: F401  (before keras: silences TensorFlow's start-up)

import gymnasium as gym
import keras
import numpy as np

from ddpg_tf._quiet import tf
from ddpg_tf.agent import DDPGAgent
from ddpg_tf.checkpointing import Checkpointer, CheckpointError, atomic_write_text, export_actor
from ddpg_tf.errors import TrainingError, UsageError
from ddpg_tf.config import RESUMABLE_FIELDS, Config, ConfigError
from ddpg_tf.envs import (EnvError, make_env, make_vector_env, rng_state, set_rng_state,
                          space_dims)
from ddpg_tf.replay_buffer import NStepWindow, ReplayBuffer
from ddpg_tf.summaries import SummaryLogger

CONFIG_FILE = "config.json"
EVAL_FILE = "evaluations.csv"
EVAL_SEED_OFFSET = 10_000


@dataclass
class TrainResult:
    """What :func:`train` returns (also handy in tests and experiment scripts)."""

    run_dir: Path
    steps: int
    episode_returns: list[float] = field(default_factory=list)
    evaluations: list[tuple[int, float, float]] = field(default_factory=list)
    """(step, mean return, std of returns) for each evaluation run by this process."""
    exported: dict[str, Path] = field(default_factory=dict)
    agent: DDPGAgent | None = field(default=None, repr=False)
    """The trained agent (networks, targets, optimisers) as left at the end of the run."""


def evaluate_policy(policy: Callable[[np.ndarray], np.ndarray], env: gym.Env,
                    episodes: int, seed: int | None = None) -> np.ndarray:
    """Undiscounted returns of ``episodes`` full episodes of a deterministic ``policy``."""
    returns = np.zeros(episodes)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed if i == 0 else None)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            returns[i] += float(reward)
            done = terminated or truncated
    return returns


def resolve_run(config: Config, given: set[str]) -> tuple[Config, Path]:
    """Check the run directory against ``--resume`` and merge a resumed run's saved config.

    Raises :class:`UsageError`; writes nothing.
    """
    run_dir = Path(config.logdir) / config.default_run_name()
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"{run_dir} exists and is not a directory; choose another --run-name or --logdir")
    if not config.resume:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UsageError(f"run directory {run_dir} already exists; pass --resume to continue it "
                             "or choose another --run-name")
        _check_writable(Path(config.logdir))
        return config, run_dir
    saved_file = run_dir / CONFIG_FILE
    if not saved_file.is_file():
        raise UsageError(f"nothing to resume: {saved_file} not found; start the run without --resume")
    saved = read_run_config(run_dir)
    changed = sorted(k for k in given - RESUMABLE_FIELDS
                     if getattr(config, k) != getattr(saved, k))
    if changed:
        flags = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise UsageError(f"cannot change {flags} when resuming {run_dir}; start a new run instead")
    merged = saved.replace(**{k: getattr(config, k) for k in given & RESUMABLE_FIELDS})
    merged = merged.replace(resume=True)
    try:
        merged.validate()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    _check_writable(run_dir)
    return merged, run_dir


def read_run_config(run_dir: Path) -> Config:
    """The :class:`Config` saved in ``run_dir/config.json``; :class:`UsageError` if unreadable."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no {CONFIG_FILE} there)")
    try:
        return Config.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}; restore it from a backup or start a new run") from None


def load_trained_agent(run_dir: Path) -> tuple[Config, DDPGAgent, gym.Env]:
    """A run's config, an eager agent holding its latest checkpoint, and its environment
    (the caller closes it). Raises :class:`UsageError` for an unusable run directory."""
    config = read_run_config(run_dir)
    try:
        env = make_env(config.env_id)
    except EnvError as exc:
        raise UsageError(str(exc)) from None
    obs_dim, low, high = space_dims(env)
    agent = DDPGAgent(config.replace(eager=True), obs_dim, low, high)
    try:
        Checkpointer(run_dir, agent.trackables(), config.keep_checkpoints).restore_latest()
    except CheckpointError as exc:
        env.close()
        raise UsageError(str(exc)) from None
    return config, agent, env


def _check_writable(path: Path) -> None:
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write under {path}: {probe} is not a writable directory")


def set_threads(threads: int, intra_op: int = 0, inter_op: int = 0) -> None:
    """Use ``threads`` TensorFlow intra-op and inter-op threads, each overridden by
    ``intra_op`` / ``inter_op`` when positive (0 everywhere: TensorFlow's default).

    TensorFlow fixes its thread pools when it first runs an op, so this must come before any
    tensor is created in the process; a later call asking for other values raises UsageError."""
    intra, inter = intra_op or threads, inter_op or threads
    if intra <= 0 and inter <= 0:
        return
    threading = tf.config.threading
    wanted = [(intra, threading.get_intra_op_parallelism_threads, threading.set_intra_op_parallelism_threads),
              (inter, threading.get_inter_op_parallelism_threads, threading.set_inter_op_parallelism_threads)]
    if all(n <= 0 or get() == n for n, get, _ in wanted):
        return
    try:
        for n, _, set_pool in wanted:
            if n > 0:
                set_pool(n)
    except RuntimeError:
        raise UsageError(f"thread settings (intra-op {intra}, inter-op {inter}) must be made before "
                         "TensorFlow starts; pass them to a fresh process") from None


def seed_everything(config: Config) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; optionally enable op determinism."""
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


LogHook = Callable[[int, dict[str, float]], None]
"""``hook(step, values)``, called every ``log_every`` steps with ``steps_per_second``."""


def train(config: Config, given: set[str] | frozenset[str] = frozenset(),
          on_log: LogHook | None = None) -> TrainResult:
    """Train DDPG as configured; see :class:`ddpg_tf.config.Config` for every option.

    ``given`` names the fields set explicitly on the command line (they may override a
    resumed run's saved config); ``on_log`` is called at every logging step (benchmarks)."""
    config, run_dir = resolve_run(config, set(given))
    set_threads(config.threads, config.intra_op_threads, config.inter_op_threads)
    try:
        env = (make_env(config.env_id) if config.num_envs == 1
               else make_vector_env(config.env_id, config.num_envs))
        eval_env = make_env(config.env_id)
    except EnvError as exc:
        raise UsageError(str(exc)) from None
    try:
        if config.num_envs > 1:
            from ddpg_tf.vector_training import train_vector  # imports this module

            return train_vector(config, run_dir, env, eval_env, on_log)
        return _train(config, run_dir, env, eval_env, on_log)
    finally:
        env.close()
        eval_env.close()


@dataclass
class _Run:
    """A run opened by :func:`_open_run`: restored from its latest checkpoint or fresh."""

    agent: DDPGAgent
    buffer: ReplayBuffer
    ckpt: Checkpointer
    logger: SummaryLogger
    result: TrainResult
    progress: Any
    step: int
    episode: int
    first_reset_seed: int | None
    """Seed of the first training reset (None after a resume: the env's RNG state was restored)."""
    window_start: float = 0.0
    """perf_counter() at the start of the current steps/s window."""
    window_step: int = 0
    """Step count at the start of the current steps/s window."""


def _open_run(config: Config, run_dir: Path, env: Any, eval_env: gym.Env,
              single_env: gym.Env, set_env_rng: Callable[[Any], None]) -> _Run:
    """Build the agent and buffer, restore the latest checkpoint when resuming (the training
    env's RNG through ``set_env_rng``), then write the run's config."""
    seed_everything(config)
    obs_dim, low, high = space_dims(single_env)
    agent = DDPGAgent(config, obs_dim, low, high)
    buffer = ReplayBuffer(config.buffer_size, obs_dim, len(low), seed=config.seed, dtype=config.dtype,
                          n_step=config.n_step)
    agent.bind_replay(buffer)
    ckpt = Checkpointer(run_dir, agent.trackables(), config.keep_checkpoints)

    env.action_space.seed(config.seed)
    eval_env.reset(seed=config.seed + EVAL_SEED_OFFSET)
    step = episode = 0
    first_reset_seed: int | None = config.seed
    restored = config.resume and ckpt.latest is not None
    if restored:
        try:
            step, episode, extras, buffer_file = ckpt.restore_latest()
            if buffer_file is not None:
                buffer.load(buffer_file)
            set_env_rng(extras["env"])
            set_rng_state(eval_env, extras["eval_env"])
        except (CheckpointError, ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise UsageError(f"cannot resume from {ckpt.latest}: {exc}") from None
        first_reset_seed = None
        if step > config.total_steps:
            raise UsageError(f"{run_dir} is already at step {step}; raise --total-steps above it to "
                             "train further")
        # step == total_steps: a finished run (perhaps killed while exporting); resuming it only
        # writes the export again.
    # A resumed run killed before its first checkpoint starts again from step 0 in its directory.
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, config.to_json())  # a resume records its new settings
    _truncate_evaluations(run_dir, step)

    logger = SummaryLogger(run_dir)
    if not restored:
        logger.config(config)
    return _Run(agent=agent, buffer=buffer, ckpt=ckpt, logger=logger,
                result=TrainResult(run_dir=run_dir, steps=step, agent=agent),
                progress=_progress_bar(config, step), step=step, episode=episode,
                first_reset_seed=first_reset_seed)


def _evaluate(run: _Run, config: Config, eval_env: gym.Env, step: int) -> float:
    """Evaluate the greedy policy, log and record it; returns the mean return."""
    returns = evaluate_policy(lambda o: run.agent.act(o, explore=False), eval_env, config.eval_episodes)
    mean = float(returns.mean())
    run.result.evaluations.append((step, mean, float(returns.std())))
    run.logger.scalars({"eval/return_mean": mean, "eval/return_std": returns.std(),
                        "eval/episodes": len(returns)}, step)
    _append_eval(run.result.run_dir, step, returns)
    run.progress.set_postfix_str(f"eval {mean:.1f}", refresh=False)
    return mean


def _log_progress(run: _Run, step: int, metrics: dict[str, Any] | None, actions: Any,
                  last_eval: float, on_log: LogHook | None) -> None:
    """The periodic log: steps/s since the last one, the latest update's metrics, the actions."""
    now = time.perf_counter()
    sps = (step - run.window_step) / max(now - run.window_start, 1e-9)
    run.window_start, run.window_step = now, step
    run.logger.scalars({"perf/steps_per_second": sps}, step)
    if on_log is not None:
        on_log(step, {"steps_per_second": sps})
    if metrics is not None:
        run.logger.metrics(metrics, step)
        run.logger.histograms({"hist/env_actions": np.asarray(actions)}, step)
    run.progress.set_postfix_str(f"{sps:.0f} steps/s, eval {last_eval:.1f}", refresh=False)


def _finish(run: _Run, config: Config, step: int) -> TrainResult:
    run.progress.close()
    run.logger.flush()
    run.logger.close()
    run.result.steps = step
    if config.export:
        run.result.exported = export_actor(run.agent.policy(), run.result.run_dir)
    _report(run.result, config)
    return run.result


def _train(config: Config, run_dir: Path, env: gym.Env, eval_env: gym.Env,
           on_log: LogHook | None) -> TrainResult:
    run = _open_run(config, run_dir, env, eval_env, env, lambda state: set_rng_state(env, state))
    agent, buffer, ckpt, logger, result, progress = (run.agent, run.buffer, run.ckpt, run.logger,
                                                     run.result, run.progress)
    step, episode, first_reset_seed = run.step, run.episode, run.first_reset_seed
    window = NStepWindow(config.n_step, config.gamma)
    last_eval = float("nan")

    def checkpoint() -> None:
        extras = {"env": rng_state(env), "eval_env": rng_state(eval_env),
                  "buffer_saved": config.save_buffer}
        ckpt.save(step, episode, extras, buffer_saver=buffer.save if config.save_buffer else None)
        if config.save_buffer:
            size = ckpt.buffer_file(step).stat().st_size / 2**20
            logger.scalars({"checkpoint/buffer_mib": size}, step)

    def end_episode() -> None:
        nonlocal episode, obs
        episode += 1
        result.episode_returns.append(episode_return)
        logger.scalars({"train/episode_return": episode_return,
                        "train/episode_length": episode_length}, step)
        obs = None

    obs: np.ndarray | None = None
    episode_return, episode_length = 0.0, 0
    run.window_start, run.window_step = time.perf_counter(), step
    metrics: dict[str, Any] | None = None
    skipped_nonfinite = 0
    stored = len(buffer)  # transitions ever stored, mirrored here to avoid reading the variable
    next_action: np.ndarray | None = None  # chosen by a fused update-and-act call
    while step < config.total_steps:
        if obs is None:
            obs, _ = env.reset(seed=first_reset_seed)
            first_reset_seed = None
            agent.reset_noise()
            episode_return, episode_length = 0.0, 0
        if next_action is not None:
            action, next_action = next_action, None
        elif step < config.learning_starts:
            action = env.action_space.sample()
        else:
            action = agent.act(obs, explore=True)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        bad_field = _nonfinite_field(next_obs, reward)
        if bad_field is not None and not config.skip_nonfinite:
            raise TrainingError(f"the environment returned a non-finite {bad_field} at step {step + 1}; "
                                "fix the environment or pass --skip-nonfinite to drop such transitions")
        rows: list[np.ndarray] = []
        if bad_field is None:
            # next_obs is the true successor even when truncated (the reset comes next iteration).
            # The n-step window returns the transitions this step completes: one (m = 1 with
            # n = 1, m = n mid-episode), none early in an episode, several at its end.
            rows = [buffer.pack(*t) for t in window.push(obs, action, float(reward), next_obs,
                                                          bool(terminated), bool(truncated))]
        else:
            skipped_nonfinite += 1
            logger.scalars({"data/nonfinite_skipped": skipped_nonfinite}, step + 1)
            if bad_field == "observation":
                truncated = True  # no valid state to continue from: start a new episode
            # n-step windows must not reach across the dropped step: cut them at the last good
            # state, as a truncation.
            rows = [buffer.pack(*t) for t in window.flush()]
        for extra in rows[:-1]:
            agent.store(extra)
        row = rows[-1] if rows else None
        stored += len(rows)
        obs = next_obs
        episode_return += float(reward)
        episode_length += 1
        step += 1
        if terminated or truncated:
            end_episode()

        final = step == config.total_steps
        due_checkpoint = bool(config.checkpoint_every and step % config.checkpoint_every == 0) or final
        # One compiled call stores the transition, runs the updates on replayed batches and,
        # when nothing (episode end, checkpoint) comes before the next action, selects it
        # from the updated actor: the same numbers as separate calls, with less overhead.
        train_now = step > config.learning_starts and min(stored, config.buffer_size) >= config.batch_size
        if row is None:
            if train_now:
                metrics = agent.train_on_replay()
        elif not train_now:
            agent.store(row)
        elif config.fuse_act and obs is not None and not due_checkpoint:
            next_action, metrics = agent.store_train_and_act(row)
        else:
            metrics = agent.store_and_train(row)
        if step % config.log_every == 0 or due_checkpoint:
            _check_updates_finite(agent, step, ckpt.latest)

        if config.diag_every and step % config.diag_every == 0 and metrics is not None:
            logger.scalars(agent.replay_diagnostics(), step)
        if (agent.param_noise is not None and metrics is not None
                and step % config.param_noise_adapt_every == 0):
            logger.scalars(agent.adapt_param_noise(), step)

        if step % config.log_every == 0:
            _log_progress(run, step, metrics, action, last_eval, on_log)

        if (config.eval_every and step % config.eval_every == 0) or final:
            last_eval = _evaluate(run, config, eval_env, step)
        if due_checkpoint:
            if obs is not None:
                # Resume rule: every checkpoint ends the episode in progress (as a time-limit
                # truncation, so its last transition is still bootstrapped). A resumed run, which
                # must start with a reset, then follows the uninterrupted run exactly.
                for pending in window.flush():
                    agent.store(buffer.pack(*pending))
                    stored += 1
                buffer.mark_truncated_last()
                end_episode()
            checkpoint()
            logger.flush()
        progress.update(1)

    return _finish(run, config, step)


def _nonfinite_field(observation: np.ndarray, reward: float) -> str | None:
    if not np.all(np.isfinite(observation)):
        return "observation"
    if not np.isfinite(reward):
        return "reward"
    return None


def _check_updates_finite(agent: DDPGAgent, step: int, last_checkpoint: str | None) -> None:
    """Stop (before any further checkpoint) if an update met a NaN/Inf loss or gradient."""
    if int(agent.nonfinite_updates.numpy()) == 0:
        return
    kept = (f"the last good checkpoint {last_checkpoint} is kept" if last_checkpoint
            else "no checkpoint was written")
    raise TrainingError(f"a loss or gradient became NaN/Inf in an update before step {step} (the update "
                        f"was skipped); {kept}; try a lower learning rate or --max-grad-norm")


def _truncate_evaluations(run_dir: Path, step: int) -> None:
    """Drop evaluation rows written after ``step`` by a run that was then killed."""
    path = run_dir / EVAL_FILE
    if not path.exists():
        return
    rows = path.read_text().splitlines()
    header = "step,return_mean,return_std,episodes"
    kept = [header] + [r for r in rows[1:] if _eval_row_step(r) is not None and _eval_row_step(r) <= step]
    if kept != rows:
        atomic_write_text(path, "\n".join(kept) + "\n")


def _eval_row_step(row: str) -> int | None:
    """The step of a complete evaluations.csv row; None for a partial line from a killed write."""
    parts = row.split(",")
    try:
        return int(parts[0]) if len(parts) == 4 else None
    except ValueError:
        return None


def _append_eval(run_dir: Path, step: int, returns: np.ndarray) -> None:
    path = run_dir / EVAL_FILE
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["step", "return_mean", "return_std", "episodes"])
        writer.writerow([step, f"{returns.mean():.4f}", f"{returns.std():.4f}", len(returns)])
        fh.flush()
        os.fsync(fh.fileno())


class _NoProgress:
    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str, refresh: bool = True) -> None: ...
    def close(self) -> None: ...


def _progress_bar(config: Config, initial: int) -> Any:
    if not config.progress:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=config.total_steps, initial=initial, unit="step", dynamic_ncols=True,
                mininterval=0.5, desc=config.env_id)


def _report(result: TrainResult, config: Config) -> None:
    if not config.progress:
        return
    if result.evaluations:
        step, mean, std = result.evaluations[-1]
        print(f"eval return {mean:.1f} ± {std:.1f} at step {step} ({config.eval_episodes} episodes)")
    print(f"run directory: {result.run_dir}  (tensorboard --logdir {config.logdir})")
    for kind, path in result.exported.items():
        print(f"exported actor ({kind}): {path}")


__all__ = ["TrainResult", "evaluate_policy", "resolve_run", "seed_everything", "train"]
