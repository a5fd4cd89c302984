"""How saturated a run's tanh actor is at each of its checkpoints, for runs of either library.

    python -m ddpg_tf.experiments.saturation RUN_DIR [RUN_DIR ...]

A deterministic actor ends in ``a = tanh(z)``. Where ``|z|`` is large, float32 rounds
``tanh(z)`` to exactly ±1 and the gradient that reaches the actor through it, ``1 - tanh(z)²``,
is exactly 0: the state teaches the actor nothing. When that holds for every component on every
state the buffer holds, the actor gets no gradient at all and the run stays where it is (see
docs/results.md, the Hopper section: TD3 runs of both ddpg-tf and Stable-Baselines3 that never
learn are in this state).

For each checkpoint (a ddpg-tf run's ``checkpoints/``, or an SB3 trial's ``sb3_checkpoints/``
written by the experiment runner) this evaluates the actor of that checkpoint on every
observation in that checkpoint's replay buffer and prints:

- ``zero-grad``: the share of (state, action component) pairs with ``|z| >= 13 ln 2`` (9.011),
  where a correctly rounded float32 tanh is ±1: the largest float32 below 1 is ``1 - 2^-24``,
  and ``tanh(z) = 1 - 2 e^(-2z) + ...`` rounds up to 1 once ``2 e^(-2z) < 2^-25``. PyTorch's
  CPU tanh and ddpg-tf's actor (:func:`ddpg_tf.networks.rounded_tanh`) round there. ddpg-tf
  runs made before that function used TensorFlow's tanh, ±1 from about ``|z| = 7.91`` (8.00
  under XLA); this tool evaluates their checkpoints with the current actor, so ``own`` for
  them is now measured at 9.01 too;
- ``all-zero``: the share of states whose every component is there (no gradient at all);
- ``own``: the share of states without any gradient by the library's own tanh as training
  runs it (ddpg-tf: the ``diag/actor_states_without_grad`` diagnostic through the agent's
  compiled step; SB3: PyTorch's tanh);
- ``median |z|`` and ``min |z|`` (over every state and component: an actor that stopped
  learning has been pushed just past the point where its own tanh becomes ±1).

The measure is computed from ``z`` with NumPy, so both libraries are judged by one threshold.
ddpg-tf checkpoints are loaded with :meth:`ddpg_tf.DDPG.load` (observation normalisation
applied as in training); SB3 checkpoints need the ``bench`` extra.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ddpg_tf.errors import UsageError, fail
from ddpg_tf.experiments.sb3_checkpoints import CHECKPOINTS as SB3_CHECKPOINTS
from ddpg_tf.experiments.sb3_checkpoints import checkpoint_step, complete_checkpoints
from ddpg_tf.paths import CHECKPOINT_DIR, read_checkpoint_list

_CHUNK = 8192
TANH_F32_ONE = 13 * math.log(2)
"""``|z|`` from which a correctly rounded float32 ``tanh(z)`` is exactly ±1 (about 9.011)."""


class Saturation(NamedTuple):
    """One checkpoint's actor on its replay buffer's observations."""
    step: int
    states: int
    zero_grad: float
    """Share of (state, component) pairs with ``|z| >= TANH_F32_ONE``."""
    all_zero: float
    """Share of states with every component at ``|z| >= TANH_F32_ONE``."""
    own: float
    """Share of states whose every component the library's own tanh returns as exactly ±1."""
    median_abs_z: float
    min_abs_z: float


def measure(pre_activations: np.ndarray, step: int, own: float) -> Saturation:
    """The saturation figures of an ``[states, action_dim]`` array of tanh inputs ``z``, with
    ``own``, the library's own share of states without gradient."""
    z = np.abs(np.asarray(pre_activations, np.float64))
    if z.ndim != 2 or z.shape[0] == 0:
        raise UsageError(f"step {step}: no observations to evaluate the actor on")
    flat = z >= TANH_F32_ONE
    return Saturation(step, z.shape[0], float(flat.mean()), float(flat.all(axis=1).mean()), float(own),
                      float(np.median(z)), float(z.min()))


