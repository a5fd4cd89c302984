"""Where the trial processes run: a local thread pool, or Ray Tune.

``local`` (default) runs at most ``--parallel`` trials at once from a thread pool, each thread
waiting on its trial's process; the processes run in their own session, so Ctrl-C reaches only
the runner, which forwards SIGINT to every running trial (the training CLI then stops, keeping
its last checkpoint), waits up to 30 s, kills what is left and exits with 130.

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
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ddpg_tf.errors import EXIT_INTERRUPTED
from ddpg_tf.experiments.spec import ExperimentSpec, SpecError
from ddpg_tf.experiments.trials import (
    STOP_GRACE_SECONDS,
    Job,
    Outcome,
    launch,
    pythonpath,
    read_evaluations,
)


class Console:
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


# --- local: a thread pool of processes -----------------------------------------------------------
def run_local(jobs: Sequence[Job], parallel: int, console: Console) -> list[Outcome]:
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


# --- ray: Ray Tune trials that each launch one process -------------------------------------------
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


def run_ray(jobs: Sequence[Job], spec: ExperimentSpec, out: Path, console: Console) -> list[Outcome]:
    """Run ``jobs`` as Ray Tune trials (see the module docstring); raise :class:`Interrupted`
    if Tune stopped before every trial ended."""
    import logging

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic reporter honours verbose=0
    import ray
    from ray import tune

    init_args: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR,
                                 "runtime_env": {"env_vars": {"PYTHONPATH": pythonpath()}}}
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
