"""Run a trained policy: ``python -m ddpg_tf.evaluate RUN_DIR [--episodes N] [--video DIR]``.

Loads ``RUN_DIR/export/actor.keras`` with plain Keras (no ddpg_tf classes involved), or with
``--checkpoint`` the actor of the latest checkpoint, runs N deterministic episodes on the
run's environment and prints the mean ± std of the returns. ``--video DIR`` records every
episode with Gymnasium's RecordVideo (needs the ``video`` extra: moviepy).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import ddpg_tf._quiet  # noqa: F401  (before keras: silences TensorFlow's start-up)

import keras
import numpy as np

from ddpg_tf.checkpointing import ACTOR_KERAS, EXPORT_DIR
from ddpg_tf.errors import UsageError, fail
from ddpg_tf.config import Config
from ddpg_tf.envs import EnvError, make_env
from ddpg_tf.rundir import evaluate_policy, load_trained_agent, read_run_config


def load_policy(run_dir: Path, *, from_checkpoint: bool = False) -> tuple[Config, Callable]:
    """The run's config and a function observation -> action (clipped to the bounds)."""
    config = read_run_config(run_dir)
    if from_checkpoint:
        _, agent, env = load_trained_agent(run_dir)
        env.close()
        actor = agent.policy()  # behind the observation normaliser, if the run used one
    else:
        path = run_dir / EXPORT_DIR / ACTOR_KERAS
        if not path.is_file():
            raise UsageError(f"no exported actor at {path}; pass --checkpoint to use the latest checkpoint")
        try:
            actor = keras.models.load_model(path, compile=False)
        except Exception as exc:  # noqa: BLE001  (Keras raises many types for a bad file)
            raise UsageError(f"cannot load {path}: {' '.join(str(exc).split())[:200]}") from None
    dtype = actor.inputs[0].dtype

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.asarray(actor(np.asarray(obs, dtype)[None], training=False))[0]

    return config, policy


def run(run_dir: Path, episodes: int = 10, seed: int = 0, video: Path | None = None,
        from_checkpoint: bool = False) -> np.ndarray:
    """Returns of ``episodes`` deterministic episodes of the run's policy."""
    config, policy = load_policy(run_dir, from_checkpoint=from_checkpoint)
    env = make_env(config.env_id, render_mode="rgb_array" if video else None)
    if video is not None:
        from gymnasium.wrappers import RecordVideo

        try:
            env = RecordVideo(env, str(video), episode_trigger=lambda _: True, disable_logger=True)
        except Exception as exc:  # noqa: BLE001  (missing moviepy raises DependencyNotInstalled)
            raise UsageError(f"cannot record video ({exc}); install the extra: pip install "
                             "'ddpg-tf[video]'") from None
    low, high = env.action_space.low, env.action_space.high
    try:
        return evaluate_policy(lambda o: np.clip(policy(o), low, high), env, episodes, seed=seed)
    finally:
        env.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddpg_tf.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="run directory written by train.py")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to run (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode's reset")
    parser.add_argument("--video", type=Path, default=None, help="record MP4s of the episodes here")
    parser.add_argument("--checkpoint", action="store_true",
                        help="use the latest checkpoint instead of the exported actor")
    args = parser.parse_args(argv)
    try:
        if args.episodes <= 0:
            raise UsageError(f"--episodes must be positive, got {args.episodes}")
        returns = run(args.run_dir, args.episodes, args.seed, args.video, args.checkpoint)
    except (UsageError, EnvError) as exc:
        fail(str(exc))
    print(f"return {returns.mean():.2f} ± {returns.std():.2f} over {len(returns)} episodes "
          f"(min {returns.min():.2f}, max {returns.max():.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
