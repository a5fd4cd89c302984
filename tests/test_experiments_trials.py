"""The trials of a grid: a trial's command line, and planning (skip finished trials, resume those
with a checkpoint, restart the others) on hand-made run directories."""

from __future__ import annotations

import json
import sys

from ddpg_tf.experiments.overrides import CONFIG_FIELDS
from ddpg_tf.experiments.spec import ExperimentSpec
from ddpg_tf.experiments.trials import plan, trial_command, trials_of


def test_trial_command(tmp_path):
    spec = ExperimentSpec(envs=("ALE/Thing-v5",), styles=("chain-rule",), seeds=(7,), total_steps=500,
                          eval_every=100, eval_episodes=2, overrides={"critic_hidden": (8,)},
                          parallel=2, cpus_per_trial=1.0).resolved("t")
    trial = trials_of(spec)[0]
    assert trial.name == "ALE_Thing-v5__pendulum__chain-rule__seed7"
    cmd = trial_command(spec, trial, tmp_path, threads=1, resume=True)
    assert cmd[:2] == [sys.executable, "-c"]
    flags = cmd[3:]
    pairs = dict(zip(flags, flags[1:], strict=False))
    assert pairs["--env-id"] == "ALE/Thing-v5" and pairs["--actor-update"] == "chain-rule"
    assert pairs["--seed"] == "7" and pairs["--total-steps"] == "500" and pairs["--eval-episodes"] == "2"
    assert pairs["--logdir"] == str(tmp_path / "runs") and pairs["--run-name"] == trial.name
    assert pairs["--critic-hidden"] == "8" and "--no-progress" in flags and flags[-1] == "--resume"
    if "threads" in CONFIG_FIELDS:
        assert pairs["--threads"] == "1"


def test_plan_skips_resumes_and_restarts(tmp_path):
    spec = ExperimentSpec(styles=("direct",), seeds=(0, 1, 2, 3), total_steps=300, eval_every=100,
                          parallel=2, cpus_per_trial=1.0).resolved("p")
    runs = tmp_path / "runs"
    header = "step,return_mean,return_std,episodes\n"
    finished = runs / "Pendulum-v1__pendulum__direct__seed0"
    finished.mkdir(parents=True)
    (finished / "evaluations.csv").write_text(header + "100,-1.0,0.0,1\n300,-2.0,0.0,1\n")
    resumable = runs / "Pendulum-v1__pendulum__direct__seed1"
    (resumable / "checkpoints").mkdir(parents=True)
    (resumable / "config.json").write_text(json.dumps({"threads": 3}))
    (resumable / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-200"\n')
    (resumable / "checkpoints" / "ckpt-200.index").write_bytes(b"")
    (resumable / "evaluations.csv").write_text(header + "100,-1.0,0.0,1\n200,-1.5,0.0,1\n30")  # cut write
    stale = runs / "Pendulum-v1__pendulum__direct__seed2"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    (stale / "evaluations.csv").write_text(header + "100,-1.0,0.0,1\n")

    jobs, done = plan(spec, tmp_path)
    assert [t.name for t in done] == [finished.name]
    assert [(j.name, j.mode) for j in jobs] == [(resumable.name, "resume"), (stale.name, "fresh"),
                                               ("Pendulum-v1__pendulum__direct__seed3", "fresh")]
    assert jobs[0].command[-1] == "--resume" and "--resume" not in jobs[1].command
    assert not stale.exists()  # nothing to continue from: started afresh
    assert finished.exists() and resumable.exists()
    if "threads" in CONFIG_FIELDS:  # a resumed run keeps its saved thread count
        assert jobs[0].threads == 3 and jobs[1].threads == 1
