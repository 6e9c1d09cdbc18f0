"""The keras-unetpp command line and the GeoTIFF / polygon helpers, checked
against scenes whose foreground is known by construction."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_unetpp.cli import main

rasterio = pytest.importorskip("rasterio", reason="the geo extra (rasterio, shapely) is not installed")
from rasterio.transform import from_origin  # noqa: E402

CRS = "EPSG:32640"  # UTM 40N, where Dubai lies
TRANSFORM = from_origin(500000.0, 2800000.0, 0.5, 0.5)  # 0.5 m pixels


def red_model(path):
    """A saved 1x1-convolution model: probability > 0.5 exactly where red > 128."""
    inputs = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(1, 1, activation="sigmoid")
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([np.array([0.2, 0.0, 0.0], "float32").reshape(1, 1, 3, 1), np.array([-0.2 * 128.5], "float32")])
    model.save(path)
    return path


def scene(height=120, width=200):
    """uint8 RGB noise (red <= 100) with two red rectangles; their mask."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 100, (height, width, 3), dtype=np.uint8)
    truth = np.zeros((height, width), bool)
    truth[20:60, 30:110] = True
    truth[80:90, 150:154] = True  # 40 px: a small region
    image[truth, 0] = 250
    return image, truth


def write_geotiff(path, image):
    with rasterio.open(path, "w", driver="GTiff", height=image.shape[0], width=image.shape[1], count=image.shape[2],
                       dtype="uint8", crs=CRS, transform=TRANSFORM) as dst:
        dst.write(np.moveaxis(image, -1, 0))
    return path


