"""Callbacks: hooks into the training loop, with Stable-Baselines3's habits.

A callback subclasses :class:`Callback` and overrides what it needs. ``on_step`` runs once
per loop iteration (``num_envs`` environment steps), after the update; ``on_evaluation``
after each evaluation; ``on_checkpoint`` after each checkpoint. Returning ``False`` from any
of them stops training cleanly at that step boundary (``learn`` returns; nothing is lost).

Periodic evaluation, checkpointing, TensorBoard logging and the progress bar are callbacks of
the same kind, so a user's own callback sees everything they see::

    class StopAtReturn(Callback):
        def on_evaluation(self, model, step, returns):
            return returns.mean() < -200      # False (stop) once the mean reaches -200

    model.learn(20_000, callbacks=[StopAtReturn()])

They run in the order given, after the built-in ones (evaluation, replay diagnostics,
checkpointing, TensorBoard, progress bar). A callback that raises ends ``learn`` with its own
exception, after the other callbacks of that step ran (see :class:`CallbackList`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ddpg_tf.errors import SaturatedActorWarning

DDPG = Any
"""The model a callback is called with (a :class:`ddpg_tf.model.DDPG` or ``TD3``; typed loosely
here so this module does not import the model module, which imports it)."""


@dataclass
class StepInfo:
    """What one loop iteration did, passed to :meth:`Callback.on_step`."""

    step: int = 0
    """Environment steps so far (all copies)."""
    new_steps: int = 0
    """Environment steps this iteration (``num_envs``)."""
    final: bool = False
    """Whether this is the last iteration of the current ``learn`` call."""
    episodes: list[tuple[float, int]] = field(default_factory=list)
    """(return, length) of each episode that ended in this iteration (a checkpoint ends the
    episodes in progress; they are added when it runs)."""
    metrics: dict[str, Any] | None = None
    """The latest update's metrics (tensors; see ``DDPGAgent.train_step``), None before
    learning starts."""
    actions: np.ndarray | None = None
    """The actions sent to the environment copies, shape (num_envs, action_dim)."""
    scalars: dict[str, Any] = field(default_factory=dict)
    """Other values the loop measured this iteration (parameter-noise adaptation, dropped
    non-finite transitions), for loggers."""


def reached(step: int, new_steps: int, every: int) -> bool:
    """Whether an iteration that advanced the step counter from ``step - new_steps`` to
    ``step`` reached a multiple of ``every`` (never for ``every`` = 0)."""
    return every > 0 and step // every != (step - new_steps) // every


class Callback:
    """Base class; every method is optional."""

    def on_training_start(self, model: DDPG) -> None:
        """At the start of each ``learn`` call."""

    def on_step(self, model: DDPG, info: StepInfo) -> bool | None:
        """After each loop iteration; return False to stop."""
        return None

    def on_evaluation(self, model: DDPG, step: int, returns: np.ndarray) -> bool | None:
        """After an evaluation with the episodes' ``returns``; return False to stop."""
        return None

    def on_checkpoint(self, model: DDPG, step: int, path: str) -> bool | None:
        """After a checkpoint was written to ``path``; return False to stop."""
        return None

    def on_training_end(self, model: DDPG) -> None:
        """At the end of each ``learn`` call (also after a stop, an error or an interrupt)."""


