"""Intensity augmentation of images only; masks pass through untouched.

Why our own and not ``keras.layers.RandomBrightness``/``RandomContrast``/
``GaussianNoise``: Keras' ``GaussianNoise`` is a regulariser (a plain tensor
layer that would add noise to a mask too, if handed one), and the Keras image
layers write back into the caller's dict. These three are a few lines each on
the shared `RandomImageMaskLayer`, with one
``value_range`` convention, and clip to it. Without a ``value_range`` they take
the range of the images' dtype (``keras_unetpp.values.dtype_range``: 0..255 for
uint8, [0, 1] for floats), so a uint8 film stays a 0..255 film; other integer
types are refused by name.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_unetpp.layers.base import RandomImageMaskLayer
from keras_unetpp.values import dtype_range


class _IntensityLayer(RandomImageMaskLayer):
    """Adjusts the images (float32 math, clipped to ``value_range``, cast
    back); masks pass through. Subclasses draw in ``get_random_transformation``
    (amounts as fractions of the range) and implement ``adjust(x, transformation, low, high)``."""

    def __init__(self, value_range=None, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if value_range is not None:
            low, high = (float(v) for v in value_range)
            if not low < high:
                raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}.")
            value_range = (low, high)
        self.value_range = value_range

    def range_of(self, dtype) -> tuple[float, float]:
        """The range the images are clipped to: ``value_range``, else their dtype's."""
        return self.value_range if self.value_range is not None else dtype_range(
            keras.backend.standardize_dtype(dtype))

    def transform_images(self, images, transformation):
        dtype = images.dtype
        low, high = self.range_of(dtype)
        x = ops.clip(self.adjust(ops.cast(images, "float32"), transformation, low, high), low, high)
        if "int" in keras.backend.standardize_dtype(dtype):
            x = ops.round(x)
        return ops.cast(x, dtype)

    def adjust(self, x, transformation, low: float, high: float):
        raise NotImplementedError

    def uniform_per_sample(self, images, limit: float):
        """One value per sample, uniform in [-limit, limit], shaped to broadcast over the images."""
        draws = keras.random.uniform((ops.shape(images)[0],), -limit, limit, seed=self.seed_generator)
        return self.per_sample(draws)

    def get_config(self):
        return {**super().get_config(),
                "value_range": None if self.value_range is None else list(self.value_range)}


def _check_factor(factor: float, below_one: bool = False) -> float:
    if factor < 0 or (below_one and factor >= 1):
        raise ValueError(f"factor must be in [0, {'1)' if below_one else 'inf)'}, got {factor}.")
    return float(factor)


@keras.saving.register_keras_serializable(package="keras_unetpp")
class RandomBrightness(_IntensityLayer):
    """Adds ``d * (high - low)`` with ``d`` uniform in [-factor, factor], per
    sample, then clips to ``value_range``.

    Args:
        factor: Largest shift as a fraction of the value range.
        value_range: The images' (low, high) range, e.g. (0, 1) or (0, 255); None: their dtype's.
        seed: Seed for reproducibility.
        **kwargs: Standard layer arguments.

    Returns:
        Same structure as the input; inactive when ``training=False``.

    Examples:
        >>> import numpy as np
        >>> tuple(RandomBrightness(0.2, seed=0)(np.full((1, 2, 2, 1), 0.5, "float32")).shape)
        (1, 2, 2, 1)
    """

    def __init__(self, factor: float, value_range=None, seed: int | None = None, **kwargs):
        super().__init__(value_range, seed, **kwargs)
        self.factor = _check_factor(factor)

    def get_random_transformation(self, images):
        return self.uniform_per_sample(images, self.factor)

    def adjust(self, x, transformation, low, high):
        return x + transformation * (high - low)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="keras_unetpp")
class RandomContrast(_IntensityLayer):
    """Scales each image around its per-channel mean by ``1 + d``, ``d``
    uniform in [-factor, factor], then clips to ``value_range``.

    Args:
        factor: Largest relative contrast change, in [0, 1).
        value_range: The images' (low, high) range; None: their dtype's.
        seed: Seed for reproducibility.
        **kwargs: Standard layer arguments.

    Returns:
        Same structure as the input; inactive when ``training=False``.

    Examples:
        >>> import numpy as np
        >>> tuple(RandomContrast(0.3, seed=0)(np.zeros((1, 2, 2, 3), "float32")).shape)
        (1, 2, 2, 3)
    """

    def __init__(self, factor: float, value_range=None, seed: int | None = None, **kwargs):
        super().__init__(value_range, seed, **kwargs)
        self.factor = _check_factor(factor, below_one=True)

    def get_random_transformation(self, images):
        return 1.0 + self.uniform_per_sample(images, self.factor)

    def adjust(self, x, transformation, low, high):
        mean = ops.mean(x, axis=(1, 2), keepdims=True)  # per image and channel
        return mean + (x - mean) * transformation

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="keras_unetpp")
class RandomGaussianNoise(_IntensityLayer):
    """Adds Gaussian noise of standard deviation ``stddev * (high - low)`` to
    the images (not the masks), then clips to ``value_range``.

    Args:
        stddev: Noise standard deviation as a fraction of the value range.
        value_range: The images' (low, high) range; None: their dtype's.
        seed: Seed for reproducibility.
        **kwargs: Standard layer arguments.

    Returns:
        Same structure as the input; inactive when ``training=False``.

    Examples:
        >>> import numpy as np
        >>> tuple(RandomGaussianNoise(0.05, seed=0)(np.zeros((1, 2, 2, 1), "float32")).shape)
        (1, 2, 2, 1)
    """

    def __init__(self, stddev: float = 0.03, value_range=None, seed: int | None = None, **kwargs):
        super().__init__(value_range, seed, **kwargs)
        if stddev < 0:
            raise ValueError(f"stddev must be >= 0, got {stddev}.")
        self.stddev = float(stddev)

    def get_random_transformation(self, images):
        return self.stddev * keras.random.normal(ops.shape(images), seed=self.seed_generator)

    def adjust(self, x, transformation, low, high):
        return x + transformation * (high - low)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}
