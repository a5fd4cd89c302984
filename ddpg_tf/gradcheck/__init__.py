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
    :func:`~ddpg_tf.gradcheck.ways.actor_grads_jacobian`: the per-sample Jacobian
    d mu_i / d theta of shape (N, action_dim, *w.shape) is formed explicitly for every weight
    tensor w and contracted with dQ/da over the action axis and the batch axis. This spells out
    the "multiplication" of the chain rule: a vector-Jacobian product per sample, summed over
    samples.
``surrogate``
    :func:`ddpg_tf.losses.actor_grads_dpg_surrogate`: the loss
    1/N sum_i 0.5 ||sg(a_i + dQ/da_i) - a_i||^2 (the form TF-Agents, Acme and rlax use).

For every way and dtype it reports the largest absolute and relative difference from
``direct``, their cosine similarity and the time per compiled call, and exits with status 1
if any way disagrees beyond the tolerance (float64: max abs diff < 1e-10; float32: max rel
diff < 1e-5), 0 if all agree, 2 for a usage error.
See ``docs/actor_gradient.md`` for the derivation and measured costs.

Observations: with ``--env`` or ``--checkpoint`` the batch holds the first N states visited by
uniform random actions in the environment (reset with ``--seed``, reset again at episode
ends); with ``--obs-dim`` it is standard normal. Without ``--checkpoint`` the networks are
freshly initialised as in training (actor seed ``--seed``, critic seed ``--seed`` + 5000).

TensorFlow is imported only after the command line has been checked, so bad flags are
reported at once. The peak memory of each way's call is a benchmark's job:
``python benchmarks/gradient_memory.py`` (same flags).

One module per job: :mod:`~ddpg_tf.gradcheck.ways` (the four ways),
:mod:`~ddpg_tf.gradcheck.sources` (networks and observations: fresh, from a checkpoint, from an
environment), :mod:`~ddpg_tf.gradcheck.check` (compare and time: :func:`run_gradcheck`),
:mod:`~ddpg_tf.gradcheck.cli` (flags, table, JSON).
"""

from ddpg_tf.gradcheck.check import (DEFAULT_HIDDEN, DTYPES, TOL_FLOAT32_REL, TOL_FLOAT64_ABS,
                                     compare_gradients, run_gradcheck, within_tolerance)
from ddpg_tf.gradcheck.cli import DEFAULT_ENV, build_parser, format_table, main, settings_from_args
from ddpg_tf.gradcheck.sources import (NetSpec, cast_copy, env_observations, latest_checkpoint,
                                       load_checkpoint_networks)
from ddpg_tf.gradcheck.ways import (WAY_NAMES, WAYS, GradientFn, actor_grads_chain_rule, actor_grads_direct,
                                    actor_grads_jacobian, actor_grads_surrogate)

__all__ = [
    "DEFAULT_ENV", "DEFAULT_HIDDEN", "DTYPES", "TOL_FLOAT32_REL", "TOL_FLOAT64_ABS", "WAYS", "WAY_NAMES",
    "GradientFn", "NetSpec", "actor_grads_chain_rule", "actor_grads_direct", "actor_grads_jacobian",
    "actor_grads_surrogate", "build_parser", "cast_copy", "compare_gradients", "env_observations",
    "format_table", "latest_checkpoint", "load_checkpoint_networks", "main", "run_gradcheck",
    "settings_from_args", "within_tolerance",
]
