"""dQ/da transforms, the dpg-surrogate style, and live gradient diagnostics."""

from __future__ import annotations

import ddpg_tf._quiet  # noqa: F401

import keras
import numpy as np
import pytest

from ddpg_tf import losses
from ddpg_tf._quiet import tf
from ddpg_tf.agent import DDPGAgent
from ddpg_tf.config import Config, ConfigError
from ddpg_tf.networks import build_actor, build_critic
from ddpg_tf.replay_buffer import Batch

LOW = np.array([-1.0, 0.0], np.float64)
HIGH = np.array([1.0, 4.0], np.float64)


def test_invert_gradients_hand_computed():
    # Component 0 has bounds [-1, 1] (width 2); component 1 has [0, 4] (width 4).
    dq_da = tf.constant([[2.0, -1.0], [-3.0, 0.5], [1.0, 1.0]], tf.float64)
    actions = tf.constant([[0.5, 1.0], [0.5, 3.0], [1.5, -1.0]], tf.float64)
    out = losses.invert_gradients(dq_da, actions, tf.constant(LOW), tf.constant(HIGH)).numpy()
    expected = np.array([
        [2.0 * (1 - 0.5) / 2, -1.0 * (1.0 - 0) / 4],   # increase: (high-a)/w; decrease: (a-low)/w
        [-3.0 * (0.5 + 1) / 2, 0.5 * (4 - 3.0) / 4],
        [1.0 * (1 - 1.5) / 2, 1.0 * (4 + 1.0) / 4],     # beyond high: the push reverses sign
    ])
    np.testing.assert_array_equal(out, expected)


def test_clip_value_and_norm_hand_computed():
    g = tf.constant([[3.0, -4.0], [0.3, 0.4], [-0.5, 2.0]], tf.float64)
    np.testing.assert_array_equal(losses.clip_dqda_value(g, 1.0).numpy(),
                                  [[1.0, -1.0], [0.3, 0.4], [-0.5, 1.0]])
    # Row norms 5, 0.5, sqrt(4.25): only rows above 1 are rescaled to norm 1.
    expected = np.array([[0.6, -0.8], [0.3, 0.4], [-0.5 / np.sqrt(4.25), 2.0 / np.sqrt(4.25)]])
    np.testing.assert_allclose(losses.clip_dqda_norm(g, 1.0).numpy(), expected, rtol=1e-15)


def test_make_transform_names():
    low, high = tf.constant(LOW), tf.constant(HIGH)
    assert losses.make_dqda_transform("none", low, high) is None
    g = tf.constant([[5.0, -5.0]], tf.float64)
    a = tf.constant([[0.0, 2.0]], tf.float64)
    np.testing.assert_array_equal(losses.make_dqda_transform("clip-value", low, high, 2.0)(g, a),
                                  [[2.0, -2.0]])
    np.testing.assert_array_equal(losses.make_dqda_transform("invert", low, high)(g, a),
                                  [[5.0 * 0.5, -5.0 * 0.5]])
    with pytest.raises(ValueError):
        losses.make_dqda_transform("bogus", low, high)


def test_direct_style_rejects_a_transform():
    with pytest.raises(ConfigError, match="never materialises dQ/da"):
        Config(actor_update="direct", dqda_transform="invert").validate()
    for style in ("chain-rule", "dpg-surrogate"):
        Config(actor_update=style, dqda_transform="invert").validate()
    with pytest.raises(ConfigError, match="--dqda-clip must be positive"):
        Config(actor_update="chain-rule", dqda_transform="clip-norm", dqda_clip=0.0).validate()


