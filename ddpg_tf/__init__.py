"""ddpg-tf: DDPG (Lillicrap et al. 2015) and TD3 (Fujimoto et al. 2018) in TensorFlow 2 / Keras 3.

    from ddpg_tf import TD3
    model = TD3(env).learn(20_000)
    action = model.predict(observation)

``import ddpg_tf`` is light: the names below load TensorFlow only when first used, and no
command-line code is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_LAZY = {
    "DDPG": "ddpg_tf.model", "TD3": "ddpg_tf.model",
    "Config": "ddpg_tf.config", "PRESETS": "ddpg_tf.config",
    "Callback": "ddpg_tf.callbacks", "StepInfo": "ddpg_tf.callbacks",
    "DDPGError": "ddpg_tf.errors", "UsageError": "ddpg_tf.errors", "ConfigError": "ddpg_tf.errors",
    "EnvError": "ddpg_tf.errors", "CheckpointError": "ddpg_tf.errors", "TrainingError": "ddpg_tf.errors",
    "InputError": "ddpg_tf.errors", "StorageError": "ddpg_tf.errors", "Interrupted": "ddpg_tf.errors",
    "SaturatedActorWarning": "ddpg_tf.errors",
    "train": "ddpg_tf.training",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ddpg_tf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
