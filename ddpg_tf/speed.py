"""``speed="auto"``: the execution settings chosen from the size of an update and the cores.

Four Config fields decide how fast an update runs on a CPU without changing what it computes
(beyond float rounding): ``jit_compile`` (XLA), ``batch_chunks``, ``intra_op_threads`` and
``inter_op_threads``. Which combination is fastest depends on how much work one update is:

* a small update (Pendulum-v1 64-64, batch 64: about 5.6 MFLOP) is dominated by per-op
  overhead, which XLA removes by fusing the whole step into one kernel sequence;
* a large update (256-wide networks, batch 128-256: 170-370 MFLOP) is dominated by matmuls;
  there, on 2 cores, running two batch halves side by side (``batch_chunks 2``, one thread per
  op, two ops at once) without XLA was 5-7% faster than XLA (issue 14's table; bench_sb3.py
  ``--tuned``), while on the small case the same settings were 15% slower.

The rule: the matmul FLOPs of one update (:func:`update_flops`, float64 counted double) at
or above :data:`LARGE_UPDATE_FLOPS` on two or more cores get the large-update settings, all
others XLA. The threshold is the geometric middle of the two measured regimes; the crossover
itself (128-wide networks) was not measured, nor were machines with more than two cores, for
which the large-update settings keep two inter-op threads and give each half the cores.

Only fields the user did not set are chosen (``given``); ``speed="manual"`` keeps all four as
they are. The choice is stored in the run's config.json, so a resumed run keeps it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from ddpg_tf.config import Config

SPEED_FIELDS = ("jit_compile", "batch_chunks", "intra_op_threads", "inter_op_threads")
"""The Config fields ``speed="auto"`` chooses."""
LARGE_UPDATE_FLOPS = 30e6
"""Matmul FLOPs of one update (float32) from which the large-update settings are chosen."""


def mlp_macs(sizes: Sequence[int]) -> int:
    """Multiply-accumulates of one sample through dense layers ``sizes[0] -> ... -> sizes[-1]``."""
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def update_flops(obs_dim: int, action_dim: int, actor_hidden: Sequence[int],
                 critic_hidden: Sequence[int], batch_size: int) -> dict[str, int]:
    """Matmul FLOPs of one DDPG update (critic step, actor step), by pass, and their ``total``.

    Actor A = [obs, *actor_hidden, act], critic C = [obs + act, *critic_hidden, 1] (the action
    joins at the input). For a network N and batch B, with M(N) its per-sample MACs and
    M1(N) its first layer's:

    * forward: F(N) = 2 B M(N) (a multiply-add is 2 FLOPs);
    * weight gradients dW = X^T dY: another 2 B M(N);
    * input gradients dX = dY W^T: 2 B M(N) minus the first layer's 2 B M1(N) when the gradient
      w.r.t. the network's input is not needed.

    Passes of one update: target actor forward on s'; target critic forward on (s', mu'(s'));
    critic forward on (s, a); critic backward with weight gradients (no input gradient at the
    first layer); actor forward on s; critic forward on (s, mu(s)); critic backward to the
    action input only (no weight gradients; the first layer's input gradient only for the
    action columns, 2 B act h1); actor backward with weight gradients. A backward pass with
    weight gradients costs about twice its forward, one without about once, so the total is
    about 4 F(A) + 6 F(C).

    Only matrix multiplications are counted: biases, activations, losses, Adam and the Polyak
    updates are O(B x width) or O(parameters) and add a few percent at most. This is the work
    the algorithm needs; an implementation may do more (PyTorch's ``actor_loss.backward()``
    also computes the critic's weight gradients, which SB3 then discards).
    """
    b = int(batch_size)
    actor = [obs_dim, *actor_hidden, action_dim]
    critic = [obs_dim + action_dim, *critic_hidden, 1]
    fa, fc = 2 * b * mlp_macs(actor), 2 * b * mlp_macs(critic)
    first_a, first_c = 2 * b * actor[0] * actor[1], 2 * b * critic[0] * critic[1]
    passes = {
        "target_actor_forward": fa,
        "target_critic_forward": fc,
        "critic_forward": fc,
        "critic_backward": fc + (fc - first_c),
        "actor_forward": fa,
        "critic_forward_on_policy_actions": fc,
        "critic_backward_to_action": (fc - first_c) + 2 * b * action_dim * critic[1],
        "actor_backward": fa + (fa - first_a),
    }
    passes["total"] = sum(passes.values())
    return passes


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def choose_speed(config: Config, obs_dim: int, action_dim: int, cores: int) -> dict[str, Any]:
    """The four :data:`SPEED_FIELDS` the rule of this module picks for ``config``'s networks,
    batch and dtype on ``cores`` cores (whatever the fields hold now)."""
    flops = update_flops(obs_dim, action_dim, config.actor_hidden, config.critic_hidden,
                         config.batch_size)["total"] * (2 if config.dtype == "float64" else 1)
    if flops >= LARGE_UPDATE_FLOPS and cores >= 2:
        # Two batch halves side by side, each op on its share of the cores.
        chunks = 2 if config.batch_size % 2 == 0 else 1
        return {"jit_compile": False, "batch_chunks": chunks, "intra_op_threads": max(1, cores // 2),
                "inter_op_threads": 2}
    return {"jit_compile": True, "batch_chunks": 1, "intra_op_threads": 0, "inter_op_threads": 0}


def kept_speed_fields(config: Config, given: Iterable[str] = ()) -> set[str]:
    """The fields ``speed="auto"`` leaves alone: those named in ``given`` (flags on the command
    line, keyword overrides) and the execution fields ``config`` sets to other than their
    defaults."""
    default = Config()
    return set(given) | {f for f in (*SPEED_FIELDS, "threads") if getattr(config, f) != getattr(default, f)}


def resolve_speed(config: Config, obs_dim: int, action_dim: int, given: set[str] | frozenset[str],
                  cores: int | None = None) -> tuple[Config, str | None]:
    """``config`` with ``speed="auto"`` applied: the fields of :func:`choose_speed` that are not
    in ``given`` (set by the user; ``threads`` counts for both thread fields) replaced, and a
    one-line description of the choice (None with ``speed="manual"`` or ``eager``)."""
    if config.speed != "auto" or config.eager:
        return config, None
    cores = available_cores() if cores is None else cores
    if config.threads:  # a run limited to fewer threads (e.g. parallel trials) has only those cores
        cores = min(cores, config.threads)
    chosen = choose_speed(config, obs_dim, action_dim, cores)
    fixed = set(given)
    if "threads" in fixed or config.threads:
        fixed |= {"intra_op_threads", "inter_op_threads"}
    values = {k: v for k, v in chosen.items() if k not in fixed}
    resolved = config.replace(**values).validate()
    flops = update_flops(obs_dim, action_dim, config.actor_hidden, config.critic_hidden,
                         config.batch_size)["total"]
    return resolved, describe(resolved, flops, cores, kept=sorted(fixed & set(SPEED_FIELDS)))


def describe(config: Config, flops: int, cores: int, kept: Sequence[str] = ()) -> str:
    """One line naming the execution settings ``config`` runs with, and why."""
    threads = ("TensorFlow's default threads" if not (config.intra_op_threads or config.inter_op_threads
                                                      or config.threads)
               else f"{config.intra_op_threads or config.threads or 'default'} intra-op / "
                    f"{config.inter_op_threads or config.threads or 'default'} inter-op threads")
    line = (f"speed auto: {'XLA' if config.jit_compile else 'no XLA'}, batch chunks {config.batch_chunks}, "
            f"{threads} (update {flops / 1e6:.1f} MFLOP, {cores} cores)")
    if kept:
        line += f"; kept as set: {', '.join(kept)}"
    return line + "; --speed manual to choose yourself"


__all__ = ["LARGE_UPDATE_FLOPS", "SPEED_FIELDS", "available_cores", "choose_speed", "describe",
           "kept_speed_fields", "mlp_macs", "resolve_speed", "update_flops"]
