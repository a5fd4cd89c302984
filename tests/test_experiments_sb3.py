"""Side-by-side runs with Stable-Baselines3: translating a Config into SB3's TD3 arguments (and
refusing what SB3 cannot run), SB3 trials in the grid, unpaired library comparisons, and a smoke
run of the SB3 backend (skipped when SB3, the ``bench`` extra, is not installed)."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest

from ddpg_tf.config import preset_config
from ddpg_tf.experiments.results import Group, group_stats
from ddpg_tf.experiments.sb3 import Sb3Unsupported, sb3_settings
from ddpg_tf.experiments.spec import ExperimentSpec, SpecError, validate
from ddpg_tf.experiments.trials import trial_command, trials_of

PENDULUM_BOUNDS = (np.array([-3.0]), np.array([3.0]))  # InvertedPendulum's action range


def test_td3_authors_settings_in_sb3_units():
    """Absolute noise becomes SB3's [-1, 1] units (divided by the half range 3); training during
    the warm-up keeps 1k random steps apart from learning_starts 0; episode-end bursts."""
    s = sb3_settings(preset_config("td3", "InvertedPendulum-v5"), *PENDULUM_BOUNDS)
    np.testing.assert_allclose(s["action_noise"]["sigma"], [0.1 / 3])
    assert s["target_policy_noise"] == pytest.approx(0.2 / 3)
    assert s["target_noise_clip"] == pytest.approx(0.5 / 3)
    assert (s["learning_starts"], s["warmup_steps"], s["train_freq"], s["gradient_steps"]) == (
        0, 1_000, (1, "episode"), -1)
    assert (s["batch_size"], s["policy_delay"], s["final_init"]) == (100, 2, "fan-in")
    assert s["policy_kwargs"] == {"net_arch": {"pi": [400, 300], "qf": [400, 300]}, "n_critics": 2,
                                  "optimizer_kwargs": {"eps": 1e-8}}


def test_sb3_presets_are_sb3_defaults():
    s = sb3_settings(preset_config("td3-sb3", "InvertedPendulum-v5"), *PENDULUM_BOUNDS)
    assert s["action_noise"] is None and s["target_policy_noise"] == 0.2 and s["target_noise_clip"] == 0.5
    values = (s["learning_starts"], s["batch_size"], s["train_freq"], s["gradient_steps"])
    assert values == (100, 256, (1, "step"), 1)
    ddpg = sb3_settings(preset_config("ddpg-sb3", "Pendulum-v1"), np.array([-2.0]), np.array([2.0]))
    assert (ddpg["policy_kwargs"]["n_critics"], ddpg["policy_delay"], ddpg["target_policy_noise"],
            ddpg["gamma"], ddpg["buffer_size"]) == (1, 1, 0.0, 0.98, 200_000)
    np.testing.assert_allclose(ddpg["action_noise"]["sigma"], [0.1])


@pytest.mark.parametrize("changes, what", [
    ({}, "Adam's epsilon before bias correction"),
    ({"adam_epsilon_placement": "torch", "obs_norm": True}, "observation normalisation"),
    ({"adam_epsilon_placement": "torch", "actor_lr": 1e-4}, "different actor and critic learning rates"),
    ({"adam_epsilon_placement": "torch", "critic_action_layer": 1}, "the action joining the critic"),
])
def test_settings_sb3_cannot_run_are_refused(changes, what):
    with pytest.raises(Sb3Unsupported, match=what):
        sb3_settings(preset_config("pendulum").replace(**changes), np.array([-2.0]), np.array([2.0]))


def test_absolute_target_noise_needs_equal_ranges():
    config = preset_config("td3", "Reacher-v5")
    with pytest.raises(Sb3Unsupported, match="equal action ranges"):
        sb3_settings(config, np.array([-1.0, -2.0]), np.array([1.0, 2.0]))


def test_sb3_trials_and_their_commands(tmp_path):
    spec = ExperimentSpec(envs=("InvertedPendulum-v5",), presets=("td3",), styles=("direct",),
                          libraries=("ddpg-tf", "sb3"), seeds=(0, 1), total_steps=3000, eval_every=1000,
                          parallel=2, cpus_per_trial=1.0).resolved("s")
    validate(spec)
    names = [t.name for t in trials_of(spec)]
    assert names == ["InvertedPendulum-v5__td3__direct__seed0", "InvertedPendulum-v5__td3__direct__seed1",
                     "InvertedPendulum-v5__td3__sb3__seed0", "InvertedPendulum-v5__td3__sb3__seed1"]
    ours, sb3 = (trial_command(spec, trials_of(spec)[i], tmp_path, threads=1, resume=True) for i in (0, 2))
    assert "run_sb3_child" not in ours[2] and "library='sb3'" in sb3[2] and sb3[0] == sys.executable
    for cmd in (ours, sb3):  # the env-dependent warm-up is passed explicitly to both libraries
        pairs = dict(zip(cmd[3:], cmd[4:], strict=False))
        assert pairs["--learning-starts"] == "1000" and pairs["--preset"] == "td3"
    assert ours[-1] == sb3[-1] == "--resume"  # SB3 trials resume from their own checkpoints


def test_a_grid_sb3_cannot_run_is_refused_before_it_starts():
    spec = ExperimentSpec(libraries=("ddpg-tf", "sb3"), parallel=1, cpus_per_trial=1.0).resolved("x")
    with pytest.raises(SpecError, match="library sb3, env Pendulum-v1, preset pendulum: SB3 cannot run"):
        validate(spec)


def test_libraries_are_compared_unpaired():
    """Same seed numbers, but seed k of SB3 is not seed k of ddpg-tf: unpaired, unlike styles."""
    group = Group("E", "p", ("direct", "chain-rule", "sb3"), {
        "direct": {0: {10: 1.0}, 1: {10: 2.0}, 2: {10: 3.0}},
        "chain-rule": {0: {10: 1.5}, 1: {10: 2.5}, 2: {10: 3.5}},
        "sb3": {0: {10: 1.5}, 1: {10: 2.5}, 2: {10: 3.5}},
    })
    designs = {(c["a"], c["b"]): (c["design"], c["verdict"]) for c in group_stats(group, [10])["comparisons"]}
    assert designs[("direct", "chain-rule")] == ("paired", "differ")
    assert designs[("direct", "sb3")][0] == "unpaired" and designs[("direct", "sb3")][1] != "differ"


def test_sb3_backend_smoke(tmp_path):
    """A 300-step SB3 trial through the runner: ddpg-tf's evaluation rows and protocol."""
    pytest.importorskip("stable_baselines3")
    from ddpg_tf.experiments.run import main

    out = tmp_path / "out"
    code = main(["--envs", "Pendulum-v1", "--presets", "ddpg-sb3", "--libraries", "sb3", "--styles", "direct",
                 "--seeds", "0", "--total-steps", "300", "--eval-every", "100", "--eval-episodes", "1",
                 "--set", "actor_hidden=16,16", "--set", "critic_hidden=16,16", "--set", "batch_size=32",
                 "--set", "learning_starts=100", "--parallel", "1", "--out", str(out)])
    assert code == 0
    run = out / "runs" / "Pendulum-v1__ddpg-sb3__sb3__seed0"
    with (run / "evaluations.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["step", "return_mean", "return_std", "episodes"]
    assert [r[0] for r in rows[1:]] == ["100", "200", "300"] and all(r[3] == "1" for r in rows[1:])
    assert all(-2000 < float(r[1]) < 0 for r in rows[1:])  # Pendulum returns of 200-step episodes
    record = json.loads((run / "sb3.json").read_text())
    assert record["sb3_arguments"]["policy_kwargs"]["net_arch"] == {"pi": [16, 16], "qf": [16, 16]}
    assert record["sb3_arguments"]["learning_starts"] == 100 and record["config"]["seed"] == 0
    assert "sb3" in (out / "summary.md").read_text()


@pytest.mark.parametrize("preset", ["ddpg-sb3", "td3"])  # every-step and episode-end updates
def test_a_resumed_sb3_trial_is_the_uninterrupted_one(tmp_path, preset):
    """Checkpoints at the episode ends at or after 400, 800 and 1200 steps (Pendulum's episodes
    are 200 steps). A run that lost its 1200 checkpoint (killed before it was written) resumes
    from 800 and writes the same 1200 checkpoint (weights, Adam states, replay rows, generators)
    and the same evaluations as the run that was never stopped."""
    pytest.importorskip("stable_baselines3")
    import pickle
    import shutil
    import zipfile

    from ddpg_tf.experiments.sb3 import run_sb3_child
    from ddpg_tf.experiments.sb3_checkpoints import CHECKPOINTS, latest_checkpoint
    from ddpg_tf.experiments.trials import EVAL_HEADER, has_checkpoint

    run = tmp_path / "run"
    flags = ["--preset", preset, "--env-id", "Pendulum-v1", "--seed", "3", "--total-steps", "1400",
             "--eval-every", "200", "--eval-episodes", "1", "--checkpoint-every", "400",
             "--keep-checkpoints", "5", "--actor-hidden", "16,16", "--critic-hidden", "16,16",
             "--batch-size", "32", "--learning-starts", "300", "--threads", "1", "--no-progress",
             "--logdir", str(tmp_path), "--run-name", "run"]
    assert run_sb3_child(flags, EVAL_HEADER) == 0
    steps = sorted(p.name for p in (run / CHECKPOINTS).iterdir())
    assert steps == ["step-000000400", "step-000000800", "step-000001200"]
    whole = (run / "evaluations.csv").read_text()
    assert [line.split(",")[0] for line in whole.splitlines()[1:]] == [str(200 * k) for k in range(1, 8)]
    kept = tmp_path / "uninterrupted-1200"
    shutil.move(run / CHECKPOINTS / "step-000001200", kept)
    assert has_checkpoint(run) and latest_checkpoint(run).name == "step-000000800"

    assert run_sb3_child([*flags, "--resume"], EVAL_HEADER) == 0
    assert (run / "evaluations.csv").read_text() == whole
    again = run / CHECKPOINTS / "step-000001200"
    with zipfile.ZipFile(kept / "model.zip") as a, zipfile.ZipFile(again / "model.zip") as b:
        for name in ("policy.pth", "actor.optimizer.pth", "critic.optimizer.pth"):
            assert a.read(name) == b.read(name), name
    with np.load(kept / "replay.npz") as a, np.load(again / "replay.npz") as b:
        assert sorted(a.files) == sorted(b.files) and int(a["pos"]) == 1200
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    with (kept / "state.pkl").open("rb") as fa, (again / "state.pkl").open("rb") as fb:
        sa, sb = pickle.load(fa), pickle.load(fb)
    assert sa["action_space"] == sb["action_space"] and sa["eval_env"] == sb["eval_env"]
    assert sa["torch"].equal(sb["torch"]) and np.array_equal(sa["numpy"][1], sb["numpy"][1])


def test_resume_without_an_sb3_checkpoint_is_a_usage_error(tmp_path, capsys):
    pytest.importorskip("stable_baselines3")
    from ddpg_tf.experiments.sb3 import run_sb3_child
    from ddpg_tf.experiments.trials import EVAL_HEADER

    flags = ["--preset", "ddpg-sb3", "--env-id", "Pendulum-v1", "--total-steps", "400",
             "--logdir", str(tmp_path), "--run-name", "none", "--resume"]
    assert run_sb3_child(flags, EVAL_HEADER) == 2
    assert "nothing to resume" in capsys.readouterr().err
