"""speed="auto" (ddpg_tf/speed.py): the FLOP count of an update, the rule that picks the
execution settings from it, which fields it leaves alone, and that a new run records its
choice while a loaded one keeps the saved settings."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from ddpg_tf import DDPG, Config
from ddpg_tf.speed import (LARGE_UPDATE_FLOPS, choose_speed, kept_speed_fields, mlp_macs, resolve_speed,
                           update_flops)

XLA = {"jit_compile": True, "batch_chunks": 1, "intra_op_threads": 0, "inter_op_threads": 0}
LARGE_2_CORES = {"jit_compile": False, "batch_chunks": 2, "intra_op_threads": 1, "inter_op_threads": 2}


def test_update_flops_by_hand():
    # obs 3, action 1, one hidden layer of 4, batch 2.
    # actor 3 -> 4 -> 1: MACs per sample 12 + 4 = 16, forward 2 * 2 * 16 = 64 FLOPs.
    # critic (3 + 1) -> 4 -> 1: MACs 16 + 4 = 20, forward 2 * 2 * 20 = 80 FLOPs.
    assert mlp_macs([3, 4, 1]) == 16
    assert update_flops(3, 1, (4,), (4,), 2) == {
        "target_actor_forward": 64,
        "target_critic_forward": 80,
        "critic_forward": 80,
        # weight gradients of both layers (80) + input gradient of the second layer only (2*2*4*1)
        "critic_backward": 80 + 16,
        "actor_forward": 64,
        "critic_forward_on_policy_actions": 80,
        # no weight gradients: input gradient of layer 2 (16) + the action column of layer 1 (2*2*1*4)
        "critic_backward_to_action": 16 + 16,
        # weight gradients (64) + input gradient of the second layer (2*2*4*1)
        "actor_backward": 64 + 16,
        "total": 576,
    }


def test_update_flops_scale():
    # Large layers: a backward with weight gradients is ~2 forwards, one without ~1, so the
    # total approaches 4 F(actor) + 6 F(critic); and it is linear in the batch size.
    flops = update_flops(17, 6, (400, 300), (400, 300), 256)
    fa = 2 * 256 * mlp_macs([17, 400, 300, 6])
    fc = 2 * 256 * mlp_macs([23, 400, 300, 1])
    assert flops["total"] == pytest.approx(4 * fa + 6 * fc, rel=0.03)
    assert update_flops(17, 6, (400, 300), (400, 300), 512)["total"] == 2 * flops["total"]


def net(width: int, batch: int, **fields) -> Config:
    return Config(actor_hidden=(width, width), critic_hidden=(width, width), batch_size=batch, **fields)


@pytest.mark.parametrize(("config", "obs", "act", "expected"), [
    (net(64, 64), 3, 1, XLA),                       # Pendulum 64-64/B64: 5.5 MFLOP
    (net(256, 128), 3, 1, LARGE_2_CORES),           # the pendulum preset: 170 MFLOP
    (net(256, 256), 17, 6, LARGE_2_CORES),          # HalfCheetah 256-256/B256: 359 MFLOP
])
def test_rule_on_the_measured_cases(config, obs, act, expected):
    assert choose_speed(config, obs, act, cores=2) == expected


def test_rule_threshold_dtype_and_cores():
    small = net(64, 256)  # 22.2 MFLOP: below the threshold in float32, above it in float64
    assert update_flops(3, 1, (64, 64), (64, 64), 256)["total"] < LARGE_UPDATE_FLOPS
    assert choose_speed(small, 3, 1, cores=2) == XLA
    assert choose_speed(small.replace(dtype="float64"), 3, 1, cores=2) == LARGE_2_CORES
    assert choose_speed(net(256, 128), 3, 1, cores=1) == XLA  # nothing to run side by side
    assert choose_speed(net(256, 128), 3, 1, cores=8) == dict(LARGE_2_CORES, intra_op_threads=4)
    assert choose_speed(net(256, 99), 3, 1, cores=2)["batch_chunks"] == 1  # odd batch: no halves


def test_resolve_keeps_given_fields_and_manual():
    config = net(256, 128)
    resolved, line = resolve_speed(config, 3, 1, given=set(), cores=2)
    assert {f: getattr(resolved, f) for f in LARGE_2_CORES} == LARGE_2_CORES
    assert resolved.speed == "auto" and line.startswith("speed auto: no XLA, batch chunks 2")
    kept, line = resolve_speed(config, 3, 1, given={"jit_compile"}, cores=2)
    assert kept.jit_compile is True and kept.batch_chunks == 2 and "kept as set: jit_compile" in line
    # threads=1 (the experiment runner's parallel trials): one core to use, so XLA.
    one, _ = resolve_speed(config.replace(threads=1), 3, 1, given=set(), cores=2)
    assert (one.intra_op_threads, one.inter_op_threads, one.jit_compile, one.batch_chunks) == (0, 0, True, 1)
    two, _ = resolve_speed(config.replace(threads=2), 3, 1, given=set(), cores=8)
    assert (two.intra_op_threads, two.inter_op_threads, two.jit_compile) == (0, 0, False)
    for off in (config.replace(speed="manual"), config.replace(eager=True)):
        assert resolve_speed(off, 3, 1, given=set(), cores=2) == (off, None)
    assert kept_speed_fields(Config(batch_chunks=4), ["seed"]) == {"seed", "batch_chunks"}
    with pytest.raises(Exception, match="--speed"):
        Config(speed="fast").validate()


def test_new_model_records_the_choice_and_load_keeps_it(tmp_path, monkeypatch):
    # The preset's 256-wide networks on 2 cores: the large-update settings, saved with the run.
    monkeypatch.setattr("ddpg_tf.speed.available_cores", lambda: 2)
    model = DDPG(gym.make("Pendulum-v1"), actor_hidden=(256, 256), critic_hidden=(256, 256), batch_size=128,
                 progress=False, learning_starts=50, eval_every=0, run_dir=tmp_path / "run")
    assert (model.config.jit_compile, model.config.batch_chunks) == (False, 2)
    model.learn(60)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["speed"], saved["jit_compile"], saved["batch_chunks"]) == ("auto", False, 2)
    model.save(tmp_path / "saved")
    model.close()
    # A loaded run keeps what it saved, even where the rule would now choose otherwise.
    monkeypatch.setattr("ddpg_tf.speed.available_cores", lambda: 1)
    loaded = DDPG.load(tmp_path / "saved", progress=False)
    assert (loaded.config.jit_compile, loaded.config.batch_chunks) == (False, 2)
    loaded.close()
