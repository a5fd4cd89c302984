"""The timed measurements of the peers that share Stable-Baselines3's API, each run in a worker
process of its own (see ``runner``, which blocks ``import tensorflow`` in these workers): SB3
itself (PyTorch) through :data:`SB3`, and SBX (JAX) through the same functions with its own
:class:`Flavour` (``workers_sbx``).

End to end: ``DDPG.learn`` timed by a callback. Update-only: ``model.train(gradient_steps=K)``
on a buffer of random transitions. Action selection: ``model._sample_action``, the call the
library's own training loop makes. The libraries are imported inside the workers only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.cases import GAMMA, LEARNING_RATE, NOISE_SIGMA, TAU
from benchmarks.timing import clock, cpus, e2e_result, thread_env, vec_result, window


@dataclass(frozen=True)
class Flavour:
    """What differs between two libraries with Stable-Baselines3's API."""

    ddpg: Callable[[], type]
    """The library's DDPG class (imported when called)."""
    parameters: Callable[[Any], dict[str, int]]
    """Parameter counts of a model's actor and critic."""
    threads: Callable[[], dict[str, Any]]
    """The thread pools of this process, for the JSON."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Constructor arguments beyond the shared ones."""
    compiles_per_k: bool = False
    """``train(gradient_steps=K)`` compiles a function per K (SBX's static argument): the
    update-only warm-up then ends with one untimed call with the timed K."""


def _sb3_ddpg() -> type:
    from stable_baselines3 import DDPG

    return DDPG


def _torch_parameters(model: Any) -> dict[str, int]:
    return {"actor": sum(p.numel() for p in model.actor.parameters()),
            "critic": sum(p.numel() for p in model.critic.parameters())}


def torch_threads() -> dict[str, Any]:
    """PyTorch's thread pools in this process."""
    import torch

    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads(),
            "cpus_available": cpus(), "env": thread_env()}


SB3 = Flavour(ddpg=_sb3_ddpg, parameters=_torch_parameters, threads=torch_threads,
              kwargs={"device": "cpu"})
"""Stable-Baselines3 itself."""


def sb3_model(spec: dict[str, Any], learning_starts: int | None = None,
              flavour: Flavour = SB3) -> tuple[Any, Any]:
    """A DDPG model of ``flavour``'s library with the shared settings, and its environment (a
    DummyVecEnv of ``spec["vector_envs"]`` copies when that is above 1)."""
    import gymnasium as gym
    import numpy as np
    from stable_baselines3.common.noise import NormalActionNoise

    num_envs = spec.get("vector_envs", 1)
    if num_envs > 1:
        from stable_baselines3.common.env_util import make_vec_env

        env = make_vec_env(spec["env_id"], n_envs=num_envs, seed=spec["seed"])
    else:
        env = gym.make(spec["env_id"])
    action_dim = env.action_space.shape[0]
    # With N envs, gradient_steps=-1 runs one gradient step per collected transition (N per
    # vector step); the noise is wrapped per env by SB3 (VectorizedActionNoise).
    model = flavour.ddpg()(
        "MlpPolicy", env, learning_rate=LEARNING_RATE, buffer_size=spec["buffer_size"],
        learning_starts=spec["learning_starts"] if learning_starts is None else learning_starts,
        batch_size=spec["batch_size"], tau=TAU, gamma=GAMMA, train_freq=1,
        gradient_steps=1 if num_envs == 1 else -1,
        action_noise=NormalActionNoise(np.zeros(action_dim), NOISE_SIGMA * np.ones(action_dim)),
        policy_kwargs={"net_arch": list(spec["hidden"])}, seed=spec["seed"], verbose=0,
        **flavour.kwargs)
    return model, env


