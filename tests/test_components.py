"""Networks, exploration noise, replay buffer and configuration/CLI, with numbers pinned."""

import dataclasses

import numpy as np
import pytest

from ddpg_tf._quiet import tf  # before keras: silences TensorFlow's start-up

import keras
from ddpg_tf import cli, networks, noise
from ddpg_tf.config import PRESETS, Config, ConfigError
from ddpg_tf.replay_buffer import ReplayBuffer

SYMMETRIC = (np.array([-2.0, -2.0, -2.0]), np.array([2.0, 2.0, 2.0]))
ASYMMETRIC = (np.array([-2.0, 0.0, -0.5]), np.array([2.0, 1.0, 3.0]))
BOUNDS = pytest.mark.parametrize("bounds", [SYMMETRIC, ASYMMETRIC], ids=["symmetric", "asymmetric"])
DTYPES = pytest.mark.parametrize("dtype", ["float32", "float64"])


# ======================================================================================
# Networks
# ======================================================================================
def scale_offset(low, high):
    return (high - low) / 2.0, (high + low) / 2.0


@DTYPES
@BOUNDS
def test_actor_outputs_within_bounds_for_large_observations(bounds, dtype):
    low, high = bounds
    actor = networks.build_actor(5, low, high, (32, 32), seed=2, dtype=dtype)
    obs = np.random.default_rng(0).normal(scale=1e3, size=(512, 5)).astype(dtype)
    a = actor(tf.constant(obs)).numpy()
    assert a.shape == (512, 3) and a.dtype == np.dtype(dtype)
    lo, hi = low.astype(dtype), high.astype(dtype)
    assert np.all(a >= lo) and np.all(a <= hi)
    # Large observations move the output: it is not stuck at the centre.
    assert np.all(np.std(a, axis=0) > 1e-3 * (high - low))


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_actor_tanh_rounds_like_pytorch_and_its_gradient_is_one_minus_y_squared(jit_compile):
    """float32: within one ulp of the correctly rounded tanh from |z| = 4 on (TensorFlow's own
    kernel below, within 5), exactly ±1 only from 13 ln 2 = 9.0109 (TensorFlow's tanh: from
    7.91, 7.9989 under XLA), and the gradient is 1 - y² of the output, as PyTorch computes
    it (to an ulp under XLA): positive until the output is ±1, then exactly 0."""
    z = np.concatenate([np.linspace(-12.0, 12.0, 240_001), [-50.0, 50.0, 1e4]]).astype(np.float32)

    @tf.function(jit_compile=jit_compile)
    def value_and_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = networks.rounded_tanh(x)
        return y, tape.gradient(y, x)

    y, g = (t.numpy() for t in value_and_grad(tf.constant(z)))
    exact = np.tanh(z.astype(np.float64)).astype(np.float32)
    tail = np.abs(z) >= networks.TANH_TAIL
    assert _ulps(y, exact)[tail].max() <= 1 and _ulps(y, exact)[~tail].max() <= 5
    one = 13 * np.log(2.0)
    assert np.all(np.abs(y[np.abs(z) < one - 1e-4]) < 1.0)
    assert np.all(np.abs(y[np.abs(z) > one + 1e-4]) == 1.0)
    # XLA may fuse 1 - y * y into one multiply-add (one rounding instead of two).
    np.testing.assert_allclose(g, 1.0 - y * y, rtol=0, atol=2.0**-24 if jit_compile else 0.0)
    assert np.all(g[np.abs(y) < 1.0] > 0.0) and np.all(g[np.abs(y) == 1.0] == 0.0)
    assert np.all(g[np.abs(z) < 9.0] >= 1.19e-7)  # TensorFlow's tanh passed 0 here from 7.91


def test_actor_tanh_in_float64_and_through_the_actor():
    z = np.linspace(-25.0, 25.0, 20_001)
    np.testing.assert_allclose(networks.rounded_tanh(tf.constant(z)).numpy(), np.tanh(z), rtol=0, atol=1e-15)
    # An actor whose pre-activation is 8.5 on every state: still inside (-1, 1), with a gradient.
    actor = networks.build_actor(2, np.array([-1.0]), np.array([1.0]), (4,), seed=0)
    last = actor.get_layer("pre_action")
    last.set_weights([np.zeros((4, 1), np.float32), np.array([8.5], np.float32)])
    with tf.GradientTape() as tape:
        a = actor(tf.zeros((3, 2)))
    grad = tape.gradient(a, last.bias).numpy()
    y = a.numpy()
    assert np.all(y == np.float32(1.0 - 2.0**-24))  # tanh(8.5) = 1 - 8.3e-8, rounded
    assert grad[0] == np.float32(3.0) * (np.float32(1.0) - y[0, 0] * y[0, 0]) > 0.0
    assert float(tf.reduce_max(tf.abs(tf.tanh(tf.constant(8.5))))) == 1.0  # TensorFlow's own kernel


