"""``python -m ddpg_tf.gradcheck``: the actor gradient computed four ways, compared and timed.

DDPG's actor gradient is grad_theta of -1/N sum_i Q(s_i, mu(s_i|theta)). This command computes
it w.r.t. ``actor.trainable_variables`` on one batch in four ways and compares each with the
first:

``direct``
    :func:`ddpg_tf.losses.actor_grads_direct`: one tape over -mean Q(s, mu(s)).
``chain-rule``
    :func:`ddpg_tf.losses.actor_grads_chain_rule`: dQ/da first, then back-propagated through
    mu with ``output_gradients=-dQ/da / N``.
``jacobian``
    :func:`actor_grads_jacobian` (here): the per-sample Jacobian d mu_i / d theta of shape
    (N, action_dim, *w.shape) is formed explicitly for every weight tensor w and contracted
    with dQ/da over the action axis and the batch axis. This spells out the "multiplication"
    of the chain rule: a vector-Jacobian product per sample, summed over samples.
``surrogate``
    :func:`ddpg_tf.losses.actor_grads_dpg_surrogate`: the loss
    1/N sum_i 0.5 ||sg(a_i + dQ/da_i) - a_i||^2 (the form TF-Agents, Acme and rlax use).

For every way and dtype it reports the largest absolute and relative difference from
``direct``, their cosine similarity, the time per compiled call and the peak memory of a call,
and exits with status 1 if any way disagrees beyond the tolerance (float64: max abs diff
< 1e-10; float32: max rel diff < 1e-5), 0 if all agree, 2 for a usage error.
See ``docs/actor_gradient.md`` for the derivation and measured costs.

Observations: with ``--env`` or ``--checkpoint`` the batch holds the first N states visited by
uniform random actions in the environment (reset with ``--seed``, reset again at episode
ends); with ``--obs-dim`` it is standard normal. Without ``--checkpoint`` the networks are
freshly initialised as in training (actor seed ``--seed``, critic seed ``--seed`` + 5000).

TensorFlow is imported only after the command line has been checked, so bad flags are
reported at once.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from ddpg_tf.errors import UsageError, fail

if TYPE_CHECKING:
    import keras

    from ddpg_tf._quiet import tf

WAY_NAMES: tuple[str, ...] = ("direct", "chain-rule", "jacobian", "surrogate")
"""The four ways, in table order; ``direct`` is the reference the others are compared with."""
DTYPES: tuple[str, ...] = ("float32", "float64")
TOL_FLOAT64_ABS = 1e-10
"""float64: every way must match ``direct`` to a max abs diff below this."""
TOL_FLOAT32_REL = 1e-5
"""float32: every way must match ``direct`` to a max rel diff below this."""
TINY = float(np.finfo(np.float32).tiny)

DEFAULT_ENV = "Pendulum-v1"
MEMORY_NOTES = {
    "tf-allocator": "tensor bytes from TensorFlow's CPU allocator statistics; buffers under 256 KiB "
                    "are not counted",
    "clear_refs": "resident memory, VmHWM after clear_refs",
    "sampling": "resident memory sampled every 1 ms",
}
DEFAULT_HIDDEN = (256, 256)

GradientFn = Callable[["keras.Model", "keras.Model", "tf.Tensor"], list["tf.Tensor"]]
"""``way(actor, critic, observations) -> gradient per actor.trainable_variables``."""


# --- the four ways -------------------------------------------------------------------------
def actor_grads_direct(actor: keras.Model, critic: keras.Model, observations: tf.Tensor) -> list[tf.Tensor]:
    """``direct``: one tape over -mean Q(s, mu(s)) (see :mod:`ddpg_tf.losses`)."""
    from ddpg_tf import losses

    return list(losses.actor_grads_direct(actor, critic, observations).grads)


def actor_grads_chain_rule(actor: keras.Model, critic: keras.Model,
                           observations: tf.Tensor) -> list[tf.Tensor]:
    """``chain-rule``: dQ/da, then ``output_gradients=-dQ/da / N`` through mu."""
    from ddpg_tf import losses

    return list(losses.actor_grads_chain_rule(actor, critic, observations).grads)


def actor_grads_jacobian(actor: keras.Model, critic: keras.Model,
                         observations: tf.Tensor) -> list[tf.Tensor]:
    """``jacobian``: explicit per-sample Jacobians contracted with dQ/da.

    For each weight tensor w, ``J = tape.jacobian(mu(s), w)`` has shape (N, A, *w.shape):
    J[i, j] = d mu_j(s_i) / d w. The gradient of -1/N sum_i Q(s_i, mu(s_i)) is

        -1/N sum_i sum_j dQ/da[i, j] * J[i, j]

    a contraction over the action axis j (a vector-Jacobian product per sample) and a sum
    over the batch axis i; never an outer product. ``tape.batch_jacobian`` does not apply:
    it needs the differentiated-with-respect-to tensor to carry the batch axis, and the
    weights do not. Memory and time grow with N * A * |theta|, which is why nobody trains
    this way; autodiff on the other three evaluates the same sum without forming J.
    """
    from ddpg_tf import losses
    from ddpg_tf._quiet import tf

    variables = actor.trainable_variables
    with tf.GradientTape() as tape:
        actions = actor(observations, training=True)
    jacobians = tape.jacobian(actions, variables)
    dq_da, _ = losses.dqda(critic, observations, actions)  # (N, A)
    n = tf.cast(tf.shape(observations)[0], dq_da.dtype)
    grads = []
    for var, jac in zip(variables, jacobians, strict=True):
        flat = tf.reshape(jac, [tf.shape(jac)[0], tf.shape(jac)[1], -1])  # (N, A, |w|)
        contracted = tf.einsum("na,nap->p", dq_da, flat)  # sum over samples n and actions a
        grads.append(-tf.reshape(contracted, var.shape) / n)
    return grads


def actor_grads_surrogate(actor: keras.Model, critic: keras.Model,
                          observations: tf.Tensor) -> list[tf.Tensor]:
    """``surrogate``: the DPG surrogate loss 0.5 ||sg(a + dQ/da) - a||^2, batch-averaged."""
    from ddpg_tf import losses

    return list(losses.actor_grads_dpg_surrogate(actor, critic, observations).grads)


WAYS: dict[str, GradientFn] = {
    "direct": actor_grads_direct,
    "chain-rule": actor_grads_chain_rule,
    "jacobian": actor_grads_jacobian,
    "surrogate": actor_grads_surrogate,
}
"""Each way by name; looked up at run time (tests replace entries to inject a wrong gradient)."""


# --- comparison ----------------------------------------------------------------------------
def compare_gradients(grads: Sequence[Any], reference: Sequence[Any]) -> dict[str, Any]:
    """Differences of one gradient list from the reference list (same tensors, same order).

    * ``max_abs_diff``: max over tensors of max|g - d|;
    * ``max_rel_diff``: max over tensors of max|g - d| / max|d| (max|d| guarded by the
      smallest normal float32, only against an all-zero reference tensor);
    * ``cosine``: cosine similarity of the two lists flattened into one vector each,
      computed in float64;
    * ``bit_identical``: every element equal (compared in the original dtype).
    """
    from ddpg_tf import losses
    from ddpg_tf._quiet import tf

    g_np = [np.asarray(g) for g in grads]
    r_np = [np.asarray(r) for r in reference]
    if len(g_np) != len(r_np) or any(g.shape != r.shape for g, r in zip(g_np, r_np, strict=True)):
        raise ValueError("gradient lists differ in length or shapes")
    abs_diffs, rel_diffs = [], []
    for g, r in zip(g_np, r_np, strict=True):
        diff = float(np.max(np.abs(g.astype(np.float64) - r.astype(np.float64))))
        abs_diffs.append(diff)
        rel_diffs.append(diff / max(float(np.max(np.abs(r.astype(np.float64)))), TINY))
    cosine, _ = losses.flat_cosine_and_rel_diff([tf.constant(g, tf.float64) for g in g_np],
                                                [tf.constant(r, tf.float64) for r in r_np])
    return {
        "max_abs_diff": max(abs_diffs),
        "max_rel_diff": max(rel_diffs),
        "cosine": float(cosine.numpy()),
        "bit_identical": all(np.array_equal(g, r) for g, r in zip(g_np, r_np, strict=True)),
    }


def within_tolerance(dtype: str, max_abs_diff: float, max_rel_diff: float) -> bool:
    """float64: max abs diff < 1e-10; float32: max rel diff < 1e-5 (NaN never passes)."""
    if dtype == "float64":
        return max_abs_diff < TOL_FLOAT64_ABS
    return max_rel_diff < TOL_FLOAT32_REL


# --- peak memory ---------------------------------------------------------------------------
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _malloc_trim() -> None:
    """Hand freed heap memory back to the OS (glibc), so the baseline RSS holds no
    reusable free blocks that would hide a call's allocations."""
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def _can_reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def _tf_allocator_stats() -> bool:
    from ddpg_tf._quiet import tf

    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
        tf.config.experimental.get_memory_info("CPU:0")
    except (ValueError, RuntimeError, tf.errors.OpError):
        return False
    return True


