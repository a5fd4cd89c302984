"""Checkpoints, resume and policy export.

A checkpoint ``RUN_DIR/checkpoints/ckpt-K`` is a ``tf.train.Checkpoint`` of the networks,
targets, optimiser slots, noise state (value and generator) and the step/episode counters,
written through a ``tf.train.CheckpointManager``. Beside it, ``extras-K.json`` holds the
Python-side state (environment and action-space RNG states) and
``buffer-K.npz`` the replay buffer with its sampling RNG. Both side files are written
(to a temporary name, then renamed) before the checkpoint itself, and the manager
records a checkpoint in its list (the file ``checkpoints/checkpoint``) only after its files
are complete, so ``--resume`` never picks up a half-written one.

Writes are never cut short: SIGINT/SIGTERM wait until a checkpoint or export is complete
(:func:`ddpg_tf.signals.deferred`), and a write that fails (a full disk) is undone and raises
:class:`StorageError`, leaving the previous checkpoint as the latest.

Reads trust nothing: before a checkpoint is restored every tensor is read back (each carries
a checksum), ``extras-K.json`` is parsed and checked, and ``buffer-K.npz`` passes its CRC-32
checks and holds no Python objects (nothing is ever unpickled). A damaged checkpoint raises
:class:`CheckpointError` naming the file, and names the newest earlier checkpoint that is
intact instead of falling back to it silently.

Resume rule: a resumed run starts a new episode at the checkpoint's step. With the default
schedule on a fixed-length task (Pendulum-v1: 200 steps), checkpoints fall on episode
boundaries and a resumed run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import ddpg_tf._quiet  # noqa: F401  (before keras: silences TensorFlow's start-up)

import keras
import numpy as np

from ddpg_tf._quiet import tf
from ddpg_tf.errors import CheckpointError
from ddpg_tf.faults import fault_point
from ddpg_tf.paths import (ACTOR_KERAS, ACTOR_SAVEDMODEL, CHECKPOINT_DIR, CHECKPOINT_LIST, EXPORT_DIR,
                           atomic_write_text, checkpoint_steps_on_disk, read_checkpoint_list, storage_error)
from ddpg_tf.signals import deferred

MOVED_DIR = "moved"
"""Where continuing from an earlier checkpoint puts the later ones (never deleted)."""
BUFFER_MEMBERS = ("meta.npy", "rng_state.npy", "rows.npy")


class Advice(NamedTuple):
    """How a front end tells the user to pick another checkpoint or do without the buffer."""

    pick: str
    """With ``{step}``: how to continue from that checkpoint."""
    no_buffer: str
    """How to continue with an empty replay buffer instead."""


API_ADVICE = Advice(pick="load it with load(path, step={step})",
                    no_buffer="load with save_buffer=False to continue with an empty replay buffer")


class Checkpointer:
    """Saves and restores a run's full training state under ``RUN_DIR/checkpoints``.

    ``restore_step`` picks the checkpoint :meth:`restore_latest` restores (default: the newest
    one listed); ``require_buffer`` makes a missing or damaged replay buffer an error (else it
    is skipped and training continues with an empty buffer); ``require_states`` makes the
    environment RNG states in ``extras-K.json`` required (not for a policy that is only
    evaluated); ``advice`` words the hints of the error messages for the front end in use."""

    def __init__(self, run_dir: Path, trackables: dict[str, Any], max_to_keep: int, *,
                 restore_step: int | None = None, require_buffer: bool = True, require_states: bool = True,
                 advice: Advice = API_ADVICE) -> None:
        self.directory = Path(run_dir) / CHECKPOINT_DIR
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.episode = tf.Variable(0, dtype=tf.int64, trainable=False, name="episode")
        self.checkpoint = tf.train.Checkpoint(step=self.step, episode=self.episode, **trackables)
        self.max_to_keep = max_to_keep
        self.restore_step, self.require_buffer, self.advice = restore_step, require_buffer, advice
        self.require_states = require_states
        self._manager: tf.train.CheckpointManager | None = None

    # --- what is on disk --------------------------------------------------------------------
    @property
    def manager(self) -> tf.train.CheckpointManager:
        """TensorFlow's manager, made on first use (it reads the list of checkpoints)."""
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory),
                                                       max_to_keep=self.max_to_keep, checkpoint_name="ckpt")
        return self._manager

    def prefix(self, step: int) -> Path:
        return self.directory / f"ckpt-{step}"

    def buffer_file(self, step: int) -> Path:
        return self.directory / f"buffer-{step}.npz"

    def extras_file(self, step: int) -> Path:
        return self.directory / f"extras-{step}.json"

    def listed_steps(self) -> tuple[list[int], str | None]:
        """The steps of the checkpoints in the list whose files are there, oldest first, and
        what is wrong with the list file (None if it is readable, or absent in a new run)."""
        return read_checkpoint_list(self.directory)

    def steps_on_disk(self) -> list[int]:
        """The steps of every ``ckpt-K.index`` in the directory, listed or not, oldest first."""
        return checkpoint_steps_on_disk(self.directory)

    @property
    def latest_step(self) -> int | None:
        steps, _ = self.listed_steps()
        return steps[-1] if steps else None

    @property
    def latest(self) -> str | None:
        """Path prefix of the newest listed checkpoint, or None."""
        step = self.latest_step
        return None if step is None else str(self.prefix(step))

    # --- writing ------------------------------------------------------------------------------
    def save(self, step: int, episode: int, extras: dict[str, Any],
             buffer_saver: Any | None = None) -> str:
        """Write checkpoint number ``step``; returns its path prefix. Never cut short by
        SIGINT/SIGTERM; a failed write is undone and raises :class:`StorageError`."""
        with deferred():
            previous = self.latest_step
            target: Path = self.directory
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                self.step.assign(step)
                self.episode.assign(episode)
                target = self.extras_file(step)
                fault_point("extras", step, target)
                atomic_write_text(target, json.dumps(extras, default=int))
                if buffer_saver is not None:
                    target = self.buffer_file(step)
                    tmp = self.directory / f".buffer-{step}.npz.tmp"
                    fault_point("buffer", step, target)
                    buffer_saver(tmp)
                    os.replace(tmp, target)
                fault_point("before-checkpoint", step)
                target = self.prefix(step)
                path = self.manager.save(checkpoint_number=step)
            except (OSError, tf.errors.OpError) as exc:
                self._undo(step, previous)
                kept = (f"checkpoint {previous} is intact: {{hint}}resume to continue from it"
                        if previous is not None else "no checkpoint was written yet: {hint}start again")
                raise storage_error(_as_os_error(exc), getattr(exc, "filename", None) or target,
                                    kept) from None
            self._remove_orphans()
            return path

    def _undo(self, step: int, previous: int | None) -> None:
        """Remove what a failed save of ``step`` left (never a listed checkpoint's files)."""
        listed, _ = self.listed_steps()
        if step not in listed:
            for f in [self.extras_file(step), self.buffer_file(step),
                      *self.directory.glob(f"ckpt-{step}.*")]:
                f.unlink(missing_ok=True)
        try:
            self._remove_orphans()
        except OSError:
            pass
        self._manager = None  # re-read the list: the failed save may have changed it in memory

    def _remove_orphans(self) -> None:
        """Delete side files whose checkpoint is gone (rotated out), and temporary files left
        by a write that was killed."""
        kept = set(self.steps_on_disk())
        for pattern in ("extras-*.json", "buffer-*.npz"):
            for f in self.directory.glob(pattern):
                number = f.stem.split("-")[-1]
                if not number.isdigit() or int(number) not in kept:
                    f.unlink(missing_ok=True)
        for f in self.directory.glob(".*"):
            f.unlink(missing_ok=True)
        for d in self.directory.glob("ckpt-*_temp*"):  # TensorFlow's staging dir of a killed save
            shutil.rmtree(d, ignore_errors=True)

    def set_aside_after(self, step: int) -> Path | None:
        """Continue from checkpoint ``step``: move the files of every later checkpoint into
        ``checkpoints/moved/...`` (nothing is deleted) and make ``step`` the latest in the list.
        Returns the directory they went to, or None if there were none."""
        later = [s for s in self.steps_on_disk() if s > step]
        listed, problem = self.listed_steps()
        if not later and problem is None and listed and listed[-1] == step:
            return None
        target = None
        if later:
            base = self.directory / MOVED_DIR / f"after-{step}"
            target, n = base, 1
            while target.exists():
                n += 1
                target = base.with_name(f"{base.name}.{n}")
            target.mkdir(parents=True)
            for s in later:
                for f in [*self.directory.glob(f"ckpt-{s}.*"), self.extras_file(s), self.buffer_file(s)]:
                    if f.exists():
                        os.replace(f, target / f.name)
        kept = [s for s in self.steps_on_disk() if s <= step][-max(self.max_to_keep, 1):]
        # TensorFlow's manager rotates only checkpoints whose timestamps are after the last
        # preserved one: give each its index file's time, in order.
        times = [self.prefix(s).with_suffix(".index").stat().st_mtime for s in kept]
        times = [max(times[: i + 1]) + i * 1e-6 for i in range(len(times))]
        lines = [f'model_checkpoint_path: "ckpt-{step}"',
                 *(f'all_model_checkpoint_paths: "ckpt-{s}"' for s in kept),
                 *(f"all_model_checkpoint_timestamps: {t:.6f}" for t in times),
                 f"last_preserved_timestamp: {min(times, default=1.0) - 1.0:.6f}"]
        atomic_write_text(self.directory / CHECKPOINT_LIST, "\n".join(lines) + "\n")
        self._manager = None
        return target

    def reload(self) -> None:
        """Read the list of checkpoints again (after :meth:`set_aside_after` elsewhere)."""
        self._manager = None

    # --- reading ------------------------------------------------------------------------------
    def verify(self, step: int, with_buffer: bool = True) -> str | None:
        """What is wrong with checkpoint ``step``'s files, or None if they are intact: every
        tensor reads back with a matching checksum, the side file parses, and (``with_buffer``)
        the buffer archive passes its CRC checks and holds no Python objects."""
        prefix = self.prefix(step)
        index = prefix.with_suffix(".index")
        if not index.exists():
            return f"{index.name} is missing"
        data = sorted(self.directory.glob(f"{prefix.name}.data-*"))
        if not data:
            return f"{prefix.name}.data-00000-of-00001 is missing"
        try:
            reader = tf.train.load_checkpoint(str(prefix))
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)
        except Exception as exc:  # noqa: BLE001  (DataLossError, OpError, ValueError, ...)
            return f"{prefix.name}: {_short(exc, drop=f'TensorBundle at {prefix} ')}"
        extras_file = self.extras_file(step)
        try:
            extras = json.loads(extras_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return f"{extras_file.name}: {_short(exc)}"
        if not isinstance(extras, dict):
            return f"{extras_file.name} holds {type(extras).__name__}, not an object"
        if self.require_states and not {"env", "eval_env"} <= set(extras):
            return f"{extras_file.name} lacks the environment RNG states"
        if with_buffer and extras.get("buffer_saved"):
            buffer_file = self.buffer_file(step)
            if not buffer_file.exists():
                return f"{buffer_file.name} is missing"
            return check_buffer_file(buffer_file)
        return None

    def restore_latest(self) -> tuple[int, int, dict[str, Any], Path | None]:
        """Restore the chosen checkpoint (``restore_step``, else the newest listed one) after
        checking its files; returns (step, episode, extras, buffer file or None). A damaged
        checkpoint raises :class:`CheckpointError` naming the newest intact earlier one."""
        step = self._chosen()
        reason = self.verify(step, with_buffer=self.require_buffer)
        if reason is not None:
            raise self._damaged(step, reason)
        path = str(self.prefix(step))
        try:
            status = self.checkpoint.read(path)
            status.assert_existing_objects_matched()
        except Exception as exc:  # noqa: BLE001  (shape mismatch, missing objects, ...)
            raise CheckpointError(f"checkpoint {path} does not match this model's configuration "
                                  f"({_short(exc)}); it was written with another environment or network: "
                                  "start a new run, or use the settings it was made with") from None
        extras = json.loads(self.extras_file(step).read_text())
        buffer_file = self.buffer_file(step)
        usable = (extras.get("buffer_saved") and buffer_file.exists()
                  and (self.require_buffer or check_buffer_file(buffer_file) is None))
        return int(self.step.numpy()), int(self.episode.numpy()), extras, buffer_file if usable else None

    def _chosen(self) -> int:
        listed, problem = self.listed_steps()
        on_disk = self.steps_on_disk()
        if self.restore_step is not None:
            if self.restore_step not in on_disk:
                there = ", ".join(map(str, on_disk)) or "none"
                raise CheckpointError(f"there is no checkpoint {self.restore_step} in {self.directory} "
                                      f"(checkpoints there: {there})")
            return self.restore_step
        if problem is not None and on_disk:
            raise self._damaged(on_disk[-1], problem, listing=True)
        if not listed:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        return listed[-1]

    def _damaged(self, step: int, reason: str, listing: bool = False) -> CheckpointError:
        """The error for a damaged checkpoint ``step`` (or, with ``listing``, a list of
        checkpoints that ``reason``: "is missing", "is damaged (...)"), offering the newest
        intact checkpoint before it (with ``listing``: at or before it)."""
        candidates = [s for s in reversed(self.steps_on_disk()) if s < step or (listing and s == step)]
        intact = next((s for s in candidates if self.verify(s, self.require_buffer) is None), None)
        if listing:
            problem = f"the list of checkpoints {self.directory / CHECKPOINT_LIST} {reason}"
        else:
            problem = f"checkpoint {step} in {self.directory} is damaged ({reason})"
        buffer_only = not listing and reason.startswith(f"buffer-{step}.")
        other = f"; or {self.advice.no_buffer}" if buffer_only else ""
        if intact is not None:
            return CheckpointError(f"{problem}; checkpoint {intact} is intact: "
                                   f"{self.advice.pick.format(step=intact)}{other}; or restore the damaged "
                                   "files from a backup")
        earlier = "no checkpoint" if listing else "no earlier checkpoint"
        return CheckpointError(f"{problem} and {earlier} is intact{other}; restore the files from a backup "
                               "or start a new run")


def check_buffer_file(path: Path) -> str | None:
    """What is wrong with a replay-buffer archive, or None: every member must pass its CRC-32
    check and hold plain numbers (an object array would need unpickling; it is refused)."""
    try:
        with zipfile.ZipFile(path) as archive:
            missing = sorted(set(BUFFER_MEMBERS) - set(archive.namelist()))
            if missing:
                return f"{path.name} lacks {', '.join(missing)}"
            bad = archive.testzip()
            if bad is not None:
                return f"{path.name}: {bad} fails its CRC check"
            for name in BUFFER_MEMBERS:
                with archive.open(name) as fh:
                    version = np.lib.format.read_magic(fh)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    _, _, dtype = read_header(fh)
                if dtype.hasobject:
                    return f"{path.name}: {name} holds Python objects, which are never unpickled"
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        return f"{path.name}: {_short(exc)}"
    return None


def _short(exc: BaseException, drop: str = "") -> str:
    """``exc``'s message on one line, at most 160 characters, without ``drop``."""
    text = str(getattr(exc, "message", None) or str(exc) or type(exc).__name__)
    return " ".join((text.replace(drop, "") if drop else text).split())[:160]


def _as_os_error(exc: BaseException) -> OSError:
    """An ``OSError`` for ``exc``: itself, or one carrying a TensorFlow error's message."""
    if isinstance(exc, OSError):
        return exc
    text = _short(exc)
    if "no space left" in text.lower():
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return OSError(None, text)


@contextmanager
def _export_errors(out: Path) -> Iterator[None]:
    try:
        yield
    except (OSError, tf.errors.OpError) as exc:
        for tmp in out.glob(".tmp-*"):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        raise storage_error(_as_os_error(exc), getattr(exc, "filename", None) or out,
                            "the checkpoints are complete: {hint}resume (or save again) to write the "
                            "export") from None


def export_actor(actor: keras.Model, run_dir: Path) -> dict[str, Path]:
    """Export the actor as ``actor.keras`` and a SavedModel, each written under a temporary
    name and then renamed into ``RUN_DIR/export`` (an existing export is replaced whole).
    Never cut short by SIGINT/SIGTERM; a failed write raises :class:`StorageError`."""
    out = Path(run_dir) / EXPORT_DIR
    with deferred(), _export_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        keras_path = out / ACTOR_KERAS
        tmp_keras = out / f".tmp-{ACTOR_KERAS}"
        fault_point("export", None, keras_path)
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


def load_exported_actor(path: Path) -> keras.Model:
    """The exported ``actor.keras`` (Keras safe mode: no code from the file is run)."""
    return keras.models.load_model(path, compile=False, safe_mode=True)


__all__ = ["ACTOR_KERAS", "ACTOR_SAVEDMODEL", "API_ADVICE", "Advice", "CHECKPOINT_DIR", "EXPORT_DIR",
           "MOVED_DIR", "Checkpointer", "atomic_write_text", "check_buffer_file", "export_actor",
           "load_exported_actor"]