@DTYPES
@BOUNDS
def test_saturated_actor_approaches_but_never_exceeds_bounds(bounds, dtype):
    low, high = bounds
    actor = networks.build_actor(5, low, high, (32, 32), seed=4, dtype=dtype)
    obs = tf.constant(np.random.default_rng(1).normal(scale=1e3, size=(2048, 5)).astype(dtype))
    # Large weights saturate the tanh. The final bias is then set to minus the median
    # pre-activation, so that every component is pushed hard towards both of its ends.
    for v in actor.trainable_variables:
        v.assign(v * (1e3 if v.path.startswith("pre_action") else 10.0))
    pre_action = actor.get_layer("pre_action")
    z = keras.Model(actor.inputs, pre_action.output)(obs).numpy()
    pre_action.bias.assign(pre_action.bias - np.median(z, axis=0))
    z = keras.Model(actor.inputs, pre_action.output)(obs).numpy()
    assert np.all(np.max(z, axis=0) > 20) and np.all(np.min(z, axis=0) < -20)  # tanh saturated
    a = actor(obs).numpy()
    lo, hi = low.astype(dtype), high.astype(dtype)
    assert np.all(a >= lo) and np.all(a <= hi)
    # Both ends of every component are reached to within 1e-6 of the range.
    tol = 1e-6 * (high - low)
    assert np.all(a.max(axis=0) >= high - tol), (a.max(axis=0), high)
    assert np.all(a.min(axis=0) <= low + tol), (a.min(axis=0), low)


def test_saturated_float32_actor_stays_within_non_dyadic_bounds():
    low = np.array([-1.0, 0.1], np.float32).astype(np.float64)  # as from a float32 Box
    high = np.array([0.7, 0.4], np.float32).astype(np.float64)
    actor = networks.build_actor(2, low, high, (4,), dtype="float32")
    for v in actor.trainable_variables:
        v.assign(tf.zeros_like(v))
    bias = actor.get_layer("pre_action").bias
    for sign in (1.0, -1.0):
        bias.assign(sign * tf.constant([100.0, 100.0]))  # tanh(+-100) == +-1 exactly
        a = actor(tf.zeros((1, 2))).numpy()[0]
        assert np.all(a <= high.astype(np.float32)) and np.all(a >= low.astype(np.float32)), a


@BOUNDS
def test_linear_actor_output_is_the_affine_map_without_squash(bounds):
    low, high = bounds
    actor = networks.build_actor(3, low, high, (3,), output="linear", dtype="float64")
    names = [v.path for v in actor.trainable_variables]
    assert names == ["hidden0_dense/kernel", "hidden0_dense/bias", "pre_action/kernel", "pre_action/bias"]
    W1 = np.eye(3)
    b1 = np.zeros(3)
    W2 = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0], [1.5, 0.5, 4.0]])
    b2 = np.array([0.25, -0.5, 1.0])
    for v, value in zip(actor.trainable_variables, (W1, b1, W2, b2), strict=True):
        v.assign(value)
    obs = np.array([[1.0, 2.0, 0.5], [0.0, 0.1, 3.0], [2.0, 0.0, 0.0]])  # >= 0: ReLU passes
    z = obs @ W2 + b2
    assert np.max(np.abs(z)) > 1.0  # outside tanh's range: a squash would be visible
    scale, offset = scale_offset(low, high)
    expected = z * scale + offset
    a = actor(tf.constant(obs)).numpy()
    np.testing.assert_allclose(a, expected, rtol=0, atol=1e-13)
    assert np.any(a > high) or np.any(a < low)  # linear output can leave the bounds
    # The same weights with output="tanh" squash: a = tanh(z) * scale + offset.
    squashed = networks.build_actor(3, low, high, (3,), output="tanh", dtype="float64")
    for v, value in zip(squashed.trainable_variables, (W1, b1, W2, b2), strict=True):
        v.assign(value)
    np.testing.assert_allclose(squashed(tf.constant(obs)).numpy(), np.tanh(z) * scale + offset,
                               rtol=0, atol=1e-13)


