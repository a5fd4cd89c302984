"""Run a grid of training runs (envs × presets × actor-update styles × seeds) and compare styles.

    python -m ddpg_tf.experiments experiments/pendulum_styles.toml
    python -m ddpg_tf.experiments --envs Pendulum-v1 --styles direct,chain-rule --seeds 0-4 \\
        --total-steps 20000 --eval-every 1000 --out runs/experiments/pendulum
    python -m ddpg_tf.experiments experiments/halfcheetah.toml --backend ray --ray-address auto

**Spec.** An optional TOML file whose keys are the fields of :class:`ExperimentSpec` (Config
overrides in an ``[overrides]`` table), then flags; a flag overrides the file. See
``experiments/*.toml`` and ``--help``.

**Trials.** Each env × preset × style × seed is one trial named
``{env}__{preset}__{style}__seed{k}``. A trial is one run of the training CLI
(:func:`ddpg_tf.cli.main`) in a fresh Python process, so TensorFlow's state and thread pools
are never shared; its run directory is ``OUT/runs/NAME`` and its output goes to
``OUT/logs/NAME.log``. Running the same command again skips finished trials (their
``evaluations.csv`` has a row at the final step), resumes unfinished ones from their latest
checkpoint (``--resume``) and starts those without a checkpoint afresh, so a killed experiment
continues where it stopped. Each trial gets ``--threads`` (and ``OMP_NUM_THREADS``) =
``cpus_per_trial``, by default ``max(1, os.cpu_count() // parallel)``, unless the overrides
set ``threads``; a resumed trial keeps the thread count it was started with.

**Backends.** ``local`` (default) runs at most ``--parallel`` trials at once from a thread pool,
each thread waiting on its trial's process; the processes run in their own session, so Ctrl-C
reaches only the runner, which forwards SIGINT to every running trial (the training CLI then
stops, keeping its last checkpoint), waits up to 30 s, kills what is left and exits with 130.
``ray`` runs the same trial processes from Ray Tune: a function trainable launches the process,
reports each new evaluation row to Tune while it runs and the exit status at the end, and
``tune.with_resources`` / ``max_concurrent_trials`` do the placement and throttling. Tune rather
than plain remote tasks because it already provides what the runner needs on a cluster
(resource-aware queueing, per-trial status callbacks on the driver, live metrics, a record of
failed trials) with no code of ours; its own search and scheduling features are not used (the
grid is fixed). ``ray.init(address=--ray-address)`` attaches to a running cluster; without an
address a local Ray instance is started and shut down at the end. Ctrl-C lets Tune stop its
trials; a trial's process ends with the worker that launched it (on Linux it asks for SIGTERM
when its launcher dies), keeping its last complete checkpoint. Tune's bookkeeping goes to
``OUT/ray``; the trial's run directory is the same ``OUT/runs/NAME`` as with the local backend,
so results are collected identically. On a multi-node cluster ``OUT`` must be on a filesystem
all nodes share, and every node must be able to import ``ddpg_tf`` (installed, or at the same
path as on the driver, which is put on ``PYTHONPATH``).

**Outputs** (rebuilt from the run directories alone with ``--report-only``):
``curves.csv`` (every evaluation of every trial), ``summary.md`` (per env × preset: mean ±
std across seeds at each budget, the bootstrap interval of each style's mean and the style
comparison), ``stats.json`` (the same numbers), ``failures.csv`` (always written; a header
only when every trial finished) and ``plots/{env}__{preset}.png`` (mean curve per style and
its 95% percentile-bootstrap interval across seeds; needs matplotlib). The statistics are in
:mod:`ddpg_tf.stats`.

Exit status: 0 every trial finished, 1 some trial failed (the reports are still written),
2 usage error (one line on stderr), 130 interrupted. The runner itself never imports
TensorFlow.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import dataclasses
import datetime
import io
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

import numpy as np

from ddpg_tf import stats
from ddpg_tf.config import field_docs
from ddpg_tf.errors import EXIT_TRAINING_ERROR, fail
from ddpg_tf.config import ACTOR_UPDATES, PRESETS, Config, ConfigError

EXIT_INTERRUPTED = 130
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
"""The directory holding the ``ddpg_tf`` package; put on each trial's ``PYTHONPATH``."""
EVAL_FILE = "evaluations.csv"
EVAL_HEADER = ("step", "return_mean", "return_std", "episodes")
CURVE_HEADER = ("trial", "env", "preset", "style", "seed", *EVAL_HEADER)
FAILURE_HEADER = ("trial", "exit_code", "last_stderr_line", "log")
"""Columns of failures.csv; ``log`` is relative to the output directory."""
STOP_GRACE_SECONDS = 30.0
"""How long interrupted trials get to exit on their own before they are killed."""
DEFAULT_BUDGETS = 5
"""Number of evenly spaced evaluation steps the summary reports when no budgets are given."""
_CHILD_CODE = ("import sys; from ddpg_tf.experiments import run_training_child; "
               "sys.exit(run_training_child(sys.argv[1:]))")
_PARENT_PID_VAR = "DDPG_TF_EXPERIMENT_PARENT"


class SpecError(ValueError):
    """An experiment spec value a user supplied is invalid (one line, exit status 2)."""


