"""The timed SBX measurements (Stable-Baselines3 in JAX: all gradient steps of a ``train`` call
in one ``jax.jit``): the workers of ``workers_sb3``, SBX's DDPG in place of SB3's.

SBX's DDPG is its TD3 with one critic, no policy delay and no target smoothing. Its actor
learning rate is ``learning_rate`` and its critic's ``qf_learning_rate``: both get the shared
rate. It keeps SB3's replay buffer (NumPy, sampled through PyTorch tensors) and learn loop, so
these workers import PyTorch besides JAX. JAX and SBX are imported inside the workers only.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from benchmarks import workers_sb3
from benchmarks.cases import LEARNING_RATE
from benchmarks.timing import cpus, thread_env


def _sbx_ddpg() -> type:
    from sbx import DDPG

    return DDPG


def _jax_parameters(model: Any) -> dict[str, int]:
    import jax

    def count(tree: Any) -> int:
        return sum(leaf.size for leaf in jax.tree_util.tree_leaves(tree))

    return {"actor": count(model.policy.actor_state.params), "critic": count(model.policy.qf_state.params)}


def jax_threads() -> dict[str, Any]:
    """JAX's devices and the PyTorch pools (SB3's buffer) in this process; XLA's CPU client
    sizes its own thread pool (one thread per core) and has no per-process setting."""
    import jax
    import torch

    return {"jax_devices": [str(d) for d in jax.devices()], "xla": "XLA's CPU default (one per core)",
            "torch_intra_op": torch.get_num_threads(), "cpus_available": cpus(), "env": thread_env()}


SBX = workers_sb3.Flavour(ddpg=_sbx_ddpg, parameters=_jax_parameters, threads=jax_threads,
                          kwargs={"qf_learning_rate": LEARNING_RATE, "device": "cpu"},
                          compiles_per_k=True)
"""SBX: SB3's workers with this flavour."""

worker_e2e = partial(workers_sb3.worker_e2e, flavour=SBX)
worker_e2e_vec = partial(workers_sb3.worker_e2e_vec, flavour=SBX)
worker_update = partial(workers_sb3.worker_update, flavour=SBX)
worker_act = partial(workers_sb3.worker_act, flavour=SBX)
