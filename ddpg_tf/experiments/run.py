"""The experiment command: plan the trials, run the unfinished ones on a backend, write the reports.

Exit status: 0 every trial finished, 1 some trial failed (the reports are still written),
2 usage error (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ddpg_tf.errors import EXIT_INTERRUPTED, EXIT_TRAINING_ERROR, fail
from ddpg_tf.experiments.backends import Console, Interrupted, run_local, run_ray
from ddpg_tf.experiments.parsing import parse_args
from ddpg_tf.experiments.report import plural, write_reports
from ddpg_tf.experiments.spec import ExperimentSpec, SpecError
from ddpg_tf.experiments.trials import Outcome, plan, trials_of


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ddpg_tf.experiments``; see the package docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        spec, report_only, _ = parse_args(argv)
        return run_experiment(spec, report_only, "python -m ddpg_tf.experiments " + shlex.join(argv))
    except SpecError as exc:
        fail(str(exc))
    except (KeyboardInterrupt, Interrupted):
        print("interrupted; run the same command again to continue (finished trials are kept, "
              "unfinished ones resume from their last checkpoint)", file=sys.stderr)
        return EXIT_INTERRUPTED


def run_experiment(spec: ExperimentSpec, report_only: bool, source: str) -> int:
    """Run the spec's unfinished trials (unless ``report_only``), then write the reports;
    returns the exit status. Raises :class:`SpecError` and :class:`Interrupted`."""
    if spec.backend == "ray" and not report_only:
        try:
            import ray  # noqa: F401
            from ray import tune  # noqa: F401
        except ImportError:
            raise SpecError("--backend ray needs Ray Tune: pip install -e '.[ray]'") from None
    out = Path(spec.out).absolute()  # trial processes (and Ray workers) may run elsewhere
    if report_only:
        if not (out / "runs").is_dir():
            raise SpecError(f"nothing to report: {out / 'runs'} does not exist; run the experiment first")
        failures, _ = write_reports(spec, out, {}, source, report_only=True)
        print(f"report rebuilt in {out} ({plural(len(failures), 'unfinished trial')})")
        return 0
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "experiment.json").write_text(json.dumps({"command": source, "spec": spec.to_dict()},
                                                        indent=2) + "\n")
    except OSError as exc:
        raise SpecError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    jobs, finished = plan(spec, out)
    console = Console(len(jobs))
    for trial in finished:
        console.line(f"skip   {trial.name} (finished)")
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    if jobs:
        outcomes = (run_ray(jobs, spec, out, console) if spec.backend == "ray"
                    else run_local(jobs, spec.parallel, console))
    failures, _ = write_reports(spec, out, {o.name: o for o in outcomes}, source)
    total = len(trials_of(spec))
    print(f"{total - len(failures)}/{total} trials finished ({len(jobs)} run now, "
          f"{time.perf_counter() - started:.1f} s); summary: {out / 'summary.md'}; "
          f"failures: {len(failures)} ({out / 'failures.csv'})")
    return EXIT_TRAINING_ERROR if failures else 0
