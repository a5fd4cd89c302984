"""``--num-envs``: several environment copies stepped together, N updates per compiled call.

Pins: batched replay writes equal row-by-row writes; the vector loop keeps one update per
environment step; each copy's transitions chain within its episodes and end at the episode's
true last observation (not the autoreset one); identical seeds give identical runs; the fused
call equals the unfused calls; a run resumed from a mid-episode checkpoint equals the
uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import pytest

from ddpg_tf._quiet import tf
from ddpg_tf.errors import TrainingError
from ddpg_tf.replay_buffer import ReplayBuffer, read_saved_transitions
from ddpg_tf.training import train
from tests.test_training import assert_same_weights, small_config, weights

N = 2


def vector_config(tmp_path, run_name, **overrides):
    return small_config(tmp_path, run_name, num_envs=N, **overrides)


def test_add_rows_equals_add_row_with_wraparound():
    rng = np.random.default_rng(0)
    one, many = (ReplayBuffer(7, 2, 1, seed=0) for _ in range(2))
    for chunk in (3, 0, 5, 4):  # 12 rows into 7 slots: wraps around
        rows = rng.standard_normal((chunk, one.width)).astype(np.float32)
        for row in rows:
            one.add_row(tf.constant(row))
        many.add_rows(tf.constant(rows.reshape(chunk, one.width)))
        np.testing.assert_array_equal(many.storage.numpy(), one.storage.numpy())
        assert (many.position, len(many)) == (one.position, len(one))


def test_mark_truncated_counts_back_from_the_newest_row():
    buffer = ReplayBuffer(4, 1, 1, seed=0)
    buffer.add_rows(tf.zeros((6, buffer.width)))  # newest row in slot 1
    buffer.mark_truncated([0, 2])
    assert buffer.truncated[:, 0].tolist() == [0.0, 1.0, 0.0, 1.0]


@pytest.fixture(scope="module")
def vector_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vector")
    # Pendulum episodes last 200 steps per copy: with 2 copies they end at step 400.
    return train(vector_config(tmp, "full", total_steps=500, checkpoint_every=0, save_buffer=True,
                               eval_every=250))


def test_one_update_per_environment_step(vector_run):
    # Updates run in iterations whose step count exceeds learning_starts (200): N per iteration.
    assert int(vector_run.agent.updates.numpy()) == 500 - 200
    assert [e[0] for e in vector_run.evaluations] == [250, 500]


def test_each_copy_chains_its_transitions_up_to_the_true_last_observation(vector_run):
    data = read_saved_transitions(vector_run.run_dir / "checkpoints" / "buffer-500.npz")
    obs, next_obs, truncated = data.observations, data.next_observations, data.truncated[:, 0]
    assert len(obs) == 500
    # Rows alternate copy 0, copy 1; within an episode a copy's next row starts where it ended.
    for copy in range(N):
        rows = np.arange(copy, 500, N)
        ends = rows[truncated[rows] > 0]
        assert ends.tolist() == [398 + copy, 498 + copy]  # time limit, then the final checkpoint
        inside = rows[:-1][truncated[rows[:-1]] == 0]
        np.testing.assert_array_equal(next_obs[inside], obs[inside + N])
        # The episode's last successor is its final observation, not the next episode's reset.
        assert not np.allclose(next_obs[398 + copy], obs[400 + copy])
    assert len(vector_run.episode_returns) == 4


def test_same_seed_gives_identical_vector_run(tmp_path, vector_run):
    again = train(vector_config(tmp_path, "again", total_steps=500, checkpoint_every=0, eval_every=250))
    assert again.episode_returns == vector_run.episode_returns
    assert again.evaluations == vector_run.evaluations
    assert_same_weights(weights(again), weights(vector_run))


def test_fused_call_gives_the_same_vector_run(tmp_path, vector_run):
    other = train(vector_config(tmp_path, "unfused", total_steps=500, checkpoint_every=0,
                                eval_every=250, fuse_act=False))
    assert other.episode_returns == vector_run.episode_returns
    assert_same_weights(weights(other), weights(vector_run))


def test_vector_resume_from_a_mid_episode_checkpoint_matches_the_uninterrupted_run(tmp_path):
    full = train(vector_config(tmp_path, "cut", total_steps=500, checkpoint_every=300, eval_every=150))
    first = train(vector_config(tmp_path, "cut2", total_steps=300, checkpoint_every=300, eval_every=150))
    resumed = train(vector_config(tmp_path, "cut2", total_steps=500, checkpoint_every=300,
                                  eval_every=150, resume=True), given={"total_steps", "resume"})
    assert first.episode_returns + resumed.episode_returns == full.episode_returns
    assert first.evaluations + resumed.evaluations == full.evaluations
    assert_same_weights(weights(resumed), weights(full))
    # The step-300 checkpoint cut both copies' episodes (150 steps each) as truncations.
    data = read_saved_transitions(tmp_path / "cut" / "checkpoints" / "buffer-500.npz")
    assert np.flatnonzero(data.truncated[:, 0]).tolist() == [298, 299, 498, 499]
    assert len(full.episode_returns) == 4


def test_vector_n_step_run_keeps_one_update_per_step(tmp_path):
    # n-step windows emit 0..N*n rows per iteration; the updates still run N per iteration.
    run = train(vector_config(tmp_path, "nstep", total_steps=400, checkpoint_every=0, eval_every=0,
                              n_step=3))
    assert int(run.agent.updates.numpy()) == 400 - 200
    assert len(run.agent.replay) == 400


# --- every noise type and --skip-nonfinite with several copies ---------------------------------
def test_ou_noise_keeps_one_process_per_copy_and_restarts_only_ended_copies():
    from ddpg_tf.noise import OrnsteinUhlenbeckNoise

    ou = OrnsteinUhlenbeckNoise(-np.ones(2), np.ones(2), 0.2, seed=4, copies=3, dtype="float64")
    first = ou.sample_n(3).numpy()
    assert first.shape == (3, 2) and len({tuple(r) for r in first}) == 3  # independent copies
    before = ou.state.numpy().copy()
    ou.reset(np.array([False, True, False]))
    after = ou.state.numpy()
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    np.testing.assert_array_equal(after[1], np.zeros(2))
    with pytest.raises(ValueError, match="3 copies"):
        ou.sample_n(2)


@pytest.mark.parametrize("noise", ["ou", "param"])
def test_stateful_noise_with_several_copies_resumes_exactly(tmp_path, noise):
    cfg = dict(noise=noise, checkpoint_every=300, eval_every=0, param_noise_adapt_every=20,
               jit_compile=False)  # XLA compiles would dominate these short runs
    full = train(vector_config(tmp_path, "full", total_steps=400, **cfg))
    first = train(vector_config(tmp_path, "cut", total_steps=300, **cfg))
    resumed = train(vector_config(tmp_path, "cut", total_steps=400, resume=True, **cfg),
                    given={"total_steps", "resume"})
    assert first.episode_returns + resumed.episode_returns == full.episode_returns
    assert_same_weights(weights(resumed), weights(full))
    assert int(full.agent.updates.numpy()) == 400 - 200


def test_skip_nonfinite_with_several_copies_drops_only_the_bad_transitions(tmp_path):
    from tests.test_guards import tiny

    result = train(tiny(tmp_path, "NaNRewardPendulum-v0", skip_nonfinite=True, num_envs=2))
    assert result.steps == 400
    rewards = read_saved_transitions(tmp_path / "r" / "checkpoints" / "buffer-400.npz").rewards
    # Each copy meets the NaN reward once (its step 150): 2 of 400 transitions dropped.
    assert rewards.shape[0] == 398 and np.all(np.isfinite(rewards))
    with pytest.raises(TrainingError, match="non-finite observation"):
        train(tiny(tmp_path / "b", "InfObsPendulum-v0", num_envs=2))
