"""The files of a run directory (or of a model saved with ``save``), read and written safely.

    RUN_DIR/config.json        the run's Config
    RUN_DIR/evaluations.csv    step, return_mean, return_std, episodes (one row per evaluation)
    RUN_DIR/checkpoints/       checkpoints (see checkpointing.py)
    RUN_DIR/export/            the exported actor (actor.keras, actor_savedmodel)
    RUN_DIR/events.*           TensorBoard logs

Every check that can fail because of user input runs before anything is written, and this
module imports neither TensorFlow nor an environment, so ``train.py`` makes these checks in a
fraction of a second.
"""

from __future__ import annotations

import csv
import json
import os
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ddpg_tf.config import RESUMABLE_FIELDS, Config
from ddpg_tf.errors import ConfigError, EnvError, UsageError
from ddpg_tf.paths import (CHECKPOINT_DIR, atomic_write_text, check_writable, checkpoint_steps_on_disk,
                           read_checkpoint_list, storage_error)

if TYPE_CHECKING:
    import gymnasium as gym

    from ddpg_tf.agent import DDPGAgent
    from ddpg_tf.checkpointing import Advice

CONFIG_FILE = "config.json"
EVAL_FILE = "evaluations.csv"
EVAL_HEADER = "step,return_mean,return_std,episodes"


def resolve_run(config: Config, given: set[str], resume_from: int | None = None) -> tuple[Config, Path]:
    """The command line's run directory ``logdir/run_name``, checked against ``--resume`` (and
    ``--resume-from``), and the config to run with (a resumed run's saved config with the
    resumable flags given). Checks that the directory can be written and its disk has room.

    Raises :class:`UsageError`; writes nothing.
    """
    if resume_from is not None and not config.resume:
        raise UsageError(f"--resume-from {resume_from} needs --resume")
    run_dir = Path(config.logdir) / config.default_run_name()
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"{run_dir} exists and is not a directory; choose another --run-name or --logdir")
    if not config.resume:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UsageError(f"run directory {run_dir} already exists; pass --resume to continue it "
                             "or choose another --run-name")
        check_writable(run_dir, "--logdir")
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
    checkpoints = run_dir / CHECKPOINT_DIR
    if resume_from is not None and not (checkpoints / f"ckpt-{resume_from}.index").exists():
        there = ", ".join(map(str, checkpoint_steps_on_disk(checkpoints))) or "none"
        raise UsageError(f"there is no checkpoint {resume_from} in {checkpoints} (checkpoints there: "
                         f"{there})")
    listed, problem = read_checkpoint_list(checkpoints)
    reached = resume_from if resume_from is not None else listed[-1] if listed and not problem else 0
    if reached > merged.total_steps:
        raise UsageError(f"{run_dir} is already at step {reached}; raise --total-steps above it to train "
                         "further")
    check_writable(run_dir, "--logdir")
    return merged, run_dir


def read_run_config(run_dir: Path) -> Config:
    """The :class:`Config` saved in ``run_dir/config.json``, checked field by field;
    :class:`UsageError` if it is missing, unreadable or damaged."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no {CONFIG_FILE} there)")
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise ValueError(f"expected a JSON object, got {type(values).__name__}")
        check_field_types(values)
        values.setdefault("in_graph", False)  # saved before the in-graph loop: the usual loop ran
        return Config.from_dict(values).validate()
    except (OSError, ValueError, TypeError) as exc:  # ConfigError and JSON errors are ValueErrors
        reason = " ".join(str(exc).split())[:160]
        raise UsageError(f"cannot read {path} ({reason}); restore it from a backup or start a new "
                         "run") from None


def write_run_config(run_dir: Path, config: Config) -> None:
    """Write ``run_dir/config.json`` atomically; :class:`StorageError` if the disk refuses."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        atomic_write_text(path, config.to_json())
    except OSError as exc:
        raise storage_error(exc, path, "nothing else was written: {hint}try again") from None


def check_field_types(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``values`` (Config field names) with NumPy scalars made Python numbers; raises
    :class:`ConfigError` for a value of the wrong type (``batch_size="64"``) or an unknown name."""
    hints = typing.get_type_hints(Config)
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in hints:
            raise ConfigError(f"unknown Config field {prefix}{name}; see ddpg_tf.Config")
        kind = hints[name]
        if isinstance(value, np.generic):
            value = value.item()
        if not _fits(value, kind):
            raise ConfigError(f"{prefix}{name} must be {_kind_name(kind)}, got {value!r} "
                              f"({type(value).__name__})")
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _fits(value: Any, kind: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if typing.get_origin(kind) is typing.Literal:
        return isinstance(value, str)  # an unknown choice: Config.validate says which are known
    if kind == tuple[int, ...]:
        return (isinstance(value, tuple | list)
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
    return True


def _kind_name(kind: Any) -> str:
    if typing.get_origin(kind) is typing.Literal:
        return "a string, one of " + ", ".join(map(repr, typing.get_args(kind)))
    if kind == tuple[int, ...]:
        return "a tuple of layer sizes such as (64, 64)"
    return {bool: "True or False", int: "an integer", float: "a number", str: "a string"}.get(kind, str(kind))


def load_trained_agent(run_dir: Path, step: int | None = None,
                       advice: Advice | None = None) -> tuple[Config, DDPGAgent, gym.Env]:
    """A run's config, an eager agent holding its latest checkpoint (or checkpoint ``step``),
    and its environment (the caller closes it). The replay buffer and the RNG states are not
    needed and not checked.
    Raises :class:`UsageError` (a :class:`CheckpointError` for a damaged checkpoint)."""
    from ddpg_tf.agent import DDPGAgent
    from ddpg_tf.checkpointing import API_ADVICE, Checkpointer
    from ddpg_tf.envs import make_env, space_dims

    config = read_run_config(run_dir)
    try:
        env = make_env(config.env_id)
    except EnvError as exc:
        raise UsageError(str(exc)) from None
    try:
        obs_dim, low, high = space_dims(env)
        agent = DDPGAgent(config.replace(eager=True), obs_dim, low, high)
        Checkpointer(run_dir, agent.trackables(), config.keep_checkpoints, restore_step=step,
                     require_buffer=False, require_states=False, advice=advice or API_ADVICE).restore_latest()
    except BaseException:
        env.close()
        raise
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
        try:
            atomic_write_text(path, "\n".join(kept) + "\n")
        except OSError as exc:
            raise storage_error(exc, path, "nothing was changed: {hint}try again") from None


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
    try:
        with path.open("a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(EVAL_HEADER.split(","))
            writer.writerow([step, f"{returns.mean():.4f}", f"{returns.std():.4f}", len(returns)])
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:  # a partial row is dropped when the run is resumed
        raise storage_error(exc, path, "training stopped; the checkpoints are intact: {hint}resume to "
                            "continue from the last one") from None
