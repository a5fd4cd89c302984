"""The bad-input catalogue of the Python API: each mistake raises one exception of an exact
type with a one-line message naming the problem, and leaves every file as it was (not even a
directory's modification time changes).

``docs/errors.md`` lists this catalogue and the command line's (``tests/test_cli_errors.py``);
``test_errors_page_is_current`` fails when it is stale. Rewrite it with
``python -m tests.test_api_errors``.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import pytest

from ddpg_tf import DDPG, Callback
from ddpg_tf.errors import CheckpointError, ConfigError, EnvError, InputError, TrainingError, UsageError
from tests import fake_envs
from tests.test_api import SMALL, Drift
from tests.test_cli_errors import snapshot

ROOT = Path(__file__).resolve().parents[1]
FAST = {**SMALL, "jit_compile": False}
PAGE = ROOT / "docs" / "errors.md"


# --- environments that break their own declaration ----------------------------------------
class WrongShapeAtReset(Drift):
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}


class ShapeChanges(Drift):
    def step(self, action):
        obs, *rest = super().step(action)
        return (obs[:2] if self.t >= 5 else obs), *rest


class TextObservations(Drift):
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.array(["a", "b", "c"]), {}


class NoReward(Drift):
    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, None, terminated, truncated, info


class NaNReward(Drift):
    def step(self, action):
        obs, reward, *rest = super().step(action)
        return obs, (float("nan") if self.t == 5 else reward), *rest


class InfObservation(Drift):
    def step(self, action):
        obs, *rest = super().step(action)
        return (np.full(3, np.inf, np.float32) if self.t == 5 else obs), *rest


def two_drifts() -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([Drift, Drift])


# --- damaged saved runs ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    """A model trained 120 steps on Drift with a run directory: checkpoints 40, 80, 120."""
    root = tmp_path_factory.mktemp("saved")
    model = DDPG(Drift(), run_dir=root / "run", **{**FAST, "checkpoint_every": 40, "export": False})
    model.learn(120)
    return root / "run"


def _ckpt(tmp: Path, pattern: str) -> Path:
    return sorted((tmp / "run" / "checkpoints").glob(pattern))[0]


def scramble(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 64] = bytes(b ^ 0x5A for b in raw[middle:middle + 64])
    path.write_bytes(bytes(raw))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def pickled_buffer(path: Path) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, meta=np.zeros(6, np.int64), rng_state=np.zeros(3, np.uint8),
                 rows=np.array([{"a": 1}], dtype=object))


def load(tmp: Path, **kwargs: Any) -> DDPG:
    return DDPG.load(tmp / "run", env=Drift(), **kwargs)


class Boom(Callback):
    def __init__(self, hook: str) -> None:
        self.hook = hook

    def on_step(self, model, info):
        if self.hook == "on_step" and info.step == 5:
            raise RuntimeError("boom in on_step")

    def on_evaluation(self, model, step, returns):
        if self.hook == "on_evaluation":
            raise RuntimeError("boom in on_evaluation")


class Case(NamedTuple):
    id: str
    call: str
    """The input, as the user would write it (for docs/errors.md)."""
    run: Callable[[Path], object]
    error: type[BaseException]
    fragment: str
    setup: Callable[[Path], object] | None = None
    """Prepares the case's directory before the files are recorded."""
    with_run: bool = False
    """Copy the saved run to ``tmp/run`` first (then ``setup`` may damage it)."""
    linux: bool = False


def _model(**overrides: Any) -> DDPG:
    return DDPG(Drift(), **{**FAST, **overrides})


def _notes(tmp: Path) -> None:
    (tmp / "notes.txt").write_text("mine")


def _notes_dir(tmp: Path) -> None:
    (tmp / "other").mkdir()
    (tmp / "other" / "notes.txt").write_text("mine")


def _config_only(tmp: Path) -> None:
    shutil.rmtree(tmp / "run" / "checkpoints")


def _edit_config(old: str, new: str) -> Callable[[Path], None]:
    def edit(tmp: Path) -> None:
        path = tmp / "run" / "config.json"
        path.write_text(path.read_text().replace(old, new))
    return edit


