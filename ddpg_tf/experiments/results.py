"""The numbers of an experiment: every trial's evaluations gathered from its run directory and
grouped by env × preset, and per group the statistics of :mod:`ddpg_tf.stats`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddpg_tf import stats
from ddpg_tf.experiments.spec import SB3_VARIANT, ExperimentSpec
from ddpg_tf.experiments.trials import read_evaluations, trials_of, variants_of


@dataclass
class Group:
    """The trials of one env × preset and their evaluation returns, per variant: the ddpg-tf
    styles and, with the ``sb3`` library, ``sb3``."""

    env: str
    preset: str
    styles: tuple[str, ...]
    values: dict[str, dict[int, dict[int, float]]] = field(default_factory=dict)
    """style -> seed -> step -> evaluation mean return."""


def collect(spec: ExperimentSpec, out: Path) -> tuple[list[tuple[str, ...]], list[Group]]:
    """Every evaluation row of every trial (curves.csv rows) and the values grouped by
    env × preset × style × seed; rows after ``total_steps`` are left out."""
    rows: list[tuple[str, ...]] = []
    variants = variants_of(spec)
    groups = {(env, preset): Group(env, preset, variants) for env in spec.envs for preset in spec.presets}
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
                    # Seed k of SB3 and seed k of ddpg-tf are unrelated runs: never paired.
                    same_library = (a == SB3_VARIANT) == (b == SB3_VARIANT)
                    c = stats.compare(at[(a, budget)], at[(b, budget)],
                                      paired=None if same_library else False)
                    comparisons.append({"a": a, "b": b, "budget": budget, "design": c.design, "n_a": c.n_a,
                                        "n_b": c.n_b, "difference": c.difference, "ci": [c.low, c.high],
                                        "verdict": c.verdict})
    return {"env": group.env, "preset": group.preset, "budgets": list(budgets), "styles": per_style,
            "comparisons": comparisons}