def test_geotiff_in_geotiff_and_polygons_out_in_map_coordinates(tmp_path):
    image, truth = scene()
    tif = write_geotiff(tmp_path / "scene.tif", image)
    model = red_model(tmp_path / "red.keras")
    shapes = tmp_path / "shapes.geojson"
    # in a subprocess, as a user runs it; blocks smaller than the scene exercise the windowed path
    result = subprocess.run(
        [sys.executable, "-m", "keras_unetpp", "predict", str(model), str(tif), "--out", str(tmp_path / "out"),
         "--tile", "64", "--polygons", str(shapes), "--min-area", "41", "--probabilities"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    with rasterio.open(tmp_path / "out" / "scene_mask.tif") as out:
        assert out.crs.to_string() == CRS and out.transform == TRANSFORM
        assert (out.height, out.width, out.count, out.dtypes[0]) == (120, 200, 1, "uint8")
        np.testing.assert_array_equal(out.read(1), np.where(truth, 255, 0))
    with rasterio.open(tmp_path / "out" / "scene_probabilities.tif") as out:
        prob = out.read(1)
    expected = 1 / (1 + np.exp(-0.2 * (image[..., 0].astype(np.float64) - 128.5)))
    np.testing.assert_allclose(prob, expected, atol=1e-5)

    collection = json.loads(shapes.read_text())
    assert collection["crs"]["properties"]["name"].endswith("EPSG::32640")
    [feature] = collection["features"]  # the 40-pixel region is under --min-area 41
    xs, ys = zip(*feature["geometry"]["coordinates"][0])
    # rows 20-60, columns 30-110 of 0.5 m pixels from (500000, 2800000), y pointing north
    assert (min(xs), max(xs)) == (500000.0 + 30 * 0.5, 500000.0 + 110 * 0.5)
    assert (min(ys), max(ys)) == (2800000.0 - 60 * 0.5, 2800000.0 - 20 * 0.5)
    assert feature["properties"]["area"] == pytest.approx(40 * 80 * 0.25)
    assert feature["properties"]["pixels"] == 40 * 80
    assert feature["properties"]["mean_probability"] == pytest.approx(expected[20:60, 30:110].mean(), abs=1e-3)
    assert feature["properties"]["source"] == "scene.tif"


def blob_scene(height=230, width=150, seed=3):
    """Red blobs of every size (rings with islands, regions tall enough to span several bands)."""
    rng = np.random.default_rng(seed)
    truth = cv2.resize((rng.random((height // 6, width // 6)) < 0.45).astype(np.uint8), (width, height),
                       interpolation=cv2.INTER_NEAREST).astype(bool)
    truth[100:140, 20:60] = True
    truth[110:130, 30:50] = False   # a hole
    truth[118:122, 38:42] = True    # an island in it
    image = rng.integers(0, 100, (height, width, 3), dtype=np.uint8)
    image[truth, 0] = rng.integers(200, 256, int(truth.sum()), dtype=np.uint8)
    return image, truth


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".fgb"])
def test_streamed_geotiff_polygons_equal_whole_scene_polygons(tmp_path, suffix):
    import pyogrio
    import rasterio.features
    import scipy.ndimage
    import shapely

    image, truth = blob_scene()
    tif = write_geotiff(tmp_path / "scene.tif", image)
    shapes = tmp_path / f"shapes{suffix}"
    # tiles of 32: the mask is written (and its polygons joined) in bands of a few dozen rows
    assert main(["predict", str(red_model(tmp_path / "red.keras")), str(tif), "--out", str(tmp_path / "out"),
                 "--tile", "32", "--polygons", str(shapes), "--min-area", "3"]) == 0
    # the reference: the whole known mask, labelled by scipy and traced by rasterio in one call
    labels, count = scipy.ndimage.label(truth, structure=np.ones((3, 3)))
    prob = 1 / (1 + np.exp(-0.2 * (image[..., 0].astype(np.float64) - 128.5)))
    want = []
    for geometry, value in rasterio.features.shapes(labels.astype(np.int32), mask=labels > 0, connectivity=8,
                                                    transform=TRANSFORM):
        region = labels == value
        if region.sum() >= 3:
            want.append((shapely.geometry.shape(geometry), int(region.sum()), prob[region].mean()))
    info = pyogrio.read_info(str(shapes))
    assert info["crs"] == CRS and info["features"] == len(want) >= 10
    meta, _, wkb, fields = pyogrio.raw.read(str(shapes))
    geometries, columns = shapely.from_wkb(wkb), dict(zip(meta["fields"], fields))
    for geometry, pixels, mean in zip(geometries, columns["pixels"], columns["mean_probability"]):
        match = [w for w in want if w[1] == pixels and w[0].equals(geometry)]
        assert len(match) == 1, f"no whole-scene region equals {geometry.wkt[:80]}"
        assert mean == pytest.approx(match[0][2], abs=1e-4)
        want.remove(match[0])
    assert not want


def test_polygons_need_a_known_suffix(tmp_path, capsys):
    image, _ = scene()
    cv2.imwrite(str(tmp_path / "a.png"), image)
    code = main(["predict", str(red_model(tmp_path / "red.keras")), str(tmp_path / "a.png"), "--out",
                 str(tmp_path / "out"), "--polygons", str(tmp_path / "shapes.shp")])
    assert code != 0 and ".gpkg (GeoPackage)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()   # refused before any work


def test_png_folder_in_png_masks_out_with_small_regions_removed(tmp_path):
    image, truth = scene()
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(folder / f"{name}.png"), image[..., ::-1])
    model = red_model(tmp_path / "red.keras")
    assert main(["predict", str(model), str(folder), "--out", str(tmp_path / "out"), "--tile", "64",
                 "--min-area", "41", "--probabilities"]) == 0
    big_only = truth.copy()
    big_only[80:90, 150:154] = False
    for name in ("a", "b"):
        mask = cv2.imread(str(tmp_path / "out" / f"{name}_mask.png"), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(mask, np.where(big_only, 255, 0))
        prob = cv2.imread(str(tmp_path / "out" / f"{name}_probabilities.png"), cv2.IMREAD_GRAYSCALE)
        expected = 1 / (1 + np.exp(-0.2 * (image[..., 0].astype(np.float64) - 128.5)))
        assert np.abs(prob.astype(np.float64) - expected * 255).max() <= 0.51


def test_evaluate_prints_the_report_and_writes_error_maps(tmp_path, capsys):
    image, truth = scene()
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "s.png"), image[..., ::-1])
    shifted = np.roll(truth, 5, axis=1)  # the "true" mask is off by 5 columns from what the model sees
    cv2.imwrite(str(tmp_path / "masks" / "s.png"), shifted.astype(np.uint8) * 255)
    model = red_model(tmp_path / "red.keras")
    assert main(["evaluate", str(model), "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
                 "--out", str(tmp_path / "eval"), "--tile", "64"]) == 0
    tp = np.sum(truth & shifted)
    iou = tp / np.sum(truth | shifted)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["overall"]["iou"] == pytest.approx(iou)
    assert metrics["overall"]["precision"] == pytest.approx(tp / truth.sum())
    assert (tmp_path / "eval" / "s_error_map.png").is_file()
    assert f"{iou:.3f}" in capsys.readouterr().out


@settings(max_examples=8, deadline=None)
@given(height=st.integers(20, 90), width=st.integers(20, 90), batch=st.integers(1, 9))
def test_windowed_geotiff_equals_whole_scene_prediction(tmp_path_factory, height, width, batch):
    """A 3x3 convolution: the windows, read from the file and written band by
    band as they finish, give what the model gives on the whole scene at once."""
    from keras_unetpp.geo import predict_geotiff

    tmp = tmp_path_factory.mktemp("geo")
    rng = np.random.default_rng(height * 97 + width)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    tif = write_geotiff(tmp / "s.tif", image)
    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs / 255.0))
    predict_geotiff(model, tif, tmp / "m.tif", tile_size=16, overlap=0.5, batch_size=batch,
                    probabilities_to=tmp / "p.tif", progress=False)
    whole = model.predict(image[None].astype("float32"), verbose=0)[0, ..., 0]
    with rasterio.open(tmp / "p.tif") as out:
        np.testing.assert_allclose(out.read(1), whole, atol=1e-5)
    with rasterio.open(tmp / "m.tif") as out:
        np.testing.assert_array_equal(out.read(1), np.where(whole >= 0.5, 255, 0))


