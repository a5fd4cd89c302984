"""Fault injection: train.py killed with SIGKILL again and again, resumed each time, ends
bit-identical to an uninterrupted run with the same checkpoint schedule."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ddpg_tf._quiet import tf

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--total-steps", "1500", "--learning-starts", "200", "--batch-size", "32",
        "--buffer-size", "3000", "--actor-hidden", "32,32", "--critic-hidden", "32,32",
        "--eval-every", "300", "--eval-episodes", "2", "--checkpoint-every", "100",
        "--log-every", "100", "--seed", "11", "--deterministic", "--no-progress"]
MIN_KILLS = 5


def start(logdir: Path, name: str, resume: bool, kill_at: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DDPG_TF_KILL_AT", None)
    if kill_at:
        env["DDPG_TF_KILL_AT"] = kill_at
    cmd = [sys.executable, str(ROOT / "train.py"), *ARGS, "--logdir", str(logdir), "--run-name", name]
    if resume:
        cmd.append("--resume")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def checkpoint_tensors(run_dir: Path) -> dict[str, np.ndarray]:
    path = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert path is not None and path.endswith("ckpt-1500")
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
            if "save_counter" not in name and "_CHECKPOINTABLE_OBJECT_GRAPH" not in name}


def test_sigkill_and_resume_matches_uninterrupted_run(tmp_path):
    t0 = time.monotonic()
    reference = start(tmp_path, "reference", resume=False)
    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    duration = time.monotonic() - t0  # start-up plus training: kill times scale with it

    rng = random.Random(int(time.time()))
    seed_note = f"(kill schedule seed {rng.random():.6f})"
    # Deterministic kills in the middle of checkpoint writes (side files written, checkpoint
    # not yet), then kills at random moments; resume after each.
    scheduled = ["before-checkpoint:300", "before-checkpoint:800"]
    kills, attempts = 0, 0
    resumed_from: list[int] = []
    run_dir = tmp_path / "faulty"
    while True:
        attempts += 1
        assert attempts < 40, f"no progress after {attempts} attempts {seed_note}"
        resume = (run_dir / "config.json").exists()
        kill_at = scheduled.pop(0) if scheduled else None
        proc = start(tmp_path, "faulty", resume=resume, kill_at=kill_at)
        if kill_at is None and kills < MIN_KILLS:
            try:
                proc.wait(timeout=rng.uniform(0.45, 0.85) * duration)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=600)
        stderr = proc.stderr.read()
        if code == -signal.SIGKILL:
            kills += 1
            latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
            resumed_from.append(int(latest.rsplit("-", 1)[1]) if latest else 0)
            continue
        assert code == 0, f"exit {code}: {stderr} {seed_note}"
        if kills >= MIN_KILLS:
            break
        # Finished before enough kills: move this run aside and start over.
        os.replace(run_dir, tmp_path / f"finished{attempts}")
        kills, resumed_from, scheduled = 0, [], ["before-checkpoint:300", "before-checkpoint:800"]

    # The kills interrupted training at several different points (not all during start-up);
    # the two scheduled kills leave the checkpoints before 300 and 800 as the latest.
    print(f"killed {kills} times; latest checkpoint at each kill: {resumed_from} {seed_note}")
    assert resumed_from[:2] == [200, 700]
    assert len(set(resumed_from)) >= 3, resumed_from
    expected = checkpoint_tensors(tmp_path / "reference")
    actual = checkpoint_tensors(tmp_path / "faulty")
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=f"{name} {seed_note}")
    ref_evals = (tmp_path / "reference" / "evaluations.csv").read_text()
    assert (tmp_path / "faulty" / "evaluations.csv").read_text() == ref_evals
    assert len(ref_evals.splitlines()) == 1 + 5  # header + evaluations at 300..1500
    # Temporary files from killed writes are gone.
    assert not list((tmp_path / "faulty" / "checkpoints").glob(".*"))
