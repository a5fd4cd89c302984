"""``ddpg_tf.tf_envs``: Pendulum-v1 and MountainCarContinuous-v0 in TensorFlow against gymnasium 1.4.

Pins: with ``dtype=float64`` whole episodes (random actions beyond the bounds, float32 and float64
actions, the goal reached by a scripted policy, the 200/999-step truncation) give gymnasium's
states and observations bit for bit and its rewards to 1e-12 (the one exception, glibc's
``powf`` misrounding a squared torque, is pinned on its own); with ``dtype=float32`` each step
from gymnasium's state agrees to float32 rounding and free-running episodes stay close; a batch
equals its copies stepped alone; one seed, one reset; a compiled ``tf.while_loop`` equals eager
steps; same-step autoreset; the gymnasium-facing envs pass ``check_env``, equal gymnasium's spaces
and ``SyncVectorEnv``'s ``final_obs`` infos.
"""

from __future__ import annotations

import importlib.util
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ddpg_tf.tf_envs as tf_envs
from ddpg_tf._quiet import tf
from ddpg_tf.errors import UsageError
from ddpg_tf.tf_envs import core, mountain_car, pendulum

ENVS = {"pendulum": (pendulum, pendulum.PendulumState, "Pendulum-v1", tf_envs.PENDULUM_ID),
        "mountain_car": (mountain_car, mountain_car.MountainCarState, "MountainCarContinuous-v0",
                         tf_envs.MOUNTAIN_CAR_ID)}
STEP = {name: tf.function(module.step) for name, (module, *_) in ENVS.items()}


def gym_env(gym_id):
    return gym.make(gym_id, disable_env_checker=True)


def make_state(name, values, dtype, elapsed=None):
    """The core state of the rows ``values`` ([n, 2]: gymnasium's ``env.unwrapped.state`` each)."""
    values = np.asarray(values, np.float64).reshape(-1, 2)
    elapsed = np.zeros(len(values)) if elapsed is None else elapsed
    return ENVS[name][1](tf.constant(values[:, 0], dtype), tf.constant(values[:, 1], dtype),
                         tf.constant(elapsed, tf.int32))


def gym_episode(name, seed, policy, action_dtype):
    """One gymnasium episode (``gym.make``'s TimeLimit included): the reset state and, per step,
    the action, observation, reward, flags and ``env.unwrapped.state``."""
    env = gym_env(ENVS[name][2])
    obs, _ = env.reset(seed=seed)
    start = np.asarray(env.unwrapped.state, np.float64)
    rng, rows = np.random.default_rng(seed), []
    while True:
        action = np.asarray(policy(rng, obs), action_dtype)
        obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((action, obs, reward, terminated, truncated, np.asarray(env.unwrapped.state, np.float64)))
        if terminated or truncated:
            return start, *(np.array(column) for column in zip(*rows, strict=True))


def tf_replay(name, start, actions, dtype):
    """The same actions through the TF env from ``start``, step by step (compiled step)."""
    state, rows = make_state(name, start, dtype), []
    for action in actions:
        state, obs, reward, terminated, truncated = STEP[name](state, action[None])
        rows.append((obs.numpy()[0], reward.numpy()[0], terminated.numpy()[0], truncated.numpy()[0],
                     np.array([state[0].numpy()[0], state[1].numpy()[0]])))
    return [np.array(column) for column in zip(*rows, strict=True)]


def uniform_actions(limit):
    def policy(rng, obs):
        return rng.uniform(-limit, limit, size=1)
    policy.__name__ = f"uniform{limit}"
    return policy


def towards_goal(rng, obs):
    """Push along the velocity (beyond the bounds, to clip), with noise: reaches the goal."""
    return np.array([1.6 if obs[1] >= 0 else -1.6]) + rng.uniform(-0.7, 0.7, size=1)


def powf_misrounds(u):
    """glibc's powf(u, 2), what NumPy's float32 ``u**2`` calls, differs from the exact u·u."""
    u = np.float32(u)
    return u**2 != np.float32(np.float64(u) * np.float64(u))


