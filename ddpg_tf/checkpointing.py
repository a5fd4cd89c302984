"""Checkpoints, resume and policy export.

A checkpoint ``RUN_DIR/checkpoints/ckpt-K`` is a ``tf.train.Checkpoint`` of the networks,
targets, optimiser slots, noise state (value and generator) and the step/episode counters,
written through a ``tf.train.CheckpointManager``. Beside it, ``extras-K.json`` holds the
Python-side state (environment and action-space RNG states) and
``buffer-K.npz`` the replay buffer with its sampling RNG. Both side files are written
(to a temporary name, then renamed) before the checkpoint itself, and the manager
records a checkpoint in its index only after its files are complete, so ``--resume``
never picks up a half-written one.

Resume rule: a resumed run starts a new episode at the checkpoint's step. With the default
schedule on a fixed-length task (Pendulum-v1: 200 steps), checkpoints fall on episode
boundaries and a resumed run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

import ddpg_tf._quiet  # noqa: F401  (before keras: silences TensorFlow's start-up)

import keras

from ddpg_tf._quiet import tf
from ddpg_tf.errors import CheckpointError

CHECKPOINT_DIR = "checkpoints"
EXPORT_DIR = "export"
ACTOR_KERAS = "actor.keras"
ACTOR_SAVEDMODEL = "actor_savedmodel"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Checkpointer:
    """Saves and restores a run's full training state under ``RUN_DIR/checkpoints``."""

    def __init__(self, run_dir: Path, trackables: dict[str, Any], max_to_keep: int) -> None:
        self.directory = Path(run_dir) / CHECKPOINT_DIR
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.episode = tf.Variable(0, dtype=tf.int64, trainable=False, name="episode")
        self.checkpoint = tf.train.Checkpoint(step=self.step, episode=self.episode, **trackables)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory),
                                                  max_to_keep=max_to_keep, checkpoint_name="ckpt")

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def save(self, step: int, episode: int, extras: dict[str, Any],
             buffer_saver: Any | None = None) -> str:
        """Write checkpoint number ``step``; returns its path prefix."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.step.assign(step)
        self.episode.assign(episode)
        atomic_write_text(self.directory / f"extras-{step}.json", json.dumps(extras, default=int))
        if buffer_saver is not None:
            tmp = self.directory / f".buffer-{step}.npz.tmp"
            buffer_saver(tmp)
            os.replace(tmp, self.buffer_file(step))
        _fault_injection_point("before-checkpoint", step)
        path = self.manager.save(checkpoint_number=step)
        self._remove_orphans()
        return path

    def buffer_file(self, step: int) -> Path:
        return self.directory / f"buffer-{step}.npz"

    def _remove_orphans(self) -> None:
        """Delete side files whose checkpoint the manager has rotated out, and temporary
        files left by a write that was killed."""
        kept = {Path(p).name.split("-")[-1] for p in self.manager.checkpoints}
        for pattern in ("extras-*.json", "buffer-*.npz"):
            for f in self.directory.glob(pattern):
                if f.stem.split("-")[-1] not in kept:
                    f.unlink(missing_ok=True)
        for f in self.directory.glob(".*"):
            f.unlink(missing_ok=True)
        for d in self.directory.glob("ckpt-*_temp*"):  # TensorFlow's staging dir of a killed save
            shutil.rmtree(d, ignore_errors=True)

    def restore_latest(self) -> tuple[int, int, dict[str, Any], Path | None]:
        """Restore the newest complete checkpoint; returns (step, episode, extras, buffer file
        or None). Checkpoints whose files were moved away are skipped, so following the
        advice of a "damaged checkpoint" error falls back to the previous one."""
        candidates = [p for p in reversed(self.manager.checkpoints) if Path(p + ".index").exists()]
        if not candidates:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        path = candidates[0]
        number = Path(path).name.split("-")[-1]
        try:
            status = self.checkpoint.read(path)
            status.assert_existing_objects_matched()
        except Exception as exc:  # noqa: BLE001  (a damaged file raises OpError, IndexError, ...)
            reason = " ".join(str(exc).split())[:200]
            raise CheckpointError(f"checkpoint {path} does not match this run's configuration or is "
                                  f"damaged ({reason}); move {Path(path).name}.* away to resume from an "
                                  "earlier checkpoint, or start a new run") from None
        extras_file = self.directory / f"extras-{number}.json"
        try:
            extras = json.loads(extras_file.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"checkpoint side file {extras_file} is unreadable ({exc}); move "
                                  f"{Path(path).name}.* away to resume from an earlier checkpoint") from None
        buffer_file = self.buffer_file(int(number))
        if extras.get("buffer_saved") and not buffer_file.exists():
            raise CheckpointError(f"the replay buffer {buffer_file} of checkpoint {path} is missing; "
                                  "restore it, or resume with --no-save-buffer to refill the buffer from "
                                  "scratch (the run then no longer repeats the uninterrupted one)")
        return int(self.step.numpy()), int(self.episode.numpy()), extras, (
            buffer_file if buffer_file.exists() else None)


def _fault_injection_point(name: str, step: int) -> None:
    """Test hook: ``DDPG_TF_KILL_AT=name:step`` makes the process SIGKILL itself here, so the
    fault-injection test can hit the middle of a checkpoint write deterministically."""
    if os.environ.get("DDPG_TF_KILL_AT") == f"{name}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def export_actor(actor: keras.Model, run_dir: Path) -> dict[str, Path]:
    """Export the actor as ``actor.keras`` and a SavedModel, each written under a temporary
    name and then renamed into ``RUN_DIR/export`` (an existing export is replaced whole)."""
    out = Path(run_dir) / EXPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    keras_path = out / ACTOR_KERAS
    tmp_keras = out / f".tmp-{ACTOR_KERAS}"
    actor.save(tmp_keras)
    os.replace(tmp_keras, keras_path)

    saved_path = out / ACTOR_SAVEDMODEL
    tmp_saved = out / f".tmp-{ACTOR_SAVEDMODEL}"
    shutil.rmtree(tmp_saved, ignore_errors=True)
    actor.export(str(tmp_saved), format="tf_saved_model", verbose=False)
    old = out / f".old-{ACTOR_SAVEDMODEL}"
    if saved_path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(saved_path, old)
    os.replace(tmp_saved, saved_path)
    shutil.rmtree(old, ignore_errors=True)
    return {"keras": keras_path, "saved_model": saved_path}
