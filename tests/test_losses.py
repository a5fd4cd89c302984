"""Numbers pinned for ddpg_tf.losses and the agent's train step.

Comparison criteria used throughout:

* float64: max |a - b| over a tensor < 1e-10 (the actor-gradient styles), or tighter where
  noted.
* float32: *relative diff* of a tensor pair (a, b) is defined as

      rel(a, b) = max|a - b| / max(max|b|, tiny)

  i.e. the worst absolute deviation scaled by the largest magnitude of the reference tensor
  (``tiny`` = the smallest normal float32, only guarding against an all-zero reference).
  It must be < 1e-5 per tensor.
"""

import numpy as np
import pytest

from ddpg_tf._quiet import tf
from ddpg_tf import agent as agent_mod
from ddpg_tf import config as config_mod
from ddpg_tf import losses, networks
from ddpg_tf.replay_buffer import Batch

LOW = np.array([-1.0, -2.0, 0.0])
HIGH = np.array([1.0, 3.0, 0.5])
OBS_DIM = 4
TINY32 = float(np.finfo(np.float32).tiny)


def max_abs_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def rel_diff(a, b):
    """max|a - b| / max(max|b|, tiny): see the module docstring."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), TINY32))


def assert_same(a, b, dtype, what):
    if dtype == "float64":
        d = max_abs_diff(a, b)
        assert d < 1e-10, f"{what}: float64 max abs diff {d:.3e} >= 1e-10"
    else:
        d = rel_diff(a, b)
        assert d < 1e-5, f"{what}: float32 relative diff {d:.3e} >= 1e-5"


def make_nets(dtype, action_dim, hidden=(32, 32), obs_dim=OBS_DIM, seed=0):
    actor = networks.build_actor(obs_dim, LOW[:action_dim], HIGH[:action_dim], hidden,
                                 seed=seed, dtype=dtype)
    critic = networks.build_critic(obs_dim, action_dim, hidden, seed=seed + 5000, dtype=dtype)
    return actor, critic


def random_obs(n, dtype, seed=123, obs_dim=OBS_DIM):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.normal(size=(n, obs_dim)).astype(dtype))


# --------------------------------------------------------------------------------------
# The two actor-update styles give the same gradient.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("action_dim", [1, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_actor_gradient_styles_agree(dtype, action_dim, batch, compiled):
    actor, critic = make_nets(dtype, action_dim)
    obs = random_obs(batch, dtype, seed=1000 * action_dim + batch)

    def run(style):
        fn = lambda o: style(actor, critic, o)  # noqa: E731
        if compiled:
            fn = tf.function(fn)
        return fn(obs)

    direct = run(losses.actor_grads_direct)
    chain = run(losses.actor_grads_chain_rule)

    assert len(direct.grads) == len(chain.grads) == len(actor.trainable_variables)
    for v, gd, gc in zip(actor.trainable_variables, direct.grads, chain.grads, strict=True):
        assert gd.shape == gc.shape == v.shape
        assert gd.dtype == gc.dtype == v.dtype
        # Not a comparison of zeros: every weight tensor gets a non-trivial gradient.
        assert float(np.max(np.abs(gc.numpy()))) > 1e-9, v.path
        assert_same(gd.numpy(), gc.numpy(), dtype, f"grad {v.path}")
        if dtype == "float64":  # float64 is also tight in relative terms
            assert rel_diff(gd.numpy(), gc.numpy()) < 1e-10, v.path

    # dQ/da of both styles agree (direct reads it off the backward pass, scaled by -N).
    assert direct.dq_da.shape == chain.dq_da.shape == (batch, action_dim)
    assert float(np.max(np.abs(chain.dq_da.numpy()))) > 0.0
    assert_same(direct.dq_da.numpy(), chain.dq_da.numpy(), dtype, "dq_da")

    # Both return the same actions and Q, and loss = -mean(Q(s, mu(s))).
    actions = actor(obs).numpy()
    q_ref = critic([obs, actor(obs)]).numpy()
    for res in (direct, chain):
        assert_same(res.actions.numpy(), actions, dtype, "actions")
        assert res.q.shape == (batch, 1)
        assert_same(res.q.numpy(), q_ref, dtype, "q")
        assert res.loss.shape == ()
        assert_same(res.loss.numpy(), -np.mean(res.q.numpy(), dtype=np.float64), dtype, "loss")
    assert_same(direct.loss.numpy(), chain.loss.numpy(), dtype, "loss direct vs chain")


def test_chain_rule_transform_is_applied_to_dqda():
    # A transform that doubles dQ/da doubles the actor gradient; the reported dq_da is the
    # untransformed one.
    actor, critic = make_nets("float64", 3)
    obs = random_obs(8, "float64")
    plain = losses.actor_grads_chain_rule(actor, critic, obs)
    doubled = losses.actor_grads_chain_rule(actor, critic, obs, transform=lambda g, a: 2.0 * g)
    for gp, gd in zip(plain.grads, doubled.grads, strict=True):
        assert max_abs_diff(gd, 2.0 * gp.numpy()) < 1e-15
    assert max_abs_diff(plain.dq_da, doubled.dq_da) == 0.0


def nets_with_large_heads(obs_dim, action_dim, actor_hidden, actor_seed, critic_seed):
    """Tiny float64 actor and critic (critic hidden (5,)) whose final layers are scaled by 50, so
    the gradients compared are O(1e-2 .. 1), not O(1e-6)."""
    actor = networks.build_actor(obs_dim, LOW[:action_dim], HIGH[:action_dim], actor_hidden,
                                 seed=actor_seed, dtype="float64")
    critic = networks.build_critic(obs_dim, action_dim, (5,), seed=critic_seed, dtype="float64")
    for model in (actor, critic):
        for v in model.trainable_variables:
            v.assign(v * 50.0 if v.path.startswith(("pre_action", "q/")) else v)
    return actor, critic


def test_chain_rule_is_an_explicit_vector_jacobian_contraction():
    """grad = sum_i (-dQ/da_i / N) . d mu(s_i)/d theta, built from explicit per-sample
    Jacobians (action_dim x |theta|), matches the output_gradients backprop."""
    dtype, action_dim, n, obs_dim = "float64", 2, 5, 3
    actor, critic = nets_with_large_heads(obs_dim, action_dim, (4, 3), actor_seed=3, critic_seed=7)
    obs = random_obs(n, dtype, seed=5, obs_dim=obs_dim)

    variables = actor.trainable_variables
    expected = [np.zeros(v.shape, np.float64) for v in variables]
    for i in range(n):
        s_i = obs[i:i + 1]
        # Per-sample dQ/da at a = mu(s_i), independent of losses.dqda.
        a_i = actor(s_i)
        with tf.GradientTape() as t:
            t.watch(a_i)
            q_i = critic([s_i, a_i])
        dq_da_i = t.gradient(q_i, a_i).numpy()[0]  # (action_dim,)
        # Per-sample Jacobian of mu(s_i) w.r.t. every weight: (1, action_dim, *w.shape).
        with tf.GradientTape() as t:
            mu_i = actor(s_i, training=True)
        jacobians = t.jacobian(mu_i, variables)
        for k, jac in enumerate(jacobians):
            jac = jac.numpy()[0]  # (action_dim, *w.shape)
            assert jac.shape == (action_dim, *variables[k].shape)
            expected[k] += np.tensordot(-dq_da_i / n, jac, axes=(0, 0))

    chain = losses.actor_grads_chain_rule(actor, critic, obs)
    direct = losses.actor_grads_direct(actor, critic, obs)
    for v, e, gc, gd in zip(variables, expected, chain.grads, direct.grads, strict=True):
        assert np.max(np.abs(e)) > 1e-4, v.path  # non-trivial numbers
        assert max_abs_diff(gc, e) < 1e-10, v.path
        assert max_abs_diff(gd, e) < 1e-10, v.path


def test_actor_gradient_matches_central_differences():
    """Independent of autodiff: d/dtheta of -mean_i Q(s_i, mu(s_i)) by central differences."""
    dtype, action_dim, n, obs_dim = "float64", 2, 6, 3
    actor, critic = nets_with_large_heads(obs_dim, action_dim, (4,), actor_seed=11, critic_seed=13)
    obs = random_obs(n, dtype, seed=17, obs_dim=obs_dim)

    def loss():
        return float(-tf.reduce_mean(critic([obs, actor(obs)])).numpy())

    grads = losses.actor_grads_chain_rule(actor, critic, obs).grads
    h = 1e-6
    for v, g in zip(actor.trainable_variables, grads, strict=True):
        base = v.numpy()
        fd = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            for sign in (1.0, -1.0):
                w = base.copy()
                w[idx] += sign * h
                v.assign(w)
                fd[idx] += sign * loss() / (2 * h)
        v.assign(base)
        assert max_abs_diff(g, fd) < 1e-7 * max(1.0, float(np.max(np.abs(fd)))), v.path
        assert np.max(np.abs(fd)) > 1e-4


# --------------------------------------------------------------------------------------
# One full agent train step with each style.
# --------------------------------------------------------------------------------------
AGENT_OBS_DIM = 3
AGENT_LOW = np.array([-1.0, -2.0])
AGENT_HIGH = np.array([1.0, 3.0])


def make_batch(dtype, n=16, seed=42):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, AGENT_OBS_DIM))
    actions = rng.uniform(AGENT_LOW, AGENT_HIGH, size=(n, 2))
    rewards = rng.normal(size=(n, 1))
    next_obs = rng.normal(size=(n, AGENT_OBS_DIM))
    terminated = (np.arange(n) % 4 == 0).astype(np.float64)[:, None]
    truncated = (np.arange(n) % 5 == 0).astype(np.float64)[:, None]
    return Batch(*(x.astype(dtype) for x in (obs, actions, rewards, next_obs, terminated, truncated)))


def snapshot(model):
    return [w.numpy().copy() for w in model.weights]


def make_agent(dtype, style, **overrides):
    cfg = config_mod.Config(dtype=dtype, actor_hidden=(32, 32), critic_hidden=(32, 32),
                            batch_size=16, buffer_size=64, actor_update=style,
                            **overrides).validate()
    return agent_mod.DDPGAgent(cfg, AGENT_OBS_DIM, AGENT_LOW, AGENT_HIGH)


@pytest.fixture(scope="module", params=["float64", "float32"])
def stepped_pair(request):
    """Two agents differing only in actor_update, one train_step each on the same batch."""
    dtype = request.param
    agents = {style: make_agent(dtype, style) for style in ("direct", "chain-rule")}
    before = {style: {name: snapshot(getattr(a, name))
                      for name in ("actor", "critic", "actor_target", "critic_target")}
              for style, a in agents.items()}
    batch = make_batch(dtype)
    metrics = {style: a.train_step(batch) for style, a in agents.items()}
    after = {style: {name: snapshot(getattr(a, name))
                     for name in ("actor", "critic", "actor_target", "critic_target")}
             for style, a in agents.items()}
    return dtype, agents, before, after, metrics


NETS = ("actor", "critic", "actor_target", "critic_target")


def test_agents_start_identical(stepped_pair):
    _, _, before, _, _ = stepped_pair
    for name in NETS:
        for wd, wc in zip(before["direct"][name], before["chain-rule"][name], strict=True):
            assert np.array_equal(wd, wc), name
    # Targets start as exact copies of the online networks.
    for online, target in (("actor", "actor_target"), ("critic", "critic_target")):
        for wo, wt in zip(before["direct"][online], before["direct"][target], strict=True):
            assert np.array_equal(wo, wt)


def test_train_step_styles_leave_identical_weights(stepped_pair):
    dtype, _, before, after, metrics = stepped_pair
    d, c = after["direct"], after["chain-rule"]
    for name in ("actor", "actor_target"):
        for w0, wd, wc in zip(before["direct"][name], d[name], c[name], strict=True):
            if dtype == "float64":
                assert max_abs_diff(wd, wc) < 1e-12, name
            else:
                assert np.allclose(wd, wc, rtol=1e-5, atol=1e-7), name
            assert not np.array_equal(wd, w0), f"{name} did not move"
    # The critic update does not depend on the actor-update style: bit-identical.
    for name in ("critic", "critic_target"):
        for w0, wd, wc in zip(before["direct"][name], d[name], c[name], strict=True):
            assert np.array_equal(wd, wc), name
            assert not np.array_equal(wd, w0), f"{name} did not move"
    # Metrics agree as well.
    for key in ("loss/critic", "q/mean", "q/target_mean", "grad/critic_norm"):
        assert np.array_equal(metrics["direct"][key].numpy(), metrics["chain-rule"][key].numpy()), key
    for key in ("loss/actor", "grad/actor_norm", "grad/dqda_norm"):
        assert_same(metrics["direct"][key].numpy(), metrics["chain-rule"][key].numpy(), dtype, key)


def test_train_step_soft_updates_targets(stepped_pair):
    dtype, agents, before, after, _ = stepped_pair
    # float64: equal up to the last bits; float32: up to float32 rounding of the same formula.
    rtol, atol = (1e-14, 1e-17) if dtype == "float64" else (1e-6, 1e-9)
    tau = agents["direct"].config.tau
    for style in ("direct", "chain-rule"):
        for online, target in (("actor", "actor_target"), ("critic", "critic_target")):
            for new_o, old_t, new_t in zip(after[style][online], before[style][target],
                                           after[style][target], strict=True):
                expected = tau * new_o + (1.0 - tau) * old_t
                np.testing.assert_allclose(new_t, expected, rtol=rtol, atol=atol)
                # Only a tau fraction of the online step reached the target.
                assert not np.array_equal(new_t, old_t)
                assert not np.array_equal(new_t, new_o)


def test_train_step_critic_loss_is_td_loss_on_the_batch():
    """The critic metric equals mean((Q(s,a) - y)^2) with y from the (pre-step) targets."""
    ag = make_agent("float64", "direct")
    batch = make_batch("float64")
    next_obs = tf.constant(batch.next_observations)
    next_q = ag.critic_target([next_obs, ag.actor_target(next_obs)]).numpy()
    y = batch.rewards + ag.config.gamma * (1.0 - batch.terminated) * next_q
    q = ag.critic([tf.constant(batch.observations), tf.constant(batch.actions)]).numpy()
    metrics = ag.train_step(batch)
    assert abs(float(metrics["loss/critic"]) - np.mean((q - y) ** 2)) < 1e-12
    assert abs(float(metrics["q/target_mean"]) - np.mean(y)) < 1e-12


def adam_first_step(w, g, optimizer):
    """The first Adam update of a fresh ``ddpg_tf.optim.Adam``, in numpy float64:
    m = (1 - b1) g, v = (1 - b2) g^2, w - lr sqrt(1 - b2) / (1 - b1) * m / (sqrt(v) + eps)."""
    lr, b1, b2, eps = optimizer.learning_rate, optimizer.beta_1, optimizer.beta_2, optimizer.epsilon
    m = g * (1 - b1)
    v = np.square(g) * (1 - b2)
    alpha = lr * np.sqrt(1 - b2) / (1 - b1)
    return w - m * alpha / (np.sqrt(v) + eps)


@pytest.mark.parametrize("style", ["direct", "chain-rule"])
def test_train_step_is_one_adam_step_on_each_network(style):
    """Critic: Adam step along grad of mean((Q - y)^2) at the old weights. Actor: Adam step
    along the policy gradient at the old actor weights evaluated with the *updated* critic
    (Algorithm 1 order)."""
    ag = make_agent("float64", style)
    batch = make_batch("float64")
    obs = tf.constant(batch.observations)
    actor_before = snapshot(ag.actor)
    critic_before = snapshot(ag.critic)

    next_obs = tf.constant(batch.next_observations)
    next_q = ag.critic_target([next_obs, ag.actor_target(next_obs)])
    y = losses.td_target(tf.constant(batch.rewards), tf.constant(batch.terminated), next_q, ag.config.gamma)
    with tf.GradientTape() as tape:
        q = ag.critic([obs, tf.constant(batch.actions)])
        loss = tf.reduce_mean(tf.square(q - y))
    critic_grads = [g.numpy() for g in tape.gradient(loss, ag.critic.trainable_variables)]

    ag.train_step(batch)

    for w0, g, w1 in zip(critic_before, critic_grads, snapshot(ag.critic), strict=True):
        np.testing.assert_allclose(w1, adam_first_step(w0, g, ag.critic_optimizer), rtol=0, atol=1e-14)

    def actor_step_with(critic_weights):
        actor = networks.build_actor(AGENT_OBS_DIM, AGENT_LOW, AGENT_HIGH, (32, 32), dtype="float64")
        critic = networks.build_critic(AGENT_OBS_DIM, 2, (32, 32), dtype="float64")
        for v, w in zip(actor.weights, actor_before, strict=True):
            v.assign(w)
        for v, w in zip(critic.weights, critic_weights, strict=True):
            v.assign(w)
        grads = losses.actor_grads_direct(actor, critic, obs).grads
        return [adam_first_step(w0, g.numpy(), ag.actor_optimizer)
                for w0, g in zip(actor_before, grads, strict=True)]

    actor_after = snapshot(ag.actor)
    for w1, expected in zip(actor_after, actor_step_with(snapshot(ag.critic)), strict=True):
        np.testing.assert_allclose(w1, expected, rtol=0, atol=1e-14)
    # Using the pre-update critic instead would be visibly different: the check discriminates.
    stale = actor_step_with(critic_before)
    assert max(max_abs_diff(w1, e) for w1, e in zip(actor_after, stale, strict=True)) > 1e-9


# --------------------------------------------------------------------------------------
# soft_update, td_target, critic_loss, l2_penalty, clip_by_global_norm.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [0.005, 1e-3, 0.3, 1.0])
def test_soft_update_exact_float32(tau):
    rng = np.random.default_rng(0)
    online_np = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(5,)).astype(np.float32)]
    target_np = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(5,)).astype(np.float32)]
    online = [tf.Variable(x) for x in online_np]
    target = [tf.Variable(x) for x in target_np]
    losses.soft_update(target, online, tau)
    t32 = np.float32(tau)
    for o, t, v in zip(online_np, target_np, target, strict=True):
        expected = t32 * o + (np.float32(1) - t32) * t
        assert expected.dtype == np.float32
        assert np.array_equal(v.numpy(), expected)
        if tau == 1.0:
            assert np.array_equal(v.numpy(), o)  # tau = 1 copies exactly
    # The online variables are not touched.
    for o, v in zip(online_np, online, strict=True):
        assert np.array_equal(v.numpy(), o)


def test_td_target_terminated_and_truncated_hand_numbers():
    gamma = 0.9
    rewards = np.array([[1.0], [2.0], [-3.0], [0.5]])
    next_q = np.array([[10.0], [20.0], [30.0], [40.0]])
    terminated = np.array([[1.0], [0.0], [0.0], [1.0]])
    # Rows 1 and 3 are truncated by a time limit; truncation is not an input of td_target:
    # row 1 (truncated, not terminated) bootstraps, row 3 (both) does not.
    y = losses.td_target(tf.constant(rewards), tf.constant(terminated), tf.constant(next_q), gamma).numpy()
    assert y.shape == (4, 1)
    assert y[0, 0] == 1.0 and y[3, 0] == 0.5  # terminated: exactly r
    np.testing.assert_allclose(y[:, 0], [1.0, 2.0 + 0.9 * 20.0, -3.0 + 0.9 * 30.0, 0.5],
                               rtol=0, atol=1e-14)
    assert abs(y[1, 0] - 20.0) < 1e-14 and abs(y[2, 0] - 24.0) < 1e-14
    # gamma as a tensor gives the same numbers.
    y_t = losses.td_target(tf.constant(rewards), tf.constant(terminated), tf.constant(next_q),
                           tf.constant(gamma, tf.float64)).numpy()
    assert np.array_equal(y, y_t)


def test_critic_loss_hand_numbers_and_no_gradient_into_target():
    q = tf.constant([[1.0], [2.0], [3.0]], tf.float64)
    y = tf.constant([[0.0], [2.0], [5.0]], tf.float64)
    assert abs(float(losses.critic_loss(q, y)) - 5.0 / 3.0) < 1e-15
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([q, y])
        loss = losses.critic_loss(q, y)
    np.testing.assert_allclose(tape.gradient(loss, q).numpy(), [[2 / 3], [0.0], [-4 / 3]], atol=1e-15)
    assert tape.gradient(loss, y) is None  # stop_gradient on the target


def test_l2_penalty_is_half_coef_sum_of_squares():
    rng = np.random.default_rng(3)
    kernels = [tf.Variable(rng.normal(size=(3, 4))), tf.Variable(rng.normal(size=(4, 1)))]
    coef = 1e-2
    expected = 0.5 * coef * sum(float(np.sum(k.numpy() ** 2)) for k in kernels)
    got = float(losses.l2_penalty(kernels, coef))
    assert abs(got - expected) < 1e-14 * max(1.0, expected)
    # Hand numbers: W = [[1, 2], [3, 4]] -> 0.5 * 0.1 * 30 = 1.5.
    assert abs(float(losses.l2_penalty([tf.Variable([[1.0, 2.0], [3.0, 4.0]], dtype=tf.float64)], 0.1))
               - 1.5) < 1e-15


def test_clip_by_global_norm():
    grads = [tf.constant([3.0, 4.0], tf.float64), tf.constant([[12.0]], tf.float64)]  # norm 13
    clipped, norm = losses.clip_by_global_norm(grads, 6.5)
    assert float(norm) == 13.0  # the norm before clipping
    assert abs(float(tf.linalg.global_norm(clipped)) - 6.5) < 1e-14
    np.testing.assert_allclose(clipped[0].numpy(), [1.5, 2.0], atol=1e-15)
    np.testing.assert_allclose(clipped[1].numpy(), [[6.0]], atol=1e-15)
    # max_norm = 0: unchanged (same values), norm still reported.
    same, norm0 = losses.clip_by_global_norm(grads, 0.0)
    assert float(norm0) == 13.0
    for g, s in zip(grads, same, strict=True):
        assert np.array_equal(g.numpy(), s.numpy())
    # max_norm above the norm: unchanged up to rounding.
    loose, norm_l = losses.clip_by_global_norm(grads, 100.0)
    assert float(norm_l) == 13.0
    for g, s in zip(grads, loose, strict=True):
        np.testing.assert_allclose(s.numpy(), g.numpy(), rtol=1e-15)


# --------------------------------------------------------------------------------------
# Exact loss values with hand-set weights.
# --------------------------------------------------------------------------------------
def test_losses_pinned_with_constant_weights():
    dtype = "float64"
    low, high = np.array([-1.0, 0.0]), np.array([1.0, 4.0])
    actor = networks.build_actor(2, low, high, (3,), dtype=dtype)
    critic = networks.build_critic(2, 2, (3,), action_layer=0, dtype=dtype)

    W1 = np.array([[0.5, -0.25, 0.1], [0.3, 0.2, -0.4]])
    b1 = np.array([0.1, 0.0, -0.2])
    W2 = np.array([[0.7, -0.3], [0.2, 0.5], [-0.6, 0.4]])
    b2 = np.array([0.05, -0.1])
    V1 = np.array([[0.2, -0.1, 0.3], [0.4, 0.1, -0.2], [-0.5, 0.3, 0.6], [0.1, -0.2, 0.25]])
    c1 = np.array([0.0, 0.1, -0.1])
    V2 = np.array([[1.5], [-0.7], [0.9]])
    c2 = np.array([0.3])
    for v, value in zip(actor.trainable_variables, (W1, b1, W2, b2), strict=True):
        v.assign(value)
    for v, value in zip(critic.trainable_variables, (V1, c1, V2, c2), strict=True):
        v.assign(value)

    s = np.array([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.25]])
    a_batch = np.array([[0.5, 1.0], [-0.5, 3.0], [0.0, 0.0]])
    y = np.array([[0.2], [-0.1], [1.0]])

    relu = lambda x: np.maximum(x, 0.0)  # noqa: E731

    def mu(obs):
        z = relu(obs @ W1 + b1) @ W2 + b2
        return np.tanh(z) * (high - low) / 2 + (high + low) / 2

    def q(obs, act):
        return relu(np.concatenate([obs, act], axis=1) @ V1 + c1) @ V2 + c2

    assert max_abs_diff(actor(tf.constant(s)), mu(s)) < 1e-12
    assert max_abs_diff(critic([tf.constant(s), tf.constant(a_batch)]), q(s, a_batch)) < 1e-12

    expected_critic = np.mean((q(s, a_batch) - y) ** 2)
    got_critic = float(losses.critic_loss(critic([tf.constant(s), tf.constant(a_batch)]), tf.constant(y)))
    assert abs(got_critic - expected_critic) < 1e-12

    expected_actor = -np.mean(q(s, mu(s)))
    for style in (losses.actor_grads_direct, losses.actor_grads_chain_rule):
        res = style(actor, critic, tf.constant(s))
        assert abs(float(res.loss) - expected_actor) < 1e-12
        assert max_abs_diff(res.q, q(s, mu(s))) < 1e-12

    # Pinned literals (computed once with the numpy reference above), so a change of
    # either implementation is noticed.
    assert abs(expected_critic - PINNED_CRITIC_LOSS) < 1e-12
    assert abs(expected_actor - PINNED_ACTOR_LOSS) < 1e-12


PINNED_CRITIC_LOSS = 2.936935416666666
PINNED_ACTOR_LOSS = -1.0409925627504417
