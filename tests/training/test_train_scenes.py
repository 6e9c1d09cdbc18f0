"""Training samples from GeoTIFF scenes and vector footprints, checked against masks known by
construction (rectangles on the pixel grid, cut with numpy slicing)."""

from __future__ import annotations

import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio", reason="the geo extra is not installed: pip install -e '.[geo]'")
pytest.importorskip("pyogrio", reason="the geo extra is not installed: pip install -e '.[geo]'")
import pyogrio  # noqa: E402
import shapely  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402
from rasterio.warp import transform_geom  # noqa: E402

from keras_unetpp.cli import main  # noqa: E402
from keras_unetpp.datasets.scenes import footprint_classes, load_scene_chips  # noqa: E402

CRS = "EPSG:32640"
TRANSFORM = from_origin(500000.0, 2800000.0, 0.5, 0.5)
#: footprints as pixel rectangles (row0, row1, col0, col1) of a 100 x 140 scene
RECTS = [(10, 30, 20, 60), (50, 95, 100, 130)]


def write_scene(path, height=100, width=140, nodata_rows=None):
    image = np.random.default_rng(0).integers(1, 255, (height, width, 3), dtype=np.uint8)
    profile = dict(driver="GTiff", height=height, width=width, count=3, dtype="uint8", crs=CRS,
                   transform=TRANSFORM)
    if nodata_rows is not None:
        image[nodata_rows] = 0
        profile["nodata"] = 0
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(image, -1, 0))
    return image


def rectangle(row0, row1, col0, col1):
    """The map rectangle covering exactly those pixels."""
    (x0, y0), (x1, y1) = TRANSFORM * (col0, row0), TRANSFORM * (col1, row1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def write_footprints(path, crs=CRS, kinds=None):
    """The RECTS as polygons; ``kinds``: a ``kind`` attribute per rectangle."""
    shapes = [rectangle(*r) for r in RECTS]
    if crs != CRS:
        shapes = [shapely.geometry.shape(transform_geom(CRS, crs, shapely.geometry.mapping(s))) for s in shapes]
    columns, names = [np.arange(len(shapes))], ["id"]
    if kinds is not None:
        columns, names = columns + [np.array(kinds, object if isinstance(kinds[0], str) else None)], names + ["kind"]
    pyogrio.raw.write(str(path), shapely.to_wkb(np.array(shapes, object)), columns, names,
                      geometry_type="Polygon", crs=crs)
    return path


def expected_mask(height=100, width=140):
    mask = np.zeros((height, width), np.uint8)
    for row0, row1, col0, col1 in RECTS:
        mask[row0:row1, col0:col1] = 1
    return mask


def stitch(chips, height=100, width=140):
    """The chips' masks put back at the places their names give."""
    mask = np.full((height, width), 9, np.uint8)
    for chip in chips:
        place = chip.name.split("@")[1]
        top, left = (int(v) for v in place[1:].split("c"))
        mask[top:top + chip.mask.shape[0], left:left + chip.mask.shape[1]] = chip.mask[..., 0]
    return mask


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".fgb"])
def test_footprints_become_the_masks_of_the_chips(tmp_path, suffix):
    (tmp_path / "scenes").mkdir()
    image = write_scene(tmp_path / "scenes" / "a.tif")
    chips = load_scene_chips(tmp_path / "scenes", write_footprints(tmp_path / f"f{suffix}"), chip_size=32)
    assert len(chips) == 4 * 5   # 100 x 140 in chips of 32: edge chips shorter
    np.testing.assert_array_equal(stitch(chips), expected_mask())
    first = next(c for c in chips if c.name.endswith("@r32c64"))
    np.testing.assert_array_equal(first.image, image[32:64, 64:96])


@pytest.mark.parametrize(("kinds", "want"), [(["tree", "building"], [2, 1]), ([3, 1], [3, 1])])
def test_an_attribute_gives_each_footprint_its_class(tmp_path, kinds, want):
    """Names become classes 1..K in sorted order; whole numbers are the class indices themselves."""
    write_scene(tmp_path / "a.tif")
    chips = load_scene_chips(tmp_path / "a.tif", write_footprints(tmp_path / "f.gpkg", kinds=kinds), 32, field="kind")
    expected = np.zeros((100, 140), np.uint8)
    for (row0, row1, col0, col1), label in zip(RECTS, want):
        expected[row0:row1, col0:col1] = label
    np.testing.assert_array_equal(stitch(chips), expected)


def test_bad_class_attributes_are_named(tmp_path):
    write_scene(tmp_path / "a.tif")
    with pytest.raises(ValueError, match=r"no attribute 'class'; it has \['id', 'kind'\]"):
        load_scene_chips(tmp_path / "a.tif", write_footprints(tmp_path / "f.gpkg", kinds=["a", "b"]), field="class")
    with pytest.raises(ValueError, match="class numbers start at 1"):
        load_scene_chips(tmp_path / "a.tif", write_footprints(tmp_path / "g.gpkg", kinds=[0, 1]), field="kind")
    with pytest.raises(ValueError, match="1 footprint\\(s\\) have no 'kind'"):
        footprint_classes(["a", None], "kind")


def test_footprints_in_another_crs_are_reprojected_onto_the_grid(tmp_path):
    (tmp_path / "scenes").mkdir()
    write_scene(tmp_path / "scenes" / "a.tif")
    chips = load_scene_chips(tmp_path / "scenes", write_footprints(tmp_path / "f.geojson", "EPSG:4326"), 64)
    got, want = stitch(chips, 100, 140), expected_mask()
    # a rectangle in UTM is not one in degrees: the edges may move by a pixel, no more
    assert (got & want).sum() / (got | want).sum() > 0.95
    assert np.abs(got.astype(int) - want).sum() <= 2 * sum((r1 - r0) + (c1 - c0) for r0, r1, c0, c1 in RECTS)


