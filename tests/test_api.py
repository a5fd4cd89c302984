"""The public API: ``DDPG``/``TD3`` on an unregistered env, learn/predict/evaluate/save/load.

Pins: ``learn(a); learn(b)`` equals ``learn(a + b)``; ``learn`` after ``load`` equals ``learn``
after ``save`` bit for bit (weights, targets, optimiser moments, replay buffer); in-memory
models write nothing; ``predict`` keeps actions in the bounds for one observation or a batch;
``import ddpg_tf`` loads neither TensorFlow nor CLI code; user mistakes raise one clear error.
"""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from ddpg_tf import DDPG, TD3
from ddpg_tf.errors import CheckpointError, ConfigError, EnvError, UsageError


class Drift(gym.Env):
    """Unregistered: push a point towards the origin; actions in [-2, 1]; 40-step episodes."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-5.0, 5.0, (3,), np.float32)
        self.action_space = gym.spaces.Box(np.float32(-2.0), np.float32(1.0), (2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.x, self.t = self.np_random.uniform(-1, 1, 3).astype(np.float32), 0
        return self.x.copy(), {}

    def step(self, action):
        a = np.asarray(action, np.float32)
        self.x = np.clip(self.x + 0.1 * np.array([a[0], a[1], a[0] - a[1]], np.float32), -5, 5)
        self.t += 1
        return self.x.copy(), -float(np.sum(self.x ** 2)), False, self.t >= 40, {}


SMALL = dict(actor_hidden=(16,), critic_hidden=(16,), batch_size=16, learning_starts=60, eval_every=0,
             progress=False, buffer_size=5_000, seed=3, jit_compile=False)
"""Tiny models; without XLA, whose compile time would dominate these short runs."""


def state(model) -> list[np.ndarray]:
    agent = model.agent
    nets = [agent.actor, agent.critic, agent.actor_target, agent.critic_target]
    values = [v.numpy() for net in nets for v in net.weights]
    values += [v.numpy() for v in agent.actor_optimizer.variables + agent.critic_optimizer.variables]
    return values + [agent.replay.storage.numpy(), agent.updates.numpy()]


def assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("cls", [DDPG, TD3])
def test_save_load_continue_is_exact_on_an_unregistered_env(tmp_path, cls):
    model = cls(Drift(), **SMALL)
    assert model.learn(120) is model and model.num_timesteps == 120
    model.save(tmp_path / "m")
    for name in ("config.json", "checkpoints", "export"):
        assert (tmp_path / "m" / name).exists()
    model.learn(100)
    loaded = cls.load(tmp_path / "m", env=Drift())
    assert type(loaded) is cls and loaded.num_timesteps == 120
    loaded.learn(100)
    assert loaded.num_timesteps == 220
    assert_same(state(model), state(loaded))
    np.testing.assert_array_equal(model.predict(np.ones(3)), loaded.predict(np.ones(3)))


def test_td3_is_the_td3_preset():
    model = TD3(Drift(), **SMALL)
    cfg = model.config
    assert (cfg.twin_critics, cfg.policy_delay, cfg.target_noise, cfg.env_id) == (True, 2, 0.2, "Drift")
    assert not DDPG(Drift(), **SMALL).config.twin_critics


def test_two_learn_calls_equal_one(tmp_path):
    once = DDPG(Drift(), **SMALL).learn(200)
    twice = DDPG(Drift(), **SMALL).learn(90).learn(110)
    assert twice.num_timesteps == 200
    assert_same(state(once), state(twice))
    assert once.episode_returns == twice.episode_returns


def test_in_memory_model_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = DDPG(Drift(), **{**SMALL, "eval_every": 50})
    model.learn(100)
    assert [e[0] for e in model.evaluations] == [50, 100]
    assert list(tmp_path.iterdir()) == []


def test_predict_one_or_a_batch_within_the_bounds():
    model = DDPG(Drift(), **SMALL).learn(80)
    one = model.predict(np.full(3, 4.0, np.float32))
    batch = model.predict(np.random.default_rng(0).uniform(-5, 5, (7, 3)))
    assert one.shape == (2,) and batch.shape == (7, 2)
    for actions in (one[None], batch):
        assert np.all(actions >= [-2.0, -2.0]) and np.all(actions <= [1.0, 1.0])
    # Deterministic: the same action twice; exploring: noise around it.
    np.testing.assert_array_equal(model.predict(np.ones(3)), model.predict(np.ones(3)))
    assert not np.array_equal(model.predict(np.ones(3), deterministic=False), model.predict(np.ones(3)))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        model.predict(np.ones(4))


def test_evaluate_returns_mean_and_std_on_any_env():
    model = DDPG(Drift(), **SMALL)
    mean, std = model.evaluate(episodes=3)
    assert isinstance(mean, float) and isinstance(std, float) and mean < 0
    own = model.evaluate(Drift(), episodes=2)
    assert len(own) == 2
    with pytest.raises(ValueError, match="episodes"):
        model.evaluate(episodes=0)


def test_run_dir_gets_logs_checkpoints_and_export(tmp_path):
    model = DDPG(Drift(), run_dir=tmp_path / "run", **{**SMALL, "checkpoint_every": 40, "eval_every": 40})
    model.learn(80)
    run = tmp_path / "run"
    kept = sorted(p.name for p in (run / "checkpoints").glob("ckpt-*.index"))
    assert kept == ["ckpt-40.index", "ckpt-80.index"]
    rows = (run / "evaluations.csv").read_text().splitlines()
    assert rows[0] == "step,return_mean,return_std,episodes"
    assert [r.split(",")[0] for r in rows[1:]] == ["40", "80"]
    assert list(run.glob("events.out.tfevents.*")) and (run / "export" / "actor.keras").is_file()
    with pytest.raises(UsageError, match="already exists"):
        DDPG(Drift(), run_dir=run, **SMALL)
    # A train.py run directory loads like a saved model, at its latest checkpoint.
    assert DDPG.load(run, env=Drift()).num_timesteps == 80


def test_vector_env_with_next_step_autoreset_trains_without_reset_transitions():
    envs = gym.vector.SyncVectorEnv([Drift, Drift])  # NEXT_STEP autoreset, gymnasium's default
    model = DDPG(envs, **SMALL).learn(200)
    assert model.config.num_envs == 2
    data = model.agent.replay
    obs, next_obs = data.observations[:len(data)], data.next_observations[:len(data)]
    # 40-step episodes: each copy's 41st step only resets it and stores nothing.
    assert len(data) == 200 - 2 * 2
    rows = np.arange(0, len(data), 2)  # copy 0's rows
    chained = np.all(obs[rows[1:]] == next_obs[rows[:-1]], axis=1)
    assert chained.sum() == len(rows) - 1 - 2  # broken only at its two episode starts


@pytest.mark.parametrize("env, message", [
    (gym.make("CartPole-v1"), "Discrete action space"),
    ("NoSuchEnv-v0", "cannot make environment"),
    (object(), "expected a gymnasium.Env"),
])
def test_unusable_env_raises_env_error(env, message):
    with pytest.raises(EnvError, match=message):
        DDPG(env, **SMALL)


def test_user_mistakes_raise_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown Config field"):
        DDPG(Drift(), learning_rate=1e-3)
    with pytest.raises(ConfigError, match="batch-size"):
        DDPG(Drift(), **{**SMALL, "batch_size": 0})
    model = DDPG(Drift(), **SMALL)
    with pytest.raises(UsageError, match="multiple of num_envs"):
        model.learn(-5)
    with pytest.raises(UsageError, match="not a run directory"):
        DDPG.load(tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="holds other files"):
        model.save(tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    model.save(tmp_path / "m")
    with pytest.raises(ConfigError, match="cannot change batch_size"):
        DDPG.load(tmp_path / "m", env=Drift(), batch_size=8)
    for f in (tmp_path / "m" / "checkpoints").glob("ckpt-*.data-*"):
        f.write_bytes(b"damaged")
    with pytest.raises(CheckpointError, match="damaged"):
        DDPG.load(tmp_path / "m", env=Drift())


def test_import_loads_neither_tensorflow_nor_cli_code():
    code = ("import sys, ddpg_tf; ddpg_tf.Config; "
            "print(sorted(m for m in sys.modules if m.startswith(('tensorflow', 'keras', 'ddpg_tf.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
