"""Suite-wide options.

``python -m pytest --no-fast-calls`` runs the suite with :mod:`ddpg_tf.fast_calls` switched
off: :func:`ddpg_tf.compiled.compile_function` then calls every compiled function through the
public ``ConcreteFunction.__call__``, in this process (``compiled.FORCE_PUBLIC_CALLS``) and in
the ``train.py`` processes the tests start (``DDPG_TF_FAST_CALLS=0``, inherited). The tests of
the fast path itself (``tests/test_fast_calls.py``) still exercise it.

Fixture: ``public_calls`` counts the calls of the public ``ConcreteFunction.__call__``.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-fast-calls", action="store_true", default=False,
                     help="call compiled functions through the public ConcreteFunction.__call__ only "
                          "(sets DDPG_TF_FAST_CALLS=0 for the processes the tests start)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--no-fast-calls"):
        from ddpg_tf import compiled

        os.environ[compiled.FAST_CALLS_ENV] = "0"
        compiled.FORCE_PUBLIC_CALLS = True


@pytest.fixture
def public_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls of the public ``ConcreteFunction.__call__`` (one entry per call)."""
    from ddpg_tf._quiet import tf

    cls = type(tf.function(lambda: 0.0).get_concrete_function())
    original, seen = cls.__call__, []

    def counted(self: object, *args: object, **kwargs: object) -> object:
        seen.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__call__", counted)
    return seen


def pytest_report_header(config: pytest.Config) -> str:
    from ddpg_tf import compiled

    return f"ddpg_tf fast calls: {'off' if compiled.FORCE_PUBLIC_CALLS else 'on'}"
