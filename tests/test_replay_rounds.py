"""``agent.train_on_replay(rounds)``: K rounds of updates in one compiled call are the same
numbers as K calls (bit for bit: the loop body ends after its stateful ops, so the rounds run
in order and the replay generator draws the same batches)."""

from __future__ import annotations

import numpy as np
import pytest

from ddpg_tf.agent import DDPGAgent
from ddpg_tf.config import Config
from ddpg_tf.replay_buffer import ReplayBuffer


def _agent(**overrides):
    cfg = Config(actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=16, buffer_size=128,
                 **overrides).validate()
    agent = DDPGAgent(cfg, 3, np.array([-2.0]), np.array([2.0]))
    buffer = ReplayBuffer(cfg.buffer_size, 3, 1, seed=cfg.seed, dtype=cfg.dtype, n_step=cfg.n_step)
    rng = np.random.default_rng(0)
    for _ in range(100):
        buffer.add(rng.normal(size=3), rng.uniform(-2, 2, 1), float(rng.normal()), rng.normal(size=3),
                   bool(rng.random() < 0.1), False)
    agent.bind_replay(buffer)
    return agent


def _state(agent):
    models = [agent.actor, agent.critic, agent.actor_target, agent.critic_target]
    if agent.config.twin_critics:
        models += [agent.critic2, agent.critic2_target]
    return [w for m in models for w in m.get_weights()] + [agent.replay.generator.state.numpy()]


@pytest.mark.parametrize("overrides", [
    {"jit_compile": False}, {"jit_compile": True}, {"eager": True},
    {"jit_compile": False, "batch_chunks": 2, "gradient_steps": 2},
    {"jit_compile": True, "twin_critics": True, "target_noise": 0.2, "policy_delay": 2},
], ids=["graph", "xla", "eager", "chunks-2-steps", "td3-xla"])
def test_rounds_in_one_call_equal_separate_calls(overrides):
    looped, called = _agent(**overrides), _agent(**overrides)
    m_looped = looped.train_on_replay(5)
    for _ in range(5):
        m_called = called.train_on_replay()
    assert int(looped.updates.numpy()) == int(called.updates.numpy()) == 5 * looped.config.gradient_steps
    for x, y in zip(_state(looped), _state(called), strict=True):
        np.testing.assert_array_equal(x, y)
    for key in ("loss/critic", "loss/actor", "q/mean"):
        assert float(m_looped[key]) == float(m_called[key])


@pytest.mark.parametrize("rounds", [0, -1, 2.0, True, "3"])
def test_rounds_must_be_a_positive_integer(rounds):
    agent = _agent(jit_compile=False)
    with pytest.raises(ValueError, match="rounds must be a positive integer"):
        agent.train_on_replay(rounds)
