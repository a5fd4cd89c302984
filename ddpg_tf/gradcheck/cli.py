"""The command line of ``python -m ddpg_tf.gradcheck``: flags in, the comparison as a table
(and optionally JSON) out; exit status 0 all ways agree, 1 some disagree, 2 usage error."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ddpg_tf.errors import UsageError, fail
from ddpg_tf.gradcheck.check import DEFAULT_HIDDEN, DTYPES, TOL_FLOAT32_REL, TOL_FLOAT64_ABS, run_gradcheck

DEFAULT_ENV = "Pendulum-v1"


# --- output --------------------------------------------------------------------------------
def format_table(results: Sequence[dict[str, Any]], repeats: int | None = None) -> str:
    """The comparison as a plain-text table, with the tolerances and measurement notes."""
    if not results:
        return "(no results)\n"
    first = results[0]
    net = first["net"]
    lines = [
        f"actor gradient four ways vs direct: obs {first['obs_dim']}, actions {first['action_dim']}; "
        f"actor {','.join(map(str, net['actor_hidden']))} ({first['params']:,} weights), "
        f"critic {','.join(map(str, net['critic_hidden']))} (action at layer {net['critic_action_layer']}); "
        f"batch {first['batch_size']}",
        f"networks: {first['networks']}",
        f"observations: {first['observations']}",
        f"tolerances: float64 max abs diff < {TOL_FLOAT64_ABS:g}; float32 max rel diff < {TOL_FLOAT32_REL:g} "
        "(rel = max over weight tensors of max|g - d| / max|d|, d = direct)",
        f"jacobian way forms N x A x |theta| = {first['batch_size']} x {first['action_dim']} x "
        f"{first['params']:,} = {first['jacobian_numbers']:,} numbers per call; the others form none",
    ]
    if first["ms_per_call"] is not None:
        lines.append(f"ms/call: median of {repeats if repeats else '?'} calls of each tf.function after "
                     "a warm-up call")
    lines.append("")
    header = (f"{'way':<11} {'dtype':<8} {'max abs diff':>12} {'max rel diff':>12} {'cosine':>16} "
              f"{'ms/call':>9} {'bitwise':>8}  ok")
    lines += [header, "-" * len(header)]
    for r in results:
        ms = "" if r["ms_per_call"] is None else f"{r['ms_per_call']:.2f}"
        if r["way"] == "direct":
            diffs = f"{'(reference)':>12} {'':>12} {'':>16}"
            bitwise, ok = "", ""
        else:
            diffs = f"{r['max_abs_diff']:>12.3e} {r['max_rel_diff']:>12.3e} {r['cosine']:>16.13f}"
            bitwise = "same" if r["bit_identical"] else "differ"
            ok = "ok" if r["ok"] else "FAIL"
        lines.append(f"{r['way']:<11} {r['dtype']:<8} {diffs} {ms:>9} {bitwise:>8}  {ok}".rstrip())
    bad = [f"{r['way']} ({r['dtype']})" for r in results if not r["ok"]]
    lines.append("")
    lines.append("all ways agree with direct within tolerance" if not bad
                 else f"DISAGREE beyond tolerance: {', '.join(bad)}")
    return "\n".join(lines) + "\n"


# --- command line --------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{self.prog}: {message} (see --help)")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected layer sizes like 64,64, got {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected positive layer sizes like 64,64, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (``benchmarks/gradient_memory.py`` takes the same)."""
    parser = _Parser(
        prog="python -m ddpg_tf.gradcheck",
        description="Compute DDPG's actor gradient four ways (direct, chain-rule, explicit jacobian, "
                    "DPG surrogate) on one batch; compare each with direct and time them. Exit "
                    "status 0: all agree within tolerance; 1: some way disagrees; 2: usage error.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = parser.add_argument_group("networks (one of --env, --obs-dim/--action-dim, --checkpoint; "
                                    f"default --env {DEFAULT_ENV})")
    src.add_argument("--env", metavar="ENV_ID", default=None,
                     help="Gymnasium env id: observation dimension and action bounds from its spaces")
    src.add_argument("--obs-dim", type=int, metavar="N", default=None, help="observation dimension")
    src.add_argument("--action-dim", type=int, metavar="M", default=None,
                     help="action dimension (bounds [-1, 1])")
    src.add_argument("--checkpoint", metavar="RUN_DIR", default=None,
                     help="load actor and critic from the latest checkpoint of a train.py run directory "
                          "(architecture and env from RUN_DIR/config.json)")
    src.add_argument("--actor-hidden", type=_sizes, metavar="N,N", default=None,
                     help=f"actor hidden sizes (default {','.join(map(str, DEFAULT_HIDDEN))})")
    src.add_argument("--critic-hidden", type=_sizes, metavar="N,N", default=None,
                     help=f"critic hidden sizes (default {','.join(map(str, DEFAULT_HIDDEN))})")
    src.add_argument("--critic-action-layer", type=int, metavar="K", default=None,
                     help="critic hidden layer the action joins (0 = input, 1 = DDPG paper) (default 0)")
    src.add_argument("--actor-output", choices=("tanh", "linear"), default=None,
                     help="actor output layer (default tanh)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="observations per batch")
    parser.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0, help="network initialisation and observations")
    parser.add_argument("--repeats", type=int, default=20, metavar="N",
                        help="timed calls per way (the median is reported)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    return parser


def settings_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], Path | None]:
    """:func:`run_gradcheck`'s keyword arguments and the ``--json`` path from parsed flags;
    flags that do not go together end the process with a usage error (:func:`fail`)."""
    arch_flags = {"--actor-hidden": args.actor_hidden, "--critic-hidden": args.critic_hidden,
                  "--critic-action-layer": args.critic_action_layer, "--actor-output": args.actor_output}
    given = [flag for flag, value in arch_flags.items() if value is not None]
    if args.checkpoint is not None and given:
        fail(f"{', '.join(given)} cannot be combined with --checkpoint: the networks come from "
             "RUN_DIR/config.json")
    if args.checkpoint is not None and args.env is not None:
        fail("--env cannot be combined with --checkpoint: the environment comes from RUN_DIR/config.json")
    env_id = args.env
    if env_id is None and args.checkpoint is None and args.obs_dim is None and args.action_dim is None:
        env_id = DEFAULT_ENV
    json_path = Path(args.json) if args.json else None
    if json_path is not None and not json_path.parent.is_dir():
        fail(f"--json {json_path}: directory {json_path.parent} does not exist")
    if json_path is not None and json_path.is_dir():
        fail(f"--json {json_path} is a directory; give a file name")
    dtypes = DTYPES if args.dtype == "both" else (args.dtype,)
    settings = dict(
        env_id=env_id, obs_dim=args.obs_dim, action_dim=args.action_dim, checkpoint=args.checkpoint,
        actor_hidden=args.actor_hidden or DEFAULT_HIDDEN, critic_hidden=args.critic_hidden or DEFAULT_HIDDEN,
        critic_action_layer=args.critic_action_layer or 0, actor_output=args.actor_output or "tanh",
        batch_size=args.batch_size, dtypes=dtypes, seed=args.seed, repeats=args.repeats)
    return settings, json_path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 (all ways agree) or 1 (some disagree); usage errors exit 2."""
    args = build_parser().parse_args(argv)
    settings, json_path = settings_from_args(args)
    try:
        results = run_gradcheck(**settings)
    except UsageError as exc:
        fail(str(exc))
    print(format_table(results, args.repeats), end="")
    if json_path is not None:
        write_json(json_path, settings, results)
    return 0 if all(r["ok"] for r in results) else 1


def write_json(path: Path, settings: dict[str, Any], results: Sequence[dict[str, Any]], **extra: Any) -> None:
    """Write the settings, the tolerances, ``extra`` entries and the results to ``path`` as
    JSON; an unwritable path ends the process with a usage error."""
    payload = {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()},
               "tolerances": {"float64_max_abs_diff": TOL_FLOAT64_ABS,
                              "float32_max_rel_diff": TOL_FLOAT32_REL},
               **extra, "results": list(results)}
    try:
        path.write_text(json.dumps(payload, indent=2) + "\n")
    except OSError as exc:
        fail(f"--json {path}: cannot write ({exc.strerror or exc})")
