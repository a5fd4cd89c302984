"""Exploration noise drawn from tensorflow-probability distributions.

Both processes are ``tf.Module``s whose state (a ``tf.random.Generator`` and, for OU, the
current value) lives in variables, so it is saved in checkpoints and a resumed run draws the
same noise. Samples use stateless seeds taken from the generator, which makes every draw a
pure function of the generator state.

Noise is expressed in ``units``: ``half-range`` (the default) scales it by the half action
range (high - low) / 2, so ``sigma = 0.1`` perturbs each action component by 10% of its half
range (SB3, which acts in [-1, 1]); ``absolute`` takes it in action units, so ``sigma = 0.1`` is
N(0, 0.1^2) whatever the range (the TD3 authors' code).
"""

from __future__ import annotations

import numpy as np

from ddpg_tf._quiet import tf, tfp

tfd = tfp.distributions

NOISE_UNITS = ("half-range", "absolute")


def noise_unit(action_low: np.ndarray, action_high: np.ndarray, units: str) -> np.ndarray:
    """What one unit of noise is per action component: the half range (high - low) / 2 for
    ``half-range``, 1 for ``absolute``."""
    half_range = (np.asarray(action_high, np.float64) - np.asarray(action_low, np.float64)) / 2.0
    if units == "half-range":
        return half_range
    if units == "absolute":
        return np.ones_like(half_range)
    raise ValueError(f"unknown noise units {units!r}; choose from {', '.join(NOISE_UNITS)}")


class ActionNoise(tf.Module):
    """Base class: ``sample()`` returns one noise vector of shape (action_dim,)."""

    def __init__(self, action_low: np.ndarray, action_high: np.ndarray, sigma: float, seed: int,
                 dtype: str = "float32", name: str | None = None, units: str = "half-range") -> None:
        super().__init__(name=name)
        self.unit = noise_unit(action_low, action_high, units)
        self.dtype = tf.as_dtype(dtype)
        self.scale = tf.constant(sigma * self.unit, dtype=self.dtype)
        self.generator = tf.random.Generator.from_seed(seed)

    def _seed(self) -> tf.Tensor:
        # TFP's stateless samplers take an int32 seed pair.
        return self.generator.uniform_full_int([2], dtype=tf.int32)

    def sample(self) -> tf.Tensor:
        raise NotImplementedError

    def sample_n(self, n: tf.Tensor | int) -> tf.Tensor:
        """``n`` noise vectors, shape (n, action_dim), one per environment copy."""
        raise NotImplementedError

    def reset(self, done: np.ndarray | None = None) -> None:
        """Called at the start of every episode: of every copy (``done`` None), or of the
        copies where the boolean array ``done`` is true."""

    def reset_where(self, done: tf.Tensor) -> None:
        """In-graph :meth:`reset` of the copies where the ``[copies]`` bool tensor ``done`` is true."""


class GaussianNoise(ActionNoise):
    """Independent N(0, (sigma * unit)^2) per step and component (TD3, SB3 default)."""

    def sample(self) -> tf.Tensor:
        return tfd.Normal(tf.zeros_like(self.scale), self.scale).sample(seed=self._seed())

    def sample_n(self, n: tf.Tensor | int) -> tf.Tensor:
        return tfd.Normal(tf.zeros_like(self.scale), self.scale).sample(n, seed=self._seed())


class OrnsteinUhlenbeckNoise(ActionNoise):
    """Temporally correlated noise, as in Lillicrap et al. (2015) (theta 0.15, sigma 0.2).

    Euler-Maruyama step of dx = theta (mu - x) dt + sigma dW with mu = 0:
        x <- x - theta x dt + sigma sqrt(dt) eps,   eps ~ N(0, I);
    the returned noise is x times the noise unit (the half action range, or 1 for absolute
    units). x restarts at 0 every episode.

    With ``copies`` (one process per environment copy, for ``num_envs``) the state has shape
    (copies, action_dim), :meth:`sample_n` steps all copies at once and :meth:`reset` restarts
    the copies whose episode ended; without it there is one process of shape (action_dim,).
    """

    def __init__(self, action_low: np.ndarray, action_high: np.ndarray, sigma: float, seed: int,
                 theta: float = 0.15, dt: float = 1e-2, dtype: str = "float32",
                 name: str | None = None, copies: int | None = None, units: str = "half-range") -> None:
        super().__init__(action_low, action_high, sigma, seed, dtype=dtype, name=name, units=units)
        self.unit_scale = tf.constant(self.unit, dtype=self.dtype)
        self.theta = theta
        self.dt = dt
        self.sigma = sigma
        self.copies = copies
        shape = self.unit.shape if copies is None else (copies, *self.unit.shape)
        self.state = tf.Variable(tf.zeros(shape, self.dtype), trainable=False, name="ou_state")

    def _step(self) -> tf.Tensor:
        eps = tfd.Normal(tf.zeros_like(self.state), tf.ones_like(self.state)).sample(seed=self._seed())
        x = self.state - self.theta * self.state * self.dt + self.sigma * np.sqrt(self.dt) * eps
        self.state.assign(x)
        return x * self.unit_scale

    def sample(self) -> tf.Tensor:
        if self.copies is not None:
            raise ValueError("this OU process runs one copy per environment: use sample_n(copies)")
        return self._step()

    def sample_n(self, n: tf.Tensor | int) -> tf.Tensor:
        """One step of every copy, shape (copies, action_dim); ``n`` must equal ``copies``."""
        if self.copies is None:
            if isinstance(n, int) and n != 1:
                raise ValueError("a single OU process gives one noise vector per step; build it "
                                 "with copies=n for n environments")
            return self._step()[None]
        if isinstance(n, int) and n != self.copies:
            raise ValueError(f"this OU process has {self.copies} copies, asked for {n} noise vectors")
        return self._step()

    def reset(self, done: np.ndarray | None = None) -> None:
        """Restart every copy (``done`` None) or the copies where ``done`` is true."""
        if done is None or self.copies is None:
            self.state.assign(tf.zeros_like(self.state))
        else:
            self.reset_where(tf.constant(np.asarray(done, bool)))

    def reset_where(self, done: tf.Tensor) -> None:
        keep = tf.cast(tf.logical_not(done), self.dtype)
        if self.copies is None:  # one process: restart it when its (only) copy's episode ended
            self.state.assign(self.state * keep[0])
        else:
            self.state.assign(self.state * keep[:, None])


