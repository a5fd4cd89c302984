"""Fixed-capacity ring replay buffer held in a TensorFlow variable, sampled in-graph.

Each transition is one row of a ``(capacity, width)`` variable, columns laid out as
``[observation | action | reward | next_observation | terminated | truncated]``, plus a
``bootstrap_steps`` column for n-step returns (see :class:`NStepWindow`). Keeping the
rows in a variable lets the agent's compiled step store the newest transition, draw a batch
with a ``tf.random.Generator`` and update, all in one call, with no per-step NumPy gather and
no host-to-tensor copies of the batch (see ``DDPGAgent.bind_replay``). The memory cost is
the raw size of the rows: ``capacity * width * 4`` bytes in float32.

``terminated`` and ``truncated`` are stored separately (as in Gymnasium's step API). The TD
target masks only ``terminated``; a transition cut by a time limit keeps its true next
observation and is bootstrapped from it, never treated as terminal.

The eager methods (``add``, ``sample``, the column properties) serve tests, benchmarks and
debugging; training uses the in-graph ``add_row`` / ``sample_rows``.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ddpg_tf._quiet import tf


class Batch(NamedTuple):
    """A sampled batch; every field has a leading batch dimension, scalars are (N, 1)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    bootstrap_steps: np.ndarray | None = None
    """For n-step returns: how many rewards the row's reward sums (its bootstrap discount is
    gamma ** bootstrap_steps); None in a 1-step buffer."""


