"""``agent.train_on_replay(rounds)``: K rounds of updates in one compiled call are the same
numbers as K calls (the loop body ends after its stateful ops, so the rounds run in order and
the replay generator draws the same batches): bit for bit without XLA and with XLA on small
networks, to float rounding with XLA on 256-wide ones."""

from __future__ import annotations

import numpy as np
import pytest

from ddpg_tf.agent import DDPGAgent
from ddpg_tf.config import Config
from ddpg_tf.replay_buffer import ReplayBuffer


def _agent(**overrides):
    sizes = {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "batch_size": 16, "buffer_size": 128}
    cfg = Config(**{**sizes, **overrides}).validate()
    agent = DDPGAgent(cfg, 3, np.array([-2.0]), np.array([2.0]))
    buffer = ReplayBuffer(cfg.buffer_size, 3, 1, seed=cfg.seed, dtype=cfg.dtype, n_step=cfg.n_step)
    rng = np.random.default_rng(0)
    for _ in range(100):
        buffer.add(rng.normal(size=3), rng.uniform(-2, 2, 1), float(rng.normal()), rng.normal(size=3),
                   bool(rng.random() < 0.1), False)
    agent.bind_replay(buffer)
    return agent


def _state(agent):
    """Every variable an update touches: weights, targets, Adam moments and step counts, the
    replay generator, update counters and observation statistics."""
    modules = [agent.actor, agent.critic, agent.actor_target, agent.critic_target,
               agent.actor_optimizer, agent.critic_optimizer, agent.replay]
    if agent.config.twin_critics:
        modules += [agent.critic2, agent.critic2_target, agent.critic2_optimizer]
    if agent.obs_norm is not None:
        modules.append(agent.obs_norm)
    values = [v.numpy() for m in modules for v in (m.weights if hasattr(m, "get_weights") else m.variables)]
    return values + [agent.updates.numpy(), agent.nonfinite_updates.numpy()]


WIDE = {"actor_hidden": (256, 256), "critic_hidden": (256, 256), "batch_size": 256, "buffer_size": 512}


@pytest.mark.parametrize("overrides", [
    {"jit_compile": False}, {"jit_compile": True}, {"eager": True},
    {"jit_compile": False, "batch_chunks": 2, "gradient_steps": 2},
    {"jit_compile": True, "twin_critics": True, "target_noise": 0.2, "policy_delay": 2},
    {"jit_compile": False, "n_step": 3, "obs_norm": True, "num_envs": 2},
    {"jit_compile": False, "batch_chunks": 2, **WIDE},
], ids=["graph", "xla", "eager", "chunks-2-steps", "td3-xla", "nstep-obsnorm-2envs", "graph-256-chunks"])
def test_rounds_in_one_call_equal_separate_calls(overrides):
    looped, called = _agent(**overrides), _agent(**overrides)
    m_looped = looped.train_on_replay(5)
    for _ in range(5):
        m_called = called.train_on_replay()
    cfg = looped.config
    assert int(looped.updates.numpy()) == int(called.updates.numpy()) == 5 * cfg.gradient_steps * cfg.num_envs
    for x, y in zip(_state(looped), _state(called), strict=True):
        np.testing.assert_array_equal(x, y)
    for key in ("loss/critic", "loss/actor", "q/mean"):
        assert float(m_looped[key]) == float(m_called[key])


def test_xla_rounds_on_wide_networks_equal_separate_calls_to_rounding():
    """XLA compiles the loop body as a computation of its own: at 256-256/B256 its fusion and
    reduction order can differ from the single step's, so after 5 rounds weights differ in
    the last bits (measured: up to 2e-7 relative), not beyond."""
    looped, called = _agent(jit_compile=True, **WIDE), _agent(jit_compile=True, **WIDE)
    looped.train_on_replay(5)
    for _ in range(5):
        called.train_on_replay()
    for x, y in zip(_state(looped), _state(called), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rounds", [0, -1, 2.0, True, "3"])
def test_rounds_must_be_a_positive_integer(rounds):
    agent = _agent(jit_compile=False)
    with pytest.raises(ValueError, match="rounds must be a positive integer"):
        agent.train_on_replay(rounds)


def test_fused_step_acting_on_the_rows_next_states_equals_acting_on_given_observations():
    """``agent.step(rows, train=True, act="next")`` (the loop's usual step: no episode ended)
    selects the same actions from the same updated state as passing those next states."""
    overrides = {"jit_compile": False, "obs_norm": True}  # the rows' states pass the normaliser too
    a, b = _agent(**overrides), _agent(**overrides)
    buffer = a.replay
    rng = np.random.default_rng(1)
    for _ in range(3):
        obs, nxt = rng.normal(size=3), rng.normal(size=3)
        row = buffer.pack(obs, rng.uniform(-2, 2, 1), float(rng.normal()), nxt, False, False)[None]
        lo, hi = buffer.columns["next_observations"]
        actions_next, metrics_next = a.step(row, train=True, act="next")
        actions_given, metrics_given = b.step(row, train=True, act=row[:, lo:hi])
        np.testing.assert_array_equal(actions_next, actions_given)
        assert float(metrics_next["loss/critic"]) == float(metrics_given["loss/critic"])
    for x, y in zip(_state(a), _state(b), strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="act='next'"):
        a.step(None, train=True, act="next")
