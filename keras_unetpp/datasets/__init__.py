"""Data sets: loaders for real layouts and a synthetic toy set."""

from keras_unetpp.datasets.synthetic import make_shapes

__all__ = ["make_shapes"]