class ReplayBuffer(tf.Module):
    """Ring buffer of ``capacity`` transitions; the oldest is overwritten first."""

    _FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated", "truncated")

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, *, seed: int = 0,
                 dtype: str = "float32", n_step: int = 1) -> None:
        super().__init__(name="replay_buffer")
        self.capacity = int(capacity)
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.dtype = np.dtype(dtype)
        self.n_step = int(n_step)
        fields = self._FIELDS + (("bootstrap_steps",) if self.n_step > 1 else ())
        widths = _widths(obs_dim, action_dim, self.n_step > 1)
        edges = np.concatenate([[0], np.cumsum(widths)]).tolist()
        self.columns = {f: (edges[i], edges[i + 1]) for i, f in enumerate(fields)}
        self.width = int(edges[-1])
        # The column edges as a plain tuple for pack (called every step): tf.Module wraps a dict
        # attribute in a tracking proxy whose lookups cost more than the copies themselves (a
        # tuple of numbers stays a tuple).
        self._edges = tuple(edges)
        self.storage = tf.Variable(tf.zeros((self.capacity, self.width), self.dtype), trainable=False,
                                   name="storage")
        self._position = tf.Variable(0, dtype=tf.int64, trainable=False, name="position")
        self._size = tf.Variable(0, dtype=tf.int64, trainable=False, name="size")
        self.generator = tf.random.Generator.from_seed(seed)
        self._add = tf.function(self.add_row, input_signature=[tf.TensorSpec((self.width,), self.dtype)])
        self._sample = tf.function(self.sample_rows, input_signature=[tf.TensorSpec((), tf.int32)])

    # --- in-graph operations (called inside the agent's compiled step) ------------------
    def add_row(self, row: tf.Tensor) -> None:
        """Write one packed transition at the ring position and advance it."""
        self.storage.scatter_nd_update(tf.reshape(self._position, (1, 1)), row[None])
        self._position.assign((self._position + 1) % self.capacity)
        self._size.assign(tf.minimum(self._size + 1, self.capacity))

    def add_rows(self, rows: tf.Tensor) -> None:
        """Write packed transitions (n, width) at the next n ring positions, in order."""
        if rows.shape[0] == 1:
            # One environment's step: the single-row write. Under XLA the fused step with it
            # runs about 7% faster on HalfCheetah-v5 256-256 (benchmarks/compare_commits.py,
            # 3 seeds), although both compile to the same in-place dynamic-update-slice.
            self.add_row(rows[0])
            return
        n = tf.shape(rows, out_type=self._position.dtype)[0]
        slots = (self._position + tf.range(n, dtype=self._position.dtype)) % self.capacity
        self.storage.scatter_nd_update(slots[:, None], rows)
        self._position.assign((self._position + n) % self.capacity)
        self._size.assign(tf.minimum(self._size + n, self.capacity))

    def sample_rows(self, batch_size: int | tf.Tensor) -> tf.Tensor:
        """``batch_size`` stored rows drawn uniformly with replacement, shape (B, width)."""
        idx = self.generator.uniform([batch_size], minval=0, maxval=self._size, dtype=tf.int64)
        return tf.gather(self.storage, idx)

    def unpack(self, rows: tf.Tensor) -> Batch:
        """Split packed rows into a :class:`Batch` of column slices (tensors)."""
        return Batch(*(rows[:, a:b] for a, b in self.columns.values()))

    def pack_rows(self, observations: tf.Tensor, actions: tf.Tensor, rewards: tf.Tensor,
                  next_observations: tf.Tensor, terminated: tf.Tensor, truncated: tf.Tensor) -> tf.Tensor:
        """In-graph :meth:`pack` of a batch of 1-step transitions (``[n, ...]`` tensors;
        rewards and the flags ``[n]``): the ``[n, width]`` rows in the buffer's dtype."""
        if "bootstrap_steps" in self.columns:
            raise ValueError("pack_rows packs 1-step transitions; this buffer holds n-step rows")
        dtype = self.storage.dtype
        return tf.concat([tf.cast(observations, dtype), tf.cast(actions, dtype),
                          tf.cast(rewards, dtype)[:, None], tf.cast(next_observations, dtype),
                          tf.cast(terminated, dtype)[:, None], tf.cast(truncated, dtype)[:, None]], axis=1)

    def pack(self, observation: np.ndarray, action: np.ndarray, reward: float,
             next_observation: np.ndarray, terminated: bool, truncated: bool,
             bootstrap_steps: int = 1) -> np.ndarray:
        """One transition as a packed row (NumPy, in the buffer's dtype)."""
        row = np.empty(self.width, self.dtype)
        e = self._edges  # field i spans e[i]:e[i + 1], in the order of the arguments
        row[e[0]:e[1]] = observation
        row[e[1]:e[2]] = action
        row[e[2]] = reward
        row[e[3]:e[4]] = next_observation
        row[e[4]] = terminated
        row[e[5]] = truncated
        if len(e) > 7:
            row[e[6]] = bootstrap_steps
        elif bootstrap_steps != 1:
            raise ValueError("a 1-step buffer stores only 1-step transitions")
        return row

    # --- eager API ---------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._size.numpy())

    @property
    def size(self) -> int:
        return len(self)

    @property
    def stored(self) -> tf.Variable:
        """The stored-row count as the variable itself (up to ``capacity``), for graph code."""
        return self._size

    @property
    def position(self) -> int:
        """Next slot to write."""
        return int(self._position.numpy())

    def add(self, observation: np.ndarray, action: np.ndarray, reward: float,
            next_observation: np.ndarray, terminated: bool, truncated: bool,
            bootstrap_steps: int = 1) -> None:
        """Store one transition. ``next_observation`` must be the observation the step
        returned (for a truncated episode: the final observation, not the reset one)."""
        self._add(self.pack(observation, action, reward, next_observation, terminated, truncated,
                            bootstrap_steps))

    def add_batch(self, observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                  next_observations: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                  bootstrap_steps: np.ndarray | None = None) -> None:
        """Store many transitions at once (in order, wrapping around), in place."""
        fields: tuple[np.ndarray, ...] = (observations, actions, rewards, next_observations, terminated,
                                          truncated)
        if "bootstrap_steps" in self.columns:
            steps = np.ones(len(observations)) if bootstrap_steps is None else bootstrap_steps
            fields += (steps,)
        n = len(observations)
        rows = np.empty((n, self.width), self.dtype)
        for (a, b), values in zip(self.columns.values(), fields, strict=True):
            rows[:, a:b] = np.asarray(values, self.dtype).reshape(n, b - a)
        chunk = 65_536  # bounded temporaries: scatter updates the variable in place
        for start in range(0, n, chunk):
            part = rows[start:start + chunk]
            idx = (self.position + np.arange(len(part))) % self.capacity
            self.storage.scatter_nd_update(idx[:, None], part)
            self._position.assign((self.position + len(part)) % self.capacity)
            self._size.assign(min(len(self) + len(part), self.capacity))

    def sample(self, batch_size: int) -> Batch:
        """Uniformly sample ``batch_size`` stored transitions (with replacement), as NumPy."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        rows = self._sample(tf.constant(batch_size, tf.int32)).numpy()
        return Batch(*(rows[:, a:b] for a, b in self.columns.values()))

    def mark_truncated(self, back: list[int]) -> None:
        """Flag the transitions stored ``back`` places before the newest (0: the newest) as
        truncated (their episodes were cut short)."""
        slots = [(self.position - 1 - b) % self.capacity for b in back if b < len(self)]
        if slots:
            col = self.columns["truncated"][0]
            self.storage.scatter_nd_update([[s, col] for s in slots],
                                           tf.ones([len(slots)], self.storage.dtype))

    def mark_truncated_last(self) -> None:
        """Flag the most recent transition as truncated (its episode was cut short)."""
        if len(self):
            col = self.columns["truncated"][0]
            self.storage.scatter_nd_update([[(self.position - 1) % self.capacity, col]],
                                           tf.ones([1], self.storage.dtype))

    def __getattr__(self, name: str) -> np.ndarray:
        # Column views for inspection: buffer.observations, buffer.rewards, ...
        columns = self.__dict__.get("columns")
        if columns is not None and name in columns:
            a, b = columns[name]
            return self.storage.numpy()[:, a:b]
        raise AttributeError(name)

    # --- persistence -----------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the stored rows, ring position and sampling RNG state to ``path``
        (compressed ``.npz``)."""
        n = len(self)
        meta = np.array([self.capacity, self.position, n, self.width, self.obs_dim, self.action_dim],
                        np.int64)
        rng = np.frombuffer(json.dumps(self.generator.state.numpy().tolist()).encode(), np.uint8)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, meta=meta, rng_state=rng, rows=self.storage.numpy()[:n])

    def load(self, path: str | Path) -> None:
        """Restore what :meth:`save` wrote; capacity and row width must match this buffer."""
        try:
            capacity, position, size, width, rows, state = _read(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"replay buffer file {path} is damaged ({exc}); move it away and resume "
                             "with --no-save-buffer to start from an empty buffer") from None
        if capacity != self.capacity:
            raise ValueError(f"saved buffer capacity {capacity} != {self.capacity}")
        if width != self.width:
            raise ValueError(f"saved buffer rows have width {width}, expected {self.width} "
                             "(another environment?)")
        chunk = 65_536  # in place, in bounded pieces: no second full-size copy
        for start in range(0, size, chunk):
            part = rows[start:start + chunk].astype(self.dtype, copy=False)
            idx = np.arange(start, start + len(part))[:, None]
            self.storage.scatter_nd_update(idx, part)
        self._position.assign(position)
        self._size.assign(size)
        self.generator.reset(state)


