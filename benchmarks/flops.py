"""The physical limit of an update: the peak float32 matmul rate of this machine, measured (a
worker of its own, see ``runner``). An update's matmul FLOPs are counted by
:func:`ddpg_tf.speed.update_flops`."""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks.timing import clock, window
from benchmarks.workers_ddpg_tf import tf_threads


def worker_peak(spec: dict[str, Any]) -> dict[str, Any]:
    """GFLOP/s of ``tf.matmul`` of two ``n`` x ``n`` float32 matrices, per repetition and best."""
    from ddpg_tf._quiet import tf

    n = spec["n"]
    a = tf.random.stateless_normal((n, n), seed=(1, 2), dtype=tf.float32)
    b = tf.random.stateless_normal((n, n), seed=(3, 4), dtype=tf.float32)
    tf.matmul(a, b)[0, 0].numpy()  # warm-up (oneDNN primitive creation)
    gflops = []
    first = clock()
    for _ in range(spec["reps"]):
        start = time.perf_counter()
        tf.matmul(a, b)[0, 0].numpy()
        gflops.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return {"n": n, "gflops_runs": gflops, "gflops_best": max(gflops),
            "gflops_median": statistics.median(gflops),
            "cpu_per_wall": window(first, clock())["cpu_per_wall"], "threads": tf_threads()}