def test_surrogate_loss_value_and_gradient():
    actions = tf.constant([[0.5, -1.0], [2.0, 0.0]], tf.float64)
    dq_da = tf.constant([[1.0, 2.0], [-3.0, 4.0]], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(actions)
        loss = losses.dpg_surrogate_loss(actions, dq_da)
    # Value: 0.5 mean_i ||dQ/da_i||^2 = 0.5 * (5 + 25) / 2; gradient: -dQ/da / N.
    assert loss.numpy() == pytest.approx(7.5, abs=1e-15)
    np.testing.assert_allclose(tape.gradient(loss, actions).numpy(), -dq_da.numpy() / 2, rtol=1e-15)


def _nets(dtype: str, action_dim: int = 2, seed: int = 0):
    actor = build_actor(3, LOW[:action_dim], HIGH[:action_dim], (16, 16), seed=seed, dtype=dtype)
    critic = build_critic(3, action_dim, (16, 16), seed=seed + 1, dtype=dtype)
    return actor, critic


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_surrogate_style_equals_direct(dtype, tol):
    actor, critic = _nets(dtype)
    obs = tf.constant(np.random.default_rng(0).normal(size=(32, 3)), dtype)
    direct = losses.actor_grads_direct(actor, critic, obs)
    surrogate = losses.actor_grads_dpg_surrogate(actor, critic, obs)
    for g, d in zip(surrogate.grads, direct.grads, strict=True):
        g, d = g.numpy(), d.numpy()
        assert np.max(np.abs(g - d)) / max(np.max(np.abs(d)), 1e-30) < tol


def test_transform_changes_only_what_it_should():
    """clip-value with a huge threshold leaves the chain-rule gradient equal to direct; a tiny
    threshold shrinks it."""
    actor, critic = _nets("float64")
    obs = tf.constant(np.random.default_rng(1).normal(size=(16, 3)), tf.float64)
    direct = losses.actor_grads_direct(actor, critic, obs)
    loose = losses.actor_grads_chain_rule(actor, critic, obs, lambda g, a: losses.clip_dqda_value(g, 1e9))
    tight = losses.actor_grads_chain_rule(actor, critic, obs, lambda g, a: losses.clip_dqda_value(g, 1e-12))
    cos, rel = losses.flat_cosine_and_rel_diff(loose.grads, direct.grads)
    assert cos.numpy() == pytest.approx(1.0, abs=1e-12) and rel.numpy() < 1e-12
    assert tf.linalg.global_norm(tight.grads).numpy() < 1e-6 * tf.linalg.global_norm(direct.grads).numpy()


def _train_actor_against_linear_q(transform: losses.DqdaTransform | None, steps: int = 300) -> np.ndarray:
    """Unsquashed actor trained to maximise Q(s, a) = 1 + 3 a_0 + 2 a_1, which always wants
    larger actions. Returns the actor's (pre-clip) actions on the training observations."""
    low, high = LOW, HIGH
    actor = build_actor(3, low, high, (16,), output="linear", seed=3, dtype="float64")
    obs_in = keras.Input((3,), dtype="float64")
    act_in = keras.Input((2,), dtype="float64")
    head = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant([[3.0], [2.0]]),
                              bias_initializer=keras.initializers.Constant(1.0), dtype="float64")
    critic = keras.Model([obs_in, act_in], head(act_in))
    obs = tf.constant(np.random.default_rng(2).normal(size=(64, 3)), tf.float64)
    opt = keras.optimizers.SGD(0.05)
    for _ in range(steps):
        step = losses.actor_grads_chain_rule(actor, critic, obs, transform)
        opt.apply_gradients(zip(step.grads, actor.trainable_variables, strict=True))
    return actor(obs).numpy()


def test_inverting_gradients_keep_unsquashed_actions_in_bounds():
    plain = _train_actor_against_linear_q(None)
    inverted = _train_actor_against_linear_q(
        losses.make_dqda_transform("invert", tf.constant(LOW), tf.constant(HIGH)))
    # Plain chain rule: actions run far past the upper bounds (1 and 4).
    assert np.all(plain > HIGH + 1.0)
    # Inverting gradients: actions settle at the upper bounds, overshooting by under 5% of the
    # range (the shared weights oscillate around the bound; the overshoot shrinks with steps).
    assert np.all(inverted <= HIGH + 0.05 * (HIGH - LOW))
    assert np.all(inverted >= HIGH - 0.25 * (HIGH - LOW))


