"""Launcher of the ``keras-unetpp`` command: starts Keras and its backend without
the backend's start-up lines, then runs ``keras_unetpp.cli.main``.

TensorFlow writes lines such as ``Could not find cuda drivers`` and, on
machines without a GPU, an alarming ``failed call to cuInit ... UNKNOWN ERROR
(303)`` straight to the process's stderr (file descriptor 2, below Python),
while it loads and discovers devices. ``import keras_unetpp`` does no work
beyond imports (no redirection, no device discovery), so the command and the
examples quiet the backend themselves, before the package is imported: that is
why this module lives outside the package (importing ``keras_unetpp.anything``
runs the package's imports, Keras included, first). The captured text is
printed after all if the start fails or ``KERAS_UNETPP_VERBOSE_STARTUP=1`` is
set. Nothing else is hidden: warnings and errors after the start reach the
console as usual. A process that imported Keras or TensorFlow before this
already printed its lines; then this does nothing.
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


def main() -> int:
    """The ``keras-unetpp`` command: TensorFlow's C++ log kept to errors (unless the
    user set ``TF_CPP_MIN_LOG_LEVEL``), the backend started quietly, then the CLI."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    start_backend_quietly()
    from keras_unetpp.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