CASES = [
    # --- environments DDPG cannot use -----------------------------------------------------
    Case("discrete-actions", 'DDPG(gym.make("CartPole-v1"))', lambda t: DDPG(gym.make("CartPole-v1"), **FAST),
         EnvError, "CartPole-v1 has a Discrete action space; DDPG needs continuous (Box) actions"),
    Case("dict-observations", "DDPG(env with a Dict observation space)", lambda t: DDPG(fake_envs.dict_obs()),
         EnvError, "has a Dict observation space; this package needs a flat Box"),
    Case("image-observations", "DDPG(env with (32, 32, 3) image observations)",
         lambda t: DDPG(fake_envs.image_obs()), EnvError, "only 1-D vectors are supported"),
    Case("unbounded-actions", "DDPG(env with actions in (-inf, inf))",
         lambda t: DDPG(fake_envs.unbounded_actions()), EnvError,
         "unbounded actions; DDPG's actor needs finite bounds"),
    Case("multidiscrete-actions", "DDPG(env with MultiDiscrete actions)",
         lambda t: DDPG(fake_envs.multi_discrete_actions()), EnvError, "has a MultiDiscrete action space"),
    Case("unknown-env-id", 'DDPG("NoSuchEnv-v0")', lambda t: DDPG("NoSuchEnv-v0"), EnvError,
         "cannot make environment 'NoSuchEnv-v0'"),
    Case("not-an-env", "DDPG(object())", lambda t: DDPG(object()), EnvError,
         "expected a gymnasium.Env, a gymnasium.vector.VectorEnv or an environment id, got object"),
    Case("eval-env-other-spaces", 'DDPG(Drift(), eval_env=gym.make("Pendulum-v1"))',
         lambda t: DDPG(Drift(), eval_env=gym.make("Pendulum-v1"), **FAST), EnvError,
         "eval_env Pendulum-v1 has observation shape (3,)"),
    Case("eval-env-discrete", 'DDPG(Drift(), eval_env=gym.make("CartPole-v1"))',
         lambda t: DDPG(Drift(), eval_env=gym.make("CartPole-v1"), **FAST), EnvError,
         "eval_env CartPole-v1 has a Discrete action space"),
    Case("vector-env-copies-mismatch", "DDPG(SyncVectorEnv of 2, num_envs=3)",
         lambda t: DDPG(two_drifts(), num_envs=3), ConfigError, "num_envs=3 but the vector env has 2 copies"),
    Case("several-copies-of-a-plain-env", "DDPG(Drift(), num_envs=2)", lambda t: DDPG(Drift(), num_envs=2),
         ConfigError, "num_envs > 1 needs a gymnasium.vector.VectorEnv or an environment id"),
    # --- environments that break their declaration while training ----------------------------
    Case("reset-wrong-shape", "learn() on an env whose reset() returns shape (4,) for a (3,) space",
         lambda t: DDPG(WrongShapeAtReset(), **FAST).learn(10), EnvError,
         "WrongShapeAtReset.reset() returned an observation of shape (4,) and dtype float32, but its "
         "observation space declares numbers of shape (3,)"),
    Case("observation-shape-changes", "learn() on an env whose observations shrink to (2,) at step 5",
         lambda t: DDPG(ShapeChanges(), **FAST).learn(10), EnvError,
         "ShapeChanges.step() returned an observation of shape (2,)"),
    Case("text-observations", "learn() on an env that returns strings as observations",
         lambda t: DDPG(TextObservations(), **FAST).learn(10), EnvError, "of shape (3,) and dtype <U1"),
    Case("reward-not-a-number", "learn() on an env whose step() returns reward None",
         lambda t: DDPG(NoReward(), **FAST).learn(10), EnvError,
         "NoReward.step() returned a reward of type NoneType (None); a reward must be one number"),
    Case("nan-reward", "learn() on an env that returns a NaN reward at step 5",
         lambda t: DDPG(NaNReward(), **FAST).learn(10), TrainingError,
         "the environment returned a non-finite reward at step 5"),
    Case("inf-observation", "learn() on an env that returns an infinite observation at step 5",
         lambda t: DDPG(InfObservation(), **FAST).learn(10), TrainingError,
         "the environment returned a non-finite observation at step 5"),
    # --- configuration ---------------------------------------------------------------------
    Case("unknown-field", "DDPG(env, learning_rate=1e-3)", lambda t: DDPG(Drift(), learning_rate=1e-3),
         ConfigError, "unknown Config field(s): learning_rate; see ddpg_tf.Config"),
    Case("invalid-value", "DDPG(env, tau=2.0)", lambda t: DDPG(Drift(), tau=2.0), ConfigError,
         "--tau must be in (0, 1], got 2.0"),
    Case("batch-zero", "DDPG(env, batch_size=0)", lambda t: DDPG(Drift(), batch_size=0), ConfigError,
         "--batch-size must be a positive integer"),
    Case("string-for-integer", 'DDPG(env, batch_size="64")', lambda t: DDPG(Drift(), batch_size="64"),
         ConfigError, "batch_size must be an integer, got '64' (str)"),
    Case("integer-for-layers", "DDPG(env, actor_hidden=64)", lambda t: DDPG(Drift(), actor_hidden=64),
         ConfigError, "actor_hidden must be a tuple of layer sizes such as (64, 64), got 64 (int)"),
    Case("bool-for-number", "DDPG(env, gamma=True)", lambda t: DDPG(Drift(), gamma=True), ConfigError,
         "gamma must be a number, got True (bool)"),
    Case("config-not-a-config", 'DDPG(env, config={"tau": 0.01})', lambda t: DDPG(Drift(), {"tau": 0.01}),
         ConfigError, "config must be a ddpg_tf.Config, got dict"),
    # --- learn, predict, evaluate ------------------------------------------------------------
    Case("negative-steps", "model.learn(-5)", lambda t: _model().learn(-5), InputError,
         "learn() needs a number of steps >= 0 that is a multiple of num_envs (1), got -5"),
    Case("fractional-steps", "model.learn(2.5)", lambda t: _model().learn(2.5), InputError,
         "learn() needs a number of steps >= 0"),
    Case("steps-not-multiple-of-copies", "model.learn(7) with 2 copies",
         lambda t: DDPG(two_drifts(), **FAST).learn(7), InputError, "multiple of num_envs (2), got 7"),
    Case("callback-not-a-callback", "model.learn(10, callbacks=[print])",
         lambda t: _model().learn(10, callbacks=[print]), InputError,
         "callbacks must be ddpg_tf.Callback instances, got builtin_function_or_method"),
    Case("callbacks-a-string", 'model.learn(10, callbacks="progress")',
         lambda t: _model().learn(10, callbacks="progress"), InputError,
         "callbacks must be ddpg_tf.Callback instances, got str 'progress'"),
    Case("predict-wrong-shape", "model.predict(np.ones(4)) for 3-D observations",
         lambda t: _model().predict(np.ones(4)), InputError,
         "predict() takes one observation of shape (3,) or a batch (n, 3), got shape (4,)"),
    Case("predict-text", 'model.predict(np.array(["a", "b", "c"]))',
         lambda t: _model().predict(np.array(["a", "b", "c"])), InputError, "and dtype <U1"),
    Case("predict-nan", "model.predict([0, nan, 0])", lambda t: _model().predict([0.0, np.nan, 0.0]),
         InputError, "predict() got an observation with NaN or infinite values"),
    Case("evaluate-zero-episodes", "model.evaluate(episodes=0)", lambda t: _model().evaluate(episodes=0),
         InputError, "episodes must be a positive integer, got 0"),
    Case("evaluate-other-env", 'model.evaluate(gym.make("Pendulum-v1"))',
         lambda t: _model().evaluate(gym.make("Pendulum-v1"), episodes=1), EnvError,
         "env Pendulum-v1 has observation shape (3,)"),
    Case("evaluate-discrete-env", 'model.evaluate(gym.make("CartPole-v1"))',
         lambda t: _model().evaluate(gym.make("CartPole-v1")), EnvError, "has a Discrete action space"),
    Case("callback-raises-in-on-step", 'a callback whose on_step raises RuntimeError("boom in on_step")',
         lambda t: _model().learn(10, callbacks=[Boom("on_step")]), RuntimeError, "boom in on_step"),
    Case("callback-raises-in-on-evaluation", "a callback whose on_evaluation raises",
         lambda t: _model(eval_every=5, eval_episodes=1).learn(10, callbacks=Boom("on_evaluation")),
         RuntimeError, "boom in on_evaluation"),
    # --- where it writes ---------------------------------------------------------------------
    Case("run-dir-holds-a-run", 'DDPG(env, run_dir="run") where run/ holds a run',
         lambda t: DDPG(Drift(), run_dir=t / "run", **FAST), UsageError,
         "already exists; continue it with load(", with_run=True),
    Case("run-dir-is-a-file", 'DDPG(env, run_dir="notes.txt") (a file)',
         lambda t: DDPG(Drift(), run_dir=t / "notes.txt", **FAST), UsageError,
         "exists and is not a directory; choose another run_dir", _notes),
    Case("run-dir-under-a-file", 'DDPG(env, run_dir="notes.txt/run")',
         lambda t: DDPG(Drift(), run_dir=t / "notes.txt" / "run", **FAST), UsageError,
         "notes.txt is a file, not a directory; choose another run_dir", _notes),
    Case("run-dir-in-proc", 'DDPG(env, run_dir="/proc/ddpg-tf")',
         lambda t: DDPG(Drift(), run_dir="/proc/ddpg-tf", **FAST), UsageError,
         "cannot write to /proc/ddpg-tf: /proc is not writable", linux=True),
    Case("save-to-a-file", 'model.save("notes.txt") (a file)', lambda t: _model().save(t / "notes.txt"),
         UsageError, "it exists and is not a directory", _notes),
    Case("save-over-other-files", 'model.save("other") where other/ holds notes.txt',
         lambda t: _model().save(t / "other"), UsageError, "it holds other files (no config.json)",
         _notes_dir),
    Case("save-in-proc", 'model.save("/proc/ddpg-tf")', lambda t: _model().save("/proc/ddpg-tf"), UsageError,
         "/proc is not writable", linux=True),
    Case("load-run-dir-in-proc", 'DDPG.load("run", run_dir="/proc/ddpg-tf")',
         lambda t: load(t, run_dir="/proc/ddpg-tf"), UsageError, "/proc is not writable", with_run=True,
         linux=True),
    Case("load-run-dir-holds-another-run", 'DDPG.load("run", run_dir="other") where other/ holds a run',
         lambda t: load(t, run_dir=t / "other"), UsageError, "already exists",
         lambda t: shutil.copytree(t / "run", t / "other"), with_run=True),
    # --- loading ---------------------------------------------------------------------------
    Case("load-nothing", 'DDPG.load("nothing")', lambda t: DDPG.load(t / "nothing"), UsageError,
         "is not a run directory (no config.json there)"),
    Case("load-changes-the-algorithm", 'DDPG.load("run", batch_size=8)', lambda t: load(t, batch_size=8),
         ConfigError, "load() cannot change batch_size", with_run=True),
    Case("load-change-wrong-type", 'DDPG.load("run", eval_every="often")',
         lambda t: load(t, eval_every="often"), ConfigError, "eval_every must be an integer, got 'often'",
         with_run=True),
    Case("load-negative-step", 'DDPG.load("run", step=-1)', lambda t: load(t, step=-1), InputError,
         "step must be a checkpoint's step (an integer >= 0), got -1", with_run=True),
    Case("load-missing-step", 'DDPG.load("run", step=999)', lambda t: load(t, step=999), CheckpointError,
         "there is no checkpoint 999 in", with_run=True),
    Case("load-no-checkpoints", 'DDPG.load("run") of a run without checkpoints', load, CheckpointError,
         "no checkpoint in", with_run=True, setup=_config_only),
    Case("load-discrete-env", 'DDPG.load("run", env=gym.make("CartPole-v1"))',
         lambda t: DDPG.load(t / "run", env=gym.make("CartPole-v1")), EnvError, "has a Discrete action space",
         with_run=True),
    Case("load-other-env", 'DDPG.load("run", env=gym.make("Pendulum-v1")) of a Drift run',
         lambda t: DDPG.load(t / "run", env=gym.make("Pendulum-v1")), CheckpointError,
         "does not match this model's configuration", with_run=True),
    Case("load-unregistered-without-env", 'DDPG.load("run") of a run on an unregistered env',
         lambda t: DDPG.load(t / "run"), EnvError,
         "pass env= an instance of the environment it was trained on", with_run=True),
    Case("load-config-not-json", 'DDPG.load("run") with config.json cut short', load, UsageError,
         "config.json (", with_run=True, setup=lambda t: truncate(t / "run" / "config.json")),
    Case("load-config-wrong-type", 'DDPG.load("run") with "tau": "fast" in config.json', load, UsageError,
         "tau must be a number, got 'fast'",
         with_run=True, setup=_edit_config('"tau": 0.005', '"tau": "fast"')),
    Case("load-config-invalid-value", 'DDPG.load("run") with "gamma": 3.0 in config.json', load, UsageError,
         "--gamma must be in [0, 1], got 3.0",
         with_run=True, setup=_edit_config('"gamma": 0.98', '"gamma": 3.0')),
    Case("load-damaged-data", 'DDPG.load("run") with bytes of ckpt-120\'s data file changed', load,
         CheckpointError, "checkpoint 80 is intact: load it with load(path, step=80)",
         with_run=True, setup=lambda t: scramble(_ckpt(t, "ckpt-120.data-*"))),
    Case("load-truncated-data", 'DDPG.load("run") with ckpt-120\'s data file cut in half', load,
         CheckpointError, "/run/checkpoints is damaged (ckpt-120: ",
         with_run=True, setup=lambda t: truncate(_ckpt(t, "ckpt-120.data-*"))),
    Case("load-truncated-index", 'DDPG.load("run") with ckpt-120.index cut in half', load, CheckpointError,
         "is damaged (ckpt-120: ", with_run=True, setup=lambda t: truncate(_ckpt(t, "ckpt-120.index"))),
    Case("load-truncated-extras", 'DDPG.load("run") with extras-120.json cut in half', load, CheckpointError,
         "is damaged (extras-120.json: ",
         with_run=True, setup=lambda t: truncate(_ckpt(t, "extras-120.json"))),
    Case("load-extras-without-states", 'DDPG.load("run") with extras-120.json = {}', load, CheckpointError,
         "extras-120.json lacks the environment RNG states",
         with_run=True, setup=lambda t: _ckpt(t, "extras-120.json").write_text("{}")),
    Case("load-damaged-buffer", 'DDPG.load("run") with bytes of buffer-120.npz changed', load,
         CheckpointError, "or load with save_buffer=False to continue with an empty replay buffer",
         with_run=True, setup=lambda t: scramble(_ckpt(t, "buffer-120.npz"))),
    Case("load-missing-buffer", 'DDPG.load("run") without buffer-120.npz', load, CheckpointError,
         "is damaged (buffer-120.npz is missing); checkpoint 80 is intact",
         with_run=True, setup=lambda t: _ckpt(t, "buffer-120.npz").unlink()),
    Case("load-pickled-buffer", 'DDPG.load("run") with an object array in buffer-120.npz', load,
         CheckpointError, "rows.npy holds Python objects, which are never unpickled",
         with_run=True, setup=lambda t: pickled_buffer(_ckpt(t, "buffer-120.npz"))),
    Case("load-every-checkpoint-damaged", 'DDPG.load("run") with all three data files changed', load,
         CheckpointError, "and no earlier checkpoint is intact",
         with_run=True,
         setup=lambda t: [scramble(p) for p in (t / "run" / "checkpoints").glob("ckpt-*.data-*")]),
    Case("load-damaged-list", 'DDPG.load("run") with checkpoints/checkpoint overwritten', load,
         CheckpointError, "checkpoints/checkpoint is damaged (cannot parse 'not a list'); checkpoint 120 is "
         "intact: load it with load(path, step=120)",
         with_run=True, setup=lambda t: (t / "run" / "checkpoints" / "checkpoint").write_text("not a list")),
    Case("load-step-damaged", 'DDPG.load("run", step=80) with ckpt-80 damaged', lambda t: load(t, step=80),
         CheckpointError, "checkpoint 80 in",
         with_run=True, setup=lambda t: scramble(_ckpt(t, "ckpt-80.data-*"))),
]


