"""Numerical guards: NaN/Inf from the environment or in an update never reaches the weights."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from ddpg_tf.agent import DDPGAgent
from ddpg_tf.errors import TrainingError
from ddpg_tf.config import Config
from ddpg_tf.replay_buffer import Batch, read_saved_transitions
from ddpg_tf.training import train


class NonFinitePendulum(gym.Wrapper):
    """Pendulum-v1 whose ``bad_step``-th step (counted over the env's life) returns NaN in
    ``field``."""

    def __init__(self, field: str = "reward", bad_step: int = 150) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.field, self.bad_step, self.count = field, bad_step, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.count += 1
        if self.count == self.bad_step:
            if self.field == "reward":
                reward = float("nan")
            else:
                obs = np.full_like(obs, np.inf)
        return obs, reward, terminated, truncated, info


gym.register("NaNRewardPendulum-v0", entry_point=lambda: NonFinitePendulum("reward"))
gym.register("InfObsPendulum-v0", entry_point=lambda: NonFinitePendulum("observation"))


def tiny(tmp_path, env_id: str, **overrides) -> Config:
    return Config(env_id=env_id, total_steps=400, learning_starts=100, batch_size=16, buffer_size=1000,
                  actor_hidden=(8,), critic_hidden=(8,), eval_every=0, eval_episodes=1, log_every=100,
                  checkpoint_every=100, progress=False, export=False, logdir=str(tmp_path),
                  run_name="r", **overrides).validate()


@pytest.mark.parametrize("env_id,field", [("NaNRewardPendulum-v0", "reward"),
                                          ("InfObsPendulum-v0", "observation")])
def test_nonfinite_env_output_stops_with_step_and_field(tmp_path, env_id, field):
    with pytest.raises(TrainingError, match=f"non-finite {field} at step 150;"):
        train(tiny(tmp_path, env_id))
    # The checkpoint from step 100 is there and intact.
    ckdir = tmp_path / "r" / "checkpoints"
    assert sorted(p.name for p in ckdir.glob("ckpt-*.index")) == ["ckpt-100.index"]


def test_skip_nonfinite_drops_the_transition(tmp_path):
    result = train(tiny(tmp_path, "NaNRewardPendulum-v0", skip_nonfinite=True))
    assert result.steps == 400
    buffer_file = tmp_path / "r" / "checkpoints" / "buffer-400.npz"
    rewards = read_saved_transitions(buffer_file).rewards
    assert rewards.shape[0] == 399  # one of 400 transitions dropped
    assert np.all(np.isfinite(rewards))


def _agent() -> DDPGAgent:
    cfg = Config(dtype="float64", actor_hidden=(8,), critic_hidden=(8,), batch_size=4, buffer_size=8)
    return DDPGAgent(cfg.validate(), 3, np.array([-2.0]), np.array([2.0]))


def _weights(agent: DDPGAgent) -> list[np.ndarray]:
    # Networks and targets only: a skipped update still decays the Adam moments (training
    # stops before the next checkpoint, so that state is never saved).
    return [w for m in (agent.actor, agent.critic, agent.actor_target, agent.critic_target)
            for w in m.get_weights()]


def test_nonfinite_update_is_skipped_and_counted():
    agent = _agent()
    rng = np.random.default_rng(0)
    good = Batch(rng.normal(size=(4, 3)), rng.uniform(-2, 2, (4, 1)), rng.normal(size=(4, 1)),
                 rng.normal(size=(4, 3)), np.zeros((4, 1)), np.zeros((4, 1)))
    agent.train_step(good)
    before = _weights(agent)
    bad = good._replace(rewards=np.array([[np.nan], [0.0], [0.0], [0.0]]))
    agent.train_step(bad)
    assert int(agent.nonfinite_updates.numpy()) == 1
    assert int(agent.updates.numpy()) == 2
    for x, y in zip(before, _weights(agent), strict=True):
        np.testing.assert_array_equal(x, y)


def test_nonfinite_update_stops_training_and_keeps_checkpoint(tmp_path, monkeypatch):
    from ddpg_tf.replay_buffer import ReplayBuffer

    original = ReplayBuffer.pack
    calls = {"n": 0}

    def poisoned(self, *args):
        row = original(self, *args)
        calls["n"] += 1
        if calls["n"] == 250:  # the transition of env step 250 gets an infinite reward
            row[self.columns["rewards"][0]] = np.inf
        return row

    monkeypatch.setattr(ReplayBuffer, "pack", poisoned)
    with pytest.raises(TrainingError, match="NaN/Inf in an update before step 300.*ckpt-200 is kept"):
        train(tiny(tmp_path, "Pendulum-v1", in_graph=False))  # the Python loop packs the rows
    ckdir = tmp_path / "r" / "checkpoints"
    assert sorted(p.name for p in ckdir.glob("ckpt-*.index")) == ["ckpt-100.index", "ckpt-200.index"]


def test_skipped_reward_cuts_the_n_step_windows(tmp_path):
    """With n-step returns a dropped transition ends the windows before it as a truncation at
    the last good state: no window sums rewards across the gap (step 150 here)."""
    train(tiny(tmp_path, "NaNRewardPendulum-v0", skip_nonfinite=True, n_step=3))
    data = read_saved_transitions(tmp_path / "r" / "checkpoints" / "buffer-400.npz")
    steps = data.bootstrap_steps[:, 0]
    # Rows are in step order; steps 1..149 are rows 0..148, step 150 is dropped.
    assert steps[[146, 147, 148, 149]].tolist() == [3, 2, 1, 3]
    assert data.truncated[147, 0] and data.truncated[148, 0] and not data.terminated.any()
    np.testing.assert_array_equal(data.next_observations[147], data.next_observations[148])
