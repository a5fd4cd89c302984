"""Actor and critic networks as Keras 3 functional models.

Following Lillicrap et al. (2015), section 7: hidden layers are initialised from
U[-1/sqrt(f), 1/sqrt(f)] with f the layer's fan-in, the final layers from U[-3e-3, 3e-3]
(``final_init="uniform-3e-3"``; ``"fan-in"`` initialises them like the hidden layers, which is
PyTorch's ``nn.Linear`` default that the TD3 authors and SB3 use), the actor's output is a tanh,
and in the paper's critic the action enters at the second hidden layer (``action_layer=1`` here).

Seeds: ``seed`` is the network's own seed; kernel and bias of layer i are initialised from
``stream_seed(seed, i, 0)`` and ``stream_seed(seed, i, 1)`` (:func:`ddpg_tf.config.stream_seed`),
so no two weight tensors share a random stream.

Deviations: the tanh output is rescaled affinely to the environment's Box bounds (so
asymmetric bounds work); the tanh rounds as PyTorch's does near ±1 (:func:`rounded_tanh`);
layer normalisation replaces the paper's batch normalisation (optional, off by default; batch
norm interacts badly with target networks and small batches). Models use only built-in Keras
layers and ``keras.ops``, so an exported actor loads with plain Keras.
"""

from __future__ import annotations

import ddpg_tf._quiet  # noqa: F401  (before keras: silences TensorFlow's start-up)

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from ddpg_tf._quiet import tf
from ddpg_tf.config import stream_seed

FINAL_INIT_LIMIT = 3e-3
FINAL_INITS = ("uniform-3e-3", "fan-in")
TANH_TAIL = 4.0
"""``|z|`` from which :func:`rounded_tanh` computes ``1 - 2 / (e^(2|z|) + 1)``."""


def rounded_tanh(z: Any) -> Any:
    """``tanh(z)`` as PyTorch rounds it near ±1, with PyTorch's gradient ``1 - y²``.

    TensorFlow's float32 tanh is a fast approximation, up to 5 ulps off, that returns exactly
    ±1 from ``|z|`` = 7.91 (7.9989 under XLA); the correctly rounded value (PyTorch's, within an
    ulp) is ±1 only from ``13 ln 2`` = 9.011. Where the output is ±1 the actor's gradient
    ``1 - y²`` is exactly 0, so with TensorFlow's kernel a state stops teaching the actor
    earlier than in the TD3 authors' code or SB3 (docs/algorithm.md, "tanh rounding"). From
    ``|z| >= TANH_TAIL`` the value here is ``sign(z) (1 - 2 / (e^(2|z|) + 1))``, within one ulp
    and exact near ±1 (capped at ``|z|`` = 20, where it is ±1 in float32 and float64 alike);
    below, TensorFlow's tanh, whose error there is under 0.05% of ``1 - y²``. The gradient is
    ``1 - y²`` of this output, as PyTorch's ``tanh_backward`` computes it: ``y`` and
    ``1 - y²`` are held constant and ``(z - z) (1 - y²)``, exactly 0 forward, carries it.
    Built from ``keras.ops`` only, so a model using it saves and loads with plain Keras.
    """
    ops = keras.ops
    a = ops.abs(z)
    tail = ops.sign(z) * (1.0 - 2.0 / (ops.exp(2.0 * ops.minimum(a, 20.0)) + 1.0))
    y = ops.stop_gradient(ops.where(a < TANH_TAIL, ops.tanh(z), tail))
    return y + (z - ops.stop_gradient(z)) * ops.stop_gradient(1.0 - y * y)


def _fan_in_uniform(seed: int) -> keras.initializers.Initializer:
    # VarianceScaling(uniform) draws U[-sqrt(3 s / fan_in), +...]; s = 1/3 gives 1/sqrt(fan_in),
    # which is also PyTorch's nn.Linear weight init (kaiming_uniform with a = sqrt(5)).
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in",
                                              distribution="uniform", seed=seed)


