"""Learning check: the `pendulum` preset solves Pendulum-v1 within 10k steps with both styles.

Issue target: an eval mean >= -400 at 10k steps (the preset's own aim is -200 or better on
most seeds; see the README for the measured figures). About 40 s per style on 2 cores.
"""

from __future__ import annotations

import pytest

from ddpg_tf.config import PRESETS
from ddpg_tf.training import train


@pytest.mark.slow  # 2 x 20 s of learning: the default suite keeps under 10 minutes on 2 cores
@pytest.mark.parametrize("style", ["direct", "chain-rule"])
def test_pendulum_preset_learns(tmp_path, style):
    config = PRESETS["pendulum"].replace(
        actor_update=style, seed=1, logdir=str(tmp_path), progress=False, export=False,
        eval_every=10_000, eval_episodes=10, checkpoint_every=0,
    ).validate()
    result = train(config)
    step, mean, std = result.evaluations[-1]
    assert step == 10_000
    assert mean >= -400.0, f"{style}: eval mean {mean:.1f} ± {std:.1f} at 10k steps"


@pytest.mark.slow
@pytest.mark.parametrize("style", ["direct", "chain-rule", "dpg-surrogate"])
def test_pendulum_preset_reaches_minus_200_on_most_seeds(tmp_path, style):
    """The preset's own aim: eval mean >= -200 at 10k steps on most seeds (3 of 3 measured)."""
    means = []
    for seed in (1, 2, 3):
        config = PRESETS["pendulum"].replace(
            actor_update=style, seed=seed, logdir=str(tmp_path), progress=False, export=False,
            eval_every=10_000, eval_episodes=10, checkpoint_every=0, run_name=f"s{seed}").validate()
        means.append(train(config).evaluations[-1][1])
    assert sum(m >= -200.0 for m in means) >= 2, means


@pytest.mark.slow
@pytest.mark.parametrize("option", [
    {"twin_critics": True, "policy_delay": 2, "target_noise": 0.2},   # TD3's three changes
    {"n_step": 3},
    {"obs_norm": True},
    {"noise": "param", "noise_sigma": 0.2},
], ids=["td3", "n-step-3", "obs-norm", "param-noise"])
def test_pendulum_learns_with_each_extension(tmp_path, option):
    """Each option on top of the `pendulum` preset still learns Pendulum-v1 in 10k steps
    (the same -400 bar as the DDPG check; about 40 s each)."""
    config = PRESETS["pendulum"].replace(
        seed=1, logdir=str(tmp_path), progress=False, export=False, eval_every=10_000,
        eval_episodes=10, checkpoint_every=0, **option).validate()
    step, mean, std = train(config).evaluations[-1]
    assert step == 10_000 and mean >= -400.0, f"{option}: eval mean {mean:.1f} ± {std:.1f}"