class PeakMemory:
    """Peak memory of a block of code, in MiB above the memory in use before it.

    Methods, the first available is used:

    ``tf-allocator``
        TensorFlow's own CPU allocator statistics (``tf.config.experimental.get_memory_info``
        after ``reset_memory_stats``): peak bytes held by tensors during the block, minus the
        bytes held before it. Available when TensorFlow pools CPU memory in its BFC allocator,
        which is the default on x86 builds with oneDNN. Resident memory cannot be used then:
        the pool keeps freed memory, so a call's tensors reuse pages that are already resident.
        Measured limit (TF 2.21): buffers smaller than 256 KiB come from a separate small-object
        pool these statistics omit, so small networks can show 0.00 MiB.
    ``clear_refs``
        Linux resident memory (e.g. with ``TF_ENABLE_ONEDNN_OPTS=0``, where TensorFlow
        allocates with malloc): writing 5 to /proc/self/clear_refs resets the high-water mark
        VmHWM to the current RSS, after glibc's free heap has been returned to the OS with
        ``malloc_trim``; VmHWM read after the block is its peak. Includes non-tensor memory.
    ``sampling``
        Where clear_refs cannot be written: a thread reads VmRSS every millisecond (can miss
        shorter peaks, and costs some CPU time).
    ``unavailable``
        Peaks are reported as None.
    """

    def __init__(self) -> None:
        if _tf_allocator_stats():
            self.method = "tf-allocator"
        elif _can_reset_peak():
            self.method = "clear_refs"
        elif _status_kib("VmRSS") is not None:
            self.method = "sampling"
        else:
            self.method = "unavailable"
        self._base = 0
        self._sampled = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        gc.collect()
        if self.method == "tf-allocator":
            from ddpg_tf._quiet import tf

            tf.config.experimental.reset_memory_stats("CPU:0")
            self._base = tf.config.experimental.get_memory_info("CPU:0")["current"]
            return
        _malloc_trim()
        self._base = 1024 * (_status_kib("VmRSS") or 0)
        if self.method == "clear_refs":
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        elif self.method == "sampling":
            self._sampled = self._base
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._sampled = max(self._sampled, 1024 * (_status_kib("VmRSS") or 0))
            time.sleep(0.001)

    def stop(self) -> float | None:
        """Peak increase in MiB since :meth:`start` (None if memory cannot be measured)."""
        if self.method == "tf-allocator":
            from ddpg_tf._quiet import tf

            peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
        elif self.method == "clear_refs":
            peak = 1024 * (_status_kib("VmHWM") or 0)
        elif self.method == "sampling" and self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = max(self._sampled, 1024 * (_status_kib("VmRSS") or 0))
        else:
            return None
        return max(peak - self._base, 0) / 2.0**20