def test_geotiff_windows_are_read_once_and_rows_written_once(tmp_path, monkeypatch):
    """Each window's pixels are read from the raster once (no block re-read
    with context), and every row of the output is written exactly once."""
    import rasterio.io

    from keras_unetpp.geo import predict_geotiff
    from keras_unetpp.inference import count_windows

    image = np.random.default_rng(3).integers(0, 255, (100, 70, 3), dtype=np.uint8)
    tif = write_geotiff(tmp_path / "s.tif", image)
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs / 255.0))
    reads, rows_written = [], np.zeros(100, np.int32)
    real_read, real_write = rasterio.io.DatasetReader.read, rasterio.io.DatasetWriter.write

    def read(self, *args, **kwargs):
        if kwargs.get("window") is not None:
            reads.append(kwargs["window"])
        return real_read(self, *args, **kwargs)

    def write(self, array, indexes=None, window=None, **kwargs):
        if Path(self.name).name == "m.tif":
            rows_written[int(window.row_off) : int(window.row_off + window.height)] += 1
        return real_write(self, array, indexes, window=window, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", read)
    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", write)
    predict_geotiff(model, tif, tmp_path / "m.tif", tile_size=32, overlap=0.25, batch_size=3, progress=False)
    assert len(reads) == count_windows(100, 70, 32, 0.25)
    assert all(w.height <= 32 and w.width <= 32 for w in reads)
    np.testing.assert_array_equal(rows_written, 1)


def test_mask_polygons_match_scipy_regions():
    import scipy.ndimage

    from keras_unetpp.geo import mask_polygons

    rng = np.random.default_rng(5)
    mask = scipy.ndimage.binary_opening(rng.random((60, 70)) > 0.6)
    labels, count = scipy.ndimage.label(mask, structure=np.ones((3, 3)))
    features = mask_polygons(mask)
    assert sorted(f["properties"]["pixels"] for f in features) == sorted(np.bincount(labels.ravel())[1:])
    # with unit pixels and pixel coordinates, the outline's area is the pixel count
    for feature in features:
        assert feature["properties"]["area"] == pytest.approx(feature["properties"]["pixels"])


def test_bad_inputs_name_the_problem(tmp_path, capsys):
    image, _ = scene()
    four_bands = write_geotiff(tmp_path / "four.tif", np.concatenate([image, image[..., :1]], -1))
    model = red_model(tmp_path / "red.keras")
    assert main(["predict", str(model), str(four_bands), "--out", str(tmp_path / "o")]) == 2
    assert "takes 3 input channel(s)" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing.keras"), str(four_bands), "--out", str(tmp_path / "o")]) == 2
    assert "missing.keras" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="No file or folder"):
        main(["predict", str(model), str(tmp_path / "nothing.png"), "--out", str(tmp_path / "o")])


