"""The bad-input catalogue: every error a user can cause ends with exit status 2, a one-line
message on stderr that says what to do, no traceback, and no file created or changed."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from ddpg_tf.config import Config
from ddpg_tf.training import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--total-steps", "300", "--learning-starts", "100", "--batch-size", "16", "--buffer-size", "500",
        "--eval-every", "0", "--eval-episodes", "1", "--checkpoint-every", "100", "--no-progress",
        "--no-export"]


def run(args: list[str], cwd: Path, module: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", module] if module else [sys.executable, str(ROOT / "train.py")]
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def snapshot(path: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``path`` with its size, mtime and (for small files) contents."""
    out = {}
    for p in sorted(path.rglob("*")):
        st = p.stat()
        data = p.read_bytes() if p.is_file() and st.st_size < 1_000_000 else b""
        out[str(p.relative_to(path))] = (st.st_size, st.st_mtime_ns, data)
    return out


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory) -> Path:
    """Three tiny finished runs: `base` (Pendulum, 16 units), `wide` (Pendulum, 32 units),
    `car` (MountainCarContinuous-v0, 16 units)."""
    root = tmp_path_factory.mktemp("trained")
    common = dict(total_steps=300, learning_starts=100, batch_size=16, buffer_size=500, eval_every=0,
                  eval_episodes=1, checkpoint_every=100, progress=False, export=False, logdir=str(root))
    for name, extra in [("base", {"actor_hidden": (16,), "critic_hidden": (16,)}),
                        ("wide", {"actor_hidden": (32,), "critic_hidden": (32,)}),
                        ("car", {"actor_hidden": (16,), "critic_hidden": (16,),
                                 "env_id": "MountainCarContinuous-v0"})]:
        train(Config(run_name=name, **common, **extra).validate())
    return root


def copy_run(trained: Path, tmp: Path, name: str = "base") -> Path:
    target = tmp / "runs" / name
    shutil.copytree(trained / name, target)
    return target


def _latest_data_file(run_dir: Path) -> Path:
    return sorted((run_dir / "checkpoints").glob("ckpt-300.data-*"))[0]


