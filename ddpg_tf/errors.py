"""The errors this package raises on purpose, and how the command-line tools report them.

Every error a user can cause is a :class:`DDPGError` with a one-line message that says what is
wrong and what to do. From the Python API it is an ordinary exception; the command-line tools
(``train.py``, ``python -m ddpg_tf.evaluate``, the experiment runner) print that line and exit
with :func:`exit_status` of it: 2 for a usage error, 1 when training cannot go on. Nothing
already saved is lost or overwritten when one is raised.

A stop by SIGINT (Ctrl-C) or SIGTERM is not an error: ``learn`` saves and then raises
:class:`Interrupted`, a ``KeyboardInterrupt``; the command line exits with 130 or 143.

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
EXIT_TERMINATED = 143
"""Exit status after SIGTERM (128 + SIGTERM)."""


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


class InputError(UsageError, ValueError):
    """An argument of a method cannot be used (an observation of the wrong shape, a step count
    that is not a multiple of ``num_envs``, a callback that is not a ``Callback``)."""


class TrainingError(DDPGError, RuntimeError):
    """Training cannot go on (a NaN from the environment or an update); exit status 1.
    Checkpoints already written are left untouched."""


class StorageError(TrainingError):
    """A file of the run could not be written while training (disk full, quota, I/O error).
    The write was undone; the previous checkpoint is intact and resuming continues from it."""


class Interrupted(KeyboardInterrupt):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM, after saving a checkpoint when the model
    has a run directory. A ``KeyboardInterrupt``, so code that handles Ctrl-C handles it.

    Attributes: ``signum``, ``step`` (the step training stopped at), ``checkpoint`` (the
    checkpoint holding that step, or None) and ``exit_status`` (130 or 143)."""

    def __init__(self, message: str, signum: int, step: int | None = None,
                 checkpoint: str | None = None) -> None:
        super().__init__(message)
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_status = 128 + int(signum)


class SaturatedActorWarning(UserWarning):
    """The tanh actor's output has been exactly ±1 on every action component of every state
    the diagnostics sampled, at several diagnostics in a row: the actor gets no gradient and the
    run may stay stuck (issued at most once per model by :class:`ddpg_tf.callbacks.SaturationCheck`;
    silence it with ``warnings.filterwarnings("ignore", category=SaturatedActorWarning)``)."""


def exit_status(error: BaseException) -> int:
    """The exit status a command-line tool reports for ``error``."""
    return getattr(error, "exit_status", EXIT_TRAINING_ERROR)


def fail(message: str, status: int = EXIT_USAGE) -> NoReturn:
    """Print ``message`` as one line (``error: ...``) on stderr and exit with ``status``."""
    first_line = " ".join(str(message).split())
    print(f"error: {first_line}", file=sys.stderr)
    raise SystemExit(status)


__all__ = ["CheckpointError", "ConfigError", "DDPGError", "EnvError", "InputError", "Interrupted",
           "SaturatedActorWarning", "StorageError", "TrainingError", "UsageError", "EXIT_INTERRUPTED",
           "EXIT_TERMINATED", "EXIT_TRAINING_ERROR", "EXIT_USAGE", "exit_status", "fail"]
