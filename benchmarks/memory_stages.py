"""Where a ddpg-tf run's memory goes: resident set size after each stage of a default run.

    python benchmarks/memory_stages.py [auto|xla|noxla] [BUFFER_SIZE] [ENV_ID]

Prints RSS and peak RSS (``VmRSS``/``VmHWM``) after importing TensorFlow and Keras, importing
ddpg_tf's model (TensorFlow Probability, gymnasium), building a model (networks, optimisers,
the replay buffer, allocated in full), storing the random warm-up steps, the first training
call (its compilation) and 2,000 training steps. ``auto`` is the library's default; ``xla`` and
``noxla`` set ``jit_compile`` with ``speed="manual"``. 256-256 networks, batch 256.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.* imports, as bench_sb3.py

from benchmarks.memory import status_mib  # noqa: E402


def rss() -> tuple[float, float]:
    """(current, peak) resident set size in MiB."""
    return status_mib("VmRSS"), status_mib("VmHWM")


def main(argv: list[str]) -> None:
    mode = argv[0] if argv else "auto"
    capacity = int(argv[1]) if len(argv) > 1 else 1_000_000
    env_id = argv[2] if len(argv) > 2 else "HalfCheetah-v5"
    base = None

    def mark(stage: str) -> None:
        nonlocal base
        now, peak = rss()
        base = now if base is None and stage.startswith("import tensorflow") else base
        above = "" if base is None else f"  (+{now - base:.0f} over the import)"
        print(f"{stage:42s} RSS {now:6.0f} MiB, peak {peak:6.0f} MiB{above}", flush=True)

    import tensorflow  # noqa: F401
    import keras  # noqa: F401
    mark("import tensorflow, keras")
    from ddpg_tf.model import DDPG
    mark("import ddpg_tf.model (TFP, gymnasium)")
    speed = {"xla": dict(speed="manual"), "noxla": dict(speed="manual", jit_compile=False)}.get(mode, {})
    model = DDPG(env_id, actor_hidden=(256, 256), critic_hidden=(256, 256), batch_size=256,
                 buffer_size=capacity, learning_starts=1000, progress=False, eval_every=0, **speed)
    mark(f"model built (buffer {capacity:,})")
    model.learn(1000)
    mark("1,000 random steps stored")
    model.learn(model.learner.n)
    mark("first training call (compiled)")
    model.learn(2000)
    mark("2,000 training steps")


if __name__ == "__main__":
    main(sys.argv[1:])
