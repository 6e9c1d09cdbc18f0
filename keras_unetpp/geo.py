"""Georeferenced rasters: segment a GeoTIFF window by window, keep its
georeference, and turn the mask into polygons in map coordinates.

Needs the optional ``geo`` extra (``pip install "keras-unetpp[geo]"``:
rasterio and shapely). rasterio reads and writes rasters in windows, so a
scene far larger than memory is segmented window by window; shapely measures
and simplifies the polygons that ``rasterio.features.shapes`` traces.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path

import keras
import numpy as np

from keras_unetpp.inference.tiling import tiled_bands
from keras_unetpp.segmenter import describe_model
from keras_unetpp.values import predicted_labels, resolve_input_range, to_model_values

GEOTIFF_SUFFIXES = (".tif", ".tiff")
GDAL_CACHE_MB = 64  # GDAL's raster block cache while writing (its default grows to 5% of RAM)


def require_geo():
    """Imports rasterio and shapely, or says how to install them.

    Returns:
        The ``rasterio`` module (its ``features`` and ``windows`` submodules
            imported).

    Raises:
        ImportError: Naming the missing package and the extra that installs it.
    """
    try:
        import rasterio
        import rasterio.features
        import rasterio.windows
        import shapely  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"GeoTIFF input and polygons need rasterio and shapely ({error.name} is missing): "
            'pip install "keras-unetpp[geo]"'
        ) from None
    return rasterio


def is_geotiff(path: str | Path) -> bool:
    """True for a ``.tif`` / ``.tiff`` file name (case-insensitive)."""
    return Path(path).suffix.lower() in GEOTIFF_SUFFIXES


def predict_geotiff(
    model: keras.Model,
    source: str | Path,
    destination: str | Path,
    tile_size: int = 256,
    overlap: float = 0.25,
    batch_size: int = 8,
    tta=False,
    threshold: float = 0.5,
    probabilities_to: str | Path | None = None,
    progress: bool | None = None,
    input_range=None,
    on_band=None,
) -> Path:
    """Segments a GeoTIFF window by window into a GeoTIFF with the same
    CRS, transform and size.

    The windows of [`predict_tiled()`][keras_unetpp.predict_tiled] are read
    from the raster one by one, and each band of rows is written as soon as
    every window that covers it has been predicted: every pixel is predicted
    once per window that covers it, as ``predict_tiled`` would on the whole
    scene (the result is the same), and memory follows the scene's width,
    not its area (about ``(2 * tile_size) * width * (classes + 2) * 4``
    bytes besides the model). The raster's values become the values the model takes by the rule of
    [`keras_unetpp.values`][keras_unetpp.values] (8-bit rasters need
    nothing; 16-bit ones need ``input_range``). The output is tiled (256 x 256)
    and deflate-compressed.

    Args:
        model: A segmentation model with 1 output channel (binary) or more
            (one per class); its input channels must equal the raster's bands.
        source: The input GeoTIFF.
        destination: The output GeoTIFF.
        tile_size: Window edge of ``predict_tiled``.
        overlap: Window overlap of ``predict_tiled``.
        batch_size: Windows per model call.
        tta: Test-time augmentation, as ``predict_tiled`` takes it (``True``: the
            symmetries the model declares, else the 8 dihedral ones).
        threshold: Foreground threshold of a binary model.
        probabilities_to: Optional second GeoTIFF that receives the float32
            probabilities (one band per output channel), from the same pass.
        progress: Progress bar over windows (default: when there are more than 32).
        input_range: How raster values become the values the model takes
            ([`keras_unetpp.values`][keras_unetpp.values]): None (8-bit as
            it is; other integer types are refused), ``(low, high)``, or
            ``"percentile"`` (each band's 2nd-98th percentile of the pixels that are
            not nodata, computed once over the whole raster from a reduced read, so
            every window gets the same stretch).
        on_band: Optional ``on_band(top, labels, probabilities, valid)``, called for every band of
            rows as it is written (``top``: its first row; ``labels``: the uint8 mask band as written;
            ``probabilities``: float32 (rows, width, classes); ``valid``: bool, False at nodata).
            ``keras-unetpp predict --polygons`` feeds
            [`BandPolygons`][keras_unetpp.polygons.BandPolygons] with it.

    Returns:
        ``destination``: one uint8 band, 255 foreground / 0 background for a
            binary model, the class index (argmax) for a multi-class one.
            Nodata pixels of the source (its nodata value, alpha band or
            mask) are nodata in the output: the binary mask's own dataset mask
            is 0 there (and the band 0), a multi-class mask holds
            ``NODATA_CLASS`` (255, its nodata value), and the probabilities are NaN.

    Raises:
        ImportError: Without the ``geo`` extra.
        FileNotFoundError: If ``source`` does not exist.
        ValueError: For a raster the model cannot take (band count), or bad
            sizes.

    Examples:
        >>> from keras_unetpp import load_model
        >>> model = load_model("buildings.keras")  # doctest: +SKIP
        >>> predict_geotiff(model, "scene.tif", "mask.tif", probabilities_to="probabilities.tif")  # doctest: +SKIP
    """
    rasterio = require_geo()
    from rasterio.windows import Window

    source, destination = Path(source), Path(destination)
    if not source.is_file():
        raise FileNotFoundError(f"No GeoTIFF at {source}.")
    try:
        with _georeference_said_once(rasterio):
            opened = rasterio.open(source)
    except rasterio.errors.RasterioIOError as error:
        raise ValueError(f"{source} is not a readable GeoTIFF ({error}).") from None
    bounds = None
    with _georeference_said_once(rasterio), opened as src:
        if src.crs is None and src.transform.is_identity:
            print(f"{source} has no georeference (no CRS, no transform): it is segmented as an image, and its "
                  "mask and polygons are in pixel coordinates.", file=sys.stderr, flush=True)
        bands, height, width = src.count, src.height, src.width
        info = describe_model(model)
        if info.channels is not None and info.channels != bands:
            raise ValueError(f"The model takes {info.channels} input channel(s); {source} has {bands} band(s).")
        classes = info.classes
        if input_range == "percentile" or (input_range is None and src.dtypes[0] != "uint8"):
            # once for the raster, from an overview of at most ~1024 px a side: the percentiles of the
            # stretch, or the refusal of a type that needs a range (before anything is written)
            factor = max(1, max(height, width) // 1024)
            reduced = (max(1, height // factor), max(1, width // factor))
            sample = np.moveaxis(src.read(out_shape=(bands, *reduced)), 0, -1)
            if input_range == "percentile":  # nodata pixels are no data: they do not enter the stretch
                bounds = resolve_input_range(sample, "percentile", valid=src.dataset_mask(out_shape=reduced) > 0)
            else:
                to_model_values(sample, info.input_range, None, f"{source}", "--input-range")
        # nodata (the raster's nodata value, alpha band or mask) stays nodata: NaN probabilities, and in
        # the mask 0 (binary) or NODATA_CLASS (multi-class) with the output's own dataset mask set to 0
        profile = dict(driver="GTiff", height=height, width=width, crs=src.crs, transform=src.transform,
                       count=1, dtype="uint8", tiled=True, blockxsize=256, blockysize=256, compress="deflate",
                       nodata=None if classes == 1 else NODATA_CLASS)

        def read(top, left, bottom, right):
            array = np.moveaxis(src.read(window=Window(left, top, right - left, bottom - top)), 0, -1)
            return to_model_values(array, info.input_range, input_range, f"{source}", "--input-range", bounds=bounds)

        # the arguments are checked here, before any file is written; windows are read as the bands are written
        bands_of_rows = tiled_bands(model, read, height, width, tile_size=int(tile_size), overlap=overlap,
                                    batch_size=int(batch_size), tta=tta, progress=progress, channels=bands, info=info)

        destination.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as files:
            # GDAL caches blocks up to 5% of RAM by default: bound it, so memory follows the rows, not the scene
            files.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
            dst = files.enter_context(rasterio.open(destination, "w", **profile))
            prob_dst = None
            if probabilities_to is not None:
                Path(probabilities_to).parent.mkdir(parents=True, exist_ok=True)
                prob_dst = files.enter_context(
                    rasterio.open(probabilities_to, "w", **{**profile, "count": classes, "dtype": "float32",
                                                            "nodata": float("nan")}))
            for top, bottom, prob in bands_of_rows:
                window = Window(0, top, width, bottom - top)
                valid = src.dataset_mask(window=window) > 0
                labels = _labels(prob, threshold)
                labels[~valid] = 0 if classes == 1 else NODATA_CLASS
                dst.write(labels, 1, window=window)
                if classes == 1:
                    dst.write_mask(valid.astype(np.uint8) * 255, window=window)
                if prob_dst is not None:
                    prob_dst.write(np.moveaxis(np.where(valid[..., None], prob, np.nan).astype(np.float32), -1, 0),
                                   window=window)
                if on_band is not None:
                    on_band(top, labels, prob, valid)
    return destination


@contextlib.contextmanager
def _georeference_said_once(rasterio):
    """rasterio's NotGeoreferencedWarning silenced: a TIFF without georeference is said once, in words."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        yield


