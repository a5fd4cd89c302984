"""Reading an :class:`ExperimentSpec` from a TOML file, then from flags (a flag overrides the file).

Flags arrive as strings and TOML values typed; both go through the same converters, so a
value is checked the same way wherever it comes from, and every bad value is a one-line
:class:`SpecError`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ddpg_tf.config import field_docs
from ddpg_tf.errors import fail
from ddpg_tf.experiments.overrides import coerce_override
from ddpg_tf.experiments.spec import ExperimentSpec, SpecError, flag_name, validate


# --- values ----------------------------------------------------------------------------------
def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"``, ``"0-4"`` or a mix like ``"0-2,7"`` as a tuple of distinct seeds."""
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            raise SpecError(f"--seeds must look like 0,1,2 or 0-4, got {text!r}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise SpecError(f"--seeds range {part} runs backwards; write {last}-{first}")
        seeds.extend(range(first, last + 1))
    return _check_seeds(seeds)


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    if not seeds:
        raise SpecError("--seeds needs at least one seed")
    for k in seeds:
        if not 0 <= k < 2**32:
            raise SpecError(f"--seeds: seed {k} is outside [0, 2**32)")
    repeated = sorted({k for k in seeds if seeds.count(k) > 1})
    if repeated:
        raise SpecError(f"--seeds lists seed {repeated[0]} more than once")
    return tuple(seeds)


def _as_names(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise SpecError(f"--{flag_name(name)} must be a comma-separated list of names, got {value!r}")
    items = [v for v in items if v]
    if not items:
        raise SpecError(f"--{flag_name(name)} needs at least one name")
    repeated = sorted({v for v in items if items.count(v) > 1})
    if repeated:
        raise SpecError(f"--{flag_name(name)} lists {repeated[0]} more than once")
    return tuple(items)


def _as_seeds(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        return parse_seeds(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _check_seeds([value])
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return _check_seeds(value)
    raise SpecError(f"--seeds must look like 0,1,2 or 0-4 (or a TOML list of integers), got {value!r}")


def _as_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise SpecError(f"--{flag_name(name)} must be an integer, got {value!r}") from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(f"--{flag_name(name)} must be an integer, got {value!r}")
    if value < minimum:
        raise SpecError(f"--{flag_name(name)} must be >= {minimum}, got {value}")
    return value


def _as_budgets(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",") if p]
    elif isinstance(value, list):
        parts = value
    else:
        raise SpecError(f"--budgets must be a comma-separated list of steps, got {value!r}")
    budgets = tuple(sorted({_as_int(name, p, 1) for p in parts}))
    if not budgets:
        raise SpecError("--budgets needs at least one step")
    return budgets


def _as_float(name: str, value: Any, minimum: float) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise SpecError(f"--{flag_name(name)} must be a number, got {value!r}") from None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise SpecError(f"--{flag_name(name)} must be a finite number, got {value!r}")
    if value < minimum:
        raise SpecError(f"--{flag_name(name)} must be >= {minimum}, got {value}")
    return float(value)


def _as_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SpecError(f"--{flag_name(name)} must be a string, got {value!r}")
    return value


def _as_backend(name: str, value: Any) -> str:
    if value not in ("local", "ray"):
        raise SpecError(f"--backend must be local or ray, got {value!r}")
    return str(value)


_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "envs": _as_names,
    "presets": _as_names,
    "styles": _as_names,
    "libraries": _as_names,
    "seeds": _as_seeds,
    "total_steps": lambda n, v: _as_int(n, v, 1),
    "eval_every": lambda n, v: _as_int(n, v, 0),
    "eval_episodes": lambda n, v: _as_int(n, v, 1),
    "budgets": _as_budgets,
    "out": _as_str,
    "parallel": lambda n, v: _as_int(n, v, 0),
    "backend": _as_backend,
    "ray_address": _as_str,
    "cpus_per_trial": lambda n, v: _as_float(n, v, 0.0),
}
"""How each spec field (other than ``overrides``) is read from a flag string or a TOML value."""


# --- a spec file, then flags -----------------------------------------------------------------
def load_spec_file(path: Path) -> dict[str, Any]:
    """The spec fields set in TOML file ``path``, converted and checked."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec file {path} is not valid TOML: {exc}") from None
    names = {f.name for f in dataclasses.fields(ExperimentSpec)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SpecError(f"{path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(names))}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "overrides":
            if not isinstance(value, dict):
                raise SpecError(f"{path}: overrides must be a table ([overrides] with key = value lines)")
            values[key] = {k: coerce_override(k, v) for k, v in value.items()}
        else:
            values[key] = _CONVERTERS[key](key, value)
    return values


_METAVARS = {"envs": "ID,ID", "presets": "NAME,NAME", "styles": "STYLE,STYLE", "libraries": "LIB,LIB",
             "seeds": "SEEDS",
             "total_steps": "N", "eval_every": "N", "eval_episodes": "N", "budgets": "N,N", "out": "DIR",
             "parallel": "N", "backend": "{local,ray}", "ray_address": "ADDR", "cpus_per_trial": "X"}


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line on stderr with exit status 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    """The runner's command line: a spec file, then one flag per :class:`ExperimentSpec` field."""
    parser = _Parser(prog="python -m ddpg_tf.experiments",
                     description="Run envs × presets × actor-update styles × seeds and compare the "
                                 "styles; see the module docstring of ddpg_tf.experiments.",
                     argument_default=argparse.SUPPRESS)
    parser.add_argument("spec", nargs="?", type=Path, default=None,
                        help="TOML spec file (keys: the flags below, with _ for -, and an [overrides] "
                             "table); flags override it")
    docs = field_docs(ExperimentSpec)
    for f in dataclasses.fields(ExperimentSpec):
        if f.name == "overrides":
            parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                                help=docs[f.name])
        else:
            default = getattr(ExperimentSpec(), f.name)
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            parser.add_argument("--" + flag_name(f.name), dest=f.name, metavar=_METAVARS[f.name],
                                help=f"{docs[f.name]} (default: {shown if shown != '' else 'empty'})")
    parser.add_argument("--report-only", action="store_true", default=False,
                        help="rebuild curves.csv, summary.md, stats.json, failures.csv and the plots "
                             "from the existing run directories, without training")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[ExperimentSpec, bool, str]:
    """The resolved spec (file, then flags), whether to only report, and the experiment's name.

    Raises :class:`SpecError` for any invalid value.
    """
    ns = vars(build_parser().parse_args(argv))
    report_only = ns.pop("report_only")
    spec_path: Path | None = ns.pop("spec")
    values = load_spec_file(spec_path) if spec_path is not None else {}
    overrides = dict(values.get("overrides", {}))
    for item in ns.pop("overrides", []):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set needs KEY=VALUE, got {item!r}")
        overrides[key.strip()] = coerce_override(key.strip(), value.strip())
    values["overrides"] = overrides
    for key, value in ns.items():
        values[key] = _CONVERTERS[key](key, value)
    spec = ExperimentSpec(**values).resolved(spec_path.stem if spec_path is not None else "experiment")
    validate(spec)
    return spec, report_only, spec_path.stem if spec_path is not None else "experiment"