def _final_uniform(seed: int) -> keras.initializers.Initializer:
    return keras.initializers.RandomUniform(-FINAL_INIT_LIMIT, FINAL_INIT_LIMIT, seed=seed)


def _dense(x: keras.KerasTensor, units: int, *, seed: int, layer: int, fan_in_init: bool, name: str,
           dtype: str) -> keras.KerasTensor:
    """A dense layer whose kernel and bias come from streams (layer, 0) and (layer, 1) of ``seed``:
    U(+-1/sqrt(fan_in)) for both with ``fan_in_init``, else U(+-3e-3)."""
    kernel_seed, bias_seed = stream_seed(seed, layer, 0), stream_seed(seed, layer, 1)
    if fan_in_init:
        kernel, bias = _fan_in_uniform(kernel_seed), _fan_in_bias(bias_seed, x.shape[-1])
    else:
        kernel, bias = _final_uniform(kernel_seed), _final_uniform(bias_seed)
    return keras.layers.Dense(units, kernel_initializer=kernel, bias_initializer=bias, name=name,
                              dtype=dtype)(x)


def _hidden(x: keras.KerasTensor, units: int, *, layer_norm: bool, seed: int, layer: int, name: str,
            dtype: str) -> keras.KerasTensor:
    x = _dense(x, units, seed=seed, layer=layer, fan_in_init=True, name=f"{name}_dense", dtype=dtype)
    if layer_norm:
        x = keras.layers.LayerNormalization(name=f"{name}_norm", dtype=dtype)(x)
    return keras.layers.Activation("relu", name=f"{name}_relu", dtype=dtype)(x)


def _fan_in_bias(seed: int, fan_in: int | None) -> keras.initializers.Initializer:
    # Biases share the layer's fan-in limit, as in the paper and PyTorch's nn.Linear (a bias has
    # no fan-in of its own).
    limit = 1.0 / np.sqrt(float(fan_in or 1))
    return keras.initializers.RandomUniform(-limit, limit, seed=seed)


