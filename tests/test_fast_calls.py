"""The fast call path (:mod:`ddpg_tf.fast_calls`): it returns exactly what
``ConcreteFunction.__call__`` returns, takes the public path for arguments off the signature,
lets op errors through, and when it fails otherwise warns once, switches to the public path and
still runs each call's side effects exactly once.

Every test here exercises the fast path, also under ``pytest --no-fast-calls``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ddpg_tf import compiled, fast_calls
from ddpg_tf._quiet import tf
from ddpg_tf.compiled import compile_function
from ddpg_tf.fast_calls import _direct_execute, _Staged, fast_caller


@pytest.fixture(autouse=True)
def fast_path(monkeypatch):
    """The fast path on, with no earlier fallback recorded (both restored afterwards)."""
    monkeypatch.setattr(compiled, "FORCE_PUBLIC_CALLS", False)
    monkeypatch.setattr(fast_calls, "fell_back", False)


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
    assert fast is not concrete  # the fast path is available on the pinned TensorFlow
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
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a user's bad argument is not a failure of the fast path
        with pytest.raises((TypeError, ValueError)):
            call(np.zeros(4, np.float32), np.zeros((1, 2)))  # wrong shape: the public error
        with pytest.raises((TypeError, ValueError)):
            call([[1.0], [1.0, 2.0]], np.zeros((1, 2)))  # NumPy cannot convert it: the public error
        # A float64 vector for the float32 input: the public call converts it, as before.
        out = call(np.ones(3), np.zeros((1, 2)))
    np.testing.assert_array_equal(out[1]["b"].numpy(), [2.0, 2.0, 2.0])
    assert not fast_calls.fell_back


def test_functions_without_outputs():
    v = tf.Variable(0.0)

    def add(x):
        v.assign_add(x)

    call = compile_function(add, [tf.TensorSpec((), tf.float32)])
    assert call(np.float32(2.0)) is None
    assert float(v.numpy()) == 2.0


@pytest.mark.parametrize("jit", [False, True])
def test_staged_inputs_give_the_results_of_fresh_tensors(jit):
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

    def fn(x):
        return tf.debugging.check_numerics(x * 2.0, "doubled")

    signature = [tf.TensorSpec((2,), tf.float32)]
    concrete = tf.function(fn, input_signature=signature).get_concrete_function()
    assert _direct_execute(concrete._inference_function, tuple(concrete.captured_inputs)) is not None
    fast = fast_caller(concrete, signature)
    np.testing.assert_array_equal(fast(np.array([1.0, 2.0], np.float32)).numpy(), [2.0, 4.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="doubled"):
        fast(np.array([1.0, np.nan], np.float32))


def test_op_callbacks_still_see_fast_calls():
    """With an op callback registered (TensorFlow's debugging tools) the call takes the
    public path, which reports the function call to the callback."""
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
    assert not fast_calls.fell_back


# --- falling back -----------------------------------------------------------------------

def _counting():
    """A stateful function: each run adds 1 to ``count`` and ``x`` to ``total``."""
    count = tf.Variable(0, dtype=tf.int64)
    total = tf.Variable(tf.zeros(2))

    def fn(x):
        count.assign_add(1)
        total.assign_add(x)
        return {"count": count.read_value(), "total": total.read_value(), "twice": 2.0 * x}

    return count, fn, [tf.TensorSpec((2,), tf.float32)]


def _inject(phase: str, monkeypatch) -> list[int]:
    """Make the fast path fail in ``phase`` with an error other than an OpError; returns a
    list that grows by one each time the failing part is reached."""
    reached: list[int] = []
    if phase == "convert":  # before execute: converting an argument
        def constant(value, dtype):
            reached.append(1)
            raise RuntimeError("injected while converting")

        monkeypatch.setattr(fast_calls, "_constant", constant)
    elif phase == "execute":  # the execute rejects its arguments (TypeError), before running
        from tensorflow.python import pywrap_tfe

        real = pywrap_tfe.TFE_Py_Execute

        def execute(handle, device, name, inputs, attrs, n_outputs):
            if not reached:  # the first call (the fast one) passes an array: the real rejection
                reached.append(1)
                inputs = [inputs[0].numpy(), *inputs[1:]]
            return real(handle, device, name, inputs, attrs, n_outputs)  # the public path's calls

        monkeypatch.setattr(pywrap_tfe, "TFE_Py_Execute", execute)
    elif phase == "pack":  # after the executable ran: packing its outputs
        def packer(structure):
            def pack(flat):
                reached.append(1)
                raise KeyError("injected while packing")

            return pack

        monkeypatch.setattr(fast_calls, "_packer", packer)
    else:
        raise ValueError(phase)
    return reached


EXPECTED_ERROR = {"convert": "RuntimeError: injected while converting",
                  "execute": "TypeError: provided list of inputs contains objects other than 'EagerTensor'",
                  "pack": "KeyError: 'injected while packing'"}


@pytest.mark.parametrize("phase", ["convert", "execute", "pack"])
def test_a_failing_fast_call_warns_once_runs_once_and_falls_back(phase, monkeypatch, public_calls):
    """Before the executable ran (convert, execute) the call is re-run through the public
    path; after it (pack) the flat results are packed publicly: either way the side effect
    happens once per call, and the function (and any traced later) takes the public path."""
    reached = _inject(phase, monkeypatch)
    count, fn, signature = _counting()
    call = compile_function(fn, signature)
    x = np.array([1.0, 2.0], np.float32)
    with pytest.warns(RuntimeWarning) as record:
        out = call(x)
    assert len(record) == 1
    message = str(record[0].message)
    assert EXPECTED_ERROR[phase] in message
    assert "--no-fast-calls" in message and "fast_calls=False" in message
    assert reached == [1]
    assert int(count.numpy()) == 1  # the computation ran exactly once
    assert sorted(out) == ["count", "total", "twice"]
    assert int(out["count"]) == 1
    np.testing.assert_array_equal(out["total"].numpy(), x)
    np.testing.assert_array_equal(out["twice"].numpy(), 2 * x)
    assert len(public_calls) == (0 if phase == "pack" else 1)

    # From now on: the public path for this function and for one traced later, no warning.
    other_count, other_fn, _ = _counting()
    other = compile_function(other_fn, signature)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = call(x)
        other_out = other(x)
    assert reached == [1]  # the fast path was not tried again
    assert len(public_calls) == (2 if phase == "pack" else 3)
    assert int(count.numpy()) == 2 and int(again["count"]) == 2
    np.testing.assert_array_equal(again["total"].numpy(), 2 * x)
    assert int(other_count.numpy()) == 1 and int(other_out["count"]) == 1


def test_a_fast_caller_without_owner_keeps_falling_back_correctly(monkeypatch):
    """Used directly (no ``on_fallback``), a failing fast caller still gives each call's result
    with one run, and warns only once."""
    reached = _inject("pack", monkeypatch)
    count, fn, signature = _counting()
    concrete = tf.function(fn, input_signature=signature).get_concrete_function()
    fast = fast_caller(concrete, signature)
    x = np.array([1.0, 2.0], np.float32)
    with pytest.warns(RuntimeWarning):
        fast(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fast(x)
    assert reached == [1, 1] and int(count.numpy()) == 2 and int(out["count"]) == 2
    assert fast_caller(concrete, signature) is concrete  # after a failure: the public path


def test_missing_internals_warn_once_and_use_the_public_path(monkeypatch, public_calls):
    def missing(atomic, captures):
        raise AttributeError("'AtomicFunction' object has no attribute 'function_type'")

    monkeypatch.setattr(fast_calls, "_direct_execute", missing)
    count, fn, signature = _counting()
    call = compile_function(fn, signature)
    with pytest.warns(RuntimeWarning, match="AttributeError") as record:
        out = call(np.ones(2, np.float32))
    assert len(record) == 1 and len(public_calls) == 1
    assert int(count.numpy()) == 1 and int(out["count"]) == 1


def test_op_errors_propagate_and_keep_the_fast_path(public_calls):
    """A failed assertion inside the graph is TensorFlow's error, unchanged, with no warning
    and no switch: the next call takes the fast path again."""
    count = tf.Variable(0, dtype=tf.int64)

    def fn(x):
        count.assign_add(1)
        with tf.control_dependencies([tf.debugging.assert_non_negative(x, message="negative input")]):
            return 2.0 * x

    call = compile_function(fn, [tf.TensorSpec((2,), tf.float32)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(tf.errors.InvalidArgumentError, match="negative input"):
            call(np.array([1.0, -1.0], np.float32))
        out = call(np.array([1.0, 2.0], np.float32))
    np.testing.assert_array_equal(out.numpy(), [2.0, 4.0])
    assert not fast_calls.fell_back and public_calls == []
