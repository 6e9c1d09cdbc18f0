"""Splits and ``tf.data`` pipelines: random crops of images of any size,
augmentation, batching.

Splits are by ``Sample.group`` (tile, case), never by crop, so no image
contributes to both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import keras
import numpy as np

from keras_unetpp.datasets.io import Sample
from keras_unetpp.values import dtype_range


def split_by_group(samples: Sequence[Sample], val_groups: Sequence[str]) -> tuple[list[Sample], list[Sample]]:
    """Puts the samples of ``val_groups`` in validation, the rest in training.

    Args:
        samples: Loaded samples.
        val_groups: Group names (e.g. ``["Tile 7"]``) for validation.

    Returns:
        ``(train, val)`` sample lists.

    Raises:
        ValueError: If a named group does not exist or a side is empty.

    Examples:
        >>> s = [Sample(f"t{g}/{i}", f"Tile {g}", np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2, 1), np.uint8))
        ...      for g in (1, 2) for i in range(2)]
        >>> train, val = split_by_group(s, ["Tile 2"])
        >>> [x.name for x in val]
        ['t2/0', 't2/1']
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

    Args:
        samples: Loaded samples.
        val_fraction: Fraction of the groups for validation, in (0, 1).
        seed: Seed of the draw.

    Returns:
        ``(train, val)`` sample lists; no group is on both sides.

    Examples:
        >>> s = [Sample(str(i), str(i), np.zeros((2, 2, 1), np.uint8), np.zeros((2, 2, 1), np.uint8))
        ...      for i in range(10)]
        >>> [len(part) for part in split_fraction(s, 0.2)]
        [8, 2]
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


def random_crop(sample: Sample, size: int, rng: np.random.Generator, around: tuple[int, int] | None = None):
    """A random ``size`` x ``size`` crop of image and mask (reflect-padded if smaller).

    Args:
        sample: The image/mask pair.
        size: Crop edge in pixels.
        rng: Random generator drawing the position.
        around: ``(row, column)`` of a pixel the crop must contain, at a
            uniformly drawn place inside the crop (as far as the image border
            allows); ``None`` draws the crop anywhere.

    Returns:
        ``(image, mask)`` crops, uint8.

    Examples:
        >>> s = Sample("a", "a", np.zeros((10, 20, 3), np.uint8), np.zeros((10, 20, 1), np.uint8))
        >>> [c.shape for c in random_crop(s, 8, np.random.default_rng(0))]
        [(8, 8, 3), (8, 8, 1)]
    """
    image, mask = _pad_to(sample.image, size), _pad_to(sample.mask, size)
    if around is None:
        y = rng.integers(0, image.shape[0] - size + 1)
        x = rng.integers(0, image.shape[1] - size + 1)
    else:
        y = int(np.clip(around[0] - rng.integers(0, size), 0, image.shape[0] - size))
        x = int(np.clip(around[1] - rng.integers(0, size), 0, image.shape[1] - size))
    return image[y : y + size, x : x + size], mask[y : y + size, x : x + size]


