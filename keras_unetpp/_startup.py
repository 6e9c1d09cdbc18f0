"""Starts Keras and its backend without the backend's start-up lines.

TensorFlow writes lines such as ``Could not find cuda drivers`` and, on
machines without a GPU, an alarming ``failed call to cuInit ... UNKNOWN ERROR
(303)`` straight to the process's stderr (file descriptor 2, below Python),
while it loads and discovers devices. ``keras_unetpp`` is imported by the
command line, the examples and user code before anything else of ours runs,
so it starts the backend here with descriptor 2 pointed at a temporary file;
the captured text is printed after all if the start fails or
``KERAS_UNETPP_VERBOSE_STARTUP=1`` is set. Nothing else is hidden: warnings
and errors after the start reach the console as usual, and
``TF_CPP_MIN_LOG_LEVEL`` is left as the user set it. A process that imported
Keras or TensorFlow before us already printed its lines; then this does nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def captured_stderr(show: bool = False):
    """Points file descriptor 2 at a temporary file for the block; writes the
    capture back to stderr if the block raises or ``show`` is true."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real descriptor 2 (some embedded interpreters)
        yield
        return
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
            if failed or show:
                capture.seek(0)
                sys.stderr.write(capture.read().decode(errors="replace"))


def start_backend_quietly() -> None:
    """Imports Keras (and with TensorFlow, discovers devices) with the start-up lines captured."""
    if "keras" in sys.modules or "tensorflow" in sys.modules:
        return
    with captured_stderr(show=os.environ.get("KERAS_UNETPP_VERBOSE_STARTUP") == "1"):
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices()  # device discovery (the cuInit line) happens here
