"""Bad input on the command line ends with exit status 2, one line on stderr, and no files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*"))}


def assert_usage_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert fragment in lines[0], lines[0]


BAD_FLAGS = [
    (["--tau", "0"], "--tau must be in (0, 1]"),
    (["--tau", "1.5"], "--tau must be in (0, 1]"),
    (["--actor-lr", "0"], "--actor-lr must be positive"),
    (["--critic-lr", "-0.001"], "--critic-lr must be positive"),
    (["--batch-size", "512", "--buffer-size", "100"], "larger than --buffer-size"),
    (["--preset", "nope"], "invalid choice: 'nope'"),
    (["--actor-update", "sideways"], "invalid choice: 'sideways'"),
    (["--total-steps", "abc"], "invalid int value"),
    (["--total-steps", "0"], "--total-steps must be a positive integer"),
    (["--gamma", "1.5"], "--gamma must be in [0, 1]"),
    (["--actor-hidden", "64,x"], "expected layer sizes"),
    (["--critic-hidden", "64", "--critic-action-layer", "1"], "--critic-action-layer 1 must be smaller"),
    (["--tau", "nan"], "expected a finite number"),
    (["--no-such-flag"], "unrecognized arguments"),
    (["--noise", "pink"], "invalid choice: 'pink'"),
]


@pytest.mark.parametrize("args,fragment", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flag_exits_2(tmp_path, args, fragment):
    proc = run_train([*args, "--logdir", str(tmp_path / "runs")], tmp_path)
    assert_usage_error(proc, fragment)
    assert not (tmp_path / "runs").exists()


BAD_ENVS = [
    ("NoSuchEnv-v0", "cannot make environment 'NoSuchEnv-v0'"),
    ("CartPole-v1", "Discrete action space; DDPG needs continuous"),
]


@pytest.mark.parametrize("env_id,fragment", BAD_ENVS)
def test_bad_env_exits_2(tmp_path, env_id, fragment):
    proc = run_train(["--env-id", env_id, "--logdir", str(tmp_path / "runs")], tmp_path)
    assert_usage_error(proc, fragment)
    assert not (tmp_path / "runs").exists()


def test_resume_with_nothing_to_resume(tmp_path):
    proc = run_train(["--resume", "--logdir", str(tmp_path / "runs")], tmp_path)
    assert_usage_error(proc, "nothing to resume")
    assert not (tmp_path / "runs").exists()


def test_existing_run_dir_is_never_overwritten(tmp_path):
    run_dir = tmp_path / "runs" / "mine"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    before = snapshot(tmp_path)
    proc = run_train(["--logdir", str(tmp_path / "runs"), "--run-name", "mine"], tmp_path)
    assert_usage_error(proc, "already exists; pass --resume")
    assert snapshot(tmp_path) == before


def test_resume_cannot_change_architecture(tmp_path):
    run_dir = tmp_path / "runs" / "mine"
    run_dir.mkdir(parents=True)
    from ddpg_tf.config import Config

    (run_dir / "config.json").write_text(Config(logdir=str(tmp_path / "runs"), run_name="mine").to_json())
    before = snapshot(tmp_path)
    proc = run_train(["--logdir", str(tmp_path / "runs"), "--run-name", "mine", "--resume",
                      "--actor-hidden", "64,64"], tmp_path)
    assert_usage_error(proc, "cannot change --actor-hidden when resuming")
    assert snapshot(tmp_path) == before


def test_help_lists_every_config_field(tmp_path):
    from ddpg_tf.config import Config
    import dataclasses

    proc = run_train(["--help"], tmp_path)
    assert proc.returncode == 0
    for f in dataclasses.fields(Config):
        assert "--" + f.name.replace("_", "-") in proc.stdout
