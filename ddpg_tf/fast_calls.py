"""The fast call path of :func:`ddpg_tf.compiled.compile_function`: every use of TensorFlow's
undocumented internals in the package, in this one module.

Why: a ``tf.function`` call on CPU spends more time in Python than a small DDPG update spends
computing: ``ConcreteFunction.__call__`` binds the arguments against the function type,
converts NumPy inputs through the generic conversion path, then packs the outputs through the
function type again. On the development machine (TensorFlow 2.21, 2 cores) a store-and-train
call for Pendulum-v1 64-64/B64 took 683 us through ``__call__`` with a NumPy row and 490 us
through this path, for the same executable and the same results
(``python benchmarks/call_overhead.py`` measures it).

What it does: :func:`fast_caller` converts each argument with ``tf.constant`` (checking dtype
and shape against the input signature) or copies it into a :class:`_Staged` tensor, runs the
traced function's flat entry point with the captured variables appended through the eager
runtime's execute (with the call options ``call_flat`` would pass, see
:func:`_direct_execute`), and rebuilds the nested outputs with a packer built once from the
output structure.

What it relies on (written against TensorFlow 2.21, none of it documented):
``ConcreteFunction._inference_function`` (the traced atomic function) with its ``name`` and
``function_type.flat_outputs``, ``DType._handle_data``; ``tensorflow.python.pywrap_tfe.
TFE_Py_Execute``; the eager context's ``_handle``, ``device_name``, ``function_call_options``
and ``op_callbacks``; ``cancellation.context()``; ``InterpolateRuntimeError``; and DLPack
sharing a NumPy buffer with a tensor (``tf.experimental.dlpack``) for staged inputs.

How it fails: the same results as ``ConcreteFunction.__call__`` or the public path itself.
Arguments off the signature, calls inside another ``tf.function``, and calls while an op
callback (TensorFlow's debugging tools) or a cancellation context is active take
``ConcreteFunction.__call__``. Where the internals are missing when a caller is built, or a call
fails with anything but a ``tf.errors.OpError`` (an op failing inside the graph, which
propagates unchanged), the process warns once (``RuntimeWarning``) and that function, and
every one traced after it, takes the public path. A failed call is never run twice: a failure
before the executable ran (converting or staging inputs, the execute rejecting its arguments)
runs the call through ``ConcreteFunction.__call__``; a failure after it (packing the outputs)
packs the flat results with ``tf.nest.pack_sequence_as``. The fast path records nothing on a
``tf.GradientTape``: the agent never calls its compiled steps under one.

How to turn it off (then this module is not even imported): ``Config.fast_calls = False``
(``--no-fast-calls``) for one run, ``DDPG_TF_FAST_CALLS=0`` in the environment for every
process, ``ddpg_tf.compiled.FORCE_PUBLIC_CALLS = True`` in one process, and
``pytest --no-fast-calls`` for the test suite (see :mod:`ddpg_tf.compiled`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ddpg_tf._quiet import tf

fell_back = False
"""True once a fast call has failed in this process (the warning is given then); from then on
:func:`fast_caller` returns the public ``ConcreteFunction`` itself."""


def fast_caller(concrete: Any, signature: Sequence[tf.TensorSpec], stage_inputs: bool = False,
                on_fallback: Callable[[], None] | None = None) -> Callable[..., Any]:
    """A function calling the concrete function ``concrete`` with the same results as
    ``concrete(*args)``, bypassing its argument binding and output packing (and, with
    ``stage_inputs``, passing fixed-shape NumPy arguments through :class:`_Staged` tensors;
    only for functions whose outputs never alias an input). ``concrete`` itself where the
    fast path is unavailable. ``on_fallback`` is called when a call falls back (the caller's
    owner can then call ``concrete`` directly from then on)."""
    if fell_back:
        return concrete
    specs = tuple(signature)
    try:
        execute = _direct_execute(concrete._inference_function, tuple(concrete.captured_inputs))
        pack = _packer(concrete.structured_outputs)
        stages = tuple(_Staged.create(spec) if stage_inputs else None for spec in specs)
    except Exception as error:  # TensorFlow's internals are not what this was written against
        _fall_back(error)
        return concrete
    if execute is None or pack is None:
        return concrete  # outputs this path does not handle: no failure, the public path

    def call(*args: Any) -> Any:
        flat = None
        try:
            tensors = _convert(args, specs, stages) if len(args) == len(specs) else None
            if tensors is not None:
                flat = execute(tensors)  # None: not run, a call for the public path
                if flat is not None:
                    return pack(flat)
        except tf.errors.OpError:
            raise  # an op failed inside the graph: TensorFlow's error, as the public path raises it
        except Exception as error:
            return _recover(concrete, error, args, flat, on_fallback)
        return concrete(*args)  # the public path (it raises the informative error for bad arguments)

    return call


def _convert(args: tuple[Any, ...], specs: tuple[tf.TensorSpec, ...],
             stages: tuple[_Staged | None, ...]) -> list[tf.Tensor] | None:
    """The arguments as eager tensors matching ``specs`` exactly, or None where one does not
    (then the public path converts or rejects it) or the call is not eager."""
    if not tf.executing_eagerly():
        return None  # inside another tf.function
    tensors = []
    for arg, spec, stage in zip(args, specs, stages, strict=True):
        tensor = stage.put(arg) if stage is not None else None
        if tensor is not None:  # a staging tensor is made to the spec: nothing to check
            tensors.append(tensor)
            continue
        tensor = arg if isinstance(arg, tf.Tensor) else _constant(arg, spec.dtype)
        if (tensor is None or tensor.dtype != spec.dtype
                or not spec.shape.is_compatible_with(tensor.shape)):
            return None
        tensors.append(tensor)
    return tensors


def _recover(concrete: Any, error: Exception, args: tuple[Any, ...], flat: list[tf.Tensor] | None,
             on_fallback: Callable[[], None] | None) -> Any:
    """The result of a fast call that failed with ``error``, computed once: through the public
    path when the executable has not run (``flat`` is None), else packed from its flat results."""
    _fall_back(error)
    if on_fallback is not None:
        on_fallback()
    if flat is None:
        return concrete(*args)
    structure = concrete.structured_outputs
    return None if structure is None else tf.nest.pack_sequence_as(structure, list(flat))


def _fall_back(error: Exception) -> None:
    """Record that the fast path failed with ``error``; the first time, warn."""
    global fell_back
    if fell_back:
        return
    fell_back = True
    warnings.warn(
        f"ddpg_tf's fast call path failed ({type(error).__name__}: {error}); this and later compiled "
        "functions use the public ConcreteFunction call instead (same results, slower). "
        "--no-fast-calls / fast_calls=False (or DDPG_TF_FAST_CALLS=0) avoids the fast path.",
        RuntimeWarning, stacklevel=4)


def _direct_execute(atomic: Any, captures: tuple[tf.Tensor, ...]
                    ) -> Callable[[list[tf.Tensor]], list[tf.Tensor] | None] | None:
    """The traced function's flat entry point without ``call_flat``'s Python wrapping: the
    eager runtime's execute with the call options ``call_flat`` would pass (15-40 us less per
    call on the development machine), taking the inputs and appending ``captures``. None where
    an output carries handle data ``call_flat`` would attach; raises where TensorFlow's
    internals differ from those this was written against. The returned function returns None,
    without running anything, while an op callback (TensorFlow's debugging tools,
    ``tf.debugging.enable_check_numerics``) or a cancellation context is active: the public
    path reports calls to the callback. A non-OpError it raises comes from checking its
    arguments, before anything ran (the runtime reports failures of running ops as OpError)."""
    from tensorflow.python import pywrap_tfe
    from tensorflow.python.eager import cancellation, context
    from tensorflow.python.eager.polymorphic_function.atomic_function import InterpolateRuntimeError

    execute = pywrap_tfe.TFE_Py_Execute
    name = atomic.name.decode() if isinstance(atomic.name, bytes) else str(atomic.name)
    outputs = atomic.function_type.flat_outputs
    if any(output.dtype._handle_data for output in outputs):
        return None
    n_outputs = len(outputs)
    extra = list(captures)

    def run(tensors: list[tf.Tensor]) -> list[tf.Tensor] | None:
        ctx = context.context()
        if cancellation.context() is not None or ctx.op_callbacks:
            return None
        attrs = tuple(item for pair in ctx.function_call_options.as_attrs().items() for item in pair)
        with InterpolateRuntimeError(atomic):
            return execute(ctx._handle, ctx.device_name, name, tensors + extra, attrs, n_outputs)

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
    """``value`` as a tensor when it is a NumPy array (or scalar) of exactly ``dtype``; None
    otherwise, also for values NumPy cannot convert (the public path then says why)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        return None
    if array.dtype != dtype.as_numpy_dtype:
        return None
    return tf.constant(array)


def _packer(structure: Any) -> Callable[[Sequence[tf.Tensor]], Any] | None:
    """A function rebuilding ``structure`` (None, a tensor, or dicts / tuples / lists of
    them) from the flat outputs of a call, in ``tf.nest`` order (dict keys sorted); None for
    other structures."""
    if structure is None:
        return lambda flat: None
    count = len(tf.nest.flatten(structure))
    try:
        build = _builder(structure)
    except TypeError:
        return None

    def pack(flat: Sequence[tf.Tensor]) -> Any:
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
