"""Arbitrary-angle rotation of image and mask together."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_unetpp.layers.base import RandomImageMaskLayer


def rotation_transforms(angles, height, width):
    """Projective transforms (N, 8) rotating (N,) ``angles`` (radians,
    counter-clockwise as displayed, like ``np.rot90``) about the image centre, in the form of
    ``keras.ops.image.affine_transform`` (output pixel -> input pixel)."""
    cx = (ops.cast(width, "float32") - 1.0) / 2.0
    cy = (ops.cast(height, "float32") - 1.0) / 2.0
    cos, sin = ops.cos(angles), ops.sin(angles)
    zeros = ops.zeros_like(angles)
    return ops.stack(
        [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zeros, zeros], axis=1
    )


@keras.saving.register_keras_serializable(package="keras_unetpp")
class RandomRotation(RandomImageMaskLayer):
    """Rotates image and mask by the same random angle (per sample).

    Images are interpolated (bilinear by default); masks use nearest-neighbour
    sampling in float32 and are cast back to their dtype, so a mask keeps
    exactly its set of values. Where the rotation uncovers the border, image and
    mask are filled the same way (``fill_mode``: a reflected object is labelled in the
    reflected mask too); with ``fill_mode="constant"`` the mask gets ``mask_fill_value``.

    Why not ``keras.layers.RandomRotation``: it transforms masks with the
    image's interpolation settings and returned the value 2 for a uint8 0/1
    mask in our checks; it also writes back into the caller's dict.

    Args:
        max_degrees: Angles are drawn uniformly from [-max_degrees, max_degrees].
        interpolation: ``"bilinear"`` or ``"nearest"`` for the images.
        fill_mode: How images are filled outside the input:
            ``"reflect"``, ``"constant"``, ``"nearest"`` or ``"wrap"``.
        fill_value: Image fill value for ``fill_mode="constant"``.
        mask_fill_value: Mask value where the rotation leaves the input, with ``fill_mode="constant"``.
        seed: Seed for reproducibility.
        **kwargs: Standard layer arguments.

    Returns:
        Same structure as the input; inactive when ``training=False``.

    Raises:
        ValueError: For a negative angle or an unknown mode.

    Examples:
        >>> import numpy as np
        >>> tuple(RandomRotation(15, seed=0)(np.zeros((2, 16, 16, 1), "float32")).shape)
        (2, 16, 16, 1)
    """

    def __init__(self, max_degrees: float = 15.0, interpolation: str = "bilinear", fill_mode: str = "reflect",
                 fill_value: float = 0.0, mask_fill_value: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if max_degrees < 0:
            raise ValueError(f"max_degrees must be >= 0, got {max_degrees}.")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}.")
        if fill_mode not in ("reflect", "constant", "nearest", "wrap"):
            raise ValueError(f"Unknown fill_mode {fill_mode!r}.")
        self.max_degrees = float(max_degrees)
        self.interpolation = interpolation
        self.fill_mode = fill_mode
        self.fill_value = float(fill_value)
        self.mask_fill_value = float(mask_fill_value)

    def get_random_transformation(self, images):
        shape = ops.shape(images)
        limit = math.radians(self.max_degrees)
        angles = keras.random.uniform((shape[0],), -limit, limit, seed=self.seed_generator)
        return rotation_transforms(angles, shape[1], shape[2])

    def transform_images(self, images, transformation):
        return self._rotate(images, transformation, self.interpolation, self.fill_mode, self.fill_value)

    def transform_segmentation_masks(self, masks, transformation):
        # the same fill as the image: a building reflected into a corner of the image is reflected into the
        # mask too (labelled as what it shows); only fill_mode="constant" gives the mask its own fill value
        return self._rotate(masks, transformation, "nearest", self.fill_mode, self.mask_fill_value)

    @staticmethod
    def _rotate(x, transforms, interpolation, fill_mode, fill_value):
        dtype = x.dtype
        out = ops.image.affine_transform(
            ops.cast(x, "float32"), transforms, interpolation=interpolation,
            fill_mode=fill_mode, fill_value=fill_value, data_format="channels_last",
        )
        if keras.backend.standardize_dtype(dtype) != "float32":
            if "int" in keras.backend.standardize_dtype(dtype) and interpolation != "nearest":
                out = ops.round(out)
            out = ops.cast(out, dtype)
        return out

    def get_config(self):
        return {**super().get_config(), "max_degrees": self.max_degrees, "interpolation": self.interpolation,
                "fill_mode": self.fill_mode, "fill_value": self.fill_value, "mask_fill_value": self.mask_fill_value}
