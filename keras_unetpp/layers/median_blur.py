"""Exact median blur as a layer, on any backend and device."""

from __future__ import annotations

import keras
from keras import ops

from keras_unetpp.checks import whole_number
from keras_unetpp.layers.base import ImageMaskLayer
from keras_unetpp.layers.selection_network import apply_network, median_plan


def _edge_pad(x, radius: int, axis: int):
    """Replicates the first/last row (axis 1) or column (axis 2) ``radius`` times."""
    if radius == 0:
        return x
    first = x[:, :1] if axis == 1 else x[:, :, :1]
    last = x[:, -1:] if axis == 1 else x[:, :, -1:]
    return ops.concatenate([ops.repeat(first, radius, axis=axis), x, ops.repeat(last, radius, axis=axis)], axis=axis)


def _shift(x, offset: int, span: int, axis: int):
    """The window of the padded ``x`` starting at ``offset`` (static slice)."""
    end = offset - span + 1 or None
    return x[:, offset:end] if axis == 1 else x[:, :, offset:end]


def median_blur(images, kernel_size: int = 5):
    """Median of every ``kernel_size`` x ``kernel_size`` window, per channel,
    with replicated borders: ``cv2.medianBlur`` on uint8 images and
    ``scipy.ndimage.median_filter(mode="nearest")`` on float images, exactly.

    Computed by a pruned min/max selection network (see
    `selection_network`): 156 min/max operations per
    pixel for k=5, 20 for k=3, no sorting and no data-dependent control flow.

    Args:
        images: (N, H, W, C) tensor, any real dtype.
        kernel_size: Odd window size >= 1.

    Returns:
        A tensor of the input's shape and dtype.

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> x = np.full((1, 3, 4, 1), 5, "uint8"); x[0, 1, 1, 0] = 255  # salt noise
        >>> keras.ops.convert_to_numpy(median_blur(x, 3))[0, :, :, 0].tolist()
        [[5, 5, 5, 5], [5, 5, 5, 5], [5, 5, 5, 5]]
    """
    column_network, column_ranks, window_network, output = median_plan(kernel_size)
    if kernel_size == 1:
        return images
    r = kernel_size // 2
    padded = _edge_pad(_edge_pad(images, r, 1), r, 2)
    rows = [_shift(padded, dy, kernel_size, 1) for dy in range(kernel_size)]
    columns = apply_network(rows, column_network, ops.minimum, ops.maximum)
    sorted_columns = [columns[w] for w in column_ranks]  # rank-r entry of each column
    wires = [_shift(sorted_columns[rank], dx, kernel_size, 2) for rank in range(kernel_size) for dx in range(kernel_size)]
    return apply_network(wires, window_network, ops.minimum, ops.maximum)[output]


@keras.saving.register_keras_serializable(package="keras_unetpp")
class MedianBlur(ImageMaskLayer):
    """Median blur of the images; masks pass through untouched.

    Preprocessing, not augmentation: active in training and inference alike,
    so a model that contains it sees the same smoothing at predict time. On
    uint8-valued input it equals ``cv2.medianBlur`` exactly (replicated
    border, any channel count, any odd kernel size), on float input
    ``scipy.ndimage.median_filter(mode="nearest")`` per channel. See
    [`median_blur()`][keras_unetpp.layers.median_blur.median_blur] for the method and ``benchmarks/`` for its speed.

    Why our own: Keras has no median filter; OpenCV runs on the CPU only and
    outside the graph.

    Args:
        kernel_size: Odd window size, >= 1.
        **kwargs: Standard layer arguments.

    Returns:
        Same structure as the input (tensor, pair or dict), blurred images.

    Raises:
        ValueError: For an even or non-positive ``kernel_size``.

    Examples:
        >>> import numpy as np
        >>> out = MedianBlur(3)({"images": np.ones((8, 8, 3), "float32"),
        ...                      "segmentation_masks": np.ones((8, 8, 1), "uint8")})
        >>> sorted(out)
        ['images', 'segmentation_masks']
    """

    def __init__(self, kernel_size: int = 5, **kwargs):
        super().__init__(**kwargs)
        kernel_size = whole_number(kernel_size, "kernel_size", 1)
        median_plan(kernel_size)  # validates
        self.kernel_size = kernel_size

    def transform(self, images, masks, training):
        return median_blur(images, self.kernel_size), masks

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size}