# --------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExperimentSpec:
    """What to run and how: the grid of trials, their budget, and where and how to run them."""

    envs: tuple[str, ...] = ("Pendulum-v1",)
    """Gymnasium environment ids (comma-separated on the command line)."""
    presets: tuple[str, ...] = ("pendulum",)
    """Presets of ddpg_tf.config.PRESETS each trial starts from (comma-separated)."""
    styles: tuple[str, ...] = ("direct", "chain-rule")
    """Actor-update styles to compare (comma-separated); every pair is compared as later − earlier."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds, such as `0,1,2` or `0-4` or `0-2,7`; every env × preset × style runs each seed."""
    total_steps: int = 10_000
    """Environment steps per trial."""
    eval_every: int = 1_000
    """Evaluate every this many steps (and at the final step); 0 evaluates only at the end."""
    eval_episodes: int = 10
    """Deterministic episodes per evaluation."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Training Config fields set for every trial: `--set key=value` (repeatable) or a TOML table
    [overrides]; a flag `foo_bar` becomes `--foo-bar`, booleans `--foo`/`--no-foo`."""
    budgets: tuple[int, ...] = ()
    """Steps at which the summary reports mean ± std and compares the styles (evaluation steps);
    empty: up to five evenly spaced evaluation steps, the last one the final step."""
    out: str = ""
    """Output directory; empty: runs/experiments/NAME, NAME being the spec file's stem (or
    `experiment` without a spec file)."""
    parallel: int = 0
    """Trials running at once; 0: os.cpu_count()."""
    backend: Literal["local", "ray"] = "local"
    """`local` (a process per trial, at most `parallel` at once) or `ray` (Ray Tune; needs the
    `ray` extra)."""
    ray_address: str = ""
    """Address of a running Ray cluster for ray.init(address=...) (`auto` finds a local one);
    empty: start a local Ray instance."""
    cpus_per_trial: float = 0.0
    """CPUs reserved per trial (Ray resources) and, unless `threads` is overridden, the trial's
    TensorFlow thread count (rounded down, at least 1); 0: max(1, os.cpu_count() // parallel)."""

    def resolved(self, name: str) -> ExperimentSpec:
        """This spec with the machine-dependent defaults (0 / empty) filled in."""
        parallel = self.parallel or (os.cpu_count() or 1)
        cpus = self.cpus_per_trial or float(max(1, (os.cpu_count() or 1) // parallel))
        out = self.out or str(Path("runs") / "experiments" / name)
        budgets = self.budgets or default_budgets(self.total_steps, self.eval_every)
        return dataclasses.replace(self, parallel=parallel, cpus_per_trial=cpus, out=out, budgets=budgets)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}


def default_budgets(total_steps: int, eval_every: int, count: int = DEFAULT_BUDGETS) -> tuple[int, ...]:
    """Up to ``count`` evenly spaced evaluation steps, the last one ``total_steps``."""
    steps = evaluation_steps(total_steps, eval_every)
    if len(steps) <= count:
        return steps
    return tuple(steps[round(len(steps) * i / count) - 1] for i in range(1, count + 1))


def evaluation_steps(total_steps: int, eval_every: int) -> tuple[int, ...]:
    """The steps at which a run with these settings evaluates (the final step always)."""
    steps = list(range(eval_every, total_steps, eval_every)) if eval_every else []
    return (*steps, total_steps)


# --- value parsing: flags arrive as strings, TOML values typed; both go through these -----
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
        raise SpecError(f"--{_flag(name)} must be a comma-separated list of names, got {value!r}")
    items = [v for v in items if v]
    if not items:
        raise SpecError(f"--{_flag(name)} needs at least one name")
    repeated = sorted({v for v in items if items.count(v) > 1})
    if repeated:
        raise SpecError(f"--{_flag(name)} lists {repeated[0]} more than once")
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
            raise SpecError(f"--{_flag(name)} must be an integer, got {value!r}") from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(f"--{_flag(name)} must be an integer, got {value!r}")
    if value < minimum:
        raise SpecError(f"--{_flag(name)} must be >= {minimum}, got {value}")
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
            raise SpecError(f"--{_flag(name)} must be a number, got {value!r}") from None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise SpecError(f"--{_flag(name)} must be a finite number, got {value!r}")
    if value < minimum:
        raise SpecError(f"--{_flag(name)} must be >= {minimum}, got {value}")
    return float(value)


def _as_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SpecError(f"--{_flag(name)} must be a string, got {value!r}")
    return value


def _as_backend(name: str, value: Any) -> str:
    if value not in ("local", "ray"):
        raise SpecError(f"--backend must be local or ray, got {value!r}")
    return str(value)


_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "envs": _as_names,
    "presets": _as_names,
    "styles": _as_names,
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


# --- training-config overrides ------------------------------------------------------------
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
        flag = "--" + _flag(name)
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + _flag(name))
        elif isinstance(value, tuple):
            flags += [flag, ",".join(map(str, value))]
        else:
            flags += [flag, str(value)]
    return flags


def _flag(name: str) -> str:
    return name.replace("_", "-")


# --- reading a spec from a file and flags ---------------------------------------------------
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


