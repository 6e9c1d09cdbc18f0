"""The small shared base of our layers: one code path for tensors, (image, mask)
pairs and ``{"images", "segmentation_masks"}`` dicts, batched or not.

Why not Keras' own base (``BaseImagePreprocessingLayer``)? It is not public
API (it may change without notice), and the Keras layers built on it write
their results back into the caller's dict. Ours return a new dict and never
touch the input.
"""

from __future__ import annotations

import keras
from keras import ops

IMAGES, MASKS = "images", "segmentation_masks"


def split_inputs(inputs, masks=None):
    """Returns ``(images, masks, pack)``; ``pack(images, masks)`` rebuilds the
    caller's structure (a new dict / tuple, never the caller's object)."""
    if isinstance(inputs, dict):
        if IMAGES not in inputs:
            raise ValueError(f"A dict input needs an {IMAGES!r} key, got keys {sorted(inputs)}.")
        extra = {k: v for k, v in inputs.items() if k not in (IMAGES, MASKS)}

        def pack_dict(images, new_masks):
            out = {**extra, IMAGES: images}
            if new_masks is not None:
                out[MASKS] = new_masks
            return out

        return inputs[IMAGES], inputs.get(MASKS), pack_dict
    if isinstance(inputs, (tuple, list)):
        if len(inputs) != 2:
            raise ValueError(f"A tuple input must be (images, masks), got {len(inputs)} items.")
        return inputs[0], inputs[1], lambda images, new_masks: (images, new_masks)
    if masks is not None:
        return inputs, masks, lambda images, new_masks: (images, new_masks)
    return inputs, None, lambda images, new_masks: images


class ImageMaskLayer(keras.layers.Layer):
    """Base of layers that transform an image and, where given, its mask together.

    Subclasses implement ``transform(images, masks, training)`` on batched,
    channels-last tensors (``masks`` may be ``None``). Accepted inputs:
    an image tensor; ``(images, masks)`` (also as two arguments, so
    ``ds.map(layer)`` works on pair data sets); or a dict with ``"images"`` and
    optionally ``"segmentation_masks"`` (other keys pass through). Unbatched
    (H, W, C) inputs are accepted too.

    Args:
        **kwargs: Standard layer arguments.

    Returns:
        Called, the same structure as its input (a new dict or tuple).

    Examples:
        >>> class Invert(ImageMaskLayer):
        ...     def transform(self, images, masks, training):
        ...         return 1.0 - images, masks
        >>> out = Invert()({"images": np.zeros((4, 4, 1), "float32"), "segmentation_masks": np.ones((4, 4, 1))})
        >>> float(out["images"][0, 0, 0]), float(out["segmentation_masks"][0, 0, 0])
        (1.0, 1.0)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def call(self, inputs, masks=None, training=None):
        if training is None:
            # Called on its own (``layer(x)``, ``ds.map(layer)`` in tf.data): augmenting is what was
            # asked for. Inside a model called without ``training`` (``model(x)``): inference, as for
            # Dropout and BatchNormalization. A default of True would also be handed on by Keras to
            # every later layer of the same call and put batch norm into training mode.
            training = self._get_call_context().entry_layer is self
        images, masks, pack = split_inputs(inputs, masks)
        images = ops.convert_to_tensor(images)
        masks = None if masks is None else ops.convert_to_tensor(masks)
        rank = len(images.shape)
        if rank not in (3, 4):
            raise ValueError(
                f"{type(self).__name__} expects images (H, W, C) or (N, H, W, C), got shape {images.shape}."
            )
        if masks is not None and len(masks.shape) != rank:
            raise ValueError(
                f"{type(self).__name__}: masks must have the images' rank (with a channel axis), "
                f"got images {images.shape} and masks {masks.shape}."
            )
        if masks is not None and any(a is not None and b is not None and a != b
                                     for a, b in zip(images.shape[:-1], masks.shape[:-1])):
            raise ValueError(
                f"{type(self).__name__}: images and masks must have the same batch size, height and width "
                f"(a mask of another size would be moved about another centre), got images {tuple(images.shape)} "
                f"and masks {tuple(masks.shape)}."
            )
        if rank == 3:
            images = images[None]
            masks = None if masks is None else masks[None]
        images, masks = self.transform(images, masks, training)
        if rank == 3:
            images = images[0]
            masks = None if masks is None else masks[0]
        return pack(images, masks)

    def transform(self, images, masks, training):
        raise NotImplementedError

    def compute_output_spec(self, inputs, masks=None, training=None):
        structure = (inputs, masks) if masks is not None else inputs
        return keras.tree.map_structure(lambda t: keras.KerasTensor(t.shape, t.dtype), structure)


class RandomImageMaskLayer(ImageMaskLayer):
    """An [`ImageMaskLayer`][keras_unetpp.layers.ImageMaskLayer] drawing random parameters per sample, seeded,
    and doing nothing when ``training`` is false (inference).

    Structured like Keras core's image preprocessing layers: a subclass draws
    its random transformation once per batch in
    ``get_random_transformation(images)`` and applies that same draw in two
    small methods, ``transform_images(images, transformation)`` and
    ``transform_segmentation_masks(masks, transformation)`` (default: masks
    unchanged, for intensity layers). Draw with ``self.seed_generator``.

    Args:
        seed: Seed for reproducibility.
        **kwargs: Standard layer arguments.

    Returns:
        Called, the same structure as its input.

    Examples:
        >>> import keras
        >>> class Shift(RandomImageMaskLayer):
        ...     def get_random_transformation(self, images):
        ...         return keras.random.uniform((), seed=self.seed_generator)
        ...     def transform_images(self, images, transformation):
        ...         return images + transformation
        >>> x = np.zeros((1, 2, 2, 1), "float32")
        >>> float(Shift(seed=1)(x, training=False)[0, 0, 0, 0])
        0.0
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def transform(self, images, masks, training):
        if not training:
            return images, masks
        transformation = self.get_random_transformation(images)
        images = self.transform_images(images, transformation)
        if masks is not None:
            masks = self.transform_segmentation_masks(masks, transformation)
        return images, masks

    def get_random_transformation(self, images):
        """Draws the parameters for a batch of (N, H, W, C) images."""
        raise NotImplementedError

    def transform_images(self, images, transformation):
        """Applies a drawn transformation to the images."""
        raise NotImplementedError

    def transform_segmentation_masks(self, masks, transformation):
        """Applies the same transformation to the masks (default: unchanged)."""
        return masks

    def per_sample(self, values, rank: int = 4):
        """Reshapes a (N,) draw to broadcast over (N, H, W, C)."""
        return ops.reshape(values, (-1,) + (1,) * (rank - 1))

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
