"""Memory measurements: the peak resident memory of a process, the peak memory of a compiled
call (:class:`PeakMemory`), the footprint of a filled replay buffer and that of the bare
frameworks (workers of their own, see ``runner``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib
import math
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.workers_ddpg_tf import fill_ours_buffer

MEMORY_NOTES = {
    "tf-allocator": "tensor bytes from TensorFlow's CPU allocator statistics; buffers under 256 KiB "
                    "are not counted",
    "clear_refs": "resident memory, VmHWM after clear_refs",
    "sampling": "resident memory sampled every 1 ms",
}
"""What each :class:`PeakMemory` method measures, for the notes under a table."""


# --- the process -----------------------------------------------------------------------------
def proc_status(field: str) -> int | None:
    """The number of a /proc/self/status field (``kB`` for VmRSS, VmHWM; a count for Threads);
    None where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def status_mib(field: str) -> float:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM) in MiB; NaN where unavailable."""
    kib = proc_status(field)
    return float("nan") if kib is None else kib / 1024


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (``getrusage``'s ``ru_maxrss``:
    KiB on Linux, bytes on macOS)."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (2**20 if sys.platform == "darwin" else 1024)


# --- a compiled call -------------------------------------------------------------------------
def _malloc_trim() -> None:
    """Hand freed heap memory back to the OS (glibc), so the baseline RSS holds no
    reusable free blocks that would hide a call's allocations."""
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _tf_allocator_stats() -> bool:
    from ddpg_tf._quiet import tf

    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
        tf.config.experimental.get_memory_info("CPU:0")
    except (ValueError, RuntimeError, tf.errors.OpError):
        return False
    return True


class PeakMemory:
    """Peak memory of a block of code, in MiB above the memory in use before it.

    Methods, the first available is used:

    ``tf-allocator``
        TensorFlow's own CPU allocator statistics (``tf.config.experimental.get_memory_info``
        after ``reset_memory_stats``): peak bytes held by tensors during the block, minus the
        bytes held before it. Available when TensorFlow pools CPU memory in its BFC allocator,
        which is the default on x86 builds with oneDNN. Resident memory cannot be used then:
        the pool keeps freed memory, so a call's tensors reuse pages that are already resident.
        Measured limit (TF 2.21): buffers smaller than 256 KiB come from a separate small-object
        pool these statistics omit, so small networks can show 0.00 MiB.
    ``clear_refs``
        Linux resident memory (e.g. with ``TF_ENABLE_ONEDNN_OPTS=0``, where TensorFlow
        allocates with malloc): writing 5 to /proc/self/clear_refs resets the high-water mark
        VmHWM to the current RSS, after glibc's free heap has been returned to the OS with
        ``malloc_trim``; VmHWM read after the block is its peak. Includes non-tensor memory.
    ``sampling``
        Where clear_refs cannot be written: a thread reads VmRSS every millisecond (can miss
        shorter peaks, and costs some CPU time).
    ``unavailable``
        Peaks are reported as None.

    Use: ``memory.start()``, the block, ``memory.stop()`` (the peak).
    """

    def __init__(self) -> None:
        if _tf_allocator_stats():
            self.method = "tf-allocator"
        elif _reset_peak() and proc_status("VmHWM") is not None:
            self.method = "clear_refs"
        elif proc_status("VmRSS") is not None:
            self.method = "sampling"
        else:
            self.method = "unavailable"
        self._base = 0
        self._sampled = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Take the baseline; the peak counts from here."""
        gc.collect()
        if self.method == "tf-allocator":
            from ddpg_tf._quiet import tf

            tf.config.experimental.reset_memory_stats("CPU:0")
            self._base = tf.config.experimental.get_memory_info("CPU:0")["current"]
            return
        _malloc_trim()
        self._base = 1024 * (proc_status("VmRSS") or 0)
        if self.method == "clear_refs":
            _reset_peak()
        elif self.method == "sampling":
            self._sampled = self._base
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._sampled = max(self._sampled, 1024 * (proc_status("VmRSS") or 0))
            time.sleep(0.001)

    def stop(self) -> float | None:
        """Peak increase in MiB since :meth:`start` (None if memory cannot be measured)."""
        if self.method == "tf-allocator":
            from ddpg_tf._quiet import tf

            peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
        elif self.method == "clear_refs":
            peak = 1024 * (proc_status("VmHWM") or 0)
        elif self.method == "sampling" and self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = max(self._sampled, 1024 * (proc_status("VmRSS") or 0))
        else:
            return None
        return max(peak - self._base, 0) / 2.0**20


# --- a replay buffer -------------------------------------------------------------------------
def worker_buffer(spec: dict[str, Any]) -> dict[str, Any]:
    """Allocate and fill a ddpg-tf ReplayBuffer; peak RSS against the size of its storage."""
    import numpy as np

    from ddpg_tf.replay_buffer import ReplayBuffer

    capacity, obs_dim, action_dim = spec["capacity"], spec["obs_dim"], spec["action_dim"]
    baseline = status_mib("VmRSS")  # after imports, before allocating: the constant part
    buffer = ReplayBuffer(capacity, obs_dim, action_dim, seed=0, dtype="float32")
    low, high = -np.ones(action_dim), np.ones(action_dim)
    fill = fill_ours_buffer(buffer, capacity, obs_dim, low, high)
    sample_ok: bool | str = True
    try:
        for _ in range(100):
            buffer.sample(256)
    except Exception as exc:  # report it, but keep the memory numbers
        sample_ok = f"{type(exc).__name__}: {exc}"
    # Everything the buffer holds per transition: NumPy arrays or TF variables of `capacity` rows.
    arrays = {name: (tuple(v.shape), np.dtype(getattr(v.dtype, "as_numpy_dtype", v.dtype)))
              for name, v in vars(buffer).items()
              if hasattr(v, "shape") and hasattr(v, "dtype") and len(v.shape) >= 1
              and v.shape[0] == capacity}
    arrays_mib = sum(math.prod(shape) * dtype.itemsize for shape, dtype in arrays.values()) / 2**20
    peak = peak_rss_mib()
    return {
        "capacity": capacity, "obs_dim": obs_dim, "action_dim": action_dim, "fill_method": fill,
        "arrays": {k: [list(shape), str(dtype)] for k, (shape, dtype) in arrays.items()},
        "arrays_mib": round(arrays_mib, 1),
        "transitions_float32_mib": round(capacity * (2 * obs_dim + action_dim + 3) * 4 / 2**20, 1),
        "rss_before_allocation_mib": round(baseline, 1),
        "rss_after_fill_mib": round(status_mib("VmRSS"), 1),
        "overhead_beyond_arrays_mib": round(peak - baseline - arrays_mib, 1),
        "sample_ok": sample_ok,
    }


# --- the frameworks alone ----------------------------------------------------------------------
def worker_bare_import(spec: dict[str, Any]) -> dict[str, Any]:
    """Import ``spec["modules"]`` (e.g. tensorflow and keras) and nothing else: the worker's
    peak RSS (added by the runner) is the footprint a library on those frameworks starts from."""
    for name in spec["modules"]:
        importlib.import_module(name)
    return {"modules": list(spec["modules"]), "rss_mib": round(status_mib("VmRSS"), 1)}
