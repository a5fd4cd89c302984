"""Compiled functions: ``tf.function`` with a fixed input signature, and the choice of how to
call it.

:func:`compile_function` uses public TensorFlow only (``tf.function``, its XLA option,
``get_concrete_function`` and ``ConcreteFunction.__call__``). With ``fast_calls`` (the
default, ``Config.fast_calls``) the per-step calls go through :mod:`ddpg_tf.fast_calls`, a
lower-overhead path built on TensorFlow internals that gives the same results and falls back
to the public call, with one warning per process, when it fails. Switched off, that module is
not imported and the package uses public TensorFlow APIs only:

- one run: ``python train.py --no-fast-calls`` (``Config(fast_calls=False)``);
- every process started with it in the environment: ``DDPG_TF_FAST_CALLS=0``
  (read into :data:`FORCE_PUBLIC_CALLS` when this module is imported);
- one process: ``ddpg_tf.compiled.FORCE_PUBLIC_CALLS = True`` before the functions are built;
- the test suite: ``python -m pytest --no-fast-calls`` (``tests/conftest.py`` sets both of the
  above, so the ``train.py`` processes the tests start take the public path too).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from ddpg_tf._quiet import tf

FAST_CALLS_ENV = "DDPG_TF_FAST_CALLS"
"""Environment variable: ``0`` (or ``false`` / ``off`` / ``no``) switches the fast path off."""

FORCE_PUBLIC_CALLS: bool = os.environ.get(FAST_CALLS_ENV, "1").strip().lower() in {"0", "false", "off", "no"}
"""True: :func:`compile_function` ignores its ``fast_calls`` argument and every compiled
function is called through ``ConcreteFunction.__call__``."""


def compile_function(fn: Callable[..., Any], signature: Sequence[tf.TensorSpec], *,
                     jit_compile: bool = False, eager: bool = False, stage_inputs: bool = False,
                     fast_calls: bool = True) -> Callable[..., Any]:
    """``fn`` as a ``tf.function`` with a fixed ``signature`` (XLA with ``jit_compile``),
    traced on its first call; ``fn`` itself, with its arguments converted to tensors, when
    ``eager``. Called through :func:`ddpg_tf.fast_calls.fast_caller` with ``fast_calls``
    (unless :data:`FORCE_PUBLIC_CALLS`), else through ``ConcreteFunction.__call__``.
    ``stage_inputs`` (fast path only): see :class:`ddpg_tf.fast_calls._Staged`; only for
    functions whose outputs never alias an input."""
    if eager:
        return lambda *args: fn(*(tf.convert_to_tensor(a) for a in args))
    function = tf.function(fn, input_signature=list(signature), jit_compile=jit_compile or None)
    fast = fast_calls and not FORCE_PUBLIC_CALLS
    callers: list[Callable[..., Any]] = []

    def trace() -> Callable[..., Any]:
        concrete = function.get_concrete_function()
        if not fast:
            return concrete
        from ddpg_tf.fast_calls import fast_caller

        def use_public_path() -> None:
            callers[0] = concrete

        return fast_caller(concrete, signature, stage_inputs, on_fallback=use_public_path)

    def call(*args: Any) -> Any:
        if not callers:
            callers.append(trace())
        return callers[0](*args)

    return call
