"""Polygon files written feature by feature: GeoJSON, GeoPackage and FlatGeobuf, chosen by suffix.

[`FeatureWriter`][keras_unetpp.feature_files.FeatureWriter] never holds the whole collection:
GeoJSON is written as text one feature at a time; GeoPackage (``.gpkg``) and FlatGeobuf (``.fgb``)
are appended in batches of ``batch_size`` features through ``pyogrio`` (in the ``geo`` extra). QGIS
and GDAL open all three.

GeoJSON can name a coordinate system only by an EPSG code; features in a CRS without one are
reprojected to WGS 84 (EPSG:4326, GeoJSON's own CRS) and a note says so. GeoPackage and FlatGeobuf
store any CRS as it is: use them for such scenes, and for large outputs (they are smaller and
faster to open).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

#: suffix -> the GDAL driver that writes it
DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".fgb": "FlatGeobuf"}


def check_feature_path(path: str | Path, option: str = "--polygons") -> Path:
    """``path`` as a ``Path`` if its suffix names a format this module writes (checked before any work).

    Args:
        path: The polygon file to write.
        option: The option that named it, for the message.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: For a suffix that names no format, listing the suffixes there are.

    Example:
        >>> check_feature_path("footprints.gpkg").suffix
        '.gpkg'
    """
    path = Path(path)
    if path.suffix.lower() not in DRIVERS:
        raise ValueError(f"{option} {path}: the suffix {path.suffix or '(none)'!r} names no polygon format; use "
                         ".geojson (or .json), .gpkg (GeoPackage) or .fgb (FlatGeobuf).")
    return path


class FeatureWriter:
    """Writes GeoJSON features to ``path`` as they come, in the format its suffix names.

    Args:
        path: ``.geojson`` / ``.json``, ``.gpkg`` or ``.fgb``. Its folder is created.
        crs: The coordinates' CRS (``rasterio.crs.CRS`` or anything with ``to_epsg()`` and
            ``to_wkt()``), or ``None`` for pixel coordinates. May also be given later with
            ``set_crs``, before the first feature.
        batch_size: Features per append for GeoPackage and FlatGeobuf.

    Example:
        >>> import tempfile, pathlib
        >>> square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "shapes.geojson"
        >>> with FeatureWriter(path) as out:
        ...     out.write({"type": "Feature", "geometry": square, "properties": {"id": 1}})
        >>> len(json.loads(path.read_text())["features"])
        1
    """

    def __init__(self, path: str | Path, crs=None, batch_size: int = 2_000):
        self.path = check_feature_path(path, "path")
        self.driver = DRIVERS[self.path.suffix.lower()]
        self.batch_size = int(batch_size)
        self.crs, self._crs_fixed = crs, crs is not None
        self.count = 0
        self._batch: list[dict] = []
        self._text = None
        self._started = False
        self._reproject = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.path.unlink()   # the caller decided to replace it (see cli.refuse_replacing)

    def set_crs(self, crs) -> None:
        """The CRS of the features to come; a second, different one is refused (one file holds one CRS)."""
        name = crs.to_string() if crs is not None else None
        if self._crs_fixed and name != (self.crs.to_string() if self.crs is not None else None):
            raise ValueError(f"{self.path}: its features are in {self.crs}, and these are in {crs}; one file holds "
                             "one coordinate system: write them to separate files.")
        self.crs, self._crs_fixed = crs, True

    def write(self, feature: dict) -> None:
        """Adds one GeoJSON feature (its properties must have the same names as the first one's)."""
        if not self._started:
            self._start()
        if self.driver == "GeoJSON":
            if self._reproject:
                from rasterio.warp import transform_geom

                feature = {**feature, "geometry": transform_geom(self.crs, "EPSG:4326", feature["geometry"])}
            self._text.write(("," if self.count else "") + json.dumps(feature))
        else:
            self._batch.append(feature)
            if len(self._batch) >= self.batch_size:
                self._flush()
        self.count += 1

    def close(self) -> int:
        """Finishes the file (an empty collection when nothing was written); the feature count."""
        if not self._started:
            self._start()
        if self.driver == "GeoJSON":
            if self._text is not None:
                self._text.write("]}\n")
                self._text.close()
                self._text = None
        elif self._batch or self.count == 0:
            self._flush()
        return self.count

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        self._started = True
        if self.driver != "GeoJSON":
            return
        header = {"type": "FeatureCollection"}
        epsg = self.crs.to_epsg() if self.crs is not None else None
        if self.crs is not None and epsg is None:
            print(f"{self.path}: the scene's CRS has no EPSG code ({self.crs.to_string()[:60]}), which GeoJSON cannot "
                  "name: the polygons are reprojected to WGS 84 (EPSG:4326). A .gpkg or .fgb file keeps the CRS.",
                  file=sys.stderr, flush=True)
            self._reproject, epsg = True, 4326
        if epsg is not None:
            header["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}}
        self._text = self.path.open("w")
        self._text.write(json.dumps(header)[:-1] + ', "features": [')

    def _flush(self) -> None:
        import pyogrio.raw
        import shapely

        features, self._batch = self._batch, []
        geometries = shapely.to_wkb(np.array([shapely.geometry.shape(f["geometry"]) for f in features], object))
        names = list(features[0]["properties"]) if features else ["id"]
        columns = [_column([f["properties"].get(name) for f in features]) for name in names]
        pyogrio.raw.write(str(self.path), geometries, columns, names, driver=self.driver,
                          geometry_type="MultiPolygon", promote_to_multi=True,
                          crs=self.crs.to_wkt() if self.crs is not None else None,
                          append=self.path.exists())


def _column(values: list) -> np.ndarray:
    """One property of a batch as a typed array (int64, float64 or str)."""
    if all(isinstance(v, (bool, int, np.integer)) for v in values) and values:
        return np.asarray(values, np.int64)
    if all(isinstance(v, (int, float, np.number)) or v is None for v in values) and values:
        return np.asarray([np.nan if v is None else v for v in values], np.float64)
    return np.asarray(["" if v is None else str(v) for v in values], object)
