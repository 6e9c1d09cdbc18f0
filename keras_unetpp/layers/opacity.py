"""Bright, smooth patches over the foreground: dense opacities on chest films.

Films with consolidation or ARDS show the lung as white as the soft tissue
around it, while the annotator still draws the lung's outline through the
opacity. A model trained on clear films stops where the lung turns white. No
Keras layer draws such patches, and to land them on the lungs the layer must
see the mask, which Keras' image layers hand to their transforms only after
drawing; hence our own, on the shared `RandomImageMaskLayer`.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_unetpp.layers.intensity import _IntensityLayer


def opacity_map(height: int, width: int, centers, sigmas, strengths):
    """Opacity in [0, 1] of Gaussian patches, combined like layers of fog.

    ``t(y, x) = 1 - prod_k (1 - s_k * exp(-((y - cy_k)^2 + (x - cx_k)^2) / (2 sigma_k^2)))``.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        centers: (N, K, 2) patch centres as (row, column) in pixels.
        sigmas: (N, K) patch radii (Gaussian standard deviations) in pixels, > 0.
        strengths: (N, K) peak opacities in [0, 1].

    Returns:
        An (N, height, width, 1) float32 tensor.

    Examples:
        >>> import numpy as np
        >>> t = opacity_map(3, 3, np.array([[[1.0, 1.0]]]), np.array([[1.0]]), np.array([[0.5]]))
        >>> round(float(t[0, 1, 1, 0]), 3), round(float(t[0, 0, 1, 0]), 3)
        (0.5, 0.303)
    """
    centers = ops.cast(centers, "float32")
    rows = ops.reshape(ops.cast(ops.arange(height), "float32"), (1, 1, -1, 1))
    cols = ops.reshape(ops.cast(ops.arange(width), "float32"), (1, 1, 1, -1))
    dy = rows - centers[:, :, 0, None, None]
    dx = cols - centers[:, :, 1, None, None]
    sigmas = ops.cast(sigmas, "float32")[:, :, None, None]
    patches = ops.cast(strengths, "float32")[:, :, None, None] * ops.exp(-(dy * dy + dx * dx) / (2.0 * sigmas * sigmas))
    clear = ops.prod(1.0 - patches, axis=1)  # (N, H, W): what every patch lets through
    return (1.0 - clear)[..., None]


@keras.saving.register_keras_serializable(package="keras_unetpp")
class RandomOpacity(_IntensityLayer):
    """Whitens smooth patches of the image towards the top of ``value_range``,
    like the dense opacities (consolidation, ARDS) that make a lung as white
    as the tissue around it; the mask is left as it is, so the model learns
    to follow the outline through the opacity.

    With probability ``probability`` an image gets ``patches`` Gaussian
    patches, each of radius uniform in ``radius`` (fraction of the shorter
    side) and peak opacity uniform in [``factor`` / 2, ``factor``]; the
    combined opacity map ``t`` (see `opacity_map`) gives
    ``x + (high - x) * t``. Patch centres are drawn from the mask's
    foreground pixels (mask > 0.5) when masks are given and not empty, else
    uniformly over the image.

    Args:
        factor: Largest peak opacity, in (0, 1]: 1 turns a patch centre white.
        patches: Patches per augmented image.
        radius: (smallest, largest) patch radius as a fraction of the shorter side.
        probability: Chance that an image is augmented at all.
        value_range: The images' (low, high) range; None: their dtype's.
        seed: Seed for reproducibility.
        **kwargs: Standard layer arguments.

    Returns:
        Same structure as the input; inactive when ``training=False``.

    Examples:
        >>> import numpy as np
        >>> films = np.full((2, 32, 32, 1), 0.2, "float32")
        >>> lungs = np.zeros((2, 32, 32, 1), "uint8"); lungs[:, 8:24, 8:24] = 1
        >>> out = RandomOpacity(0.8, probability=1.0, seed=0)({"images": films, "segmentation_masks": lungs})
        >>> images, masks = (np.asarray(out[k]) for k in ("images", "segmentation_masks"))
        >>> bool((images >= films).all()), bool((images > films).any()), bool((masks == lungs).all())
        (True, True, True)
    """

    def __init__(self, factor: float = 0.6, patches: int = 2, radius=(0.05, 0.2), probability: float = 0.5,
                 value_range=None, seed: int | None = None, **kwargs):
        super().__init__(value_range, seed, **kwargs)
        if not 0 < factor <= 1:
            raise ValueError(f"factor must be in (0, 1], got {factor}.")
        if int(patches) != patches or patches < 1:
            raise ValueError(f"patches must be a positive integer, got {patches}.")
        smallest, largest = (float(r) for r in radius)
        if not 0 < smallest <= largest:
            raise ValueError(f"radius must be (smallest, largest) with 0 < smallest <= largest, got {radius}.")
        if not 0 <= probability <= 1:
            raise ValueError(f"probability must be in [0, 1], got {probability}.")
        self.factor, self.patches = float(factor), int(patches)
        self.radius, self.probability = (smallest, largest), float(probability)

    def transform(self, images, masks, training):
        if not training:
            return images, masks
        return self.transform_images(images, self.draw_opacity(images, masks)), masks

    def get_random_transformation(self, images):
        return self.draw_opacity(images, None)

    def draw_opacity(self, images, masks):
        """Draws an (N, H, W, 1) opacity map, patch centres on the masks' foreground where given."""
        shape = ops.shape(images)
        n, height, width = shape[0], shape[1], shape[2]
        if masks is None:
            logits = ops.zeros((n, height * width))
        else:
            foreground = ops.cast(ops.max(ops.cast(masks, "float32"), axis=-1) > 0.5, "float32")
            logits = ops.log(ops.reshape(foreground, (n, height * width)) + 1e-6)  # empty mask: uniform
        flat = ops.cast(keras.random.categorical(logits, self.patches, seed=self.seed_generator), "int32")
        centers = ops.cast(ops.stack([flat // width, flat % width], axis=-1), "float32")
        shorter = ops.cast(ops.minimum(height, width), "float32")
        sigmas = keras.random.uniform((n, self.patches), *self.radius, seed=self.seed_generator) * shorter
        strengths = keras.random.uniform((n, self.patches), self.factor / 2, self.factor, seed=self.seed_generator)
        chosen = keras.random.uniform((n, 1), seed=self.seed_generator) < self.probability
        return opacity_map(height, width, centers, sigmas, strengths * ops.cast(chosen, "float32"))

    def adjust(self, x, transformation, low, high):
        return x + (high - x) * transformation

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "patches": self.patches,
                "radius": list(self.radius), "probability": self.probability}
