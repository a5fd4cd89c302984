"""What the comparison measures: the libraries (ddpg-tf and its peers), its cases, the settings
every library shares, the presets.

See ``bench_sb3.py``'s docstring for why each setting is what it is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Library:
    """One library in the comparison: ddpg-tf, or a peer run through Stable-Baselines3's API."""

    key: str
    """Its name in worker kinds (``sb3/e2e``), in ``--peers`` and in the JSON."""
    label: str
    """Its name in the report."""
    requires: tuple[str, ...]
    """Modules that must be importable for its workers to run (checked without importing)."""
    bare_imports: tuple[str, ...]
    """What its bare-import worker imports: the frameworks under the library, nothing of it."""
    versions: tuple[tuple[str, str], ...]
    """(distribution, name in the report) of the versions the report's first line gives."""
    extra: str
    """The setup.cfg extra that installs it."""
    blocked: tuple[str, ...]
    """Modules its workers make unimportable: optional imports of another framework that would
    ride along idle (TensorFlow in the peers through ``torch.utils.tensorboard``; JAX, where it
    is installed, in ddpg-tf through ``tensorflow.lite``: about 70 MiB and a second of import)."""


LIBRARIES: dict[str, Library] = {lib.key: lib for lib in (
    Library("ddpg_tf", "ddpg-tf", ("tensorflow", "keras"), ("tensorflow", "keras"),
            (("tensorflow", "TensorFlow"),), "", ("jax",)),
    Library("sb3", "SB3", ("stable_baselines3", "torch"), ("torch",),
            (("torch", "torch"), ("stable-baselines3", "Stable-Baselines3")), "bench", ("tensorflow",)),
    # SBX runs on SB3's classes (buffer, callbacks, learn loop), so it imports PyTorch too.
    Library("sbx", "SBX", ("sbx", "jax", "flax", "optax", "stable_baselines3", "torch"),
            ("jax", "torch"), (("jax", "jax"), ("sbx-rl", "SBX")), "sbx", ("tensorflow",)),
)}
LIBS = tuple(LIBRARIES)
PEERS = LIBS[1:]
"""The libraries ddpg-tf is compared with (``--peers``), in report order."""
LIB_LABEL = {key: lib.label for key, lib in LIBRARIES.items()}
METRICS = ("e2e", "update", "act", "e2e_vec")
VALUE_KEY = {"e2e": "env_steps_per_s", "update": "updates_per_s", "act": "ms_per_action",
             "e2e_vec": "vec_env_steps_per_s"}
"""The headline value of each metric, in a worker's result and in the case medians."""


@dataclass(frozen=True)
class Case:
    """One benchmark configuration; every library gets exactly these settings."""

    name: str
    env_id: str
    obs_dim: int
    action_dim: int
    hidden: tuple[int, ...]
    batch_size: int
    episode_steps: int
    """Episode length (both environments run to their time limit, never terminate early)."""
    e2e_steps: int
    """Default number of timed end-to-end environment steps (``--e2e-steps`` overrides)."""

    @property
    def label(self) -> str:
        return f"{self.env_id} {'-'.join(map(str, self.hidden))} B{self.batch_size}"


CASES: dict[str, Case] = {c.name: c for c in (
    Case("pendulum-64", "Pendulum-v1", 3, 1, (64, 64), 64, 200, 5000),
    Case("pendulum-256", "Pendulum-v1", 3, 1, (256, 256), 256, 200, 5000),
    # The networks and batch of the pendulum preset (the quick start).
    Case("pendulum-256-b128", "Pendulum-v1", 3, 1, (256, 256), 128, 200, 5000),
    Case("halfcheetah-256", "HalfCheetah-v5", 17, 6, (256, 256), 256, 1000, 3000),
    Case("halfcheetah-400-300", "HalfCheetah-v5", 17, 6, (400, 300), 256, 1000, 3000),
)}

LARGE_NETWORK_SETTINGS = {"jit_compile": False, "batch_chunks": 2, "intra_op_threads": 1,
                          "inter_op_threads": 2}
"""The settings ``speed="auto"`` picks for 256-wide and larger networks on 2 cores, set
explicitly by ``--tuned`` (which was the only way before ``speed="auto"``)."""
TUNED = {name: dict(LARGE_NETWORK_SETTINGS)
         for name in ("pendulum-256", "pendulum-256-b128", "halfcheetah-256", "halfcheetah-400-300")}
"""``--tuned``: per-case ddpg-tf settings (small networks keep the library defaults, XLA)."""

# Shared hyperparameters (see bench_sb3.py's docstring).
LEARNING_RATE = 1e-3
TAU = 0.005
GAMMA = 0.99
NOISE_SIGMA = 0.1

FULL = {"repeats": 3, "learning_starts": 1000, "warmup_steps": 500, "log_every": 500,
        "updates": 2000, "update_warmup": 100, "update_fill": 50_000, "actions": 3000,
        "action_warmup": 200, "buffer_size": 1_000_000, "matmul_n": 2048, "matmul_reps": 8,
        "memory_capacity": 1_000_000}
QUICK = {"repeats": 1, "learning_starts": 64, "warmup_steps": 20, "log_every": 20,
         "e2e_steps": 60, "updates": 30, "update_warmup": 3, "update_fill": 1000, "actions": 100,
         "action_warmup": 10, "buffer_size": 100_000, "matmul_n": 512, "matmul_reps": 3,
         "memory_capacity": 1_000_000}
"""``--quick``: tiny settings to check the machinery (the numbers mean nothing)."""
OTHER_LOAD_WARNING = 0.3
"""CPUs kept busy by other processes during a worker above which the report warns."""
SPREAD_FLAG = 0.10
"""ddpg-tf's run-to-run spread (max - min) / median of a case's measurement above which the
report flags it, with the other-process load measured during those runs."""
MIN_REPEATS = 3
"""Fewer repeats than this and the report warns that min / median / max say little."""

PER_CALL = "agent.train_on_replay()"
"""ddpg-tf's per-step update call, also timed by the update-only worker (extra rows)."""
PER_CALL_KEY = "updates_per_s_one_call_per_update"
"""Where the median of :data:`PER_CALL`'s rate goes in a case's ddpg-tf medians."""
