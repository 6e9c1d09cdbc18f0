"""Imported first by the examples: keeps TensorFlow's C++ log to errors and
starts the backend without its start-up lines (``keras_unetpp_cli``;
``KERAS_UNETPP_VERBOSE_STARTUP=1`` shows them)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_unetpp_cli import start_backend_quietly

start_backend_quietly()
