"""Splits and ``tf.data`` pipelines: random crops of images of any size,
augmentation, batching.

Splits are by ``Sample.group`` (tile, case), never by crop, so no image
contributes to both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from keras_unetpp.datasets.io import Sample


def split_by_group(samples: Sequence[Sample], val_groups: Sequence[str]) -> tuple[list[Sample], list[Sample]]:
    """Puts the samples of ``val_groups`` in validation, the rest in training.

    Raises:
        ValueError: If a named group does not exist or a side is empty.
    """
    groups = {s.group for s in samples}
    unknown = set(val_groups) - groups
    if unknown:
        raise ValueError(f"Unknown validation groups {sorted(unknown)}; groups are {sorted(groups)}.")
    train = [s for s in samples if s.group not in set(val_groups)]
    val = [s for s in samples if s.group in set(val_groups)]
    if not train or not val:
        raise ValueError("The split leaves the training or the validation side empty.")
    return train, val


def split_fraction(samples: Sequence[Sample], val_fraction: float = 0.2, seed: int = 0):
    """Random split by group with about ``val_fraction`` of the groups in validation.

    Returns:
        ``(train, val)`` sample lists.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    groups = sorted({s.group for s in samples})
    rng = np.random.default_rng(seed)
    count = min(len(groups) - 1, max(1, round(val_fraction * len(groups))))
    val_groups = list(rng.choice(groups, count, replace=False))
    return split_by_group(samples, val_groups)


def _pad_to(image: np.ndarray, size: int) -> np.ndarray:
    pad_h, pad_w = max(0, size - image.shape[0]), max(0, size - image.shape[1])
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect" if min(image.shape[:2]) > 1 else "edge")
    return image


def random_crop(sample: Sample, size: int, rng: np.random.Generator):
    """A random ``size`` x ``size`` crop of image and mask (reflect-padded if smaller)."""
    image, mask = _pad_to(sample.image, size), _pad_to(sample.mask, size)
    y = rng.integers(0, image.shape[0] - size + 1)
    x = rng.integers(0, image.shape[1] - size + 1)
    return image[y : y + size, x : x + size], mask[y : y + size, x : x + size]


def fixed_crops(samples: Sequence[Sample], size: int, per_image: int, seed: int = 0):
    """A reproducible array of random crops, e.g. for validation during training.

    Returns:
        ``(images, masks)``: float32 [0, 1] (N, size, size, C) and float32 0/1 (N, size, size, 1).
    """
    rng = np.random.default_rng(seed)
    pairs = [random_crop(s, size, rng) for s in samples for _ in range(per_image)]
    return to_float(np.stack([p[0] for p in pairs])), np.stack([p[1] for p in pairs]).astype(np.float32)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images to float32 in [0, 1] (a new array)."""
    return images.astype(np.float32) / 255.0


def resized_arrays(samples: Sequence[Sample], size: int):
    """Every sample resized to ``size`` x ``size`` (area interpolation for
    images, nearest for masks, so masks stay 0/1).

    Returns:
        ``(images, masks)`` as float32 arrays, images in [0, 1].
    """
    images, masks = [], []
    for s in samples:
        image = cv2.resize(s.image, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, -1)
        mask = cv2.resize(s.mask, (size, size), interpolation=cv2.INTER_NEAREST).reshape(size, size, 1)
        images.append(image)
        masks.append(mask)
    return to_float(np.stack(images)), np.stack(masks).astype(np.float32)


def crop_dataset(
    samples: Sequence[Sample],
    crop_size: int,
    batch_size: int,
    augmentation: Callable | None = None,
    seed: int = 0,
):
    """An endless ``tf.data.Dataset`` of random crops, batched and augmented.

    Crops are drawn from images with probability proportional to their area,
    so large images are not under-sampled. Images are scaled to [0, 1]
    float32, masks to float32 0/1; ``augmentation`` (e.g.
    :func:`~keras_unetpp.layers.aerial_augmentation`) is mapped over the
    batches, in the graph.

    Args:
        samples: Training samples (any sizes).
        crop_size: Crop edge in pixels.
        batch_size: Crops per batch.
        augmentation: Callable on ``(images, masks)`` batches, or ``None``.
        seed: Seed of the crop positions.

    Returns:
        A ``tf.data.Dataset`` of ``(images, masks)`` batches; use with
        ``steps_per_epoch``.

    Raises:
        ValueError: If ``samples`` is empty.
    """
    import tensorflow as tf

    if not samples:
        raise ValueError("crop_dataset needs at least one sample.")
    areas = np.array([s.image.shape[0] * s.image.shape[1] for s in samples], np.float64)
    channels = samples[0].image.shape[-1]

    def generate():
        rng = np.random.default_rng(seed)
        while True:
            sample = samples[rng.choice(len(samples), p=areas / areas.sum())]
            yield random_crop(sample, crop_size, rng)

    signature = (
        tf.TensorSpec((crop_size, crop_size, channels), tf.uint8),
        tf.TensorSpec((crop_size, crop_size, 1), tf.uint8),
    )
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature).batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, tf.cast(y, tf.float32)))
    if augmentation is not None:
        ds = ds.map(augmentation, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def array_dataset(images, masks, batch_size: int, augmentation: Callable | None = None, seed: int = 0):
    """An endless, shuffled, batched (and augmented) ``tf.data.Dataset`` over arrays.

    Args:
        images: (N, H, W, C) float32.
        masks: (N, H, W, 1) float32.
        batch_size: Batch size.
        augmentation: Callable on ``(images, masks)`` batches, or ``None``.
        seed: Shuffle seed.

    Returns:
        A ``tf.data.Dataset``; use with ``steps_per_epoch``.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, masks)).shuffle(len(images), seed=seed).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    if augmentation is not None:
        ds = ds.map(augmentation, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
