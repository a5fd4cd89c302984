"""Run a trained policy: ``python -m ddpg_tf.evaluate RUN_DIR [--episodes N] [--video DIR]``.

Loads ``RUN_DIR/export/actor.keras`` with plain Keras in safe mode (no ddpg_tf classes
involved, no code from the file run), or with ``--checkpoint`` the actor of the latest
checkpoint (``--checkpoint STEP``: of that one), runs N deterministic episodes on the run's
environment and prints the mean ± std of the returns. ``--video DIR`` records every episode
with Gymnasium's RecordVideo (needs the ``video`` extra: moviepy).

The run directory, its config and the video directory are checked before TensorFlow starts;
a missing or damaged file ends with one line naming it and what to do (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ddpg_tf.config import Config
from ddpg_tf.errors import EnvError, UsageError, fail
from ddpg_tf.paths import ACTOR_KERAS, EXPORT_DIR, check_writable
from ddpg_tf.rundir import evaluate_policy, read_run_config

LATEST = -1


def load_policy(run_dir: Path, *, from_checkpoint: bool = False,
                step: int | None = None) -> tuple[Config, Callable]:
    """The run's config and a function observation -> action (clipped to the bounds)."""
    config = read_run_config(run_dir)
    export = run_dir / EXPORT_DIR / ACTOR_KERAS
    if not from_checkpoint and not export.is_file():
        raise UsageError(f"no exported actor at {export}; pass --checkpoint to use the latest checkpoint, or "
                         f"write the export with: python train.py --logdir {run_dir.parent} --run-name "
                         f"{run_dir.name} --resume")
    from ddpg_tf.checkpointing import Advice, load_exported_actor  # TensorFlow from here on

    actor: Any
    if from_checkpoint:
        from ddpg_tf.rundir import load_trained_agent

        advice = Advice(pick="pass --checkpoint {step} to use it", no_buffer="")
        _, agent, env = load_trained_agent(run_dir, step, advice)
        env.close()
        actor = agent.policy()  # behind the observation normaliser, if the run used one
    else:
        try:
            actor = load_exported_actor(export)
        except Exception as exc:  # noqa: BLE001  (Keras raises many types for a bad file)
            reason = " ".join(str(exc).split())[:160]
            raise UsageError(f"cannot load {export} ({reason}); pass --checkpoint to use the latest "
                             "checkpoint, or write the export again with: python train.py "
                             f"--logdir {run_dir.parent} --run-name {run_dir.name} --resume") from None
    dtype = actor.inputs[0].dtype

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.asarray(actor(np.asarray(obs, dtype)[None], training=False))[0]

    return config, policy


def run(run_dir: Path, episodes: int = 10, seed: int = 0, video: Path | None = None,
        from_checkpoint: bool = False, step: int | None = None) -> np.ndarray:
    """Returns of ``episodes`` deterministic episodes of the run's policy."""
    from ddpg_tf.envs import make_env

    read_run_config(run_dir)  # a missing or damaged config.json: before anything else
    if video is not None:
        check_writable(video, "--video directory")
    config, policy = load_policy(run_dir, from_checkpoint=from_checkpoint, step=step)
    env = make_env(config.env_id, render_mode="rgb_array" if video else None)
    if video is not None:
        from gymnasium.wrappers import RecordVideo

        try:
            env = RecordVideo(env, str(video), episode_trigger=lambda _: True, disable_logger=True)
        except Exception as exc:  # noqa: BLE001  (missing moviepy raises DependencyNotInstalled)
            env.close()
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
    parser.add_argument("--checkpoint", type=int, nargs="?", const=LATEST, default=None, metavar="STEP",
                        help="use the latest checkpoint (or checkpoint STEP) instead of the exported actor")
    args = parser.parse_args(argv)
    try:
        if args.episodes <= 0:
            raise UsageError(f"--episodes must be positive, got {args.episodes}")
        step = None if args.checkpoint in (None, LATEST) else args.checkpoint
        returns = run(args.run_dir, args.episodes, args.seed, args.video, args.checkpoint is not None, step)
    except (UsageError, EnvError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    print(f"return {returns.mean():.2f} ± {returns.std():.2f} over {len(returns)} episodes "
          f"(min {returns.min():.2f}, max {returns.max():.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
