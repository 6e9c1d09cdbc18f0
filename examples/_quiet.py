"""Imported first by the examples: keeps TensorFlow's C++ log to errors and
starts the backend without its start-up lines (``keras_unetpp._startup``;
``KERAS_UNETPP_VERBOSE_STARTUP=1`` shows them)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_unetpp  # noqa: E402,F401  (starts the backend quietly)
