"""Where a run writes: checked before any expensive work, and written so a crash never leaves
half a file.

:func:`check_writable` answers, before TensorFlow or an environment starts, whether a
directory can be created and written: it walks up to the nearest existing directory, creates
and deletes a file there (``os.access`` says yes on read-only and virtual filesystems such as
``/proc`` when running as root) and asks how much space is free. :func:`atomic_write_text`
writes through a temporary file and a rename. :func:`storage_error` turns an ``OSError`` met
while training (a full disk) into a one-line :class:`StorageError`.

This module imports nothing heavy, so the command line can call it first.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from ddpg_tf.errors import StorageError, UsageError

CHECKPOINT_DIR = "checkpoints"
"""``RUN_DIR/checkpoints``: the checkpoints (see :mod:`ddpg_tf.checkpointing`)."""
EXPORT_DIR = "export"
"""``RUN_DIR/export``: the exported actor."""
ACTOR_KERAS = "actor.keras"
ACTOR_SAVEDMODEL = "actor_savedmodel"

CHECKPOINT_LIST = "checkpoint"
"""TensorFlow's list of the checkpoints in ``CHECKPOINT_DIR`` (a text protocol buffer)."""
_LIST_LINE = re.compile(r'(model_checkpoint_path|all_model_checkpoint_paths): "(?:.*/)?ckpt-(\d+)"'
                        r'|(all_model_checkpoint_timestamps|last_preserved_timestamp): [0-9.eE+-]+')

MIN_FREE_MIB = 64
"""Free space a run directory's disk must have at the start (MiB); the environment variable
``DDPG_TF_MIN_FREE_MIB`` overrides it. A run needs more as it goes (checkpoints, replay
buffer, logs); a disk that fills up later stops training with a :class:`StorageError`."""
MIN_FREE_ENV = "DDPG_TF_MIN_FREE_MIB"


def min_free_mib() -> float:
    """The free space required at the start, in MiB (``DDPG_TF_MIN_FREE_MIB`` or 64)."""
    text = os.environ.get(MIN_FREE_ENV, "").strip()
    if not text:
        return float(MIN_FREE_MIB)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise UsageError(f"the environment variable {MIN_FREE_ENV} must be a number of MiB >= 0, "
                         f"got {text!r}")
    return value


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its closest ancestor that does."""
    probe = Path(path)
    while not (probe.exists() or probe.is_symlink()) and probe.parent != probe:
        probe = probe.parent
    return probe


def check_writable(path: str | Path, setting: str = "") -> None:
    """Raise :class:`UsageError` unless the directory ``path`` exists or can be created, can be
    written to, and its disk has :func:`min_free_mib` free. ``setting`` names what the user
    should change (``--logdir``, ``run_dir``). Leaves nothing behind (not even a changed mtime)."""
    path = Path(path)
    label = str(path)
    advice = f"choose another {setting}" if setting else "choose another directory"
    base = nearest_existing(path)
    if not base.is_dir():
        where = "it" if base == path else str(base)
        raise UsageError(f"cannot write to {label}: {where} is a file, not a directory; {advice}")
    try:
        _write_probe(base)
    except OSError as exc:
        raise UsageError(f"cannot write to {label}: {base} is not writable ({describe(exc)}); "
                         f"{advice}") from None
    need = min_free_mib()
    try:
        free = shutil.disk_usage(base).free / 2**20
    except OSError:
        return  # no usage figures for this filesystem: the write probe has to do
    if free < need:
        raise UsageError(f"cannot write to {label}: only {free:.1f} MiB free on {base}, at least "
                         f"{need:g} MiB needed ({MIN_FREE_ENV} sets this minimum); free some space or "
                         f"{advice}")


def _write_probe(directory: Path) -> None:
    """Create and delete a file in ``directory``, then put its modification time back."""
    before = os.stat(directory)
    fd, name = tempfile.mkstemp(dir=directory, prefix=".ddpg_tf-write-test-")
    try:
        os.close(fd)
    finally:
        os.unlink(name)
        try:
            os.utime(directory, ns=(before.st_atime_ns, before.st_mtime_ns))
        except OSError:
            pass


def describe(exc: OSError) -> str:
    """A short reason for ``exc``: 'no space left on device', 'read-only file system', ..."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == getattr(errno, "EDQUOT", None):
        return "disk quota exceeded"
    return (exc.strerror or str(exc) or type(exc).__name__).lower().rstrip(".")


def storage_error(exc: OSError, path: str | Path, consequence: str) -> StorageError:
    """The one-line :class:`StorageError` for a failed write of ``path``."""
    hint = "free some space, then " if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) else ""
    return StorageError(f"cannot write {path} ({describe(exc)}); {consequence.format(hint=hint)}")


def checkpoint_steps_on_disk(directory: Path) -> list[int]:
    """The steps of every ``ckpt-K.index`` in the checkpoint ``directory``, oldest first."""
    found = (re.fullmatch(r"ckpt-(\d+)\.index", p.name) for p in Path(directory).glob("ckpt-*.index"))
    return sorted(int(m.group(1)) for m in found if m)


def read_checkpoint_list(directory: Path) -> tuple[list[int], str | None]:
    """The steps in the checkpoint ``directory``'s list whose files are there, oldest first,
    and what is wrong with the list ("is missing", "is damaged (...)"; None if it is fine, or
    absent with no checkpoint files)."""
    directory = Path(directory)
    state = directory / CHECKPOINT_LIST
    if not state.exists():  # files without a list: the list was deleted, not a fresh run
        return [], "is missing" if checkpoint_steps_on_disk(directory) else None
    try:
        lines = [line.strip() for line in state.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        return [], f"is unreadable ({describe(exc) if isinstance(exc, OSError) else exc})"
    steps: list[int] = []
    latest = 0
    for line in lines:
        match = _LIST_LINE.fullmatch(line)
        if match is None:
            return [], f"is damaged (cannot parse {line[:40]!r})"
        if match.group(1) == "all_model_checkpoint_paths":
            steps.append(int(match.group(2)))
        elif match.group(1):
            latest += 1
    if latest != 1:
        return [], "is damaged (it names no latest checkpoint)"
    return sorted(s for s in set(steps) if (directory / f"ckpt-{s}.index").exists()), None


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


__all__ = ["ACTOR_KERAS", "ACTOR_SAVEDMODEL", "CHECKPOINT_DIR", "CHECKPOINT_LIST", "EXPORT_DIR",
           "MIN_FREE_ENV", "MIN_FREE_MIB", "atomic_write_text", "check_writable", "checkpoint_steps_on_disk",
           "describe", "min_free_mib", "nearest_existing", "read_checkpoint_list", "storage_error"]