def reward_slack(name, actions):
    """1e-12, or 5e-10 where gymnasium squared a float32 torque with a misrounding powf."""
    slack = np.full(len(actions), 1e-12)
    if name == "pendulum" and actions.dtype == np.float32:  # see test_pendulum_powf_reward_difference
        slack[[powf_misrounds(u) for u in np.clip(actions[:, 0], -2, 2)]] = 5e-10
    return slack


# -- float64: gymnasium to the last bit ---------------------------------------------------------


@pytest.mark.parametrize("action_dtype", [np.float32, np.float64], ids=["f32_action", "f64_action"])
@pytest.mark.parametrize("name, policy, length, ends_by", [
    ("pendulum", uniform_actions(3.0), 200, "truncation"),
    ("mountain_car", uniform_actions(1.6), 999, "truncation"),
    ("mountain_car", towards_goal, None, "termination"),
])
def test_float64_episode_equals_gymnasium(name, policy, length, ends_by, action_dtype):
    start, actions, obs, rewards, terminated, truncated, states = gym_episode(name, 3, policy, action_dtype)
    tf_obs, tf_rewards, tf_terminated, tf_truncated, tf_states = tf_replay(name, start, actions, tf.float64)
    assert len(actions) == (length or len(actions)) and np.abs(actions).max() > 1.0  # some clipped
    assert (truncated[-1], terminated[-1]) == (ends_by == "truncation", ends_by == "termination")
    np.testing.assert_array_equal(tf_terminated, terminated)
    np.testing.assert_array_equal(tf_truncated, truncated)  # TF's own counter vs gymnasium's TimeLimit
    np.testing.assert_array_equal(tf_obs, obs)
    np.testing.assert_array_equal(tf_states, states)
    reward_error = np.abs(tf_rewards - rewards)
    assert np.all(reward_error <= reward_slack(name, actions)), reward_error.max()
    if ends_by == "termination":
        assert rewards[-1] > 90


def test_pendulum_powf_reward_difference():
    """The documented difference: NumPy squares a float32 torque with C's powf, which glibc
    misrounds for ~0.1% of values; the reward then differs by < 5e-10, the state not at all."""
    candidates = np.random.default_rng(0).uniform(-2, 2, 20000).astype(np.float32)
    misrounded = [u for u in candidates if powf_misrounds(u)]
    if not misrounded:
        pytest.skip("this libm's powf rounds u**2 correctly: rewards agree to 1e-12")
    env = gym_env("Pendulum-v1")
    env.reset(seed=0)
    state = make_state("pendulum", env.unwrapped.state, tf.float64)
    action = np.array([misrounded[0]], np.float32)
    _, reward, *_ = env.step(action)
    new_state, _, tf_reward, *_ = STEP["pendulum"](state, action[None])
    assert 0 < abs(tf_reward.numpy()[0] - reward) < 5e-10
    np.testing.assert_array_equal([new_state.theta.numpy()[0], new_state.theta_dot.numpy()[0]],
                                  env.unwrapped.state)


# -- float32: float32 rounding -------------------------------------------------------------------


@pytest.mark.parametrize("name, policy", [("pendulum", uniform_actions(3.0)), ("mountain_car", towards_goal),
                                          ("mountain_car", uniform_actions(1.6))])