def _one_line(text: str) -> bool:
    return "\n" not in text and text == " ".join(text.split())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, saved_run, monkeypatch):
    if case.linux and not Path("/proc/self").exists():
        pytest.skip("needs /proc")
    if case.with_run:
        shutil.copytree(saved_run, tmp_path / "run")
    if case.setup is not None:
        case.setup(tmp_path)
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BaseException) as info:
        case.run(tmp_path)
    assert type(info.value) is case.error, f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert case.fragment in message, message
    assert _one_line(message), message
    assert snapshot(tmp_path) == before, "a bad input changed files"


def test_too_little_free_space_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DDPG_TF_MIN_FREE_MIB", "1e12")
    model = _model()
    attempts = (lambda: DDPG(Drift(), run_dir=tmp_path / "run", **FAST), lambda: model.save(tmp_path / "m"))
    for attempt in attempts:
        with pytest.raises(UsageError, match=r"only [0-9.]+ MiB free on .*, at least 1e\+12 MiB needed "
                                             r"\(DDPG_TF_MIN_FREE_MIB sets this minimum\)"):
            attempt()
    assert list(tmp_path.iterdir()) == []


def test_a_raising_callback_propagates_its_own_exception_and_the_model_goes_on(tmp_path):
    """The user's exception comes out unchanged (its traceback reaches into the callback); the
    built-in callbacks of that step still ran (the checkpoint at step 40 is written); a later
    learn() continues exactly as a run whose callback never raised."""
    error = RuntimeError("boom")

    class RaiseOnce(Callback):
        def on_checkpoint(self, model, step, path):
            if step == 40:
                raise error

    kwargs = {**FAST, "checkpoint_every": 40, "eval_every": 40, "eval_episodes": 1, "export": False}
    model = DDPG(Drift(), run_dir=tmp_path / "a", **kwargs)
    with pytest.raises(RuntimeError) as info:
        model.learn(80, callbacks=[RaiseOnce()])
    assert info.value is error
    assert any(frame.name == "on_checkpoint" for frame in info.traceback)
    assert model.num_timesteps == 40
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoints").glob("*.index")) == ["ckpt-40.index"]
    model.learn(40)
    reference = DDPG(Drift(), run_dir=tmp_path / "b", **kwargs).learn(40).learn(40)
    from tests.test_api import assert_same, state

    assert_same(state(model), state(reference))
    assert model.evaluations == reference.evaluations