def _bounded_affine(low: np.ndarray, high: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """``scale``, ``offset`` in ``dtype`` with ``offset +- scale`` inside [low, high] after rounding.

    Rounded separately, ``scale + offset`` can land one ulp past a bound that is not exactly
    representable (high 0.7 gives 0.70000005 in float32); we shrink ``scale`` by ulps until a
    saturated tanh maps exactly into the bounds.
    """
    lo, hi = low.astype(dtype), high.astype(dtype)
    scale = ((high - low) / 2.0).astype(dtype)
    offset = ((high + low) / 2.0).astype(dtype)
    zero = np.zeros_like(scale)
    for _ in range(64):
        outside = (offset + scale > hi) | (offset - scale < lo)
        if not outside.any():
            break
        scale = np.where(outside, np.nextafter(scale, zero), scale)
    return scale, offset


def build_actor(obs_dim: int, action_low: np.ndarray, action_high: np.ndarray,
                hidden: Sequence[int] = (256, 256), *, output: str = "tanh",
                layer_norm: bool = False, seed: int = 0, dtype: str = "float32",
                name: str = "actor", final_init: str = "uniform-3e-3") -> keras.Model:
    """Deterministic policy mu(s) -> a within [low, high] (``output="tanh"``).

    ``a = low + (y + 1) (high - low) / 2`` with ``y = tanh(z)`` (or ``y = z`` for
    ``output="linear"``, which can leave the bounds: the setting inverting gradients targets).
    """
    low = np.asarray(action_low, dtype=np.float64)
    high = np.asarray(action_high, dtype=np.float64)
    action_dim = int(low.shape[0])
    obs = keras.Input((obs_dim,), name="observation", dtype=dtype)
    _check_final_init(final_init)
    x = obs
    for i, units in enumerate(hidden):
        x = _hidden(x, units, layer_norm=layer_norm, seed=seed, layer=i, name=f"hidden{i}", dtype=dtype)
    z = _dense(x, action_dim, seed=seed, layer=len(hidden), fan_in_init=final_init == "fan-in",
               name="pre_action", dtype=dtype)
    if output == "tanh":
        z = keras.layers.Identity(name="squash", dtype=dtype)(rounded_tanh(z))
    elif output != "linear":
        raise ValueError(f"unknown actor output {output!r}")
    # Affine map [-1, 1] -> [low, high]: a = y * (high - low)/2 + (high + low)/2.
    scale, offset = _bounded_affine(low, high, dtype)
    action = keras.layers.Rescaling(scale=scale, offset=offset, name="action", dtype=dtype)(z)
    return keras.Model(obs, action, name=name)


def build_critic(obs_dim: int, action_dim: int, hidden: Sequence[int] = (256, 256), *,
                 action_layer: int = 0, layer_norm: bool = False, seed: int = 0,
                 dtype: str = "float32", name: str = "critic",
                 final_init: str = "uniform-3e-3") -> keras.Model:
    """Action-value Q(s, a) -> shape (batch, 1).

    The action is concatenated to the activations before hidden layer ``action_layer``:
    0 joins it with the observation at the input, 1 after the first hidden layer (the paper).
    """
    if not 0 <= action_layer < len(hidden):
        raise ValueError(f"action_layer {action_layer} outside 0..{len(hidden) - 1}")
    _check_final_init(final_init)
    obs = keras.Input((obs_dim,), name="observation", dtype=dtype)
    act = keras.Input((action_dim,), name="action", dtype=dtype)
    x = obs
    for i, units in enumerate(hidden):
        if i == action_layer:
            x = keras.layers.Concatenate(name=f"join_action{i}", dtype=dtype)([x, act])
        x = _hidden(x, units, layer_norm=layer_norm, seed=seed, layer=i, name=f"hidden{i}", dtype=dtype)
    q = _dense(x, 1, seed=seed, layer=len(hidden), fan_in_init=final_init == "fan-in", name="q",
               dtype=dtype)
    return keras.Model([obs, act], q, name=name)


def _check_final_init(final_init: str) -> None:
    if final_init not in FINAL_INITS:
        raise ValueError(f"unknown final-layer init {final_init!r}; choose from {', '.join(FINAL_INITS)}")


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Make ``target``'s weights equal to ``source``'s (used once, when targets are created)."""
    for t, s in zip(target.weights, source.weights, strict=True):
        t.assign(s)


class BatchSplit:
    """``model`` applied to ``chunks`` equal slices of the batch, outputs concatenated.

    The slices become independent ops, so TensorFlow's executor can run them (and, through the
    tape, their backward passes) on different cores at the same time; weight gradients are
    then sums of the slices' gradients, equal to the full-batch gradients up to float rounding.
    Everything else (variables, weights) is the model's own.
    """

    def __init__(self, model: keras.Model, chunks: int) -> None:
        self.model = model
        self.chunks = int(chunks)

    def __call__(self, inputs: Any, training: bool = False) -> Any:
        if isinstance(inputs, (list, tuple)):
            slices = zip(*(tf.split(x, self.chunks) for x in inputs), strict=True)
            outputs = [self.model(list(part), training=training) for part in slices]
        else:
            outputs = [self.model(part, training=training) for part in tf.split(inputs, self.chunks)]
        return tf.concat(outputs, axis=0)

    @property
    def trainable_variables(self) -> list[Any]:
        return self.model.trainable_variables

    @property
    def weights(self) -> list[Any]:
        return self.model.weights


def batch_split(model: keras.Model, chunks: int) -> keras.Model | BatchSplit:
    """``model`` itself for one chunk, else a :class:`BatchSplit` of it."""
    return model if chunks == 1 else BatchSplit(model, chunks)
