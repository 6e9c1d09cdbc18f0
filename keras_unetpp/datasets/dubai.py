"""Loader for the Dubai aerial imagery layout: ``Tile N/images/*.jpg`` with
``Tile N/masks/*.png`` colour-coded masks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from keras_unetpp.datasets.io import Sample, check_same_size, match_pairs, read_image

#: The colours actually used in the mask files (not those of classes.json, a
#: known quirk of this data set).
DUBAI_CLASS_COLORS = {
    "building": "#3C1098",
    "land": "#8429F6",
    "road": "#6EC1E4",
    "vegetation": "#FEDD3A",
    "water": "#E2A929",
    "unlabeled": "#9B9B9B",
}
_ALIASES = {"buildings": "building", "trees": "vegetation", "tree": "vegetation"}


def class_color(name: str) -> tuple[int, int, int]:
    """RGB colour of a class by name (``"building"``, ``"vegetation"``/``"trees"``, ...).

    Args:
        name: Class name or alias, any case.

    Returns:
        ``(r, g, b)`` as used in the mask files.

    Raises:
        ValueError: For an unknown class, listing the known ones.

    Examples:
        >>> class_color("trees")
        (254, 221, 58)
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DUBAI_CLASS_COLORS:
        raise ValueError(f"Unknown class {name!r}; known: {sorted(DUBAI_CLASS_COLORS)} (aliases {sorted(_ALIASES)}).")
    hex_code = DUBAI_CLASS_COLORS[key].lstrip("#")
    return tuple(int(hex_code[i : i + 2], 16) for i in (0, 2, 4))


def _tile_number(path: Path) -> int:
    match = re.search(r"(\d+)$", path.name)
    return int(match.group(1)) if match else -1


def load_dubai(data_dir: str | Path, target: str = "building", tiles=None) -> list[Sample]:
    """Loads the Dubai tiles as binary image/mask pairs for one class.

    Args:
        data_dir: The folder holding ``Tile 1`` ... ``Tile 7``.
        target: Class name (see ``DUBAI_CLASS_COLORS``; ``"trees"`` =
            vegetation).
        tiles: Tile numbers to load; ``None`` loads all.

    Returns:
        [`Sample`][keras_unetpp.datasets.Sample] list; ``group`` is the tile
            (``"Tile 3"``), so splits keep a tile's images together.

    Raises:
        FileNotFoundError: If no ``Tile N`` folder is found.
        ValueError: For an unknown class, unmatched or unreadable files, or
            an image and mask of different sizes.

    Examples:
        >>> import os, pathlib
        >>> root = pathlib.Path(os.environ.get("KERAS_UNETPP_DATA", "../shared/data")) / "aerial-dubai"
        >>> samples = load_dubai(root, "building", tiles=[1]) if root.is_dir() else []
        >>> all(s.mask.shape[:2] == s.image.shape[:2] for s in samples)
        True
    """
    color = np.array(class_color(target), np.uint8)
    return _load_tiles(data_dir, tiles, lambda rgb: np.all(rgb == color, axis=-1).astype(np.uint8))


#: Class index of each Dubai class in [`load_dubai_classes()`][keras_unetpp.datasets.load_dubai_classes] masks.
DUBAI_CLASSES = tuple(DUBAI_CLASS_COLORS)
#: Label of mask pixels whose colour is none of the classes' (left out by MulticlassIoU and the loss' one-hot).
UNKNOWN_CLASS = 255


def class_index_mask(mask_rgb: np.ndarray) -> np.ndarray:
    """An RGB Dubai mask as class indices (``DUBAI_CLASSES`` order; other colours: ``UNKNOWN_CLASS``).

    Args:
        mask_rgb: (H, W, 3) uint8 colour-coded mask.

    Returns:
        (H, W) uint8 class indices.

    Examples:
        >>> rgb = np.array([[class_color("building"), class_color("water"), (1, 2, 3)]], np.uint8)
        >>> class_index_mask(rgb).tolist()
        [[0, 4, 255]]
    """
    index = np.full(mask_rgb.shape[:2], UNKNOWN_CLASS, np.uint8)
    for k, name in enumerate(DUBAI_CLASSES):
        index[np.all(mask_rgb == np.array(class_color(name), np.uint8), axis=-1)] = k
    return index


def load_dubai_classes(data_dir: str | Path, tiles=None) -> list[Sample]:
    """Loads the Dubai tiles with all six classes: masks of class indices.

    Args:
        data_dir: The folder holding ``Tile 1`` ... ``Tile 7``.
        tiles: Tile numbers to load; ``None`` loads all.

    Returns:
        [`Sample`][keras_unetpp.datasets.Sample] list with (H, W, 1) uint8
            masks holding ``DUBAI_CLASSES`` indices 0..5 (``UNKNOWN_CLASS``
            for any other colour); ``group`` is the tile.

    Raises:
        FileNotFoundError: If no ``Tile N`` folder is found.
        ValueError: For unmatched or unreadable files, or sizes that differ.

    Examples:
        >>> import os, pathlib
        >>> root = pathlib.Path(os.environ.get("KERAS_UNETPP_DATA", "../shared/data")) / "aerial-dubai"
        >>> samples = load_dubai_classes(root, tiles=[1]) if root.is_dir() else []
        >>> all(int(s.mask.max()) < len(DUBAI_CLASSES) for s in samples)
        True
    """
    return _load_tiles(data_dir, tiles, class_index_mask)


def _load_tiles(data_dir, tiles, mask_of) -> list[Sample]:
    """Samples of every ``Tile N`` folder; ``mask_of`` turns an RGB mask into an (H, W) uint8 mask."""
    root = Path(data_dir)
    tile_dirs = sorted((p for p in root.glob("Tile *") if p.is_dir()), key=_tile_number)
    if tiles is not None:
        tile_dirs = [p for p in tile_dirs if _tile_number(p) in set(tiles)]
    if not tile_dirs:
        raise FileNotFoundError(f"No 'Tile N' folders{' for tiles ' + str(tiles) if tiles else ''} in {root}.")
    samples = []
    for tile_dir in tile_dirs:
        for stem, image_path, mask_path in match_pairs(tile_dir / "images", tile_dir / "masks"):
            image = read_image(image_path, 3)
            mask_rgb = read_image(mask_path, 3)
            check_same_size(image, mask_rgb, image_path, mask_path)
            samples.append(Sample(f"{tile_dir.name}/{stem}", tile_dir.name, image, mask_of(mask_rgb)[..., None]))
    return samples


def is_dubai_layout(data_dir: str | Path) -> bool:
    """Whether ``data_dir`` holds ``Tile N/images`` folders.

    Args:
        data_dir: A folder.

    Returns:
        True for the Dubai layout.

    Examples:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "Tile 1" / "images").mkdir(parents=True)
        >>> is_dubai_layout(d)
        True
    """
    return any((p / "images").is_dir() for p in Path(data_dir).glob("Tile *"))


