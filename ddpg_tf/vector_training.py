"""The training loop for ``--num-envs N > 1``: N copies of the environment stepped together.

Each iteration steps all copies (``gymnasium.vector.SyncVectorEnv`` with same-step autoreset),
stores their N transitions and runs N x ``gradient_steps`` updates in one compiled call, which
also selects the next N actions from the updated actor. The ratio of updates to environment
steps is the single-environment one; what changes is the order: within an iteration the N
transitions are stored first, then the N updates run (a single environment interleaves them).
The compiled call and the Python around it are paid once per N steps.

Step counters (``total_steps``, ``eval_every``, ``log_every``, ``checkpoint_every``,
``diag_every``, ``learning_starts``) count transitions of all copies. An evaluation, log or
checkpoint happens in the iteration that reaches a multiple of its interval, and is recorded
at that iteration's step count (a multiple of N, so step 252 for ``--log-every 250`` with
N = 4). Copy i is seeded with ``seed + i`` (Gymnasium's vector reset). Every checkpoint
ends the episodes of all copies as truncations, as in the single-environment loop, so a
resumed run follows the uninterrupted one exactly. Gaussian (or no) exploration noise only,
drawn independently per copy.

With ``fuse_act`` the store-train-act call also runs at a checkpoint, and the actions it
selects are dropped (the episodes restart): the exploration noise after a checkpoint then
differs from a ``--no-fuse-act`` run's, while each run stays reproducible and resumes exactly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ddpg_tf.errors import TrainingError
from ddpg_tf.config import Config
from ddpg_tf.envs import rng_state, set_vector_rng_state, vector_rng_state
from ddpg_tf.replay_buffer import NStepWindow
from ddpg_tf.training import (
    LogHook,
    TrainResult,
    _check_updates_finite,
    _evaluate,
    _finish,
    _log_progress,
    _open_run,
)


def train_vector(config: Config, run_dir: Path, envs: gym.vector.SyncVectorEnv, eval_env: gym.Env,
                 on_log: LogHook | None) -> TrainResult:
    n = config.num_envs
    run = _open_run(config, run_dir, envs, eval_env, envs.envs[0],
                    lambda state: set_vector_rng_state(envs, state))
    agent, buffer, ckpt, logger, result = run.agent, run.buffer, run.ckpt, run.logger, run.result
    step, episode = run.step, run.episode
    reset_seed = run.first_reset_seed
    windows = [NStepWindow(config.n_step, config.gamma) for _ in range(n)]
    last_eval = float("nan")
    returns, lengths = np.zeros(n), np.zeros(n, np.int64)
    # Rows stored since each copy's episode began, counted back from the newest row of the
    # buffer: a checkpoint flags each copy's latest row as truncated.
    back_to_last: list[int | None] = [None] * n

    def end_episode(i: int) -> None:
        nonlocal episode
        episode += 1
        result.episode_returns.append(float(returns[i]))
        logger.scalars({"train/episode_return": float(returns[i]),
                        "train/episode_length": int(lengths[i])}, step)

    obs: np.ndarray | None = None
    next_actions: np.ndarray | None = None
    metrics: dict[str, Any] | None = None
    stored = len(buffer)
    run.window_start, run.window_step = time.perf_counter(), step
    while step < config.total_steps:
        if obs is None:
            obs, _ = envs.reset(seed=reset_seed)
            reset_seed = None
            returns[:], lengths[:] = 0.0, 0
            back_to_last = [None] * n
        if next_actions is not None:
            actions, next_actions = next_actions, None
        elif step < config.learning_starts:
            actions = envs.action_space.sample()
        else:
            actions = agent.act_batch(obs, explore=True)
        next_obs, rewards, terminated, truncated, info = envs.step(actions)
        # Same-step autoreset: a finished copy already shows its reset observation; the true
        # successor of its last transition is info["final_obs"].
        ended = np.logical_or(terminated, truncated)
        successors = next_obs.copy()
        for i in np.flatnonzero(ended):
            successors[i] = info["final_obs"][i]
        if not (np.all(np.isfinite(successors)) and np.all(np.isfinite(next_obs))
                and np.all(np.isfinite(rewards))):
            raise TrainingError(f"an environment returned a non-finite observation or reward at step "
                                f"{step + n}; fix the environment (--skip-nonfinite needs --num-envs 1)")
        rows: list[np.ndarray] = []
        owners: list[int] = []
        for i in range(n):
            for t in windows[i].push(obs[i], actions[i], float(rewards[i]), successors[i],
                                     bool(terminated[i]), bool(truncated[i])):
                rows.append(buffer.pack(*t))
                owners.append(i)
        back_to_last = _shift(back_to_last, owners)
        stored += len(rows)
        returns += rewards
        lengths += 1
        step += n
        for i in np.flatnonzero(ended):
            end_episode(i)
            returns[i], lengths[i] = 0.0, 0
            back_to_last[i] = None
        obs = next_obs

        final = step == config.total_steps
        due_checkpoint = _reached(step, n, config.checkpoint_every) or final
        train_now = step > config.learning_starts and min(stored, config.buffer_size) >= config.batch_size
        batch = np.stack(rows) if rows else None
        if batch is None:
            if train_now:
                metrics = agent.train_on_replay()
        elif not train_now:
            agent.store_rows(batch)
        elif config.fuse_act and config.n_step > 1:
            # n-step windows emit a varying number of rows: store them in a call of their own,
            # so the XLA-compiled update keeps one shape.
            agent.store_rows(batch)
            next_actions, metrics = agent.train_and_act_batch(obs)
        elif config.fuse_act:
            # At a checkpoint the episodes restart, so these actions are dropped: one compiled
            # variant fewer (a first call of another variant would compile mid-run).
            next_actions, metrics = agent.store_rows_train_and_act(batch, obs)
        else:
            metrics = agent.store_rows_and_train(batch)
        logging = _reached(step, n, config.log_every)
        if logging or due_checkpoint:
            _check_updates_finite(agent, step, ckpt.latest)

        if _reached(step, n, config.diag_every) and metrics is not None:
            logger.scalars(agent.replay_diagnostics(), step)
        if logging:
            _log_progress(run, step, metrics, actions, last_eval, on_log)

        if _reached(step, n, config.eval_every) or final:
            last_eval = _evaluate(run, config, eval_env, step)
        if due_checkpoint:
            # Resume rule: every checkpoint ends the episodes in progress as truncations (a
            # copy that finished its episode at this very step has none in progress).
            for i in np.flatnonzero(lengths > 0):
                pending = windows[i].flush()
                if pending:
                    agent.store_rows(np.stack([buffer.pack(*t) for t in pending]))
                    stored += len(pending)
                    back_to_last = _shift(back_to_last, [i] * len(pending))
                end_episode(i)
            buffer.mark_truncated([b for b in back_to_last if b is not None])
            obs, next_actions = None, None
            extras = {"env": vector_rng_state(envs), "eval_env": rng_state(eval_env),
                      "buffer_saved": config.save_buffer}
            ckpt.save(step, episode, extras, buffer_saver=buffer.save if config.save_buffer else None)
            if config.save_buffer:
                logger.scalars({"checkpoint/buffer_mib": ckpt.buffer_file(step).stat().st_size / 2**20}, step)
            logger.flush()
        run.progress.update(n)
    return _finish(run, config, step)


def _reached(step: int, n: int, every: int) -> bool:
    """Whether the iteration that advanced the step counter from ``step - n`` to ``step``
    reached a multiple of ``every`` (never for ``every`` = 0)."""
    return every > 0 and step // every != (step - n) // every


def _shift(back_to_last: list[int | None], owners: list[int]) -> list[int | None]:
    """Update each copy's distance from its latest row to the newest row of the buffer after
    appending rows owned by ``owners`` (in order)."""
    k = len(owners)
    shifted = [None if b is None else b + k for b in back_to_last]
    for j, i in enumerate(owners):
        shifted[i] = k - 1 - j
    return shifted
