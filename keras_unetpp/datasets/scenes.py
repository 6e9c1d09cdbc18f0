"""Training samples from GeoTIFF scenes and vector footprints (GeoJSON, GeoPackage, FlatGeobuf).

The footprints are rasterised on each scene's own grid (``rasterio.features.rasterize``: a pixel is
foreground when its centre lies inside a polygon), after reprojection into the scene's CRS where the
file's differs. The scene is then cut into chips of ``chip_size`` (shorter at its right and bottom
edges); a chip that holds any nodata pixel (the raster's nodata value, alpha band or mask) is left
out, so nodata never enters training as background. Chips are named ``SCENE@rROWcCOL``, so that a
split by the prefix before ``@`` keeps every scene on one side; from a single scene they are named
``SCENE.qK@rROWcCOL`` by the quarter K (0-3) of the scene their centre lies in, so that a split
holds out a quarter.

With ``field``, the footprints' attribute of that name gives each one's class
([`footprint_classes`][keras_unetpp.datasets.scenes.footprint_classes]) and the masks hold class
indices (0: background); where footprints of different classes overlap, the later one in the file
wins, as GDAL burns them in order.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from keras_unetpp.datasets.pipeline import Sample

#: Chip names are SCENE + this + the chip's place: split by the prefix before it.
CHIP_SEPARATOR = "@"


def scene_files(scenes: str | Path) -> list[Path]:
    """The GeoTIFFs of a folder (``.tif``, ``.tiff``), or the one file given.

    Raises:
        ValueError: When there is none.
    """
    scenes = Path(scenes)
    files = [scenes] if scenes.is_file() else sorted(p for p in scenes.glob("*") if p.suffix.lower() in (".tif", ".tiff"))
    if not files:
        raise ValueError(f"{scenes} holds no GeoTIFF (.tif, .tiff).")
    return files


def read_footprints(labels: str | Path, field: str | None = None):
    """``(polygons, crs, values)`` of a vector file: shapely geometries (polygons and multipolygons),
    the file's CRS as a string (GeoJSON without a ``crs`` member is WGS 84, as its standard says) and
    the attribute ``field`` of each polygon (``None`` without ``field``).

    Raises:
        ValueError: For a file that cannot be read, that holds no polygon, or that has no attribute
            ``field`` (the message lists those it has).
    """
    import pyogrio
    import shapely

    labels = Path(labels)
    if not labels.is_file():
        raise ValueError(f"No label file at {labels}.")
    try:
        names = list(pyogrio.read_info(str(labels))["fields"]) if field is not None else []
        meta, _, wkb, columns = pyogrio.raw.read(str(labels), read_geometry=True,
                                                 columns=[field] if field in names else [])
    except Exception as error:  # pyogrio raises its own DataSourceError / DataLayerError
        raise ValueError(f"{labels} is not a readable vector file ({error}).") from None
    if field is not None and field not in names:
        raise ValueError(f"{labels} has no attribute {field!r}; it has {names or 'none'}.")
    geometries = shapely.from_wkb(wkb)
    keep = [i for i, g in enumerate(geometries) if g is not None and not g.is_empty
            and g.geom_type in ("Polygon", "MultiPolygon")]
    if not keep:
        raise ValueError(f"{labels} holds no polygon: the footprints must be polygons or multipolygons.")
    values = None if field is None else [columns[0][i] for i in keep]
    return [geometries[i] for i in keep], meta.get("crs") or "EPSG:4326", values


def footprint_classes(values: list, field: str, labels: str | Path = "the labels") -> tuple[list[int], list[str]]:
    """The class index of each footprint from its attribute, and the class names.

    Whole numbers of at least 1 are class indices as they are (their names are the numbers, 0 is
    the background); anything else is a name, and the distinct names, sorted, become classes 1..K.

    Args:
        values: The attribute of each footprint (from ``read_footprints(labels, field)``).
        field: The attribute's name, for messages.
        labels: The file, for messages.

    Returns:
        ``(indices, names)``: one index per footprint, and ``names[k]`` the name of class k
        (``names[0] == "background"``).

    Raises:
        ValueError: For a footprint without a value, a negative or zero class number, or more than
            254 classes (masks are uint8).

    Example:
        >>> footprint_classes(["tree", "building", "tree"], "kind")
        ([2, 1, 2], ['background', 'building', 'tree'])
    """
    missing = sum(v is None or (isinstance(v, float) and v != v) for v in values)
    if missing:
        raise ValueError(f"{labels}: {missing} footprint(s) have no {field!r}; give every footprint a class.")
    numbers = all(isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer())
                  for v in values)
    if numbers:
        indices = [int(v) for v in values]
        if min(indices) < 1:
            raise ValueError(f"{labels}: {field!r} holds {min(indices)}; class numbers start at 1 (0 is the "
                             "background).")
        names = ["background"] + [str(k) for k in range(1, max(indices) + 1)]
    else:
        distinct = sorted({str(v) for v in values})
        names = ["background", *distinct]
        indices = [distinct.index(str(v)) + 1 for v in values]
    if len(names) > 255:
        raise ValueError(f"{labels}: {field!r} names {len(names) - 1} classes; at most 254 fit a uint8 mask.")
    return indices, names


def load_scene_chips(scenes: str | Path, labels: str | Path, chip_size: int = 512,
                     field: str | None = None, footprints: tuple | None = None) -> list[Sample]:
    """Chips of GeoTIFF scenes with masks rasterised from vector footprints.

    Args:
        scenes: A folder of GeoTIFFs, or one.
        labels: The footprints: ``.geojson``, ``.gpkg``, ``.fgb`` or anything GDAL reads.
        chip_size: Chip edge in pixels.
        field: The footprints' attribute that gives each one's class
            ([`footprint_classes`][keras_unetpp.datasets.scenes.footprint_classes]); ``None``: one
            foreground class.
        footprints: ``read_footprints(labels, field)`` when the caller has read them already
            (the file is then not read again).

    Returns:
        Samples: ``image`` (h, w, bands) in the raster's dtype, ``mask`` (h, w, 1) uint8: 0/1, or
            class indices with ``field``; ``name`` ``SCENE@rROWcCOL``, ``group`` the scene's stem.

    Raises:
        ValueError: For missing or unreadable files, no polygon, a scene without a CRS while the
            footprints have one, or no chip free of nodata.

    Example:
        >>> chips = load_scene_chips("scenes/", "footprints.gpkg", chip_size=512)  # doctest: +SKIP
    """
    import rasterio
    import rasterio.features
    import shapely
    from rasterio.crs import CRS
    from rasterio.warp import transform_geom

    from keras_unetpp.checks import whole_number

    chip_size = whole_number(chip_size, "chip_size", minimum=16)
    polygons, labels_crs, values = footprints if footprints is not None else read_footprints(labels, field)
    classes = [1] * len(polygons) if field is None else footprint_classes(values, field, labels)[0]
    samples, dropped, foreground = [], 0, 0
    files = scene_files(scenes)
    for path in files:
        try:
            src = rasterio.open(path)
        except rasterio.errors.RasterioIOError as error:
            raise ValueError(f"{path} is not a readable GeoTIFF ({error}).") from None
        with src:
            if src.crs is None:
                raise ValueError(f"{path} has no CRS: the footprints of {labels} cannot be placed on it.")
            shapes = polygons
            if CRS.from_user_input(labels_crs) != src.crs:
                shapes = [shapely.geometry.shape(transform_geom(labels_crs, src.crs, shapely.geometry.mapping(g)))
                          for g in polygons]
            mask = rasterio.features.rasterize(zip(shapes, classes), out_shape=(src.height, src.width),
                                               transform=src.transform, fill=0, dtype="uint8")
            valid = src.dataset_mask() > 0
            image = np.moveaxis(src.read(), 0, -1)
        for top in range(0, src.height, chip_size):
            for left in range(0, src.width, chip_size):
                window = (slice(top, top + chip_size), slice(left, left + chip_size))
                if not valid[window].all():
                    dropped += 1
                    continue
                chip_mask = mask[window][..., None].copy()
                foreground += int(np.count_nonzero(chip_mask))
                prefix = path.stem
                if len(files) == 1:   # the quarter of the scene the chip's centre lies in
                    below = top + min(chip_size, src.height - top) / 2 >= src.height / 2
                    right = left + min(chip_size, src.width - left) / 2 >= src.width / 2
                    prefix += f".q{2 * below + right}"
                samples.append(Sample(f"{prefix}{CHIP_SEPARATOR}r{top}c{left}", path.stem,
                                      image[window].copy(), chip_mask))
    if not samples:
        raise ValueError(f"Every chip of {scenes} holds nodata: nothing to train on.")
    if dropped:
        print(f"{dropped} chip(s) holding nodata left out of {len(samples) + dropped}.", file=sys.stderr, flush=True)
    if foreground == 0:
        print(f"No footprint of {labels} falls on {scenes}: every chip is background (check the CRS and the area).",
              file=sys.stderr, flush=True)
    return samples