def _agent(style: str, **overrides) -> DDPGAgent:
    cfg = Config(actor_update=style, dtype="float64", actor_hidden=(16, 16), critic_hidden=(16, 16),
                 batch_size=8, buffer_size=64, seed=5, **overrides).validate()
    return DDPGAgent(cfg, 3, LOW, HIGH)


def _batch(rng: np.random.Generator, n: int = 8) -> Batch:
    return Batch(rng.normal(size=(n, 3)), rng.uniform(LOW, HIGH, size=(n, 2)), rng.normal(size=(n, 1)),
                 rng.normal(size=(n, 3)), (rng.random((n, 1)) < 0.2).astype(np.float64),
                 np.zeros((n, 1)))


def test_surrogate_train_step_matches_direct_train_step():
    a, b = _agent("direct"), _agent("dpg-surrogate")
    batch = _batch(np.random.default_rng(0))
    for _ in range(3):
        a.train_step(batch)
        b.train_step(batch)
    for x, y in zip(a.actor.get_weights(), b.actor.get_weights(), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)


@pytest.mark.parametrize("style", ["direct", "chain-rule", "dpg-surrogate"])
def test_diagnostics_report_agreement_without_transform(style):
    agent = _agent(style)
    diag = agent.diagnostics(_batch(np.random.default_rng(1)))
    assert diag["diag/grad_cosine"].numpy() == pytest.approx(1.0, abs=1e-12)
    assert diag["diag/grad_rel_diff"].numpy() < 1e-12
    assert 0.0 <= diag["diag/actions_at_bound"].numpy() <= 1.0


def test_diagnostics_show_what_a_transform_changed():
    agent = _agent("chain-rule", dqda_transform="clip-value", dqda_clip=1e-9)
    diag = agent.diagnostics(_batch(np.random.default_rng(1)))
    # Clipping dQ/da to 1e-9 leaves almost nothing of the gradient: relative difference ~1.
    assert diag["diag/grad_rel_diff"].numpy() == pytest.approx(1.0, abs=1e-3)


def test_actions_at_bound_counts_saturated_outputs():
    agent = _agent("direct")
    last = agent.actor.get_layer("pre_action")  # the dense layer before the tanh squash
    kernel, bias = last.get_weights()
    last.set_weights([np.zeros_like(kernel), np.array([50.0, -50.0])])  # tanh -> +1, -1
    diag = agent.diagnostics(_batch(np.random.default_rng(2)))
    assert diag["diag/actions_at_bound"].numpy() == 1.0
    assert diag["diag/actions_outside_bounds"].numpy() == 0.0
    # tanh(±50) is exactly ±1 in float64: no component passes a gradient, so no state does.
    assert diag["diag/actor_zero_grad"].numpy() == 1.0
    assert diag["diag/actor_states_without_grad"].numpy() == 1.0


def test_saturation_diagnostics_count_components_and_whole_states():
    """One component pinned at +1 and one at tanh(0.5): half the components pass no gradient,
    and no state is without one; a linear actor has no tanh to saturate."""
    agent = _agent("direct")
    last = agent.actor.get_layer("pre_action")
    kernel, _ = last.get_weights()
    last.set_weights([np.zeros_like(kernel), np.array([50.0, 0.5])])
    diag = agent.diagnostics(_batch(np.random.default_rng(2)))
    assert diag["diag/actor_zero_grad"].numpy() == 0.5
    assert diag["diag/actor_states_without_grad"].numpy() == 0.0
    linear = _agent("chain-rule", actor_output="linear").diagnostics(_batch(np.random.default_rng(2)))
    assert "diag/actor_zero_grad" not in linear and "diag/actor_states_without_grad" not in linear
