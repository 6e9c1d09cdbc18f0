"""Imports Keras (and its backend) without the backend's start-up lines.

TensorFlow writes lines such as ``Could not find cuda drivers`` and, on
machines without a GPU, an alarming ``failed call to cuInit ... UNKNOWN ERROR
(303)`` straight to the process's stderr, before ``TF_CPP_MIN_LOG_LEVEL`` is
read. The examples import this module first: stderr is pointed at a temporary
file while the backend starts, and the captured text is printed after all if
the start fails or ``KERAS_UNETPP_VERBOSE_STARTUP=1`` is set.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def _captured_stderr():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if failed or os.environ.get("KERAS_UNETPP_VERBOSE_STARTUP") == "1":
                capture.seek(0)
                sys.stderr.write(capture.read().decode(errors="replace"))


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
with _captured_stderr():
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery (the cuInit line) happens here, quietly
