"""Checkpoints of a Stable-Baselines3 trial, so an interrupted one continues where it stopped.

A checkpoint is taken at the first episode end at or after each multiple of
``checkpoint_every``, once that episode's updates and due evaluations are done (SB3 trains
between rollouts, so this is the start of the next rollout). It holds what the rest of the run
depends on:

- ``model.zip``: SB3's own ``model.save`` (weights, target networks, Adam states, the step and
  update counters, the action space, the action noise);
- ``replay.npz``: the filled rows of the replay buffer, its write position and whether it wrapped;
- ``state.pkl``: the random generators SB3 draws from (PyTorch's, NumPy's global one, Python's
  ``random``, the action space's), the evaluation env's generator, and the training env's
  generator state from just before its last reset.

Resuming reloads all of it and replays that last reset, so the training env starts the same
episode the uninterrupted run started: on an env whose reset draws only from its own
generator (MuJoCo and classic control) a resumed trial reproduces the uninterrupted one
(tested on Pendulum-v1). SB3 itself has no such resume: ``load`` reseeds every generator with
the run's seed and starts a new episode.

Layout: ``RUN_DIR/sb3_checkpoints/step-NNNNNNNNN/``. A checkpoint is written into a hidden
temporary directory and renamed into place, so every ``step-*`` directory is complete; the
newest ``keep_checkpoints`` stay. PyTorch, SB3 and Gymnasium are passed in or imported inside
the functions: the experiment runner imports this module to ask :func:`latest_checkpoint`.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINTS = "sb3_checkpoints"
"""``RUN_DIR/sb3_checkpoints``: an SB3 trial's checkpoints."""
_PREFIX = "step-"
_BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of the SB3 trial in ``run_dir``, or None."""
    if not (run_dir / "sb3.json").is_file():
        return None
    done = complete_checkpoints(run_dir)
    return done[-1] if done else None


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Every complete checkpoint directory in ``run_dir``'s ``sb3_checkpoints/``, oldest first."""
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob(f"{_PREFIX}*") if p.is_dir() and (p / "state.pkl").is_file())


def checkpoint_step(path: Path) -> int:
    """The environment step a checkpoint directory was taken at."""
    return int(path.name[len(_PREFIX):])


def next_due(step: int, every: int) -> int:
    """The first multiple of ``every`` after ``step`` (a checkpoint is due at or after it)."""
    return (step // every + 1) * every


def record_resets(env: Any) -> Any:
    """``env`` wrapped so the state of its generator before each unseeded reset is kept
    (``last_reset``): replaying that reset on resume gives the episode start the
    uninterrupted run had."""
    import gymnasium as gym

    class ResetRecorder(gym.Wrapper):
        last_reset: tuple[str, Any] = ("none", None)

        def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any:
            if seed is None:
                self.last_reset = ("state", dict(self.unwrapped.np_random.bit_generator.state))
            else:
                self.last_reset = ("seed", int(seed))
            return super().reset(seed=seed, options=options)

    return ResetRecorder(env)


def save_checkpoint(run_dir: Path, model: Any, torch: Any, recorder: Any, eval_env: Any, keep: int) -> Path:
    """Write the checkpoint of ``model`` at its current step and prune older ones."""
    step = int(model.num_timesteps)
    root = run_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{step:09d}"
    if final.exists():
        return final
    tmp = root / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save(tmp / "model.zip")
    _save_buffer(model.replay_buffer, tmp / "replay.npz")
    state = {"step": step, "torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "random": random.getstate(), "action_space": _generator_state(model.action_space),
             "eval_env": _generator_state(eval_env.unwrapped), "train_reset": recorder.last_reset,
             "last_obs": np.array(model._last_obs)}
    with (tmp / "state.pkl").open("wb") as fh:
        pickle.dump(state, fh)
    for f in tmp.iterdir():
        _fsync(f)
    os.replace(tmp, final)
    _fsync(root)
    for old in sorted(p for p in root.glob(f"{_PREFIX}*") if p.is_dir())[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model_class: Any, env: Any, torch: Any, recorder: Any, eval_env: Any) -> Any:
    """The model of checkpoint ``path`` on ``env`` (``recorder`` its reset-recording wrapper),
    with its replay buffer, generators and the training env's episode start restored; the
    evaluation env must have been reset once. Returns the model, ready for
    ``learn(..., reset_num_timesteps=False)``."""
    with (path / "state.pkl").open("rb") as fh:
        state = pickle.load(fh)
    model = model_class.load(path / "model.zip", env=env, device="cpu")
    _load_buffer(model.replay_buffer, path / "replay.npz")
    vec_env = model.get_env()
    vec_env.reset()  # uses up the seed load() gave the env, so the next reset is unseeded
    kind, value = state["train_reset"]
    if kind == "state":
        recorder.unwrapped.np_random.bit_generator.state = value
    elif kind == "seed":
        vec_env.seed(value)
    obs = vec_env.reset()
    if not np.array_equal(obs, state["last_obs"]):
        print("note: the training env's episode start differs from the saved one (its reset draws "
              "from more than its own generator); this resume is not exact", flush=True)
    model._last_obs = obs
    model._last_episode_starts = np.ones((vec_env.num_envs,), dtype=bool)
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    model.action_space.np_random.bit_generator.state = state["action_space"]
    eval_env.unwrapped.np_random.bit_generator.state = state["eval_env"]
    return model


def _generator_state(holder: Any) -> dict[str, Any]:
    return dict(holder.np_random.bit_generator.state)


def _save_buffer(buffer: Any, path: Path) -> None:
    rows = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {name: getattr(buffer, name)[:rows] for name in _BUFFER_ARRAYS
              if getattr(buffer, name, None) is not None}
    with path.open("wb") as fh:
        np.savez(fh, pos=buffer.pos, full=buffer.full, **arrays)


def _load_buffer(buffer: Any, path: Path) -> None:
    with np.load(path) as data:
        for name in _BUFFER_ARRAYS:
            if name in data:
                saved = data[name]
                getattr(buffer, name)[:len(saved)] = saved
        buffer.pos, buffer.full = int(data["pos"]), bool(data["full"])


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