def corrupt_checkpoint(trained: Path, tmp: Path) -> None:
    data = _latest_data_file(copy_run(trained, tmp))
    raw = bytearray(data.read_bytes())
    raw[: len(raw) // 2] = os.urandom(len(raw) // 2)
    data.write_bytes(bytes(raw))


def truncate_checkpoint(trained: Path, tmp: Path) -> None:
    data = _latest_data_file(copy_run(trained, tmp))
    data.write_bytes(data.read_bytes()[:100])


def foreign_checkpoint(other: str) -> Callable[[Path, Path], None]:
    def setup(trained: Path, tmp: Path) -> None:
        target = copy_run(trained, tmp)
        shutil.rmtree(target / "checkpoints")
        shutil.copytree(trained / other / "checkpoints", target / "checkpoints")
    return setup


def corrupt_buffer(trained: Path, tmp: Path) -> None:
    target = copy_run(trained, tmp)
    (target / "checkpoints" / "buffer-300.npz").write_bytes(b"not a zip file")


def corrupt_config(trained: Path, tmp: Path) -> None:
    target = copy_run(trained, tmp)
    (target / "config.json").write_text("{not json")


def logdir_is_a_file(trained: Path, tmp: Path) -> None:
    (tmp / "runs").write_text("a file where a directory should be")


class Case(NamedTuple):
    id: str
    args: list[str]
    fragment: str
    setup: Callable[[Path, Path], None] | None = None
    module: str | None = None


CASES = [
    # --- flag values ------------------------------------------------------------------
    Case("tau-zero", ["--tau", "0"], "--tau must be in (0, 1]"),
    Case("tau-above-one", ["--tau", "1.5"], "--tau must be in (0, 1]"),
    Case("actor-lr-zero", ["--actor-lr", "0"], "--actor-lr must be positive"),
    Case("critic-lr-negative", ["--critic-lr", "-0.001"], "--critic-lr must be positive"),
    Case("batch-above-buffer", ["--batch-size", "512", "--buffer-size", "100"],
         "lower the batch or raise the buffer"),
    Case("unknown-preset", ["--preset", "nope"], "invalid choice: 'nope'"),
    Case("unknown-style", ["--actor-update", "sideways"], "invalid choice: 'sideways'"),
    Case("non-integer-steps", ["--total-steps", "abc"], "invalid int value"),
    Case("zero-steps", ["--total-steps", "0"], "--total-steps must be a positive integer"),
    Case("gamma-above-one", ["--gamma", "1.5"], "--gamma must be in [0, 1]"),
    Case("bad-layer-sizes", ["--actor-hidden", "64,x"], "expected layer sizes"),
    Case("action-layer-too-deep", ["--critic-hidden", "64", "--critic-action-layer", "1"],
         "--critic-action-layer 1 must be smaller"),
    Case("nan-value", ["--tau", "nan"], "expected a finite number"),
    Case("unknown-flag", ["--no-such-flag"], "unrecognized arguments"),
    Case("unknown-noise", ["--noise", "pink"], "invalid choice: 'pink'"),
    Case("run-name-with-slash", ["--run-name", "a/b"], "--run-name must be a plain directory name"),
    Case("transform-with-direct", ["--actor-update", "direct", "--dqda-transform", "invert"],
         "needs --actor-update chain-rule or dpg-surrogate"),
    Case("clip-threshold-zero", ["--actor-update", "chain-rule", "--dqda-transform", "clip-norm",
                                 "--dqda-clip", "0"], "--dqda-clip must be positive"),
    Case("zero-eval-episodes", ["--eval-episodes", "0"], "--eval-episodes must be a positive integer"),
    Case("negative-seed", ["--seed=-1"], "--seed must be in [0, 2**32)"),
    Case("zero-n-step", ["--n-step", "0"], "--n-step must be a positive integer"),
    Case("zero-policy-delay", ["--policy-delay", "0"], "--policy-delay must be a positive integer"),
    Case("negative-target-noise", ["--target-noise=-0.2"], "--target-noise must be >= 0"),
    Case("param-noise-without-target", ["--noise", "param", "--noise-sigma", "0"],
         "--noise param needs a positive --noise-sigma"),
    Case("param-noise-alpha-one", ["--param-noise-alpha", "1"], "--param-noise-alpha must be greater than 1"),
    Case("negative-threads", ["--threads=-1"], "--threads must be >= 0"),
    Case("zero-envs", ["--num-envs", "0"], "--num-envs must be a positive integer"),
    Case("chunks-not-dividing-batch", ["--batch-chunks", "3"],
         "--batch-chunks 3 must divide --batch-size 16"),
    Case("steps-not-multiple-of-envs", ["--num-envs", "7"],
         "--total-steps 300 must be a multiple of --num-envs 7"),
    Case("zero-log-every", ["--log-every", "0"], "--log-every must be a positive integer"),
    # --- environments -------------------------------------------------------------------
    Case("unknown-env", ["--env-id", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
    Case("discrete-actions", ["--env-id", "CartPole-v1"], "Discrete action space; DDPG needs continuous"),
    Case("multidiscrete-actions", ["--env-id", "tests.fake_envs:MultiDiscreteActions-v0"],
         "MultiDiscrete action space"),
    Case("dict-observations", ["--env-id", "tests.fake_envs:DictObs-v0"],
         "Dict observation space; this package needs a flat Box"),
    Case("image-observations", ["--env-id", "tests.fake_envs:ImageObs-v0"],
         "only 1-D vectors are supported"),
    Case("unbounded-actions", ["--env-id", "tests.fake_envs:UnboundedActions-v0"],
         "unbounded actions; DDPG's actor needs finite bounds"),
    # --- run directories and checkpoints -------------------------------------------------
    Case("resume-nothing", ["--resume", "--run-name", "ghost"], "nothing to resume"),
    Case("existing-run-dir", ["--run-name", "base"], "already exists; pass --resume",
         lambda t, tmp: copy_run(t, tmp) and None),
    Case("resume-changes-network", ["--run-name", "base", "--resume", "--actor-hidden", "64,64"],
         "cannot change --actor-hidden when resuming", lambda t, tmp: copy_run(t, tmp) and None),
    Case("logdir-not-writable", [], "is not a writable directory", logdir_is_a_file),
    Case("corrupted-checkpoint", ["--run-name", "base", "--resume", "--total-steps", "400"],
         "move ckpt-300.* away", corrupt_checkpoint),
    Case("truncated-checkpoint", ["--run-name", "base", "--resume", "--total-steps", "400"],
         "move ckpt-300.* away", truncate_checkpoint),
    Case("checkpoint-other-network", ["--run-name", "base", "--resume", "--total-steps", "400"],
         "does not match this run's configuration", foreign_checkpoint("wide")),
    Case("checkpoint-other-env", ["--run-name", "base", "--resume", "--total-steps", "400"],
         "does not match this run's configuration", foreign_checkpoint("car")),
    Case("corrupted-buffer", ["--run-name", "base", "--resume", "--total-steps", "400"],
         "cannot resume from", corrupt_buffer),
    Case("corrupted-config", ["--run-name", "base", "--resume"], "cannot read", corrupt_config),
    Case("run-dir-is-a-file", ["--run-name", "plain"], "is not a directory",
         lambda t, tmp: ((tmp / "runs").mkdir(), (tmp / "runs" / "plain").write_text("x")) and None),
    Case("resume-below-current-step", ["--run-name", "base", "--resume", "--total-steps", "200"],
         "already at step 300; raise --total-steps", lambda t, tmp: copy_run(t, tmp) and None),
    Case("missing-buffer-file", ["--run-name", "base", "--resume", "--total-steps", "400"],
         "resume with --no-save-buffer",
         lambda t, tmp: (copy_run(t, tmp) / "checkpoints" / "buffer-300.npz").unlink()),
    # --- the evaluate entry point ----------------------------------------------------------
    Case("evaluate-not-a-run", ["nowhere"], "is not a run directory", module="ddpg_tf.evaluate"),
    Case("evaluate-zero-episodes", ["runs/base", "--episodes", "0"], "--episodes must be positive",
         lambda t, tmp: copy_run(t, tmp) and None, module="ddpg_tf.evaluate"),
    Case("evaluate-no-export", ["runs/base"], "pass --checkpoint",
         lambda t, tmp: copy_run(t, tmp) and None, module="ddpg_tf.evaluate"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, trained_runs):
    if case.setup is not None:
        case.setup(trained_runs, tmp_path)
    before = snapshot(tmp_path)
    args = case.args if case.module else [*TINY, "--logdir", str(tmp_path / "runs"), *case.args]
    proc = run(args, tmp_path, case.module)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert case.fragment in lines[0], lines[0]
    assert snapshot(tmp_path) == before, "a bad input changed files"


def test_catalogue_is_large_enough():
    assert len(CASES) >= 25


def test_help_lists_every_config_field(tmp_path):
    proc = run(["--help"], tmp_path)
    assert proc.returncode == 0
    for f in dataclasses.fields(Config):
        assert "--" + f.name.replace("_", "-") in proc.stdout