def test_float32_each_step_from_gymnasium_state(name, policy):
    """Every transition of a gymnasium episode, recomputed in float32 from gymnasium's state."""
    start, actions, obs, rewards, terminated, truncated, states = gym_episode(name, 4, policy, np.float32)
    before = np.concatenate([start[None], states[:-1]])
    state = make_state(name, before, tf.float32, elapsed=np.arange(len(actions)))
    new_state, tf_obs, tf_rewards, tf_terminated, tf_truncated = ENVS[name][0].step(state, actions)
    np.testing.assert_allclose(np.stack([new_state[0], new_state[1]], 1), states, rtol=0, atol=1e-5)
    np.testing.assert_allclose(tf_obs.numpy(), obs, rtol=0, atol=1e-5)
    np.testing.assert_allclose(tf_rewards.numpy(), rewards, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(tf_terminated.numpy(), terminated)
    np.testing.assert_array_equal(tf_truncated.numpy(), truncated)


@pytest.mark.parametrize("name, policy, tolerance", [
    # largest over seeds 0-9: 3.5e-4 (float32 rounding grows along 200 chaotic steps), 5e-6, 2.4e-7
    ("pendulum", uniform_actions(3.0), 2e-3),
    ("mountain_car", uniform_actions(1.6), 2e-4),
    ("mountain_car", towards_goal, 1e-6),
])
def test_float32_free_running_episode_stays_close(name, policy, tolerance):
    start, actions, obs, _, terminated, truncated, states = gym_episode(name, 0, policy, np.float32)
    tf_obs, _, tf_terminated, tf_truncated, tf_states = tf_replay(name, start, actions, tf.float32)
    np.testing.assert_array_equal(tf_terminated, terminated)
    np.testing.assert_array_equal(tf_truncated, truncated)
    np.testing.assert_allclose(tf_states, states, rtol=0, atol=tolerance)
    np.testing.assert_allclose(tf_obs, obs, rtol=0, atol=tolerance)


# -- batches, seeds, compiled loops, autoreset ---------------------------------------------------


def random_states(name, n, dtype, rng):
    if name == "pendulum":
        values = np.stack([rng.uniform(-20, 20, n), rng.uniform(-8, 8, n)], 1)
    else:
        values = np.stack([rng.uniform(-1.2, 0.6, n), rng.uniform(-0.07, 0.07, n)], 1)
    # elapsed 0 too: MountainCar's first step after a reset is computed apart
    return make_state(name, values, dtype, elapsed=rng.integers(0, 3, n))


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", ENVS)
def test_batched_step_equals_each_copy_alone(name, dtype):
    module = ENVS[name][0]
    rng = np.random.default_rng(1)
    n = 16
    state = random_states(name, n, dtype, rng)
    actions = rng.uniform(-3, 3, (n, 1)).astype(np.float32)
    batched = module.step(state, actions)
    for i in range(n):
        alone = module.step(type(state)(*(field[i:i + 1] for field in state)), actions[i:i + 1])
        for whole, part in zip(tf.nest.flatten(batched), tf.nest.flatten(alone), strict=True):
            np.testing.assert_array_equal(whole.numpy()[i:i + 1], part.numpy())


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", ENVS)
def test_same_seed_same_reset(name, dtype):
    module = ENVS[name][0]
    a, obs_a = module.reset(tf.constant([5, 6]), 1000, dtype)
    b, obs_b = module.reset(tf.constant([5, 6]), 1000, dtype)
    c, _ = module.reset(tf.constant([5, 7]), 1000, dtype)
    g1, g2 = tf.random.Generator.from_seed(9), tf.random.Generator.from_seed(9)
    d, e = module.reset(g1, 1000, dtype)[0], module.reset(g2, 1000, dtype)[0]
    for x, y in zip(a + d, b + e, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    np.testing.assert_array_equal(obs_a.numpy(), obs_b.numpy())
    assert not np.any(a[0].numpy() == c[0].numpy())
    assert not np.array_equal(module.reset(g1, 1000, dtype)[0][0].numpy(), d[0].numpy())  # it advanced
    assert a[0].dtype == dtype and obs_a.dtype == tf.float32
    np.testing.assert_array_equal(a.elapsed_steps.numpy(), 0)


def test_reset_distributions_and_options():
    state, obs = pendulum.reset(tf.constant([1, 2]), 20000)
    theta, theta_dot = state.theta.numpy(), state.theta_dot.numpy()
    assert -math.pi <= theta.min() < -3.1 and 3.1 < theta.max() < math.pi
    assert -1 <= theta_dot.min() < -0.999 and 0.999 < theta_dot.max() < 1
    assert abs(theta.mean()) < 0.05 and abs(theta_dot.mean()) < 0.02
    np.testing.assert_array_equal(obs.numpy()[:, 0], np.cos(theta).astype(np.float32))
    narrow, _ = pendulum.reset(tf.constant([1, 2]), 20000,
                               params=pendulum.PendulumParams(x_init=0.5, y_init=0.25))
    np.testing.assert_allclose(narrow.theta.numpy(), theta * (0.5 / math.pi), rtol=1e-12, atol=1e-15)
    assert np.abs(narrow.theta_dot.numpy()).max() < 0.25
    car, car_obs = mountain_car.reset(tf.constant([1, 2]), 20000)
    position = car.position.numpy()
    assert -0.6 <= position.min() < -0.599 and -0.401 < position.max() < -0.4
    np.testing.assert_array_equal(car.velocity.numpy(), 0)
    np.testing.assert_array_equal(car_obs.numpy()[:, 0], position.astype(np.float32))


@pytest.mark.parametrize("name, dtype", [("pendulum", tf.float32), ("pendulum", tf.float64),
                                         ("mountain_car", tf.float64)],
                         ids=["pendulum-float32", "pendulum-float64", "mountain_car-float64"])
def test_compiled_while_loop_equals_eager_steps(name, dtype):
    """200 steps of step_autoreset (Pendulum truncates and resets at step 200) in one
    tf.while_loop, against the same steps called eagerly one by one."""
    module = ENVS[name][0]
    n, steps = 4, 200
    key = tf.constant([3, 4], tf.int64)

    def keys(i):
        return tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(key, i), 2)

    def one_step(i, state):
        k = keys(i)
        action = tf.random.stateless_uniform([n, 1], k[0], -2.5, 2.5)
        state, obs, reward, terminated, truncated, final_obs = module.step_autoreset(state, action, k[1])
        return state, (obs, reward, terminated, truncated, final_obs)

    @tf.function
    def compiled(state):
        def body(i, state, total, ended):
            state, (_, reward, terminated, truncated, _) = one_step(i, state)
            return i + 1, state, total + reward, ended + tf.cast(terminated | truncated, tf.int32)
        _, state, total, ended = tf.while_loop(lambda i, *_: i < steps, body,
                                               (0, state, tf.zeros([n], dtype), tf.zeros([n], tf.int32)))
        return state, total, ended

    start, _ = module.reset(key, n, dtype)
    state, total, ended = start, tf.zeros([n], dtype), tf.zeros([n], tf.int32)
    for i in range(steps):
        state, (_, reward, terminated, truncated, _) = one_step(tf.constant(i), state)
        total, ended = total + reward, ended + tf.cast(terminated | truncated, tf.int32)
    loop_state, loop_total, loop_ended = compiled(start)
    for x, y in zip((*state, total, ended), (*loop_state, loop_total, loop_ended), strict=True):
        np.testing.assert_array_equal(y.numpy(), x.numpy())
    if name == "pendulum":
        np.testing.assert_array_equal(ended.numpy(), 1)
        np.testing.assert_array_equal(state.elapsed_steps.numpy(), 0)


@pytest.mark.parametrize("name, tolerance", [("pendulum", 1e-8), ("mountain_car", 0.0)])
def test_xla_loop_against_tensorflow_kernels(name, tolerance):
    """float64 under jit_compile=True: MountainCar stays bit-identical (so equal to gymnasium);
    Pendulum drifts by ~1e-10 in 200 steps (XLA fuses multiply-adds on CPU; measured 6e-10 on
    the summed rewards of 256 copies)."""
    module, n = ENVS[name][0], 64
    actions = tf.constant(np.random.default_rng(0).uniform(-2.5, 2.5, (200, n, 1)).astype(np.float32))

    def run(state):
        def body(i, state, total):
            state, _, reward, _, _ = module.step(state, actions[i])
            return i + 1, state, total + reward
        return tf.while_loop(lambda i, *_: i < 200, body, (0, state, tf.zeros([n], tf.float64)))[1:]

    start = module.reset(tf.constant([1, 2]), n)[0]
    for x, y in zip(tf.nest.flatten(tf.function(run)(start)),
                    tf.nest.flatten(tf.function(run, jit_compile=True)(start)), strict=True):
        np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=0, atol=tolerance)