def test_unknown_actor_output_raises():
    with pytest.raises(ValueError, match="unknown actor output"):
        networks.build_actor(3, -np.ones(2), np.ones(2), (4,), output="relu")


def _dense_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


@pytest.mark.parametrize("which", ["actor", "critic"])
def test_initialisation_ranges(which):
    obs_dim, action_dim, hidden = 17, 6, (64, 48)
    if which == "actor":
        model = networks.build_actor(obs_dim, -np.ones(action_dim), np.ones(action_dim), hidden, seed=9)
    else:
        model = networks.build_critic(obs_dim, action_dim, hidden, action_layer=1, seed=9)
    dense = _dense_layers(model)
    assert len(dense) == 3
    *hidden_layers, final = dense
    # Final layer: kernel and bias in U[-3e-3, 3e-3].
    for w in (final.kernel.numpy(), final.bias.numpy()):
        assert np.all(np.abs(w) <= networks.FINAL_INIT_LIMIT)
    k = final.kernel.numpy()
    assert np.max(np.abs(k)) > 0.8 * 3e-3  # spread over the range, not collapsed to 0
    # Hidden layers: kernel (and bias) in U[-1/sqrt(fan_in), 1/sqrt(fan_in)].
    for layer in hidden_layers:
        kernel = layer.kernel.numpy()
        limit = 1.0 / np.sqrt(kernel.shape[0])
        assert np.all(np.abs(kernel) <= limit)
        assert np.all(np.abs(layer.bias.numpy()) <= limit)
        assert np.max(np.abs(kernel)) > 0.95 * limit
        # Uniform: std = limit / sqrt(3); n >= 1000 draws, sample std within 10%.
        assert kernel.size >= 1000
        assert abs(kernel.std() / (limit / np.sqrt(3)) - 1.0) < 0.1
        assert abs(kernel.mean()) < 5 * limit / np.sqrt(3) / np.sqrt(kernel.size)


def test_critic_action_joins_after_first_hidden_layer():
    obs_dim, action_dim, hidden = 7, 2, (16, 12)
    critic = networks.build_critic(obs_dim, action_dim, hidden, action_layer=1)
    dense = _dense_layers(critic)
    assert [tuple(d.kernel.shape) for d in dense] == [(obs_dim, 16), (16 + action_dim, 12), (12, 1)]
    # action_layer=0 joins the action with the observation at the input.
    critic0 = networks.build_critic(obs_dim, action_dim, hidden, action_layer=0)
    assert [tuple(d.kernel.shape) for d in _dense_layers(critic0)] == [
        (obs_dim + action_dim, 16), (16, 12), (12, 1)]
    with pytest.raises(ValueError):
        networks.build_critic(obs_dim, action_dim, hidden, action_layer=2)


def test_critic_with_late_action_hand_weights():
    # Q(s, a) with the action joining after hidden layer 0, checked against numpy.
    critic = networks.build_critic(2, 1, (2, 2), action_layer=1, dtype="float64")
    W0 = np.array([[1.0, -1.0], [0.5, 2.0]])
    b0 = np.array([0.1, -0.2])
    W1 = np.array([[0.3, -0.4], [0.2, 0.6], [1.0, -1.0]])  # rows: h0 (2) then action (1)
    b1 = np.array([0.0, 0.5])
    W2 = np.array([[2.0], [-1.5]])
    b2 = np.array([0.25])
    for v, value in zip(critic.trainable_variables, (W0, b0, W1, b1, W2, b2), strict=True):
        v.assign(value)
    s = np.array([[1.0, 2.0], [-1.0, 0.5]])
    a = np.array([[0.3], [-0.7]])
    h0 = np.maximum(s @ W0 + b0, 0)
    h1 = np.maximum(np.concatenate([h0, a], axis=1) @ W1 + b1, 0)
    np.testing.assert_allclose(critic([tf.constant(s), tf.constant(a)]).numpy(), h1 @ W2 + b2,
                               rtol=0, atol=1e-14)


