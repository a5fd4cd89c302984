"""Import TensorFlow without its C++ start-up chatter.

TensorFlow prints oneDNN and CUDA-probe messages to file descriptor 2 while it loads, before
``TF_CPP_MIN_LOG_LEVEL`` takes effect. We capture fd 2 during the import and replay the
captured text only if the import fails, so real errors are never hidden.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _quiet_import():  # type: ignore[no-untyped-def]
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr (rare: daemonised); import normally
        import tensorflow

        return tensorflow
    sys.stderr.flush()
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow
            import tensorflow_probability  # noqa: F401  (same start-up noise)
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    tf = _quiet_import()

import tensorflow_probability as tfp  # noqa: E402  (already loaded above)

__all__ = ["tf", "tfp"]
