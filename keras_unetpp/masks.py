"""Mask conventions and PNG output, in one place.

- A mask is (H, W) or (H, W, 1); [`single_channel()`][keras_unetpp.masks.single_channel] gives the (H, W) view.
- A pixel is foreground ([`foreground()`][keras_unetpp.masks.foreground]) when it is ``True`` (bool), non-zero
  (integers: 0/1 and 0/255 masks alike; any other integer value is refused, since an 8-bit
  probability map or a class-index image would otherwise pass as a mask) or ``>= threshold``
  (floats: probabilities).
- Every PNG the library writes goes through [`write_png()`][keras_unetpp.masks.write_png] (RGB or
  grayscale uint8), and predicted masks are saved as 0/255 by [`save_mask()`][keras_unetpp.masks.save_mask].
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def single_channel(mask, name: str = "mask") -> np.ndarray:
    """The (H, W) view of a (H, W) or (H, W, 1) numeric or boolean mask (no copy).

    Args:
        mask: Array-like mask or probability map.
        name: How error messages call it.

    Returns:
        A 2-D array sharing memory with ``mask`` where possible.

    Raises:
        ValueError: For another shape or a non-numeric dtype.

    Examples:
        >>> single_channel(np.zeros((2, 3, 1))).shape
        (2, 3)
    """
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask (H, W) or (H, W, 1), got shape {np.shape(mask)}.")
    if array.dtype != bool and not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be numeric or boolean, got dtype {array.dtype}.")
    return array


def foreground(mask, threshold: float = 0.5) -> np.ndarray:
    """Which pixels are foreground: bool as is, integers non-zero (for a
    ``threshold`` below 1), floats ``>= threshold``.

    Integer masks hold 0 and 1 or 0 and 255. Any other value (an 8-bit
    probability map saved as a PNG, a class-index image, -1 for "ignore")
    is refused: "non-zero" would count a pixel of 10 (p = 0.04) as foreground.

    Args:
        mask: Array of any shape.
        threshold: Foreground threshold for probabilities.

    Returns:
        bool array of the same shape.

    Raises:
        ValueError: If a float mask contains NaN (it would silently count as
            background), or an integer mask a value other than 0, 1 and 255.

    Examples:
        >>> foreground(np.array([0, 1, 255], np.uint8)).tolist(), foreground(np.array([0.2, 0.5])).tolist()
        ([False, True, True], [False, True])
    """
    array = np.asarray(mask)
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.integer) and threshold < 1:
        stray = (array != 0) & (array != 1) & (array != 255)
        if stray.any():
            values = np.unique(array[stray])
            raise ValueError(
                f"An integer mask holds values other than 0, 1 and 255 ({int(stray.sum())} pixel(s), e.g. "
                f"{values[:5].tolist()}): masks are 0/1 or 0/255. A probability map saved as 8 bits? Pass it "
                f"as floats (divide by 255) so the threshold applies; class indices? compare with the class "
                f"you want (mask == k)."
            )
        return array > 0
    if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
        raise ValueError(
            f"The mask or probability map contains {int(np.isnan(array).sum())} NaN value(s) "
            f"(shape {array.shape}); a diverged model? NaN is neither foreground nor background."
        )
    return array >= threshold


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Writes a uint8 grayscale (H, W) or RGB (H, W, 3) image as PNG,
    creating the folder.

    Args:
        path: Output file.
        image: uint8 image; RGB channel order.

    Returns:
        The path written.

    Raises:
        ValueError: For another shape or dtype.
        OSError: If the file cannot be written.

    Examples:
        >>> import tempfile, pathlib
        >>> write_png(pathlib.Path(tempfile.mkdtemp()) / "x.png", np.zeros((2, 2, 3), np.uint8)).suffix
        '.png'
    """
    array = np.asarray(image)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ValueError(f"write_png needs uint8 (H, W) or (H, W, 3), got {array.dtype} {array.shape}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    if not cv2.imwrite(str(path), data):
        raise OSError(f"Could not write {path}.")
    return path


def save_mask(path: str | Path, probabilities, threshold: float = 0.5) -> Path:
    """Writes the thresholded map as a 0/255 single-channel PNG.

    Args:
        path: Output file (``.png``).
        probabilities: (H, W) or (H, W, 1) map.
        threshold: Foreground threshold.

    Returns:
        The path written.

    Raises:
        ValueError: For a map with several channels.
        OSError: If the file cannot be written.

    Examples:
        >>> import tempfile, pathlib
        >>> path = save_mask(pathlib.Path(tempfile.mkdtemp()) / "m.png", np.array([[0.2, 0.9]]))
        >>> cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).tolist()
        [[0, 255]]
    """
    mask = foreground(single_channel(probabilities, "probabilities"), threshold)
    return write_png(path, np.where(mask, 255, 0).astype(np.uint8))
