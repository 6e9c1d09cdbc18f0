"""Clean-up of predicted binary masks: connected regions smaller than a
minimum area removed (specks), all but the largest regions dropped, holes
filled. For chest X-rays, ``fill_holes(keep_largest_regions(p, 2))`` keeps
the two lungs and closes the holes inside them (measured in docs/research-log.md).

Plain numpy + OpenCV (``cv2.connectedComponentsWithStats``, 8-connectivity),
after the model: it works on the thresholded map of any scene size.
"""

from __future__ import annotations

import cv2
import numpy as np

from keras_unetpp.values import foreground, single_channel


def _foreground(prediction, threshold: float) -> np.ndarray:
    array = single_channel(prediction, "prediction")
    if array.dtype != bool and not np.all(np.isfinite(array)):
        raise ValueError("The prediction holds NaN or infinite values.")
    return foreground(array, threshold)


def _regions(mask: np.ndarray):
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return count, labels, stats[:, cv2.CC_STAT_AREA]


def remove_small_regions(prediction, min_area: int, threshold: float = 0.5) -> np.ndarray:
    """The foreground mask without connected regions (8-connected) smaller
    than ``min_area`` pixels.

    Args:
        prediction: (H, W) or (H, W, 1) probabilities, or a boolean mask.
        min_area: Smallest region kept, in pixels (0 or 1 keeps everything).
        threshold: Foreground threshold for probabilities.

    Returns:
        bool (H, W) mask (a new array).

    Raises:
        ValueError: For a map that is not (H, W) or (H, W, 1), NaN values or
            a negative ``min_area``.

    Examples:
        >>> p = np.zeros((6, 6)); p[:3, :3] = 0.9; p[5, 5] = 0.8
        >>> remove_small_regions(p, min_area=4).sum()
        np.int64(9)
    """
    if min_area < 0:
        raise ValueError(f"min_area must be >= 0, got {min_area}.")
    mask = _foreground(prediction, threshold)
    count, labels, areas = _regions(mask)
    keep = areas >= min_area
    keep[0] = False  # background
    return keep[labels]


def keep_largest_regions(prediction, count: int = 1, threshold: float = 0.5) -> np.ndarray:
    """The foreground mask reduced to its ``count`` largest connected regions
    (e.g. 2 for the two lungs of a chest X-ray).

    Args:
        prediction: (H, W) or (H, W, 1) probabilities, or a boolean mask.
        count: How many regions to keep (>= 1).
        threshold: Foreground threshold for probabilities.

    Returns:
        bool (H, W) mask (a new array).

    Raises:
        ValueError: As [`remove_small_regions()`][keras_unetpp.postprocessing.remove_small_regions], or ``count < 1``.

    Examples:
        >>> p = np.zeros((5, 9)); p[:, :2] = 1; p[:, 4:5] = 1; p[0, 8] = 1
        >>> keep_largest_regions(p, 2).sum()
        np.int64(15)
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}.")
    mask = _foreground(prediction, threshold)
    total, labels, areas = _regions(mask)
    order = np.argsort(-areas[1:], kind="stable")[:count] + 1
    keep = np.zeros(total, bool)
    keep[order] = True
    return keep[labels]


def fill_holes(prediction, max_area: int | None = None, threshold: float = 0.5) -> np.ndarray:
    """The foreground mask with its holes filled: background regions
    (4-connected, the complement of 8-connected foreground) that do not touch
    the image border.

    Args:
        prediction: (H, W) or (H, W, 1) probabilities, or a boolean mask.
        max_area: Fill only holes of at most this many pixels (``None``: all).
        threshold: Foreground threshold for probabilities.

    Returns:
        bool (H, W) mask (a new array).

    Raises:
        ValueError: As [`remove_small_regions()`][keras_unetpp.postprocessing.remove_small_regions], or a
            negative ``max_area``.

    Examples:
        >>> p = np.zeros((5, 5)); p[:4, :4] = 1; p[1, 1] = 0; p[2, 2] = 0
        >>> int(fill_holes(p).sum()), int(fill_holes(p, max_area=0).sum())
        (16, 14)
    """
    if max_area is not None and max_area < 0:
        raise ValueError(f"max_area must be >= 0 or None, got {max_area}.")
    mask = _foreground(prediction, threshold)
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right, bottom = left + stats[:, cv2.CC_STAT_WIDTH], top + stats[:, cv2.CC_STAT_HEIGHT]
    height, width = mask.shape
    inner = (left > 0) & (top > 0) & (right < width) & (bottom < height)
    if max_area is not None:
        inner &= stats[:, cv2.CC_STAT_AREA] <= max_area
    inner[0] = False  # label 0 is the foreground here
    return mask | inner[labels]