class CallbackList(Callback):
    """Several callbacks called in order; stops when any returns False.

    An exception from one callback does not keep the others from being called for the same
    event: the built-in ones still evaluate, checkpoint and log, and the loop's state stays at
    a step boundary. The first exception is raised again afterwards, unchanged (with its own
    traceback), so ``learn`` ends with the user's error and a later ``learn`` continues as if
    the callback had returned None. ``KeyboardInterrupt`` is never held back."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)
        self._stepping = [c for c in self.callbacks if type(c).on_step is not Callback.on_step]

    def _all(self, call: Callable[[Callback], bool | None],
             callbacks: list[Callback] | None = None) -> bool:
        go_on, first = True, None
        for c in self.callbacks if callbacks is None else callbacks:
            try:
                go_on = call(c) is not False and go_on
            except Exception as exc:  # noqa: BLE001  (raised again below, after the others ran)
                first = first or exc
        if first is not None:
            raise first
        return go_on

    def on_training_start(self, model: DDPG) -> None:
        for c in self.callbacks:
            c.on_training_start(model)

    def on_step(self, model: DDPG, info: StepInfo) -> bool:
        # Called every iteration: only the callbacks that define on_step.
        return self._all(lambda c: c.on_step(model, info), self._stepping)

    def on_evaluation(self, model: DDPG, step: int, returns: np.ndarray) -> bool:
        return self._all(lambda c: c.on_evaluation(model, step, returns))

    def on_checkpoint(self, model: DDPG, step: int, path: str) -> bool:
        return self._all(lambda c: c.on_checkpoint(model, step, path))

    def on_training_end(self, model: DDPG) -> None:
        self._all(lambda c: c.on_training_end(model))


class Evaluation(Callback):
    """Evaluate the deterministic policy every ``every`` steps and at the end of ``learn``,
    on the model's evaluation environment (its own copy, so training's RNG streams are not
    touched), recording each result in ``model.evaluations`` (and ``evaluations.csv``)."""

    def __init__(self, every: int, episodes: int) -> None:
        self.every, self.episodes = every, episodes

    def on_step(self, model: DDPG, info: StepInfo) -> bool | None:
        if reached(info.step, info.new_steps, self.every) or info.final:
            model.learner.evaluate(self.episodes)
        return None


class Checkpointing(Callback):
    """Write a checkpoint into the run directory every ``every`` steps and at the end of
    ``learn``; each checkpoint ends the episodes in progress (the resume rule)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def due(self, step: int, new_steps: int, final: bool) -> bool:
        """Whether the iteration reaching ``step`` ends with a checkpoint (the loop asks, so the
        fused call selects no actions that the checkpoint would drop)."""
        return reached(step, new_steps, self.every) or final

    def on_step(self, model: DDPG, info: StepInfo) -> bool | None:
        if self.due(info.step, info.new_steps, info.final):
            model.learner.checkpoint()
        return None


