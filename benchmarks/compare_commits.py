"""Is this checkout's training loop slower than another commit's? Both run in one process.

    python benchmarks/compare_commits.py cc36f9d --case pendulum-64

Two runs that train the same case, one with this checkout's package and one with the package
of commit REV, take turns in one process: each trains ``--block-steps`` environment steps
(after a warm-up of ``learning_starts`` steps each), then hands over to the other. Timing
alternate blocks of one process, rather than alternate processes, removes most of what a
shared machine adds between runs (other tenants' load drifts over minutes, a block lasts a
fraction of a second). The report gives each side's median steps/s and the ratio of each pair
of neighbouring blocks (this / REV) as min / median / max. The first pair (compiling) and the
last (the final evaluation and checkpoint) are left out.

How: ``git archive REV ddpg_tf`` is unpacked into a temporary directory as ``ddpg_tf_base``
(its imports rewritten), so both packages import side by side. Both must offer
``ddpg_tf.training.train(config, on_log=...)`` and ``ddpg_tf.config.Config`` (true from
version 0.1 on). The runs write their logs into temporary directories.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# As in bench_sb3.py: the repository root replaces this folder on sys.path (benchmarks.* imports).
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.cases import CASES, GAMMA, LEARNING_RATE, NOISE_SIGMA, TAU  # noqa: E402

COMMON: dict[str, Any] = dict(learning_starts=1000, eval_every=0, checkpoint_every=0, export=False,
                              progress=False, diag_every=0, buffer_size=1_000_000, actor_lr=LEARNING_RATE,
                              critic_lr=LEARNING_RATE, tau=TAU, gamma=GAMMA, noise_sigma=NOISE_SIGMA)
"""Config fields of every case: bench_sb3.py's shared hyperparameters, nothing written to disk
but the logs."""


def case_fields(name: str) -> dict[str, Any]:
    """Config fields of bench_sb3.py's case ``name`` (its network and batch; default flags)."""
    case = CASES[name]
    return dict(COMMON, env_id=case.env_id, actor_hidden=case.hidden, critic_hidden=case.hidden,
                batch_size=case.batch_size)


def unpack_base(rev: str, into: Path) -> None:
    """The package of commit ``rev`` as ``into/ddpg_tf_base``, its imports renamed."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "ddpg_tf"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    (into / "ddpg_tf").rename(into / "ddpg_tf_base")
    for path in (into / "ddpg_tf_base").rglob("*.py"):
        path.write_text(re.sub(r"\bddpg_tf\b", "ddpg_tf_base", path.read_text()))


class Baton:
    """Two runs taking turns: a run calls :meth:`handover` at each of its block ends."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.turn = "base"
        self.finished: set[str] = set()
        self.started = 0.0
        self.rates: dict[str, list[float]] = {"base": [], "this": []}

    def wait_turn(self, me: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.turn == me)

    def handover(self, me: str, other: str, steps: int | None) -> None:
        """End ``me``'s block of ``steps`` steps (None: its warm-up), wait for the next turn."""
        with self.cond:
            if steps is not None:
                self.rates[me].append(steps / (time.perf_counter() - self.started))
            self.turn = other
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.turn == me or other in self.finished)
            self.started = time.perf_counter()

    def finish(self, me: str, other: str) -> None:
        with self.cond:
            self.finished.add(me)
            self.turn = other
            self.cond.notify_all()


def run_side(baton: Baton, me: str, other: str, package: str, fields: dict[str, Any],
             block: int, errors: list[BaseException]) -> None:
    """Train one side, handing over after its warm-up and after every block."""
    try:
        baton.wait_turn(me)
        config_module = __import__(f"{package}.config", fromlist=["Config"])
        training = __import__(f"{package}.training", fromlist=["train"])
        start = fields["learning_starts"]

        def on_log(step: int, values: Any) -> None:
            if step >= start:
                baton.handover(me, other, None if step == start else block)

        # Both sides run the case's settings as given: a version with speed="auto" would
        # otherwise choose its own (and its thread counts cannot apply in a shared process).
        names = {f.name for f in dataclasses.fields(config_module.Config)}
        if "speed" in names and "speed" not in fields:
            fields = {**fields, "speed": "manual"}
        with tempfile.TemporaryDirectory() as logdir:
            config = config_module.Config(**fields, logdir=logdir, log_every=block).validate()
            training.train(config, on_log=on_log)
    except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
        errors.append(exc)
    finally:
        baton.finish(me, other)


