"""Peak memory of each way's compiled call in the gradient check (``python -m ddpg_tf.gradcheck``).

    python benchmarks/gradient_memory.py [the flags of python -m ddpg_tf.gradcheck]

Runs the gradient check (the same networks, batch, ways and tolerances) and, after each way's
calls have been timed, measures the peak memory of ``--repeats`` further calls with
:class:`benchmarks.memory.PeakMemory`: the increase above the memory in use before them (how
it is measured is printed under the table). Prints way, dtype, ms per call, peak MiB and the
check's verdict; ``--json`` writes the gradient check's rows with ``peak_mib`` added. Exit
status as the gradient check's: 0 all ways agree, 1 some disagree, 2 usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.memory import MEMORY_NOTES, PeakMemory  # noqa: E402
from ddpg_tf.errors import UsageError, fail  # noqa: E402
from ddpg_tf.gradcheck.check import run_gradcheck  # noqa: E402
from ddpg_tf.gradcheck.cli import build_parser, settings_from_args, write_json  # noqa: E402


def peak_memory_rows(settings: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The gradient check's rows for ``settings`` (:func:`run_gradcheck`'s keyword arguments),
    each with ``peak_mib`` (None where memory cannot be measured), and the measuring method."""
    memory = PeakMemory()
    peaks: dict[tuple[str, str], float | None] = {}

    def measure(dtype: str, way: str, call: Callable[[], Any]) -> None:
        memory.start()
        out = None
        for _ in range(settings["repeats"]):
            out = None  # release the previous result before the next call
            out = call()
        peaks[dtype, way] = memory.stop()
        del out

    rows = run_gradcheck(**settings, on_compiled=measure)
    return [{**row, "peak_mib": peaks[row["dtype"], row["way"]]} for row in rows], memory.method


def format_rows(rows: Sequence[dict[str, Any]], method: str, repeats: int) -> str:
    """way | dtype | ms/call | peak MiB | ok, with a note on how memory was measured."""
    header = f"{'way':<11} {'dtype':<8} {'ms/call':>9} {'peak MiB':>9}  ok"
    lines = [header, "-" * len(header)]
    for r in rows:
        mib = "" if r["peak_mib"] is None else f"{r['peak_mib']:.2f}"
        ok = "" if r["way"] == "direct" else ("ok" if r["ok"] else "FAIL")
        lines.append(f"{r['way']:<11} {r['dtype']:<8} {r['ms_per_call']:>9.2f} {mib:>9}  {ok}".rstrip())
    lines += ["", f"ms/call: median of {repeats} calls after a warm-up call; peak MiB: peak memory "
                  f"increase during {repeats} further calls ({MEMORY_NOTES.get(method, method)})"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 (all ways agree) or 1 (some disagree); usage errors exit 2."""
    parser = build_parser()
    parser.prog = "python benchmarks/gradient_memory.py"
    parser.description = __doc__.split("\n")[0]
    settings, json_path = settings_from_args(parser.parse_args(argv))
    try:
        rows, method = peak_memory_rows(settings)
    except UsageError as exc:
        fail(str(exc))
    print(format_rows(rows, method, settings["repeats"]), end="")
    if json_path is not None:
        write_json(json_path, settings, rows, memory_method=method)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