class NoNoise(ActionNoise):
    """Zero noise (pure exploitation after ``learning_starts``)."""

    def sample(self) -> tf.Tensor:
        return tf.zeros_like(self.scale)

    def sample_n(self, n: tf.Tensor | int) -> tf.Tensor:
        return tf.zeros(tf.stack([n, tf.size(self.scale)]), self.scale.dtype)


def make_noise(kind: str, action_low: np.ndarray, action_high: np.ndarray, *, sigma: float,
               seed: int, ou_theta: float = 0.15, ou_dt: float = 1e-2,
               dtype: str = "float32", copies: int | None = None, units: str = "half-range") -> ActionNoise:
    """Build the exploration process named by ``--noise`` (``copies``: one OU process per
    environment copy; ``units``: see the module docstring)."""
    if kind == "gaussian":
        return GaussianNoise(action_low, action_high, sigma, seed, dtype=dtype, name="gaussian_noise",
                             units=units)
    if kind == "ou":
        return OrnsteinUhlenbeckNoise(action_low, action_high, sigma, seed, theta=ou_theta, dt=ou_dt,
                                      dtype=dtype, name="ou_noise", copies=copies, units=units)
    if kind in ("none", "param"):  # parameter noise perturbs the actor instead (AdaptiveParamNoise)
        return NoNoise(action_low, action_high, 0.0, seed, dtype=dtype, name="no_noise")
    raise ValueError(f"unknown noise {kind!r}")


class ClippedGaussian(tf.Module):
    """TD3's target policy smoothing noise (Fujimoto et al. 2018, eq. 14):
    clip(eps, -c, c) with eps ~ N(0, sigma^2), per sample and component, both sigma and c in
    ``units`` (of the half action range, or absolute). Draws use stateless seeds from a
    checkpointable generator."""

    def __init__(self, action_low: np.ndarray, action_high: np.ndarray, sigma: float, clip: float,
                 seed: int, dtype: str = "float32", name: str = "target_smoothing",
                 units: str = "half-range") -> None:
        super().__init__(name=name)
        unit = noise_unit(action_low, action_high, units)
        self.dtype = tf.as_dtype(dtype)
        self.scale = tf.constant(sigma * unit, self.dtype)
        self.limit = tf.constant(clip * unit, self.dtype)
        self.generator = tf.random.Generator.from_seed(seed)

    def sample(self, batch_size: tf.Tensor | int) -> tf.Tensor:
        """Noise of shape (batch_size, action_dim)."""
        seed = self.generator.uniform_full_int([2], dtype=tf.int32)
        eps = tfd.Normal(tf.zeros_like(self.scale), self.scale).sample(batch_size, seed=seed)
        return tf.clip_by_value(eps, -self.limit, self.limit)


class AdaptiveParamNoise(tf.Module):
    """Adaptive parameter-space noise (Plappert et al. 2018, section 3 and appendix C.1).

    Exploration comes from a copy of the actor whose weights carry Gaussian noise,
    theta~ = theta + N(0, std^2), redrawn at every episode start. ``std`` adapts so that the
    perturbed policy's actions stay at a target distance from the unperturbed ones:

        d = sqrt(mean over batch and components of ((mu(s) - mu~(s)) / half_range)^2),
        std <- std / alpha if d > target else std * alpha,

    measured on replayed states with a freshly perturbed copy (the paper's DDPG variant).
    Layer-normalisation parameters are not perturbed (they rescale the layer, which would
    make the noise scale meaningless).
    """

    def __init__(self, init_std: float, target_distance: float, alpha: float, seed: int,
                 dtype: str = "float32", name: str = "param_noise") -> None:
        super().__init__(name=name)
        self.dtype = tf.as_dtype(dtype)
        self.std = tf.Variable(tf.constant(init_std, self.dtype), trainable=False, name="std")
        self.target_distance = float(target_distance)
        self.alpha = float(alpha)
        self.generator = tf.random.Generator.from_seed(seed)

    def perturb(self, source: list[tf.Variable], target: list[tf.Variable]) -> None:
        """target <- source + N(0, std^2) for dense kernels and biases; copied otherwise."""
        for src, dst in zip(source, target, strict=True):
            if _perturbable(src):
                seed = self.generator.uniform_full_int([2], dtype=tf.int32)
                dst.assign(src + tfd.Normal(tf.zeros((), self.dtype), self.std).sample(
                    tf.shape(src), seed=seed))
            else:
                dst.assign(src)

    def adapt(self, distance: tf.Tensor) -> None:
        """One multiplicative step of std towards the target action distance."""
        self.std.assign(tf.where(distance > self.target_distance, self.std / self.alpha,
                                 self.std * self.alpha))


def _perturbable(variable: tf.Variable) -> bool:
    path = variable.path
    return variable.trainable and "_norm" not in path and ("kernel" in path or "bias" in path)
