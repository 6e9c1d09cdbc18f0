"""PNG output: every PNG the library writes goes through [`write_png()`][keras_unetpp.masks.write_png]
(RGB or grayscale uint8), and predicted masks are saved as 0/255 by
[`save_mask()`][keras_unetpp.masks.save_mask]. What a mask value means is the rule of
[`keras_unetpp.values`][keras_unetpp.values].
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from keras_unetpp.values import foreground, single_channel


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
