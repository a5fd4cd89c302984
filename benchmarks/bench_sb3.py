"""ddpg-tf against its peers, Stable-Baselines3 and SBX: speed, FLOP efficiency and memory.

All libraries are measured in one invocation, in turns.

    python benchmarks/bench_sb3.py [--tuned] [--peers sb3,sbx] [--repeats 3]
                                   [--cases pendulum-64,halfcheetah-256] [--num-envs 4]
                                   [--out-dir benchmarks/results] [--quick]

The peers: SB3 (Stable-Baselines3's DDPG, PyTorch; the ``bench`` extra, ``pip install -e
".[bench]"``) and SBX (Stable-Baselines3 in JAX, all gradient steps of a ``train`` call in one
``jax.jit``; the ``sbx`` extra). ``--peers`` picks them; by default every installed one runs and
the report names those left out.

What is measured, per case (environment, hidden sizes, batch), for every library:

(a) **end-to-end**: environment steps per second of the full training loop once learning has
    started (one environment step, one action selection with exploration noise, one replay
    sample and one gradient step per step). ddpg-tf runs :func:`ddpg_tf.training.train` and is
    timed through its ``on_log`` hook; SB3 and SBX run ``DDPG.learn`` and are timed by a
    callback. All time the same step numbers: the window opens ``--warmup-steps`` after the
    first episode end following ``learning_starts`` (by then ddpg-tf has traced every variant
    of its compiled step and SBX has compiled its update, so one-off tracing is excluded) and
    closes ``--e2e-steps`` later. The JSON also holds the rate from ``learning_starts`` on,
    tracing included (``env_steps_per_s_including_warmup``).
(b) **update-only**: updates per second of K consecutive gradient steps on a buffer filled
    with random transitions, each including its replay sample, after a warm-up, in one call
    for every library. SB3 and SBX: ``model.train(gradient_steps=K, batch_size=B)`` (SBX
    compiles one function per K, so its warm-up ends with one untimed call with the same K).
    ddpg-tf: ``agent.train_on_replay(rounds=K)`` after ``agent.bind_replay`` (K rounds of
    in-graph sampling and updating in one compiled call). The JSON (``updates_per_s_by_call``)
    also holds the rate of the per-step call ddpg-tf's training loop makes,
    ``train_on_replay()`` in a Python loop, and of ``agent.train_step(buffer.sample(B))`` (a
    host batch per update).
(c) **action selection**: milliseconds per exploratory action, timing the call each library's
    own training loop makes: ddpg-tf ``agent.act(obs, explore=True)`` (actor, Gaussian noise,
    clip), SB3 and SBX ``model._sample_action(learning_starts, action_noise)`` (``predict``,
    scale to [-1, 1], Gaussian noise, clip, unscale).

Identical settings in every library: hidden sizes for actor and critic (the action enters the
critic at its input, as in SB3: ``critic_action_layer=0``), batch size, Adam with learning rate
1e-3 for actor and critic (SBX: ``learning_rate`` and ``qf_learning_rate``), tau 0.005, gamma
0.99, buffer size, ``learning_starts``, one gradient step per environment step (``train_freq``
1, ``gradient_steps`` 1), no weight decay, no gradient clipping, and Gaussian exploration noise
with sigma 0.1. SB3 and SBX add ``NormalActionNoise(0, 0.1)`` to the action rescaled to [-1, 1]
and clip there; ddpg-tf's ``noise_sigma`` is a fraction of the half action range (high - low) /
2 and it clips to [low, high]. All are N(0, (0.1 (high - low) / 2)^2) in environment units
followed by a clip to the bounds, i.e. the same exploration.

Every measurement runs in a fresh worker process (this script with ``--worker``), so
TensorFlow, PyTorch and JAX never share a process (SBX's workers load PyTorch too: SBX keeps
SB3's replay buffer) and each library starts with its default thread settings (recorded in the
JSON). SB3 and SBX workers block ``import tensorflow`` (``torch.utils.tensorboard`` would
otherwise import it as an idle passenger). Runs are interleaved: for each case and repeat,
every measurement runs for ddpg-tf, then SB3, then SBX (A B C A B C); the report gives each
value as median (min–max) over the repeats (3 by default) and the ratio ddpg-tf / peer of the
medians for each peer (> 1: ddpg-tf faster; for milliseconds per action the ratio is peer ms /
ddpg-tf ms, also a speed-up). Where ddpg-tf's run-to-run spread (max - min) / median of a
measurement is above 10%, the report flags it and gives the other-process load measured during
those runs: the likely cause, or a quiet machine.

The physical-limit rows divide the matmul FLOPs of one update (:func:`update_flops`, counted
from the layer sizes) by the measured update time and compare with the peak float32 matmul
rate of this machine, measured in the same invocation (``tf.matmul`` of two 2048 x 2048
matrices, best of several; one such worker runs before each case). The memory rows give each
library's end-to-end worker peak RSS and how far above its **bare framework import** it is: a
worker that only imports the frameworks (``tensorflow, keras`` for ddpg-tf, ``torch`` for SB3,
``jax, torch`` for SBX) and exits, run once per repeat before the cases. A last worker fills a
1e6-transition ddpg-tf ``ReplayBuffer`` for HalfCheetah-v5 and reports its peak RSS against the
size of the buffer's arrays.

Run it on an idle machine: every worker records how many CPUs *other* processes kept busy
meanwhile, and the report warns when that exceeded 0.3. (On 2 cores, PyTorch's OpenMP threads
stall badly when another process holds a core: SB3 updates then run tens of times slower.)
``--threads N`` sets ddpg-tf's and PyTorch's intra- and inter-op threads instead of their
defaults (XLA's CPU pool under JAX has no such setting). With SB3 alone the full run (4 cases,
3 repeats, 101 worker processes) took about 23 minutes on 2 cores; with SB3 and SBX it is 158
workers, about 35 minutes; the fifth case (pendulum-256-b128) adds about 40 workers.

(d) **vector environments** (extra rows, ``--num-envs N``, default 4; 0 skips them): end to end
    with N environment copies for every library, one gradient step per collected transition:
    ddpg-tf ``--num-envs N`` (N transitions stored and N updates in one compiled call per
    vector step), SB3 and SBX a ``DummyVecEnv`` of N copies with ``gradient_steps=-1``.

``--ddpg-tf-set [CASE:]FIELD=VALUE`` changes ddpg-tf settings that the peers do not share (XLA,
batch chunks, thread pools), for all cases or one; the report lists them per case.

Outputs ``OUT_DIR/bench_sb3.json`` (every raw repeat, min / median / max, ratios, spreads,
memory baselines, machine, versions, threads, settings) and ``OUT_DIR/bench_sb3.md`` (the
tables, also printed; rebuilt from the JSON alone by ``report.markdown``).

This file is the command line; the modules beside it do the work (see ``benchmarks/__init__.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder is sys.path[0]: the repository root takes its place, so the
# modules here are imported as benchmarks.* and cannot shadow a library's module of their name.
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.cases import CASES, FULL, LIB_LABEL, PEERS, QUICK, TUNED  # noqa: E402
from benchmarks.report import markdown, overrides_text  # noqa: E402
from benchmarks.runner import install_hint, missing_modules, run_benchmark, run_worker  # noqa: E402


def _override(text: str) -> tuple[str, str, Any]:
    """``[CASE:]FIELD=VALUE`` as (case or "*", field, value)."""
    name, sep, value = text.partition("=")
    case, colon, field = name.rpartition(":")
    case = case.strip() if colon else "*"
    if not sep or not field.strip():
        raise argparse.ArgumentTypeError(f"expected [CASE:]FIELD=VALUE, got {text!r}")
    if case != "*" and case not in CASES:
        raise argparse.ArgumentTypeError(f"unknown case {case!r} in {text!r}; choose from {', '.join(CASES)}")
    field = field.strip().replace("-", "_")
    try:
        return case, field, json.loads(value)
    except json.JSONDecodeError:
        return case, field, value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--worker KIND SPEC`` is internal)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=lambda s: [c.strip() for c in s.split(",") if c.strip()],
                        default=list(CASES), help=f"comma-separated subset of: {', '.join(CASES)}")
    parser.add_argument("--peers", type=lambda s: [p.strip() for p in s.split(",") if p.strip()],
                        default=None, help=f"comma-separated peers to compare with, of: {', '.join(PEERS)} "
                                           "(default: every installed one; '' for ddpg-tf alone)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved repeats, each value reported as min / median / max (default 3)")
    parser.add_argument("--e2e-steps", type=int, default=None,
                        help="timed end-to-end steps (default 5000 Pendulum, 3000 HalfCheetah)")
    parser.add_argument("--updates", type=int, default=None, help="timed updates (default 2000)")
    parser.add_argument("--learning-starts", type=int, default=None, help="default 1000")
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help="untimed training steps after learning_starts (default 500)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra- and inter-op threads of TensorFlow and PyTorch (default: each "
                             "library's own default, one per available core; XLA under JAX keeps its own)")
    parser.add_argument("--ddpg-tf-set", type=_override, action="append", default=[],
                        metavar="[CASE:]FIELD=VALUE",
                        help="override a ddpg-tf Config field not shared with the peers, for every case or "
                             "only CASE, e.g. jit_compile=false or halfcheetah-256:batch_chunks=2 "
                             "(repeatable; VALUE is parsed as JSON, else taken as a string)")
    parser.add_argument("--tuned", action="store_true",
                        help="ddpg-tf with explicit speed settings per case (what speed=auto picks on "
                             "2 cores; without --tuned the library's defaults decide): "
                             + "; ".join(f"{c}: {overrides_text(o)}" for c, o in TUNED.items())
                             + " (--ddpg-tf-set entries override them)")
    parser.add_argument("--num-envs", type=int, default=4,
                        help="extra end-to-end row with this many environment copies for every "
                             "library (ddpg-tf --num-envs N, SB3 and SBX DummyVecEnv, gradient_steps=-1); "
                             "must divide the log interval 500; 0 or 1 skips it (default 4)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings for development and tests (numbers not meaningful)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per worker")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sets: dict[str, dict[str, Any]] = {c: dict(o) for c, o in TUNED.items()} if args.tuned else {}
    for case, field, value in args.ddpg_tf_set:
        sets.setdefault(case, {})[field] = value
    args.ddpg_tf_set = sets
    if args.num_envs > 1 and (QUICK if args.quick else FULL)["log_every"] % args.num_envs:
        parser.error(f"--num-envs {args.num_envs} must divide the log interval "
                     f"{(QUICK if args.quick else FULL)['log_every']}")
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    args.peers, args.skipped_peers = _peers(parser, args.peers)
    return args


def _peers(parser: argparse.ArgumentParser, requested: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """The peers to run, in report order, and those left out by default with the reason. A
    peer named in ``--peers`` must be installed; by default the missing ones are skipped."""
    unknown = [p for p in requested or [] if p not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    if requested is not None:
        missing = [p for p in requested if missing_modules(p)]
        if missing:
            parser.error("; ".join(f"--peers {p}: {LIB_LABEL[p]} is {install_hint(p)}" for p in missing))
        return [p for p in PEERS if p in requested], {}
    skipped = {p: install_hint(p) for p in PEERS if missing_modules(p)}
    return [p for p in PEERS if p not in skipped], skipped


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one measurement)."""
    args = parse_args(argv)
    if args.worker:
        kind, spec = args.worker
        run_worker(kind, json.loads(spec))
        return 0
    start = time.perf_counter()
    report = run_benchmark(args)
    report["benchmark_wall_s"] = round(time.perf_counter() - start, 1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "bench_sb3.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out_dir / "bench_sb3.md").write_text(table)
    print("\n" + table)
    print(f"wrote {args.out_dir / 'bench_sb3.json'} and {args.out_dir / 'bench_sb3.md'} "
          f"in {report['benchmark_wall_s']:.0f} s")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
