"""The gradient check: each way's actor gradient on one batch, compared with ``direct`` within
a tolerance per dtype, and timed."""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ddpg_tf.errors import UsageError
from ddpg_tf.gradcheck.sources import (NetSpec, cast_copy, env_observations, latest_checkpoint,
                                       load_checkpoint_networks, open_env)
from ddpg_tf.gradcheck.ways import WAY_NAMES, WAYS

if TYPE_CHECKING:
    import keras

DTYPES: tuple[str, ...] = ("float32", "float64")
TOL_FLOAT64_ABS = 1e-10
"""float64: every way must match ``direct`` to a max abs diff below this."""
TOL_FLOAT32_REL = 1e-5
"""float32: every way must match ``direct`` to a max rel diff below this."""
TINY = float(np.finfo(np.float32).tiny)
DEFAULT_HIDDEN = (256, 256)

OnCompiled = Callable[[str, str, Callable[[], Any]], None]
"""``on_compiled(dtype, way, call)``: sees each way's compiled call after its warm-up."""


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


# --- the check ------------------------------------------------------------------------------
def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value}")


def _check_sizes(name: str, sizes: Sequence[int]) -> None:
    if not sizes or any(s < 1 for s in sizes):
        raise UsageError(f"{name} needs one or more positive layer sizes, got {','.join(map(str, sizes))}")


def _time_calls(fn: Callable[[], Any], repeats: int) -> float:
    """Median milliseconds per ``fn()`` over ``repeats`` calls."""
    times = []
    out = None
    for _ in range(repeats):
        out = None  # release the previous result before the next call
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    del out
    return 1000.0 * statistics.median(times)


def run_gradcheck(*, env_id: str | None = None, obs_dim: int | None = None, action_dim: int | None = None,
                  actor_hidden: Sequence[int] = DEFAULT_HIDDEN, critic_hidden: Sequence[int] = DEFAULT_HIDDEN,
                  critic_action_layer: int = 0, actor_output: str = "tanh", batch_size: int = 64,
                  dtypes: Sequence[str] = DTYPES, seed: int = 0, repeats: int = 20,
                  checkpoint: str | Path | None = None, ways: Sequence[str] = WAY_NAMES,
                  measure: bool = True, on_compiled: OnCompiled | None = None) -> list[dict[str, Any]]:
    """Compute the actor gradient each way on one batch, compare each with ``direct``.

    The networks come from ``checkpoint`` (a ``train.py`` run directory), or are built fresh
    for ``env_id`` (observation dimension and action bounds from the environment) or for
    ``obs_dim``/``action_dim`` (bounds [-1, 1]). Give exactly one of the three. With
    ``measure`` each way is also timed (median of ``repeats`` calls of its ``tf.function``
    after one warm-up call). ``on_compiled(dtype, way, call)``, if given, is called after that
    with each way's compiled call (``benchmarks/gradient_memory.py`` measures its peak memory).

    Returns one dict per (dtype, way), ``direct`` first within each dtype, with the keys
    ``way, dtype, max_abs_diff, max_rel_diff, cosine, bit_identical, ok, ms_per_call,
    grad_norm, params, jacobian_numbers, batch_size, obs_dim, action_dim, observations,
    networks, net``. ``ok`` applies the tolerance of the dtype. Raises
    :class:`ddpg_tf.errors.UsageError` for unusable settings.
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

        env = open_env(env_id)
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
        nets_source = (f"fresh initialisation as in training (root seed {seed}: the actor_init and "
                       "critic_init streams), float32 weights cast for float64")

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
            call = functools.partial(fn, observations)
            ms = _time_calls(call, repeats) if measure else None
            if on_compiled is not None:
                on_compiled(dtype, name, call)
            if reference is None:
                reference = grads
            cmp = compare_gradients(grads, reference)
            results.append({
                "way": name, "dtype": dtype, **cmp,
                "ok": within_tolerance(dtype, cmp["max_abs_diff"], cmp["max_rel_diff"]),
                "ms_per_call": ms,
                "grad_norm": float(math.sqrt(sum(float(np.sum(np.square(g.astype(np.float64))))
                                                 for g in grads))),
                "params": params, "jacobian_numbers": batch_size * spec.action_dim * params,
                "batch_size": batch_size, "obs_dim": spec.obs_dim, "action_dim": spec.action_dim,
                "observations": obs_source, "networks": nets_source,
                "net": asdict(spec),
            })
    return results
