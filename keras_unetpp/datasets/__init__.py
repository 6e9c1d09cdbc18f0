"""Data sets: loaders for real layouts, a synthetic toy set, splits and tf.data pipelines."""

from keras_unetpp.datasets.dubai import (
    DUBAI_CLASS_COLORS,
    DUBAI_CLASSES,
    UNKNOWN_CLASS,
    class_color,
    class_index_mask,
    is_dubai_layout,
    load_dubai,
    load_dubai_classes,
)
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
    "DUBAI_CLASSES",
    "DUBAI_CLASS_COLORS",
    "UNKNOWN_CLASS",
    "Sample",
    "array_dataset",
    "class_color",
    "class_index_mask",
    "crop_dataset",
    "data_root",
    "fixed_crops",
    "is_dubai_layout",
    "load_dubai",
    "load_dubai_classes",
    "load_folder_pairs",
    "make_shapes",
    "random_crop",
    "resized_arrays",
    "split_by_group",
    "split_fraction",
    "to_float",
]