def test_copy_weights_makes_exact_copy():
    a = networks.build_actor(3, -np.ones(2), np.ones(2), (8,), seed=1)
    b = networks.build_actor(3, -np.ones(2), np.ones(2), (8,), seed=2)
    assert not np.array_equal(a.weights[0].numpy(), b.weights[0].numpy())
    networks.copy_weights(a, b)
    for wa, wb in zip(a.weights, b.weights, strict=True):
        assert np.array_equal(wa.numpy(), wb.numpy())


# ======================================================================================
# Noise
# ======================================================================================
def draw(process, n):
    """``n`` consecutive samples, drawn inside one compiled loop (fast)."""

    @tf.function
    def loop():
        ta = tf.TensorArray(process.dtype, size=n)
        for i in tf.range(n):
            ta = ta.write(i, process.sample())
        return ta.stack()

    return loop().numpy()


NOISE_LOW = np.array([-2.0, 0.0, -0.5])
NOISE_HIGH = np.array([2.0, 1.0, 3.0])
HALF_RANGE = (NOISE_HIGH - NOISE_LOW) / 2.0


def test_gaussian_noise_moments():
    n, sigma = 20000, 0.1
    g = noise.GaussianNoise(NOISE_LOW, NOISE_HIGH, sigma, seed=3, dtype="float64")
    x = draw(g, n)
    assert x.shape == (n, 3)
    sd = sigma * HALF_RANGE  # [0.2, 0.05, 0.175]
    # Tolerances: 5 standard errors. For n i.i.d. normal draws the sample mean has standard
    # error sd/sqrt(n) (0.7% of sd for n = 20000) and the sample std sd/sqrt(2(n-1))
    # (0.5% of sd); 5 standard errors = 3.5% and 2.5% of sd.
    mean_tol = 5 * sd / np.sqrt(n)
    std_tol = 5 * sd / np.sqrt(2 * (n - 1))
    assert np.all(np.abs(x.mean(axis=0)) < mean_tol), (x.mean(axis=0), mean_tol)
    assert np.all(np.abs(x.std(axis=0, ddof=1) - sd) < std_tol), (x.std(axis=0, ddof=1), sd, std_tol)
    # Independent across time: lag-1 autocorrelation within 5/sqrt(n) of 0.
    for k in range(3):
        r = np.corrcoef(x[:-1, k], x[1:, k])[0, 1]
        assert abs(r) < 5 / np.sqrt(n)


def test_gaussian_noise_seeding():
    def make(seed):
        return noise.GaussianNoise(NOISE_LOW, NOISE_HIGH, 0.1, seed=seed)

    a, b, c = make(11), make(11), make(12)
    xa = np.stack([a.sample().numpy() for _ in range(20)])
    xb = np.stack([b.sample().numpy() for _ in range(20)])
    xc = np.stack([c.sample().numpy() for _ in range(20)])
    assert np.array_equal(xa, xb)
    assert not np.any(xa == xc)
    assert len({tuple(row) for row in xa}) == 20  # the sequence does not repeat
    # Compiled draws continue the same sequence as eager draws (state is in the generator).
    d = make(11)
    assert np.array_equal(draw(d, 20), xa)
    assert np.array_equal(draw(d, 5), np.stack([a.sample().numpy() for _ in range(5)]))


def _standard_normals(seed, action_dim, dtype="float64"):
    """A GaussianNoise with half range 1 and sigma 1 consumes its generator exactly like the
    OU process and returns the eps ~ N(0, I) the OU process with the same seed draws."""
    return noise.GaussianNoise(-np.ones(action_dim), np.ones(action_dim), 1.0, seed=seed, dtype=dtype)


def test_ou_noise_recursion_matches_recomputation():
    sigma, theta, dt, seed = 0.2, 0.15, 1e-2, 5
    ou = noise.OrnsteinUhlenbeckNoise(NOISE_LOW, NOISE_HIGH, sigma, seed, theta=theta, dt=dt, dtype="float64")
    eps_source = _standard_normals(seed, 3)
    x = np.zeros(3)
    for _ in range(50):
        sample = ou.sample().numpy()
        eps = eps_source.sample().numpy()
        x = x - theta * x * dt + sigma * np.sqrt(dt) * eps
        np.testing.assert_allclose(ou.state.numpy(), x, rtol=0, atol=1e-15)
        np.testing.assert_allclose(sample, x * HALF_RANGE, rtol=0, atol=1e-15)
    assert np.max(np.abs(x)) > 0


