"""Compiled functions with a low-overhead call path for the per-step calls of the training loop.

A ``tf.function`` call on CPU spends more time in Python than a small DDPG update spends
computing: ``ConcreteFunction.__call__`` binds the arguments against the function type,
converts NumPy inputs through the generic conversion path, then packs the outputs through the
function type again. On the development machine (TensorFlow 2.21, 2 cores) a store-and-train
call for Pendulum-v1 64-64/B64 took 683 us through ``__call__`` with a NumPy row and 490 us
through :func:`compile_function`'s path, for the same executable and the same results
(``python benchmarks/call_overhead.py`` measures it).

The fast path converts each argument with ``tf.constant`` (checking dtype and shape against
the input signature), calls the traced function's flat entry point with the captured
variables appended (through the eager runtime's execute, with the call options
``call_flat`` would pass, see :func:`_direct_execute`), and rebuilds the nested outputs with a
packer built once from the output structure. It relies on attributes TensorFlow does not
document (``_inference_function``, its ``call_flat``, name, signature and output types, and
the eager context's handle); where they are missing, or an argument does not match the
signature, the public ``__call__`` (or ``call_flat``) runs instead, so a TensorFlow upgrade
can make calls slower but not different. The fast path records nothing on a
``tf.GradientTape``: the agent never calls its compiled steps under one (calls inside
another ``tf.function`` take the public path).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ddpg_tf._quiet import tf


def compile_function(fn: Callable[..., Any], signature: Sequence[tf.TensorSpec], *,
                     jit_compile: bool = False, eager: bool = False,
                     stage_inputs: bool = False) -> Callable[..., Any]:
    """``fn`` as a ``tf.function`` with a fixed ``signature`` (XLA with ``jit_compile``),
    traced on its first call and then called through the fast path; ``fn`` itself, with its
    arguments converted to tensors, when ``eager``. ``stage_inputs``: see :class:`_Staged`
    (only for functions whose outputs never alias an input)."""
    if eager:
        return lambda *args: fn(*(tf.convert_to_tensor(a) for a in args))
    function = tf.function(fn, input_signature=list(signature), jit_compile=jit_compile or None)
    traced: list[Callable[..., Any]] = []

    def call(*args: Any) -> Any:
        if not traced:
            traced.append(fast_caller(function.get_concrete_function(), signature, stage_inputs))
        return traced[0](*args)

    return call


def fast_caller(concrete: Any, signature: Sequence[tf.TensorSpec],
                stage_inputs: bool = False) -> Callable[..., Any]:
    """A function calling the concrete function ``concrete`` with the same results as
    ``concrete(*args)``, bypassing its argument binding and output packing (and, with
    ``stage_inputs``, passing fixed-shape NumPy arguments through :class:`_Staged` tensors)."""
    try:
        atomic = concrete._inference_function
        execute = _direct_execute(atomic) or atomic.call_flat
        captures = tuple(concrete.captured_inputs)
        pack = _packer(concrete.structured_outputs)
    except (AttributeError, TypeError):
        return concrete
    specs = tuple(signature)
    stages = tuple(_Staged.create(spec) if stage_inputs else None for spec in specs)

    def call(*args: Any) -> Any:
        if len(args) != len(specs) or not tf.executing_eagerly():
            return concrete(*args)  # inside another tf.function: the public path
        tensors = []
        for arg, spec, stage in zip(args, specs, stages, strict=True):
            tensor = stage.put(arg) if stage is not None else None
            if tensor is None:
                tensor = arg if isinstance(arg, tf.Tensor) else _constant(arg, spec.dtype)
            if (tensor is None or tensor.dtype != spec.dtype
                    or not spec.shape.is_compatible_with(tensor.shape)):
                return concrete(*args)  # the public path raises the informative error
            tensors.append(tensor)
        return pack(execute(*tensors, *captures))

    return call


def _direct_execute(atomic: Any) -> Callable[..., Any] | None:
    """The traced function's flat entry point without ``call_flat``'s Python wrapping: the
    eager runtime's execute with the call options ``call_flat`` would pass (15-40 us less per
    call on the development machine). None (use ``call_flat``) where TensorFlow's internals
    differ from those this was written against, or where an output carries handle data
    ``call_flat`` would attach. Calls made while an op callback is registered (TensorFlow's
    debugging tools, ``tf.debugging.enable_check_numerics``) also take ``call_flat``, which
    reports them to the callback."""
    try:
        from tensorflow.python import pywrap_tfe
        from tensorflow.python.eager import cancellation, context
        from tensorflow.python.eager.polymorphic_function.atomic_function import InterpolateRuntimeError

        execute = pywrap_tfe.TFE_Py_Execute
        name = atomic.name.decode() if isinstance(atomic.name, bytes) else str(atomic.name)
        outputs = atomic.function_type.flat_outputs
        if any(output.dtype._handle_data for output in outputs):
            return None
        n_outputs = len(outputs)
    except (ImportError, AttributeError, TypeError):
        return None

    def run(*tensors: tf.Tensor) -> list[tf.Tensor] | None:
        # Called by fast_caller only, eagerly and with the signature's inputs and captures.
        ctx = context.context()
        if cancellation.context() is not None or ctx.op_callbacks:
            return atomic.call_flat(*tensors)
        attrs = tuple(item for pair in ctx.function_call_options.as_attrs().items() for item in pair)
        with InterpolateRuntimeError(atomic):
            return execute(ctx._handle, ctx.device_name, name, list(tensors), attrs, n_outputs) or None

    return run


class _Staged:
    """One long-lived input tensor whose memory is a NumPy buffer (shared through DLPack).

    Each call copies the argument into the buffer and passes the same tensor. TensorFlow
    charges a call with a newly created input tensor about 50-100 us more than a call with a
    tensor it has seen before (measured on the development machine; the cause is inside the
    runtime), which this avoids. Safe because calls are synchronous (the buffer is rewritten
    only after the previous call has returned) and the staged functions never return an input
    unchanged (an output aliasing the buffer would change with the next call).
    """

    def __init__(self, buffer: np.ndarray, tensor: tf.Tensor) -> None:
        self.buffer, self.tensor = buffer, tensor

    @classmethod
    def create(cls, spec: tf.TensorSpec) -> _Staged | None:
        """A staging tensor for ``spec``, or None when the shape is not fixed or the buffer
        cannot be shared (then the call converts as usual)."""
        if not spec.shape.is_fully_defined():
            return None
        buffer = _aligned_zeros(spec.shape.as_list(), spec.dtype.as_numpy_dtype)
        try:
            tensor = tf.experimental.dlpack.from_dlpack(buffer.__dlpack__())
            buffer.reshape(-1)[0] = 1  # check that the memory is shared, not copied
            shared = buffer.size > 0 and tensor.numpy().reshape(-1)[0] == 1
            buffer.reshape(-1)[0] = 0
        except (AttributeError, TypeError, ValueError, RuntimeError, BufferError, tf.errors.OpError):
            return None
        return cls(buffer, tensor) if shared else None

    def put(self, value: Any) -> tf.Tensor | None:
        """The staging tensor holding ``value`` (a NumPy array of the exact dtype and shape),
        else None."""
        if (not isinstance(value, np.ndarray) or value.shape != self.buffer.shape
                or value.dtype != self.buffer.dtype):
            return None
        np.copyto(self.buffer, value)
        return self.tensor


ALIGNMENT = 64
"""Bytes: TensorFlow's CPU kernels require tensor memory aligned to this (Eigen's alignment);
a staging buffer is allocated so, as TensorFlow's own allocator would."""