# --- networks and observations -------------------------------------------------------------
@dataclass(frozen=True)
class NetSpec:
    """Architecture of an actor-critic pair, enough to rebuild it in another dtype."""

    obs_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    actor_hidden: tuple[int, ...]
    critic_hidden: tuple[int, ...]
    critic_action_layer: int = 0
    actor_output: str = "tanh"
    layer_norm: bool = False

    @property
    def action_dim(self) -> int:
        return len(self.action_low)

    def build(self, dtype: str, seed: int) -> tuple[keras.Model, keras.Model]:
        """Fresh networks initialised as :class:`ddpg_tf.agent.DDPGAgent` does."""
        from ddpg_tf.networks import build_actor, build_critic

        actor = build_actor(self.obs_dim, np.array(self.action_low), np.array(self.action_high),
                            self.actor_hidden, output=self.actor_output, layer_norm=self.layer_norm,
                            seed=seed, dtype=dtype)
        critic = build_critic(self.obs_dim, self.action_dim, self.critic_hidden,
                              action_layer=self.critic_action_layer, layer_norm=self.layer_norm,
                              seed=seed + 5000, dtype=dtype)
        return actor, critic


def cast_copy(model: keras.Model, rebuilt: keras.Model) -> keras.Model:
    """Assign ``model``'s weights, cast to ``rebuilt``'s dtype, to ``rebuilt``; return it."""
    from ddpg_tf._quiet import tf

    for dst, src in zip(rebuilt.weights, model.weights, strict=True):
        dst.assign(tf.cast(src, dst.dtype))
    return rebuilt