def test_catalogue_is_large_enough():
    from tests.test_cli_errors import CASES as CLI_CASES

    assert len(CASES) >= 60 and len(CASES) + len(CLI_CASES) >= 130


# --- docs/errors.md ----------------------------------------------------------------------------
START, END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    text = _cell(text)
    return f"``{text}``" if "`" in text else f"`{text}`"


def catalogue_markdown() -> str:
    """The two tables of docs/errors.md, from this catalogue and the command line's."""
    from tests.test_cli_errors import CASES as CLI_CASES

    rows = [f"### The command line ({len(CLI_CASES)} cases, `tests/test_cli_errors.py`)", "",
            "Each case runs in a fresh directory; `train.py` also gets small-run flags and `--logdir runs`. "
            "Every case exits with status 2, prints one line on stderr and changes no file.", "",
            "| case | command | starting from | stderr contains |", "|---|---|---|---|"]
    for case in CLI_CASES:
        command = ("python -m " + case.module if case.module else "python train.py")
        args = " ".join(case.args)
        env = " ".join(f"{k}={v}" for k, v in (case.env or {}).items())
        shown = f"{env + ' ' if env else ''}{command}{' ' + args if args else ''}"
        fragment = case.fragment.format(runs="runs")
        rows.append(f"| {case.id} | {_code(shown)} | {_cell(case.given()) or '–'} | {_code(fragment)} |")
    rows += ["", f"### The Python API ({len(CASES)} cases, `tests/test_api_errors.py`)", "",
             "Every case raises exactly the exception named, with a one-line message, and changes no file.",
             "", "| case | call | exception | message contains |", "|---|---|---|---|"]
    for api_case in CASES:
        rows.append(f"| {api_case.id} | {_cell(api_case.call)} | `{api_case.error.__name__}` | "
                    f"{_code(api_case.fragment)} |")
    return "\n".join(rows) + "\n"


def test_errors_page_is_current():
    text = PAGE.read_text()
    current = text[text.index(START) + len(START):text.index(END)].strip("\n") + "\n"
    assert current == catalogue_markdown(), "docs/errors.md is stale: run python -m tests.test_api_errors"


def write_page() -> None:
    text = PAGE.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(f"{head}{START}\n{catalogue_markdown()}{END}{tail}")


if __name__ == "__main__":  # python -m tests.test_api_errors: rewrite the tables of docs/errors.md
    write_page()
    print(f"wrote {PAGE} ({len(re.findall(r'^[|] [a-z]', PAGE.read_text(), re.M))} rows)", file=sys.stderr)