def test_ou_noise_reset():
    sigma, theta, dt, seed = 0.2, 0.15, 1e-2, 21
    ou = noise.OrnsteinUhlenbeckNoise(NOISE_LOW, NOISE_HIGH, sigma, seed, theta=theta, dt=dt, dtype="float64")
    eps_source = _standard_normals(seed, 3)
    for _ in range(30):
        ou.sample()
        eps_source.sample()
    assert np.all(ou.state.numpy() != 0.0)
    ou.reset()
    assert np.array_equal(ou.state.numpy(), np.zeros(3))  # exactly zero
    sample = ou.sample().numpy()
    eps = eps_source.sample().numpy()
    # From x = 0 one step is sigma sqrt(dt) eps; the noise is that times the half range.
    np.testing.assert_allclose(sample, sigma * np.sqrt(dt) * eps * HALF_RANGE, rtol=1e-15, atol=0)
    np.testing.assert_allclose(ou.state.numpy(), sample / HALF_RANGE, rtol=1e-15, atol=0)


def test_ou_noise_is_temporally_correlated():
    ou = noise.OrnsteinUhlenbeckNoise(NOISE_LOW, NOISE_HIGH, 0.2, seed=8, theta=0.15, dt=1e-2)
    x = draw(ou, 2000) / HALF_RANGE.astype(np.float32)
    # Stationary lag-1 autocorrelation is 1 - theta dt = 0.9985.
    for k in range(3):
        r = np.corrcoef(x[:-1, k], x[1:, k])[0, 1]
        assert r > 0.9, (k, r)
    # Independent Gaussian noise is not (contrast).
    g = draw(noise.GaussianNoise(NOISE_LOW, NOISE_HIGH, 0.2, seed=8), 2000)
    assert abs(np.corrcoef(g[:-1, 0], g[1:, 0])[0, 1]) < 0.15


def test_ou_noise_stationary_std():
    # x_{t+1} = (1 - theta dt) x_t + sigma sqrt(dt) eps has stationary variance
    # sigma^2 / (2 theta - theta^2 dt) ~= sigma^2 / (2 theta). 64 independent components
    # (half range 2, so x = noise / 2), 3000 burn-in steps ((1 - theta dt)^6000 ~ 1e-4 of the
    # start-up transient left), then 7000 steps: with an autocorrelation time of ~1300 steps
    # that is ~340 effective samples, a ~4% standard error on the std; tolerance 20%.
    sigma, theta, dt, dim = 0.2, 0.15, 1e-2, 64
    ou = noise.OrnsteinUhlenbeckNoise(-2 * np.ones(dim), 2 * np.ones(dim), sigma, seed=13, theta=theta, dt=dt)
    x = draw(ou, 10000)[3000:] / 2.0
    expected = sigma / np.sqrt(2 * theta)
    assert abs(x.std() / expected - 1.0) < 0.2, (x.std(), expected)
    assert abs(x.mean()) < 0.2 * expected


def test_make_noise_kinds():
    low, high = -np.ones(2), np.ones(2)
    assert isinstance(noise.make_noise("gaussian", low, high, sigma=0.1, seed=0), noise.GaussianNoise)
    ou = noise.make_noise("ou", low, high, sigma=0.1, seed=0, ou_theta=0.3, ou_dt=0.05)
    assert isinstance(ou, noise.OrnsteinUhlenbeckNoise) and ou.theta == 0.3 and ou.dt == 0.05
    none = noise.make_noise("none", low, high, sigma=0.1, seed=0)
    assert np.array_equal(none.sample().numpy(), np.zeros(2))
    with pytest.raises(ValueError):
        noise.make_noise("pink", low, high, sigma=0.1, seed=0)


# ======================================================================================
# Replay buffer
# ======================================================================================
def transition(i, obs_dim=3, action_dim=2):
    """Transition number i with distinct, recognisable values."""
    return (np.full(obs_dim, i, float), np.full(action_dim, 10 + i, float), 100.0 + i,
            np.full(obs_dim, 1000 + i, float), i % 2 == 0, i % 3 == 0)


def filled(capacity, n, seed=0):
    buf = ReplayBuffer(capacity, 3, 2, seed=seed)
    for i in range(n):
        buf.add(*transition(i))
    return buf


