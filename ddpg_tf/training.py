"""``train(config)``: one run of the command line, as a library call.

It checks the run directory ``logdir/run_name`` against ``resume`` (before anything is
written), builds a :class:`~ddpg_tf.model.DDPG` model on ``config.env_id`` writing into that
directory (or continues the run's latest checkpoint, or checkpoint ``resume_from``), trains it
to ``total_steps`` and exports the actor. ``train.py`` calls it; the experiment runner and the
benchmarks do too.

SIGINT/SIGTERM end it with :class:`~ddpg_tf.errors.Interrupted` after a checkpoint of the step
reached; a full disk with :class:`~ddpg_tf.errors.StorageError`, the previous checkpoint kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddpg_tf.callbacks import Callback, EveryNSteps
from ddpg_tf.checkpointing import ACTOR_KERAS, ACTOR_SAVEDMODEL, CHECKPOINT_DIR, EXPORT_DIR, MOVED_DIR, Advice
from ddpg_tf.config import Config
from ddpg_tf.errors import EnvError, UsageError
from ddpg_tf.model import DDPG
from ddpg_tf.rundir import evaluate_policy, resolve_run
from ddpg_tf.speed import kept_speed_fields

CLI_ADVICE = Advice(
    pick="pass --resume-from {step} to continue from it (later checkpoints are moved to "
         f"{CHECKPOINT_DIR}/{MOVED_DIR}/, not deleted)",
    no_buffer="resume with --no-save-buffer to continue with an empty replay buffer (the run then no "
              "longer repeats the uninterrupted one)")
"""How damaged-checkpoint errors of a command-line run say what to do."""

LogHook = Callable[[int, dict[str, float]], None]
"""``hook(step, values)``, called every ``log_every`` steps with ``steps_per_second``."""


@dataclass
class TrainResult:
    """What :func:`train` returns (also handy in tests and experiment scripts)."""

    run_dir: Path
    steps: int
    episode_returns: list[float] = field(default_factory=list)
    evaluations: list[tuple[int, float, float]] = field(default_factory=list)
    """(step, mean return, std of returns) for each evaluation run by this process."""
    exported: dict[str, Path] = field(default_factory=dict)
    agent: Any = field(default=None, repr=False)
    """The trained agent (networks, targets, optimisers) as left at the end of the run."""
    model: DDPG | None = field(default=None, repr=False)


def train(config: Config, given: set[str] | frozenset[str] = frozenset(),
          on_log: LogHook | None = None, callbacks: Sequence[Callback] = (),
          resume_from: int | None = None) -> TrainResult:
    """Train as configured; see :class:`ddpg_tf.config.Config` for every option.

    ``given`` names the fields set explicitly on the command line (they may override a
    resumed run's saved config); ``on_log`` is called at every logging step (benchmarks);
    ``resume_from`` (with ``resume``) continues from that checkpoint instead of the latest."""
    config, run_dir = resolve_run(config, set(given), resume_from)
    model = DDPG.__new__(DDPG)
    try:
        # A new run resolves speed="auto"; a resumed one keeps the settings it saved.
        model._open(config.env_id, config, run_dir, None,
                    speed_given=None if config.resume else kept_speed_fields(config, given))
    except EnvError as exc:
        raise UsageError(str(exc)) from None
    try:
        if config.resume:
            _continue(model, run_dir, resume_from)
        # A resumed run killed before its first checkpoint starts again from step 0 in its directory.
        if model.num_timesteps > config.total_steps:
            raise UsageError(f"{run_dir} is already at step {model.num_timesteps}; raise --total-steps above "
                             "it to train further")
        hooks = list(callbacks)
        if on_log is not None:
            hooks.append(EveryNSteps(config.log_every,
                                     lambda _, step, sps: on_log(step, {"steps_per_second": sps})))
        # At total_steps already (killed while exporting): learning 0 steps writes the export again.
        model.learn(config.total_steps - model.num_timesteps, callbacks=hooks)
        result = TrainResult(run_dir=run_dir, steps=model.num_timesteps,
                             episode_returns=model.episode_returns, evaluations=model.evaluations,
                             agent=model.agent, model=model)
        if config.export:
            export = run_dir / EXPORT_DIR
            result.exported = {"keras": export / ACTOR_KERAS, "saved_model": export / ACTOR_SAVEDMODEL}
        _report(result, config)
        return result
    finally:
        model.close()


def _continue(model: DDPG, run_dir: Path, resume_from: int | None) -> None:
    checkpointer = model.learner.checkpointer
    listed, problem = checkpointer.listed_steps() if checkpointer is not None else ([], None)
    if checkpointer is None or (resume_from is None and not listed and problem is None):
        return  # killed before its first checkpoint: start again from step 0
    model.restore(run_dir, step=resume_from, advice=CLI_ADVICE)  # CheckpointError: exit status 2


def _report(result: TrainResult, config: Config) -> None:
    if not config.progress:
        return
    if result.evaluations:
        step, mean, std = result.evaluations[-1]
        print(f"eval return {mean:.1f} ± {std:.1f} at step {step} ({config.eval_episodes} episodes)")
    print(f"run directory: {result.run_dir}  (tensorboard --logdir {config.logdir})")
    for kind, path in result.exported.items():
        print(f"exported actor ({kind}): {path}")


__all__ = ["LogHook", "TrainResult", "evaluate_policy", "train"]
