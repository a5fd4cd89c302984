"""The Stable-Baselines3 side of side-by-side experiments: one trial's process running SB3.

A trial of library ``sb3`` gets the same training flags as a ddpg-tf trial (preset, env,
seed, budgets, overrides), so both libraries start from one resolved :class:`Config`.
:func:`sb3_settings` translates it into SB3's ``TD3`` arguments (``DDPG`` is TD3 with one
critic, no delay and no smoothing) and refuses, with a one-line :class:`Sb3Unsupported`, any
setting SB3 cannot reproduce, so a comparison never silently runs two different algorithms.

The evaluation protocol is ddpg-tf's: the deterministic policy on a separate evaluation
environment, reset with ``stream_seed(seed, "eval_env")`` once and then continuing its own RNG,
``eval_episodes`` episodes every ``eval_every`` steps and at the final step, each evaluation
after the updates of its step (SB3 trains after a rollout, so an evaluation due at a step runs
at the start of the next rollout), one row per evaluation in ``RUN_DIR/evaluations.csv``
(step, return_mean, return_std, episodes). SB3 and PyTorch are imported only in the trial's
process (:func:`run_sb3_child`). An SB3 trial checkpoints at episode ends every
``checkpoint_every`` steps and ``--resume`` continues it, reproducing the uninterrupted run
(:mod:`ddpg_tf.experiments.sb3_checkpoints`). Seeds: SB3's own scheme (``seed=`` seeds
PyTorch, NumPy, the action space and the training environment), so seed k of SB3 and seed k
of ddpg-tf are unrelated runs and the reports compare the libraries unpaired.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ddpg_tf.config import Config, ConfigError, stream_seed
from ddpg_tf.errors import EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from ddpg_tf.experiments.sb3_checkpoints import (
    CHECKPOINTS,
    checkpoint_step,
    latest_checkpoint,
    load_checkpoint,
    next_due,
    record_resets,
    save_checkpoint,
)
from ddpg_tf.paths import atomic_write_text

class Sb3Unsupported(ConfigError):
    """A Config setting that SB3's TD3 cannot reproduce."""


_UNSUPPORTED: tuple[tuple[str, Any, str], ...] = (
    ("noise", "param", "parameter-space noise"),
    ("obs_norm", True, "observation normalisation"),
    ("layer_norm", True, "layer normalisation"),
    ("actor_output", "linear", "an unsquashed actor"),
    ("adam_epsilon_placement", "tensorflow", "Adam's epsilon before bias correction (PyTorch's is after)"),
    ("dtype", "float64", "float64 networks"),
)
"""(field, value, what it is) that SB3 has no counterpart for."""