def read_saved_transitions(path: str | Path) -> Batch:
    """The transitions in a file written by :meth:`ReplayBuffer.save`, oldest slot first in
    storage order (not time order once the ring has wrapped), as NumPy arrays."""
    with np.load(path) as data:
        width = int(data["meta"][3])
        obs_dim, action_dim = (int(v) for v in data["meta"][4:6])
        rows = data["rows"]
    widths = _widths(obs_dim, action_dim, width > sum(_widths(obs_dim, action_dim, False)))
    edges = np.concatenate([[0], np.cumsum(widths)])
    return Batch(*(rows[:, edges[i]:edges[i + 1]] for i in range(len(widths))))


def _widths(obs_dim: int, action_dim: int, n_step: bool) -> tuple[int, ...]:
    return (obs_dim, action_dim, 1, obs_dim, 1, 1) + ((1,) if n_step else ())


class NStepWindow:
    """Turns a stream of 1-step transitions into n-step ones, on the host, before storage.

    For the transition at time t it emits (s_t, a_t, R, s_{t+m}, terminated, truncated, m)
    with R = sum_{k<m} gamma^k r_{t+k} (summed in float64): m = n while the episode goes on;
    when it ends at step t + m - 1 < t + n - 1, the last n - 1 transitions are emitted with
    the m that remain, ``terminated`` (no bootstrap) or ``truncated`` (bootstrap from the
    last state reached, discounted by gamma^m) taken from the episode's final step. So every
    environment step is stored once, as the start of one window. With n = 1 it passes
    transitions through unchanged.
    """

    def __init__(self, n: int, gamma: float) -> None:
        self.n, self.gamma = int(n), float(gamma)
        self._pending: list[tuple[np.ndarray, np.ndarray, float]] = []
        self._last: tuple[np.ndarray, bool, bool] | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, observation: np.ndarray, action: np.ndarray, reward: float,
             next_observation: np.ndarray, terminated: bool, truncated: bool) -> list[tuple]:
        """Add one step; return the n-step transitions it completes (in time order), as
        ``ReplayBuffer.pack`` argument tuples."""
        if self.n == 1:  # nothing pending: the step passes through unchanged
            return [(observation, action, float(reward), next_observation, bool(terminated),
                     bool(truncated), 1)]
        self._pending.append((observation, action, float(reward)))
        self._last = (next_observation, bool(terminated), bool(truncated))
        if terminated or truncated:
            return self.flush(truncated=bool(truncated))
        if len(self._pending) == self.n:
            return [self._emit(terminated=False, truncated=False)]
        return []

    def flush(self, truncated: bool = True) -> list[tuple]:
        """Emit every pending window as ending at the last state pushed (an episode end, or a
        cut such as a checkpoint, which counts as a truncation)."""
        out = []
        while self._pending:
            assert self._last is not None
            out.append(self._emit(terminated=self._last[1], truncated=truncated))
        return out

    def _emit(self, *, terminated: bool, truncated: bool) -> tuple:
        observation, action, _ = self._pending[0]
        total = 0.0
        for k, (_, _, reward) in enumerate(self._pending):
            total += self.gamma ** k * reward
        steps = len(self._pending)
        self._pending.pop(0)
        assert self._last is not None
        return observation, action, total, self._last[0], terminated, truncated, steps


def _read(path: str | Path) -> tuple[int, int, int, int, np.ndarray, np.ndarray]:
    with np.load(path) as data:
        capacity, position, size, width = (int(v) for v in data["meta"][:4])
        rows = data["rows"]
        state = np.array(json.loads(bytes(data["rng_state"]).decode()), np.int64)
    return capacity, position, size, width, rows, state
