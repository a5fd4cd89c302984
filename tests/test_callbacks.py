"""Callbacks: what they are called with, in which order, and that False stops training cleanly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ddpg_tf import DDPG, Callback, SaturatedActorWarning
from ddpg_tf.callbacks import SaturationCheck, StepInfo
from tests.test_api import SMALL, Drift


class Recorder(Callback):
    def __init__(self, stop_at_step: int | None = None, stop_at_eval: int | None = None) -> None:
        self.calls: list[tuple] = []
        self.stop_at_step, self.stop_at_eval = stop_at_step, stop_at_eval

    def on_training_start(self, model):
        self.calls.append(("start", model.num_timesteps))

    def on_step(self, model, info):
        self.calls.append(("step", info.step, info.final, len(info.episodes)))
        return info.step != self.stop_at_step

    def on_evaluation(self, model, step, returns):
        self.calls.append(("eval", step, returns.shape))
        return step != self.stop_at_eval

    def on_checkpoint(self, model, step, path):
        self.calls.append(("checkpoint", step, path.endswith(f"ckpt-{step}")))

    def on_training_end(self, model):
        self.calls.append(("end", model.num_timesteps))


def test_callbacks_see_every_step_evaluation_and_checkpoint_in_order(tmp_path):
    rec = Recorder()
    model = DDPG(Drift(), run_dir=tmp_path / "run", **{**SMALL, "eval_every": 40, "eval_episodes": 3,
                                                        "checkpoint_every": 80})
    model.learn(100, callbacks=[rec])
    steps = [c for c in rec.calls if c[0] == "step"]
    assert [c[1] for c in steps] == list(range(1, 101))
    assert [c[2] for c in steps] == [False] * 99 + [True]
    # 40-step episodes end at steps 40 and 80; checkpoints (80, 100) end the episodes in progress.
    assert {c[1]: c[3] for c in steps if c[3]} == {40: 1, 80: 1, 100: 1}
    others = [c for c in rec.calls if c[0] != "step"]
    assert others == [("start", 0), ("eval", 40, (3,)), ("eval", 80, (3,)), ("checkpoint", 80, True),
                      ("eval", 100, (3,)), ("checkpoint", 100, True), ("end", 100)]
    # The built-in callbacks run first: at step 80 the evaluation and checkpoint come before our on_step.
    at_80 = rec.calls.index(("checkpoint", 80, True))
    assert rec.calls[at_80 + 1][:2] == ("step", 80)


@pytest.mark.parametrize("stop", [{"stop_at_step": 30}, {"stop_at_eval": 40}])
def test_returning_false_stops_cleanly_and_learning_can_go_on(stop):
    rec = Recorder(**stop)
    model = DDPG(Drift(), **{**SMALL, "eval_every": 20})
    model.learn(200, callbacks=[rec])
    stopped = 30 if "stop_at_step" in stop else 40
    assert model.num_timesteps == stopped and rec.calls[-1] == ("end", stopped)
    model.learn(20)  # a stopped model continues on request
    assert model.num_timesteps == stopped + 20


def test_a_single_callback_need_not_be_in_a_list_and_errors_still_end_training():
    class Boom(Callback):
        ended = False

        def on_step(self, model, info):
            if info.step == 5:
                raise RuntimeError("boom")

        def on_training_end(self, model):
            Boom.ended = True

    model = DDPG(Drift(), **SMALL)
    with pytest.raises(RuntimeError, match="boom"):
        model.learn(10, callbacks=Boom())
    assert Boom.ended and model.num_timesteps == 5
    assert np.all(np.isfinite(model.predict(np.zeros(3))))


def test_saturation_check_warns_once_after_patience_saturated_diagnostics_in_a_row():
    check = SaturationCheck(patience=3)
    seen = [(10, 1.0), (20, 1.0), (30, 0.9), (40, 1.0), (50, None), (60, 1.0), (70, 1.0), (80, 1.0),
            (90, 1.0)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step, value in seen:
            scalars = {} if value is None else {"diag/actor_states_without_grad": value}
            check.on_step(None, StepInfo(step=step, new_steps=1, scalars=scalars))
            # 30 breaks the first run; steps without diagnostics (50) neither count nor break one.
            assert len(caught) == (step >= 70)
    assert caught[0].category is SaturatedActorWarning
    assert "from step 40 to 70 (3 in a row)" in str(caught[0].message)


@pytest.mark.parametrize("saturated", [True, False])
def test_a_run_whose_actor_is_pinned_at_the_bounds_warns(tmp_path, saturated):
    """With the last layer's kernel 0 and its bias ±50 the tanh outputs are exactly ±1, the
    actor's gradient is exactly 0 and Adam leaves it there: the built-in check warns after five
    diagnostics; the same run from its own initial weights does not."""
    model = DDPG(Drift(), run_dir=tmp_path / "run", **{**SMALL, "diag_every": 20})
    if saturated:
        last = model.agent.actor.get_layer("pre_action")
        last.set_weights([np.zeros_like(last.kernel.numpy()), np.array([50.0, -50.0], np.float32)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.learn(200)
    ours = [w for w in caught if w.category is SaturatedActorWarning]
    assert len(ours) == saturated
    if saturated:  # learning starts at 60, so diagnostics at 80, ..., 160 are the first five
        assert "from step 80 to 160 (5 in a row)" in str(ours[0].message)


def test_the_command_line_prints_the_warning_as_one_line(capsys):
    from ddpg_tf.cli import one_line_warnings

    others = []
    show = one_line_warnings(lambda *args: others.append(args[1]))
    show(SaturatedActorWarning("the actor\n gets no gradient"), SaturatedActorWarning, "x.py", 1)
    show(UserWarning("not ours"), UserWarning, "x.py", 2)
    assert capsys.readouterr().err == "warning: the actor gets no gradient\n"
    assert others == [UserWarning]