def test_missing_geo_extra_says_how_to_install(monkeypatch):
    from keras_unetpp.geo import require_geo

    monkeypatch.setitem(sys.modules, "rasterio", None)
    with pytest.raises(ImportError, match=r'pip install "keras-unetpp\[geo\]"'):
        require_geo()


def test_nodata_collar_stays_nodata_and_yields_no_polygons(tmp_path):
    """An orthomosaic's black collar (nodata 0) is not segmented: NaN probabilities, the mask's own
    dataset mask 0 there, no polygons from it, even for a model that calls everything foreground."""
    inputs = keras.Input((None, None, 3))
    always = keras.layers.Conv2D(1, 1, activation="sigmoid", kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(5.0))
    keras.Model(inputs, always(inputs)).save(tmp_path / "always.keras")
    image = np.full((60, 80, 3), 120, np.uint8)
    image[:, :20] = 0  # the collar
    path = tmp_path / "ortho.tif"
    with rasterio.open(path, "w", driver="GTiff", height=60, width=80, count=3, dtype="uint8", crs=CRS,
                       transform=TRANSFORM, nodata=0) as dst:
        dst.write(np.moveaxis(image, -1, 0))
    polygons = tmp_path / "p.geojson"
    assert main(["predict", str(tmp_path / "always.keras"), str(path), "--out", str(tmp_path / "o"),
                 "--tile", "32", "--probabilities", "--polygons", str(polygons)]) == 0
    with rasterio.open(tmp_path / "o" / "ortho_probabilities.tif") as src:
        prob = src.read(1)
    assert np.isnan(prob[:, :20]).all() and (prob[:, 20:] > 0.99).all()
    with rasterio.open(tmp_path / "o" / "ortho_mask.tif") as src:
        assert (src.dataset_mask()[:, :20] == 0).all() and (src.dataset_mask()[:, 20:] == 255).all()
        assert (src.read(1)[:, :20] == 0).all() and (src.read(1)[:, 20:] == 255).all()
    features = json.loads(polygons.read_text())["features"]
    assert len(features) == 1 and features[0]["properties"]["pixels"] == 60 * 60


