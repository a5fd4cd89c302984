"""``python -m ddpg_tf.experiments.lockstep``: the warm-up's update schedule, the refusals, and
both libraries' TD3 updates staying together on shared batches and noise (needs SB3, the
``bench`` extra; skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest

from ddpg_tf.config import preset_config
from ddpg_tf.errors import UsageError
from ddpg_tf.experiments.lockstep import main, run_lockstep, summary, update_plan

ENDS = [(3, 3), (7, 4), (12, 5)]


def test_episode_end_schedule_trains_each_finished_episode_from_the_first():
    """td3 preset: training during the warm-up, at each episode end as many updates as it had
    steps (the TD3 authors' loop)."""
    config = preset_config("td3", "Hopper-v5")
    assert update_plan(config, 12, ENDS) == {3: 3, 7: 4, 12: 5}
    assert update_plan(config.replace(gradient_steps=2), 12, ENDS) == {3: 6, 7: 8, 12: 10}


def test_every_step_schedule_waits_for_the_warmup_and_a_batch():
    config = preset_config("td3-sb3", "Hopper-v5").replace(learning_starts=5, batch_size=8)
    assert update_plan(config, 12, ENDS) == {8: 1, 9: 1, 10: 1, 11: 1, 12: 1}
    during = config.replace(train_during_warmup=True)
    assert update_plan(during, 4, ENDS) == {1: 1, 2: 1, 3: 1, 4: 1}


def test_bounds_other_than_unit_are_refused_with_one_line(capsys):
    """InvertedPendulum acts in [-3, 3]: SB3's critic sees actions divided by 3, so the two
    libraries' updates differ by design and there is nothing to hold in lockstep."""
    config = preset_config("td3", "InvertedPendulum-v5")
    with pytest.raises(UsageError, match=r"actions in \[-1, 1\]"):
        run_lockstep(config, 10, 5)
    with pytest.raises(SystemExit) as exit_info:
        main(["--env", "InvertedPendulum-v5", "--seeds", "0", "--steps", "10"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: lockstep needs actions in [-1, 1]") and err.count("\n") == 1


def test_usage_errors_exit_2(capsys):
    for argv in (["--steps", "0"], ["--seeds", "4-1"], ["--set", "no_such_field=1"], ["--set", "gamma"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
        assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("jit_compile", [False, True])
def test_both_libraries_take_the_same_steps(jit_compile: bool):
    """Hopper, small TD3 networks, 60 random steps and their updates (the noise compiled like the
    training step, XLA or not): weights stay equal to float32 rounding (about 2e-7 of a layer's
    largest weight here); with SB3's smoothing noise not shared the critics are 8e-4 apart after
    the first 20 updates. Nothing is saturated yet, so the saturation figures agree exactly."""
    pytest.importorskip("stable_baselines3")
    config = preset_config("td3", "Hopper-v5").replace(
        seed=3, actor_hidden=(16, 12), critic_hidden=(16, 12), batch_size=16,
        jit_compile=jit_compile).validate()
    rows = run_lockstep(config, 60, 30)
    assert [(r.step, r.seed) for r in rows] == [(30, 3), (60, 3)]
    assert rows[-1].updates == sum(update_plan(config, 60, _ends(config, 60)).values()) > 20
    for r in rows:
        assert r.actor_gap < 1e-5 and r.critic_gap < 1e-5, r
        assert (r.own_tf, r.common_tf) == (r.own_sb3, r.common_sb3)
        assert r.median_tf == pytest.approx(r.median_sb3, rel=1e-4)
    lines = summary(rows)
    assert lines[2].startswith("| 30 | 1 |") and len(lines) == 4


def _ends(config, steps: int) -> list[tuple[int, int]]:
    from ddpg_tf.experiments.lockstep import collect_warmup

    return collect_warmup(config.env_id, steps, config.seed).episode_ends


def test_warmup_is_reproducible_and_marks_episode_ends():
    from ddpg_tf.experiments.lockstep import collect_warmup

    a, b = collect_warmup("Hopper-v5", 80, 4), collect_warmup("Hopper-v5", 80, 4)
    for x, y in zip(a[:5], b[:5], strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.episode_ends == b.episode_ends and a.episode_ends  # random Hopper falls within 80 steps
    assert sum(length for _, length in a.episode_ends) == a.episode_ends[-1][0]
    assert a.observations.dtype == np.float32 and a.rewards.shape == (80, 1)
    ended = [step - 1 for step, _ in a.episode_ends]
    assert np.all(a.terminated[ended] == 1.0) and a.terminated.sum() == len(ended)
    assert np.all(np.abs(a.actions) <= 1.0)
