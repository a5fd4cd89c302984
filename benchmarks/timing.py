"""What the timed workers of every library share: clocks, timing windows, end-to-end rates and
the thread settings they ran with."""

from __future__ import annotations

import os
import time
from typing import Any


def clock() -> tuple[float, float]:
    """(wall, CPU time of this process): their ratio over a window is the cores it kept busy."""
    return time.perf_counter(), time.process_time()


def window(t0: tuple[float, float], t1: tuple[float, float]) -> dict[str, float]:
    """Seconds between two :func:`clock` readings and the cores kept busy meanwhile."""
    wall = t1[0] - t0[0]
    return {"seconds": wall, "cpu_per_wall": (t1[1] - t0[1]) / wall}


def cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_env() -> dict[str, str]:
    """The thread-count environment variables that are set."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
             "XLA_FLAGS")
    return {k: os.environ[k] for k in names if k in os.environ}


def e2e_result(spec: dict[str, Any], times: dict[int, tuple[float, float]]) -> dict[str, Any]:
    """Environment steps per second over the planned window, from :func:`clock` readings at
    step numbers (the window's ends and the first log after ``learning_starts``)."""
    start, end, early = spec["window_start"], spec["total_steps"], spec["first_log_after_learning_starts"]
    timed = window(times[start], times[end])
    return {"env_steps_per_s": (end - start) / timed["seconds"], "window": [start, end], **timed,
            "env_steps_per_s_including_warmup": (end - early) / (times[end][0] - times[early][0]),
            "warmup_window": [early, end]}


def vec_result(result: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """An end-to-end result of a run with ``spec["vector_envs"]`` environment copies."""
    return {**result, "vec_env_steps_per_s": result.pop("env_steps_per_s"), "num_envs": spec["vector_envs"]}
