"""Lossless geometric augmentation: the 8 symmetries of the square."""

from __future__ import annotations

import keras
from keras import ops

from keras_unetpp.layers.base import RandomImageMaskLayer

#: The 8 symmetries of the square as ``(transpose, flip_up_down, flip_left_right)``
#: triples, applied in that order by [`apply_dihedral()`][keras_unetpp.layers.apply_dihedral]; the first is the identity.
DIHEDRAL_TRANSFORMS = tuple((t, v, h) for t in (False, True) for v in (False, True) for h in (False, True))


def transpose_hw(x):
    """Swaps height and width of (N, H, W, C)."""
    return ops.transpose(x, (0, 2, 1, 3))


def _where(cond, a, b):
    if isinstance(cond, bool):
        return a if cond else b
    return ops.where(ops.reshape(cond, (-1, 1, 1, 1)), a, b)


def apply_dihedral(x, transpose, flip_up_down, flip_left_right):
    """Applies, per sample, an optional H/W transpose, then an up-down flip
    (rows reversed, axis 1), then a left-right flip (columns reversed, axis 2).
    Every element of the dihedral group D4 is one such triple.

    The one implementation of the 8 symmetries: the [`RandomDihedral`][keras_unetpp.layers.RandomDihedral]
    augmentation and the test-time augmentation of
    [`predict_tiled()`][keras_unetpp.inference.predict_tiled] both use it.

    Args:
        x: (N, H, W, C) tensor or array (square if any ``transpose`` is true).
        transpose: Boolean tensor of shape (N,) or a Python bool.
        flip_up_down: Likewise.
        flip_left_right: Likewise.

    Returns:
        The transformed tensor; values are moved, never interpolated.

    Examples:
        >>> import numpy as np
        >>> x = np.arange(4).reshape(1, 2, 2, 1)
        >>> keras.ops.convert_to_numpy(apply_dihedral(x, False, True, False))[0, :, :, 0].tolist()
        [[2, 3], [0, 1]]
    """
    if not (isinstance(transpose, bool) and not transpose):
        x = _where(transpose, transpose_hw(x), x)
    x = _where(flip_up_down, ops.flip(x, axis=1), x)
    return _where(flip_left_right, ops.flip(x, axis=2), x)


def invert_dihedral(x, transpose, flip_up_down, flip_left_right):
    """Undoes [`apply_dihedral()`][keras_unetpp.layers.apply_dihedral] with the same arguments (flips first,
    then the transpose), e.g. to map a prediction on a transformed image back.

    Args:
        x: (N, H, W, C) tensor or array.
        transpose: As given to [`apply_dihedral()`][keras_unetpp.layers.apply_dihedral].
        flip_up_down: Likewise.
        flip_left_right: Likewise.

    Returns:
        The tensor in the original orientation.

    Examples:
        >>> import numpy as np
        >>> x = np.arange(6).reshape(1, 2, 3, 1)
        >>> y = invert_dihedral(apply_dihedral(x, True, True, False), True, True, False)
        >>> bool(np.array_equal(keras.ops.convert_to_numpy(y), x))
        True
    """
    x = _where(flip_left_right, ops.flip(x, axis=2), x)
    x = _where(flip_up_down, ops.flip(x, axis=1), x)
    if not (isinstance(transpose, bool) and not transpose):
        x = _where(transpose, transpose_hw(x), x)
    return x


class _Symmetries(RandomImageMaskLayer):
    """Draws per sample a transpose and flips among the enabled ones and
    applies them with [`apply_dihedral()`][keras_unetpp.layers.apply_dihedral] to images and masks alike."""

    def _symmetries_enabled(self) -> tuple[bool, bool, bool]:
        raise NotImplementedError

    def _coin(self, batch, enabled):
        if not enabled:
            return False
        return keras.random.uniform((batch,), seed=self.seed_generator) < 0.5

    def get_random_transformation(self, images):
        rotate, up_down, left_right = self._symmetries_enabled()
        height, width = images.shape[1], images.shape[2]
        if rotate and (height is None or width is None):
            raise ValueError(
                f"{type(self).__name__}(rotate=True) needs a known image size to rotate by 90 degrees, "
                f"got shape {images.shape}. Crop to a fixed square size first, or set rotate=False."
            )
        rotate = rotate and height == width
        batch = ops.shape(images)[0]
        return self._coin(batch, rotate), self._coin(batch, up_down), self._coin(batch, left_right)

    def transform_images(self, images, transformation):
        return apply_dihedral(images, *transformation)

    def transform_segmentation_masks(self, masks, transformation):
        return apply_dihedral(masks, *transformation)


@keras.saving.register_keras_serializable(package="keras_unetpp")
class RandomDihedral(_Symmetries):
    """A random element of the dihedral group D4 per sample: 90-degree
    rotations and flips, all 8 symmetries of the square, applied identically to
    image and mask. Lossless: pixels are moved, never interpolated, so masks
    keep exactly their values.

    Rotations by 90 degrees need square images (they swap height and width).
    With ``rotate=False``, or on images that are not square, only the 4
    shape-preserving elements (identity, the two flips, 180-degree rotation)
    are drawn; with an unknown (dynamic) size, pass ``rotate=False`` or crop
    to a fixed square size first.

    Args:
        rotate: Include the transpose, and so the 90/270-degree rotations and
            the diagonal flips.
        flip_vertical: Include up-down flips.
        flip_horizontal: Include left-right flips.
        seed: Seed for reproducibility.
        **kwargs: Standard layer arguments.

    Returns:
        Same structure as the input; inactive when ``training=False``.

    Raises:
        ValueError: If ``rotate`` is true and the image size is unknown.

    Examples:
        >>> import numpy as np
        >>> layer = RandomDihedral(seed=0)
        >>> tuple(layer(np.zeros((2, 8, 8, 3), "float32")).shape)
        (2, 8, 8, 3)
    """

    def __init__(self, rotate: bool = True, flip_vertical: bool = True, flip_horizontal: bool = True,
                 seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rotate = bool(rotate)
        self.flip_vertical = bool(flip_vertical)
        self.flip_horizontal = bool(flip_horizontal)

    def _symmetries_enabled(self):
        return self.rotate, self.flip_vertical, self.flip_horizontal

    def get_config(self):
        return {**super().get_config(), "rotate": self.rotate, "flip_vertical": self.flip_vertical,
                "flip_horizontal": self.flip_horizontal}


@keras.saving.register_keras_serializable(package="keras_unetpp")
class RandomFlip(_Symmetries):
    """Random flips, the same for image and mask, per sample.

    Why not ``keras.layers.RandomFlip``: it writes its result back into the
    caller's input dict, and its output for dict inputs depends on the Keras
    version; this one is exact, returns a new structure, and shares the code
    of [`RandomDihedral`][keras_unetpp.layers.RandomDihedral] (the same draws, without rotations).

    Args:
        mode: ``"horizontal"`` (left-right), ``"vertical"`` (up-down) or
            ``"horizontal_and_vertical"``.
        seed: Seed for reproducibility.
        **kwargs: Standard layer arguments.

    Returns:
        Same structure as the input; inactive when ``training=False``.

    Examples:
        >>> import numpy as np
        >>> tuple(RandomFlip("horizontal", seed=1)(np.zeros((4, 4, 1))).shape)
        (4, 4, 1)
    """

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None, **kwargs):
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}.")
        super().__init__(seed=seed, **kwargs)
        self.mode = mode

    def _symmetries_enabled(self):
        return False, "vertical" in self.mode, self.mode.startswith("horizontal")

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
