"""The experiment command (`python -m ddpg_tf.experiments`) end to end.

The one-line usage errors; a tiny experiment on the local backend (reports, rerun, a failing
trial, Ctrl-C); and the same experiment on a local Ray instance, whose curves must equal the
local backend's. The parts are tested alone in ``test_experiments_{stats,spec,trials,report}.py``.
"""

from __future__ import annotations

import csv
import json
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
# Usage errors, and no TensorFlow in the runner
# --------------------------------------------------------------------------------------------
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


def _default_sigint() -> None:
    """A suite started in the background (``pytest &``) inherits an ignored SIGINT, which
    Python keeps: give the runner the default disposition a terminal's Ctrl-C meets."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_every_trial(tmp_path):
    out = tmp_path / "interrupted"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "ddpg_tf.experiments", str(TINY), "--out", str(out),
                             "--parallel", "2", "--total-steps", "20000"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
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
@pytest.mark.slow  # 30 s of Ray start-up; the default suite must stay under 10 minutes on 2 cores
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
