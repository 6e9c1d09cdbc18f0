"""Training samples from GeoTIFF scenes and vector footprints (GeoJSON, GeoPackage, FlatGeobuf).

The footprints are rasterised on each scene's own grid (``rasterio.features.rasterize``: a pixel is
foreground when its centre lies inside a polygon), after reprojection into the scene's CRS where the
file's differs. The scene is then cut into chips of ``chip_size`` (shorter at its right and bottom
edges); a chip that holds any nodata pixel (the raster's nodata value, alpha band or mask) is left
out, so nodata never enters training as background. Chips are named ``SCENE@rROWcCOL``, so that a
split by the prefix before ``@`` keeps every scene on one side; from a single scene they are named
``SCENE.qK@rROWcCOL`` by the quarter K (0-3) of the scene their centre lies in, so that a split
holds out a quarter.
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


def read_footprints(labels: str | Path):
    """``(polygons, crs)`` of a vector file: shapely geometries (polygons and multipolygons) and the
    file's CRS as a string (GeoJSON without a ``crs`` member is WGS 84, as its standard says).

    Raises:
        ValueError: For a file that cannot be read or that holds no polygon.
    """
    import pyogrio
    import shapely

    labels = Path(labels)
    if not labels.is_file():
        raise ValueError(f"No label file at {labels}.")
    try:
        meta, _, wkb, _ = pyogrio.raw.read(str(labels), read_geometry=True, columns=[])
    except Exception as error:  # pyogrio raises its own DataSourceError / DataLayerError
        raise ValueError(f"{labels} is not a readable vector file ({error}).") from None
    geometries = [g for g in shapely.from_wkb(wkb) if g is not None and not g.is_empty
                  and g.geom_type in ("Polygon", "MultiPolygon")]
    if not geometries:
        raise ValueError(f"{labels} holds no polygon: the footprints must be polygons or multipolygons.")
    return geometries, meta.get("crs") or "EPSG:4326"


def load_scene_chips(scenes: str | Path, labels: str | Path, chip_size: int = 512) -> list[Sample]:
    """Chips of GeoTIFF scenes with binary masks rasterised from vector footprints.

    Args:
        scenes: A folder of GeoTIFFs, or one.
        labels: The footprints: ``.geojson``, ``.gpkg``, ``.fgb`` or anything GDAL reads.
        chip_size: Chip edge in pixels.

    Returns:
        Samples: ``image`` (h, w, bands) in the raster's dtype, ``mask`` (h, w, 1) uint8 0/1,
            ``name`` ``SCENE@rROWcCOL``, ``group`` the scene's stem.

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
    polygons, labels_crs = read_footprints(labels)
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
            mask = rasterio.features.rasterize(((g, 1) for g in shapes), out_shape=(src.height, src.width),
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
                foreground += int(chip_mask.sum())
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
