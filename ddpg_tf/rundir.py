"""The files of a run directory (or of a model saved with ``save``), read and written safely.

    RUN_DIR/config.json        the run's Config
    RUN_DIR/evaluations.csv    step, return_mean, return_std, episodes (one row per evaluation)
    RUN_DIR/checkpoints/       checkpoints (see checkpointing.py)
    RUN_DIR/export/            the exported actor (actor.keras, actor_savedmodel)
    RUN_DIR/events.*           TensorBoard logs

Every check that can fail because of user input runs before anything is written.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

from ddpg_tf.checkpointing import atomic_write_text
from ddpg_tf.config import RESUMABLE_FIELDS, Config
from ddpg_tf.errors import CheckpointError, ConfigError, EnvError, UsageError

if TYPE_CHECKING:
    from ddpg_tf.agent import DDPGAgent

CONFIG_FILE = "config.json"
EVAL_FILE = "evaluations.csv"
EVAL_HEADER = "step,return_mean,return_std,episodes"


def resolve_run(config: Config, given: set[str]) -> tuple[Config, Path]:
    """The command line's run directory ``logdir/run_name``, checked against ``--resume``, and
    the config to run with (a resumed run's saved config with the resumable flags given).

    Raises :class:`UsageError`; writes nothing.
    """
    run_dir = Path(config.logdir) / config.default_run_name()
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"{run_dir} exists and is not a directory; choose another --run-name or --logdir")
    if not config.resume:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UsageError(f"run directory {run_dir} already exists; pass --resume to continue it "
                             "or choose another --run-name")
        check_writable(Path(config.logdir))
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
    check_writable(run_dir)
    return merged, run_dir


def read_run_config(run_dir: Path) -> Config:
    """The :class:`Config` saved in ``run_dir/config.json``; :class:`UsageError` if unreadable."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no {CONFIG_FILE} there)")
    try:
        return Config.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}; restore it from a backup or start a new run") from None


def write_run_config(run_dir: Path, config: Config) -> None:
    atomic_write_text(Path(run_dir) / CONFIG_FILE, config.to_json())


def check_writable(path: Path) -> None:
    """Raise :class:`UsageError` unless ``path`` is, or can be created as, a writable directory."""
    probe = Path(path)
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write under {path}: {probe} is not a writable directory")


def load_trained_agent(run_dir: Path) -> tuple[Config, DDPGAgent, gym.Env]:
    """A run's config, an eager agent holding its latest checkpoint, and its environment
    (the caller closes it). Raises :class:`UsageError` for an unusable run directory."""
    from ddpg_tf.agent import DDPGAgent
    from ddpg_tf.checkpointing import Checkpointer
    from ddpg_tf.envs import make_env, space_dims

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


def evaluate_policy(policy: Callable[[np.ndarray], np.ndarray], env: gym.Env, episodes: int,
                    seed: int | None = None) -> np.ndarray:
    """Undiscounted returns of ``episodes`` full episodes of a deterministic ``policy``
    (observation -> action)."""
    returns = np.zeros(episodes)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed if i == 0 else None)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            returns[i] += float(reward)
            done = terminated or truncated
    return returns


def truncate_evaluations(run_dir: Path, step: int) -> None:
    """Drop evaluation rows written after ``step`` by a run that was then killed."""
    path = Path(run_dir) / EVAL_FILE
    if not path.exists():
        return
    rows = path.read_text().splitlines()
    kept = [EVAL_HEADER] + [r for r in rows[1:] if (s := _eval_row_step(r)) is not None and s <= step]
    if kept != rows:
        atomic_write_text(path, "\n".join(kept) + "\n")


def _eval_row_step(row: str) -> int | None:
    """The step of a complete evaluations.csv row; None for a partial line from a killed write."""
    parts = row.split(",")
    try:
        return int(parts[0]) if len(parts) == 4 else None
    except ValueError:
        return None


def append_evaluation(run_dir: Path, step: int, returns: np.ndarray) -> None:
    """Append one evaluation's row (synced to disk) to ``run_dir/evaluations.csv``."""
    path = Path(run_dir) / EVAL_FILE
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(EVAL_HEADER.split(","))
        writer.writerow([step, f"{returns.mean():.4f}", f"{returns.std():.4f}", len(returns)])
        fh.flush()
        os.fsync(fh.fileno())
