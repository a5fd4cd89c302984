"""``plots/{env}__{preset}.png``: the mean evaluation curve per style with its bootstrap band
(needs matplotlib; without it the plots are skipped with a one-line warning)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ddpg_tf import stats
from ddpg_tf.experiments.results import Group
from ddpg_tf.experiments.trials import safe_env


def plot_groups(groups: Sequence[Group], eval_episodes: int, plot_dir: Path) -> dict[str, str] | None:
    """One PNG per env × preset: mean evaluation return per style with its pointwise bootstrap
    interval across seeds. Returns {group key: path relative to the output directory}, or None
    (after a one-line warning) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        print("warning: matplotlib is not installed, so no plots were drawn "
              "(pip install -e '.[experiments]')", file=sys.stderr)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    line_styles = ["-", "--", ":", "-."]  # identical curves stay visible on top of each other
    for group in groups:
        if not any(group.values.get(s) for s in group.styles):
            continue
        fig, ax = plt.subplots(figsize=(7.0, 4.5))
        for i, style in enumerate(group.styles):
            seeds = group.values.get(style, {})
            if not seeds:
                continue
            steps = sorted({s for curve in seeds.values() for s in curve})
            table = np.array([[curve.get(s, np.nan) for s in steps] for curve in seeds.values()])
            mean, low, high = stats.band(table)
            line, = ax.plot(steps, mean, linestyle=line_styles[i % len(line_styles)], linewidth=1.8,
                            label=f"{style} (n={len(seeds)})")
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.18, linewidth=0)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"evaluation return (mean of {eval_episodes} episodes)")
        ax.set_title(f"{group.env}, preset {group.preset}\nshaded: {stats.CONFIDENCE:.0%} "
                     "percentile-bootstrap interval of the mean across seeds", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        key = f"{safe_env(group.env)}__{group.preset}"
        fig.savefig(plot_dir / f"{key}.png", dpi=120)
        plt.close(fig)
        paths[f"{group.env}__{group.preset}"] = f"{plot_dir.name}/{key}.png"
    return paths
