"""End-to-end tests of the training loop: reproducibility, resume, TensorBoard, export.

All runs are short Pendulum-v1 runs (200-step episodes) with small networks.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from ddpg_tf._quiet import tf
from ddpg_tf.config import Config
from ddpg_tf.replay_buffer import read_saved_transitions
from ddpg_tf.training import train

REQUIRED_TAGS = {
    "train/episode_return", "train/episode_length", "eval/return_mean", "eval/return_std",
    "loss/critic", "loss/actor", "q/mean", "grad/actor_norm", "grad/critic_norm",
    "grad/dqda_norm", "perf/steps_per_second", "hist/q", "hist/policy_actions",
    "hist/env_actions", "config",
}


def small_config(tmp_path: Path, run_name: str, **overrides) -> Config:
    base = Config(
        total_steps=600, learning_starts=200, batch_size=32, buffer_size=2_000,
        actor_hidden=(32, 32), critic_hidden=(32, 32), eval_every=200, eval_episodes=2,
        log_every=100, checkpoint_every=0, progress=False, export=False,
        logdir=str(tmp_path), run_name=run_name, seed=3,
        in_graph=False,  # this module pins the Python loop; tests/test_in_graph.py the in-graph one
    )
    return base.replace(**overrides).validate()


def weights(result) -> list[np.ndarray]:
    agent = result.agent
    models = (agent.actor, agent.critic, agent.actor_target, agent.critic_target)
    return [w for m in models for w in m.get_weights()]


def assert_same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def read_events(run_dir: Path) -> dict[str, list[tuple[int, float | None]]]:
    """Every tag in the run's event files -> [(step, scalar value or None)], via TensorBoard's
    own event reader."""
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    out: dict[str, list[tuple[int, float | None]]] = {}
    for tag in acc.Tags()["tensors"]:
        events = acc.Tensors(tag)
        values = []
        for e in events:
            arr = tf.make_ndarray(e.tensor_proto)
            values.append((e.step, float(arr) if arr.ndim == 0 and arr.dtype != object else None))
        out[tag] = values
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    return train(small_config(tmp, "full", checkpoint_every=400, export=True))


def test_same_seed_gives_identical_run(tmp_path, uninterrupted):
    again = train(small_config(tmp_path, "again", checkpoint_every=400))
    assert len(uninterrupted.episode_returns) == 3
    assert again.episode_returns == uninterrupted.episode_returns
    assert again.evaluations == uninterrupted.evaluations
    assert_same_weights(weights(again), weights(uninterrupted))


def test_other_seed_differs(tmp_path, uninterrupted):
    other = train(small_config(tmp_path, "other", seed=4))
    assert other.episode_returns != uninterrupted.episode_returns


def test_resume_matches_uninterrupted_run(tmp_path, uninterrupted):
    first = train(small_config(tmp_path, "split", total_steps=400, checkpoint_every=400))
    assert first.steps == 400
    resumed = train(small_config(tmp_path, "split", total_steps=600, resume=True),
                    given={"total_steps", "resume"})
    assert resumed.steps == 600
    # Same weights, same evaluation, same post-resume episode return.
    assert_same_weights(weights(resumed), weights(uninterrupted))
    assert resumed.evaluations == [e for e in uninterrupted.evaluations if e[0] > 400]
    assert resumed.episode_returns == uninterrupted.episode_returns[2:]
    # The losses logged after the resume equal the uninterrupted run's.
    full = read_events(uninterrupted.run_dir)
    split = read_events(tmp_path / "split")
    for tag in ("loss/critic", "loss/actor", "q/mean", "grad/dqda_norm"):
        after = [v for v in full[tag] if v[0] > 400]
        assert after and [v for v in split[tag] if v[0] > 400] == after


def test_tensorboard_has_required_tags(uninterrupted):
    events = read_events(uninterrupted.run_dir)
    missing = REQUIRED_TAGS - set(events)
    assert not missing, f"missing tags: {sorted(missing)}"
    assert [s for s, _ in events["eval/return_mean"]] == [200, 400, 600]
    assert [v for _, v in events["train/episode_length"]] == [200.0, 200.0, 200.0]
    returns = [v for _, v in events["train/episode_return"]]
    np.testing.assert_allclose(returns, uninterrupted.episode_returns, rtol=1e-6)


def test_config_and_evaluations_written(uninterrupted):
    saved = json.loads((uninterrupted.run_dir / "config.json").read_text())
    assert Config.from_dict(saved) == small_config(Path(saved["logdir"]), "full",
                                                   checkpoint_every=400, export=True)
    rows = (uninterrupted.run_dir / "evaluations.csv").read_text().splitlines()
    assert rows[0] == "step,return_mean,return_std,episodes"
    assert [int(r.split(",")[0]) for r in rows[1:]] == [200, 400, 600]


def test_exported_actor_loads_without_this_package(uninterrupted):
    obs = np.array([[0.3, -0.9, 1.7], [1.0, 0.0, -8.0]], np.float32)
    expected = np.stack([uninterrupted.agent.act(o, explore=False) for o in obs])
    export = uninterrupted.run_dir / "export"
    script = textwrap.dedent(f"""
        import os, sys, json
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        sys.modules["ddpg_tf"] = None  # any import of this package would fail
        import numpy as np, keras, tensorflow as tf
        obs = np.array({obs.tolist()}, np.float32)
        a = keras.models.load_model({str(export / 'actor.keras')!r}, compile=False)(obs)
        loaded = tf.saved_model.load({str(export / 'actor_savedmodel')!r})  # keep a reference
        b = loaded.serve(obs)
        print(json.dumps([np.asarray(a).tolist(), np.asarray(b).tolist()]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd="/")
    from_keras, from_saved = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(from_keras, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(from_saved, expected, rtol=1e-6, atol=1e-7)


def test_evaluate_entry_point(uninterrupted):
    from ddpg_tf.evaluate import main, run

    returns = run(uninterrupted.run_dir, episodes=2, seed=5)
    assert returns.shape == (2,) and np.all(returns < 0)  # Pendulum rewards are <= 0
    from_ckpt = run(uninterrupted.run_dir, episodes=2, seed=5, from_checkpoint=True)
    np.testing.assert_allclose(from_ckpt, returns, rtol=1e-6)
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main([str(uninterrupted.run_dir), "--episodes", "2", "--seed", "5"]) == 0
    assert buf.getvalue().startswith(f"return {returns.mean():.2f} ± {returns.std():.2f} over 2 episodes")


def test_checkpoint_rotation_keeps_side_files_in_step(tmp_path):
    result = train(small_config(tmp_path, "rot", total_steps=600, checkpoint_every=200,
                                keep_checkpoints=2, eval_every=0))
    ckdir = result.run_dir / "checkpoints"
    assert sorted(p.name for p in ckdir.glob("extras-*.json")) == ["extras-400.json", "extras-600.json"]
    assert sorted(p.name for p in ckdir.glob("buffer-*.npz")) == ["buffer-400.npz", "buffer-600.npz"]
    assert sorted(p.name for p in ckdir.glob("ckpt-*.index")) == ["ckpt-400.index", "ckpt-600.index"]


def test_resume_before_first_checkpoint_starts_from_scratch(tmp_path, uninterrupted):
    """A run killed before its first checkpoint leaves only config.json: --resume reruns it
    from step 0 in the same directory, giving the uninterrupted result."""
    config = small_config(tmp_path, "early", checkpoint_every=400)
    run_dir = tmp_path / "early"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(config.to_json())
    resumed = train(config.replace(resume=True), given={"resume"})
    assert resumed.episode_returns == uninterrupted.episode_returns
    assert_same_weights(weights(resumed), weights(uninterrupted))


def test_checkpoint_mid_episode_cuts_the_episode(tmp_path):
    """Resume rule: a checkpoint ends the episode in progress, as a truncation; a run resumed
    from a mid-episode checkpoint equals the uninterrupted run with the same schedule."""
    full = train(small_config(tmp_path, "cut", checkpoint_every=300, total_steps=500))
    # Episodes: 200, 100 (cut at the step-300 checkpoint), 200.
    assert len(full.episode_returns) == 3
    first = train(small_config(tmp_path, "cut2", checkpoint_every=300, total_steps=300))
    resumed = train(small_config(tmp_path, "cut2", checkpoint_every=300, total_steps=500, resume=True),
                    given={"total_steps", "resume"})
    assert first.episode_returns + resumed.episode_returns == full.episode_returns
    assert_same_weights(weights(resumed), weights(full))
    data = read_saved_transitions(tmp_path / "cut" / "checkpoints" / "buffer-500.npz")
    assert np.flatnonzero(data.truncated[:, 0]).tolist() == [199, 299, 499]
    assert not data.terminated.any()


def test_fused_loop_gives_the_same_run(tmp_path, uninterrupted):
    """The fused update-and-act call computes exactly the numbers of train_step then act."""
    other = train(small_config(tmp_path, "unfused", checkpoint_every=400, fuse_act=False))
    assert other.episode_returns == uninterrupted.episode_returns
    assert_same_weights(weights(other), weights(uninterrupted))


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 1e-5)])
def test_compiled_xla_and_eager_train_steps_agree(dtype, rtol):
    """Three updates from identical weights on identical batches: the tf.function, XLA and
    eager steps agree to the stated relative tolerance (they may round differently)."""
    from ddpg_tf.agent import DDPGAgent
    from ddpg_tf.replay_buffer import Batch

    rng = np.random.default_rng(0)
    batches = [Batch(rng.normal(size=(32, 3)).astype(dtype), rng.uniform(-2, 2, (32, 1)).astype(dtype),
                     rng.normal(size=(32, 1)).astype(dtype), rng.normal(size=(32, 3)).astype(dtype),
                     (rng.random((32, 1)) < 0.1).astype(dtype), np.zeros((32, 1), dtype))
               for _ in range(3)]
    results = {}
    for mode, overrides in {"compiled": {}, "xla": {"jit_compile": True}, "eager": {"eager": True}}.items():
        cfg = Config(dtype=dtype, actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=32,
                     buffer_size=64, **overrides).validate()
        agent = DDPGAgent(cfg, 3, np.array([-2.0]), np.array([2.0]))
        losses_seen = [float(agent.train_step(b)["loss/critic"]) for b in batches]
        results[mode] = (losses_seen, [w for m in (agent.actor, agent.critic, agent.actor_target,
                                                   agent.critic_target) for w in m.get_weights()])
    ref_losses, ref_weights = results["compiled"]
    for mode in ("xla", "eager"):
        got_losses, got_weights = results[mode]
        np.testing.assert_allclose(got_losses, ref_losses, rtol=rtol)
        for x, y in zip(got_weights, ref_weights, strict=True):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * 1e-2)


def test_following_the_damaged_checkpoint_advice_resumes_from_the_previous_one(tmp_path):
    train(small_config(tmp_path, "adv", total_steps=400, checkpoint_every=200, eval_every=0))
    ckdir = tmp_path / "adv" / "checkpoints"
    aside = tmp_path / "aside"
    aside.mkdir()
    for f in ckdir.glob("ckpt-400.*"):
        f.rename(aside / f.name)
    resumed = train(small_config(tmp_path, "adv", total_steps=600, checkpoint_every=200, eval_every=0,
                                 resume=True), given={"total_steps", "resume"})
    assert resumed.steps == 600
    assert len(resumed.episode_returns) == 2  # steps 200..600: two episodes
