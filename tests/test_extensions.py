"""TD3, n-step returns, observation normalisation and adaptive parameter noise.

Each option is pinned against a hand computation: exact TD targets, the exact policy-delay
schedule, running statistics equal to NumPy's, the exported policy equal to the agent's, the
exact std adaptation rule, and bit-identical resume with every option on at once.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from ddpg_tf import losses
from ddpg_tf._quiet import tf
from ddpg_tf.agent import DDPGAgent
from ddpg_tf.config import PRESETS, Config
from ddpg_tf.noise import AdaptiveParamNoise, ClippedGaussian
from ddpg_tf.normalization import EPSILON, ObservationNormalizer, normalizing_policy
from ddpg_tf.replay_buffer import Batch, NStepWindow, ReplayBuffer, read_saved_transitions
from ddpg_tf.training import train
from tests.test_training import assert_same_weights, small_config

LOW, HIGH = np.array([-2.0, -1.0]), np.array([2.0, 3.0])


def agent_for(**overrides) -> DDPGAgent:
    settings = dict(actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=8, buffer_size=64,
                    dtype="float64")
    cfg = Config(**{**settings, **overrides}).validate()
    return DDPGAgent(cfg, 3, LOW, HIGH)


def random_batch(n: int = 8, seed: int = 0, n_step: bool = False) -> Batch:
    rng = np.random.default_rng(seed)
    steps = tf.constant(rng.integers(1, 4, (n, 1)), tf.float64) if n_step else None
    return Batch(*(tf.constant(x, tf.float64) for x in (
        rng.normal(size=(n, 3)), rng.uniform(LOW, HIGH, (n, 2)), rng.normal(size=(n, 1)),
        rng.normal(size=(n, 3)), (rng.random((n, 1)) < 0.3), np.zeros((n, 1)))), steps)


def model_weights(*models: keras.Model) -> list[np.ndarray]:
    return [w for m in models for w in m.get_weights()]


# ======================================================================================
# n-step returns
# ======================================================================================
def brute_force_n_step(rewards, next_obs, terminated_at_end, n, gamma):
    """The n-step transition starting at every t of one episode, computed from scratch."""
    T = len(rewards)
    out = []
    for t in range(T):
        m = min(n, T - t)
        ret = sum(gamma ** k * rewards[t + k] for k in range(m))
        last = t + m - 1
        out.append((ret, next_obs[last], terminated_at_end and last == T - 1, m))
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("ending", ["terminated", "truncated"])
def test_n_step_window_matches_brute_force(n, ending):
    gamma = 0.9
    rng = np.random.default_rng(n)
    T = 7
    obs = rng.normal(size=(T + 1, 2))
    rewards = rng.normal(size=T)
    window = NStepWindow(n, gamma)
    emitted = []
    for t in range(T):
        end = t == T - 1
        emitted += window.push(obs[t], np.array([t]), rewards[t], obs[t + 1],
                               terminated=end and ending == "terminated",
                               truncated=end and ending == "truncated")
    assert len(window) == 0
    expected = brute_force_n_step(rewards, obs[1:], ending == "terminated", n, gamma)
    assert len(emitted) == T  # every step stored once, as the start of one window
    for t, (got, (ret, nxt, term, m)) in enumerate(zip(emitted, expected, strict=True)):
        o, a, r, next_o, terminated, truncated, steps = got
        assert a[0] == t and np.array_equal(o, obs[t])
        assert r == pytest.approx(ret, rel=1e-14)
        assert np.array_equal(next_o, nxt) and terminated == term and steps == m
        # Only the episode's final window carries its end flags; every window reaching the
        # episode end bootstraps (or not) from the final state.
        assert truncated == (ending == "truncated" and t + m == T)


def test_n_step_window_flush_cuts_like_a_truncation():
    window = NStepWindow(3, 0.5)
    for t in range(4):
        window.push(np.array([t]), np.array([0.0]), 1.0, np.array([t + 1]), False, False)
    rows = window.flush()
    assert [(r[2], r[3][0], r[4], r[5], r[6]) for r in rows] == [(1.5, 4, False, True, 2),
                                                                 (1.0, 4, False, True, 1)]


def test_n_step_td_target_exact():
    r = tf.constant([[1.0], [2.0], [3.0]], tf.float64)
    done = tf.constant([[0.0], [1.0], [0.0]], tf.float64)
    q = tf.constant([[10.0], [10.0], [10.0]], tf.float64)
    m = tf.constant([[3.0], [2.0], [1.0]], tf.float64)
    y = losses.n_step_td_target(r, done, q, 0.5, m).numpy()
    np.testing.assert_array_equal(y, [[1.0 + 0.125 * 10], [2.0], [3.0 + 5.0]])
    np.testing.assert_array_equal(losses.n_step_td_target(r, done, q, 0.9, tf.ones_like(m)),
                                  losses.td_target(r, done, q, 0.9))


def test_n_step_training_stores_n_step_rows(tmp_path):
    """Pendulum episodes are 200 steps; with n = 3 and a checkpoint at 300 (mid-episode, which
    cuts it), every step is stored once and rows near an episode end hold fewer steps."""
    cfg = small_config(tmp_path, "nstep", total_steps=300, checkpoint_every=300, n_step=3,
                       gamma=0.9, eval_every=0)
    train(cfg)
    data = read_saved_transitions(tmp_path / "nstep" / "checkpoints" / "buffer-300.npz")
    steps = data.bootstrap_steps[:, 0]
    assert len(steps) == 300
    assert steps[[197, 198, 199]].tolist() == [3, 2, 1] and steps[[297, 298, 299]].tolist() == [3, 2, 1]
    assert (steps[:197] == 3).all()
    # A full window's next observation is the current observation three steps on.
    np.testing.assert_array_equal(data.next_observations[10], data.observations[13])
    # Windows emitted at the time-limit end carry its truncation; at the checkpoint cut, the
    # ones still pending (the last n - 1) do.
    assert np.flatnonzero(data.truncated[:, 0]).tolist() == [197, 198, 199, 298, 299]


# ======================================================================================
# TD3
# ======================================================================================
def test_td3_preset_is_the_papers_settings():
    td3, ddpg = PRESETS["td3"], PRESETS["ddpg-mujoco"]
    td3_settings = (td3.twin_critics, td3.policy_delay, td3.target_noise, td3.target_noise_clip)
    assert td3_settings == (True, 2, 0.2, 0.5)
    # TD3 = "Our DDPG" with its three changes, in the authors' code's units and schedule.
    assert td3.replace(twin_critics=False, policy_delay=1, target_noise=0.0, noise_units="half-range",
                       adam_epsilon=1e-7, adam_epsilon_placement="tensorflow", final_init="uniform-3e-3",
                       train_during_warmup=False, update_schedule="every-step") == ddpg
    assert (ddpg.actor_hidden, ddpg.batch_size, ddpg.actor_lr, ddpg.critic_lr, ddpg.tau) == (
        (400, 300), 100, 1e-3, 1e-3, 5e-3)
    for name in ("pendulum", "ddpg-paper", "ddpg-mujoco"):
        p = PRESETS[name]
        assert (p.twin_critics, p.policy_delay, p.target_noise, p.n_step, p.obs_norm, p.noise) == (
            False, 1, 0.0, 1, False, p.noise) and p.noise != "param"


def test_twin_critics_bootstrap_from_the_smaller_target():
    agent = agent_for(twin_critics=True, gamma=0.9)
    assert not np.array_equal(agent.critic.get_weights()[0], agent.critic2.get_weights()[0])
    b = random_batch()
    next_a = agent.actor_target(b.next_observations)
    q1 = agent.critic_target([b.next_observations, next_a]).numpy()
    q2 = agent.critic2_target([b.next_observations, next_a]).numpy()
    expected = b.rewards.numpy() + 0.9 * (1 - b.terminated.numpy()) * np.minimum(q1, q2)
    assert (q1 != q2).all()
    metrics = agent.train_step(b)
    assert float(metrics["q/target_mean"]) == pytest.approx(expected.mean(), rel=1e-12)
    assert "loss/critic2" in metrics


def test_policy_delay_updates_actor_and_targets_every_second_step():
    agent = agent_for(twin_critics=True, policy_delay=2)
    changed = []
    for i in range(4):
        before = model_weights(agent.actor, agent.actor_target, agent.critic_target, agent.critic2_target,
                               agent.critic, agent.critic2)
        agent.train_step(random_batch(seed=i))
        after = model_weights(agent.actor, agent.actor_target, agent.critic_target, agent.critic2_target,
                              agent.critic, agent.critic2)
        n_targets = 2 * len(agent.actor.get_weights()) + 2 * len(agent.critic.get_weights())
        actor_moved = any(not np.array_equal(x, y) for x, y in zip(before[:n_targets], after[:n_targets],
                                                                   strict=True))
        critics_moved = all(not np.array_equal(x, y) for x, y in zip(before[n_targets:], after[n_targets:],
                                                                     strict=True))
        changed.append((actor_moved, critics_moved))
    # TD3 (Fujimoto et al. 2018, Algorithm 1): "if t mod d then" update actor and targets.
    assert changed == [(False, True), (True, True), (False, True), (True, True)]
    assert int(agent.updates.numpy()) == 4 and int(agent.actor_optimizer.iterations.numpy()) == 2


def test_target_smoothing_noise_is_a_clipped_gaussian():
    noise = ClippedGaussian(LOW, HIGH, sigma=0.2, clip=0.5, seed=3, dtype="float64")
    x = noise.sample(100_000).numpy()
    half = (HIGH - LOW) / 2
    assert x.shape == (100_000, 2)
    assert np.all(np.abs(x) <= 0.5 * half) and np.all(np.abs(x).max(0) == 0.5 * half)
    # Clipping at 2.5 sigma keeps the std within 1% of sigma; the mean stays 0.
    np.testing.assert_allclose(x.std(0) / (0.2 * half), 1.0, atol=0.02)
    np.testing.assert_allclose(x.mean(0) / (0.2 * half), 0.0, atol=0.02)
    a = tf.constant([[1.9, 2.9], [-1.9, -0.95]], tf.float64)
    n = tf.constant([[0.5, 0.5], [-0.5, -0.5]], tf.float64)
    np.testing.assert_array_equal(losses.smoothed_target_actions(a, n, LOW, HIGH), [[2.0, 3.0], [-2.0, -1.0]])


@pytest.mark.parametrize("style", ["chain-rule", "dpg-surrogate"])
def test_styles_stay_bit_identical_under_td3(style):
    runs = {}
    for s in ("direct", style):
        agent = agent_for(twin_critics=True, policy_delay=2, target_noise=0.2, actor_update=s)
        for i in range(4):
            agent.train_step(random_batch(seed=i))
        runs[s] = model_weights(agent.actor, agent.critic, agent.critic2)
    assert_same_weights(runs["direct"], runs[style])


# ======================================================================================
# Observation normalisation
# ======================================================================================
def test_running_statistics_equal_numpy():
    rng = np.random.default_rng(1)
    data = rng.normal(5.0, [1.0, 100.0, 1e-3], size=(500, 3))
    norm = ObservationNormalizer(3, clip=10.0, dtype="float64")
    for chunk in np.array_split(data, 37):  # uneven chunks, like rows arriving over time
        norm.update(chunk)
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.variance().numpy(), data.var(0), rtol=1e-9)
    x = rng.normal(5.0, [1.0, 100.0, 1e-3], size=(4, 3))
    expected = np.clip((x - data.mean(0)) / np.sqrt(data.var(0) + EPSILON), -10, 10)
    np.testing.assert_allclose(norm(x).numpy(), expected, rtol=1e-9, atol=1e-12)
    fresh = ObservationNormalizer(3, dtype="float64")
    np.testing.assert_array_equal(fresh.variance().numpy(), np.ones(3))


def test_normalisation_uses_stored_observations_and_exports_with_the_policy(tmp_path):
    cfg = small_config(tmp_path, "norm", obs_norm=True, total_steps=400, checkpoint_every=400,
                       export=True)
    result = train(cfg)
    agent = result.agent
    data = read_saved_transitions(tmp_path / "norm" / "checkpoints" / "buffer-400.npz")
    np.testing.assert_allclose(agent.obs_norm.mean.numpy(), data.observations.mean(0), rtol=1e-4)
    np.testing.assert_allclose(agent.obs_norm.variance().numpy(), data.observations.var(0), rtol=1e-3)
    assert float(agent.obs_norm.count.numpy()) == 400
    exported = keras.models.load_model(result.exported["keras"])
    obs = data.observations[:50]
    for o in obs[:5]:
        np.testing.assert_allclose(exported(o[None]).numpy()[0], agent.act(o, explore=False), rtol=1e-5,
                                   atol=1e-6)
    # The exported model takes raw observations: it equals the actor on normalised ones.
    direct = agent.actor(agent.obs_norm(obs)).numpy()
    np.testing.assert_allclose(exported(obs).numpy(), direct, rtol=1e-5, atol=1e-6)
    assert isinstance(normalizing_policy(agent.actor, agent.obs_norm), keras.Model)


# ======================================================================================
# Adaptive parameter noise
# ======================================================================================
def test_perturbation_touches_dense_weights_only_with_the_current_std():
    agent = agent_for(noise="param", layer_norm=True, param_noise_init=0.05, actor_hidden=(256, 256))
    agent.reset_noise()
    for src, dst in zip(agent.actor.weights, agent.perturbed_actor.weights, strict=True):
        diff = (dst - src).numpy()
        if "_norm" in src.path:
            assert np.array_equal(diff, np.zeros_like(diff)), src.path
        else:
            assert np.all(diff != 0), src.path
            if diff.size > 10_000:
                assert diff.std() == pytest.approx(0.05, rel=0.02)
    first = model_weights(agent.perturbed_actor)
    agent.reset_noise()  # every episode: a fresh draw
    assert not np.array_equal(first[0], agent.perturbed_actor.get_weights()[0])


def test_param_noise_std_adapts_by_alpha():
    noise = AdaptiveParamNoise(0.1, target_distance=0.2, alpha=1.01, seed=0, dtype="float64")
    noise.adapt(tf.constant(0.3, tf.float64))
    assert float(noise.std.numpy()) == 0.1 / 1.01
    noise.adapt(tf.constant(0.1, tf.float64))
    assert float(noise.std.numpy()) == 0.1 / 1.01 * 1.01
    d = losses.policy_distance(tf.constant([[0.0, 1.0]]), tf.constant([[1.0, 1.0]]), tf.constant([2.0, 1.0]))
    assert float(d) == pytest.approx(np.sqrt(0.125))


def test_param_noise_explores_with_the_perturbed_actor_and_adapts(tmp_path):
    result = train(small_config(tmp_path, "param", noise="param", param_noise_adapt_every=10,
                                total_steps=400, noise_sigma=0.2))
    agent = result.agent
    obs = np.array([0.3, -0.2, 0.5])
    np.testing.assert_allclose(agent.act(obs), np.clip(agent.perturbed_actor(obs[None])[0], -2, 2),
                               rtol=1e-6)
    # 20 adaptations (steps 210, ..., 400), each multiplying or dividing by 1.01.
    k = np.log(float(agent.param_noise.std.numpy()) / 0.1) / np.log(1.01)
    assert abs(k - round(k)) < 1e-3 and abs(round(k)) <= 20 and round(k) % 2 == 0
    # Same seed, same run: the perturbations are seeded and checkpointed.
    again = train(small_config(tmp_path, "param2", noise="param", param_noise_adapt_every=10,
                               total_steps=400, noise_sigma=0.2))
    assert again.episode_returns == result.episode_returns


# ======================================================================================
# Everything at once: exact resume, compiled == eager
# ======================================================================================
ALL_ON = dict(twin_critics=True, policy_delay=2, target_noise=0.2, n_step=3, obs_norm=True,
              noise="param", param_noise_adapt_every=25)


def test_resume_with_every_option_matches_uninterrupted_run(tmp_path):
    """The cut at step 300 is mid-episode (episodes are 200 steps). Evaluations every 100 steps
    include step 300, where the shorter run ends (a run also evaluates at its last step, which
    would otherwise add an evaluation the uninterrupted run does not make)."""
    common = dict(checkpoint_every=300, eval_every=100, **ALL_ON)
    full = train(small_config(tmp_path, "full", **common))
    train(small_config(tmp_path, "split", total_steps=300, **common))
    resumed = train(small_config(tmp_path, "split", total_steps=600, resume=True, **common),
                    given={"total_steps", "resume"})
    a, b = full.agent, resumed.agent
    models = ("actor", "critic", "critic2", "actor_target", "critic_target", "critic2_target",
              "perturbed_actor")
    assert_same_weights(model_weights(*(getattr(b, m) for m in models)),
                        model_weights(*(getattr(a, m) for m in models)))
    for var in ("count", "mean", "sum_squared_residuals"):
        np.testing.assert_array_equal(getattr(b.obs_norm, var).numpy(), getattr(a.obs_norm, var).numpy())
    assert float(b.param_noise.std.numpy()) == float(a.param_noise.std.numpy())
    assert resumed.evaluations == [e for e in full.evaluations if e[0] > 300]


def _four_updates(**overrides) -> list[np.ndarray]:
    agent = agent_for(twin_critics=True, policy_delay=2, n_step=3, obs_norm=True, **overrides)
    agent.obs_norm.update(random_batch(64, seed=9).observations * 3.0 + 1.0)
    for i in range(4):
        agent.train_step(random_batch(seed=i, n_step=True))
    return model_weights(agent.actor, agent.critic, agent.critic2, agent.critic_target)


def test_compiled_xla_and_eager_agree_with_every_option():
    """float64, TD3 + n-step + observation normalisation: the three execution modes agree to
    1e-12 (XLA may fuse and round differently)."""
    reference = _four_updates(jit_compile=False)
    for overrides in ({"jit_compile": True}, {"eager": True}):
        for x, y in zip(_four_updates(**overrides), reference, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


def test_xla_draws_other_random_numbers_than_tensorflow_kernels():
    """Why XLA runs with noise do not repeat non-XLA runs: for the same stateless seed, XLA's
    random-number generator returns other normals than TensorFlow's kernel (both are fixed
    functions of the seed, so each mode is reproducible on its own). Compiled and eager
    agree exactly with target smoothing on; XLA does not."""
    def normals(seed):
        return tf.random.stateless_normal([4], seed, dtype=tf.float64)

    seed = tf.constant([1, 2], tf.int64)
    assert np.array_equal(normals(seed), tf.function(normals)(seed))
    assert not np.allclose(normals(seed), tf.function(normals, jit_compile=True)(seed))
    eager, compiled = _four_updates(eager=True, target_noise=0.2), _four_updates(jit_compile=False,
                                                                                 target_noise=0.2)
    for x, y in zip(eager, compiled, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


def test_buffer_round_trip_keeps_the_n_step_column(tmp_path: Path):
    buf = ReplayBuffer(8, 3, 2, n_step=3, dtype="float64")
    buf.add(np.ones(3), np.zeros(2), 1.5, np.ones(3), False, True, bootstrap_steps=2)
    buf.save(tmp_path / "b.npz")
    other = ReplayBuffer(8, 3, 2, n_step=3, dtype="float64")
    other.load(tmp_path / "b.npz")
    assert other.sample(1).bootstrap_steps[0, 0] == 2
    with pytest.raises(ValueError, match="1-step"):
        ReplayBuffer(8, 3, 2).pack(np.ones(3), np.zeros(2), 1.0, np.ones(3), False, False, 2)


def test_td3_run_logs_every_tag(tmp_path):
    """With a policy delay the actor metrics are those of the latest actor update."""
    from tests.test_training import REQUIRED_TAGS, read_events

    result = train(small_config(tmp_path, "tags", total_steps=300, eval_every=300, twin_critics=True,
                                policy_delay=2, target_noise=0.2))
    tags = set(read_events(result.run_dir))
    assert REQUIRED_TAGS | {"loss/critic2", "grad/critic2_norm"} <= tags, REQUIRED_TAGS - tags


TD3_PAPER_OPTIONS = dict(twin_critics=True, policy_delay=2, target_noise=0.2, noise_units="absolute",
                         adam_epsilon=1e-8, adam_epsilon_placement="torch", final_init="fan-in",
                         train_during_warmup=True, update_schedule="episode-end")
"""The options of the ``td3`` preset that reproduce the TD3 authors' code."""


