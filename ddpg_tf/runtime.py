"""Process-wide TensorFlow settings: thread pools and seeds."""

from __future__ import annotations

import ddpg_tf._quiet  # noqa: F401  (before keras: silences TensorFlow's start-up)

import keras

from ddpg_tf._quiet import tf
from ddpg_tf.config import Config
from ddpg_tf.errors import UsageError


def set_threads(threads: int, intra_op: int = 0, inter_op: int = 0) -> None:
    """Use ``threads`` TensorFlow intra-op and inter-op threads, each overridden by
    ``intra_op`` / ``inter_op`` when positive (0 everywhere: TensorFlow's default).

    TensorFlow fixes its thread pools when it first runs an op, so this must come before any
    tensor is created in the process; a later call asking for other values raises UsageError."""
    intra, inter = intra_op or threads, inter_op or threads
    if intra <= 0 and inter <= 0:
        return
    threading = tf.config.threading
    wanted = [(intra, threading.get_intra_op_parallelism_threads, threading.set_intra_op_parallelism_threads),
              (inter, threading.get_inter_op_parallelism_threads, threading.set_inter_op_parallelism_threads)]
    if all(n <= 0 or get() == n for n, get, _ in wanted):
        return
    try:
        for n, _, set_pool in wanted:
            if n > 0:
                set_pool(n)
    except RuntimeError:
        raise UsageError(f"thread settings (intra-op {intra}, inter-op {inter}) must be made before "
                         "TensorFlow starts; pass them to a fresh process") from None


def seed_everything(config: Config) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; optionally enable op determinism."""
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
