"""The low-overhead call path of :mod:`ddpg_tf.compiled` returns exactly what
``ConcreteFunction.__call__`` returns, and falls back to it for arguments off the signature."""

from __future__ import annotations

import numpy as np
import pytest

from ddpg_tf._quiet import tf
from ddpg_tf.compiled import compile_function, fast_caller


def _function():
    state = tf.Variable(tf.zeros(3))

    def fn(x, y):
        state.assign_add(x)
        return (tf.reduce_sum(y, axis=0), {"b": x * 2.0, "a": state.read_value(), "n": tf.shape(y)[0]})

    signature = [tf.TensorSpec((3,), tf.float32), tf.TensorSpec((None, 2), tf.float64)]
    return state, fn, signature


@pytest.mark.parametrize("jit", [False, True])
def test_fast_path_returns_what_the_public_call_returns(jit):
    state, fn, signature = _function()
    concrete = tf.function(fn, input_signature=signature, jit_compile=jit).get_concrete_function()
    fast = fast_caller(concrete, signature)
    x = np.array([1.0, 2.0, 3.0], np.float32)
    y = np.arange(8.0).reshape(4, 2)
    public = concrete(x, y)
    ours = fast(x, y)
    assert isinstance(ours, tuple) and sorted(ours[1]) == ["a", "b", "n"]
    np.testing.assert_array_equal(ours[0].numpy(), public[0].numpy())
    for key in ("b", "n"):
        np.testing.assert_array_equal(ours[1][key].numpy(), public[1][key].numpy())
    # Both calls ran the side effect once each.
    np.testing.assert_array_equal(ours[1]["a"].numpy(), 2 * x)
    np.testing.assert_array_equal(state.numpy(), 2 * x)
    # Tensors pass through as they are; the varying batch dimension is accepted.
    again = fast(tf.constant(x), tf.constant(y[:1]))
    assert int(again[1]["n"]) == 1


def test_arguments_off_the_signature_take_the_public_path():
    _, fn, signature = _function()
    call = compile_function(fn, signature)
    with pytest.raises((TypeError, ValueError)):
        call(np.zeros(4, np.float32), np.zeros((1, 2)))  # wrong shape: the public error
    # A float64 vector for the float32 input: the public call converts it, as before.
    out = call(np.ones(3), np.zeros((1, 2)))
    np.testing.assert_array_equal(out[1]["b"].numpy(), [2.0, 2.0, 2.0])


def test_functions_without_outputs():
    v = tf.Variable(0.0)

    def add(x):
        v.assign_add(x)

    call = compile_function(add, [tf.TensorSpec((), tf.float32)])
    assert call(np.float32(2.0)) is None
    assert float(v.numpy()) == 2.0


@pytest.mark.parametrize("jit", [False, True])
def test_staged_inputs_give_the_results_of_fresh_tensors(jit):
    from ddpg_tf.compiled import _Staged

    spec = tf.TensorSpec((4,), tf.float32)
    stage = _Staged.create(spec)
    assert stage is not None  # the memory is shared on this platform
    assert stage.buffer.ctypes.data % 64 == 0  # TensorFlow's kernels check the alignment
    assert _Staged.create(tf.TensorSpec((None, 4), tf.float32)) is None  # not a fixed shape
    state = tf.Variable(tf.zeros(4))

    def fn(x):
        state.assign_add(x)
        return {"double": 2.0 * x, "sum": state.read_value()}

    staged = compile_function(fn, [spec], jit_compile=jit, stage_inputs=True)
    first = staged(np.arange(4, dtype=np.float32))
    second = staged(np.ones(4, np.float32))
    # The first call's outputs do not change when the staging buffer is rewritten.
    np.testing.assert_array_equal(first["double"].numpy(), [0.0, 2.0, 4.0, 6.0])
    np.testing.assert_array_equal(second["double"].numpy(), [2.0, 2.0, 2.0, 2.0])
    np.testing.assert_array_equal(state.numpy(), [1.0, 2.0, 3.0, 4.0])
    # Other dtypes or shapes bypass the staging buffer (and the signature decides).
    third = staged(np.ones(4))
    np.testing.assert_array_equal(third["double"].numpy(), [2.0] * 4)


def test_direct_execute_is_used_and_reports_runtime_errors():
    """On the pinned TensorFlow the flat entry point runs without ``call_flat``'s wrapping;
    an op failing at run time still raises TensorFlow's error, naming the op."""
    from ddpg_tf.compiled import _direct_execute

    def fn(x):
        return tf.debugging.check_numerics(x * 2.0, "doubled")

    signature = [tf.TensorSpec((2,), tf.float32)]
    concrete = tf.function(fn, input_signature=signature).get_concrete_function()
    assert _direct_execute(concrete._inference_function) is not None
    fast = fast_caller(concrete, signature)
    np.testing.assert_array_equal(fast(np.array([1.0, 2.0], np.float32)).numpy(), [2.0, 4.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="doubled"):
        fast(np.array([1.0, np.nan], np.float32))


def test_op_callbacks_still_see_fast_calls():
    """With an op callback registered (TensorFlow's debugging tools) the call takes the
    public entry point, which reports the function call to the callback."""
    from tensorflow.python.framework import op_callbacks

    signature = [tf.TensorSpec((2,), tf.float32)]
    concrete = tf.function(lambda x: x + 1.0, input_signature=signature).get_concrete_function()
    fast = fast_caller(concrete, signature)
    seen = []

    def callback(op_type, inputs, attrs, outputs, op_name=None, graph=None):
        seen.append(op_type)

    op_callbacks.add_op_callback(callback)
    try:
        out = fast(np.array([1.0, 2.0], np.float32))
    finally:
        op_callbacks.remove_op_callback(callback)
    np.testing.assert_array_equal(out.numpy(), [2.0, 3.0])
    assert any(t.startswith("__inference") for t in seen)
