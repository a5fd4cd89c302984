"""Fault injection for the tests: make this process fail at an exact point.

``DDPG_TF_KILL_AT`` holds comma-separated ``where:step[:action]`` items. When the code passes
:func:`fault_point` with a matching ``where`` and ``step`` (``*`` matches any step), the action
happens there: ``SIGKILL`` (the default), ``SIGINT`` or ``SIGTERM`` sent to this process, or
``ENOSPC``, an ``OSError`` "no space left on device" for the file about to be written.

The points: ``start`` (``train.py`` after its flags are read, before TensorFlow), ``step``
(after each loop iteration, with the step reached), ``extras``, ``buffer`` and
``before-checkpoint`` (inside a checkpoint write, with its step) and ``export`` (before the
exported actor is written). With the variable unset a point costs one dictionary lookup; the
training loop reads it once per ``learn`` call (:func:`faults_armed`) and skips its per-step
point when unset.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

FAULT_ENV = "DDPG_TF_KILL_AT"


def faults_armed() -> bool:
    """Whether ``DDPG_TF_KILL_AT`` is set: loops may skip their per-step points when not."""
    return bool(os.environ.get(FAULT_ENV))


def fault_point(name: str, step: int | None, path: Path | None = None) -> None:
    """Do what ``DDPG_TF_KILL_AT`` asks for at point ``name`` and ``step``, if anything."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    for item in spec.split(","):
        where, _, rest = item.strip().partition(":")
        at, _, action = rest.partition(":")
        if where != name or at not in ("*", str(step)):
            continue
        if action == "ENOSPC":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), None if path is None else str(path))
        os.kill(os.getpid(), getattr(signal, action or "SIGKILL"))


__all__ = ["FAULT_ENV", "fault_point", "faults_armed"]
