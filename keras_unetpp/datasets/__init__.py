"""Data sets: loaders for real layouts, a synthetic toy set, splits and tf.data pipelines."""

from keras_unetpp.datasets.dubai import DUBAI_CLASS_COLORS, class_color, is_dubai_layout, load_dubai
from keras_unetpp.datasets.folders import load_folder_pairs
from keras_unetpp.datasets.io import Sample, data_root
from keras_unetpp.datasets.pipeline import (
    array_dataset,
    crop_dataset,
    fixed_crops,
    random_crop,
    resized_arrays,
    split_by_group,
    split_fraction,
    to_float,
)
from keras_unetpp.datasets.synthetic import make_shapes

__all__ = [
    "DUBAI_CLASS_COLORS",
    "Sample",
    "array_dataset",
    "class_color",
    "crop_dataset",
    "data_root",
    "fixed_crops",
    "is_dubai_layout",
    "load_dubai",
    "load_folder_pairs",
    "make_shapes",
    "random_crop",
    "resized_arrays",
    "split_by_group",
    "split_fraction",
    "to_float",
]
