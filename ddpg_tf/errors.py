"""The errors this package raises on purpose, and how the command-line tools report them.

Every error a user can cause is a :class:`DDPGError` with a one-line message that says what is
wrong and what to do. From the Python API it is an ordinary exception; the command-line tools
(``train.py``, ``python -m ddpg_tf.evaluate``, the experiment runner) print that line and exit
with :func:`exit_status` of it: 2 for a usage error, 1 when training cannot go on. Nothing
already saved is lost or overwritten when one is raised.

This module imports nothing heavy, so every part of the package can use it.
"""

from __future__ import annotations

import sys
from typing import NoReturn

EXIT_TRAINING_ERROR = 1
"""Exit status of a run stopped by a :class:`TrainingError`."""
EXIT_USAGE = 2
"""Exit status of a :class:`UsageError` (a bad flag, env, path or file)."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT)."""


class DDPGError(Exception):
    """Base class of the errors this package raises for its users."""

    exit_status = EXIT_TRAINING_ERROR


class UsageError(DDPGError):
    """A value, environment, path or file the user supplied cannot be used (exit status 2)."""

    exit_status = EXIT_USAGE


class ConfigError(UsageError, ValueError):
    """A configuration value is invalid or two values do not fit together."""


class EnvError(UsageError, ValueError):
    """The environment cannot be used by DDPG (not a flat Box, unbounded actions, unknown id)."""


class CheckpointError(UsageError, RuntimeError):
    """A checkpoint or saved model cannot be used (damaged, missing, or another configuration)."""


class TrainingError(DDPGError, RuntimeError):
    """Training cannot go on (a NaN from the environment or an update); exit status 1.
    Checkpoints already written are left untouched."""


def exit_status(error: BaseException) -> int:
    """The exit status a command-line tool reports for ``error``."""
    return getattr(error, "exit_status", EXIT_TRAINING_ERROR)


def fail(message: str, status: int = EXIT_USAGE) -> NoReturn:
    """Print ``message`` as one line (``error: ...``) on stderr and exit with ``status``."""
    first_line = " ".join(str(message).split())
    print(f"error: {first_line}", file=sys.stderr)
    raise SystemExit(status)


__all__ = ["CheckpointError", "ConfigError", "DDPGError", "EnvError", "TrainingError", "UsageError",
           "EXIT_INTERRUPTED", "EXIT_TRAINING_ERROR", "EXIT_USAGE", "exit_status", "fail"]