_METAVARS = {"envs": "ID,ID", "presets": "NAME,NAME", "styles": "STYLE,STYLE", "seeds": "SEEDS",
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
            parser.add_argument("--" + _flag(f.name), dest=f.name, metavar=_METAVARS[f.name],
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


def validate(spec: ExperimentSpec) -> None:
    """Check names, budgets and that every preset × style builds a valid training Config."""
    for preset in spec.presets:
        if preset not in PRESETS:
            raise SpecError(f"unknown preset {preset!r}; choose from {', '.join(sorted(PRESETS))}")
    for style in spec.styles:
        if style not in ACTOR_UPDATES:
            raise SpecError(f"unknown style {style!r}; choose from {', '.join(ACTOR_UPDATES)}")
    steps = set(evaluation_steps(spec.total_steps, spec.eval_every))
    for budget in spec.budgets:
        if budget not in steps:
            raise SpecError(f"--budgets {budget} is not an evaluation step (every {spec.eval_every} "
                            f"steps and the final step {spec.total_steps})")
    if spec.cpus_per_trial <= 0:
        raise SpecError(f"--cpus-per-trial must be positive, got {spec.cpus_per_trial}")
    for preset in spec.presets:
        for style in spec.styles:
            try:
                PRESETS[preset].replace(actor_update=style, total_steps=spec.total_steps,
                                        eval_every=spec.eval_every, eval_episodes=spec.eval_episodes,
                                        seed=spec.seeds[0], **spec.overrides).validate()
            except ConfigError as exc:
                raise SpecError(f"preset {preset}, style {style}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Trials
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trial:
    """One training run of the grid."""

    env: str
    preset: str
    style: str
    seed: int

    @property
    def name(self) -> str:
        """The run directory and log name: ``{env}__{preset}__{style}__seed{k}``."""
        return f"{_safe(self.env)}__{self.preset}__{self.style}__seed{self.seed}"


def _safe(env_id: str) -> str:
    """An environment id as a file-name part (``ALE/Pong-v5`` -> ``ALE_Pong-v5``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", env_id)


def trials_of(spec: ExperimentSpec) -> list[Trial]:
    """Every trial of the grid, in env, preset, style, seed order."""
    return [Trial(env, preset, style, seed) for env in spec.envs for preset in spec.presets
            for style in spec.styles for seed in spec.seeds]


def read_evaluations(run_dir: Path) -> list[tuple[str, ...]]:
    """The complete rows of ``run_dir/evaluations.csv`` as text (a partial last line is skipped)."""
    path = run_dir / EVAL_FILE
    try:
        lines = path.read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return []
    rows = []
    for row in csv.reader(lines[1:]):
        if len(row) == len(EVAL_HEADER) and row[0].isdigit():
            rows.append(tuple(row))
    return rows


def is_finished(run_dir: Path, total_steps: int) -> bool:
    """Whether the run has evaluated at its final step ``total_steps``."""
    return any(int(row[0]) == total_steps for row in read_evaluations(run_dir))


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a saved config and a complete checkpoint to ``--resume`` from."""
    ckpt_dir = run_dir / "checkpoints"
    return ((run_dir / "config.json").is_file() and (ckpt_dir / "checkpoint").is_file()
            and any(ckpt_dir.glob("ckpt-*.index")))


@dataclass(frozen=True)
class Job:
    """A trial to launch: its command and where its output goes (plain data, so Ray can ship it)."""

    name: str
    command: tuple[str, ...]
    run_dir: str
    log: str
    cwd: str
    threads: int
    mode: str
    """``fresh`` or ``resume``."""


@dataclass(frozen=True)
class Outcome:
    """How a launched trial ended."""

    name: str
    exit_code: int | None
    """The process's exit status; None if it never started or its launcher failed."""
    wall_time: float
    last_line: str
    """The last non-empty line the trial wrote (its error message when it failed)."""


def plan(spec: ExperimentSpec, out: Path) -> tuple[list[Job], list[Trial]]:
    """The jobs to launch and the trials already finished. Removes the run directory of an
    unfinished trial that has no checkpoint (it holds nothing to continue from)."""
    jobs, finished = [], []
    for trial in trials_of(spec):
        run_dir = out / "runs" / trial.name
        if is_finished(run_dir, spec.total_steps):
            finished.append(trial)
            continue
        threads = int(spec.overrides.get("threads", max(1, int(spec.cpus_per_trial))))
        if has_checkpoint(run_dir):
            mode = "resume"
            saved = _saved_config(run_dir)
            if "threads" in CONFIG_FIELDS and "threads" not in spec.overrides and "threads" in saved:
                threads = int(saved["threads"])  # a resumed run keeps its thread count
        else:
            mode = "fresh"
            if run_dir.exists():
                shutil.rmtree(run_dir)
        command = trial_command(spec, trial, out, threads, resume=mode == "resume")
        jobs.append(Job(trial.name, tuple(command), str(run_dir), str(out / "logs" / f"{trial.name}.log"),
                        os.getcwd(), threads, mode))
    return jobs, finished


def _saved_config(run_dir: Path) -> dict[str, Any]:
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def trial_command(spec: ExperimentSpec, trial: Trial, out: Path, threads: int, resume: bool) -> list[str]:
    """The command line of one trial: the training CLI in a fresh Python process."""
    flags = ["--preset", trial.preset, "--env-id", trial.env, "--actor-update", trial.style,
             "--seed", str(trial.seed), "--total-steps", str(spec.total_steps),
             "--eval-every", str(spec.eval_every), "--eval-episodes", str(spec.eval_episodes),
             "--logdir", str(out / "runs"), "--run-name", trial.name, "--no-progress"]
    if "threads" in CONFIG_FIELDS and "threads" not in spec.overrides:
        flags += ["--threads", str(threads)]
    flags += override_flags(spec.overrides)
    if resume:
        flags.append("--resume")
    return [sys.executable, "-c", _CHILD_CODE, *flags]


def run_training_child(argv: Sequence[str]) -> int:
    """Entry point of a trial's process: end with the launcher, then run the training CLI."""
    expected_parent = os.environ.pop(_PARENT_PID_VAR, "")
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        try:  # SIGTERM when the launching thread dies (a killed runner leaves no orphans)
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if expected_parent and str(os.getppid()) != expected_parent:
        return EXIT_INTERRUPTED  # the launcher was gone before we could follow it
    from ddpg_tf.cli import main

    return main(list(argv))


def launch(job: Job, register: Callable[[subprocess.Popen], bool] | None = None,
           poll: Callable[[], None] | None = None, poll_seconds: float = 2.0) -> Outcome:
    """Run one trial's process to its end, its output appended to ``job.log``.

    ``register(proc)`` is called right after the start (returning False stops the trial at
    once); ``poll()`` is called every ``poll_seconds`` while it runs.
    """
    log = Path(job.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=_pythonpath())
    if job.threads > 0:  # threads = 0 leaves TensorFlow (and OpenMP) their defaults
        env["OMP_NUM_THREADS"] = str(job.threads)
    env[_PARENT_PID_VAR] = str(os.getpid())
    start = time.perf_counter()
    with log.open("ab") as fh:
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        fh.write(f"=== {stamp} {job.mode}: {shlex.join(job.command)}\n".encode())
        fh.flush()
        attempt_start = fh.tell()
        proc = subprocess.Popen(job.command, cwd=job.cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            if register is not None and not register(proc):
                proc.send_signal(signal.SIGINT)
            while True:
                try:
                    code = proc.wait(timeout=poll_seconds if poll is not None else None)
                    break
                except subprocess.TimeoutExpired:
                    if poll is not None:
                        poll()
        finally:
            if proc.poll() is None:  # our waiting was cut short: do not leave the trial behind
                _stop(proc)
    return Outcome(job.name, code, time.perf_counter() - start, _last_line(log, attempt_start))


def _stop(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _last_line(log: Path, offset: int) -> str:
    try:
        with log.open("rb") as fh:
            fh.seek(max(offset, log.stat().st_size - 65536))
            tail = fh.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------
class _Console:
    """One line per trial event on stdout, whole lines even from several threads."""

    def __init__(self, total: int) -> None:
        self.total, self.started = total, 0
        self.lock = threading.Lock()

    def __getstate__(self) -> dict[str, int]:  # Ray Tune pickles its callbacks
        return {"total": self.total, "started": self.started}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__(state["total"])  # type: ignore[misc]
        self.started = state["started"]

    def line(self, text: str) -> None:
        with self.lock:
            sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
            sys.stdout.flush()

    def start(self, job: Job) -> None:
        with self.lock:
            self.started += 1
            count = self.started
        self.line(f"start  {job.name} ({count}/{self.total}, {job.mode})")

    def end(self, outcome: Outcome, log: str) -> None:
        if outcome.exit_code == 0:
            self.line(f"done   {outcome.name} in {outcome.wall_time:.1f} s")
        elif outcome.exit_code in (EXIT_INTERRUPTED, -signal.SIGINT):
            self.line(f"stopped {outcome.name} after {outcome.wall_time:.1f} s (interrupted)")
        else:
            self.line(f"FAILED {outcome.name}: exit {outcome.exit_code} after {outcome.wall_time:.1f} s: "
                      f"{outcome.last_line} (log: {log})")


class Interrupted(Exception):
    """The experiment was interrupted; carries the outcomes of the trials that ended."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        super().__init__("interrupted")
        self.outcomes = outcomes


def run_local(jobs: Sequence[Job], parallel: int, console: _Console) -> list[Outcome]:
    """Run ``jobs`` as processes, at most ``parallel`` at once; on Ctrl-C stop them all and
    raise :class:`Interrupted`."""
    lock = threading.Lock()
    running: dict[str, subprocess.Popen] = {}
    outcomes: list[Outcome] = []
    stopping = threading.Event()

    def register(name: str, proc: subprocess.Popen) -> bool:
        with lock:
            running[name] = proc
            return not stopping.is_set()

    def run_one(job: Job) -> None:
        if stopping.is_set():
            return
        console.start(job)
        outcome = launch(job, register=lambda proc: register(job.name, proc))
        with lock:
            running.pop(job.name, None)
            outcomes.append(outcome)
        console.end(outcome, job.log)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(parallel, len(jobs))))
    try:
        futures = [pool.submit(run_one, job) for job in jobs]
        for future in concurrent.futures.as_completed(futures):
            future.result()
    except KeyboardInterrupt:
        stopping.set()
        with lock:
            procs = list(running.values())
        console.line(f"interrupted: stopping {len(procs)} running trial(s); they keep their last checkpoint")
        _stop_all(procs)
        pool.shutdown(wait=True, cancel_futures=True)
        raise Interrupted(list(outcomes)) from None
    pool.shutdown(wait=True)
    return outcomes


def _stop_all(procs: Sequence[subprocess.Popen]) -> None:
    """SIGINT to every process, up to :data:`STOP_GRACE_SECONDS` for them to exit, then SIGKILL
    (at once on a second Ctrl-C)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    try:
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
    except KeyboardInterrupt:
        for proc in procs:
            proc.kill()


def _tune_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: run one trial's process, report its evaluations as they
    appear and its exit status at the end."""
    from ray import tune

    job = Job(**{**config["job"], "command": tuple(config["job"]["command"])})
    reported = 0

    def report_new_rows() -> None:
        nonlocal reported
        rows = read_evaluations(Path(job.run_dir))
        for row in rows[reported:]:
            tune.report({"step": int(row[0]), "return_mean": float(row[1]), "return_std": float(row[2]),
                         "finished": False})
        reported = len(rows)

    outcome = launch(job, poll=report_new_rows)
    report_new_rows()
    tune.report({"finished": True, "exit_code": outcome.exit_code, "wall_time": outcome.wall_time,
                 "last_line": outcome.last_line})


def run_ray(jobs: Sequence[Job], spec: ExperimentSpec, out: Path, console: _Console) -> list[Outcome]:
    """Run ``jobs`` as Ray Tune trials (see the module docstring); raise :class:`Interrupted`
    if Tune stopped before every trial ended."""
    import logging

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic reporter honours verbose=0
    import ray
    from ray import tune

    init_args: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR,
                                 "runtime_env": {"env_vars": {"PYTHONPATH": _pythonpath()}}}
    try:
        if spec.ray_address:
            ray.init(address=spec.ray_address, **init_args)
        else:
            ray.init(include_dashboard=False, **init_args)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        target = spec.ray_address or "a local Ray instance"
        raise SpecError(f"cannot start or reach {target}: {exc}") from None

    class Reporter(tune.Callback):
        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            console.start(Job(**{**trial.config["job"], "command": ()}))

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            outcome = _ray_outcome(trial.config["job"], trial.last_result or {}, None)
            console.end(outcome, trial.config["job"]["log"])

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            outcome = _ray_outcome(trial.config["job"], trial.last_result or {}, "the Ray trial failed")
            console.end(outcome, trial.config["job"]["log"])

    storage = out.absolute() / "ray"
    shutil.rmtree(storage / "tune", ignore_errors=True)  # Tune's bookkeeping of an earlier invocation
    trainable = tune.with_resources(_tune_trainable, {"cpu": spec.cpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        param_space={"job": tune.grid_search([dataclasses.asdict(job) for job in jobs])},
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.parallel, reuse_actors=False,
                                    trial_name_creator=_tune_name, trial_dirname_creator=_tune_name),
        run_config=tune.RunConfig(name="tune", storage_path=str(storage), verbose=0,
                                  callbacks=[Reporter()], failure_config=tune.FailureConfig(max_failures=0)),
    )
    try:
        grid = tuner.fit()
        outcomes = []
        for result in grid:
            job = result.config["job"] if result.config else None
            if job is None:
                continue
            error = None if result.error is None else str(result.error).strip().splitlines()[-1:]
            outcome = _ray_outcome(job, result.metrics or {}, error[0] if error else None)
            if outcome.exit_code is not None or error:
                outcomes.append(outcome)
    except KeyboardInterrupt:
        raise Interrupted([]) from None
    finally:
        ray.shutdown()  # stops the local instance; only disconnects from a cluster
    if len(outcomes) < len(jobs):  # Tune was stopped (Ctrl-C) before every trial ended
        raise Interrupted(outcomes)
    return outcomes


def _tune_name(trial: Any) -> str:
    return str(trial.config["job"]["name"])


def _ray_outcome(job: Mapping[str, Any], metrics: Mapping[str, Any], error: str | None) -> Outcome:
    code = metrics.get("exit_code")
    return Outcome(job["name"], None if code is None else int(code), float(metrics.get("wall_time", 0.0)),
                   error or str(metrics.get("last_line", "")))


def _pythonpath() -> str:
    """``PYTHONPATH`` with the directory holding this ``ddpg_tf`` first."""
    return os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p)


# --------------------------------------------------------------------------------------------
# Collection and reports
# --------------------------------------------------------------------------------------------
@dataclass
class Group:
    """The trials of one env × preset and their evaluation returns."""

    env: str
    preset: str
    styles: tuple[str, ...]
    values: dict[str, dict[int, dict[int, float]]] = field(default_factory=dict)
    """style -> seed -> step -> evaluation mean return."""


def collect(spec: ExperimentSpec, out: Path) -> tuple[list[tuple[str, ...]], list[Group]]:
    """Every evaluation row of every trial (curves.csv rows) and the values grouped by
    env × preset × style × seed; rows after ``total_steps`` are left out."""
    rows: list[tuple[str, ...]] = []
    groups = {(env, preset): Group(env, preset, spec.styles) for env in spec.envs for preset in spec.presets}
    for trial in trials_of(spec):
        group = groups[(trial.env, trial.preset)]
        curve = group.values.setdefault(trial.style, {})
        for row in read_evaluations(out / "runs" / trial.name):
            step = int(row[0])
            if step > spec.total_steps:
                continue
            rows.append((trial.name, trial.env, trial.preset, trial.style, str(trial.seed), *row))
            curve.setdefault(trial.seed, {})[step] = float(row[1])
    return rows, list(groups.values())


def group_stats(group: Group, budgets: Sequence[int]) -> dict[str, Any]:
    """Per style and budget: mean, std and bootstrap interval of the mean across seeds; per pair
    of styles and budget: the difference of means with its bootstrap interval and verdict."""
    per_style: dict[str, dict[str, Any]] = {}
    at: dict[tuple[str, int], dict[int, float]] = {}
    for style in group.styles:
        seeds = group.values.get(style, {})
        per_budget = {}
        for budget in budgets:
            values = {seed: curve[budget] for seed, curve in seeds.items() if budget in curve}
            at[(style, budget)] = values
            if values:
                summary = stats.mean_ci([values[k] for k in sorted(values)])
                per_budget[str(budget)] = {"n": summary.n, "seeds": sorted(values), "mean": summary.mean,
                                           "std": summary.std, "ci": [summary.low, summary.high]}
        per_style[style] = {"seeds": sorted(seeds), "budgets": per_budget}
    comparisons = []
    for i, a in enumerate(group.styles):
        for b in group.styles[i + 1:]:
            for budget in budgets:
                if at[(a, budget)] and at[(b, budget)]:
                    c = stats.compare(at[(a, budget)], at[(b, budget)])
                    comparisons.append({"a": a, "b": b, "budget": budget, "design": c.design, "n_a": c.n_a,
                                        "n_b": c.n_b, "difference": c.difference, "ci": [c.low, c.high],
                                        "verdict": c.verdict})
    return {"env": group.env, "preset": group.preset, "budgets": list(budgets), "styles": per_style,
            "comparisons": comparisons}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _num(value: float | None) -> str:
    """A return for a markdown table: one decimal from 10 up, three significant digits below,
    a typographic minus."""
    if value is None or math.isnan(value):
        return "–"
    text = f"{value:.1f}" if abs(value) >= 10 or value == 0 else f"{value:#.3g}"
    return text.replace("-", "−")


def _steps(step: int) -> str:
    if step % 1_000_000 == 0:
        return f"{step // 1_000_000}M"
    if step % 1_000 == 0:
        return f"{step // 1_000}k"
    return f"{step:,}"


def _interval(ci: Sequence[float | None]) -> str:
    return "–" if ci[0] is None or ci[1] is None or math.isnan(ci[0]) else f"[{_num(ci[0])}, {_num(ci[1])}]"


def summary_markdown(spec: ExperimentSpec, results: list[dict[str, Any]], failures: list[tuple[str, ...]],
                     plots: Mapping[str, str], source: str) -> str:
    """``summary.md``: per env × preset the mean ± std table, the intervals of the means and the
    style comparison, ready to paste into the docs."""
    overrides = ", ".join(f"`{k}={_show(v)}`" for k, v in spec.overrides.items()) or "none"
    lines = [
        "# Experiment results", "",
        f"Generated by `{source}`: {_plural(len(trials_of(spec)), 'trial')}, "
        f"{_plural(len(spec.envs), 'environment')} ({', '.join(spec.envs)}) × "
        f"{_plural(len(spec.presets), 'preset')} ({', '.join(spec.presets)}) × "
        f"{_plural(len(spec.styles), 'style')} × {_plural(len(spec.seeds), 'seed')} "
        f"({_seed_list(spec.seeds)}), {spec.total_steps:,} steps each, evaluated every "
        f"{spec.eval_every:,} steps and at the end over "
        f"{_plural(spec.eval_episodes, 'deterministic episode')}; overrides: {overrides}.",
        "",
        "A trial's value at a budget is its evaluation return (the mean over the evaluation "
        "episodes) at that many environment steps; tables give the mean ± standard deviation "
        f"(ddof 1) of those values across seeds. Intervals are {stats.CONFIDENCE:.0%} "
        f"percentile-bootstrap intervals over seeds ({stats.RESAMPLES:,} resamples, RNG seed "
        f"{stats.SEED}); with few seeds they are narrower than t-intervals, so a verdict whose "
        "interval only just excludes 0 needs more seeds. Style comparisons are paired over seeds "
        "when both styles ran the same seeds (a seed fixes the initial weights, the replay sampling "
        "and the environment seeds) and unpaired otherwise.",
        "",
    ]
    if failures:
        lines += [f"**{_plural(len(failures), 'trial')} did not finish** (see `failures.csv`); the "
                  "tables use the evaluations that exist.", ""]
    for result in results:
        lines += [f"## {result['env']}, preset `{result['preset']}`", ""]
        if not any(data["seeds"] for data in result["styles"].values()):
            lines += ["No trial of this group has evaluated yet (see `failures.csv`).", ""]
            continue
        lines += _results_tables(result, len(spec.seeds))
        if result["comparisons"]:
            lines += _comparison_table(result)
        plot = plots.get(f"{result['env']}__{result['preset']}")
        if plot:
            title = f"{result['env']}, preset {result['preset']}: evaluation return per style"
            lines += [f"![{title}]({plot})", "",
                      f"Mean across seeds per style; shaded: {stats.CONFIDENCE:.0%} percentile-bootstrap "
                      "interval of the mean.", ""]
    return "\n".join(lines)


def _results_tables(result: Mapping[str, Any], planned_seeds: int) -> list[str]:
    """Mean ± std per style and budget (with the seed count where some are missing), then the
    bootstrap interval of each mean."""
    budgets = result["budgets"]
    head = " | ".join(_steps(b) for b in budgets)
    lines = ["Evaluation return at each budget (environment steps), mean ± std across seeds:", "",
             f"| style | seeds | {head} |", "|---" * (len(budgets) + 2) + "|"]
    for style, data in result["styles"].items():
        cells = []
        for b in budgets:
            cell = data["budgets"].get(str(b))
            if cell is None:
                cells.append("–")
                continue
            text = _num(cell["mean"]) if cell["n"] < 2 else f"{_num(cell['mean'])} ± {_num(cell['std'])}"
            cells.append(text + (f" (n={cell['n']})" if cell["n"] != len(data["seeds"]) else ""))
        seeds = len(data["seeds"])
        count = str(seeds) if seeds == planned_seeds else f"{seeds} of {planned_seeds}"
        lines.append(f"| {style} | {count} | " + " | ".join(cells) + " |")
    lines += ["", f"{stats.CONFIDENCE:.0%} bootstrap interval of the mean:", "",
              f"| style | {head} |", "|---" * (len(budgets) + 1) + "|"]
    for style, data in result["styles"].items():
        cells = [_interval(data["budgets"][str(b)]["ci"]) if str(b) in data["budgets"] else "–"
                 for b in budgets]
        lines.append(f"| {style} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _comparison_table(result: Mapping[str, Any]) -> list[str]:
    lines = [f"Style comparison: difference of means B − A with its {stats.CONFIDENCE:.0%} bootstrap "
             "interval; the styles differ where the interval excludes 0.", "",
             "| B − A | steps | design | difference | interval | verdict |", "|---|---|---|---|---|---|"]
    for c in result["comparisons"]:
        design = (f"paired, {_plural(c['n_a'], 'seed')}" if c["design"] == "paired"
                  else f"unpaired, {c['n_a']} and {c['n_b']} seeds")
        lines.append(f"| {c['b']} − {c['a']} | {_steps(c['budget'])} | {design} | "
                     f"{_num(c['difference'])} | {_interval(c['ci'])} | {c['verdict']} |")
    return [*lines, "", _verdict_sentence(result), ""]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _verdict_sentence(result: Mapping[str, Any]) -> str:
    final = max(result["budgets"])
    parts = []
    for c in result["comparisons"]:
        if c["budget"] != final:
            continue
        if c["verdict"] == stats.DIFFER:
            direction = "higher" if c["difference"] > 0 else "lower"
            parts.append(f"{c['b']} ends {direction} than {c['a']} ({_num(c['difference'])}, "
                         f"interval {_interval(c['ci'])})")
        elif c["verdict"] == stats.IDENTICAL:
            parts.append(f"{c['b']} and {c['a']} are bit-identical runs on every seed")
        elif c["verdict"] == stats.TOO_FEW:
            parts.append(f"{c['b']} against {c['a']}: too few seeds to compare")
        else:
            parts.append(f"{c['b']} and {c['a']} show no detectable difference "
                         f"(interval {_interval(c['ci'])} contains 0)")
    return f"At the final budget ({_steps(final)} steps): " + "; ".join(parts) + "." if parts else ""


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _seed_list(seeds: Sequence[int]) -> str:
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def plot_groups(groups: Sequence[Group], eval_episodes: int, plot_dir: Path) -> dict[str, str] | None:
    """One PNG per env × preset: mean evaluation return per style with its pointwise bootstrap
    interval across seeds. Returns {group key: path relative to the output directory}, or None
    (after a one-line warning) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        print("warning: matplotlib is not installed, so no plots were drawn "
              "(pip install -e '.[experiments]')", file=sys.stderr)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    line_styles = ["-", "--", ":", "-."]  # identical curves stay visible on top of each other
    for group in groups:
        if not any(group.values.get(s) for s in group.styles):
            continue
        fig, ax = plt.subplots(figsize=(7.0, 4.5))
        for i, style in enumerate(group.styles):
            seeds = group.values.get(style, {})
            if not seeds:
                continue
            steps = sorted({s for curve in seeds.values() for s in curve})
            table = np.array([[curve.get(s, np.nan) for s in steps] for curve in seeds.values()])
            mean, low, high = stats.band(table)
            line, = ax.plot(steps, mean, linestyle=line_styles[i % len(line_styles)], linewidth=1.8,
                            label=f"{style} (n={len(seeds)})")
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.18, linewidth=0)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"evaluation return (mean of {eval_episodes} episodes)")
        ax.set_title(f"{group.env}, preset {group.preset}\nshaded: {stats.CONFIDENCE:.0%} "
                     "percentile-bootstrap interval of the mean across seeds", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        key = f"{_safe(group.env)}__{group.preset}"
        fig.savefig(plot_dir / f"{key}.png", dpi=120)
        plt.close(fig)
        paths[f"{group.env}__{group.preset}"] = f"{plot_dir.name}/{key}.png"
    return paths


def failure_rows(spec: ExperimentSpec, out: Path, outcomes: Mapping[str, Outcome],
                 previous: Mapping[str, tuple[str, ...]]) -> list[tuple[str, ...]]:
    """failures.csv rows: every trial that has not evaluated at its final step, with the exit
    status and last output line of its latest attempt (kept from ``previous`` when the trial
    did not run in this invocation)."""
    rows = []
    for trial in trials_of(spec):
        run_dir = out / "runs" / trial.name
        if is_finished(run_dir, spec.total_steps):
            continue
        log = f"logs/{trial.name}.log"  # relative to the output directory, like every report path
        outcome = outcomes.get(trial.name)
        if outcome is not None:
            code = "" if outcome.exit_code is None else str(outcome.exit_code)
            message = outcome.last_line
            if outcome.exit_code == 0:
                message = f"exited 0 but {EVAL_FILE} has no row at step {spec.total_steps}"
            rows.append((trial.name, code, message, log))
        elif trial.name in previous:
            rows.append(previous[trial.name])
        else:
            last = max((int(r[0]) for r in read_evaluations(run_dir)), default=0)
            rows.append((trial.name, "", f"unfinished: last evaluation at step {last} of "
                         f"{spec.total_steps}; run without --report-only to continue", log))
    return rows


def _read_failures(path: Path) -> dict[str, tuple[str, ...]]:
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError:
        return {}
    return {row[0]: tuple(row) for row in rows[1:] if len(row) == len(FAILURE_HEADER)}


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue())


def write_reports(spec: ExperimentSpec, out: Path, outcomes: Mapping[str, Outcome], source: str,
                  report_only: bool = False) -> tuple[list[tuple[str, ...]], dict[str, Any]]:
    """Write curves.csv, stats.json, failures.csv, plots/ and summary.md; returns the failure
    rows and the statistics."""
    out.mkdir(parents=True, exist_ok=True)
    rows, groups = collect(spec, out)
    _write_csv(out / "curves.csv", CURVE_HEADER, rows)
    previous = _read_failures(out / "failures.csv") if report_only else {}
    failures = failure_rows(spec, out, outcomes, previous)
    _write_csv(out / "failures.csv", FAILURE_HEADER, failures)
    results = [group_stats(g, spec.budgets) for g in groups]
    document = {
        "method": {"statistic": "mean across seeds of each trial's evaluation mean return",
                   "interval": "percentile bootstrap", "confidence": stats.CONFIDENCE,
                   "resamples": stats.RESAMPLES, "rng_seed": stats.SEED,
                   "comparison": "difference of means B - A; paired over seeds when both styles ran "
                                 "the same seeds, unpaired otherwise"},
        "spec": spec.to_dict(),
        "trials": {"total": len(trials_of(spec)), "failed": [r[0] for r in failures]},
        "groups": results,
    }
    (out / "stats.json").write_text(json.dumps(_json_safe(document), indent=2) + "\n")
    plots = plot_groups(groups, spec.eval_episodes, out / "plots") or {}
    (out / "summary.md").write_text(summary_markdown(spec, results, failures, plots, source))
    return failures, document


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ddpg_tf.experiments``; see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        spec, report_only, _ = parse_args(argv)
        return run_experiment(spec, report_only, "python -m ddpg_tf.experiments " + shlex.join(argv))
    except SpecError as exc:
        fail(str(exc))
    except (KeyboardInterrupt, Interrupted):
        print("interrupted; run the same command again to continue (finished trials are kept, "
              "unfinished ones resume from their last checkpoint)", file=sys.stderr)
        return EXIT_INTERRUPTED


def run_experiment(spec: ExperimentSpec, report_only: bool, source: str) -> int:
    """Run the spec's unfinished trials (unless ``report_only``), then write the reports;
    returns the exit status. Raises :class:`SpecError` and :class:`Interrupted`."""
    if spec.backend == "ray" and not report_only:
        try:
            import ray  # noqa: F401
            from ray import tune  # noqa: F401
        except ImportError:
            raise SpecError("--backend ray needs Ray Tune: pip install -e '.[ray]'") from None
    out = Path(spec.out).absolute()  # trial processes (and Ray workers) may run elsewhere
    if report_only:
        if not (out / "runs").is_dir():
            raise SpecError(f"nothing to report: {out / 'runs'} does not exist; run the experiment first")
        failures, _ = write_reports(spec, out, {}, source, report_only=True)
        print(f"report rebuilt in {out} ({_plural(len(failures), 'unfinished trial')})")
        return 0
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "experiment.json").write_text(json.dumps({"command": source, "spec": spec.to_dict()},
                                                        indent=2) + "\n")
    except OSError as exc:
        raise SpecError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    jobs, finished = plan(spec, out)
    console = _Console(len(jobs))
    for trial in finished:
        console.line(f"skip   {trial.name} (finished)")
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    if jobs:
        outcomes = (run_ray(jobs, spec, out, console) if spec.backend == "ray"
                    else run_local(jobs, spec.parallel, console))
    failures, _ = write_reports(spec, out, {o.name: o for o in outcomes}, source)
    total = len(trials_of(spec))
    print(f"{total - len(failures)}/{total} trials finished ({len(jobs)} run now, "
          f"{time.perf_counter() - started:.1f} s); summary: {out / 'summary.md'}; "
          f"failures: {len(failures)} ({out / 'failures.csv'})")
    return EXIT_TRAINING_ERROR if failures else 0


if __name__ == "__main__":
    sys.exit(main())
