"""Training-config overrides: checked and typed on the way in (a flag string or a TOML value),
turned back into training-CLI flags on the way out to each trial."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from typing import Any, Literal

from ddpg_tf.config import Config
from ddpg_tf.experiments.spec import SpecError, flag_name

CONFIG_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(Config))
RUNNER_FIELDS: dict[str, str] = {
    "env_id": "use --envs", "seed": "use --seeds", "actor_update": "use --styles",
    "total_steps": "use --total-steps", "eval_every": "use --eval-every",
    "eval_episodes": "use --eval-episodes", "logdir": "use --out", "run_name": "trial names are fixed",
    "resume": "the runner resumes unfinished trials itself", "progress": "trials run without one",
}
"""Config fields the runner sets itself, with what to do instead of overriding them."""


def coerce_override(name: str, value: Any) -> Any:
    """Check that ``name`` is an overridable Config field and convert ``value`` (a flag string
    or a TOML value) to the field's type."""
    if name not in CONFIG_FIELDS:
        raise SpecError(f"--set {name}: no such training option (see python train.py --help)")
    if name in RUNNER_FIELDS:
        raise SpecError(f"--set {name} is set by the experiment runner; {RUNNER_FIELDS[name]}")
    kind = typing.get_type_hints(Config)[name]
    try:
        converted = _convert(kind, value)
    except ValueError:
        converted = None
    if converted is None:
        raise SpecError(f"--set {name} needs {_expected(kind)}, got {value!r}")
    return converted


_BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "1": True,
                  "false": False, "no": False, "off": False, "0": False}


def _convert(kind: Any, value: Any) -> Any:
    """``value`` as a ``kind`` (a Config field's type), or None if it is not one."""
    if kind is bool:
        return value if isinstance(value, bool) else _BOOLEAN_WORDS.get(str(value).strip().lower())
    if isinstance(value, bool):
        return None
    if kind == tuple[int, ...]:
        parts = value.replace(" ", "").split(",") if isinstance(value, str) else value
        if not isinstance(parts, list) or not all(isinstance(p, int | str) for p in parts):
            return None
        return tuple(int(p) for p in parts if p != "")
    if typing.get_origin(kind) is Literal:
        return value if value in typing.get_args(kind) else None
    if kind is int:
        return int(value) if isinstance(value, int | str) else None
    if kind is float:
        number = float(value) if isinstance(value, int | float | str) else math.nan
        return number if math.isfinite(number) else None
    return value if isinstance(value, str) else None


def _expected(kind: Any) -> str:
    if kind is bool:
        return "true or false"
    if kind == tuple[int, ...]:
        return "layer sizes like 256,256"
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(kind)))
    return {int: "an integer", float: "a finite number"}.get(kind, "a string")


def override_flags(overrides: Mapping[str, Any]) -> list[str]:
    """Training-CLI flags for Config ``overrides`` (``foo_bar`` -> ``--foo-bar``)."""
    flags: list[str] = []
    for name, value in overrides.items():
        flag = "--" + flag_name(name)
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag_name(name))
        elif isinstance(value, tuple):
            flags += [flag, ",".join(map(str, value))]
        else:
            flags += [flag, str(value)]
    return flags
