""":func:`ddpg_tf.compiled.compile_function` and its switch between the fast call path
(:mod:`ddpg_tf.fast_calls`, tested in ``test_fast_calls.py``) and the public
``ConcreteFunction.__call__``: switched off, the public call runs, the fast path's module is not
even imported, and every result is bit-equal to the fast path's."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ddpg_tf import compiled
from ddpg_tf._quiet import tf
from ddpg_tf.compiled import compile_function

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def without_fast_calls_module(monkeypatch):
    """Importing :mod:`ddpg_tf.fast_calls` fails (as if the file were deleted)."""
    monkeypatch.setitem(sys.modules, "ddpg_tf.fast_calls", None)


def _stateful():
    """A small stateful step in float32: matmul, tanh, a running state and its update count."""
    w = tf.Variable(tf.reshape(tf.range(12, dtype=tf.float32), (4, 3)) / 7.0)
    state = tf.Variable(tf.zeros(3))
    count = tf.Variable(0, dtype=tf.int64)

    def step(x, scale):
        h = tf.tanh(tf.matmul(x, w))
        state.assign(0.9 * state + scale * tf.reduce_mean(h, axis=0))
        w.assign_sub(1e-2 * tf.matmul(x, h, transpose_a=True))
        count.assign_add(1)
        return {"h": h, "state": state.read_value(), "count": count.read_value()}

    signature = [tf.TensorSpec((None, 4), tf.float32), tf.TensorSpec((), tf.float32)]
    return (w, state, count), step, signature


def _run(fast_calls: bool, monkeypatch, jit: bool) -> tuple[list[dict], list[np.ndarray]]:
    monkeypatch.setattr(compiled, "FORCE_PUBLIC_CALLS", False)  # the argument decides
    variables, step, signature = _stateful()
    call = compile_function(step, signature, jit_compile=jit, fast_calls=fast_calls)
    rng = np.random.default_rng(0)
    outputs = [call(rng.standard_normal((5, 4)).astype(np.float32), np.float32(0.5 + i)) for i in range(6)]
    return ([{k: v.numpy() for k, v in out.items()} for out in outputs], [v.numpy() for v in variables])


@pytest.mark.parametrize("jit", [False, True])
def test_public_path_is_bit_equal_to_the_fast_path_and_touches_no_internals(
        jit, monkeypatch, public_calls):
    fast_out, fast_vars = _run(True, monkeypatch, jit)
    assert public_calls == []  # the fast path ran
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "ddpg_tf.fast_calls", None)
        public_out, public_vars = _run(False, monkeypatch, jit)
    assert len(public_calls) == 6  # every call through ConcreteFunction.__call__
    assert [int(out["count"]) for out in public_out] == [1, 2, 3, 4, 5, 6]
    for ours, theirs in zip(fast_out, public_out, strict=True):
        for key in ("h", "state", "count"):
            np.testing.assert_array_equal(ours[key], theirs[key])
    for ours, theirs in zip(fast_vars, public_vars, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_force_public_calls_overrides_the_argument(monkeypatch, public_calls, without_fast_calls_module):
    monkeypatch.setattr(compiled, "FORCE_PUBLIC_CALLS", True)
    (_, _, count), step, signature = _stateful()
    call = compile_function(step, signature, fast_calls=True)
    out = call(np.ones((2, 4), np.float32), np.float32(1.0))
    assert int(out["count"]) == 1 and int(count.numpy()) == 1 and len(public_calls) == 1


def test_public_path_ignores_staging_and_keeps_errors(monkeypatch, without_fast_calls_module):
    monkeypatch.setattr(compiled, "FORCE_PUBLIC_CALLS", True)
    v = tf.Variable(tf.zeros(3))

    def add(x):
        v.assign_add(x)
        return 2.0 * x

    call = compile_function(add, [tf.TensorSpec((3,), tf.float32)], stage_inputs=True)
    np.testing.assert_array_equal(call(np.ones(3, np.float32)).numpy(), [2.0] * 3)
    np.testing.assert_array_equal(call(np.arange(3.0)).numpy(), [0.0, 2.0, 4.0])  # float64: converted
    with pytest.raises((TypeError, ValueError)):
        call(np.zeros(4, np.float32))
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0, 3.0])


def test_eager_functions_run_python():
    calls = []

    def fn(x):
        calls.append(tf.executing_eagerly())
        return x + 1.0

    call = compile_function(fn, [tf.TensorSpec((2,), tf.float32)], eager=True)
    np.testing.assert_array_equal(call(np.zeros(2, np.float32)).numpy(), [1.0, 1.0])
    assert calls == [True]


def test_environment_variable_switches_child_processes_to_the_public_path():
    code = ("import sys, numpy as np\n"
            "from ddpg_tf import compiled\n"
            "from ddpg_tf._quiet import tf\n"
            "f = compiled.compile_function(lambda x: 2.0 * x, [tf.TensorSpec((2,), tf.float32)])\n"
            "print(compiled.FORCE_PUBLIC_CALLS, f(np.ones(2, np.float32)).numpy().tolist(),\n"
            "      'ddpg_tf.fast_calls' in sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), DDPG_TF_FAST_CALLS="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    assert out.stdout.split("\n")[-2] == "True [2.0, 2.0] False"


def test_compiled_uses_public_tensorflow_only():
    """``compiled.py`` names no private attribute and imports nothing from ``tensorflow.python``;
    the only path to TensorFlow's internals is the import of :mod:`ddpg_tf.fast_calls`."""
    tree = ast.parse((ROOT / "ddpg_tf" / "compiled.py").read_text())
    nodes = list(ast.walk(tree))
    private = [node.attr for node in nodes if isinstance(node, ast.Attribute)
               and node.attr.startswith("_") and not node.attr.endswith("__")]
    imported = [node.module for node in nodes if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names]
    assert private == []
    assert not any(name.startswith(("tensorflow", "keras")) for name in imported)
    assert "ddpg_tf.fast_calls" in imported


def test_training_without_the_fast_path_module_is_bit_identical(tmp_path, monkeypatch):
    """The whole package with :mod:`ddpg_tf.fast_calls` switched off and unimportable trains
    to the same weights, to the last bit, as with it on."""
    from ddpg_tf.config import Config
    from ddpg_tf.training import train

    def run(name: str) -> list[np.ndarray]:
        config = Config(total_steps=200, learning_starts=100, batch_size=16, buffer_size=500,
                        actor_hidden=(16, 16), critic_hidden=(16, 16), eval_every=0, eval_episodes=1,
                        log_every=100, checkpoint_every=0, progress=False, export=False,
                        logdir=str(tmp_path), run_name=name, seed=3).validate()
        agent = train(config).agent
        models = (agent.actor, agent.critic, agent.actor_target, agent.critic_target)
        return [w for m in models for w in m.get_weights()]

    monkeypatch.setattr(compiled, "FORCE_PUBLIC_CALLS", False)
    fast = run("fast")
    monkeypatch.setattr(compiled, "FORCE_PUBLIC_CALLS", True)
    monkeypatch.setitem(sys.modules, "ddpg_tf.fast_calls", None)
    public = run("public")
    assert len(fast) == len(public) > 0
    for ours, theirs in zip(fast, public, strict=True):
        np.testing.assert_array_equal(ours, theirs)