def test_replay_wraps_around_overwriting_the_oldest():
    buf = filled(5, 7)
    assert len(buf) == buf.size == 5
    assert buf.position == 2
    # Slots 0, 1 hold transitions 5, 6 (overwriting 0, 1); slots 2..4 still hold 2..4.
    assert buf.observations[:, 0].tolist() == [5, 6, 2, 3, 4]
    assert buf.actions[:, 0].tolist() == [15, 16, 12, 13, 14]
    assert buf.rewards[:, 0].tolist() == [105, 106, 102, 103, 104]
    assert buf.next_observations[:, 0].tolist() == [1005, 1006, 1002, 1003, 1004]
    assert 0 not in buf.observations[:, 0] and 1 not in buf.observations[:, 0]
    # Before wrapping, size grows and position follows it.
    small = filled(5, 3)
    assert (len(small), small.position) == (3, 3)


def test_replay_stores_terminated_and_truncated_separately():
    buf = ReplayBuffer(4, 1, 1)
    flags = [(True, False), (False, True), (True, True), (False, False)]
    for i, (term, trunc) in enumerate(flags):
        buf.add([i], [i], float(i), [i + 1], term, trunc)
    assert buf.terminated[:, 0].tolist() == [1, 0, 1, 0]
    assert buf.truncated[:, 0].tolist() == [0, 1, 1, 0]
    batch = buf.sample(64)
    # Sampled rows keep each transition's own flags.
    idx = batch.observations[:, 0].astype(int)
    assert np.array_equal(batch.terminated[:, 0], buf.terminated[idx, 0])
    assert np.array_equal(batch.truncated[:, 0], buf.truncated[idx, 0])
    assert batch.terminated.shape == batch.truncated.shape == batch.rewards.shape == (64, 1)


def test_replay_seeded_sampling():
    a, b, c = filled(10, 8, seed=1), filled(10, 8, seed=1), filled(10, 8, seed=2)
    for _ in range(3):
        ba, bb, bc = a.sample(16), b.sample(16), c.sample(16)
        for fa, fb in zip(ba, bb, strict=True):
            assert np.array_equal(fa, fb)
        assert not np.array_equal(ba.observations, bc.observations)
    # Only stored transitions (0..7) are sampled, with matching fields.
    batch = a.sample(256)
    i = batch.observations[:, 0]
    assert set(np.unique(i)) <= set(range(8)) and len(np.unique(i)) == 8
    assert np.array_equal(batch.actions[:, 0], 10 + i)
    assert np.array_equal(batch.next_observations[:, 0], 1000 + i)
    assert batch.observations.dtype == np.float32
    with pytest.raises(ValueError):
        ReplayBuffer(4, 3, 2).sample(1)


@pytest.mark.parametrize("n_added", [3, 7], ids=["partial", "wrapped"])
def test_replay_save_load_round_trip(tmp_path, n_added):
    original = filled(5, n_added, seed=4)
    original.sample(8)  # advance the RNG past its seed state
    path = tmp_path / "buffer.npz"
    original.save(path)

    restored = ReplayBuffer(5, 3, 2, seed=999)
    restored.load(path)
    assert (restored.position, restored.size) == (original.position, original.size)
    for field in ReplayBuffer._FIELDS:
        assert np.array_equal(getattr(restored, field)[:original.size],
                              getattr(original, field)[:original.size]), field
    # The RNG state came along: the next samples agree.
    for _ in range(2):
        for fr, fo in zip(restored.sample(8), original.sample(8), strict=True):
            assert np.array_equal(fr, fo)
    # Both keep working identically after further adds (ring position restored).
    original.add(*transition(50))
    restored.add(*transition(50))
    assert restored.position == original.position
    assert np.array_equal(restored.observations, original.observations)

    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(6, 3, 2).load(path)


# ======================================================================================
# Config and CLI (in-process)
# ======================================================================================
def test_parse_config_defaults_to_pendulum_preset():
    config, given = cli.parse_config([])
    assert config == PRESETS["pendulum"] == Config()
    assert given == set()


def test_ddpg_paper_preset():
    config, given = cli.parse_config(["--preset", "ddpg-paper"])
    assert given == set()
    assert config.actor_lr == 1e-4
    assert config.critic_lr == 1e-3
    assert config.critic_l2 == 1e-2
    assert config.tau == 1e-3
    assert config.gamma == 0.99
    assert config.noise == "ou"
    assert config.noise_sigma == 0.2
    assert config.ou_theta == 0.15
    assert config.actor_hidden == (400, 300)
    assert config.critic_hidden == (400, 300)
    assert config.batch_size == 64
    assert config.buffer_size == 1_000_000
    assert config.critic_action_layer == 1


