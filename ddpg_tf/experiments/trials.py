"""The trials of a grid: which to run, their command lines, and one trial's process start to end.

Each env × preset × style × seed is one trial named ``{env}__{preset}__{style}__seed{k}``; with
the ``sb3`` library in the spec, each env × preset × seed also runs Stable-Baselines3 as the
trial ``{env}__{preset}__sb3__seed{k}`` (:mod:`ddpg_tf.experiments.sb3`; same flags, and
checkpoints of its own, :mod:`ddpg_tf.experiments.sb3_checkpoints`). A
trial is one run of the training CLI (:func:`ddpg_tf.cli.main`) in a fresh Python process, so
TensorFlow's state and thread pools are never shared; its run directory is ``OUT/runs/NAME``
and its output goes to ``OUT/logs/NAME.log``. Running the same command again skips finished
trials (their ``evaluations.csv`` has a row at the final step), resumes unfinished ones from
their latest checkpoint (``--resume``) and starts those without a checkpoint afresh, so a
killed experiment continues where it stopped. Each trial gets ``--threads`` (and
``OMP_NUM_THREADS``) = ``cpus_per_trial``, by default ``max(1, os.cpu_count() // parallel)``,
unless the overrides set ``threads``; a resumed trial keeps the thread count it was started with.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddpg_tf.config import env_dependent_values
from ddpg_tf.errors import EXIT_INTERRUPTED
from ddpg_tf.experiments.overrides import CONFIG_FIELDS, override_flags
from ddpg_tf.experiments.sb3_checkpoints import latest_checkpoint
from ddpg_tf.experiments.spec import LIBRARIES, SB3_VARIANT, ExperimentSpec

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding the ``ddpg_tf`` package; put on each trial's ``PYTHONPATH``."""
EVAL_FILE = "evaluations.csv"
EVAL_HEADER = ("step", "return_mean", "return_std", "episodes")
STOP_GRACE_SECONDS = 30.0
"""How long interrupted trials get to exit on their own before they are killed."""
_CHILD_CODE = ("import sys; from ddpg_tf.experiments.trials import run_training_child; "
               "sys.exit(run_training_child(sys.argv[1:]))")
_SB3_CHILD_CODE = ("import sys; from ddpg_tf.experiments.trials import run_training_child; "
                   "sys.exit(run_training_child(sys.argv[1:], library='sb3'))")
_PARENT_PID_VAR = "DDPG_TF_EXPERIMENT_PARENT"


@dataclass(frozen=True)
class Trial:
    """One training run of the grid."""

    env: str
    preset: str
    style: str
    """The actor-update style; ``sb3`` for a Stable-Baselines3 trial (its label in the reports)."""
    seed: int

    @property
    def library(self) -> str:
        """``ddpg-tf`` or ``sb3``."""
        return LIBRARIES[1] if self.style == SB3_VARIANT else LIBRARIES[0]

    @property
    def name(self) -> str:
        """The run directory and log name: ``{env}__{preset}__{style}__seed{k}``."""
        return f"{safe_env(self.env)}__{self.preset}__{self.style}__seed{self.seed}"


def safe_env(env_id: str) -> str:
    """An environment id as a file-name part (``ALE/Pong-v5`` -> ``ALE_Pong-v5``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", env_id)


def variants_of(spec: ExperimentSpec) -> tuple[str, ...]:
    """What the reports compare within an env × preset: the ddpg-tf styles, then ``sb3``."""
    ours = spec.styles if LIBRARIES[0] in spec.libraries else ()
    return ours + ((SB3_VARIANT,) if SB3_VARIANT in spec.libraries else ())


def trials_of(spec: ExperimentSpec) -> list[Trial]:
    """Every trial of the grid, in env, preset, variant (styles, then SB3), seed order."""
    return [Trial(env, preset, variant, seed) for env in spec.envs for preset in spec.presets
            for variant in variants_of(spec) for seed in spec.seeds]


# --- what a run directory holds ---------------------------------------------------------------
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
    """Whether ``run_dir`` holds a saved config and a complete checkpoint to ``--resume`` from
    (ddpg-tf's, or an SB3 trial's)."""
    ckpt_dir = run_dir / "checkpoints"
    ours = ((run_dir / "config.json").is_file() and (ckpt_dir / "checkpoint").is_file()
            and any(ckpt_dir.glob("ckpt-*.index")))
    return ours or latest_checkpoint(run_dir) is not None


# --- planning ----------------------------------------------------------------------------------
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
    """The config a trial was started with: ddpg-tf's config.json, or the one in SB3's sb3.json."""
    for name, key in (("config.json", None), ("sb3.json", "config")):
        try:
            saved = json.loads((run_dir / name).read_text())
        except (OSError, ValueError):
            continue
        saved = saved.get(key) if key and isinstance(saved, dict) else saved
        if isinstance(saved, dict):
            return saved
    return {}


def trial_command(spec: ExperimentSpec, trial: Trial, out: Path, threads: int, resume: bool) -> list[str]:
    """The command line of one trial: the training CLI in a fresh Python process (for SB3, the
    same flags to :func:`ddpg_tf.experiments.sb3.run_sb3_child`). The preset's values that
    depend on the environment are passed as flags, so every trial runs the preset as
    ``preset_config(preset, env)`` resolves it; overrides come after them and win."""
    sb3 = trial.library == "sb3"
    flags = ["--preset", trial.preset, "--env-id", trial.env,
             "--actor-update", "direct" if sb3 else trial.style,
             "--seed", str(trial.seed), "--total-steps", str(spec.total_steps),
             "--eval-every", str(spec.eval_every), "--eval-episodes", str(spec.eval_episodes),
             "--logdir", str(out / "runs"), "--run-name", trial.name, "--no-progress"]
    flags += override_flags(env_dependent_values(trial.preset, trial.env))
    if "threads" in CONFIG_FIELDS and "threads" not in spec.overrides:
        flags += ["--threads", str(threads)]
    flags += override_flags(spec.overrides)
    if resume:
        flags.append("--resume")
    return [sys.executable, "-c", _SB3_CHILD_CODE if sb3 else _CHILD_CODE, *flags]


# --- one trial's process -------------------------------------------------------------------------
def run_training_child(argv: Sequence[str], library: str = "ddpg-tf") -> int:
    """Entry point of a trial's process: end with the launcher, then run the training CLI (or,
    for ``library="sb3"``, Stable-Baselines3 with the same flags)."""
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
    if library == "sb3":
        from ddpg_tf.experiments.sb3 import run_sb3_child  # SB3 and PyTorch only in this process

        return run_sb3_child(list(argv), EVAL_HEADER)
    from ddpg_tf.cli import main  # only here: the runner itself never imports TensorFlow

    return main(list(argv))


def launch(job: Job, register: Callable[[subprocess.Popen], bool] | None = None,
           poll: Callable[[], None] | None = None, poll_seconds: float = 2.0) -> Outcome:
    """Run one trial's process to its end, its output appended to ``job.log``.

    ``register(proc)`` is called right after the start (returning False stops the trial at
    once); ``poll()`` is called every ``poll_seconds`` while it runs.
    """
    log = Path(job.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=pythonpath())
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
                _stop(proc)  # started as the grid was stopping: SIGINT, the grace period, SIGKILL
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


def pythonpath() -> str:
    """``PYTHONPATH`` with the directory holding this ``ddpg_tf`` first."""
    return os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
