"""The reports of an experiment, rebuilt from the run directories alone (``--report-only``).

``curves.csv`` (every evaluation of every trial), ``summary.md`` (per env × preset: mean ±
std across seeds at each budget, the bootstrap interval of each style's mean and the style
comparison), ``stats.json`` (the same numbers), ``failures.csv`` (always written; a header
only when every trial finished) and ``plots/{env}__{preset}.png`` (mean curve per style and
its 95% percentile-bootstrap interval across seeds; needs matplotlib). The statistics are in
:mod:`ddpg_tf.stats`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ddpg_tf import stats
from ddpg_tf.experiments.plots import plot_groups
from ddpg_tf.experiments.results import collect, group_stats
from ddpg_tf.experiments.spec import SB3_VARIANT, ExperimentSpec
from ddpg_tf.experiments.trials import (
    EVAL_FILE,
    EVAL_HEADER,
    Outcome,
    is_finished,
    read_evaluations,
    trials_of,
)

CURVE_HEADER = ("trial", "env", "preset", "style", "seed", *EVAL_HEADER)
FAILURE_HEADER = ("trial", "exit_code", "last_stderr_line", "log")
"""Columns of failures.csv; ``log`` is relative to the output directory."""


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


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


# --- summary.md -----------------------------------------------------------------------------------
def summary_markdown(spec: ExperimentSpec, results: list[dict[str, Any]], failures: list[tuple[str, ...]],
                     plots: Mapping[str, str], source: str) -> str:
    """``summary.md``: per env × preset the mean ± std table, the intervals of the means and the
    style comparison, ready to paste into the docs."""
    overrides = ", ".join(f"`{k}={_show(v)}`" for k, v in spec.overrides.items()) or "none"
    lines = [
        "# Experiment results", "",
        f"Generated by `{source}`: {plural(len(trials_of(spec)), 'trial')}, "
        f"{plural(len(spec.envs), 'environment')} ({', '.join(spec.envs)}) × "
        f"{plural(len(spec.presets), 'preset')} ({', '.join(spec.presets)}) × "
        f"{plural(len(spec.styles), 'style')} × {_libraries(spec)}{plural(len(spec.seeds), 'seed')} "
        f"({_seed_list(spec.seeds)}), {spec.total_steps:,} steps each, evaluated every "
        f"{spec.eval_every:,} steps and at the end over "
        f"{plural(spec.eval_episodes, 'deterministic episode')}; overrides: {overrides}.",
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
    if SB3_VARIANT in spec.libraries:
        lines += ["Rows labelled `sb3` are Stable-Baselines3 runs (its TD3 class; SB3's DDPG is that "
                  "class with one critic, no policy delay and no target smoothing) with the same resolved "
                  "settings and evaluation protocol (see `runs/*__sb3__*/sb3.json`); the other rows are "
                  "ddpg-tf's "
                  "actor-update styles. Comparisons between the two libraries are always unpaired: "
                  "seed k of one library and seed k of the other are unrelated runs.", ""]
    if failures:
        lines += [f"**{plural(len(failures), 'trial')} did not finish** (see `failures.csv`); the "
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
        design = (f"paired, {plural(c['n_a'], 'seed')}" if c["design"] == "paired"
                  else f"unpaired, {c['n_a']} and {c['n_b']} seeds")
        lines.append(f"| {c['b']} − {c['a']} | {_steps(c['budget'])} | {design} | "
                     f"{_num(c['difference'])} | {_interval(c['ci'])} | {c['verdict']} |")
    return [*lines, "", _verdict_sentence(result), ""]


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


def plural(count: int, noun: str) -> str:
    """``"1 trial"``, ``"3 trials"``."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _libraries(spec: ExperimentSpec) -> str:
    """``"2 libraries (ddpg-tf, sb3) × "`` when the grid runs more than ddpg-tf, else empty."""
    if tuple(spec.libraries) == ("ddpg-tf",):
        return ""
    count = len(spec.libraries)
    return f"{count} {'library' if count == 1 else 'libraries'} ({', '.join(spec.libraries)}) × "


def _seed_list(seeds: Sequence[int]) -> str:
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))
