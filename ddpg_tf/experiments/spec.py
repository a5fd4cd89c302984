"""What an experiment runs: :class:`ExperimentSpec`, its evaluation budgets and its validation.

A spec is read from an optional TOML file whose keys are the fields below (Config overrides in
an ``[overrides]`` table), then from flags; a flag overrides the file (see
:mod:`ddpg_tf.experiments.parsing`, ``experiments/*.toml`` and ``--help``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ddpg_tf.config import ACTOR_UPDATES, PRESETS, preset_config
from ddpg_tf.errors import ConfigError, UsageError
from ddpg_tf.experiments.sb3 import sb3_settings

DEFAULT_BUDGETS = 5
LIBRARIES = ("ddpg-tf", "sb3")
"""The libraries a grid can run: this one, and Stable-Baselines3 (the ``bench`` extra)."""
SB3_VARIANT = "sb3"
"""How SB3 trials are labelled where ddpg-tf trials show their actor-update style."""
"""Number of evenly spaced evaluation steps the summary reports when no budgets are given."""


class SpecError(UsageError, ValueError):
    """An experiment spec value a user supplied is invalid (one line, exit status 2)."""


@dataclass(frozen=True)
class ExperimentSpec:
    """What to run and how: the grid of trials, their budget, and where and how to run them."""

    envs: tuple[str, ...] = ("Pendulum-v1",)
    """Gymnasium environment ids (comma-separated on the command line)."""
    presets: tuple[str, ...] = ("pendulum",)
    """Presets of ddpg_tf.config.PRESETS each trial starts from (comma-separated)."""
    styles: tuple[str, ...] = ("direct", "chain-rule")
    """Actor-update styles to compare (comma-separated); every pair is compared as later − earlier."""
    libraries: tuple[str, ...] = ("ddpg-tf",)
    """Libraries to run each env × preset × seed with (comma-separated): `ddpg-tf` (every style)
    and `sb3` (Stable-Baselines3's TD3 with the same resolved Config and evaluation protocol;
    `pip install -e '.[bench]'`); the reports compare them like styles, unpaired."""
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


def flag_name(name: str) -> str:
    """A spec or Config field as it is spelt in a flag (``total_steps`` -> ``total-steps``)."""
    return name.replace("_", "-")


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
    for library in spec.libraries:
        if library not in LIBRARIES:
            raise SpecError(f"unknown library {library!r}; choose from {', '.join(LIBRARIES)}")
    for env in spec.envs:
        for preset in spec.presets:
            base = preset_config(preset, env).replace(
                total_steps=spec.total_steps, eval_every=spec.eval_every, eval_episodes=spec.eval_episodes,
                seed=spec.seeds[0])
            for style in spec.styles:
                try:
                    config = base.replace(actor_update=style, **spec.overrides).validate()
                except ConfigError as exc:
                    raise SpecError(f"preset {preset}, style {style}: {exc}") from None
            if SB3_VARIANT in spec.libraries:
                try:  # the bound-independent checks; absolute noise is checked in the trial
                    sb3_settings(config.replace(actor_update="direct"), -np.ones(1), np.ones(1))
                except ConfigError as exc:
                    raise SpecError(f"library sb3, env {env}, preset {preset}: {exc}") from None