def env_observations(env: Any, n: int, seed: int) -> np.ndarray:
    """The first ``n`` states visited by uniform random actions (reset with ``seed``, and
    again whenever an episode terminates or is truncated), shape (n, obs_dim), float64."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    states = []
    while len(states) < n:
        states.append(np.asarray(obs, np.float64))
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    return np.stack(states)


def _make_env(env_id: str) -> Any:
    from ddpg_tf.envs import EnvError, make_env

    try:
        return make_env(env_id)
    except EnvError as exc:
        raise UsageError(str(exc)) from None


def load_checkpoint_networks(run_dir: str | Path) -> tuple[NetSpec, str, Any, keras.Model, keras.Model]:
    """Actor and critic of the latest checkpoint of a ``train.py`` run directory.

    Returns (architecture, the run's dtype, its environment, actor, critic). Reads
    ``RUN_DIR/config.json``, builds a :class:`~ddpg_tf.agent.DDPGAgent` from it and restores
    the latest checkpoint into it. Raises :class:`UsageError` when the directory is not a
    usable run.
    """
    from ddpg_tf.envs import space_dims
    from ddpg_tf.training import load_trained_agent

    try:
        config, agent, env = load_trained_agent(Path(run_dir))
        config.validate()
    except (UsageError, ValueError) as exc:
        raise UsageError(f"--checkpoint {run_dir}: {exc}") from None
    obs_dim, low, high = space_dims(env)
    spec = NetSpec(obs_dim, tuple(float(x) for x in low), tuple(float(x) for x in high),
                   tuple(config.actor_hidden), tuple(config.critic_hidden), config.critic_action_layer,
                   config.actor_output, config.layer_norm)
    if agent.obs_norm is not None:
        raise UsageError(f"--checkpoint {run_dir}: the run normalises observations (--obs-norm); the "
                         "gradient check feeds raw states, so check a run without --obs-norm")
    return spec, config.dtype, env, agent.actor, agent.critic


# --- the check ------------------------------------------------------------------------------
def latest_checkpoint(run_dir: Path) -> str | None:
    """Path prefix of the newest checkpoint of a run directory (what ``--checkpoint`` loads)."""
    from ddpg_tf._quiet import tf

    return tf.train.latest_checkpoint(str(run_dir / "checkpoints"))


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value}")


def _check_sizes(name: str, sizes: Sequence[int]) -> None:
    if not sizes or any(s < 1 for s in sizes):
        raise UsageError(f"{name} needs one or more positive layer sizes, got {','.join(map(str, sizes))}")


def _time_and_memory(fn: Callable[[], Any], repeats: int, memory: PeakMemory | None
                     ) -> tuple[float, float | None]:
    """Median milliseconds per ``fn()`` over ``repeats`` calls, and their peak memory (MiB)."""
    times = []
    if memory is not None:
        memory.start()
    out = None
    for _ in range(repeats):
        out = None  # release the previous result before the next call
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    peak = memory.stop() if memory is not None else None
    del out
    return 1000.0 * statistics.median(times), peak


def run_gradcheck(*, env_id: str | None = None, obs_dim: int | None = None, action_dim: int | None = None,
                  actor_hidden: Sequence[int] = DEFAULT_HIDDEN, critic_hidden: Sequence[int] = DEFAULT_HIDDEN,
                  critic_action_layer: int = 0, actor_output: str = "tanh", batch_size: int = 64,
                  dtypes: Sequence[str] = DTYPES, seed: int = 0, repeats: int = 20,
                  checkpoint: str | Path | None = None, ways: Sequence[str] = WAY_NAMES,
                  measure: bool = True) -> list[dict[str, Any]]:
    """Compute the actor gradient each way on one batch, compare each with ``direct``.

    The networks come from ``checkpoint`` (a ``train.py`` run directory), or are built fresh
    for ``env_id`` (observation dimension and action bounds from the environment) or for
    ``obs_dim``/``action_dim`` (bounds [-1, 1]). Give exactly one of the three. With
    ``measure`` each way is also timed (median of ``repeats`` calls of its ``tf.function``
    after one warm-up call) and its peak memory measured (:class:`PeakMemory`).

    Returns one dict per (dtype, way), ``direct`` first within each dtype, with the keys
    ``way, dtype, max_abs_diff, max_rel_diff, cosine, bit_identical, ok, ms_per_call,
    peak_mib, grad_norm, params, jacobian_numbers, batch_size, obs_dim, action_dim,
    observations, networks, net, memory_method``. ``ok`` applies the tolerance of the dtype. Raises
    :class:`ddpg_tf.cli.UsageError` for unusable settings.
    """
    sources = [x for x in (env_id is not None, obs_dim is not None or action_dim is not None,
                           checkpoint is not None) if x]
    if len(sources) != 1:
        raise UsageError("give exactly one of --env, --obs-dim/--action-dim and --checkpoint")
    if (obs_dim is None) != (action_dim is None):
        raise UsageError("--obs-dim and --action-dim go together")
    _check_positive("--batch-size", batch_size)
    _check_positive("--repeats", repeats)
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown or not dtypes:
        raise UsageError(f"dtypes must be among {', '.join(DTYPES)}, got {list(dtypes)}")
    bad_ways = [w for w in ways if w not in WAYS]
    if bad_ways or "direct" not in ways:
        raise UsageError(f"ways must include direct and be among {', '.join(WAYS)}, got {list(ways)}")
    if actor_output not in ("tanh", "linear"):
        raise UsageError(f"--actor-output must be tanh or linear, got {actor_output!r}")
    if checkpoint is None:
        _check_sizes("--actor-hidden", actor_hidden)
        _check_sizes("--critic-hidden", critic_hidden)
        if not 0 <= critic_action_layer < len(critic_hidden):
            raise UsageError(f"--critic-action-layer {critic_action_layer} must be in "
                             f"0..{len(critic_hidden) - 1} (one of the critic's hidden layers)")
    if obs_dim is not None and action_dim is not None:
        _check_positive("--obs-dim", obs_dim)
        _check_positive("--action-dim", action_dim)

    # Networks (source weights) and the batch of observations, in float64. An unusable
    # environment is reported before TensorFlow is imported.
    source: tuple[keras.Model, keras.Model] | None = None
    if checkpoint is not None:
        spec, source_dtype, env, actor0, critic0 = load_checkpoint_networks(checkpoint)
        source = (actor0, critic0)
        obs64 = env_observations(env, batch_size, seed)
        env.close()
        obs_source = f"{batch_size} states visited by uniform random actions in {env.spec.id} (seed {seed})"
        latest = Path(str(latest_checkpoint(Path(checkpoint))))
        nets_source = f"{source_dtype} weights of {latest} (cast for other dtypes)"
    elif env_id is not None:
        from ddpg_tf.envs import space_dims

        env = _make_env(env_id)
        dim, low, high = space_dims(env)
        spec = NetSpec(dim, tuple(map(float, low)), tuple(map(float, high)), tuple(actor_hidden),
                       tuple(critic_hidden), critic_action_layer, actor_output)
        obs64 = env_observations(env, batch_size, seed)
        env.close()
        source_dtype = "float32"
        obs_source = f"{batch_size} states visited by uniform random actions in {env_id} (seed {seed})"
    else:
        assert obs_dim is not None and action_dim is not None
        spec = NetSpec(obs_dim, (-1.0,) * action_dim, (1.0,) * action_dim, tuple(actor_hidden),
                       tuple(critic_hidden), critic_action_layer, actor_output)
        obs64 = np.random.default_rng(seed).standard_normal((batch_size, obs_dim))
        source_dtype = "float32"
        obs_source = f"{batch_size} standard normal observations (seed {seed})"
    from ddpg_tf._quiet import tf

    if source is None:  # fresh networks, initialised in float32 as in training
        source = spec.build(source_dtype, seed)
        nets_source = (f"fresh initialisation as in training (actor seed {seed}, critic seed {seed + 5000}), "
                       "float32 weights cast for float64")

    memory = PeakMemory() if measure else None
    results: list[dict[str, Any]] = []
    for dtype in dtypes:
        if dtype == source_dtype:
            actor, critic = source
        else:
            fresh_actor, fresh_critic = spec.build(dtype, seed)
            actor, critic = cast_copy(source[0], fresh_actor), cast_copy(source[1], fresh_critic)
        observations = tf.constant(obs64.astype(dtype))
        params = int(sum(int(np.prod(v.shape)) for v in actor.trainable_variables))
        reference = None
        for name in ["direct", *[w for w in ways if w != "direct"]]:
            way = WAYS[name]
            fn = tf.function(lambda o, way=way, a=actor, c=critic: way(a, c, o))
            grads = [np.asarray(g) for g in fn(observations)]  # warm-up: traces, then runs once
            ms, peak = (_time_and_memory(lambda fn=fn, o=observations: fn(o), repeats, memory)
                        if measure else (None, None))
            if reference is None:
                reference = grads
            cmp = compare_gradients(grads, reference)
            results.append({
                "way": name, "dtype": dtype, **cmp,
                "ok": within_tolerance(dtype, cmp["max_abs_diff"], cmp["max_rel_diff"]),
                "ms_per_call": ms, "peak_mib": peak,
                "grad_norm": float(math.sqrt(sum(float(np.sum(np.square(g.astype(np.float64))))
                                                 for g in grads))),
                "params": params, "jacobian_numbers": batch_size * spec.action_dim * params,
                "batch_size": batch_size, "obs_dim": spec.obs_dim, "action_dim": spec.action_dim,
                "observations": obs_source, "networks": nets_source,
                "memory_method": memory.method if memory is not None else "not measured",
                "net": asdict(spec),
            })
    return results


# --- output --------------------------------------------------------------------------------
def format_table(results: Sequence[dict[str, Any]], repeats: int | None = None) -> str:
    """The comparison as a plain-text table, with the tolerances and measurement notes."""
    if not results:
        return "(no results)\n"
    first = results[0]
    net = first["net"]
    lines = [
        f"actor gradient four ways vs direct: obs {first['obs_dim']}, actions {first['action_dim']}; "
        f"actor {','.join(map(str, net['actor_hidden']))} ({first['params']:,} weights), "
        f"critic {','.join(map(str, net['critic_hidden']))} (action at layer {net['critic_action_layer']}); "
        f"batch {first['batch_size']}",
        f"networks: {first['networks']}",
        f"observations: {first['observations']}",
        f"tolerances: float64 max abs diff < {TOL_FLOAT64_ABS:g}; float32 max rel diff < {TOL_FLOAT32_REL:g} "
        "(rel = max over weight tensors of max|g - d| / max|d|, d = direct)",
        f"jacobian way forms N x A x |theta| = {first['batch_size']} x {first['action_dim']} x "
        f"{first['params']:,} = {first['jacobian_numbers']:,} numbers per call; the others form none",
    ]
    if first["ms_per_call"] is not None:
        lines.append(f"ms/call: median of {repeats if repeats else '?'} calls of each tf.function after "
                     f"a warm-up call; peak MiB: peak memory increase during those calls "
                     f"({MEMORY_NOTES.get(first['memory_method'], first['memory_method'])})")
    lines.append("")
    header = (f"{'way':<11} {'dtype':<8} {'max abs diff':>12} {'max rel diff':>12} {'cosine':>16} "
              f"{'ms/call':>9} {'peak MiB':>9} {'bitwise':>8}  ok")
    lines += [header, "-" * len(header)]
    for r in results:
        ms = "" if r["ms_per_call"] is None else f"{r['ms_per_call']:.2f}"
        mib = "" if r["peak_mib"] is None else f"{r['peak_mib']:.2f}"
        if r["way"] == "direct":
            diffs = f"{'(reference)':>12} {'':>12} {'':>16}"
            bitwise, ok = "", ""
        else:
            diffs = f"{r['max_abs_diff']:>12.3e} {r['max_rel_diff']:>12.3e} {r['cosine']:>16.13f}"
            bitwise = "same" if r["bit_identical"] else "differ"
            ok = "ok" if r["ok"] else "FAIL"
        lines.append(f"{r['way']:<11} {r['dtype']:<8} {diffs} {ms:>9} {mib:>9} {bitwise:>8}  {ok}".rstrip())
    bad = [f"{r['way']} ({r['dtype']})" for r in results if not r["ok"]]
    lines.append("")
    lines.append("all ways agree with direct within tolerance" if not bad
                 else f"DISAGREE beyond tolerance: {', '.join(bad)}")
    return "\n".join(lines) + "\n"


# --- command line --------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{self.prog}: {message} (see --help)")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected layer sizes like 64,64, got {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected positive layer sizes like 64,64, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m ddpg_tf.gradcheck",
        description="Compute DDPG's actor gradient four ways (direct, chain-rule, explicit jacobian, "
                    "DPG surrogate) on one batch; compare each with direct, time them and measure "
                    "their peak memory. Exit status 0: all agree within tolerance; 1: some way "
                    "disagrees; 2: usage error.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = parser.add_argument_group("networks (one of --env, --obs-dim/--action-dim, --checkpoint; "
                                    f"default --env {DEFAULT_ENV})")
    src.add_argument("--env", metavar="ENV_ID", default=None,
                     help="Gymnasium env id: observation dimension and action bounds from its spaces")
    src.add_argument("--obs-dim", type=int, metavar="N", default=None, help="observation dimension")
    src.add_argument("--action-dim", type=int, metavar="M", default=None,
                     help="action dimension (bounds [-1, 1])")
    src.add_argument("--checkpoint", metavar="RUN_DIR", default=None,
                     help="load actor and critic from the latest checkpoint of a train.py run directory "
                          "(architecture and env from RUN_DIR/config.json)")
    src.add_argument("--actor-hidden", type=_sizes, metavar="N,N", default=None,
                     help=f"actor hidden sizes (default {','.join(map(str, DEFAULT_HIDDEN))})")
    src.add_argument("--critic-hidden", type=_sizes, metavar="N,N", default=None,
                     help=f"critic hidden sizes (default {','.join(map(str, DEFAULT_HIDDEN))})")
    src.add_argument("--critic-action-layer", type=int, metavar="K", default=None,
                     help="critic hidden layer the action joins (0 = input, 1 = DDPG paper) (default 0)")
    src.add_argument("--actor-output", choices=("tanh", "linear"), default=None,
                     help="actor output layer (default tanh)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="observations per batch")
    parser.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0, help="network initialisation and observations")
    parser.add_argument("--repeats", type=int, default=20, metavar="N",
                        help="timed calls per way (the median is reported)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 (all ways agree) or 1 (some disagree); usage errors exit 2."""
    args = build_parser().parse_args(argv)
    arch_flags = {"--actor-hidden": args.actor_hidden, "--critic-hidden": args.critic_hidden,
                  "--critic-action-layer": args.critic_action_layer, "--actor-output": args.actor_output}
    given = [flag for flag, value in arch_flags.items() if value is not None]
    if args.checkpoint is not None and given:
        fail(f"{', '.join(given)} cannot be combined with --checkpoint: the networks come from "
             "RUN_DIR/config.json")
    if args.checkpoint is not None and args.env is not None:
        fail("--env cannot be combined with --checkpoint: the environment comes from RUN_DIR/config.json")
    env_id = args.env
    if env_id is None and args.checkpoint is None and args.obs_dim is None and args.action_dim is None:
        env_id = DEFAULT_ENV
    json_path = Path(args.json) if args.json else None
    if json_path is not None and not json_path.parent.is_dir():
        fail(f"--json {json_path}: directory {json_path.parent} does not exist")
    if json_path is not None and json_path.is_dir():
        fail(f"--json {json_path} is a directory; give a file name")
    dtypes = DTYPES if args.dtype == "both" else (args.dtype,)
    settings = dict(
        env_id=env_id, obs_dim=args.obs_dim, action_dim=args.action_dim, checkpoint=args.checkpoint,
        actor_hidden=args.actor_hidden or DEFAULT_HIDDEN, critic_hidden=args.critic_hidden or DEFAULT_HIDDEN,
        critic_action_layer=args.critic_action_layer or 0, actor_output=args.actor_output or "tanh",
        batch_size=args.batch_size, dtypes=dtypes, seed=args.seed, repeats=args.repeats)
    try:
        results = run_gradcheck(**settings)
    except UsageError as exc:
        fail(str(exc))
    print(format_table(results, args.repeats), end="")
    if json_path is not None:
        payload = {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()},
                   "tolerances": {"float64_max_abs_diff": TOL_FLOAT64_ABS,
                                  "float32_max_rel_diff": TOL_FLOAT32_REL},
                   "results": results}
        try:
            json_path.write_text(json.dumps(payload, indent=2) + "\n")
        except OSError as exc:
            fail(f"--json {json_path}: cannot write ({exc.strerror or exc})")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
