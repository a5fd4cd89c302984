"""The in-graph training loop (ddpg_tf/in_graph.py) on the TensorFlow Pendulum and MountainCar.

Pins: the run does not depend on how it is cut into compiled calls, nor on a save and load in
between (bit for bit: weights, optimiser moments, replay rows, counters, episode returns);
the stored transitions are the environment's (successor chains, rewards from the stored
state and action, 200-step truncations); updates start and count as in the Python loop;
which settings it takes and the errors for the others.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from ddpg_tf import DDPG, TD3
from ddpg_tf.errors import ConfigError
from ddpg_tf.in_graph import InGraphLearner
from ddpg_tf.loop import Learner

SMALL = dict(actor_hidden=(16,), critic_hidden=(16,), batch_size=16, learning_starts=100, eval_every=0,
             progress=False, buffer_size=5_000, seed=5, jit_compile=False, speed="manual")


def state(model) -> list[np.ndarray]:
    agent = model.agent
    nets = [agent.actor, agent.critic, agent.actor_target, agent.critic_target]
    values = [v.numpy() for net in nets for v in net.weights]
    values += [v.numpy() for v in agent.actor_optimizer.variables + agent.critic_optimizer.variables]
    graph = model.learner.graph
    values += [v.numpy() for v in graph.env_state] + [graph.observations.numpy(), graph.returns.numpy()]
    return values + [agent.replay.storage.numpy(), agent.updates.numpy(), np.array(model.episode_returns)]


def assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_the_run_does_not_depend_on_how_it_is_cut_into_calls(jit: bool) -> None:
    whole = DDPG("Pendulum-v1", log_every=1000, **{**SMALL, "jit_compile": jit})
    assert isinstance(whole.learner, InGraphLearner) and whole.config.in_graph
    whole.learn(500)
    cut = DDPG("Pendulum-v1", log_every=30, **{**SMALL, "jit_compile": jit})
    cut.learn(170).learn(330)
    assert_same(state(whole), state(cut))
    assert whole.num_timesteps == cut.num_timesteps == 500
    assert len(whole.episode_returns) == 2  # 200-step episodes


def test_resume_after_save_and_load_is_exact(tmp_path) -> None:
    straight = TD3("Pendulum-v1", num_envs=2, noise="ou", **SMALL)
    straight.learn(600)
    first = TD3("Pendulum-v1", num_envs=2, noise="ou", **SMALL)
    first.learn(300)
    first.save(tmp_path / "model")
    resumed = TD3.load(tmp_path / "model")
    assert isinstance(resumed.learner, InGraphLearner)
    resumed.learn(300)
    assert_same(state(straight)[:-1], state(resumed)[:-1])  # a loaded model keeps no return history
    assert straight.episode_returns[-2:] == resumed.episode_returns


def test_run_dir_checkpoints_cut_no_episode(tmp_path) -> None:
    plain = DDPG("Pendulum-v1", **SMALL)
    plain.learn(450)
    logged = DDPG("Pendulum-v1", run_dir=tmp_path / "run", checkpoint_every=150, log_every=50,
                  export=False, **SMALL)
    logged.learn(450)
    assert_same(state(plain), state(logged))
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("ckpt-*.index"))
    assert saved == ["ckpt-150.index", "ckpt-300.index", "ckpt-450.index"]
    resumed = DDPG.load(tmp_path / "run", step=300)
    resumed.learn(150)
    assert_same(state(plain)[:-1], state(resumed)[:-1])


def test_stored_transitions_are_the_environments() -> None:
    model = DDPG("Pendulum-v1", **SMALL)
    model.learn(450)
    buffer = model.learner.buffer
    n = len(buffer)
    assert n == 450
    obs, act, rew = buffer.observations[:n], buffer.actions[:n], buffer.rewards[:n, 0]
    nxt, term, trunc = buffer.next_observations[:n], buffer.terminated[:n, 0], buffer.truncated[:n, 0]
    # Time limits every 200 steps, never a termination; each successor starts the next row.
    np.testing.assert_array_equal(np.flatnonzero(trunc), [199, 399])
    assert not term.any()
    chained = np.ones(n - 1, bool)
    chained[[199, 399]] = False
    np.testing.assert_array_equal(nxt[:-1][chained], obs[1:][chained])
    # r = -(theta^2 + 0.1 thetadot^2 + 0.001 u^2) of the stored state and clipped torque.
    theta = np.arctan2(obs[:, 1].astype(np.float64), obs[:, 0])
    u = np.clip(act[:, 0], -2, 2).astype(np.float64)
    np.testing.assert_allclose(rew, -(theta**2 + 0.1 * obs[:, 2].astype(np.float64)**2 + 0.001 * u**2),
                               rtol=1e-5, atol=1e-5)
    # Warm-up actions spread over the bounds; then the policy's, inside them.
    assert act.min() >= -2 and act.max() <= 2 and act[:100].std() > 0.8
    # Updates from the step after learning_starts on, one per step (as the Python loop).
    assert int(model.agent.updates.numpy()) == 450 - 100
    python_loop = DDPG("Pendulum-v1", in_graph=False, **SMALL)
    python_loop.learn(450)
    assert type(python_loop.learner) is Learner
    assert int(python_loop.agent.updates.numpy()) == 450 - 100
    assert len(python_loop.episode_returns) == len(model.episode_returns) == 2


def test_mountain_car_with_vector_copies_and_ou_noise() -> None:
    model = DDPG("MountainCarContinuous-v0", num_envs=3, noise="ou", **SMALL)
    assert isinstance(model.learner, InGraphLearner)
    model.learn(300)
    assert model.num_timesteps == 300 and len(model.learner.buffer) == 300
    # Iterations add 3 steps; updates are due from step 102 (> learning_starts), 3 per iteration.
    assert int(model.agent.updates.numpy()) == (100 - 33) * 3
    assert np.isfinite(model.predict(np.zeros(2, np.float32))).all()


def test_settings_it_cannot_run_fall_back_or_fail() -> None:
    param = DDPG("Pendulum-v1", noise="param", **SMALL)
    assert type(param.learner) is Learner and not param.config.in_graph
    n_step = DDPG("Pendulum-v1", n_step=3, **SMALL)
    assert not n_step.config.in_graph
    other = DDPG("MountainCarContinuous-v0", in_graph=False, **SMALL)
    assert type(other.learner) is Learner
    env = gym.make("Pendulum-v1")
    assert not DDPG(env, **SMALL).config.in_graph
    with pytest.raises(ConfigError, match="--in-graph cannot run this: the environment is an object"):
        DDPG(env, in_graph=True, **SMALL)
    with pytest.raises(ConfigError, match="--in-graph cannot run this: parameter noise"):
        DDPG("Pendulum-v1", in_graph=True, noise="param", **SMALL)
    with pytest.raises(ConfigError, match="HalfCheetah-v5 has no TensorFlow version .those that have: "
                                          "Pendulum-v1, MountainCarContinuous-v0"):
        DDPG("HalfCheetah-v5", in_graph=True, **SMALL)


def test_a_run_trained_in_graph_loads_only_by_id(tmp_path) -> None:
    model = DDPG("Pendulum-v1", **SMALL)
    model.learn(150)
    model.save(tmp_path / "m")
    with pytest.raises(ConfigError, match="trained with the in-graph loop"):
        DDPG.load(tmp_path / "m", env=gym.make("Pendulum-v1"))


def test_episode_end_schedule_runs_in_graph_as_in_python() -> None:
    """The `td3` preset's schedule (the TD3 authors'): after each episode, as many updates as it
    had steps, from the first episode end on (training during the warm-up)."""
    whole = TD3("Pendulum-v1", log_every=1000, **SMALL)
    assert whole.config.update_schedule == "episode-end" and whole.config.train_during_warmup
    assert isinstance(whole.learner, InGraphLearner)
    whole.learn(450)
    cut = TD3("Pendulum-v1", log_every=50, **SMALL)
    cut.learn(250).learn(200)
    assert_same(state(whole), state(cut))
    python_loop = TD3("Pendulum-v1", in_graph=False, **SMALL)
    python_loop.learn(450)
    assert int(whole.agent.updates.numpy()) == int(python_loop.agent.updates.numpy()) == 400