def summary(this: list[float], base: list[float]) -> dict[str, Any]:
    """Medians and the paired ratios (this / base) of the blocks between the first pair
    (compiling) and the last (the final evaluation and checkpoint may fall into it)."""
    k = min(len(this), len(base)) - 1
    pairs = list(zip(this[1:k], base[1:k], strict=True))
    ratios = sorted(t / b for t, b in pairs)
    return {"this_rates": [t for t, _ in pairs], "base_rates": [b for _, b in pairs],
            "blocks": len(pairs), "this_median": statistics.median(t for t, _ in pairs),
            "base_median": statistics.median(b for _, b in pairs),
            "ratio_min": ratios[0], "ratio_median": statistics.median(ratios), "ratio_max": ratios[-1]}


def parse_setting(text: str) -> tuple[str, Any]:
    """``FIELD=VALUE`` as a (field, value) pair; ``true``/``false`` and Python literals are
    read as such, anything else stays a string."""
    field, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"compare_commits: --set takes FIELD=VALUE, not {text!r}")
    lowered = {"true": True, "false": False}.get(value.lower())
    if lowered is not None:
        return field, lowered
    try:
        return field, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return field, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rev", help="the commit to compare with (any git revision)")
    parser.add_argument("--case", choices=sorted(CASES), default="pendulum-64",
                        help="a case of bench_sb3.py, with the library's default flags")
    parser.add_argument("--blocks", type=int, default=30, help="timed blocks per side")
    parser.add_argument("--block-steps", type=int, default=250, help="environment steps per block")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="one pair of runs per seed (the speed of an update can depend on the data, "
                             "e.g. through denormal numbers, so one seed can mislead); blocks are pooled")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a Config field for both sides, e.g. --set jit_compile=false (repeatable; "
                             "the value is read as a Python literal, else kept as a string)")
    args = parser.parse_args(argv)
    overrides = dict(parse_setting(text) for text in args.set)
    this_rates: list[float] = []
    base_rates: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        unpack_base(args.rev, Path(tmp))
        sys.path[:0] = [tmp, str(ROOT)]
        for seed in args.seeds:
            fields = {**case_fields(args.case), **overrides, "seed": seed}
            fields["total_steps"] = fields["learning_starts"] + args.block_steps * (args.blocks + 3)
            baton, errors = Baton(), []
            sides = [threading.Thread(target=run_side, args=(baton, "base", "this", "ddpg_tf_base", fields,
                                                             args.block_steps, errors)),
                     threading.Thread(target=run_side, args=(baton, "this", "base", "ddpg_tf", fields,
                                                             args.block_steps, errors))]
            for side in sides:
                side.start()
            for side in sides:
                side.join()
            if errors:
                break
            s = summary(baton.rates["this"], baton.rates["base"])
            this_rates += s.pop("this_rates")
            base_rates += s.pop("base_rates")
            print(f"seed {seed}: ratio this/{args.rev} median {s['ratio_median']:.3f} "
                  f"(min {s['ratio_min']:.3f}, max {s['ratio_max']:.3f})", flush=True)
    if errors:
        print(f"compare_commits: a run failed: {type(errors[0]).__name__}: {errors[0]}", file=sys.stderr)
        return 1
    s = summary([0.0] + this_rates + [0.0], [0.0] + base_rates + [0.0])
    seeds = ", ".join(map(str, args.seeds))
    print(f"{args.case}: this checkout {s['this_median']:.0f} steps/s, {args.rev} {s['base_median']:.0f} "
          f"steps/s over {s['blocks']} paired blocks of {args.block_steps} steps (seeds {seeds}); "
          f"ratio this/{args.rev} min {s['ratio_min']:.3f} median {s['ratio_median']:.3f} "
          f"max {s['ratio_max']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
