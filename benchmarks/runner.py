"""How the comparison runs: every measurement in a fresh worker process (``bench_sb3.py
--worker KIND SPEC``, which prints its result as one JSON line), interleaved ddpg-tf / SB3 /
SBX per case, repeat and metric, after each library's bare-import baseline; the parent notes how
busy the rest of the machine was meanwhile and gathers the results into the report (summaries:
``report``)."""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import memory, workers_ddpg_tf, workers_sb3, workers_sbx
from benchmarks.cases import (CASES, FULL, GAMMA, LEARNING_RATE, LIB_LABEL, LIBRARIES, METRICS, MIN_REPEATS,
                              NOISE_SIGMA, PEERS, QUICK, TAU, VALUE_KEY, Case)
from benchmarks.flops import worker_peak
from benchmarks.report import load_warning, summarize_bare, summarize_case, summarize_memory, summarize_peak
from benchmarks.timing import cpus

ROOT = Path(__file__).resolve().parents[1]
ENTRY = Path(__file__).resolve().with_name("bench_sb3.py")
"""The command line a worker process runs (with ``--worker``)."""
RESULT_MARK = "BENCH_SB3_RESULT "

WORKER_MODULES = {"ddpg_tf": workers_ddpg_tf, "sb3": workers_sb3, "sbx": workers_sbx}
"""Where each library's timed workers (``worker_e2e``, ``worker_update``, ...) live."""
WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    **{f"{lib}/{metric}": getattr(module, f"worker_{metric}")
       for lib, module in WORKER_MODULES.items() for metric in METRICS},
    **{f"{lib}/bare": memory.worker_bare_import for lib in LIBRARIES},
    "peak": worker_peak, "memory": memory.worker_buffer,
}
"""Each worker kind's measurement: ``LIB/METRIC``, ``LIB/bare`` (the frameworks' import alone),
``peak`` (matmul rate) and ``memory`` (a filled replay buffer)."""


def missing_modules(lib: str) -> list[str]:
    """The modules ``lib`` needs that are not installed (found without importing them)."""
    return [m for m in LIBRARIES[lib].requires if importlib.util.find_spec(m) is None]


def install_hint(lib: str) -> str:
    """Why ``lib`` cannot run and how to install it."""
    return (f"not installed ({', '.join(missing_modules(lib))} missing; "
            f"pip install -e '.[{LIBRARIES[lib].extra}]')")


# --- a worker --------------------------------------------------------------------------------
def run_worker(kind: str, spec: dict[str, Any]) -> None:
    """Worker entry point: run one measurement and print its JSON result on one line, with the
    process's peak RSS, its OS threads and which of TensorFlow, PyTorch and JAX it loaded."""
    lib, _, metric = kind.partition("/")
    if lib not in LIBRARIES:
        lib = "ddpg_tf"  # peak, memory: TensorFlow workers
    for name in LIBRARIES[lib].blocked:
        # An entry of None in sys.modules makes that import fail; the optional imports that would
        # load another framework as an idle passenger (torch.utils.tensorboard -> TensorFlow in
        # the peers; tensorflow.lite -> JAX in ddpg-tf) then fall back to doing without it.
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    threads = spec.get("threads")
    if not threads or metric == "bare" or kind == "memory":
        pass  # library defaults; a bare import imports nothing else
    elif lib in PEERS:  # SB3 is PyTorch; SBX keeps SB3's PyTorch buffer (XLA has no such setting)
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
    else:
        from ddpg_tf._quiet import tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    wall = time.perf_counter()
    result = WORKERS[kind](spec)
    result["worker_wall_s"] = round(time.perf_counter() - wall, 2)
    result["peak_rss_mib"] = round(memory.peak_rss_mib(), 1)
    threads_now = memory.proc_status("Threads")
    result["os_threads_at_end"] = -1 if threads_now is None else threads_now
    result["modules_loaded"] = {m: m in sys.modules and sys.modules[m] is not None
                                for m in ("tensorflow", "torch", "jax")}
    print(RESULT_MARK + json.dumps(result), flush=True)


