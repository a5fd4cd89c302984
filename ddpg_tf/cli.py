"""Command line generated from :class:`ddpg_tf.config.Config`.

Each dataclass field becomes a flag (``actor_lr`` -> ``--actor-lr``) whose help text is the
field's docstring. ``--preset NAME`` picks a starting :class:`Config`; flags given explicitly
override it. Usage errors print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Sequence
from typing import Any, NoReturn

from ddpg_tf.config import DEFAULT_PRESET, PRESETS, Config, field_docs
from ddpg_tf.errors import (EXIT_INTERRUPTED, EXIT_TRAINING_ERROR, EXIT_USAGE, ConfigError, DDPGError,
                             TrainingError, UsageError, exit_status, fail)



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
    return parser


def parse_config(argv: Sequence[str] | None = None) -> tuple[Config, set[str]]:
    """Parse ``argv`` into a validated :class:`Config` and the set of fields given explicitly.

    Raises :class:`UsageError` for an invalid combination of values; argparse itself exits
    with status 2 for malformed flags.
    """
    ns = vars(build_parser().parse_args(argv))
    preset = ns.pop("preset")
    try:
        config = PRESETS[preset].replace(**ns).validate()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return config, set(ns)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``train.py``."""
    try:
        config, given = parse_config(argv)
        from ddpg_tf.training import train  # imports TensorFlow; kept after flag checks

        train(config, given=given)
    except DDPGError as exc:
        fail(str(exc), status=exit_status(exc))
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def update_readme_flags(path: str = "docs/cli.md") -> None:
    """Rewrite the flag table between the CLI reference's ``flags:start``/``flags:end`` markers."""
    from pathlib import Path

    text = Path(path).read_text()
    start = text.index("-->", text.index("<!-- flags:start")) + len("-->\n")
    end = text.index("<!-- flags:end -->")
    Path(path).write_text(text[:start] + flag_table_markdown() + text[end:])


if __name__ == "__main__":  # python -m ddpg_tf.cli docs/cli.md: refresh the CLI reference's flag table
    update_readme_flags(*sys.argv[1:2])


__all__ = ["EXIT_TRAINING_ERROR", "EXIT_USAGE", "ConfigError", "TrainingError", "UsageError", "build_parser",
           "flag_table_markdown", "main", "parse_config"]
