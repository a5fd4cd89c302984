"""Stopping cleanly on SIGINT (Ctrl-C) and SIGTERM.

While ``learn`` runs it holds a :class:`StopSignals` guard: the first SIGINT or SIGTERM only
records a stop request, the loop stops at the next step boundary, writes a checkpoint (with a
run directory) and raises :class:`~ddpg_tf.errors.Interrupted`. A second signal while a file is
being written waits until the write is complete; a second signal at any other moment stops at
once (``Interrupted`` from wherever the program was; the last checkpoint is kept). Handlers are
installed only in the main thread, only for the duration of ``learn``, and the previous ones
are put back afterwards.

:func:`deferred` marks a write that must not be cut short (a checkpoint, an export). Inside a
guard it makes the guard hold every signal until the write is done; outside one it holds
SIGINT and SIGTERM itself and delivers them to the previous handlers when the write is done.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ddpg_tf.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_guards: list[StopSignals] = []
"""The guards in effect in the main thread, innermost last."""


def signal_name(signum: int) -> str:
    """'SIGINT', 'SIGTERM', ..."""
    return signal.Signals(signum).name


class StopSignals:
    """Context manager: while active (in the main thread), SIGINT/SIGTERM request a stop
    instead of raising. ``signum`` is the first signal received, or None."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.writing = 0
        self._previous: dict[int, Any] = {}

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                previous = signal.getsignal(signum)
                if previous is None:  # installed outside Python: it could not be put back
                    continue
                self._previous[signum] = previous
                signal.signal(signum, self._handle)
            _guards.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        if self in _guards:
            _guards.remove(self)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            return
        if self.writing:
            return  # the stop is already requested; the write in progress completes first
        raise Interrupted(f"stopped at once by a second {signal_name(signum)} (nothing saved for this "
                          "stop; the last checkpoint is kept)", signum)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration of a write (see the module docstring)."""
    guard = _guards[-1] if _guards else None
    if guard is not None and guard.installed:
        guard.writing += 1
        try:
            yield
        finally:
            guard.writing -= 1
        return
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous: dict[int, Any] = {}
    for signum in STOP_SIGNALS:
        handler = signal.getsignal(signum)
        if handler is not None:
            previous[signum] = handler
            signal.signal(signum, lambda s, _: held.append(s))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)  # now handled as it would have been without the write


__all__ = ["STOP_SIGNALS", "StopSignals", "deferred", "signal_name"]