def test_step_autoreset_resets_only_the_ended_copies():
    n = 6
    state, _ = pendulum.reset(tf.constant([1, 1]), n)
    state = state._replace(elapsed_steps=tf.constant([199, 0, 199, 5, 198, 199]))
    action = tf.fill([n, 1], 0.5)
    seed = tf.constant([8, 9])
    stepped, obs, reward, terminated, truncated = pendulum.step(state, action)
    new, new_obs, new_reward, new_term, new_trunc, final_obs = pendulum.step_autoreset(state, action, seed)
    fresh, fresh_obs = pendulum.reset(seed, n)
    ended = np.array([True, False, True, False, False, True])
    np.testing.assert_array_equal(new_trunc.numpy(), ended)
    np.testing.assert_array_equal(final_obs.numpy(), obs.numpy())  # the true last observation
    np.testing.assert_array_equal(new_reward.numpy(), reward.numpy())
    for got, reset_field, step_field in zip(new, fresh, stepped, strict=True):
        np.testing.assert_array_equal(got.numpy(), np.where(ended, reset_field.numpy(), step_field.numpy()))
    np.testing.assert_array_equal(new_obs.numpy(), np.where(ended[:, None], fresh_obs.numpy(), obs.numpy()))


# -- the gymnasium-facing envs --------------------------------------------------------------------


