"""Run a grid of training runs (envs × presets × actor-update styles × seeds) and compare styles.

    python -m ddpg_tf.experiments experiments/pendulum_styles.toml
    python -m ddpg_tf.experiments --envs Pendulum-v1 --styles direct,chain-rule --seeds 0-4 \\
        --total-steps 20000 --eval-every 1000 --out runs/experiments/pendulum
    python -m ddpg_tf.experiments experiments/halfcheetah.toml --backend ray --ray-address auto

An optional TOML spec (keys: the fields of :class:`ExperimentSpec`, Config overrides in an
``[overrides]`` table), then flags; a flag overrides the file (``experiments/*.toml``,
``--help``). Each env × preset × style × seed is one trial: one run of the training CLI in a
fresh Python process, with its run directory under ``OUT/runs``. Running the same command
again skips finished trials and resumes unfinished ones. The reports (``curves.csv``,
``summary.md``, ``stats.json``, ``failures.csv``, ``plots/``) are rebuilt from the run
directories alone with ``--report-only``.

One module per job:

* :mod:`~ddpg_tf.experiments.spec`: :class:`ExperimentSpec`, its evaluation budgets, validation.
* :mod:`~ddpg_tf.experiments.overrides`: training-Config overrides in (checked, typed) and out
  (training flags).
* :mod:`~ddpg_tf.experiments.parsing`: a spec from a TOML file, then flags.
* :mod:`~ddpg_tf.experiments.trials`: the trials of the grid, skip / resume / restart planning,
  one trial's process.
* :mod:`~ddpg_tf.experiments.backends`: the local thread pool (and its Ctrl-C) and Ray Tune.
* :mod:`~ddpg_tf.experiments.results`, :mod:`~ddpg_tf.experiments.report`,
  :mod:`~ddpg_tf.experiments.plots`: the numbers, the report files, the plots.
* :mod:`~ddpg_tf.experiments.run`: the command; exit status 0 every trial finished, 1 some
  trial failed (the reports are still written), 2 usage error (one line on stderr),
  130 interrupted.

The runner itself never imports TensorFlow: only a trial's process does.
"""

from ddpg_tf.experiments.backends import Interrupted, run_local, run_ray
from ddpg_tf.experiments.overrides import CONFIG_FIELDS, RUNNER_FIELDS, coerce_override, override_flags
from ddpg_tf.experiments.parsing import build_parser, load_spec_file, parse_args, parse_seeds
from ddpg_tf.experiments.plots import plot_groups
from ddpg_tf.experiments.report import write_reports
from ddpg_tf.experiments.results import Group, collect, group_stats
from ddpg_tf.experiments.run import main, run_experiment
from ddpg_tf.experiments.spec import ExperimentSpec, SpecError, default_budgets, evaluation_steps, validate
from ddpg_tf.experiments.trials import (
    Job,
    Outcome,
    Trial,
    launch,
    plan,
    run_training_child,
    trial_command,
    trials_of,
)

__all__ = [
    "CONFIG_FIELDS", "RUNNER_FIELDS", "ExperimentSpec", "Group", "Interrupted", "Job", "Outcome",
    "SpecError", "Trial", "build_parser", "coerce_override", "collect", "default_budgets",
    "evaluation_steps", "group_stats", "launch", "load_spec_file", "main", "override_flags",
    "parse_args", "parse_seeds", "plan", "plot_groups", "run_experiment", "run_local", "run_ray",
    "run_training_child", "trial_command", "trials_of", "validate", "write_reports",
]