def test_chips_holding_nodata_are_left_out_and_one_scene_splits_by_quarter(tmp_path, capsys):
    write_scene(tmp_path / "a.tif", nodata_rows=slice(0, 5))
    chips = load_scene_chips(tmp_path / "a.tif", write_footprints(tmp_path / "f.gpkg"), chip_size=50)
    # chip centres at columns 25, 75, 120 of 140: left, right, right of the middle (70)
    assert sorted(c.name for c in chips) == ["a.q2@r50c0", "a.q3@r50c100", "a.q3@r50c50"]
    assert "3 chip(s) holding nodata left out of 6" in capsys.readouterr().err


def test_bad_scene_inputs_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no GeoTIFF"):
        load_scene_chips(tmp_path / "empty", write_footprints(tmp_path / "f.gpkg"))
    write_scene(tmp_path / "a.tif")
    pyogrio.raw.write(str(tmp_path / "points.gpkg"), shapely.to_wkb(np.array([shapely.Point(500010, 2799990)])),
                      [np.array([1])], ["id"], geometry_type="Point", crs=CRS)
    with pytest.raises(ValueError, match="holds no polygon"):
        load_scene_chips(tmp_path / "a.tif", tmp_path / "points.gpkg")
    with pytest.raises(ValueError, match="No label file"):
        load_scene_chips(tmp_path / "a.tif", tmp_path / "missing.gpkg")


def test_train_command_plans_from_scenes_and_footprints(tmp_path, capsys):
    (tmp_path / "scenes").mkdir()
    for name in ("east", "west"):
        write_scene(tmp_path / "scenes" / f"{name}.tif")
    labels = write_footprints(tmp_path / "f.gpkg")
    assert main(["train", "--scenes", str(tmp_path / "scenes"), "--labels", str(labels), "--out",
                 str(tmp_path / "run"), "--dry-run", "--time-budget", "10m"]) == 0
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["fingerprint"]["images"] == 1   # one scene's chips train, the other's validate
    assert "plan (dry run" in capsys.readouterr().out
    assert main(["train", "--scenes", str(tmp_path / "scenes"), "--out", str(tmp_path / "r2"), "--dry-run"]) == 2
    assert "--scenes and --labels" in capsys.readouterr().err


def test_train_command_takes_classes_from_an_attribute(tmp_path, capsys):
    (tmp_path / "scenes").mkdir()
    for name in ("east", "west"):
        write_scene(tmp_path / "scenes" / f"{name}.tif")
    labels = write_footprints(tmp_path / "f.gpkg", kinds=["tree", "building"])
    assert main(["train", "--scenes", str(tmp_path / "scenes"), "--labels", str(labels), "--label-field", "kind",
                 "--out", str(tmp_path / "run"), "--dry-run", "--time-budget", "10m"]) == 0
    saved = json.loads((tmp_path / "run" / "plan.json").read_text())["fingerprint"]
    assert saved["classes"] == 3 and saved["class_names"] == ["background", "building", "tree"]
    assert "classes from 'kind': 0 background, 1 building, 2 tree" in capsys.readouterr().out
    assert main(["train", "--images", str(tmp_path), "--masks", str(tmp_path), "--label-field", "kind",
                 "--out", str(tmp_path / "r2"), "--dry-run"]) == 2
    assert "needs --scenes/--labels" in capsys.readouterr().err


@pytest.mark.slow
def test_sixteen_bit_scenes_train_classes_end_to_end(tmp_path):
    """Two 12-bit scenes whose footprints carry a class name: training within the budget, class
    scores in metrics.json, and a model that ``keras-unetpp predict`` runs on the GeoTIFF itself."""
    import time

    (tmp_path / "scenes").mkdir()
    rng = np.random.default_rng(0)
    for name in ("east", "west"):
        levels = rng.normal(1000, 150, (100, 140)).clip(0, 4095)
        for (row0, row1, col0, col1), level in zip(RECTS, (3000, 2000)):   # building bright, tree mid-grey
            levels[row0:row1, col0:col1] = rng.normal(level, 150, (row1 - row0, col1 - col0))
        image = np.repeat(levels.astype(np.uint16)[None], 3, axis=0)
        with rasterio.open(tmp_path / "scenes" / f"{name}.tif", "w", driver="GTiff", height=100, width=140, count=3,
                           dtype="uint16", crs=CRS, transform=TRANSFORM) as dst:
            dst.write(image)
    labels = write_footprints(tmp_path / "f.gpkg", kinds=["building", "tree"])
    from keras_unetpp.training import train

    start = time.perf_counter()
    result = train(None, None, tmp_path / "run", scenes=tmp_path / "scenes", labels=labels, label_field="kind",
                   kind="overhead", encoder="none", time_budget="45s",
                   overrides={"crop": 32, "filters": [4, 8, 16], "batch_size": 4})
    assert time.perf_counter() - start < 45 * 1.1
    assert result["fingerprint"]["bit_depth"] == 12 and result["fingerprint"]["class_names"][1:] == ["building",
                                                                                                      "tree"]
    assert len(result["per_class_iou"]) == 3 and 0.0 <= result["mean_iou"] <= 1.0
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Mean IoU over the classes present" in report and "building" in report
    assert main(["predict", str(tmp_path / "run" / "model.keras"), str(tmp_path / "scenes" / "west.tif"),
                 "--out", str(tmp_path / "predicted")]) == 0
    written = sorted(p.name for p in (tmp_path / "predicted").iterdir())
    with rasterio.open(tmp_path / "predicted" / written[0]) as src:
        assert src.crs == rasterio.crs.CRS.from_user_input(CRS) and (src.height, src.width) == (100, 140)
