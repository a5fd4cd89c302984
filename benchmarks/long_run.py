"""Long-run stability: train Pendulum-v1 for 200k steps and record memory and speed.

    python benchmarks/long_run.py [--steps 200000] [--every 10000] [--out benchmarks/results/long_run.json]

Every ``--every`` steps it records the process's resident memory (VmRSS, and the peak VmHWM)
and the training speed over the last window. With the default 100k-transition buffer, memory
should rise while the buffer fills (its arrays are allocated up front but touched lazily)
and stay flat afterwards; steps/s should not drift downwards.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.memory import status_mib  # noqa: E402
from ddpg_tf.config import PRESETS  # noqa: E402
from ddpg_tf.training import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--buffer-size", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/long_run.json"))
    args = parser.parse_args()

    rows: list[dict[str, float]] = []
    window = {"start": time.perf_counter(), "step": 0}

    def on_log(step: int, values: dict[str, float]) -> None:
        if step % args.every:
            return
        now = time.perf_counter()
        sps = (step - window["step"]) / (now - window["start"])
        window.update(start=now, step=step)
        row = {"step": step, "rss_mib": round(status_mib("VmRSS"), 1),
               "peak_rss_mib": round(status_mib("VmHWM"), 1), "steps_per_second": round(sps, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    with tempfile.TemporaryDirectory() as logdir:
        config = PRESETS["pendulum"].replace(
            total_steps=args.steps, buffer_size=args.buffer_size, eval_every=args.every, eval_episodes=5,
            log_every=1_000, checkpoint_every=50_000, progress=False, export=False, logdir=logdir,
            run_name="long").validate()
        result = train(config, on_log=on_log)

    full = [r for r in rows if r["step"] > args.buffer_size]
    summary = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "python": platform.python_version()},
        "steps": args.steps, "buffer_size": args.buffer_size, "rows": rows,
        "final_eval_mean": result.evaluations[-1][1],
        "rss_growth_after_buffer_full_mib": (round(full[-1]["rss_mib"] - full[0]["rss_mib"], 1)
                                             if full else None),
        "steps_per_second_first_vs_last": [rows[0]["steps_per_second"], rows[-1]["steps_per_second"]],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
