"""The first convolution of an ImageNet RGB encoder, adapted to other band counts.

One rule for both the weights and the input statistics: band k takes the place of RGB channel
k mod 3 (a single band: the sum of the RGB kernels and the mean of the statistics), as
segmentation_models_pytorch's ``patch_first_conv`` does. ``encoders`` (Keras applications) and
``efficientnet_lite`` (this library's EfficientNet-Lite) both use it; it imports neither.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: ImageNet mean and standard deviation per RGB channel, for images in [0, 1].
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)


def per_channel(rgb_values: Sequence[float], channels: int) -> np.ndarray:
    """Per-band values from per-RGB-channel ones: cyclic, or their mean for one band.

    Args:
        rgb_values: Three values (R, G, B).
        channels: Band count (>= 1).

    Returns:
        float64 array of ``channels`` values.

    Examples:
        >>> per_channel((1.0, 2.0, 3.0), 4).tolist(), per_channel((1.0, 2.0, 3.0), 1).tolist()
        ([1.0, 2.0, 3.0, 1.0], [2.0])
    """
    if channels == 1:
        return np.array([np.mean(rgb_values)])
    return np.array([rgb_values[k % 3] for k in range(channels)])


def adapt_first_kernel(kernel: np.ndarray, channels: int) -> np.ndarray:
    """An RGB first-convolution kernel adapted to ``channels`` input channels
    (the rule of segmentation_models_pytorch): 1 channel gets the sum over RGB
    (a grey image gives the response of the same grey RGB image); more than 3
    repeat R, G, B cyclically and are scaled by 3 / channels, 2 take R and G
    scaled by 3 / 2 (the activations keep the RGB model's scale; a stack of
    equal bands gives exactly the RGB response when ``channels`` is a multiple of 3).

    Args:
        kernel: (kh, kw, 3, filters) weights.
        channels: Target input channels (>= 1).

    Returns:
        (kh, kw, channels, filters) float32 array (a new one).

    Examples:
        >>> k = np.ones((3, 3, 3, 8), "float32")
        >>> adapt_first_kernel(k, 1).shape, float(adapt_first_kernel(k, 1)[0, 0, 0, 0])
        ((3, 3, 1, 8), 3.0)
    """
    kernel = np.asarray(kernel, np.float32)
    if kernel.ndim != 4 or kernel.shape[2] != 3:
        raise ValueError(f"expected an RGB kernel of shape (kh, kw, 3, filters), got {kernel.shape}.")
    if channels == 3:
        return kernel.copy()
    if channels == 1:
        return kernel.sum(axis=2, keepdims=True)
    return np.stack([kernel[:, :, k % 3] for k in range(channels)], axis=2) * (3.0 / channels)
