"""Fault injection through ``train.py``: a run killed with SIGKILL again and again, or stopped
with SIGINT and SIGTERM, and resumed each time, ends bit-identical to an uninterrupted run with
the same checkpoint schedule: the Python loop (``--no-in-graph``) and the in-graph loop.

The kills land at points chosen by training progress (``DDPG_TF_KILL_AT=where:step``, see
:mod:`ddpg_tf.faults`): in the middle of training, and inside each part of a checkpoint write.
So the test checks the same thing on any machine, however loaded. One more kill lands at a
random moment; whatever it hits (start-up, training, a write, the export, or nothing because
the run had finished), the outcome must be the same, so that part cannot depend on speed
either.
"""

from __future__ import annotations

import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ddpg_tf._quiet import tf
from ddpg_tf.checkpointing import Checkpointer

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--total-steps", "1500", "--learning-starts", "200", "--batch-size", "32",
        "--buffer-size", "3000", "--actor-hidden", "32,32", "--critic-hidden", "32,32",
        "--eval-every", "300", "--eval-episodes", "2", "--checkpoint-every", "100",
        "--log-every", "100", "--seed", "11", "--deterministic", "--no-progress"]
KILLS = [  # (where DDPG_TF_KILL_AT kills, the latest checkpoint left)
    ("before-checkpoint:300", 200),  # side files of 300 written, checkpoint not yet
    ("step:550", 500),               # in the middle of training
    ("buffer:800", 700),             # while the buffer of 800 is written
    ("step:1050", 1000),             # resumes from a step with gradient diagnostics (diag_every 1000)
    ("extras:1400", 1300),           # while the side file of 1400 is written
]


IN_GRAPH_KILLS = [  # the in-graph loop stops only at log/checkpoint steps (multiples of 100)
    ("step:500", 500),               # after the iteration ending at 500 (its checkpoint written)
    ("buffer:800", 700),             # while the buffer of 800 is written
]


def start(logdir: Path, name: str, resume: bool, kill_at: str | None = None,
          command: list[str] | None = None, loop: str = "--no-in-graph") -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DDPG_TF_KILL_AT", None)
    if kill_at:
        env["DDPG_TF_KILL_AT"] = kill_at
    if command is None:
        command = [sys.executable, str(ROOT / "train.py"), *ARGS, loop, "--logdir", str(logdir),
                   "--run-name", name]
        command += ["--resume"] if resume else []
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    code = proc.wait(timeout=600)
    return code, proc.stderr.read()


def latest(run_dir: Path) -> int | None:
    steps, problem = Checkpointer(run_dir, {}, 3).listed_steps()
    assert problem is None
    return steps[-1] if steps else None


def checkpoint_tensors(run_dir: Path) -> dict[str, np.ndarray]:
    path = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert path is not None and path.endswith("ckpt-1500")
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
            if "save_counter" not in name and "_CHECKPOINTABLE_OBJECT_GRAPH" not in name}


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """Every variable of the final checkpoint, the replay buffer and every evaluation equal."""
    expected, actual = checkpoint_tensors(reference), checkpoint_tensors(run_dir)
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)
    buffer = "checkpoints/buffer-1500.npz"
    with np.load(reference / buffer) as ref, np.load(run_dir / buffer) as got:
        for key in ref.files:
            np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    ref_evals = (reference / "evaluations.csv").read_text()
    assert (run_dir / "evaluations.csv").read_text() == ref_evals
    assert len(ref_evals.splitlines()) == 1 + 5  # header + evaluations at 300..1500
    assert not list((run_dir / "checkpoints").glob(".*"))  # no temporary files left


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run."""
    logdir = tmp_path_factory.mktemp("reference")
    code, stderr = finish(start(logdir, "reference", resume=False))
    assert code == 0, stderr
    return logdir / "reference"


def test_sigkill_and_resume_matches_uninterrupted_run(tmp_path, reference):
    run_dir = tmp_path / "faulty"
    left: list[int | None] = []
    for kill_at, _ in KILLS:
        code, stderr = finish(start(tmp_path, "faulty", resume=run_dir.exists(), kill_at=kill_at))
        assert code == -signal.SIGKILL, f"{kill_at}: exit {code}: {stderr}"
        left.append(latest(run_dir))
    assert left == [kept for _, kept in KILLS]

    # A kill at a random moment of the next resume: whatever it hits, the end is the same.
    seed = int(time.time())
    proc = start(tmp_path, "faulty", resume=True)
    try:
        proc.wait(timeout=random.Random(seed).uniform(0.0, 15.0))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    code, stderr = finish(proc)
    assert code in (0, -signal.SIGKILL), f"exit {code}: {stderr} (random kill seed {seed})"
    if code != 0:
        code, stderr = finish(start(tmp_path, "faulty", resume=True))
        assert code == 0, f"exit {code}: {stderr} (random kill seed {seed})"
    assert_same_run(run_dir, reference)


def test_sigint_and_sigterm_stop_with_a_checkpoint_and_the_printed_command_resumes(tmp_path, reference):
    """Ctrl-C at step 599 (and a second Ctrl-C inside the checkpoint write at 600), then SIGTERM
    at step 1099 of the resumed run; each stop ends at the next step boundary, a checkpoint
    step, with exit status 130 / 143 and one line holding the command that continues."""
    run_dir = tmp_path / "stopped"
    command = None
    stops = [("step:599:SIGINT,before-checkpoint:600:SIGINT", 600, 130, "SIGINT"),
             ("step:1099:SIGTERM", 1100, 143, "SIGTERM")]
    for kill_at, stop_step, status, name in stops:
        code, stderr = finish(start(tmp_path, "stopped", resume=False, kill_at=kill_at, command=command))
        assert code == status, stderr
        lines = stderr.strip().splitlines()
        assert lines == [f"interrupted by {name} at step {stop_step}; checkpoint {run_dir}/checkpoints/"
                         f"ckpt-{stop_step} is complete; continue with: python {ROOT / 'train.py'} --logdir "
                         f"{tmp_path} --run-name stopped --resume"], stderr
        assert latest(run_dir) == stop_step
        assert not list((run_dir / "checkpoints").glob(".*")) and not (run_dir / "export").exists()
        command = shlex.split(lines[0].split("continue with: ", 1)[1])
        command[0] = sys.executable  # the printed command, run with this interpreter
    code, stderr = finish(start(tmp_path, "stopped", resume=True, command=command))
    assert code == 0, stderr
    assert_same_run(run_dir, reference)


def test_in_graph_sigkill_and_resume_matches_uninterrupted_run(tmp_path):
    """The same with the whole loop in one graph: the environment state and episodes in
    progress are checkpoint variables, and the resumed run ends bit-identical."""
    code, stderr = finish(start(tmp_path, "reference", resume=False, loop="--in-graph"))
    assert code == 0, stderr
    run_dir = tmp_path / "faulty"
    left: list[int | None] = []
    for kill_at, _ in IN_GRAPH_KILLS:
        code, stderr = finish(start(tmp_path, "faulty", resume=run_dir.exists(), kill_at=kill_at,
                                    loop="--in-graph"))
        assert code == -signal.SIGKILL, f"{kill_at}: exit {code}: {stderr}"
        left.append(latest(run_dir))
    assert left == [kept for _, kept in IN_GRAPH_KILLS]
    code, stderr = finish(start(tmp_path, "faulty", resume=True, loop="--in-graph"))
    assert code == 0, stderr
    assert_same_run(run_dir, tmp_path / "reference")
