"""One TD3 update against a NumPy reference written here, in float64.

Fixed weights (targets different from their online networks), fixed Adam moments and step
count, one fixed batch of 7 transitions with asymmetric action bounds: the agent's compiled
update (critic loss, both critics' gradients, the actor gradient through the updated first
critic, the Adam steps, the soft updates) must match a from-scratch NumPy implementation of
Fujimoto et al. (2018), Algorithm 1, to 1e-6 relative, for both Adam epsilon placements and
both noise units. The gradients are read back from the Adam first moments,
g = (m_new - b1 m_old) / (1 - b1).
"""

from __future__ import annotations

import numpy as np
import pytest

from ddpg_tf.agent import DDPGAgent
from ddpg_tf.config import Config
from ddpg_tf.replay_buffer import Batch

OBS, ACT, N = 3, 2, 7
LOW, HIGH = np.array([-1.0, -2.0]), np.array([2.0, 2.0])
B1, B2 = 0.9, 0.999
RTOL = 1e-6


# --- the reference ---------------------------------------------------------------------------
def mlp(params: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """ReLU hidden layers, linear output; returns the output and what the backward pass needs."""
    inputs, pre = [], []
    h = x
    for i, (w, b) in enumerate(params):
        inputs.append(h)
        z = h @ w + b
        pre.append(z)
        h = np.maximum(z, 0.0) if i < len(params) - 1 else z
    return h, (inputs, pre)


def mlp_backward(params: list, cache: tuple, grad_out: np.ndarray) -> tuple[list, np.ndarray]:
    """Gradients of sum(grad_out * output) w.r.t. every (W, b) and w.r.t. the input."""
    inputs, pre = cache
    grads: list = [None] * len(params)
    g = grad_out
    for i in reversed(range(len(params))):
        if i < len(params) - 1:
            g = g * (pre[i] > 0)
        grads[i] = (inputs[i].T @ g, g.sum(axis=0))
        g = g @ params[i][0].T
    return grads, g


def actor_forward(params: list, s: np.ndarray) -> tuple[np.ndarray, tuple]:
    z, cache = mlp(params, s)
    scale, offset = (HIGH - LOW) / 2, (HIGH + LOW) / 2
    return np.tanh(z) * scale + offset, (cache, z)


def actor_backward(params: list, cache: tuple, grad_a: np.ndarray) -> list:
    mlp_cache, z = cache
    grad_z = grad_a * (HIGH - LOW) / 2 * (1.0 - np.tanh(z) ** 2)
    return mlp_backward(params, mlp_cache, grad_z)[0]


def adam(theta: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, lr: float, eps: float,
         placement: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = B1 * m + (1 - B1) * g
    v = B2 * v + (1 - B2) * g * g
    if placement == "tensorflow":  # eps on the uncorrected sqrt(v)
        step = lr * np.sqrt(1 - B2 ** t) / (1 - B1 ** t) * m / (np.sqrt(v) + eps)
    else:  # torch: eps after bias correction
        step = lr / (1 - B1 ** t) * m / (np.sqrt(v / (1 - B2 ** t)) + eps)
    return theta - step, m, v


def pairs(flat: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def reference_update(cfg: Config, nets: dict, moments: dict, t: int, batch: Batch,
                     eps_noise: np.ndarray) -> dict:
    """Fujimoto et al. (2018), Algorithm 1, one iteration with the actor update due."""
    s, a, r = batch.observations, batch.actions, batch.rewards
    s2, d = batch.next_observations, batch.terminated
    # Target policy smoothing and the clipped double-Q target.
    a2, _ = actor_forward(pairs(nets["actor_target"]), s2)
    a2 = np.clip(a2 + eps_noise, LOW, HIGH)
    q1t, _ = mlp(pairs(nets["critic_target"]), np.concatenate([s2, a2], 1))
    q2t, _ = mlp(pairs(nets["critic2_target"]), np.concatenate([s2, a2], 1))
    y = r + cfg.gamma * (1 - d) * np.minimum(q1t, q2t)
    out: dict = {"grads": {}, "losses": {}}
    new = {k: [w.copy() for w in v] for k, v in nets.items()}
    new_moments = {}
    for name in ("critic", "critic2"):
        q, cache = mlp(pairs(nets[name]), np.concatenate([s, a], 1))
        out["losses"][name] = np.mean((q - y) ** 2)
        grads, _ = mlp_backward(pairs(nets[name]), cache, 2 * (q - y) / N)
        flat = [x for pair in grads for x in pair]
        out["grads"][name] = flat
        m, v = moments[name]
        stepped = [adam(w, g, mi, vi, t, cfg.critic_lr, cfg.adam_epsilon, cfg.adam_epsilon_placement)
                   for w, g, mi, vi in zip(nets[name], flat, m, v, strict=True)]
        new[name] = [x[0] for x in stepped]
        new_moments[name] = ([x[1] for x in stepped], [x[2] for x in stepped])
    # Actor: -mean Q1(s, mu(s)) through the critic just updated.
    mu, a_cache = actor_forward(pairs(nets["actor"]), s)
    q, c_cache = mlp(pairs(new["critic"]), np.concatenate([s, mu], 1))
    out["losses"]["actor"] = -np.mean(q)
    _, grad_in = mlp_backward(pairs(new["critic"]), c_cache, -np.ones_like(q) / N)
    grads = actor_backward(pairs(nets["actor"]), a_cache, grad_in[:, OBS:])
    flat = [x for pair in grads for x in pair]
    out["grads"]["actor"] = flat
    m, v = moments["actor"]
    stepped = [adam(w, g, mi, vi, t, cfg.actor_lr, cfg.adam_epsilon, cfg.adam_epsilon_placement)
               for w, g, mi, vi in zip(nets["actor"], flat, m, v, strict=True)]
    new["actor"] = [x[0] for x in stepped]
    # Soft updates: theta' <- tau theta + (1 - tau) theta'.
    for online in ("actor", "critic", "critic2"):
        new[online + "_target"] = [cfg.tau * w + (1 - cfg.tau) * wt
                                   for w, wt in zip(new[online], nets[online + "_target"], strict=True)]
    out["weights"] = new
    return out


# --- the test ----------------------------------------------------------------------------------
def _setup(placement: str, units: str):
    cfg = Config(dtype="float64", twin_critics=True, policy_delay=2, target_noise=0.3, target_noise_clip=0.4,
                 noise_units=units, actor_hidden=(8, 6), critic_hidden=(8, 6), batch_size=N, buffer_size=64,
                 gamma=0.97, tau=0.05, actor_lr=3e-3, critic_lr=2e-3, adam_epsilon=1e-3,
                 adam_epsilon_placement=placement, jit_compile=False).validate()
    agent = DDPGAgent(cfg, OBS, LOW, HIGH)
    rng = np.random.default_rng(42)
    models = {"actor": agent.actor, "actor_target": agent.actor_target, "critic": agent.critic,
              "critic_target": agent.critic_target, "critic2": agent.critic2,
              "critic2_target": agent.critic2_target}
    nets = {}
    for name, model in models.items():
        values = [rng.normal(scale=0.5, size=w.shape) for w in model.weights]
        for w, x in zip(model.weights, values, strict=True):
            w.assign(x)
        nets[name] = values
    optimizers = {"actor": agent.actor_optimizer, "critic": agent.critic_optimizer,
                  "critic2": agent.critic2_optimizer}
    moments = {}
    for name, opt in optimizers.items():
        m = [rng.normal(scale=0.05, size=x.shape) for x in opt.m]
        v = [rng.uniform(1e-4, 1e-2, size=x.shape) for x in opt.v]
        for var, x in zip(opt.m + opt.v, m + v, strict=True):
            var.assign(x)
        opt.iterations.assign(4)
        moments[name] = (m, v)
    agent.updates.assign(1)  # the 2nd critic update: the actor and the targets are due
    batch = Batch(rng.normal(size=(N, OBS)), rng.uniform(LOW, HIGH, size=(N, ACT)), rng.normal(size=(N, 1)),
                  rng.normal(size=(N, OBS)), (rng.random((N, 1)) < 0.3).astype(np.float64),
                  np.zeros((N, 1)))
    # The smoothing noise the update will draw: sample it, then rewind the generator.
    state = agent.target_smoothing.generator.state.numpy()
    eps_noise = agent.target_smoothing.sample(N).numpy()
    agent.target_smoothing.generator.reset(state)
    return cfg, agent, models, optimizers, nets, moments, batch, eps_noise


@pytest.mark.parametrize("units", ["half-range", "absolute"])
@pytest.mark.parametrize("placement", ["tensorflow", "torch"])
def test_one_td3_update_matches_numpy(placement: str, units: str) -> None:
    cfg, agent, models, optimizers, nets, moments, batch, eps_noise = _setup(placement, units)
    unit = (HIGH - LOW) / 2 if units == "half-range" else np.ones(ACT)
    assert np.all(np.abs(eps_noise) <= 0.4 * unit + 1e-12) and np.any(np.abs(eps_noise) == 0.4 * unit)
    ref = reference_update(cfg, nets, moments, 5, batch, eps_noise)
    old_m = {k: [x.numpy() for x in opt.m] for k, opt in optimizers.items()}

    metrics = agent.train_step(batch)

    def close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
        np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=1e-12 * max(1.0, np.abs(expected).max()),
                                   err_msg=what)

    close(metrics["loss/critic"].numpy(), ref["losses"]["critic"], "critic 1 loss")
    close(metrics["loss/critic2"].numpy(), ref["losses"]["critic2"], "critic 2 loss")
    close(metrics["loss/actor"].numpy(), ref["losses"]["actor"], "actor loss")
    for name, opt in optimizers.items():  # each gradient, element by element, from Adam's m
        grads = [(m.numpy() - B1 * m0) / (1 - B1) for m, m0 in zip(opt.m, old_m[name], strict=True)]
        for i, (g, g_ref) in enumerate(zip(grads, ref["grads"][name], strict=True)):
            close(g, g_ref, f"{name} gradient {i}")
        assert int(opt.iterations.numpy()) == 5
    for name, model in models.items():  # Adam steps and soft updates
        for i, (w, w_ref) in enumerate(zip(model.weights, ref["weights"][name], strict=True)):
            close(w.numpy(), w_ref, f"{name} weight {i}")
    assert int(agent.updates.numpy()) == 2
    # The other placement is a different update, well beyond the tolerance: the test tells them apart.
    other = cfg.replace(adam_epsilon_placement="torch" if placement == "tensorflow" else "tensorflow")
    moved = reference_update(other, nets, moments, 5, batch, eps_noise)["weights"]["actor"][0]
    assert np.abs(moved - ref["weights"]["actor"][0]).max() > 10 * RTOL * np.abs(moved).max()