# check_env warns that Pendulum's [-2, 2] torque is not normalised, for gymnasium's Pendulum-v1 too
@pytest.mark.filterwarnings("ignore:.*symmetric and normalized space")
@pytest.mark.parametrize("name", ENVS)
def test_gym_env_passes_check_env_and_has_gymnasiums_spaces(name):
    _, _, gym_id, tf_id = ENVS[name]
    env, reference = gym.make(tf_id), gym.make(gym_id)
    assert env.observation_space == reference.observation_space
    assert env.action_space == reference.action_space
    assert env.spec.max_episode_steps == reference.spec.max_episode_steps
    assert env.spec.reward_threshold == reference.spec.reward_threshold
    assert str(env).startswith("<TimeLimit<OrderEnforcing<PassiveEnvChecker<")
    check_env(type(env.unwrapped)(), skip_render_check=True)
    check_env(env.unwrapped, skip_render_check=importlib.util.find_spec("pygame") is None)
    assert env.action_space is not gym.make(tf_id).action_space  # each env seeds its own spaces
    obs, info = env.reset(seed=11)
    assert info == {} and obs.dtype == np.float32 and obs.shape == env.observation_space.shape
    np.testing.assert_array_equal(env.reset(seed=11)[0], obs)


@pytest.mark.parametrize("name", ENVS)
def test_gym_env_steps_like_gymnasium(name):
    """The single env from gymnasium's state, through gym.make's wrappers, for a whole episode."""
    _, _, gym_id, tf_id = ENVS[name]
    env, reference = gym.make(tf_id), gym.make(gym_id)
    env.reset(seed=0)
    reference.reset(seed=5)
    env.unwrapped.state = make_state(name, reference.unwrapped.state, tf.float64)
    rng, steps, ended = np.random.default_rng(0), 0, False
    while not ended:
        action = rng.uniform(-1.5, 1.5, size=1).astype(np.float32)
        got, expected = env.step(action), reference.step(action)
        np.testing.assert_array_equal(got[0], expected[0])
        assert abs(got[1] - expected[1]) <= reward_slack(name, action[None])[0]
        assert got[2:] == expected[2:]
        steps, ended = steps + 1, got[2] or got[3]
    assert steps == reference.spec.max_episode_steps
    with pytest.raises(UsageError, match="shape"):
        env.unwrapped.step(np.zeros(2, np.float32))