def test_sixteen_bit_geotiff_needs_its_range_and_then_matches_the_eight_bit_scene(tmp_path):
    """A 12-bit scene stored as uint16: refused without --input-range (exit 2, nothing written); with
    the range, or with the per-band percentile stretch computed once for the raster, it is segmented
    as its 8-bit copy is."""
    red_model(tmp_path / "red.keras")
    image, _ = scene()
    eight = write_geotiff(tmp_path / "eight.tif", image)
    twelve = tmp_path / "twelve.tif"
    with rasterio.open(twelve, "w", driver="GTiff", height=image.shape[0], width=image.shape[1], count=3,
                       dtype="uint16", crs=CRS, transform=TRANSFORM) as dst:
        dst.write(np.moveaxis(image.astype(np.uint16) * 16, -1, 0))  # 0..4080 of 0..4095
    assert main(["predict", str(tmp_path / "red.keras"), str(twelve), "--out", str(tmp_path / "refused")]) == 2
    assert not (tmp_path / "refused" / "twelve_mask.tif").exists()
    assert main(["predict", str(tmp_path / "red.keras"), str(eight), "--out", str(tmp_path / "a")]) == 0
    assert main(["predict", str(tmp_path / "red.keras"), str(twelve), "--out", str(tmp_path / "b"),
                 "--input-range", "0", "4080"]) == 0
    with rasterio.open(tmp_path / "a" / "eight_mask.tif") as a, rasterio.open(tmp_path / "b" / "twelve_mask.tif") as b:
        np.testing.assert_array_equal(b.read(1), a.read(1))
    assert main(["predict", str(tmp_path / "red.keras"), str(twelve), "--out", str(tmp_path / "c"),
                 "--input-range", "percentile"]) == 0
    with rasterio.open(tmp_path / "c" / "twelve_mask.tif") as c:
        assert c.read(1).shape == image.shape[:2] and c.read(1).any()


def test_crs_without_epsg_code_gives_geojson_in_wgs84_and_says_so(tmp_path, capsys):
    from rasterio.crs import CRS as RasterCRS
    from rasterio.warp import transform as reproject_points

    image, _ = scene()
    lcc = RasterCRS.from_proj4("+proj=lcc +lat_1=24 +lat_2=26 +lat_0=25 +lon_0=55 +x_0=0 +y_0=0 +ellps=WGS84 +units=m")
    assert lcc.to_epsg() is None
    tif = tmp_path / "lcc.tif"
    with rasterio.open(tif, "w", driver="GTiff", height=image.shape[0], width=image.shape[1], count=3, dtype="uint8",
                       crs=lcc, transform=from_origin(1000.0, 2000.0, 0.5, 0.5)) as dst:
        dst.write(np.moveaxis(image, -1, 0))
    shapes = tmp_path / "shapes.geojson"
    assert main(["predict", str(red_model(tmp_path / "red.keras")), str(tif), "--out", str(tmp_path / "o"),
                 "--polygons", str(shapes)]) == 0
    assert "reprojected to WGS 84" in capsys.readouterr().err
    collection = json.loads(shapes.read_text())
    assert collection["crs"]["properties"]["name"].endswith("EPSG::4326")
    # the corner of the big rectangle (row 20, column 30) lands where rasterio's own transform puts it
    xs, ys = reproject_points(lcc, "EPSG:4326", [1000.0 + 30 * 0.5], [2000.0 - 20 * 0.5])
    corners = np.array([c for f in collection["features"] for c in f["geometry"]["coordinates"][0]])
    assert np.min(np.hypot(corners[:, 0] - xs[0], corners[:, 1] - ys[0])) < 1e-6


def test_tiff_without_georeference_is_said_once_in_words(tmp_path, capfd):
    image, truth = scene()
    tif = tmp_path / "plain.tif"
    with rasterio.open(tif, "w", driver="GTiff", height=image.shape[0], width=image.shape[1], count=3,
                       dtype="uint8") as dst:
        dst.write(np.moveaxis(image, -1, 0))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", rasterio.errors.NotGeoreferencedWarning)
        assert main(["predict", str(red_model(tmp_path / "red.keras")), str(tif), "--out", str(tmp_path / "o")]) == 0
    err = capfd.readouterr().err
    assert err.count("has no georeference") == 1 and "NotGeoreferencedWarning" not in err
    with rasterio.open(tmp_path / "o" / "plain_mask.tif") as src:
        np.testing.assert_array_equal(src.read(1) > 0, truth)


def test_whole_mask_options_on_a_geotiff_are_refused_not_ignored(tmp_path, capsys):
    image, _ = scene()
    tif = write_geotiff(tmp_path / "scene.tif", image)
    for option in (["--keep-largest", "1"], ["--fill-holes"]):
        assert main(["predict", str(red_model(tmp_path / "red.keras")), str(tif), "--out", str(tmp_path / "o"),
                     *option]) == 2
        assert "window by window" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
