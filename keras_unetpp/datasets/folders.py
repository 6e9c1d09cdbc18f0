"""Loader for ``images/`` + ``masks/`` folders matched by file stem (the lung
X-ray layout, and the ``init/`` + ``mask/`` layout of the aerial project)."""

from __future__ import annotations

from pathlib import Path

from keras_unetpp.datasets.io import Sample, check_same_size, match_pairs, read_image
from keras_unetpp.values import mask_from_file


def load_folder_pairs(
    data_dir: str | Path, images: str = "images", masks: str = "masks", channels: int = 1
) -> list[Sample]:
    """Loads image/mask pairs from two folders, matched by file stem.

    Masks hold 0/1 or 0/255 (the rule of [`keras_unetpp.values`][keras_unetpp.values]:
    any other value is refused, and a JPEG mask is named as the cause); colour masks
    are read as grayscale.

    Args:
        data_dir: Folder holding the two sub-folders.
        images: Name of the image folder.
        masks: Name of the mask folder.
        channels: 1 (grayscale) or 3 (RGB) images.

    Returns:
        [`Sample`][keras_unetpp.datasets.Sample] list; ``group`` is the
            stem (one case per file), so splits never share a case.

    Raises:
        FileNotFoundError: For a missing or empty folder.
        ValueError: For unmatched or unreadable files, or an image and mask
            of different sizes.

    Examples:
        >>> import tempfile, cv2, numpy as np, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> (d / "images").mkdir(); (d / "masks").mkdir()
        >>> _ = cv2.imwrite(str(d / "images/a.png"), np.zeros((4, 5), np.uint8))
        >>> _ = cv2.imwrite(str(d / "masks/a.png"), np.full((4, 5), 255, np.uint8))
        >>> s = load_folder_pairs(d)[0]
        >>> s.image.shape, int(s.mask.max())
        ((4, 5, 1), 1)
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    root = Path(data_dir)
    samples = []
    for stem, image_path, mask_path in match_pairs(root / images, root / masks):
        image = read_image(image_path, channels)
        mask = read_image(mask_path, 1)
        check_same_size(image, mask, image_path, mask_path)
        samples.append(Sample(stem, stem, image, mask_from_file(mask, mask_path)))
    return samples
