"""TensorBoard logging with ``tf.summary``, kept out of the compiled step.

Tags written by a training run:

* ``train/episode_return``, ``train/episode_length`` at each episode end;
* ``eval/return_mean``, ``eval/return_std``, ``eval/length_mean`` at each evaluation;
* ``loss/critic``, ``loss/critic_total``, ``loss/actor``, ``q/mean``, ``q/target_mean``,
  ``grad/actor_norm``, ``grad/critic_norm``, ``grad/dqda_norm`` every ``log_every`` steps;
* ``perf/steps_per_second`` and histograms ``hist/q``, ``hist/policy_actions``,
  ``hist/env_actions`` at the same cadence;
* ``config`` (text): the run's full configuration as a markdown table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ddpg_tf._quiet import tf
from ddpg_tf.config import Config


class SummaryLogger:
    """Thin wrapper around a ``tf.summary`` file writer."""

    def __init__(self, logdir: str | Path) -> None:
        self.writer = tf.summary.create_file_writer(str(logdir))

    def scalars(self, values: Mapping[str, Any], step: int) -> None:
        with self.writer.as_default(step=step):
            for tag, value in values.items():
                tf.summary.scalar(tag, float(value))

    def histograms(self, values: Mapping[str, Any], step: int) -> None:
        with self.writer.as_default(step=step):
            for tag, value in values.items():
                tf.summary.histogram(tag, np.asarray(value))

    def metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Log a train-step metrics dict: ``hist/*`` as histograms, the rest as scalars."""
        self.histograms({k: v for k, v in metrics.items() if k.startswith("hist/")}, step)
        self.scalars({k: v for k, v in metrics.items() if not k.startswith("hist/")}, step)

    def config(self, config: Config, step: int = 0) -> None:
        rows = ["| field | value |", "|---|---|"]
        rows += [f"| {k} | `{v}` |" for k, v in sorted(config.to_dict().items())]
        with self.writer.as_default(step=step):
            tf.summary.text("config", "\n".join(rows))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