#: The class value of nodata pixels in a multi-class mask (and that file's nodata value).
NODATA_CLASS = 255


def _labels(prob: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 (H, W) as a mask file holds it: 255/0 for one channel, the class for several."""
    labels = predicted_labels(prob, threshold)
    return labels * np.uint8(255) if prob.shape[-1] == 1 else labels


def mask_polygons(
    mask,
    probabilities=None,
    transform=None,
    min_area: int = 0,
    simplify: float = 0.0,
) -> list[dict]:
    """Connected foreground regions as GeoJSON polygon features.

    Regions are 8-connected (as in
    [`remove_small_regions()`][keras_unetpp.postprocessing.remove_small_regions]);
    their outlines follow the pixel edges, mapped by ``transform`` (an
    affine pixel-to-map transform such as a raster's; default: pixel
    coordinates, x to the right and y down). A mask too large for memory goes
    to [`BandPolygons`][keras_unetpp.polygons.BandPolygons] band by band (the same features).

    Args:
        mask: (H, W) foreground mask: bool, or any numbers (non-zero = foreground).
        probabilities: Optional (H, W) probabilities: each feature gets the
            mean probability over its pixels.
        transform: ``affine.Affine`` pixel-to-map transform, or ``None``.
        min_area: Regions of fewer pixels are left out.
        simplify: Douglas-Peucker tolerance in map units (0: exact pixel outlines).

    Returns:
        GeoJSON features in the order GDAL traces them; properties
            ``id`` (1, 2, ...), ``pixels``, ``area`` (in map units squared) and, with
            ``probabilities``, ``mean_probability``.

    Raises:
        ImportError: Without the ``geo`` extra.
        ValueError: For a mask that is not 2-D or a probability map of another size.

    Examples:
        >>> m = np.zeros((4, 6), bool); m[1:3, 1:4] = True
        >>> [f["properties"]["area"] for f in mask_polygons(m)]
        [6.0]
    """
    require_geo()
    from keras_unetpp.polygons import BandPolygons

    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"mask_polygons needs an (H, W) mask, got shape {mask.shape}.")
    if probabilities is not None:
        probabilities = np.asarray(probabilities, np.float64)
        if probabilities.shape[:2] != mask.shape:
            raise ValueError(f"probabilities of shape {probabilities.shape} do not match the mask's {mask.shape}.")
    stream = BandPolygons(mask.shape[1], transform, min_area=min_area, simplify=simplify)
    return list(stream.add(mask, probabilities)) + list(stream.finish())


def write_geojson(path: str | Path, features, crs=None) -> Path:
    """Writes features as a GeoJSON FeatureCollection, one at a time
    ([`FeatureWriter`][keras_unetpp.feature_files.FeatureWriter], which also writes GeoPackage and FlatGeobuf).

    Args:
        path: Output file.
        features: GeoJSON features, a list or any iterable (e.g. from
            [`mask_polygons()`][keras_unetpp.geo.mask_polygons]).
        crs: The coordinates' CRS (a ``rasterio.crs.CRS`` or anything with
            ``to_epsg()``), written as the ``crs`` member that QGIS and GDAL
            read; ``None`` for pixel coordinates. A CRS without an EPSG code
            (``+proj=lcc ...``) cannot be named in GeoJSON: the features are
            reprojected to WGS 84 (EPSG:4326, GeoJSON's own CRS) and a note says so.

    Returns:
        ``path``.
    """
    from keras_unetpp.feature_files import FeatureWriter

    with FeatureWriter(path, crs) as out:
        for feature in features:
            out.write(feature)
    return Path(path)