def _aligned_zeros(shape: list[int], dtype: Any) -> np.ndarray:
    """Zeros of ``shape`` whose data starts at a multiple of :data:`ALIGNMENT` bytes."""
    dtype = np.dtype(dtype)
    nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
    raw = np.zeros(nbytes + ALIGNMENT, np.uint8)
    offset = -raw.ctypes.data % ALIGNMENT
    return raw[offset:offset + int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape)


def _constant(value: Any, dtype: tf.DType) -> tf.Tensor | None:
    """``value`` as a tensor when it is a NumPy array (or scalar) of exactly ``dtype``."""
    array = np.asarray(value)
    if array.dtype != dtype.as_numpy_dtype:
        return None
    return tf.constant(array)


def _packer(structure: Any) -> Callable[[Sequence[tf.Tensor]], Any]:
    """A function rebuilding ``structure`` (None, a tensor, or dicts / tuples / lists of
    them) from the flat outputs of a call, in ``tf.nest`` order (dict keys sorted)."""
    if structure is None:
        return lambda flat: None
    count = len(tf.nest.flatten(structure))
    build = _builder(structure)

    def pack(flat: Sequence[tf.Tensor] | None) -> Any:
        flat = [] if flat is None else list(flat)
        if len(flat) != count:
            raise ValueError(f"expected {count} outputs from a compiled call, got {len(flat)}")
        return build(iter(flat))

    return pack


def _builder(structure: Any) -> Callable[[Any], Any]:
    if isinstance(structure, dict):
        keys = sorted(structure)
        parts = [_builder(structure[k]) for k in keys]
        return lambda it: {k: part(it) for k, part in zip(keys, parts, strict=True)}
    if isinstance(structure, (tuple, list)) and not hasattr(structure, "_fields"):
        parts = [_builder(s) for s in structure]
        kind = type(structure)
        return lambda it: kind(part(it) for part in parts)
    if isinstance(structure, (tf.Tensor, tf.TensorSpec)) or hasattr(structure, "dtype"):
        return next
    raise TypeError(f"unsupported output structure {type(structure).__name__}")