def test_flag_overrides_preset():
    config, given = cli.parse_config(["--preset", "ddpg-paper", "--tau", "0.01"])
    assert config.tau == 0.01
    assert given == {"tau"}
    assert config.actor_lr == 1e-4  # the rest of the preset is kept
    assert config == PRESETS["ddpg-paper"].replace(tau=0.01)


def test_hidden_sizes_flag():
    config, given = cli.parse_config(["--actor-hidden", "64,64"])
    assert config.actor_hidden == (64, 64)
    assert config.critic_hidden == Config().critic_hidden
    assert given == {"actor_hidden"}
    assert cli.parse_config(["--critic-hidden", "32 16 8"])[0].critic_hidden == (32, 16, 8)


def test_other_flag_kinds():
    config, _ = cli.parse_config(["--actor-update", "chain-rule", "--no-progress", "--seed", "7",
                                  "--dtype", "float64", "--layer-norm"])
    assert (config.actor_update, config.progress, config.seed, config.dtype, config.layer_norm) == (
        "chain-rule", False, 7, "float64", True)


def test_invalid_values_raise_usage_error():
    with pytest.raises(cli.UsageError, match="tau"):
        cli.parse_config(["--tau", "0"])
    with pytest.raises(cli.UsageError, match="batch-size"):
        cli.parse_config(["--batch-size", "128", "--buffer-size", "64"])


@pytest.mark.parametrize("argv", [["--tau", "abc"], ["--actor-update", "sideways"],
                                  ["--actor-hidden", "64,x"], ["--gamma", "nan"]])
def test_malformed_flags_exit_with_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.parse_config(argv)
    assert exc.value.code == cli.EXIT_USAGE == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err  # one line


def test_every_field_has_a_docstring():
    docs = cli.field_docs()
    names = [f.name for f in dataclasses.fields(Config)]
    assert set(docs) == set(names)
    for name in names:
        assert docs[name].strip(), name
    assert "Polyak" in docs["tau"]
    help_text = cli.build_parser().format_help()
    assert "--actor-lr" in help_text and "Adam learning rate of the actor" in help_text


@pytest.mark.parametrize("changes", [
    {"tau": 0.0}, {"tau": 1.5}, {"actor_lr": 0.0}, {"batch_size": 200, "buffer_size": 100},
    {"critic_lr": -1e-3}, {"gamma": 1.1}, {"critic_action_layer": 2}, {"actor_hidden": ()},
])
def test_validate_rejects(changes):
    with pytest.raises(ConfigError):
        Config().replace(**changes).validate()


def test_validate_accepts_edges():
    Config(tau=1.0, gamma=0.0, batch_size=64, buffer_size=64).validate()
    Config(critic_action_layer=1).validate()
    for preset in PRESETS.values():
        assert preset.validate() is preset


@pytest.mark.parametrize("config", [Config(), PRESETS["ddpg-paper"],
                                    Config(actor_hidden=(64, 32, 16), dtype="float64",
                                           actor_update="chain-rule", run_name="x")])
def test_config_dict_round_trip(config):
    d = config.to_dict()
    assert isinstance(d["actor_hidden"], list)
    assert Config.from_dict(d) == config
    import json
    assert Config.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ConfigError, match="unknown"):
        Config.from_dict({**d, "bogus": 1})


def test_replay_add_batch_equals_repeated_add():
    one, many = ReplayBuffer(5, 3, 2, seed=3), ReplayBuffer(5, 3, 2, seed=3)
    items = [transition(i) for i in range(7)]
    for t in items:
        one.add(*t)
    many.add_batch(*(np.array([t[k] for t in items]) for k in range(6)))
    assert (many.position, many.size) == (one.position, one.size) == (2, 5)
    np.testing.assert_array_equal(many.storage.numpy(), one.storage.numpy())