def sb3_settings(config: Config, action_low: np.ndarray, action_high: np.ndarray) -> dict[str, Any]:
    """SB3 ``TD3`` keyword arguments (plus ``action_noise``, ``warmup_steps`` and ``final_init``
    to be applied by the caller) equivalent to ``config`` on an action space [low, high].

    SB3 acts in [-1, 1] (actions rescaled to the bounds), so its noise is in half-range units:
    absolute noise is divided by the half range. Raises :class:`Sb3Unsupported`."""
    for name, value, what in _UNSUPPORTED:
        if getattr(config, name) == value:
            raise Sb3Unsupported(f"SB3 cannot run {what} (--{name.replace('_', '-')} {value})")
    checks = (
        (config.n_step == 1, "n-step returns"), (config.critic_action_layer == 0, "the action joining "
                                                 "the critic after its first layer"),
        (config.dqda_transform == "none", "a dQ/da transform"),
        (config.critic_l2 == 0, "a critic L2 penalty"),
        (config.max_grad_norm == 0, "gradient clipping"), (config.num_envs == 1, "several environments"),
        (config.actor_lr == config.critic_lr, "different actor and critic learning rates"),
    )
    for ok, what in checks:
        if not ok:
            raise Sb3Unsupported(f"SB3's TD3 cannot run {what}; remove it from the preset or overrides")
    half_range = (np.asarray(action_high, np.float64) - np.asarray(action_low, np.float64)) / 2.0
    unit = half_range if config.noise_units == "half-range" else np.ones_like(half_range)
    to_sb3 = unit / half_range  # one noise unit in SB3's [-1, 1] action units
    if config.target_noise > 0 and not np.allclose(to_sb3, to_sb3[0]):
        raise Sb3Unsupported("SB3's target smoothing noise is one number for every action component: "
                             "absolute noise needs equal action ranges")
    episode_end = config.update_schedule == "episode-end"
    settings: dict[str, Any] = {
        "learning_rate": config.actor_lr, "buffer_size": config.buffer_size,
        # SB3's learning_starts gates both random actions and training: training during the
        # warm-up keeps random actions for warmup_steps (a subclass) and trains from the start.
        "learning_starts": 0 if config.train_during_warmup else config.learning_starts,
        "batch_size": config.batch_size, "tau": config.tau, "gamma": config.gamma,
        "train_freq": (1, "episode") if episode_end else (1, "step"),
        "gradient_steps": -1 if episode_end else config.gradient_steps,
        "policy_delay": config.policy_delay,
        "target_policy_noise": float(config.target_noise * to_sb3[0]),
        "target_noise_clip": float(config.target_noise_clip * to_sb3[0]) if config.target_noise > 0 else 0.0,
        "policy_kwargs": {"net_arch": {"pi": list(config.actor_hidden), "qf": list(config.critic_hidden)},
                          "n_critics": 2 if config.twin_critics else 1,
                          "optimizer_kwargs": {"eps": config.adam_epsilon}},
        "seed": config.seed,
        "action_noise": None if config.noise == "none" else {
            "kind": config.noise, "sigma": (config.noise_sigma * to_sb3).tolist(), "theta": config.ou_theta,
            "dt": config.ou_dt},
        "warmup_steps": config.learning_starts,
        "final_init": config.final_init,
    }
    if episode_end and config.gradient_steps != 1:
        raise Sb3Unsupported("SB3's episode-end schedule runs one update per step of the episode; "
                             "use --gradient-steps 1")
    return settings


