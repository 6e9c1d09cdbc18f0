"""A procedurally generated toy set: shapes on a textured background, exact masks.

SYNTHETIC data for quick starts, tests and smoke runs; it needs no download.
"""

from __future__ import annotations

import cv2
import numpy as np


def _texture(rng: np.random.Generator, size: int, channels: int) -> np.ndarray:
    """Smooth multi-scale noise in [0, 1], (size, size, channels)."""
    out = np.zeros((size, size, channels), np.float32)
    for cells, amplitude in ((4, 0.5), (16, 0.3), (size, 0.2)):
        coarse = rng.random((cells, cells, channels), dtype=np.float32)
        out += amplitude * cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).reshape(
            size, size, channels
        )
    return np.clip(out, 0.0, 1.0)


def make_shapes(
    num_images: int,
    size: int = 64,
    channels: int = 3,
    max_shapes: int = 4,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Generates SYNTHETIC image/mask pairs: ellipses, rectangles and triangles
    of random colour over a textured background, with exact binary masks.

    Foreground objects are drawn with a tinted texture of their own, so the task
    needs both colour and shape cues, like buildings in aerial tiles.

    Args:
        num_images: How many pairs to make.
        size: Height and width in pixels (>= 16).
        channels: 1 (grayscale) or 3 (RGB).
        max_shapes: Up to this many objects per image (at least one).
        seed: Seed for reproducibility.

    Returns:
        ``(images, masks)``: float32 ``(N, size, size, channels)`` in [0, 1]
            and float32 ``(N, size, size, 1)`` holding exactly 0 and 1.

    Raises:
        ValueError: For a bad count, size, channel count or shape count.

    Examples:
        >>> images, masks = make_shapes(2, size=32, seed=1)
        >>> images.shape, masks.shape, sorted(set(masks.ravel().tolist())) == [0.0, 1.0]
        ((2, 32, 32, 3), (2, 32, 32, 1), True)
    """
    if num_images < 1 or size < 16 or channels not in (1, 3) or max_shapes < 1:
        raise ValueError(
            f"make_shapes needs num_images >= 1, size >= 16, channels in (1, 3) and "
            f"max_shapes >= 1; got {num_images}, {size}, {channels}, {max_shapes}."
        )
    rng = np.random.default_rng(seed)
    images = np.empty((num_images, size, size, channels), np.float32)
    masks = np.zeros((num_images, size, size, 1), np.float32)
    for n in range(num_images):
        background = 0.35 + 0.4 * _texture(rng, size, channels)
        tint = rng.uniform(0.0, 1.0, channels).astype(np.float32)
        foreground = np.clip(0.5 * tint + 0.5 * _texture(rng, size, channels), 0, 1)
        mask = np.zeros((size, size), np.uint8)
        for _ in range(rng.integers(1, max_shapes + 1)):
            _draw_shape(mask, rng, size)
        images[n] = np.where(mask[..., None] > 0, foreground, background)
        masks[n, ..., 0] = mask
    return images, masks


def _draw_shape(mask: np.ndarray, rng: np.random.Generator, size: int) -> None:
    centre = rng.integers(size // 8, size - size // 8, 2)
    radius = int(rng.integers(max(3, size // 12), max(4, size // 4)))
    kind = rng.integers(3)
    if kind == 0:
        axes = (radius, int(rng.integers(max(2, radius // 2), radius + 1)))
        cv2.ellipse(mask, tuple(int(c) for c in centre), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif kind == 1:
        corner = centre - radius // 2
        cv2.rectangle(mask, tuple(int(c) for c in corner), tuple(int(c) for c in corner + radius), 1, -1)
    else:
        points = centre + rng.integers(-radius, radius + 1, (3, 2))
        cv2.fillPoly(mask, [np.clip(points, 0, size - 1).astype(np.int32)], 1)