# ======================================================================================
# Reference-parity options: noise units, Adam epsilon, warm-up training, final init, presets
# ======================================================================================
@pytest.mark.parametrize("changes, message", [
    ({"noise_units": "percent"}, "unknown --noise-units 'percent'; choose from half-range, absolute"),
    ({"adam_epsilon": 0.0}, "--adam-epsilon must be positive, got 0.0"),
    ({"adam_epsilon_placement": "jax"},
     "unknown --adam-epsilon-placement 'jax'; choose from tensorflow, torch"),
    ({"final_init": "zeros"}, "unknown --final-init 'zeros'; choose from uniform-3e-3, fan-in"),
    ({"update_schedule": "sometimes"}, "unknown --update-schedule 'sometimes'; choose from every-step, "
                                       "episode-end"),
    ({"update_schedule": "episode-end", "num_envs": 2, "total_steps": 10},
     "--update-schedule episode-end needs --num-envs 1"),
])
def test_parity_options_are_validated_in_one_line(changes, message):
    with pytest.raises(ConfigError) as err:
        Config().replace(**changes).validate()
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_parity_options_are_flags():
    config, given = cli.parse_config(["--noise-units", "absolute", "--adam-epsilon", "1e-8",
                                      "--adam-epsilon-placement", "torch", "--train-during-warmup",
                                      "--final-init", "fan-in", "--update-schedule", "episode-end"])
    values = (config.noise_units, config.adam_epsilon, config.adam_epsilon_placement,
              config.train_during_warmup, config.final_init, config.update_schedule)
    assert values == ("absolute", 1e-8, "torch", True, "fan-in", "episode-end")


@pytest.mark.parametrize("units, expected_std", [("half-range", [0.2, 0.05, 0.175]), ("absolute", [0.1] * 3)])
def test_noise_units(units, expected_std):
    low, high = ASYMMETRIC
    gaussian = noise.make_noise("gaussian", low, high, sigma=0.1, seed=0, dtype="float64", units=units)
    np.testing.assert_allclose(gaussian.scale.numpy(), expected_std)
    smoothing = noise.ClippedGaussian(low, high, 0.1, 0.5, seed=0, dtype="float64", units=units)
    np.testing.assert_allclose(smoothing.limit.numpy(), 5 * np.array(expected_std))
    assert np.all(np.abs(smoothing.sample(1000).numpy()) <= smoothing.limit.numpy())


@pytest.mark.parametrize("which", ["actor", "critic"])
def test_fan_in_final_init(which):
    """``fan-in``: the output layer like PyTorch's nn.Linear, U(+-1/sqrt(fan_in)) for kernel and bias."""
    if which == "actor":
        model = networks.build_actor(5, -np.ones(2), np.ones(2), (400, 300), seed=1, final_init="fan-in")
    else:
        model = networks.build_critic(5, 2, (400, 300), seed=1, final_init="fan-in")
    final = _dense_layers(model)[-1]
    limit = 1.0 / np.sqrt(300)
    for w in (final.kernel.numpy(), final.bias.numpy()):
        assert np.all(np.abs(w) <= limit) and np.max(np.abs(w)) > 0.5 * limit > 3e-3


def test_presets_resolve_environment_dependent_values():
    from ddpg_tf.config import preset_config

    # TD3 paper: 10k random steps on HalfCheetah and Ant, 1k elsewhere.
    assert preset_config("td3", "Ant-v5").learning_starts == 10_000
    assert preset_config("td3", "InvertedPendulum-v5").learning_starts == 1_000
    assert preset_config("td3", "Hopper-v5").env_id == "Hopper-v5"
    td3 = PRESETS["td3"]
    values = (td3.noise_units, td3.adam_epsilon, td3.adam_epsilon_placement, td3.final_init,
              td3.train_during_warmup, td3.update_schedule, td3.batch_size, td3.actor_hidden)
    assert values == ("absolute", 1e-8, "torch", "fan-in", True, "episode-end", 100, (400, 300))
    # SB3 + zoo: zoo's MuJoCo defaults on Hopper, SB3's constructor defaults where zoo has no entry.
    hopper = preset_config("td3-sb3", "Hopper-v5")
    assert (hopper.learning_starts, hopper.noise, hopper.batch_size) == (10_000, "gaussian", 256)
    bare = preset_config("td3-sb3", "InvertedPendulum-v5")
    assert (bare.learning_starts, bare.noise, bare.batch_size) == (100, "none", 256)
    pendulum = preset_config("ddpg-sb3", "Pendulum-v1")
    values = (pendulum.gamma, pendulum.buffer_size, pendulum.twin_critics, pendulum.target_noise)
    assert values == (0.98, 200_000, False, 0.0)
    for name in PRESETS:  # each entry holds the values for its own environment
        assert preset_config(name) == PRESETS[name]
    with pytest.raises(ConfigError):
        preset_config("td4")