def test_td3_authors_schedule_counts_updates_and_resumes_exactly(tmp_path):
    """Episode-end updates with training during the warm-up (200 random steps, Pendulum's
    200-step episodes): the first episode ends at step 200 and is followed by 200 updates on
    the all-random buffer; the checkpoint at 300 cuts the second episode (a cut runs no
    updates), the third ends at 500 (200 more); the cut at 600 runs none. The run resumed from
    step 300 is the uninterrupted one."""
    common = dict(checkpoint_every=300, eval_every=300, jit_compile=False, **TD3_PAPER_OPTIONS)
    full = train(small_config(tmp_path, "full", **common))
    assert int(full.agent.updates.numpy()) == 400
    train(small_config(tmp_path, "split", total_steps=300, **common))
    resumed = train(small_config(tmp_path, "split", total_steps=600, resume=True, **common),
                    given={"total_steps", "resume"})
    models = ("actor", "critic", "critic2", "actor_target", "critic_target", "critic2_target")
    assert_same_weights(model_weights(*(getattr(resumed.agent, m) for m in models)),
                        model_weights(*(getattr(full.agent, m) for m in models)))
    assert resumed.evaluations == [e for e in full.evaluations if e[0] > 300]


def test_training_during_warmup_every_step(tmp_path):
    """every-step with train_during_warmup: one update per step from the first stored
    transition on (batches drawn with replacement), against learning_starts + 1 without."""
    settings = dict(total_steps=220, eval_every=0, jit_compile=False, actor_hidden=(8,), critic_hidden=(8,))
    on = train(small_config(tmp_path, "on", train_during_warmup=True, **settings))
    off = train(small_config(tmp_path, "off", **settings))
    assert (int(on.agent.updates.numpy()), int(off.agent.updates.numpy())) == (220, 20)