# --- the parent ------------------------------------------------------------------------------
def _busy_cpu_seconds() -> float:
    """CPU seconds all processes have spent busy since boot (/proc/stat; NaN elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    guest = sum(ticks[8:10]) if len(ticks) > 9 else 0  # already counted in user / nice
    return (sum(ticks) - idle - guest) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spawn(kind: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one worker; add its wall time and how many CPUs *other* processes kept busy meanwhile
    (all busy CPU time minus the worker's own, per second): a measure of how quiet the machine was."""
    cmd = [sys.executable, str(ENTRY), "--worker", kind, json.dumps(spec)]
    start, busy0, own0 = time.perf_counter(), _busy_cpu_seconds(), _children_cpu_seconds()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - start
    other = (_busy_cpu_seconds() - busy0 - (_children_cpu_seconds() - own0)) / wall
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        return {"error": f"worker {kind} exited with {proc.returncode}:\n{tail}"}
    result = json.loads(lines[-1][len(RESULT_MARK):])
    result["process_wall_s"] = round(wall, 2)
    result["other_busy_cpus"] = round(max(other, 0.0), 2)
    return result


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, OS and library versions (read without importing the libraries)."""
    cpu = platform.processor() or "unknown"
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = [f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "amx", "fma"))]
    except OSError:
        pass
    mem_gib = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    versions = {}
    for dist in ("tensorflow", "keras", "tensorflow-probability", "torch", "stable-baselines3",
                 "jax", "jaxlib", "flax", "optax", "sbx-rl", "gymnasium", "mujoco", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"cpu_model": cpu, "cpu_flags": flags, "logical_cpus": os.cpu_count(),
            "cpus_available": cpus(), "memory_gib": mem_gib, "platform": platform.platform(),
            "python": platform.python_version(), "versions": versions,
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def plan(args: argparse.Namespace, settings: dict[str, Any], case: Case) -> dict[str, Any]:
    """The spec every worker of ``case`` gets (a repeat adds its seed): sizes, the timed
    end-to-end window, update and action counts, threads and ddpg-tf overrides."""
    every = settings["log_every"]
    # ddpg-tf trains once the buffer holds a batch; SB3 would sample a short buffer with repeats.
    learning_starts = max(settings["learning_starts"], case.batch_size)
    # The timed window opens warmup_steps after the first episode end that follows
    # learning_starts: by then ddpg-tf has traced every variant of its step (the one fused with
    # the next action, and the one used at an episode end), so one-off tracing is not timed.
    first_end = (learning_starts // case.episode_steps + 1) * case.episode_steps
    window_start = math.ceil((first_end + settings["warmup_steps"]) / every) * every
    steps = settings.get("e2e_steps") or case.e2e_steps
    total = window_start + math.ceil(steps / every) * every
    return {"env_id": case.env_id, "hidden": list(case.hidden), "batch_size": case.batch_size,
            "buffer_size": settings["buffer_size"], "learning_starts": learning_starts,
            "log_every": every, "window_start": window_start, "total_steps": total,
            "first_log_after_learning_starts": math.ceil(learning_starts / every) * every,
            "updates": settings["updates"], "update_warmup": settings["update_warmup"],
            "update_fill": settings["update_fill"], "actions": settings["actions"],
            "action_warmup": settings["action_warmup"], "threads": args.threads,
            "ddpg_tf_overrides": {**args.ddpg_tf_set.get("*", {}), **args.ddpg_tf_set.get(case.name, {})}}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run every worker (interleaved), gather raw results, min / median / max and ratios.

    ``args.peers``: the peers to run (installed ones); ``args.skipped_peers``: those left out,
    each with the reason, recorded in the report."""
    settings = dict(QUICK if args.quick else FULL)
    for key in ("repeats", "e2e_steps", "updates", "learning_starts", "warmup_steps"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    cases = [CASES[name] for name in args.cases]
    metrics = METRICS if args.num_envs > 1 else METRICS[:-1]
    libs = ("ddpg_tf", *args.peers)
    repeats = settings["repeats"]
    report: dict[str, Any] = {
        "benchmark": "bench_sb3", "schema": 2, "quick": bool(args.quick),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(), "libs": list(libs), "skipped_peers": dict(args.skipped_peers),
        "settings": {**settings, "learning_rate": LEARNING_RATE, "tau": TAU, "gamma": GAMMA,
                     "noise": f"gaussian sigma {NOISE_SIGMA} x half action range",
                     "train_freq": 1, "gradient_steps": 1, "critic_action_layer": 0,
                     "order": "bare imports per repeat, then per case, per repeat, per metric: "
                              + " then ".join(LIB_LABEL[lib] for lib in libs),
                     "threads": args.threads or "library defaults",
                     "ddpg_tf_overrides": args.ddpg_tf_set, "num_envs": args.num_envs},
        "peak_matmul": {"runs": []}, "cases": {}, "threads": {}, "errors": [], "warnings": [],
    }
    if repeats < MIN_REPEATS:
        report["warnings"].append(f"{repeats} repeat(s): min / median / max need at least {MIN_REPEATS}.")
    for peer, why in args.skipped_peers.items():
        print(f"{LIB_LABEL[peer]} skipped: {why}", flush=True)
    busy: list[tuple[str, float]] = []
    total_workers = repeats * len(libs) + len(cases) * (1 + repeats * len(metrics) * len(libs)) + 1
    done = 0

    def run(kind: str, spec: dict[str, Any], what: str) -> dict[str, Any]:
        nonlocal done
        result = spawn(kind, spec, args.timeout)
        done += 1
        if "error" in result:
            report["errors"].append({"what": what, "error": result["error"]})
            print(f"[{done}/{total_workers}] {what}: FAILED\n{result['error']}", flush=True)
        else:
            value = next(result[k] for k in (*VALUE_KEY.values(), "gflops_best", "arrays_mib", "peak_rss_mib")
                         if k in result)
            busy.append((what, result["other_busy_cpus"]))
            print(f"[{done}/{total_workers}] {what}: {value:.4g}  ({result['process_wall_s']:.1f} s, "
                  f"peak RSS {result['peak_rss_mib']:.0f} MiB, other processes busy "
                  f"{result['other_busy_cpus']:.2f} CPUs)", flush=True)
        return result

    bare: dict[str, list[dict[str, Any]]] = {lib: [] for lib in libs}
    for r in range(repeats):
        for lib in libs:
            modules = LIBRARIES[lib].bare_imports
            what = f"bare import r{r + 1} {LIB_LABEL[lib]} ({', '.join(modules)}), peak RSS MiB"
            bare[lib].append(run(f"{lib}/bare", {"modules": list(modules)}, what))
    report["bare_import"] = summarize_bare(bare)
    for case in cases:
        peak = run("peak", {"n": settings["matmul_n"], "reps": settings["matmul_reps"],
                            "threads": args.threads},
                   f"peak matmul {settings['matmul_n']}^3 (before {case.name})")
        if "error" not in peak:
            report["peak_matmul"]["runs"].append(peak)
        case_plan = plan(args, settings, case)
        raw: dict[str, dict[str, list[dict[str, Any]]]] = {lib: {m: [] for m in metrics} for lib in libs}
        for r in range(repeats):
            for metric in metrics:
                for lib in libs:
                    spec = {**case_plan, "seed": 1 + r}
                    if metric == "e2e_vec":
                        spec["vector_envs"] = args.num_envs
                    result = run(f"{lib}/{metric}", spec, f"{case.name} r{r + 1} {metric} {LIB_LABEL[lib]}")
                    raw[lib][metric].append(result)
                    if "threads" in result:
                        report["threads"].setdefault(lib, result["threads"])
        report["cases"][case.name] = summarize_case(case, case_plan, raw, metrics)

    buffer = run("memory", {"capacity": settings["memory_capacity"], "obs_dim": 17, "action_dim": 6},
                 f"memory: ReplayBuffer({settings['memory_capacity']}, 17, 6) filled")
    report["memory"] = {"env_id": "HalfCheetah-v5", **buffer}
    summarize_peak(report, settings["matmul_n"])
    summarize_memory(report)
    report["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    warning = load_warning(busy)
    if warning:
        report["warnings"].append(warning)
    return report