def worker_e2e(spec: dict[str, Any], flavour: Flavour = SB3) -> dict[str, Any]:
    """``DDPG.learn``, timed over the planned window of environment steps."""
    from stable_baselines3.common.callbacks import BaseCallback

    marks = {spec["first_log_after_learning_starts"], spec["window_start"], spec["total_steps"]}
    times: dict[int, tuple[float, float]] = {}

    class StepTimer(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps in marks:
                times[self.num_timesteps] = clock()
            return True

    model, env = sb3_model(spec, flavour=flavour)
    model.learn(total_timesteps=spec["total_steps"], callback=StepTimer())
    env.close()
    return {**e2e_result(spec, times), "timed_call": "DDPG.learn(total_timesteps, callback=...)",
            "threads": flavour.threads()}


def worker_e2e_vec(spec: dict[str, Any], flavour: Flavour = SB3) -> dict[str, Any]:
    """``num_envs`` copies in a DummyVecEnv and ``gradient_steps=-1`` (one gradient step per
    collected transition, N per vector step)."""
    return vec_result(worker_e2e(spec, flavour), spec)


def worker_update(spec: dict[str, Any], flavour: Flavour = SB3) -> dict[str, Any]:
    """Updates per second of ``model.train(gradient_steps=K)`` on random transitions."""
    import numpy as np
    from stable_baselines3.common.logger import Logger

    model, env = sb3_model(spec, flavour=flavour)
    model.set_logger(Logger(folder=None, output_formats=[]))
    rb = model.replay_buffer
    n, obs_dim = spec["update_fill"], env.observation_space.shape[0]
    low, high = env.action_space.low, env.action_space.high
    rng = np.random.default_rng(spec["seed"])
    obs = rng.standard_normal((n + 1, obs_dim))
    # SB3's buffer stores actions rescaled to [-1, 1]; write the arrays directly (vectorised fill).
    rb.observations[:n, 0] = obs[:-1]
    rb.next_observations[:n, 0] = obs[1:]
    rb.actions[:n, 0] = model.policy.scale_action(rng.uniform(low, high, size=(n, len(low))))
    rb.rewards[:n, 0] = rng.standard_normal(n)
    rb.dones[:n, 0] = rng.random(n) < 0.01
    rb.timeouts[:n, 0] = 0.0
    rb.pos, rb.full = n, False
    batch, k = spec["batch_size"], spec["updates"]
    model.train(gradient_steps=spec["update_warmup"], batch_size=batch)
    extra: dict[str, Any] = {}
    if flavour.compiles_per_k:
        start = clock()
        model.train(gradient_steps=k, batch_size=batch)  # compiles the K-step function, runs it
        extra["first_call_with_k_seconds"] = window(start, clock())["seconds"]
    # train() returns once the losses of its last update are read (.item()): synchronised.
    start = clock()
    model.train(gradient_steps=k, batch_size=batch)
    timed = window(start, clock())
    env.close()
    return {"updates_per_s": k / timed["seconds"], "updates": k, **timed, **extra,
            "timed_call": "model.train(gradient_steps=K, batch_size=B)", "buffer_fill": n,
            "parameters": flavour.parameters(model), "threads": flavour.threads()}


def worker_act(spec: dict[str, Any], flavour: Flavour = SB3) -> dict[str, Any]:
    """Milliseconds per exploratory action of ``model._sample_action`` (``predict``, scale to
    [-1, 1], Gaussian noise, clip, unscale)."""
    model, env = sb3_model(spec, flavour=flavour)
    obs, _ = env.reset(seed=spec["seed"])
    model.policy.set_training_mode(False)  # as in collect_rollouts
    model._last_obs = obs[None]
    model.num_timesteps = model.learning_starts  # past warm-up: actions come from the policy
    for _ in range(spec["action_warmup"]):
        model._sample_action(model.learning_starts, model.action_noise, 1)
    n = spec["actions"]
    start = clock()
    for _ in range(n):
        model._sample_action(model.learning_starts, model.action_noise, 1)
    timed = window(start, clock())
    env.close()
    return {"ms_per_action": 1e3 * timed["seconds"] / n, "actions": n, **timed,
            "timed_call": "model._sample_action(learning_starts, action_noise, 1)",
            "threads": flavour.threads()}
