"""Command line generated from :class:`ddpg_tf.config.Config`.

Each dataclass field becomes a flag (``actor_lr`` -> ``--actor-lr``) whose help text is the
field's docstring. ``--preset NAME`` picks a starting :class:`Config`; flags given explicitly
override it. ``--resume-from STEP`` (command line only) continues a run from an earlier
checkpoint than its latest.

Everything that can be checked before TensorFlow starts is: the flags, the run directory
(exists, resumable, writable, room on its disk) and the environment id, so a mistake is
reported within a second. Usage errors print one line to stderr and exit with status 2; a
:class:`TrainingError` exits with 1. SIGINT and SIGTERM stop training at the next step
boundary with a checkpoint, print one line with the command that continues the run and exit
with 130 or 143.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import signal
import sys
import typing
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from ddpg_tf.config import DEFAULT_PRESET, PRESETS, Config, field_docs, preset_config
from ddpg_tf.errors import (EXIT_INTERRUPTED, EXIT_TRAINING_ERROR, EXIT_USAGE, ConfigError, DDPGError,
                             Interrupted, SaturatedActorWarning, StorageError, TrainingError, UsageError,
                             exit_status, fail)
from ddpg_tf.faults import fault_point



class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are a single line (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected layer sizes like 256,256, got {text!r}") from None
    return sizes


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def build_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    """An argparse parser with one flag per :class:`Config` field; defaults are suppressed
    so that only flags given explicitly appear in the parsed namespace."""
    parser = _Parser(
        prog=prog,
        description="Train DDPG (Lillicrap et al. 2015) with TensorFlow 2 / Keras 3.",
        argument_default=argparse.SUPPRESS,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                        help="starting configuration; any other flag overrides it")
    docs = field_docs()
    hints = typing.get_type_hints(Config)
    base = PRESETS[DEFAULT_PRESET]
    for f in dataclasses.fields(Config):
        kind = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        default = getattr(base, f.name)
        kwargs: dict[str, Any] = {"help": docs.get(f.name, "") + f" (default: {default})",
                                  "dest": f.name}
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(kind) is typing.Literal:
            parser.add_argument(flag, choices=typing.get_args(kind), **kwargs)
        elif kind == tuple[int, ...]:
            parser.add_argument(flag, type=_parse_sizes, metavar="N,N", **kwargs)
        elif kind is float:
            parser.add_argument(flag, type=_finite_float, metavar="X", **kwargs)
        elif kind is int:
            parser.add_argument(flag, type=int, metavar="N", **kwargs)
        else:
            parser.add_argument(flag, type=str, metavar="TEXT", **kwargs)
    parser.add_argument("--resume-from", type=_step, metavar="STEP", dest="resume_from",
                        help="with --resume: continue from checkpoint STEP instead of the latest (for "
                             "when the latest is damaged); later checkpoints are moved to "
                             "checkpoints/moved/, not deleted")
    return parser


def _step(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a checkpoint's step (an integer >= 0), got {text!r}")
    return value


def parse_command_line(argv: Sequence[str] | None = None) -> tuple[Config, set[str], int | None]:
    """Parse ``argv`` into a validated :class:`Config`, the set of fields given explicitly and
    ``--resume-from`` (None if not given).

    Raises :class:`UsageError` for an invalid combination of values; argparse itself exits
    with status 2 for malformed flags.
    """
    ns = vars(build_parser().parse_args(argv))
    preset = ns.pop("preset")
    resume_from = ns.pop("resume_from", None)
    try:
        config = preset_config(preset, ns.get("env_id")).replace(**ns).validate()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return config, set(ns), resume_from


def parse_config(argv: Sequence[str] | None = None) -> tuple[Config, set[str]]:
    """:func:`parse_command_line` without ``--resume-from``."""
    config, given, _ = parse_command_line(argv)
    return config, given


def flag_table_markdown() -> str:
    """The README's flag reference: one row per :class:`Config` field, with each preset's value."""

    def show(value: Any) -> str:
        if isinstance(value, tuple):
            return ",".join(map(str, value))
        return '""' if value == "" else str(value)

    names = sorted(PRESETS)
    docs = field_docs()
    rows = ["| flag | " + " | ".join(names) + " | meaning |", "|---" * (len(names) + 2) + "|"]
    for f in dataclasses.fields(Config):
        values = " | ".join(show(getattr(PRESETS[n], f.name)) for n in names)
        rows.append(f"| `--{f.name.replace('_', '-')}` | {values} | {docs[f.name].replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point of ``train.py``; ``prog`` is how the printed resume command starts
    (default: ``python`` and the script this process runs)."""
    previous = _terminate_with_interrupted()
    run_dir: Path | None = None
    try:
        config, given, resume_from = parse_command_line(argv)
        fault_point("start", None)
        from ddpg_tf.envs import check_env_id  # Gymnasium, not TensorFlow
        from ddpg_tf.rundir import resolve_run

        resolved, run_dir = resolve_run(config, given, resume_from)
        check_env_id(resolved.env_id)
        from ddpg_tf.training import train  # imports TensorFlow: only after every cheap check

        with warnings.catch_warnings():
            warnings.showwarning = one_line_warnings(warnings.showwarning)
            train(config, given=given, resume_from=resume_from)
    except StorageError as exc:
        fail(f"{exc}{_continue_hint(run_dir, prog)}", status=exit_status(exc))
    except DDPGError as exc:
        fail(str(exc), status=exit_status(exc))
    except KeyboardInterrupt as exc:  # Interrupted from learn(), or a signal before or after it
        signum = getattr(exc, "signum", signal.SIGINT)
        text = str(exc) if isinstance(exc, Interrupted) and str(exc) else f"interrupted by {_name(signum)}"
        hint = _continue_hint(run_dir, prog)
        if not hint and getattr(exc, "step", None) is None:
            text += " before training started; nothing was written"
        print(" ".join(f"{text}{hint}".split()), file=sys.stderr)
        return 128 + int(signum)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def one_line_warnings(show: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints this package's own warnings as one line,
    ``warning: ...``, and hands every other warning to ``show``."""
    def showwarning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    file: Any = None, line: str | None = None) -> None:
        if issubclass(category, SaturatedActorWarning):
            print(f"warning: {' '.join(str(message).split())}", file=sys.stderr if file is None else file)
        else:
            show(message, category, filename, lineno, file, line)
    return showwarning


def _terminate_with_interrupted() -> Any:
    """Make SIGTERM raise :class:`Interrupted` until ``learn`` takes over (it stops cleanly);
    returns the previous handler."""
    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(f"interrupted by {_name(signum)}", signum)

    return signal.signal(signal.SIGTERM, terminate)


def _name(signum: int) -> str:
    return signal.Signals(signum).name


def _continue_hint(run_dir: Path | None, prog: str | None) -> str:
    """'; continue with: python train.py --logdir ... --run-name ... --resume' when the run
    directory holds a run to resume, else ''."""
    if run_dir is None or not (run_dir / "config.json").is_file():
        return ""
    if prog is None:  # as this process was started: python path/train.py, or the ddpg-tf-train script
        script = sys.argv[0] if sys.argv else ""
        name = Path(script).name
        prog = (f"python {shlex.quote(script)}" if script.endswith(".py")
                else name if name.startswith("ddpg-tf") else "python train.py")
    args = ["--logdir", str(run_dir.parent), "--run-name", run_dir.name, "--resume"]
    return f"; continue with: {prog} {shlex.join(args)}"


def update_readme_flags(path: str = "docs/cli.md") -> None:
    """Rewrite the flag table between the CLI reference's ``flags:start``/``flags:end`` markers."""
    from pathlib import Path

    text = Path(path).read_text()
    start = text.index("-->", text.index("<!-- flags:start")) + len("-->\n")
    end = text.index("<!-- flags:end -->")
    Path(path).write_text(text[:start] + flag_table_markdown() + text[end:])


if __name__ == "__main__":  # python -m ddpg_tf.cli docs/cli.md: refresh the CLI reference's flag table
    update_readme_flags(*sys.argv[1:2])


__all__ = ["EXIT_INTERRUPTED", "EXIT_TRAINING_ERROR", "EXIT_USAGE", "ConfigError", "TrainingError",
           "UsageError", "build_parser", "flag_table_markdown", "main", "parse_command_line", "parse_config"]
