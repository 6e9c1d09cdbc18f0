"""Reading and validating image/mask files, and the pair container."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DATA_ENV = "KERAS_UNETPP_DATA"


@dataclasses.dataclass(frozen=True)
class Sample:
    """One image with its binary mask.

    Args:
        name: File stem.
        group: What a split must keep together (tile, case).
        image: uint8 (H, W, C).
        mask: uint8 (H, W, 1) holding 0 and 1.

    Examples:
        >>> s = Sample("a", "case a", np.zeros((2, 3, 1), np.uint8), np.ones((2, 3, 1), np.uint8))
        >>> s.group, s.mask.shape
        ('case a', (2, 3, 1))
    """

    name: str
    group: str
    image: np.ndarray
    mask: np.ndarray


def data_root(path: str | os.PathLike | None = None, subdir: str | None = None) -> Path:
    """The data directory: ``path``, else ``$KERAS_UNETPP_DATA`` (joined with
    ``subdir``, e.g. ``"aerial-dubai"``, when given).

    Args:
        path: Explicit directory, or ``None``.
        subdir: The data set's folder inside ``$KERAS_UNETPP_DATA``; not
            applied to an explicit ``path``.

    Returns:
        The directory as a `Path`.

    Raises:
        FileNotFoundError: If neither is given or the directory is missing.

    Examples:
        >>> import tempfile
        >>> data_root(tempfile.gettempdir()).is_dir()
        True
    """
    chosen = path if path is not None else os.environ.get(DATA_ENV)
    if not chosen:
        where = f" (the folder holding {subdir}/)" if subdir else ""
        raise FileNotFoundError(f"No data directory: pass one or set {DATA_ENV}{where}.")
    root = Path(chosen).expanduser()
    if path is None and subdir:
        root = root / subdir
    if not root.is_dir():
        raise FileNotFoundError(f"Data directory {root} does not exist. See README.md, 'Getting the data'.")
    return root


def read_image(path: Path, channels: int = 3, allow_16bit: bool = False) -> np.ndarray:
    """Reads an image as uint8 RGB (channels=3) or grayscale (channels=1), (H, W, C).

    With ``allow_16bit`` a 16-bit PNG or TIFF comes back as uint16 (for
    [`to_model_values()`][keras_unetpp.values.to_model_values] to map).

    The file is checked before decoding: OpenCV decodes a truncated JPEG
    without an error (the missing part comes back grey), so a JPEG must end
    with its end-of-image marker and a PNG with its ``IEND`` chunk.

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        ValueError: If the file is empty, truncated, or cannot be decoded as
            an 8-bit image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No image file at {path}.")
    data = path.read_bytes()
    problem = _damage(data)
    if problem:
        raise ValueError(f"Cannot read image file {path}: {problem}.")
    flag = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise ValueError(f"Cannot read image file {path}: not a decodable image ({len(data)} bytes).")
    if image.dtype != np.uint8 and not (allow_16bit and image.dtype == np.uint16):
        raise ValueError(f"{path}: expected an 8-bit image, got {image.dtype}.")
    return image[..., ::-1].copy() if channels == 3 else image[..., None]


def _damage(data: bytes) -> str | None:
    """Why the bytes of a JPEG or PNG file cannot be a whole image, or None."""
    if not data:
        return "the file is empty"
    if data[:2] == b"\xff\xd8":
        # the end-of-image marker after the last scan: an EXIF thumbnail has its own marker before the main
        # image, and bytes appended after the image (camera trailers) are no damage
        last_scan = data.rfind(b"\xff\xda")
        if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
            return "truncated JPEG (no end-of-image marker after its image data)"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-12:]:
        return "truncated PNG (no IEND chunk)"
    return None


def list_images(folder: Path) -> dict[str, Path]:
    """Image files of a folder by stem.

    Raises:
        FileNotFoundError: If the folder is missing or holds no image.
        ValueError: If two files share a stem.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"Folder {folder} does not exist.")
    files = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in files:
                raise ValueError(f"Two files with the stem {path.stem!r} in {folder}.")
            files[path.stem] = path
    if not files:
        raise FileNotFoundError(f"No image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}.")
    return files


def match_pairs(image_dir: Path, mask_dir: Path, extra_masks: bool = False) -> list[tuple[str, Path, Path]]:
    """(stem, image path, mask path) for every image; unmatched files are an error.

    Args:
        image_dir: Folder of images.
        mask_dir: Folder of masks, matched to the images by file stem.
        extra_masks: Allow masks without an image (scoring some images against
            the masks of a whole data set); an image without a mask is always
            an error.

    Raises:
        ValueError: Naming the files without a partner.
    """
    images, masks = list_images(image_dir), list_images(mask_dir)
    missing_masks = sorted(set(images) - set(masks))
    missing_images = [] if extra_masks else sorted(set(masks) - set(images))
    if missing_masks or missing_images:
        def some(names):
            return f"{names[:5]}" + (f" and {len(names) - 5} more" if len(names) > 5 else "")

        raise ValueError(
            f"Unmatched files: images without a mask in {mask_dir} ({len(missing_masks)}): {some(missing_masks)}; "
            f"masks without an image in {image_dir} ({len(missing_images)}): {some(missing_images)}. Images and "
            f"masks are matched by file stem (the name without its suffix): a.png pairs with a.png or a.jpg, "
            f"not with a_mask.png."
        )
    return [(stem, images[stem], masks[stem]) for stem in sorted(images)]


def check_same_size(image: np.ndarray, mask: np.ndarray, image_path: Path, mask_path: Path) -> None:
    """Raises ValueError naming both files if their sizes differ."""
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(
            f"Size mismatch: {image_path} is {image.shape[1]}x{image.shape[0]}, "
            f"{mask_path} is {mask.shape[1]}x{mask.shape[0]}."
        )
