"""Prediction of large scenes."""

from keras_unetpp.inference.tiling import (
    DIHEDRAL_TRANSFORMS,
    count_windows,
    gaussian_weights,
    predict_tiled,
    window_starts,
    window_stride,
)

__all__ = [
    "DIHEDRAL_TRANSFORMS",
    "count_windows",
    "gaussian_weights",
    "predict_tiled",
    "window_starts",
    "window_stride",
]
