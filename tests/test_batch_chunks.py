"""``--batch-chunks``: the networks see the batch in slices; the gradients and updates equal
the full-batch ones up to float rounding (pinned in float64 to 1e-12, for every actor style
and with TD3's twin critics)."""

from __future__ import annotations

import numpy as np
import pytest

from ddpg_tf.agent import DDPGAgent
from ddpg_tf.config import ACTOR_UPDATES, Config
from ddpg_tf.replay_buffer import Batch


def _batches(n: int = 3, size: int = 32):
    rng = np.random.default_rng(1)
    return [Batch(rng.normal(size=(size, 3)), rng.uniform(-2, 2, (size, 1)), rng.normal(size=(size, 1)),
                  rng.normal(size=(size, 3)), (rng.random((size, 1)) < 0.1).astype(np.float64),
                  np.zeros((size, 1))) for _ in range(n)]


def _run(chunks: int, **overrides):
    cfg = Config(dtype="float64", actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=32,
                 buffer_size=64, batch_chunks=chunks, **overrides).validate()
    agent = DDPGAgent(cfg, 3, np.array([-2.0]), np.array([2.0]))
    metrics = [agent.train_step(b) for b in _batches()]
    losses = [(float(m["loss/critic"]), float(m["loss/actor"])) for m in metrics]
    models = [agent.actor, agent.critic, agent.actor_target, agent.critic_target]
    if cfg.twin_critics:
        models += [agent.critic2, agent.critic2_target]
    return losses, [w for m in models for w in m.get_weights()]


# Every style with DDPG and TD3; the default suite runs one style per algorithm (suite time),
# `-m slow` the other four.
TD3_FIELDS = {"twin_critics": True, "target_noise": 0.2, "policy_delay": 2}
CASES = [pytest.param(style, extra, id=f"{name}-{style}",
                      marks=() if (name, style) in (("ddpg", "direct"), ("td3", "chain-rule"))
                      else pytest.mark.slow)
         for name, extra in (("ddpg", {}), ("td3", TD3_FIELDS))
         for style in ACTOR_UPDATES]


@pytest.mark.parametrize("style,extra", CASES)
def test_chunked_updates_equal_full_batch_updates(style, extra):
    ref_losses, ref_weights = _run(1, actor_update=style, **extra)
    for chunks in (2, 4):
        losses, weights = _run(chunks, actor_update=style, **extra)
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)
        for x, y in zip(weights, ref_weights, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


def test_chunks_must_divide_the_batch():
    from ddpg_tf.config import ConfigError

    with pytest.raises(ConfigError, match="--batch-chunks 3 must divide --batch-size 32"):
        Config(batch_size=32, buffer_size=64, batch_chunks=3).validate()
