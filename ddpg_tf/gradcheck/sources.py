"""Where the gradient check's networks and observations come from: fresh networks of a given
architecture (:class:`NetSpec`), a trained run's latest checkpoint, or states visited in an
environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ddpg_tf.errors import EnvError, UsageError

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class NetSpec:
    """Architecture of an actor-critic pair, enough to rebuild it in another dtype."""

    obs_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    actor_hidden: tuple[int, ...]
    critic_hidden: tuple[int, ...]
    critic_action_layer: int = 0
    actor_output: str = "tanh"
    layer_norm: bool = False

    @property
    def action_dim(self) -> int:
        return len(self.action_low)

    def build(self, dtype: str, seed: int) -> tuple[keras.Model, keras.Model]:
        """Fresh networks initialised as :class:`ddpg_tf.agent.DDPGAgent` does."""
        from ddpg_tf.config import stream_seed
        from ddpg_tf.networks import build_actor, build_critic

        actor = build_actor(self.obs_dim, np.array(self.action_low), np.array(self.action_high),
                            self.actor_hidden, output=self.actor_output, layer_norm=self.layer_norm,
                            seed=stream_seed(seed, "actor_init"), dtype=dtype)
        critic = build_critic(self.obs_dim, self.action_dim, self.critic_hidden,
                              action_layer=self.critic_action_layer, layer_norm=self.layer_norm,
                              seed=stream_seed(seed, "critic_init"), dtype=dtype)
        return actor, critic


def cast_copy(model: keras.Model, rebuilt: keras.Model) -> keras.Model:
    """Assign ``model``'s weights, cast to ``rebuilt``'s dtype, to ``rebuilt``; return it."""
    from ddpg_tf._quiet import tf

    for dst, src in zip(rebuilt.weights, model.weights, strict=True):
        dst.assign(tf.cast(src, dst.dtype))
    return rebuilt


def env_observations(env: Any, n: int, seed: int) -> np.ndarray:
    """The first ``n`` states visited by uniform random actions (reset with ``seed``, and
    again whenever an episode terminates or is truncated), shape (n, obs_dim), float64."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    states = []
    while len(states) < n:
        states.append(np.asarray(obs, np.float64))
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    return np.stack(states)


def open_env(env_id: str) -> Any:
    """The environment ``env_id``; an unusable one is a :class:`UsageError`."""
    from ddpg_tf.envs import make_env

    try:
        return make_env(env_id)
    except EnvError as exc:
        raise UsageError(str(exc)) from None


def load_checkpoint_networks(run_dir: str | Path) -> tuple[NetSpec, str, Any, keras.Model, keras.Model]:
    """Actor and critic of the latest checkpoint of a ``train.py`` run directory.

    Returns (architecture, the run's dtype, its environment, actor, critic). Reads
    ``RUN_DIR/config.json``, builds a :class:`~ddpg_tf.agent.DDPGAgent` from it and restores
    the latest checkpoint into it. Raises :class:`UsageError` when the directory is not a
    usable run.
    """
    from ddpg_tf.envs import space_dims
    from ddpg_tf.rundir import load_trained_agent

    try:
        config, agent, env = load_trained_agent(Path(run_dir))
        config.validate()
    except (UsageError, ValueError) as exc:
        raise UsageError(f"--checkpoint {run_dir}: {exc}") from None
    obs_dim, low, high = space_dims(env)
    spec = NetSpec(obs_dim, tuple(float(x) for x in low), tuple(float(x) for x in high),
                   tuple(config.actor_hidden), tuple(config.critic_hidden), config.critic_action_layer,
                   config.actor_output, config.layer_norm)
    if agent.obs_norm is not None:
        raise UsageError(f"--checkpoint {run_dir}: the run normalises observations (--obs-norm); the "
                         "gradient check feeds raw states, so check a run without --obs-norm")
    return spec, config.dtype, env, agent.actor, agent.critic


def latest_checkpoint(run_dir: Path) -> str | None:
    """Path prefix of the newest checkpoint of a run directory (what ``--checkpoint`` loads)."""
    from ddpg_tf._quiet import tf

    return tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