# --- the trial's process -------------------------------------------------------------------------
def run_sb3_child(argv: Sequence[str], eval_header: Sequence[str]) -> int:
    """Entry point of an SB3 trial's process: the training CLI's flags, run with SB3, writing
    evaluation rows under ``eval_header``."""
    from ddpg_tf.cli import parse_config  # config only: no TensorFlow in this process

    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        config, _ = parse_config(list(argv))
        return _train_sb3(config, tuple(eval_header))
    except (UsageError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; --resume continues from the last checkpoint", file=sys.stderr)
        return EXIT_INTERRUPTED


def _train_sb3(config: Config, eval_header: tuple[str, ...]) -> int:
    import gymnasium as gym
    import torch
    from stable_baselines3 import TD3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    if config.threads > 0:
        torch.set_num_threads(config.threads)
    run_dir = Path(config.logdir) / config.default_run_name()
    checkpoint = latest_checkpoint(run_dir) if config.resume else None
    if config.resume and checkpoint is None:
        raise UsageError(f"nothing to resume: {run_dir} holds no SB3 checkpoint")
    run_dir.mkdir(parents=True, exist_ok=True)
    env, eval_env = record_resets(gym.make(config.env_id)), gym.make(config.env_id)
    low, high = env.action_space.low, env.action_space.high
    settings = sb3_settings(config, low, high)
    noise_spec, warmup, final_init = (settings.pop(k) for k in ("action_noise", "warmup_steps", "final_init"))
    action_noise = None
    if noise_spec is not None:
        sigma, zero = np.asarray(noise_spec["sigma"]), np.zeros(len(low))
        action_noise = (NormalActionNoise(zero, sigma) if noise_spec["kind"] == "gaussian" else
                        OrnsteinUhlenbeckActionNoise(zero, sigma, theta=noise_spec["theta"],
                                                     dt=noise_spec["dt"]))

    class WarmupTD3(TD3):
        """TD3 whose random warm-up (``warmup_steps``) is separate from ``learning_starts``."""

        def _sample_action(self, learning_starts: int, *args: Any, **kwargs: Any) -> Any:
            return super()._sample_action(max(learning_starts, warmup), *args, **kwargs)

    eval_env.reset(seed=stream_seed(config.seed, "eval_env"))
    evaluations = run_dir / "evaluations.csv"
    if checkpoint is None:
        model = WarmupTD3("MlpPolicy", env, action_noise=action_noise, device="cpu", **settings)
        if final_init == "uniform-3e-3":
            _uniform_output_layers(model, torch, 3e-3)
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
        evaluations.unlink(missing_ok=True)
        atomic_write_text(run_dir / "sb3.json", json.dumps(
            {"library": "stable-baselines3", "versions": _versions(), "config": config.to_dict(),
             "sb3_arguments": {**settings, "action_noise": noise_spec, "warmup_steps": warmup,
                               "final_init": final_init}}, indent=2, default=str) + "\n")
    else:
        model = load_checkpoint(checkpoint, WarmupTD3, env, torch, env, eval_env)
        _drop_rows_after(evaluations, checkpoint_step(checkpoint))
        print(f"resumed from the checkpoint at step {checkpoint_step(checkpoint)}", flush=True)
    start = int(model.num_timesteps)
    pending: list[int] = []
    checkpoint_due = next_due(start, config.checkpoint_every) if config.checkpoint_every > 0 else None
    save_now = False

    def evaluate(step: int) -> None:
        returns = _evaluate(model, eval_env, config.eval_episodes)
        _append_row(evaluations, eval_header, step, returns)
        print(f"step {step}: eval return {returns.mean():.1f} ± {returns.std():.1f}", flush=True)

    episode_end = config.update_schedule == "episode-end"

    class Evaluations(BaseCallback):
        """Evaluations after the updates of their step, as in ddpg-tf's loop: SB3 trains after a
        rollout, so an evaluation due when updates follow (every step with the every-step
        schedule; at an episode end with the episode-end one) waits for the next rollout start."""

        def _on_step(self) -> bool:
            nonlocal save_now
            step, ended = self.num_timesteps, bool(self.locals["dones"][0])
            if checkpoint_due is not None and ended and step >= checkpoint_due:
                save_now = True  # after this episode's updates: at the next rollout start
            if config.eval_every and step % config.eval_every == 0:
                if episode_end and not ended:
                    evaluate(step)  # no updates at this step
                else:
                    pending.append(step)
            # An episode-end rollout would run past the budget: stop it there (no updates, as
            # ddpg-tf's loop, whose last partial episode is not trained on either).
            return not (episode_end and step >= config.total_steps and not ended)

        def _on_rollout_start(self) -> None:
            nonlocal save_now, checkpoint_due
            while pending:
                evaluate(pending.pop(0))
            if save_now:
                save_checkpoint(run_dir, model, torch, env, eval_env, config.keep_checkpoints)
                checkpoint_due, save_now = next_due(self.num_timesteps, config.checkpoint_every), False

    model.learn(config.total_steps - start, callback=Evaluations(), reset_num_timesteps=checkpoint is None)
    for step in pending:
        evaluate(step)
    if not config.eval_every or config.total_steps % config.eval_every:
        evaluate(config.total_steps)
    env.close()
    eval_env.close()
    return 0


def _uniform_output_layers(model: Any, torch: Any, limit: float) -> None:
    """The DDPG paper's U(+-limit) output layers for SB3's actor and critics (targets copied)."""
    policy = model.policy
    generator = torch.Generator().manual_seed(stream_seed(model.seed or 0, "actor_init"))
    networks = [policy.actor.mu, *policy.critic.q_networks]
    with torch.no_grad():
        for net in networks:
            last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
            for p in (last.weight, last.bias):
                p.copy_(torch.rand(p.shape, generator=generator) * 2 * limit - limit)
    policy.actor_target.load_state_dict(policy.actor.state_dict())
    policy.critic_target.load_state_dict(policy.critic.state_dict())


def _evaluate(model: Any, env: Any, episodes: int) -> np.ndarray:
    """Returns of ``episodes`` episodes of the deterministic policy (ddpg-tf's protocol)."""
    returns = np.zeros(episodes)
    for i in range(episodes):
        obs, _ = env.reset()
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[i] += float(reward)
            done = terminated or truncated
    return returns


def _drop_rows_after(path: Path, step: int) -> None:
    """Keep the evaluation rows up to ``step`` (the later ones are redone after a resume)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= step]
    atomic_write_text(path, "".join(kept))


def _append_row(path: Path, header: tuple[str, ...], step: int, returns: np.ndarray) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(header)
        writer.writerow([step, f"{returns.mean():.4f}", f"{returns.std():.4f}", len(returns)])
        fh.flush()
        os.fsync(fh.fileno())


def _versions() -> dict[str, str]:
    import stable_baselines3
    import torch

    return {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__}
