"""The experiment runner (`python -m ddpg_tf.experiments`) and its statistics.

Grouped by concern: the bootstrap statistics against hand-computed intervals; spec parsing and
the one-line usage errors; planning (skip / resume / restart) on hand-made run directories; a
tiny experiment end to end on the local backend (reports, rerun, a failing trial, Ctrl-C); and
the same experiment on a local Ray instance, whose curves must equal the local backend's.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ddpg_tf import stats
from ddpg_tf.config import PRESETS
from ddpg_tf.experiments import (
    CONFIG_FIELDS,
    ExperimentSpec,
    Group,
    SpecError,
    coerce_override,
    default_budgets,
    override_flags,
    parse_args,
    parse_seeds,
    plan,
    plot_groups,
    trial_command,
    trials_of,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "tiny.toml"
TINY_TRIALS = [f"Pendulum-v1__pendulum__{style}__seed{k}"
               for style in ("direct", "chain-rule") for k in (0, 1)]


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "ddpg_tf.experiments", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------
def test_identical_paired_runs_give_zero_interval():
    a = {0: -150.25, 1: -98.5, 2: -170.0}
    c = stats.compare(a, dict(a))
    assert (c.design, c.difference, c.low, c.high, c.verdict) == ("paired", 0.0, 0.0, 0.0, "identical runs")


def test_paired_interval_of_two_differences_is_hand_computable():
    # Differences {1, 3}: a resample's mean is 1, 2 or 3 with probabilities 1/4, 1/2, 1/4, so the
    # 2.5% and 97.5% quantiles are exactly 1 and 3.
    c = stats.compare({0: 1.0, 1: 1.0}, {0: 2.0, 1: 4.0})
    assert (c.design, c.difference, c.low, c.high, c.verdict) == ("paired", 2.0, 1.0, 3.0, "differ")
    # Differences {-1, 3}: the interval [-1, 3] contains 0.
    c = stats.compare({0: 0.0, 1: 0.0}, {0: -1.0, 1: 3.0})
    assert (c.difference, c.low, c.high, c.verdict) == (1.0, -1.0, 3.0, "no detectable difference")


def test_unpaired_intervals_are_hand_computable():
    # Different seeds: unpaired. Constant samples: every resampled difference is 4 - 1.
    c = stats.compare({0: 1.0, 1: 1.0, 2: 1.0}, {5: 4.0, 6: 4.0})
    assert (c.design, c.n_a, c.n_b, c.low, c.high, c.verdict) == ("unpaired", 3, 2, 3.0, 3.0, "differ")
    # Means of A in {0, 5, 10} and of B in {1, 5, 9}; B - A = -9 and +9 each have probability
    # 1/16 > 2.5%, so the interval is exactly [-9, 9].
    c = stats.compare({0: 0.0, 1: 10.0}, {2: 1.0, 3: 9.0})
    assert (c.difference, c.low, c.high, c.verdict) == (0.0, -9.0, 9.0, "no detectable difference")


def test_clearly_shifted_pair_differs_and_is_pinned():
    a = dict(enumerate([10.2, 11.7, 9.4, 12.9, 10.8]))
    b = dict(enumerate([11.1, 11.5, 10.9, 13.6, 11.0]))
    c = stats.compare(a, b)
    assert c.verdict == "differ" and c.design == "paired"
    assert c.difference == pytest.approx(0.62, abs=1e-12)
    assert (c.low, c.high) == pytest.approx((0.14, 1.12), abs=1e-12)
    shift = stats.compare(a, {k: v + 5.0 for k, v in a.items()})
    assert shift.difference == pytest.approx(5.0) and shift.low == pytest.approx(5.0)
    assert shift.high == pytest.approx(5.0) and shift.verdict == "differ"


def test_mean_interval_is_reproducible_and_seeded():
    x = [0.3, 1.7, 2.2, 4.9, 5.1, 7.3]
    first, again = stats.mean_ci(x), stats.mean_ci(x)
    assert first == again
    assert first.mean == pytest.approx(3.5833333333333335, abs=1e-15)
    assert first.std == pytest.approx(np.std(x, ddof=1), abs=1e-15)
    assert (first.low, first.high) == pytest.approx((1.7166666666666668, 5.46791666666665), abs=1e-12)
    other = stats.mean_ci(x, seed=1)
    assert (other.low, other.high) != (first.low, first.high)  # the seed is really used


def test_too_few_values():
    single = stats.mean_ci([-120.0])
    assert single.n == 1 and single.mean == -120.0
    assert math.isnan(single.std) and math.isnan(single.low) and math.isnan(single.high)
    c = stats.compare({0: 1.0}, {0: 2.0})
    assert c.verdict == "too few seeds" and c.difference == 1.0 and math.isnan(c.low)
    assert stats.compare({0: 1.0}, {0: 1.0}).verdict == "identical runs"
    assert stats.compare({0: 1.0}, {1: 2.0, 2: 3.0}).verdict == "too few seeds"


def test_band_handles_missing_values():
    mean, low, high = stats.band(np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan]]))
    assert mean[0] == 2.0 and (low[0], high[0]) == (1.0, 3.0)  # resample means of {1, 3}: 1, 2, 3
    assert mean[1] == 2.0 and math.isnan(low[1]) and math.isnan(high[1])
    assert math.isnan(mean[2])


# --------------------------------------------------------------------------------------------
# Spec parsing and usage errors
# --------------------------------------------------------------------------------------------
def test_seeds_and_budgets():
    assert parse_seeds("0,1,2") == (0, 1, 2)
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("0-2, 7") == (0, 1, 2, 7)
    for bad in ("x", "1-x", "3-1", "0,0", "", "-1"):
        with pytest.raises(SpecError):
            parse_seeds(bad)
    assert default_budgets(20_000, 1_000) == (4_000, 8_000, 12_000, 16_000, 20_000)
    assert default_budgets(300_000, 10_000) == (60_000, 120_000, 180_000, 240_000, 300_000)
    assert default_budgets(300, 100) == (100, 200, 300)
    assert default_budgets(5_000, 0) == (5_000,)


def test_overrides_become_training_flags():
    values = {"actor_hidden": coerce_override("actor_hidden", "16, 16"),
              "jit_compile": coerce_override("jit_compile", "false"),
              "layer_norm": coerce_override("layer_norm", True),
              "gamma": coerce_override("gamma", "0.99"),
              "batch_size": coerce_override("batch_size", 32),
              "noise": coerce_override("noise", "ou")}
    assert values == {"actor_hidden": (16, 16), "jit_compile": False, "layer_norm": True, "gamma": 0.99,
                      "batch_size": 32, "noise": "ou"}
    assert override_flags(values) == ["--actor-hidden", "16,16", "--no-jit-compile", "--layer-norm",
                                      "--gamma", "0.99", "--batch-size", "32", "--noise", "ou"]
    for name, value in [("gamma", "abc"), ("batch_size", "1.5"), ("jit_compile", "maybe"),
                        ("noise", "pink"), ("seed", "3"), ("run_name", "x"), ("no_such_field", "1")]:
        with pytest.raises(SpecError):
            coerce_override(name, value)


def test_spec_file_then_flags(tmp_path):
    spec, report_only, name = parse_args([str(TINY), "--seeds", "3-5", "--set", "batch_size=64",
                                          "--parallel", "3", "--out", str(tmp_path)])
    assert name == "tiny" and not report_only
    assert spec.envs == ("Pendulum-v1",) and spec.styles == ("direct", "chain-rule")
    assert spec.seeds == (3, 4, 5) and spec.total_steps == 300 and spec.budgets == (100, 200, 300)
    assert spec.overrides["batch_size"] == 64 and spec.overrides["actor_hidden"] == (16, 16)
    assert spec.parallel == 3 and spec.cpus_per_trial == max(1, (os.cpu_count() or 1) // 3)
    assert [t.name for t in trials_of(spec)][0] == "Pendulum-v1__pendulum__direct__seed3"


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.toml")), ids=lambda p: p.name)
def test_example_specs_parse(path):
    spec, _, name = parse_args([str(path)])
    assert name == path.stem and spec.out == str(Path("runs") / "experiments" / path.stem)
    assert set(spec.presets) <= set(PRESETS)
    assert spec.budgets[-1] == spec.total_steps


def test_trial_command(tmp_path):
    spec = ExperimentSpec(envs=("ALE/Thing-v5",), styles=("chain-rule",), seeds=(7,), total_steps=500,
                          eval_every=100, eval_episodes=2, overrides={"critic_hidden": (8,)},
                          parallel=2, cpus_per_trial=1.0).resolved("t")
    trial = trials_of(spec)[0]
    assert trial.name == "ALE_Thing-v5__pendulum__chain-rule__seed7"
    cmd = trial_command(spec, trial, tmp_path, threads=1, resume=True)
    assert cmd[:2] == [sys.executable, "-c"]
    flags = cmd[3:]
    pairs = dict(zip(flags, flags[1:], strict=False))
    assert pairs["--env-id"] == "ALE/Thing-v5" and pairs["--actor-update"] == "chain-rule"
    assert pairs["--seed"] == "7" and pairs["--total-steps"] == "500" and pairs["--eval-episodes"] == "2"
    assert pairs["--logdir"] == str(tmp_path / "runs") and pairs["--run-name"] == trial.name
    assert pairs["--critic-hidden"] == "8" and "--no-progress" in flags and flags[-1] == "--resume"
    if "threads" in CONFIG_FIELDS:
        assert pairs["--threads"] == "1"


ERROR_CASES = {
    "bad preset": (["--presets", "pendulum,nope"], "unknown preset 'nope'"),
    "bad style": (["--styles", "direct,sideways"], "unknown style 'sideways'"),
    "bad seeds": (["--seeds", "1-x"], "--seeds must look like"),
    "backwards seeds": (["--seeds", "4-1"], "runs backwards"),
    "bad override value": (["--set", "gamma=abc"], "--set gamma needs a finite number"),
    "runner field": (["--set", "seed=3"], "--set seed is set by the experiment runner"),
    "invalid config": (["--set", "tau=2"], "--tau must be in (0, 1]"),
    "budget off grid": (["--budgets", "150"], "--budgets 150 is not an evaluation step"),
    "bad backend": (["--backend", "slurm"], "--backend must be local or ray"),
    "unknown flag": (["--bogus"], "unrecognized arguments"),
    "missing spec": (["missing.toml"], "spec file missing.toml not found"),
    "unknown spec key": (["bad.toml"], "unknown key 'sedes'"),
    "nothing to report": (["--report-only", "--out", "empty"], "nothing to report"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES), ids=list(ERROR_CASES))
def test_usage_errors_are_one_line_with_status_2(case, tmp_path):
    args, message = ERROR_CASES[case]
    (tmp_path / "bad.toml").write_text('sedes = "0-4"\n')
    proc = run(args, tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]  # nothing written


def test_runner_never_imports_tensorflow():
    code = ("import sys; from ddpg_tf.experiments import parse_args, plan; "
            f"parse_args([{str(TINY)!r}]); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


# --------------------------------------------------------------------------------------------
# Planning: skip finished trials, resume those with a checkpoint, restart the others
# --------------------------------------------------------------------------------------------
def test_plan_skips_resumes_and_restarts(tmp_path):
    spec = ExperimentSpec(styles=("direct",), seeds=(0, 1, 2, 3), total_steps=300, eval_every=100,
                          parallel=2, cpus_per_trial=1.0).resolved("p")
    runs = tmp_path / "runs"
    header = "step,return_mean,return_std,episodes\n"
    finished = runs / "Pendulum-v1__pendulum__direct__seed0"
    finished.mkdir(parents=True)
    (finished / "evaluations.csv").write_text(header + "100,-1.0,0.0,1\n300,-2.0,0.0,1\n")
    resumable = runs / "Pendulum-v1__pendulum__direct__seed1"
    (resumable / "checkpoints").mkdir(parents=True)
    (resumable / "config.json").write_text(json.dumps({"threads": 3}))
    (resumable / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-200"\n')
    (resumable / "checkpoints" / "ckpt-200.index").write_bytes(b"")
    (resumable / "evaluations.csv").write_text(header + "100,-1.0,0.0,1\n200,-1.5,0.0,1\n30")  # cut write
    stale = runs / "Pendulum-v1__pendulum__direct__seed2"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    (stale / "evaluations.csv").write_text(header + "100,-1.0,0.0,1\n")

    jobs, done = plan(spec, tmp_path)
    assert [t.name for t in done] == [finished.name]
    assert [(j.name, j.mode) for j in jobs] == [(resumable.name, "resume"), (stale.name, "fresh"),
                                               ("Pendulum-v1__pendulum__direct__seed3", "fresh")]
    assert jobs[0].command[-1] == "--resume" and "--resume" not in jobs[1].command
    assert not stale.exists()  # nothing to continue from: started afresh
    assert finished.exists() and resumable.exists()
    if "threads" in CONFIG_FIELDS:  # a resumed run keeps its saved thread count
        assert jobs[0].threads == 3 and jobs[1].threads == 1


# --------------------------------------------------------------------------------------------
# A tiny experiment end to end (local backend)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """experiments/tiny.toml (Pendulum-v1, 2 styles × 2 seeds, 300 steps) on the local backend."""
    cwd = tmp_path_factory.mktemp("local")
    proc = run([str(TINY), "--out", "out", "--parallel", "2"], cwd)
    return cwd / "out", proc


def test_local_experiment_outputs(local_run):
    out, proc = local_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" start  ") == 4 and proc.stdout.count(" done   ") == 4

    # curves.csv holds every evaluation row of every trial, exactly as the run wrote it
    rows = read_csv(out / "curves.csv")
    assert rows[0] == ["trial", "env", "preset", "style", "seed", "step", "return_mean", "return_std",
                       "episodes"]
    assert len(rows) == 1 + 4 * 3
    for name in TINY_TRIALS:
        written = read_csv(out / "runs" / name / "evaluations.csv")[1:]
        assert [r[5:] for r in rows[1:] if r[0] == name] == written
        assert [int(r[0]) for r in written] == [100, 200, 300]
        assert (out / "logs" / f"{name}.log").read_text().startswith("=== ")
    assert read_csv(out / "failures.csv") == [["trial", "exit_code", "last_stderr_line", "log"]]

    # stats.json: recomputed here from the run directories
    doc = json.loads((out / "stats.json").read_text())
    assert doc["method"]["resamples"] == 10_000 and doc["method"]["interval"] == "percentile bootstrap"
    assert doc["trials"] == {"total": 4, "failed": []}
    (group,) = doc["groups"]
    assert (group["env"], group["preset"], group["budgets"]) == ("Pendulum-v1", "pendulum", [100, 200, 300])
    values = {(r[3], int(r[4]), int(r[5])): float(r[6]) for r in rows[1:]}
    for style in ("direct", "chain-rule"):
        for budget in (100, 200, 300):
            cell = group["styles"][style]["budgets"][str(budget)]
            sample = [values[(style, k, budget)] for k in (0, 1)]
            expected = stats.mean_ci(sample)
            assert cell["n"] == 2 and cell["seeds"] == [0, 1]
            assert cell["mean"] == pytest.approx(np.mean(sample), abs=1e-9)
            assert cell["std"] == pytest.approx(np.std(sample, ddof=1), abs=1e-9)
            assert cell["ci"] == [expected.low, expected.high]
    assert [(c["a"], c["b"], c["budget"], c["design"]) for c in group["comparisons"]] == [
        ("direct", "chain-rule", b, "paired") for b in (100, 200, 300)]
    for c in group["comparisons"]:
        a = {k: values[("direct", k, c["budget"])] for k in (0, 1)}
        b = {k: values[("chain-rule", k, c["budget"])] for k in (0, 1)}
        expected = stats.compare(a, b)
        assert (c["difference"], c["ci"], c["verdict"]) == (expected.difference,
                                                            [expected.low, expected.high], expected.verdict)
    # With a power-of-two batch the styles' gradients, hence the runs, are bit-identical.
    assert {c["verdict"] for c in group["comparisons"]} == {"identical runs"}

    # summary.md: the tables, ready for the docs
    summary = (out / "summary.md").read_text()
    direct = [values[("direct", k, 300)] for k in (0, 1)]
    cell = f"{np.mean(direct):.1f} ± {np.std(direct, ddof=1):.1f}".replace("-", "−")
    assert "## Pendulum-v1, preset `pendulum`" in summary
    assert "| style | seeds | 100 | 200 | 300 |" in summary
    assert "| direct | 2 | " in summary and cell in summary
    assert "| chain-rule − direct | 300 | paired, 2 seeds | 0.0 | [0.0, 0.0] | identical runs |" in summary

    plot = out / "plots" / "Pendulum-v1__pendulum.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not plot.exists() and "matplotlib is not installed" in proc.stderr
    else:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "](plots/Pendulum-v1__pendulum.png)" in summary


def test_rerun_skips_finished_trials(local_run):
    out, first = local_run
    assert first.returncode == 0
    before = {p: (out / p).read_bytes() for p in ("curves.csv", "stats.json", "failures.csv")}
    summary = (out / "summary.md").read_text()
    started = time.perf_counter()
    proc = run([str(TINY), "--out", "out", "--parallel", "2"], out.parent)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(" skip   ") == 4 and " start " not in proc.stdout
    assert elapsed < 30  # no training, no TensorFlow
    assert {p: (out / p).read_bytes() for p in before} == before
    assert (out / "summary.md").read_text() == summary
    report = run([str(TINY), "--out", "out", "--report-only"], out.parent)
    assert report.returncode == 0 and (out / "curves.csv").read_bytes() == before["curves.csv"]


def test_failing_trial_is_listed_and_others_run(local_run, tmp_path):
    out, first = local_run
    assert first.returncode == 0
    shutil.copytree(out / "runs", tmp_path / "out" / "runs")
    # Nope-v0 comes first and fails; Pendulum seed 2 must still train, seeds 0-1 are skipped.
    proc = run([str(TINY), "--out", "out", "--parallel", "2", "--envs", "Nope-v0,Pendulum-v1",
                "--styles", "direct", "--seeds", "1,2"], tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED Nope-v0__pendulum__direct__seed1: exit 2" in proc.stdout
    assert "done   Pendulum-v1__pendulum__direct__seed2" in proc.stdout
    failures = read_csv(tmp_path / "out" / "failures.csv")
    assert [r[:2] for r in failures] == [["trial", "exit_code"], ["Nope-v0__pendulum__direct__seed1", "2"],
                                         ["Nope-v0__pendulum__direct__seed2", "2"]]
    for row in failures[1:]:
        assert row[2].startswith("error: ") and "Nope-v0" in row[2]
        assert row[3] == f"logs/{row[0]}.log" and (tmp_path / "out" / row[3]).is_file()
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "**2 trials did not finish**" in summary
    assert "## Nope-v0, preset `pendulum`\n\nNo trial of this group has evaluated yet" in summary
    assert "| direct | 2 | " in summary  # Pendulum seeds 1 and 2


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            if text.encode() in (proc_dir / "cmdline").read_bytes():
                pids.append(int(proc_dir.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_every_trial(tmp_path):
    out = tmp_path / "interrupted"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "ddpg_tf.experiments", str(TINY), "--out", str(out),
                             "--parallel", "2", "--total-steps", "20000"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        starts = 0
        deadline = time.monotonic() + 60
        while starts < 2 and time.monotonic() < deadline:
            starts += " start  " in (proc.stdout.readline() or "")
        assert starts == 2
        time.sleep(5)  # let both trial processes get going before the interrupt
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout and "run the same command again" in stderr
    assert _processes_mentioning(str(out)) == []  # no trial outlives the runner


# --------------------------------------------------------------------------------------------
# The same experiment on a local Ray instance
# --------------------------------------------------------------------------------------------
def test_missing_matplotlib_skips_plots_with_a_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    group = Group("Pendulum-v1", "pendulum", ("direct",), {"direct": {0: {100: -1.0}, 1: {100: -3.0}}})
    assert plot_groups([group], 1, tmp_path / "plots") is None
    err = capsys.readouterr().err
    assert err.startswith("warning: matplotlib is not installed") and err.count("\n") == 1
    assert not (tmp_path / "plots").exists()


def test_ray_backend_matches_local(local_run, tmp_path):
    pytest.importorskip("ray")
    out, first = local_run
    assert first.returncode == 0
    proc = run([str(TINY), "--out", "out", "--parallel", "2", "--backend", "ray"], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ray_out = tmp_path / "out"
    assert proc.stdout.count(" start  ") == 4 and proc.stdout.count(" done   ") == 4
    # Same run directories, same evaluations to the last digit, same statistics.
    for name in TINY_TRIALS:
        assert ((ray_out / "runs" / name / "evaluations.csv").read_text()
                == (out / "runs" / name / "evaluations.csv").read_text())
    assert (ray_out / "curves.csv").read_text() == (out / "curves.csv").read_text()
    assert (json.loads((ray_out / "stats.json").read_text())["groups"]
            == json.loads((out / "stats.json").read_text())["groups"])
    assert read_csv(ray_out / "failures.csv") == [["trial", "exit_code", "last_stderr_line", "log"]]
    assert (ray_out / "ray" / "tune").is_dir()  # Tune's bookkeeping stays under OUT
    assert all((ray_out / "logs" / f"{name}.log").is_file() for name in TINY_TRIALS)