class ReplayDiagnostics(Callback):
    """Gradient diagnostics (``diag/*``) every ``every`` steps on a replay batch drawn with a
    generator of their own, handed to the loggers in ``info.scalars``. It runs before
    :class:`Checkpointing`, so a checkpoint holds that generator after the step's draw and a
    resumed run draws exactly what the uninterrupted one does."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_step(self, model: DDPG, info: StepInfo) -> bool | None:
        if reached(info.step, info.new_steps, self.every) and info.metrics is not None:
            info.scalars.update(model.agent.replay_diagnostics())
        return None


class SaturationCheck(Callback):
    """Warns once (:class:`~ddpg_tf.errors.SaturatedActorWarning`) when ``patience`` replay
    diagnostics in a row found every sampled state with its whole action exactly at ±1
    (``diag/actor_states_without_grad`` = 1): there, tanh passes no gradient to the actor, and
    TD3 runs of this library and of Stable-Baselines3 alike can stay stuck for good
    (docs/results.md, "Why some Hopper runs never learn"). Built in after :class:`ReplayDiagnostics`;
    it only reads ``info.scalars``, so it changes nothing about the run. Its count is not
    checkpointed: a model loaded to resume starts counting afresh."""

    def __init__(self, patience: int = 5) -> None:
        self.patience, self.warned = patience, False
        self._since: int | None = None
        self._count = 0

    def on_step(self, model: DDPG, info: StepInfo) -> bool | None:
        value = info.scalars.get("diag/actor_states_without_grad")
        if value is None or self.warned:
            return None
        if float(value) < 1.0:
            self._since, self._count = None, 0
            return None
        self._since = info.step if self._since is None else self._since
        self._count += 1
        if self._count >= self.patience:
            self.warned = True
            warnings.warn(SaturatedActorWarning(
                f"the actor gets no gradient: at every diagnostic from step {self._since} to "
                f"{info.step} ({self._count} in a row), every sampled state's action was exactly at "
                "±1 on every component, where tanh's gradient is 0; runs in this state may never "
                "learn (TD3 on Hopper-v5: about 1 seed in 4, in Stable-Baselines3 too; see "
                "docs/results.md). Watch diag/actor_states_without_grad in TensorBoard"), stacklevel=2)
        return None


class TensorBoardLogger(Callback):
    """TensorBoard summaries in ``logdir``: losses, gradient norms and histograms every
    ``log_every`` steps, episode returns, evaluations, the scalars other callbacks put in
    ``info.scalars`` (such as :class:`ReplayDiagnostics`), and steps/s. ``diag_every`` > 0
    draws the diagnostics here instead (for use without checkpoints: a checkpoint of the same
    step would hold the generator before the draw)."""

    def __init__(self, logdir: str | Path, log_every: int, diag_every: int = 0) -> None:
        self.logdir, self.log_every, self.diag_every = Path(logdir), log_every, diag_every
        self.logger: Any = None

    def on_training_start(self, model: DDPG) -> None:
        from ddpg_tf._quiet import tf
        from ddpg_tf.paths import storage_error
        from ddpg_tf.summaries import SummaryLogger

        fresh = self.logger is None and model.num_timesteps == 0
        if self.logger is None:
            try:
                self.logger = SummaryLogger(self.logdir)
            except (OSError, tf.errors.OpError) as exc:
                text = " ".join(str(getattr(exc, "message", exc)).split())
                reason = exc if isinstance(exc, OSError) else OSError(None, text)
                raise storage_error(reason, self.logdir, "nothing was trained: {hint}try again") from None
        if fresh:
            self.logger.config(model.config)
        self._window = (time.perf_counter(), model.num_timesteps)

    def on_step(self, model: DDPG, info: StepInfo) -> bool | None:
        log = self.logger
        for ret, length in info.episodes:
            log.scalars({"train/episode_return": ret, "train/episode_length": length}, info.step)
        if info.scalars:
            log.scalars(info.scalars, info.step)
        if reached(info.step, info.new_steps, self.diag_every) and info.metrics is not None:
            log.scalars(model.agent.replay_diagnostics(), info.step)
        if reached(info.step, info.new_steps, self.log_every):
            now = time.perf_counter()
            start, start_step = self._window
            self._window = (now, info.step)
            log.scalars({"perf/steps_per_second": (info.step - start_step) / max(now - start, 1e-9)},
                        info.step)
            if info.metrics is not None:
                log.metrics(info.metrics, info.step)
                log.histograms({"hist/env_actions": np.asarray(info.actions)}, info.step)
        return None

    def on_evaluation(self, model: DDPG, step: int, returns: np.ndarray) -> bool | None:
        self.logger.scalars({"eval/return_mean": returns.mean(), "eval/return_std": returns.std(),
                             "eval/episodes": len(returns)}, step)
        return None

    def on_checkpoint(self, model: DDPG, step: int, path: str) -> bool | None:
        buffer_file = model.learner.checkpointer.buffer_file(step) if model.learner.checkpointer else None
        if buffer_file is not None and buffer_file.exists():
            self.logger.scalars({"checkpoint/buffer_mib": buffer_file.stat().st_size / 2**20}, step)
        self.logger.flush()
        return None

    def on_training_end(self, model: DDPG) -> None:
        self.logger.flush()


class ProgressBar(Callback):
    """A tqdm bar with steps/s and the latest evaluation's mean return."""

    def __init__(self, mininterval: float = 0.5) -> None:
        self.mininterval = mininterval
        self.bar: Any = None
        self.last_eval = float("nan")

    def on_training_start(self, model: DDPG) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=model.learner.target_step, initial=model.num_timesteps, unit="step",
                        dynamic_ncols=True, mininterval=self.mininterval, desc=model.config.env_id)

    def on_step(self, model: DDPG, info: StepInfo) -> bool | None:
        self.bar.update(info.new_steps)
        return None

    def on_evaluation(self, model: DDPG, step: int, returns: np.ndarray) -> bool | None:
        self.last_eval = float(returns.mean())
        self.bar.set_postfix_str(f"eval {self.last_eval:.1f}", refresh=False)
        return None

    def on_training_end(self, model: DDPG) -> None:
        self.bar.close()


class EveryNSteps(Callback):
    """Call ``fn(model, step, steps_per_second)`` every ``every`` steps (steps/s since the
    previous call): a small hook for benchmarks and progress reports."""

    def __init__(self, every: int, fn: Callable[[DDPG, int, float], None]) -> None:
        self.every, self.fn = every, fn

    def on_training_start(self, model: DDPG) -> None:
        self._window = (time.perf_counter(), model.num_timesteps)

    def on_step(self, model: DDPG, info: StepInfo) -> bool | None:
        if reached(info.step, info.new_steps, self.every):
            now = time.perf_counter()
            start, start_step = self._window
            self._window = (now, info.step)
            self.fn(model, info.step, (info.step - start_step) / max(now - start, 1e-9))
        return None


__all__ = ["Callback", "CallbackList", "Checkpointing", "Evaluation", "EveryNSteps", "ProgressBar",
           "ReplayDiagnostics", "SaturationCheck", "StepInfo", "TensorBoardLogger", "reached"]
