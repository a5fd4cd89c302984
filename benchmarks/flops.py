"""The physical limit of an update: its matmul FLOPs, counted from the layer sizes, and the
peak float32 matmul rate of this machine, measured (a worker of its own, see ``runner``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.timing import clock, window
from benchmarks.workers_ddpg_tf import tf_threads


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


def worker_peak(spec: dict[str, Any]) -> dict[str, Any]:
    """GFLOP/s of ``tf.matmul`` of two ``n`` x ``n`` float32 matrices, per repetition and best."""
    from ddpg_tf._quiet import tf

    n = spec["n"]
    a = tf.random.stateless_normal((n, n), seed=(1, 2), dtype=tf.float32)
    b = tf.random.stateless_normal((n, n), seed=(3, 4), dtype=tf.float32)
    tf.matmul(a, b)[0, 0].numpy()  # warm-up (oneDNN primitive creation)
    gflops = []
    first = clock()
    for _ in range(spec["reps"]):
        start = time.perf_counter()
        tf.matmul(a, b)[0, 0].numpy()
        gflops.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return {"n": n, "gflops_runs": gflops, "gflops_best": max(gflops),
            "gflops_median": statistics.median(gflops),
            "cpu_per_wall": window(first, clock())["cpu_per_wall"], "threads": tf_threads()}
