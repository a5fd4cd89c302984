"""Fixed-capacity ring replay buffer with seeded uniform sampling.

``terminated`` and ``truncated`` are stored separately (as in Gymnasium's step API). The TD
target masks only ``terminated``; a transition cut by a time limit keeps its true next
observation and is bootstrapped from it, never treated as terminal.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    """A sampled batch; every field has a leading batch dimension, scalars are (N, 1)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


class ReplayBuffer:
    """Ring buffer of ``capacity`` transitions; the oldest is overwritten first."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, *, seed: int = 0,
                 dtype: str = "float32") -> None:
        self.capacity = int(capacity)
        self.dtype = np.dtype(dtype)
        self.observations = np.zeros((capacity, obs_dim), self.dtype)
        self.actions = np.zeros((capacity, action_dim), self.dtype)
        self.rewards = np.zeros((capacity, 1), self.dtype)
        self.next_observations = np.zeros((capacity, obs_dim), self.dtype)
        self.terminated = np.zeros((capacity, 1), self.dtype)
        self.truncated = np.zeros((capacity, 1), self.dtype)
        self.position = 0  # next slot to write
        self.size = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, observation: np.ndarray, action: np.ndarray, reward: float,
            next_observation: np.ndarray, terminated: bool, truncated: bool) -> None:
        """Store one transition. ``next_observation`` must be the observation the step
        returned (for a truncated episode: the final observation, not the reset one)."""
        i = self.position
        self.observations[i] = observation
        self.actions[i] = action
        self.rewards[i, 0] = reward
        self.next_observations[i] = next_observation
        self.terminated[i, 0] = terminated
        self.truncated[i, 0] = truncated
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def mark_truncated_last(self) -> None:
        """Flag the most recent transition as truncated (its episode was cut short)."""
        if self.size:
            self.truncated[(self.position - 1) % self.capacity, 0] = 1

    def sample(self, batch_size: int) -> Batch:
        """Uniformly sample ``batch_size`` stored transitions (with replacement)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self.size, size=batch_size)
        return Batch(self.observations[idx], self.actions[idx], self.rewards[idx],
                     self.next_observations[idx], self.terminated[idx], self.truncated[idx])

    # --- persistence -----------------------------------------------------------------
    _FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated", "truncated")

    def save(self, path: str | Path) -> None:
        """Write the stored transitions, ring position and sampling RNG state to ``path``
        (compressed ``.npz``)."""
        n = self.size
        arrays = {f: getattr(self, f)[:n] for f in self._FIELDS}
        meta = np.array([self.capacity, self.position, self.size], np.int64)
        rng_state = np.frombuffer(_json_bytes(self.rng.bit_generator.state), np.uint8)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, meta=meta, rng_state=rng_state, **arrays)

    def load(self, path: str | Path) -> None:
        """Restore what :meth:`save` wrote; shapes must match this buffer."""
        with np.load(path) as data:
            capacity, position, size = (int(v) for v in data["meta"])
            if capacity != self.capacity:
                raise ValueError(f"saved buffer capacity {capacity} != {self.capacity}")
            for f in self._FIELDS:
                stored = data[f]
                target = getattr(self, f)
                if stored.shape[1:] != target.shape[1:]:
                    raise ValueError(f"saved buffer field {f} has shape {stored.shape[1:]}, "
                                     f"expected {target.shape[1:]}")
                target[:size] = stored
            self.position, self.size = position, size
            self.rng.bit_generator.state = _json_load(bytes(data["rng_state"]))


def _json_bytes(obj: object) -> bytes:
    import json

    return json.dumps(obj, default=int).encode()


def _json_load(raw: bytes) -> dict:
    import json

    return json.loads(raw.decode())