def test_vector_env_is_registered_and_matches_gymnasium_copies():
    """make_vec gives the TF vector env (registry time limit, SAME_STEP); from gymnasium's start
    states its copies step like gymnasium's envs, and at the truncation the info carries
    gymnasium's final observations in SyncVectorEnv's layout."""
    n = 3
    envs = gym.make_vec(tf_envs.PENDULUM_ID, num_envs=n)
    assert isinstance(envs, tf_envs.TFPendulumVectorEnv)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    assert envs.params.max_episode_steps == 200
    assert envs.single_observation_space == gym.make("Pendulum-v1").observation_space
    refs = [gym_env("Pendulum-v1") for _ in range(n)]
    for i, ref in enumerate(refs):
        ref.reset(seed=i)
    envs.reset(seed=0)
    envs.state = make_state("pendulum", [ref.unwrapped.state for ref in refs], tf.float64)
    rng = np.random.default_rng(2)
    for _ in range(200):
        actions = rng.uniform(-2.5, 2.5, (n, 1)).astype(np.float32)
        obs, rewards, terminated, truncated, info = envs.step(actions)
        expected = [ref.step(a) for ref, a in zip(refs, actions, strict=True)]
        assert rewards.dtype == np.float64 and terminated.dtype == truncated.dtype == np.bool_
        np.testing.assert_array_equal(truncated, [e[3] for e in expected])
    np.testing.assert_array_equal(np.stack(info["final_obs"]), np.stack([e[0] for e in expected]))
    assert not np.array_equal(obs, np.stack(info["final_obs"]))  # the reset observations
    sync = gym.make_vec("Pendulum-v1", num_envs=n, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    sync.reset(seed=0)
    for _ in range(200):
        sync_info = sync.step(actions)[4]
    assert info.keys() == sync_info.keys()
    for key, value in sync_info.items():
        if isinstance(value, np.ndarray):
            assert (info[key].dtype, info[key].shape) == (value.dtype, value.shape), key
            if value.dtype == np.bool_:
                np.testing.assert_array_equal(info[key], value)
        else:
            assert info[key] == value


def test_vector_env_seeding_reset_mask_and_errors():
    envs = tf_envs.TFMountainCarContinuousVectorEnv(num_envs=4, max_episode_steps=5, dtype="float32")
    first = envs.reset(seed=3)[0]
    np.testing.assert_array_equal(envs.reset(seed=3)[0], first)
    trajectory = [envs.step(np.full((4, 1), 0.3, np.float32)) for _ in range(5)]
    assert trajectory[-1][3].all() and not any(step[3].any() for step in trajectory[:-1])
    envs.reset(seed=3)
    again = [envs.step(np.full((4, 1), 0.3, np.float32)) for _ in range(5)]
    for a, b in zip(trajectory, again, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    before = envs.state
    mask = np.array([True, False, False, True])
    obs, _ = envs.reset(options={"reset_mask": mask, "low": -0.2, "high": -0.1})
    assert np.all((obs[mask, 0] >= -0.2) & (obs[mask, 0] < -0.1))
    np.testing.assert_array_equal(envs.state.position.numpy()[~mask], before.position.numpy()[~mask])
    np.testing.assert_array_equal(envs.state.elapsed_steps.numpy(), [0, 0, 0, 0])  # autoreset at step 5
    with pytest.raises(UsageError, match="one int"):
        envs.reset(seed=[1, 2, 3, 4])
    with pytest.raises(UsageError, match="shape"):
        envs.step(np.zeros((3, 1), np.float32))
    with pytest.raises(UsageError, match="float32 or float64"):
        tf_envs.TFPendulumEnv(dtype="int32")
    with pytest.raises(UsageError, match=r"\[n, 1\]"):
        pendulum.step(pendulum.reset(tf.constant([0, 0]), 2)[0], tf.zeros([2]))


def test_render_draws_with_gymnasiums_class(monkeypatch):
    drawn = []
    monkeypatch.setattr(gym.envs.classic_control.pendulum.PendulumEnv, "render",
                        lambda self: drawn.append((self.state.copy(), self.last_u)) or "frame")
    env = tf_envs.TFPendulumEnv(render_mode="rgb_array")
    env.reset(seed=1)
    env.step(np.array([0.75], np.float32))
    assert env.render() == "frame"
    np.testing.assert_array_equal(drawn[-1][0], [env.state.theta.numpy()[0], env.state.theta_dot.numpy()[0]])
    assert drawn[-1][1] == np.float32(0.75)


def test_as_dtype():
    assert core.as_dtype("float32") == tf.float32 and core.as_dtype(np.float64) == tf.float64