def fixed_crops(samples: Sequence[Sample], size: int, per_image: int, seed: int = 0):
    """A reproducible array of random crops, e.g. for validation during training.

    Args:
        samples: Samples to crop.
        size: Crop edge in pixels.
        per_image: Crops per sample.
        seed: Seed of the positions.

    Returns:
        ``(images, masks)``: float32 (N, size, size, C) (uint8 images scaled to
            [0, 1], float images as they are) and float32 0/1 (N, size, size, 1).

    Examples:
        >>> s = Sample("a", "a", np.full((10, 20, 3), 255, np.uint8), np.ones((10, 20, 1), np.uint8))
        >>> x, y = fixed_crops([s], 8, per_image=3)
        >>> x.shape, float(x.max()), y.dtype
        ((3, 8, 8, 3), 1.0, dtype('float32'))
    """
    rng = np.random.default_rng(seed)
    pairs = [random_crop(s, size, rng) for s in samples for _ in range(per_image)]
    images = np.stack([p[0] for p in pairs])
    images = to_float(images) if images.dtype == np.uint8 else images.astype(np.float32)
    return images, np.stack([p[1] for p in pairs]).astype(np.float32)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images to float32 in [0, 1] (a new array).

    Args:
        images: uint8 array of any shape.

    Returns:
        float32 array of the same shape.

    Examples:
        >>> to_float(np.array([0, 51, 255], np.uint8)).tolist()
        [0.0, 0.20000000298023224, 1.0]
    """
    return images.astype(np.float32) / np.float32(dtype_range(images.dtype)[1])


def resized_arrays(samples: Sequence[Sample], size: int):
    """Every sample resized to ``size`` x ``size`` (area interpolation for
    images, nearest for masks, so masks stay 0/1).

    Args:
        samples: Samples of any sizes.
        size: Output edge in pixels.

    Returns:
        ``(images, masks)`` as float32 arrays, images in [0, 1].

    Examples:
        >>> s = Sample("a", "a", np.zeros((30, 40, 1), np.uint8), np.ones((30, 40, 1), np.uint8))
        >>> [a.shape for a in resized_arrays([s], 16)]
        [(1, 16, 16, 1), (1, 16, 16, 1)]
    """
    images, masks = [], []
    for s in samples:
        image = cv2.resize(s.image, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, -1)
        mask = cv2.resize(s.mask, (size, size), interpolation=cv2.INTER_NEAREST).reshape(size, size, 1)
        images.append(image)
        masks.append(mask)
    return to_float(np.stack(images)), np.stack(masks).astype(np.float32)


class _CropSampler:
    """Draws crop positions: uniform crops with images weighted by area, and
    with probability ``foreground_fraction`` a crop around a foreground pixel
    drawn uniformly from all foreground pixels of all samples."""

    def __init__(self, samples: Sequence[Sample], crop_size: int, foreground_fraction: float):
        self.samples, self.crop_size, self.foreground_fraction = samples, crop_size, foreground_fraction
        areas = np.array([s.image.shape[0] * s.image.shape[1] for s in samples], np.float64)
        self.area_p = areas / areas.sum()
        self.foreground = []
        if foreground_fraction > 0:
            # flat indices of foreground pixels, int32 to halve the memory (images < 2^31 px)
            self.foreground = [np.flatnonzero(s.mask[..., 0]).astype(np.int32) for s in samples]
            counts = np.array([len(f) for f in self.foreground], np.float64)
            if counts.sum() == 0:
                raise ValueError(f"foreground_fraction={foreground_fraction} but no sample has a foreground pixel.")
            self.foreground_p = counts / counts.sum()

    def __call__(self, rng: np.random.Generator):
        if self.foreground and rng.random() < self.foreground_fraction:
            k = rng.choice(len(self.samples), p=self.foreground_p)
            flat = self.foreground[k][rng.integers(0, len(self.foreground[k]))]
            around = divmod(int(flat), self.samples[k].mask.shape[1])
            return random_crop(self.samples[k], self.crop_size, rng, around=around)
        return random_crop(self.samples[rng.choice(len(self.samples), p=self.area_p)], self.crop_size, rng)


def crop_dataset(
    samples: Sequence[Sample],
    crop_size: int,
    batch_size: int,
    augmentation: Callable | None = None,
    seed: int = 0,
    foreground_fraction: float = 0.0,
):
    """An endless ``tf.data.Dataset`` of random crops, batched and augmented.

    Crops are drawn from images with probability proportional to their area,
    so large images are not under-sampled. With ``foreground_fraction`` > 0,
    that share of the crops is instead placed around a foreground pixel drawn
    uniformly from all foreground pixels of the set (at a random place inside
    the crop), so sparse objects (buildings in scenes of sea and desert) are
    seen more often while the other crops keep the true background mix.
    uint8 images are scaled to [0, 1]
    float32; float32 images (already preprocessed, e.g. by
    [`preprocess_images()`][keras_unetpp.models.preprocess_images]) pass as they are. Masks
    become float32 0/1; ``augmentation`` (e.g.
    [`aerial_augmentation()`][keras_unetpp.layers.aerial_augmentation]) is mapped over the
    batches, in the graph.

    Args:
        samples: Training samples (any sizes).
        crop_size: Crop edge in pixels.
        batch_size: Crops per batch.
        augmentation: Callable on ``(images, masks)`` batches, or ``None``.
        seed: Seed of the crop positions.
        foreground_fraction: Share of crops placed around a foreground
            pixel, in [0, 1] (0: all crops uniform).

    Returns:
        A ``tf.data.Dataset`` of ``(images, masks)`` batches on the TensorFlow
            backend; on JAX and PyTorch a [`BatchStream`][keras_unetpp.datasets.pipeline.BatchStream]
            (a ``keras.utils.PyDataset``) of the same batches, augmented by the
            backend itself. Use with ``steps_per_epoch``.

    Raises:
        ValueError: If ``samples`` is empty, ``foreground_fraction`` is
            outside [0, 1], or it is > 0 and no mask has foreground.

    Note:
        Delete an iterator you made yourself (``it = iter(ds)``; ``del it``) before your script
        ends: one still alive while Python exits can hang it, as the crops come from a Python
        generator. ``fit`` deletes its own.

    Examples:
        >>> s = Sample("a", "a", np.zeros((30, 40, 3), np.uint8), np.ones((30, 40, 1), np.uint8))
        >>> x, y = next(iter(crop_dataset([s], 16, batch_size=2, foreground_fraction=0.5)))
        >>> tuple(x.shape), tuple(y.shape)
        ((2, 16, 16, 3), (2, 16, 16, 1))
    """
    if not samples:
        raise ValueError("crop_dataset needs at least one sample.")
    if not 0.0 <= foreground_fraction <= 1.0:
        raise ValueError(f"foreground_fraction must be in [0, 1], got {foreground_fraction}.")
    channels = samples[0].image.shape[-1]
    dtypes = {s.image.dtype for s in samples}
    if len(dtypes) != 1 or not dtypes <= {np.dtype(np.uint8), np.dtype(np.float32)}:
        raise ValueError(f"crop_dataset needs all images uint8 or all float32, got {sorted(map(str, dtypes))}.")
    image_dtype = dtypes.pop()
    scale = 1.0 / dtype_range(image_dtype)[1]  # uint8: 0..255 onto [0, 1]; floats as they are
    draw = _CropSampler(samples, crop_size, foreground_fraction)

    def generate():
        rng = np.random.default_rng(seed)
        while True:
            yield draw(rng)

    if keras.backend.backend() != "tensorflow":
        pairs = generate()

        def next_batch(_):
            crops = [next(pairs) for _ in range(batch_size)]
            return (np.stack([c[0] for c in crops]).astype(np.float32) * np.float32(scale),
                    np.stack([c[1] for c in crops]).astype(np.float32))

        return BatchStream(next_batch, augmentation)

    import tensorflow as tf

    signature = (
        tf.TensorSpec((crop_size, crop_size, channels), tf.as_dtype(image_dtype)),
        tf.TensorSpec((crop_size, crop_size, 1), tf.uint8),
    )
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature).batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32) * scale, tf.cast(y, tf.float32)))
    return _augmented_and_prefetched(ds, augmentation)


def array_dataset(images, masks, batch_size: int, augmentation: Callable | None = None, seed: int = 0):
    """An endless, shuffled, batched (and augmented) ``tf.data.Dataset`` over arrays.

    Args:
        images: (N, H, W, C) float32.
        masks: (N, H, W, 1) float32.
        batch_size: Batch size.
        augmentation: Callable on ``(images, masks)`` batches, or ``None``.
        seed: Shuffle seed.

    Returns:
        A ``tf.data.Dataset`` on the TensorFlow backend, a
            [`BatchStream`][keras_unetpp.datasets.pipeline.BatchStream] on JAX and
            PyTorch; use with ``steps_per_epoch``.

    Examples:
        >>> x, y = np.zeros((5, 8, 8, 1), "float32"), np.zeros((5, 8, 8, 1), "float32")
        >>> tuple(next(iter(array_dataset(x, y, batch_size=4)))[0].shape)
        (4, 8, 8, 1)
    """
    if keras.backend.backend() != "tensorflow":
        rng = np.random.default_rng(seed)
        state = {"order": rng.permutation(len(images)), "position": 0}

        def next_batch(_):
            if state["position"] + batch_size > len(state["order"]):
                state["order"], state["position"] = rng.permutation(len(images)), 0
            take = state["order"][state["position"]:state["position"] + batch_size]
            state["position"] += batch_size
            return np.asarray(images)[take], np.asarray(masks)[take]

        return BatchStream(next_batch, augmentation)

    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, masks)).shuffle(len(images), seed=seed).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    return _augmented_and_prefetched(ds, augmentation)


def _augmented_and_prefetched(ds, augmentation: Callable | None):
    """The end of both training pipelines: ``augmentation`` mapped over the batches in parallel,
    and batches prefetched while the model trains.

    tf.data's autotuning is switched off for these endless pipelines. ``fit`` deletes its training
    iterator as it returns, and with autotuning on the iterator waited there for tf.data's own
    threads: 8.6 to 12.3 s in 5 of 15 runs of a small training on a busy 2-core CPU (0 of 12 with
    it off), time the run's budget had not planned for. Batches come as fast without it (18.8
    against 19.6 ms for eight 256 x 256 aerial crops), far faster than a training step.
    """
    import tensorflow as tf

    if augmentation is not None:
        ds = ds.map(augmentation, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


class BatchStream(keras.utils.PyDataset):
    """An endless stream of ``(images, masks)`` batches for the JAX and PyTorch backends.

    ``tf.data`` runs mapped functions as TensorFlow graphs, where our augmentation layers
    (written with ``keras.ops``, which follow the backend) cannot run on JAX or PyTorch. This
    stream draws the same batches with numpy and applies ``augmentation`` eagerly, on the
    backend (and its device), so the examples and the training recipe train on every backend.

    Args:
        next_batch: ``next_batch(index)`` returns an ``(images, masks)`` numpy batch.
        augmentation: Callable on ``(images, masks)`` batches, or None.

    Returns:
        Indexed, ``(images, masks)`` numpy batches, drawn in order (one worker).

    Examples:
        >>> stream = BatchStream(lambda i: (np.zeros((2, 4, 4, 1), "float32"), np.zeros((2, 4, 4, 1), "float32")))
        >>> stream[0][0].shape, stream.num_batches is None
        ((2, 4, 4, 1), True)
    """

    def __init__(self, next_batch: Callable, augmentation: Callable | None = None):
        super().__init__()
        self.next_batch, self.augmentation = next_batch, augmentation

    @property
    def num_batches(self):
        return None  # endless: fit(steps_per_epoch=...) sets the budget

    def __getitem__(self, index):
        images, masks = self.next_batch(index)
        if self.augmentation is not None:
            images, masks = self.augmentation(images, masks)
        return (np.asarray(keras.ops.convert_to_numpy(images), np.float32),
                np.asarray(keras.ops.convert_to_numpy(masks), np.float32))
