"""Ready-made augmentation pipelines for the two motivating tasks."""

from __future__ import annotations

import keras

from keras_unetpp.layers.base import IMAGES, MASKS, ImageMaskLayer
from keras_unetpp.layers.dihedral import RandomDihedral, RandomFlip
from keras_unetpp.layers.intensity import RandomBrightness, RandomContrast, RandomGaussianNoise
from keras_unetpp.layers.median_blur import MedianBlur
from keras_unetpp.layers.opacity import RandomOpacity
from keras_unetpp.layers.rotation import RandomRotation


@keras.saving.register_keras_serializable(package="keras_unetpp")
class AugmentationPipeline(ImageMaskLayer):
    """Applies layers in order to images and masks together.

    Takes what its layers take: an image tensor, ``(images, masks)`` (also as
    two arguments, so ``ds.map(pipeline)`` works on a data set of pairs) or a
    ``{"images", "segmentation_masks"}`` dict; batched or not. Usable in
    ``tf.data`` (TensorFlow backend), in a ``BatchStream`` and inside a model
    (any backend).

    Keras' own image augmentation layers (``keras.layers.RandomZoom``,
    ``RandomTranslation``, ``RandomElasticTransform``, ``RandomFlip``, ...) compose with
    ours: each gets a fresh ``{"images", "segmentation_masks"}`` dict (Keras' layers write
    their results back into the dict they are given, never into the caller's here) and
    moves the mask with the image, as it does on its own.

    Args:
        layers: [`ImageMaskLayer`][keras_unetpp.layers.ImageMaskLayer] instances and Keras
            image preprocessing layers (those that transform segmentation masks).
        **kwargs: Standard layer arguments.

    Returns:
        The same structure as its input.

    Examples:
        >>> import numpy as np
        >>> pipe = AugmentationPipeline([MedianBlur(3), RandomDihedral(seed=0)])
        >>> image, mask = pipe(np.zeros((8, 8, 3), "float32"), np.zeros((8, 8, 1), "uint8"))
        >>> tuple(image.shape), tuple(mask.shape)
        ((8, 8, 3), (8, 8, 1))
    """

    def __init__(self, layers, **kwargs):
        super().__init__(**kwargs)
        for layer in layers:
            if not (isinstance(layer, ImageMaskLayer) or _moves_masks(layer)):
                raise ValueError(
                    f"AugmentationPipeline takes keras_unetpp image/mask layers and Keras image augmentation "
                    f"layers that move segmentation masks; {type(layer).__name__} does neither (a layer that "
                    f"would treat a mask as an image would corrupt it)."
                )
        self.layers = list(layers)

    def transform(self, images, masks, training):
        # Each layer is called the ordinary way (Keras builds and tracks it) with this pipeline's
        # decision; Keras would also leave that value in the shared call context for the layers
        # that follow the pipeline in a model, so the context's value is put back afterwards.
        context = self._get_call_context()
        outer = context.get_value("training")
        for layer in self.layers:
            if masks is None:
                images = layer(images, training=training)
            elif isinstance(layer, ImageMaskLayer):
                images, masks = layer(images, masks, training=training)
            else:  # a Keras image layer: a dict of our own, so its write-back touches nobody else's
                out = layer({IMAGES: images, MASKS: masks}, training=training)
                images, masks = out[IMAGES], out[MASKS]
        context.set_value("training", outer)
        return images, masks

    def get_config(self):
        return {**super().get_config(), "layers": [keras.layers.serialize(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layers"] = [keras.layers.deserialize(layer) for layer in config["layers"]]
        return cls(**config)


def _moves_masks(layer) -> bool:
    """True for a Keras image preprocessing layer, which transforms ``segmentation_masks`` with
    the image (it defines ``transform_segmentation_masks``, as Keras' base class of them does)."""
    return isinstance(layer, keras.layers.Layer) and callable(getattr(layer, "transform_segmentation_masks", None))


def _seed(seed, offset):
    return None if seed is None else seed + offset


def aerial_augmentation(
    seed: int | None = None, median_kernel: int = 5, color_jitter: float = 0.0
) -> AugmentationPipeline:
    """The aerial buildings pipeline: median blur, then a random symmetry of
    the square (90-degree rotations and flips), and optionally colour jitter.

    Args:
        seed: Seed for reproducibility.
        median_kernel: Median blur window (odd); 0 or 1 disables it (e.g. when
            the images are blurred once beforehand, as the aerial example does).
        color_jitter: Random contrast of +-``color_jitter`` and brightness of
            +-``color_jitter / 2`` per image, for scenes that differ in light and
            haze (0: none; measured no gain on the Dubai tiles, docs/research-log.md).

    Returns:
        An [`AugmentationPipeline`][keras_unetpp.layers.AugmentationPipeline]. The median blur stays active at
            inference (it is preprocessing); the symmetries do not.

    Examples:
        >>> import numpy as np
        >>> aug = aerial_augmentation(seed=0)
        >>> tuple(aug(np.zeros((2, 16, 16, 3), "float32"), np.zeros((2, 16, 16, 1)))[0].shape)
        (2, 16, 16, 3)
    """
    layers = [MedianBlur(median_kernel)] if median_kernel and median_kernel > 1 else []
    layers.append(RandomDihedral(seed=seed))
    if color_jitter:
        layers += [RandomBrightness(color_jitter / 2, seed=_seed(seed, 1)),
                   RandomContrast(color_jitter, seed=_seed(seed, 2))]
    return AugmentationPipeline(layers, name="aerial_augmentation")


def xray_augmentation(
    seed: int | None = None,
    max_degrees: float = 10.0,
    brightness: float = 0.1,
    contrast: float = 0.2,
    noise: float = 0.02,
    value_range=None,
    flip: bool = True,
    fill_mode: str = "nearest",
    opacity: float = 0.0,
) -> AugmentationPipeline:
    """The chest X-ray pipeline: small rotations, left-right flips,
    brightness, contrast and Gaussian noise (and, when asked, opacities). A transform whose amount is 0
    (or ``flip=False``) is left out, so each one can be measured alone.

    Args:
        seed: Seed for reproducibility.
        max_degrees: Largest rotation angle (0: no rotation).
        brightness: Brightness factor (fraction of the value range; 0: none).
        contrast: Contrast factor (0: none).
        noise: Noise standard deviation (fraction of the value range; 0: none).
        value_range: The images' value range (None: their dtype's, 0..255 for uint8, [0, 1] for floats).
        flip: Random left-right flips.
        fill_mode: How rotation fills the corners it uncovers: ``"nearest"``
            (default: repeats the film's edge, no black wedges that real films
            do not have), ``"reflect"``, ``"constant"`` (black) or ``"wrap"``.
        opacity: Largest peak of the white patches
            [`RandomOpacity`][keras_unetpp.layers.RandomOpacity] lays over the
            lungs (0, the default: none), applied before brightness and contrast.

    Returns:
        An [`AugmentationPipeline`][keras_unetpp.layers.AugmentationPipeline], inactive at inference.

    Raises:
        ValueError: If every transform is switched off.

    Examples:
        >>> import numpy as np
        >>> aug = xray_augmentation(seed=0)
        >>> out = aug({"images": np.zeros((16, 16, 1), "float32"),
        ...            "segmentation_masks": np.zeros((16, 16, 1), "uint8")})
        >>> tuple(out["images"].shape)
        (16, 16, 1)
        >>> [type(layer).__name__ for layer in xray_augmentation(max_degrees=0, brightness=0, contrast=0).layers]
        ['RandomFlip', 'RandomGaussianNoise']
    """
    layers = []
    if max_degrees:
        layers.append(RandomRotation(max_degrees, fill_mode=fill_mode, seed=_seed(seed, 0)))
    if flip:
        layers.append(RandomFlip("horizontal", seed=_seed(seed, 1)))
    if opacity:
        layers.append(RandomOpacity(opacity, value_range=value_range, seed=_seed(seed, 5)))
    if brightness:
        layers.append(RandomBrightness(brightness, value_range, seed=_seed(seed, 2)))
    if contrast:
        layers.append(RandomContrast(contrast, value_range, seed=_seed(seed, 3)))
    if noise:
        layers.append(RandomGaussianNoise(noise, value_range, seed=_seed(seed, 4)))
    if not layers:
        raise ValueError("xray_augmentation with every transform switched off: pass no augmentation instead.")
    return AugmentationPipeline(layers, name="xray_augmentation")
