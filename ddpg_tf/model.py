"""The public API: ``DDPG`` and ``TD3`` models with Stable-Baselines3's habits.

    model = TD3(env)                   # a gymnasium.Env (registered or not), a VectorEnv or an id
    model.learn(20_000)                # 20k more environment steps; a second call continues
    action = model.predict(obs)        # one observation or a batch -> actions in the bounds
    mean, std = model.evaluate(episodes=10)
    model.save("models/td3")           # config, checkpoint (everything to continue), actor
    model = TD3.load("models/td3", env=env)

A model trains in memory unless it is given a ``run_dir``, where TensorBoard logs,
checkpoints (every ``checkpoint_every`` steps and at the end of each ``learn``),
``evaluations.csv`` and the exported actor go, as with ``train.py``.

Exactness: ``save`` ends the episodes in progress (the resume rule of :mod:`ddpg_tf.loop`), so
``learn`` after ``save`` continues exactly as ``learn`` after ``load`` from that directory,
bit for bit. Differences from Stable-Baselines3: ``predict`` returns the actions only (no
recurrent state); configuration is one :class:`~ddpg_tf.config.Config` (keyword overrides
are its fields); evaluation runs on a separate copy of the environment.

Stopping: during ``learn`` (in the main thread) SIGINT and SIGTERM stop training at the next
step boundary; with a ``run_dir`` a checkpoint of that step is written, then ``learn`` raises
:class:`~ddpg_tf.errors.Interrupted` (a ``KeyboardInterrupt``). A ``learn`` after it continues
exactly as ``learn`` after ``load`` of that checkpoint (in memory: as if never interrupted).
An exception from a user's callback ends ``learn`` with that exception, unchanged, after the
built-in callbacks of the same step ran; the model stays at that step boundary.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from ddpg_tf.callbacks import (Callback, CallbackList, Checkpointing, Evaluation, ProgressBar,
                               ReplayDiagnostics, SaturationCheck, TensorBoardLogger)
from ddpg_tf.checkpointing import API_ADVICE, Advice, Checkpointer, export_actor
from ddpg_tf.config import RESUMABLE_FIELDS, Config, preset_config
from ddpg_tf.envs import check_same_spaces, env_batch, env_id_of, make_env, make_vector_env, space_dims
from ddpg_tf.errors import CheckpointError, ConfigError, EnvError, InputError, Interrupted, UsageError
from ddpg_tf.faults import fault_point, faults_armed
from ddpg_tf.in_graph import ENV_MODULES, InGraphLearner, unsupported
from ddpg_tf.loop import Learner
from ddpg_tf.paths import check_writable, storage_error
from ddpg_tf.rundir import (CONFIG_FILE, check_field_types, evaluate_policy, read_run_config,
                            truncate_evaluations, write_run_config)
from ddpg_tf.runtime import set_threads
from ddpg_tf.speed import kept_speed_fields, resolve_speed
from ddpg_tf.signals import StopSignals, deferred, signal_name

EnvLike = gym.Env | gym.vector.VectorEnv | str


class DDPG:
    """DDPG (Lillicrap et al. 2015) with the defaults of the ``pendulum`` preset; see
    :mod:`ddpg_tf.agent` for the algorithm and its deviations from the paper.

    Args:
        env: a ``gymnasium.Env`` with flat Box spaces (registered or not), a
            ``gymnasium.vector.VectorEnv`` (its copies step together; ``num_envs`` follows it)
            or an environment id.
        config: the starting :class:`Config` (default: this class's preset).
        run_dir: where logs, checkpoints and the export go; None trains in memory.
        eval_env: the environment evaluations run on (default: a separate copy of ``env``).
        **overrides: :class:`Config` fields, e.g. ``batch_size=256``.
    """

    preset: ClassVar[str] = "pendulum"

    def __init__(self, env: EnvLike, config: Config | None = None, *, run_dir: str | Path | None = None,
                 eval_env: gym.Env | None = None, **overrides: Any) -> None:
        if config is None:  # the preset, with its values for this environment (warm-up length, ...)
            env_id = overrides.get("env_id", env) if isinstance(env, str) else env_id_of(env)
            config = preset_config(self.preset, env_id if isinstance(env_id, str) else None)
        config = _configure(config, env, overrides)
        run_dir = None if run_dir is None else Path(run_dir)
        if run_dir is not None:
            _check_new_run_dir(run_dir)
        self._open(env, config, run_dir, eval_env, speed_given=kept_speed_fields(config, overrides))

    def _open(self, env: EnvLike, config: Config, run_dir: Path | None, eval_env: gym.Env | None,
              speed_given: set[str] | None = None) -> None:
        """Build the learner on ``env``. ``speed_given``: resolve ``speed="auto"`` for a new
        run, keeping these fields (None: a loaded run keeps its saved settings); it names
        ``in_graph`` if the user asked for the in-graph loop."""
        config = _resolve_in_graph(config, env, speed_given)
        self._own_envs = isinstance(env, str)
        self._own_eval_env = False
        if isinstance(env, str):
            env = make_env(env) if config.num_envs == 1 else make_vector_env(env, config.num_envs)
        self.env = env
        self.run_dir = run_dir
        try:
            envs = env_batch(env)
            if speed_given is not None:
                config = _resolve_speed(config, envs, speed_given)
            else:
                set_threads(config.threads, config.intra_op_threads, config.inter_op_threads)
            self.config = config
            if eval_env is not None:
                check_same_spaces(eval_env, envs, "eval_env")
            self._own_eval_env = eval_env is None
            learner = InGraphLearner if config.in_graph else Learner
            self.learner = learner(config, envs, eval_env or _evaluation_copy(env), run_dir)
        except BaseException:
            if self._own_envs:
                env.close()
            raise
        self.learner.model = self
        self._stop_cut = _StopCut()
        self._builtin: list[Callback] = []
        if config.eval_every:
            self._builtin.append(Evaluation(config.eval_every, config.eval_episodes))
        if run_dir is not None:
            checkpointing = Checkpointing(config.checkpoint_every)
            self.learner.episode_cuts += [checkpointing, self._stop_cut]
            # Diagnostics draw from their own generator before the checkpoint of the same step
            # saves it; the logger writes them after.
            self._builtin += [ReplayDiagnostics(config.diag_every), SaturationCheck(), checkpointing,
                              TensorBoardLogger(run_dir, config.log_every)]

    # --- training -------------------------------------------------------------------------
    def learn(self, total_timesteps: int, callbacks: Sequence[Callback] | Callback | None = None) -> DDPG:
        """Train for ``total_timesteps`` more environment steps (a multiple of ``num_envs``);
        a later call continues where this one stopped. Returns the model.

        SIGINT/SIGTERM stop at the next step boundary: with a ``run_dir`` a checkpoint of that
        step is written first; then :class:`~ddpg_tf.errors.Interrupted` is raised."""
        n = self.learner.n
        if (isinstance(total_timesteps, bool) or not isinstance(total_timesteps, int | np.integer)
                or total_timesteps < 0 or total_timesteps % n):
            raise InputError(f"learn() needs a number of steps >= 0 that is a multiple of num_envs ({n}), "
                             f"got {total_timesteps!r}")
        extra = _callback_list(callbacks)
        learner = self.learner
        start = learner.step
        learner.target_step = start + int(total_timesteps)
        self.config = self.config.replace(total_steps=max(learner.target_step, n))
        if self.run_dir is not None:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise storage_error(exc, self.run_dir, "nothing was written: {hint}try again") from None
            write_run_config(self.run_dir, self.config)  # a resumed run records its new settings
            truncate_evaluations(self.run_dir, learner.step)
        progress = [ProgressBar()] if self.config.progress else []
        learner.callbacks = CallbackList(self._builtin + progress + extra)
        learner.stop = False
        with StopSignals() as stop:
            self._stop_cut.stop = stop
            try:
                learner.callbacks.on_training_start(self)
                try:
                    armed = faults_armed()  # tests' fault injection (ddpg_tf.faults)
                    while learner.step < learner.target_step and not learner.stop:
                        learner.iterate()
                        if armed:
                            fault_point("step", learner.step)
                        # With a run dir, stop where no next actions were selected (the stop cut
                        # saw to that), so the stop's checkpoint is like a scheduled one.
                        if stop.signum is not None and (self.run_dir is None or learner.next_actions is None):
                            break
                    if stop.signum is not None:
                        self._save_for_stop(start)  # while the callbacks still see it
                except BaseException as exc:
                    _end_after_error(learner.callbacks, self, exc)
                    raise
                learner.callbacks.on_training_end(self)
            finally:
                learner.callbacks = CallbackList([])
                self._stop_cut.stop = None
            if stop.signum is None and self.run_dir is not None and self.config.export:
                export_actor(self.policy, self.run_dir)
            if stop.signum is not None:  # (also a signal during on_training_end or the export)
                saved = self._save_for_stop(start)
                finished = learner.step >= learner.target_step
                raise Interrupted(self._stop_message(stop.signum, saved, finished), stop.signum, learner.step,
                                  saved)
        return self

    def _save_for_stop(self, start: int) -> str | None:
        """The checkpoint holding the step training stopped at (written now if needed), or None."""
        checkpointer = self.learner.checkpointer
        if checkpointer is None:
            return None
        if self.learner.step > start and checkpointer.latest_step != self.learner.step:
            self.learner.checkpoint()
        return checkpointer.latest if checkpointer.latest_step == self.learner.step else None

    def _stop_message(self, signum: int, saved: str | None, finished: bool) -> str:
        step = self.learner.step
        head = f"interrupted by {signal_name(signum)} at step {step}"
        if finished:
            head += " (training had finished)"
        if saved is not None:
            return f"{head}; checkpoint {saved} is complete"
        if self.run_dir is not None:
            return f"{head}, before any new step; the latest checkpoint is unchanged"
        return (f"{head}; this model has no run_dir, so nothing was written: learn() continues from here, "
                "save() keeps it")

    # --- using the policy -------------------------------------------------------------------
    def predict(self, observation: Any, deterministic: bool = True) -> np.ndarray:
        """Actions for one observation (obs_dim,) or a batch (n, obs_dim), within the action
        bounds; ``deterministic=False`` adds the exploration noise (drawn from the training
        noise process, as the collect policy does)."""
        obs = np.asarray(observation)
        dim = self.learner.agent.obs_dim
        if obs.ndim not in (1, 2) or obs.shape[-1] != dim or not np.issubdtype(obs.dtype, np.number):
            raise InputError(f"predict() takes one observation of shape ({dim},) or a batch (n, {dim}), "
                             f"got shape {obs.shape} and dtype {obs.dtype}")
        if not np.isfinite(obs).all():
            raise InputError("predict() got an observation with NaN or infinite values; its actions would "
                             "be meaningless")
        return self.learner.agent.act(obs, explore=not deterministic)

    def evaluate(self, env: gym.Env | None = None, episodes: int = 10) -> tuple[float, float]:
        """Mean and std of the undiscounted returns of ``episodes`` episodes of the
        deterministic policy on ``env`` (default: the model's evaluation environment)."""
        if isinstance(episodes, bool) or not isinstance(episodes, int | np.integer) or episodes < 1:
            raise InputError(f"episodes must be a positive integer, got {episodes!r}")
        if env is not None:
            check_same_spaces(env, self.learner.envs, "env")
        target = self.learner.eval_env if env is None else env
        returns = evaluate_policy(lambda o: self.learner.agent.act(o, explore=False), target, int(episodes))
        return float(returns.mean()), float(returns.std())

    @property
    def policy(self) -> Any:
        """The deterministic policy as one Keras model from raw observations to actions."""
        return self.learner.agent.policy()

    @property
    def agent(self) -> Any:
        """The :class:`~ddpg_tf.agent.DDPGAgent`: networks, targets, optimisers, compiled steps."""
        return self.learner.agent

    @property
    def num_timesteps(self) -> int:
        """Environment steps trained so far (all copies, across ``learn`` calls and loads)."""
        return self.learner.step

    @property
    def evaluations(self) -> list[tuple[int, float, float]]:
        """(step, mean return, std) of each evaluation since this model was built or loaded."""
        return self.learner.evaluations

    @property
    def episode_returns(self) -> list[float]:
        """Returns of the training episodes finished since this model was built or loaded."""
        return self.learner.episode_returns

    # --- saving and loading ------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write everything needed to continue into the directory ``path``: config.json, a
        checkpoint (networks, targets, optimisers, noise, RNGs, counters, replay buffer) and
        the exported actor. Ends the episodes in progress (the resume rule). The path is
        checked first (:class:`UsageError`); SIGINT/SIGTERM wait until the files are written;
        a full disk raises :class:`~ddpg_tf.errors.StorageError` and keeps an earlier save."""
        path = Path(path)
        own = self.run_dir is not None and _same_dir(path, self.run_dir)
        if not own:
            _check_model_dir(path)
        with deferred():
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise storage_error(exc, path, "nothing was written: {hint}try again") from None
            write_run_config(path, self.config)
            checkpointer = self.learner.checkpointer if own else None
            if checkpointer is None:
                checkpointer = Checkpointer(path, self.learner.trackables(),
                                            self.config.keep_checkpoints)
            self.learner.save_checkpoint(checkpointer)
            export_actor(self.policy, path)
        return path

    @classmethod
    def load(cls, path: str | Path, env: EnvLike | None = None, *, run_dir: str | Path | None = None,
             eval_env: gym.Env | None = None, step: int | None = None, **changes: Any) -> DDPG:
        """The model saved in ``path`` (by :meth:`save`, or a ``train.py`` run directory: its
        latest checkpoint, or checkpoint ``step``), ready to ``learn`` on exactly where it
        stopped. ``env`` defaults to a new environment made from the saved id; ``changes`` may
        set the fields a resumed run may change (logging, evaluation and speed settings;
        ``save_buffer=False`` continues with an empty buffer if the saved one is damaged).

        With ``run_dir=path`` the model keeps writing into that directory; loading an earlier
        ``step`` there moves the later checkpoints into ``checkpoints/moved/`` (nothing is
        deleted). Raises :class:`CheckpointError` for a damaged checkpoint, naming the newest
        intact one."""
        path = Path(path)
        config = read_run_config(path)
        bad = sorted(set(changes) - RESUMABLE_FIELDS)
        if bad:
            raise ConfigError(f"load() cannot change {', '.join(bad)}: the checkpoint was made with other "
                              "values; build a new model instead")
        config = config.replace(**check_field_types(changes)).validate()
        if step is not None and (isinstance(step, bool) or not isinstance(step, int | np.integer)
                                 or step < 0):
            raise InputError(f"step must be a checkpoint's step (an integer >= 0), got {step!r}")
        if env is not None and not isinstance(env, str):
            config = _configure(config, env, {})
        target = None if run_dir is None else Path(run_dir)
        if target is not None and _same_dir(target, path):
            check_writable(target, "run_dir")
        elif target is not None:
            _check_new_run_dir(target)
        model = cls.__new__(cls)
        try:
            model._open(config.env_id if env is None else env, config, target, eval_env)
        except EnvError as exc:
            if env is not None:
                raise
            raise EnvError(f"{exc} (to load {path}; pass env= an instance of the environment it was trained "
                           "on)") from None
        try:
            model.restore(path, step=None if step is None else int(step))
        except BaseException:
            model.close()
            raise
        return model

    def restore(self, path: str | Path, step: int | None = None, *, advice: Advice = API_ADVICE) -> None:
        """Continue from the latest checkpoint in ``path``, or from checkpoint ``step`` (used by
        :meth:`load` and resume); ``advice`` words the hints of a damaged-checkpoint error."""
        path = Path(path)
        checkpointer = Checkpointer(path, self.learner.trackables(), self.config.keep_checkpoints,
                                    restore_step=step, require_buffer=self.config.save_buffer, advice=advice)
        try:
            self.learner.restore(checkpointer)
        except CheckpointError:
            raise
        except (ValueError, OSError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            where = checkpointer.prefix(step) if step is not None else checkpointer.latest
            raise CheckpointError(f"cannot resume from {where}: {' '.join(str(exc).split())[:200]}") from None
        if step is not None and self.run_dir is not None and _same_dir(self.run_dir, path):
            checkpointer.set_aside_after(self.learner.step)
            if self.learner.checkpointer is not None:
                self.learner.checkpointer.reload()

    def close(self) -> None:
        """Close the environments this model made itself."""
        if self._own_envs:
            self.env.close()
        if self._own_eval_env:
            self.learner.eval_env.close()

    def __enter__(self) -> DDPG:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.config.env_id!r}, steps={self.num_timesteps}, "
                f"run_dir={None if self.run_dir is None else str(self.run_dir)!r})")


class TD3(DDPG):
    """TD3 (Fujimoto et al. 2018): DDPG with twin critics, delayed actor updates and target
    policy smoothing; the defaults of the ``td3`` preset."""

    preset: ClassVar[str] = "td3"


class _StopCut:
    """Once a stop is requested, every step counts as the end of the episodes in progress, so
    the loop selects no next actions that the stop's checkpoint would drop (as it does before a
    scheduled checkpoint)."""

    def __init__(self) -> None:
        self.stop: StopSignals | None = None

    def due(self, step: int, new_steps: int, final: bool) -> bool:
        return self.stop is not None and self.stop.signum is not None


def _end_after_error(callbacks: CallbackList, model: DDPG, error: BaseException) -> None:
    """``on_training_end`` while ``error`` ends ``learn``: a second error (a full disk also
    failing a log flush) is noted on the first instead of replacing it."""
    try:
        callbacks.on_training_end(model)
    except Exception as exc:  # noqa: BLE001
        error.add_note(f"on_training_end then failed too: {type(exc).__name__}: {exc}")


def _callback_list(callbacks: Any) -> list[Callback]:
    if callbacks is None:
        return []
    items = [callbacks] if isinstance(callbacks, Callback | str | bytes) else callbacks
    try:
        items = list(items)
    except TypeError:
        items = [items]
    bad = next((c for c in items if not isinstance(c, Callback)), None)
    if bad is not None:
        raise InputError(f"callbacks must be ddpg_tf.Callback instances, got {type(bad).__name__} "
                         f"{bad!r:.60}; subclass ddpg_tf.Callback and override on_step (or another hook)")
    return items


def _same_dir(a: Path, b: Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def _resolve_in_graph(config: Config, env: EnvLike, given: set[str] | None) -> Config:
    """``config`` with ``in_graph`` as it will be used on ``env``: kept on where the in-graph
    loop can run it, else off; an error where the user asked for it (``given`` names
    ``in_graph``) or a loaded run used it (``given`` None)."""
    if not config.in_graph:
        return config
    reason = unsupported(config, env)
    if reason is None:
        if config.progress and given is not None:
            print(f"in-graph: {config.env_id} steps inside the compiled training loop (ddpg_tf/tf_envs; "
                  "--no-in-graph for gymnasium's env)", flush=True)
        return config
    if given is None:
        raise ConfigError(f"this run trained with the in-graph loop, which cannot continue here: {reason}; "
                          "load it with the environment's id (env=None)")
    if "in_graph" in given:
        raise ConfigError(f"--in-graph cannot run this: {reason}; drop it (or pass --no-in-graph)")
    if config.progress and isinstance(env, str) and env in ENV_MODULES:
        print(f"in-graph: off ({reason})", flush=True)
    return config.replace(in_graph=False)


def _resolve_speed(config: Config, envs: Any, given: set[str]) -> Config:
    """``config`` with ``speed="auto"`` resolved for ``envs``' dimensions and the thread pools
    set; the choice is printed (with ``progress``). Thread counts the rule chose are dropped,
    with a note, when TensorFlow has already started with others (the numbers do not depend
    on them)."""
    obs_dim, low, _ = space_dims(envs)
    resolved, line = resolve_speed(config, obs_dim, len(low), given)
    try:
        set_threads(resolved.threads, resolved.intra_op_threads, resolved.inter_op_threads)
    except UsageError:
        if {"threads", "intra_op_threads", "inter_op_threads"} & given:
            raise
        resolved = resolved.replace(intra_op_threads=0, inter_op_threads=0)
        line = line and line.replace("; --speed", "; threads kept (TensorFlow had started); --speed")
    if line and resolved.progress:
        print(line, flush=True)
    return resolved


def _configure(base: Config, env: EnvLike, overrides: dict[str, Any]) -> Config:
    """``base`` with the environment's id and copy count and the overrides, validated."""
    if not isinstance(base, Config):
        raise ConfigError(f"config must be a ddpg_tf.Config, got {type(base).__name__}; pass field values "
                          "as keywords instead")
    names = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown Config field(s): {', '.join(unknown)}; see ddpg_tf.Config")
    values = check_field_types(overrides)
    if isinstance(env, str):
        values.setdefault("env_id", env)
    else:
        values["env_id"] = env_id_of(env)
        if isinstance(env, gym.vector.VectorEnv):
            if "num_envs" in overrides and overrides["num_envs"] != env.num_envs:
                raise ConfigError(f"num_envs={overrides['num_envs']} but the vector env has "
                                  f"{env.num_envs} copies")
            values["num_envs"] = int(env.num_envs)
        elif values.get("num_envs", 1) != 1:
            raise ConfigError("num_envs > 1 needs a gymnasium.vector.VectorEnv or an environment id")
        else:
            values["num_envs"] = 1
    n = values.get("num_envs", base.num_envs)
    if n > 1 and base.update_schedule == "episode-end" and "update_schedule" not in overrides:
        values["update_schedule"] = "every-step"  # bursts at episode ends need one environment
    total = values.get("total_steps", base.total_steps)
    values["total_steps"] = -(-total // n) * n  # learn() sets the real total; keep it valid
    try:
        return base.replace(**values).validate()
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def _check_new_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run_dir {run_dir} exists and is not a directory; choose another run_dir")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"run directory {run_dir} already exists; continue it with "
                         f"load({str(run_dir)!r}, run_dir={str(run_dir)!r}) or choose another")
    check_writable(run_dir, "run_dir")


def _check_model_dir(path: Path) -> None:
    """``save`` writes into a new or empty directory, or over an earlier save."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"cannot save to {path}: it exists and is not a directory")
    if path.exists() and any(path.iterdir()) and not (path / CONFIG_FILE).is_file():
        raise UsageError(f"cannot save to {path}: it holds other files (no {CONFIG_FILE}); choose a new "
                         "or empty directory")
    check_writable(path, "save path")


def _evaluation_copy(env: gym.Env | gym.vector.VectorEnv) -> gym.Env:
    """A separate environment like one copy of ``env``, for evaluations: remade from its spec
    when it has one, else a deep copy."""
    single = env.envs[0] if isinstance(env, gym.vector.SyncVectorEnv) else env
    spec = getattr(single, "spec", None)
    if spec is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return gym.make(spec)
        except Exception:  # noqa: BLE001, S110  (an unregistered or unrebuildable spec: copy instead)
            pass
    if isinstance(single, gym.vector.VectorEnv):
        raise UsageError("cannot make an evaluation environment from this vector env; pass eval_env=")
    try:
        return copy.deepcopy(single)
    except Exception as exc:  # noqa: BLE001  (deepcopy raises whatever the env's members raise)
        raise UsageError(f"cannot copy {env_id_of(env)} for evaluation ({type(exc).__name__}: {exc}); "
                         "pass eval_env= a separate instance") from None


__all__ = ["DDPG", "TD3"]
