"""Prediction of large scenes."""

from keras_unetpp.inference.tiling import (
    DIHEDRAL_TRANSFORMS,
    MIRROR_TTA,
    count_windows,
    gaussian_weights,
    predict_augmented,
    predict_tiled,
    tiled_bands,
    tta_transforms,
    window_starts,
    window_stride,
)

__all__ = [
    "DIHEDRAL_TRANSFORMS",
    "MIRROR_TTA",
    "count_windows",
    "gaussian_weights",
    "predict_augmented",
    "predict_tiled",
    "tiled_bands",
    "tta_transforms",
    "window_starts",
    "window_stride",
]