def run_saturation(run_dir: Path) -> list[Saturation]:
    """The figures of every checkpoint in ``run_dir``, oldest first. Raises
    :class:`~ddpg_tf.errors.UsageError` when ``run_dir`` has no checkpoint of either library
    or its actor has no tanh."""
    if (run_dir / SB3_CHECKPOINTS).is_dir():
        return _sb3_run(run_dir)
    steps, _ = read_checkpoint_list(run_dir / CHECKPOINT_DIR)
    if not steps:
        raise UsageError(f"{run_dir}: no checkpoint of ddpg-tf ({CHECKPOINT_DIR}/) or of an SB3 trial "
                         f"({SB3_CHECKPOINTS}/)")
    return [_ddpg_tf_checkpoint(run_dir, step) for step in steps]


def _ddpg_tf_checkpoint(run_dir: Path, step: int) -> Saturation:
    from ddpg_tf.model import DDPG  # first: it quiets TensorFlow's start-up before keras loads it

    import keras

    with DDPG.load(run_dir, step=step) as model:
        actor = model.agent.actor
        if model.config.actor_output != "tanh":
            raise UsageError(f"{run_dir}: the actor has no tanh (actor_output linear); nothing saturates")
        buffer = model.learner.buffer
        rows = buffer.storage.numpy()[:len(buffer)]
        # The training kernels' own verdict: the agent's compiled diagnostics, chunk by chunk.
        without = 0.0
        for start in range(0, len(rows), _CHUNK):
            part = rows[start:start + _CHUNK]
            diag = model.agent.diagnostics(buffer.unpack(part))
            without += float(diag["diag/actor_states_without_grad"]) * len(part)
        first, last = buffer.columns["observations"]
        obs = rows[:, first:last]
        if model.agent.obs_norm is not None:
            obs = model.agent.obs_norm(obs).numpy()
        pre = keras.Model(actor.inputs, actor.get_layer("pre_action").output)
        return measure(pre.predict(obs, batch_size=_CHUNK, verbose=0), step, without / max(len(rows), 1))


def _sb3_run(run_dir: Path) -> list[Saturation]:
    try:
        import torch
        from stable_baselines3 import TD3
    except ImportError:
        raise UsageError("SB3 checkpoints need the bench extra: pip install -e '.[bench]'") from None
    out = []
    for path in complete_checkpoints(run_dir):
        model = TD3.load(path / "model.zip", device="cpu")
        with np.load(path / "replay.npz") as data:
            obs = data["observations"][:, 0, :]  # [rows, n_envs = 1, obs_dim]
        actor = model.actor
        with torch.no_grad():
            features = actor.extract_features(torch.as_tensor(obs, dtype=torch.float32),
                                              actor.features_extractor)
            z = actor.mu[:-1](features)  # mu ends in nn.Tanh
            own = (torch.abs(actor.mu[-1](z)) == 1).all(dim=1).double().mean().item()
        out.append(measure(z.numpy(), checkpoint_step(path), own))
    if not out:
        raise UsageError(f"{run_dir}: no complete checkpoint in {SB3_CHECKPOINTS}/")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ddpg_tf.experiments.saturation RUN_DIR...``: one table row per checkpoint."""
    runs = list(sys.argv[1:] if argv is None else argv)
    if not runs or any(r.startswith("-") for r in runs):
        fail("usage: python -m ddpg_tf.experiments.saturation RUN_DIR [RUN_DIR ...]")
    print("| run | step | states | zero-grad | all-zero | own | median abs z | min abs z |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        try:
            rows = run_saturation(Path(run))
        except UsageError as exc:
            fail(str(exc))
        for r in rows:
            print(f"| {Path(run).name} | {r.step} | {r.states} | {r.zero_grad:.3f} | {r.all_zero:.3f} "
                  f"| {r.own:.3f} | {r.median_abs_z:.1f} | {r.min_abs_z:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
