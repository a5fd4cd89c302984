"""``python -m ddpg_tf.experiments.saturation``: the threshold where float32 tanh is exactly ±1,
the figures of a batch of pre-activations, and both libraries' checkpoints read right."""

from __future__ import annotations

import numpy as np
import pytest

from ddpg_tf import DDPG
from ddpg_tf.errors import UsageError
from ddpg_tf.experiments.saturation import TANH_F32_ONE, main, measure, run_saturation
from tests.test_api import SMALL


def test_correctly_rounded_float32_tanh_reaches_one_at_13_ln_2():
    """The threshold both libraries are judged by: PyTorch's tanh and ddpg-tf's actor
    (networks.rounded_tanh, pinned in test_components.py) are ±1 from there. TensorFlow's own
    CPU float32 tanh is 1 from about 7.91 (not pinned: it depends on the CPU's code path)."""
    def tanh(z: float) -> np.float32:
        return np.float32(np.tanh(np.float64(np.float32(z))))

    assert tanh(TANH_F32_ONE - 1e-3) < 1.0 and tanh(TANH_F32_ONE + 1e-3) == 1.0
    assert tanh(-TANH_F32_ONE - 1e-3) == -1.0


def test_measure_counts_components_and_whole_states():
    z = np.array([[9.0, 9.02], [10.0, -10.0], [0.0, 20.0]])
    m = measure(z, step=7, own=0.25)
    assert (m.step, m.states, m.own, m.min_abs_z) == (7, 3, 0.25, 0.0)
    assert m.zero_grad == pytest.approx(4 / 6) and m.all_zero == pytest.approx(1 / 3)
    assert m.median_abs_z == pytest.approx((9.02 + 10.0) / 2)
    with pytest.raises(UsageError, match="no observations"):
        measure(np.zeros((0, 2)), step=0, own=0.0)


def _pin_actor(last, bias: float) -> None:
    """Last layer's kernel 0 and bias ``bias``: z = bias on every state."""
    kernel, b = (np.asarray(w) for w in last.get_weights())
    last.set_weights([np.zeros_like(kernel), np.full_like(b, bias)])


def test_a_ddpg_tf_run_pinned_at_the_bound_reads_fully_saturated(tmp_path, capsys):
    """z = 50 on every state: tanh is exactly 1, the actor's gradient 0, Adam leaves it alone;
    every checkpoint then reads 1.0 / 1.0 / 50 over the buffer's states."""
    run = tmp_path / "run"
    model = DDPG("Pendulum-v1", run_dir=run, **{**SMALL, "checkpoint_every": 100, "diag_every": 0})
    _pin_actor(model.agent.actor.get_layer("pre_action"), 50.0)
    model.learn(200)
    model.close()
    rows = run_saturation(run)
    assert [(r.step, r.states) for r in rows] == [(100, 100), (200, 200)]
    assert all((r.zero_grad, r.all_zero, r.own, r.median_abs_z, r.min_abs_z) == (1.0, 1.0, 1.0, 50.0, 50.0)
               for r in rows)
    assert main([str(run)]) == 0
    assert "| run | 200 | 200 | 1.000 | 1.000 | 1.000 | 50.0 | 50.0000 |" in capsys.readouterr().out


def test_an_sb3_checkpoint_is_read_from_its_replay_rows(tmp_path):
    pytest.importorskip("stable_baselines3")
    import torch
    from stable_baselines3 import TD3

    model = TD3("MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [8, 8]}, device="cpu")
    with torch.no_grad():
        _pin_actor_torch(model.actor.mu[-2], -12.0)
    checkpoint = tmp_path / "trial" / "sb3_checkpoints" / "step-000000040"
    checkpoint.mkdir(parents=True)
    model.save(checkpoint / "model.zip")
    np.savez(checkpoint / "replay.npz", observations=np.ones((40, 1, 3), np.float32))
    (checkpoint / "state.pkl").write_bytes(b"")
    [row] = run_saturation(tmp_path / "trial")
    assert (row.step, row.states, row.zero_grad, row.all_zero, row.own, row.median_abs_z) == (
        40, 40, 1.0, 1.0, 1.0, 12.0)


def _pin_actor_torch(linear, bias: float) -> None:
    linear.weight.zero_()
    linear.bias.fill_(bias)


def test_a_directory_without_checkpoints_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no checkpoint" in err and err.count("\n") == 1
