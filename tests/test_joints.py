"""Every kind of file the library saves, driven through every entry point.

Each artefact is built, trained for a step and saved the way the examples save
theirs; then it is loaded and used by ``predict``, ``predict_tiled``,
``predict_augmented``, ``keras-unetpp predict`` (PNG, JPEG, GeoTIFF,
``--polygons``, ``--tta``, ``--probabilities``), ``keras-unetpp evaluate`` and
``keras-unetpp export``. References are computed differently from the path
under test: whole-image ``model.predict`` for the tiled and command-line
paths, numpy rotations and flips for test-time augmentation, scipy's
connected components for the polygons, numpy counts for IoU, and each export
runtime against Keras.
"""

from __future__ import annotations

import json

import cv2
import keras
import numpy as np
import pytest
import scipy.ndimage
from joint_artefacts import KINDS, SIZE, scene

from keras_unetpp import load_model, predict_tiled
from keras_unetpp.cli import main
from keras_unetpp.inference import predict_augmented

pytestmark = pytest.mark.slow  # trains, runs subprocesses or exports: the full lane only

TOLERANCE = {"mixed_precision": 2e-2}


@pytest.fixture(scope="module")
def artefacts(saved_artefacts):
    return saved_artefacts


def model_input(kind: str, image: np.ndarray) -> np.ndarray:
    """The values each kind takes, written out per kind: raw 0..255 for the segmenter, [0, 1] otherwise."""
    return image.astype("float32") if kind == "segmenter" else (image / 255.0).astype("float32")


def whole_image(model, kind, image):
    return model.predict(model_input(kind, image)[None], verbose=0)[0]


def labels_of(prob):
    return (prob[..., 0] >= 0.5).astype(np.uint8) if prob.shape[-1] == 1 else prob.argmax(-1).astype(np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_loaded_file_predicts_like_its_model_and_tiles_agree(artefacts, kind):
    folder, saved = artefacts
    image, _ = scene()
    model = load_model(saved[kind])
    expected = whole_image(model, kind, image)
    assert expected.shape == (SIZE, SIZE, 3 if kind == "multiclass" else 1)
    assert expected.dtype == np.float32
    tiled = predict_tiled(model, model_input(kind, image), tile_size=SIZE)
    np.testing.assert_allclose(tiled, expected, atol=TOLERANCE.get(kind, 1e-5))
    # uint8 straight in: the one rule maps it onto the model's range (segmenter: as it is, others: / 255)
    np.testing.assert_allclose(predict_tiled(model, image, tile_size=SIZE, input_range=(0, 255)), expected,
                               atol=TOLERANCE.get(kind, 1e-5))


@pytest.mark.parametrize("kind", KINDS)
def test_tta_equals_the_mean_over_the_eight_symmetries(artefacts, kind):
    _, saved = artefacts
    image, _ = scene()
    model = load_model(saved[kind])
    x = model_input(kind, image)
    reference = []
    for k in range(4):
        for flip in (False, True):
            t = np.rot90(x, k, axes=(0, 1))
            t = t[:, ::-1] if flip else t
            p = model.predict(np.ascontiguousarray(t)[None], verbose=0)[0]
            p = p[:, ::-1] if flip else p
            reference.append(np.rot90(p, -k, axes=(0, 1)))
    got = predict_augmented(model, x[None], tta=True)[0]
    np.testing.assert_allclose(got, np.mean(reference, axis=0), atol=TOLERANCE.get(kind, 1e-5))


@pytest.mark.parametrize("kind", KINDS)
def test_command_predict_on_png_and_jpeg_equals_predict(artefacts, kind, tmp_path):
    folder, saved = artefacts
    image, _ = scene()
    model = load_model(saved[kind])
    jpeg = tmp_path / "photo.jpg"
    cv2.imwrite(str(jpeg), image[..., ::-1])
    assert main(["predict", str(saved[kind]), str(folder / "scene.png"), str(jpeg), "--out", str(tmp_path / "o"),
                 "--tile", str(SIZE), "--probabilities"]) == 0
    for path, pixels in ((folder / "scene.png", image), (jpeg, cv2.imread(str(jpeg))[..., ::-1])):
        prob = whole_image(model, kind, pixels)
        written = cv2.imread(str(tmp_path / "o" / f"{path.stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        expected = labels_of(prob) * (255 if prob.shape[-1] == 1 else 1)
        disagree = np.mean(written != expected)
        assert disagree <= (0.01 if kind == "mixed_precision" else 0.0), (path.name, disagree)
        first = "_probabilities.png" if prob.shape[-1] == 1 else "_probabilities_class0.png"
        probabilities = cv2.imread(str(tmp_path / "o" / f"{path.stem}{first}"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_allclose(probabilities / 255.0, prob[..., 0], atol=1 / 255 + TOLERANCE.get(kind, 1e-5))


@pytest.mark.parametrize("kind", KINDS)
def test_command_predicts_images_of_several_sizes_in_one_run(artefacts, kind, tmp_path):
    """One command over images of four sizes, each no larger than a tile (so each
    is predicted whole, and the model meets a new size every time): every mask
    equals whole-image predict of a fresh copy of the model."""
    folder, saved = artefacts
    image, _ = scene()
    crops = {f"crop_{h}x{w}.png": image[:h, :w] for h, w in ((SIZE, SIZE), (40, 56), (33, 47), (20, 24))}
    for name, pixels in crops.items():
        cv2.imwrite(str(tmp_path / name), pixels[..., ::-1])
    assert main(["predict", str(saved[kind]), *(str(tmp_path / n) for n in crops), "--out", str(tmp_path / "o"),
                 "--tile", str(SIZE)]) == 0
    for name, pixels in crops.items():
        fresh = load_model(saved[kind])  # a model that has seen one size only
        expected = labels_of(whole_image(fresh, kind, pixels)) * (255 if kind != "multiclass" else 1)
        written = cv2.imread(str(tmp_path / "o" / name.replace(".png", "_mask.png")), cv2.IMREAD_UNCHANGED)
        assert written.shape == pixels.shape[:2], name
        assert np.mean(written != expected) <= (0.01 if kind == "mixed_precision" else 0.0), name


@pytest.mark.parametrize("kind", KINDS)
def test_command_predict_with_tta_equals_predict_augmented(artefacts, kind, tmp_path):
    folder, saved = artefacts
    image, _ = scene()
    model = load_model(saved[kind])
    assert main(["predict", str(saved[kind]), str(folder / "scene.png"), "--out", str(tmp_path),
                 "--tile", str(SIZE), "--tta"]) == 0
    prob = predict_augmented(model, model_input(kind, image)[None], tta=True)[0]
    written = cv2.imread(str(tmp_path / "scene_mask.png"), cv2.IMREAD_UNCHANGED)
    expected = labels_of(prob) * (255 if prob.shape[-1] == 1 else 1)
    assert np.mean(written != expected) <= (0.01 if kind == "mixed_precision" else 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_command_predict_on_geotiff_with_polygons(artefacts, kind, tmp_path):
    rasterio = pytest.importorskip("rasterio", reason="the geo extra is not installed")
    from rasterio.transform import from_origin

    folder, saved = artefacts
    image, _ = scene()
    model = load_model(saved[kind])
    tif = tmp_path / "scene.tif"
    with rasterio.open(tif, "w", driver="GTiff", height=SIZE, width=SIZE, count=3, dtype="uint8",
                       crs="EPSG:32640", transform=from_origin(500000.0, 2800000.0, 0.5, 0.5)) as dst:
        dst.write(np.moveaxis(image, -1, 0))
    polygons = tmp_path / "shapes.geojson"
    assert main(["predict", str(saved[kind]), str(tif), "--out", str(tmp_path / "o"), "--tile", str(SIZE),
                 "--polygons", str(polygons)]) == 0
    prob = whole_image(model, kind, image)
    expected = labels_of(prob)
    with rasterio.open(tmp_path / "o" / "scene_mask.tif") as src:
        written = src.read(1)
        assert src.crs.to_epsg() == 32640
    assert np.mean(written != expected * (255 if prob.shape[-1] == 1 else 1)) <= (
        0.01 if kind == "mixed_precision" else 0.0)
    features = json.loads(polygons.read_text())["features"]
    classes = range(1) if prob.shape[-1] == 1 else range(prob.shape[-1])
    regions = {k: scipy.ndimage.label((written != 0) if prob.shape[-1] == 1 else (written == k),
                                      structure=np.ones((3, 3)))[1] for k in classes}
    for k in classes:
        mine = [f for f in features if f["properties"].get("class", 0) == k]
        assert len(mine) == regions[k], (k, len(mine), regions[k])
    if prob.shape[-1] > 1:
        assert {f["properties"]["class"] for f in features} <= set(classes)


def test_command_tta_set_on_a_geotiff_averages_the_named_flips(artefacts, tmp_path):
    """--tta-set flips through the windowed GeoTIFF path: the probabilities written are the mean of the
    model over the scene flipped each way (numpy flips), mapped back."""
    rasterio = pytest.importorskip("rasterio", reason="the geo extra is not installed")
    from rasterio.transform import from_origin

    _, saved = artefacts
    image, _ = scene()
    model = load_model(saved["segmenter"])
    tif = tmp_path / "scene.tif"
    with rasterio.open(tif, "w", driver="GTiff", height=SIZE, width=SIZE, count=3, dtype="uint8",
                       crs="EPSG:32640", transform=from_origin(500000.0, 2800000.0, 0.5, 0.5)) as dst:
        dst.write(np.moveaxis(image, -1, 0))
    assert main(["predict", str(saved["segmenter"]), str(tif), "--out", str(tmp_path / "o"), "--tile", str(SIZE),
                 "--tta-set", "flips", "--probabilities"]) == 0
    x = model_input("segmenter", image)
    reference = []
    for up_down in (False, True):
        for left_right in (False, True):
            t = x[::-1] if up_down else x
            t = t[:, ::-1] if left_right else t
            p = model.predict(np.ascontiguousarray(t)[None], verbose=0)[0]
            p = p[:, ::-1] if left_right else p
            reference.append(p[::-1] if up_down else p)
    with rasterio.open(tmp_path / "o" / "scene_probabilities.tif") as src:
        written = np.moveaxis(src.read(), 0, -1)
    np.testing.assert_allclose(written, np.mean(reference, axis=0), atol=1e-5)
    assert np.abs(written - reference[0]).max() > 1e-3  # the model is not flip-invariant: the average shows


@pytest.mark.parametrize("kind", KINDS)
def test_command_evaluate_scores_like_numpy(artefacts, kind, tmp_path):
    folder, saved = artefacts
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    (images / "a.png").write_bytes((folder / "scene.png").read_bytes())
    (masks / "a.png").write_bytes((folder / "scene_truth.png").read_bytes())
    args = ["evaluate", str(saved[kind]), "--images", str(images), "--masks", str(masks), "--out", str(tmp_path / "e"),
            "--tile", str(SIZE)]
    if kind == "multiclass":
        assert main(args) == 2  # refused with a message: evaluate scores binary models
        return
    assert main(args) == 0
    image, truth = scene()
    predicted = labels_of(whole_image(load_model(saved[kind]), kind, image)).astype(bool)
    iou = np.sum(predicted & truth) / max(np.sum(predicted | truth), 1)
    got = json.loads((tmp_path / "e" / "metrics.json").read_text())["overall"]["iou"]
    assert got == pytest.approx(iou, abs=0.01 if kind == "mixed_precision" else 1e-6)


def test_command_evaluate_scores_some_images_against_the_masks_of_a_whole_set(artefacts, tmp_path, capsys):
    """A test subset of images against a masks folder of the whole data set: masks without an image are left
    out with a note; an image without a mask is still refused."""
    folder, saved = artefacts
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    (images / "a.png").write_bytes((folder / "scene.png").read_bytes())
    for stem in ("a", "b", "c"):
        (masks / f"{stem}.png").write_bytes((folder / "scene_truth.png").read_bytes())
    args = ["evaluate", str(saved["plain"]), "--images", str(images), "--masks", str(masks), "--tile", str(SIZE)]
    assert main([*args, "--out", str(tmp_path / "e")]) == 0
    assert "scoring the 1 images" in capsys.readouterr().out
    assert list(json.loads((tmp_path / "e" / "metrics.json").read_text())["per_image"]) == ["a"]
    (images / "d.png").write_bytes((folder / "scene.png").read_bytes())
    assert main([*args, "--out", str(tmp_path / "e2")]) == 2
    assert "images without a mask in" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="exports are tested on TensorFlow")
@pytest.mark.parametrize("fmt", ["tf_saved_model", "onnx", "litert"])
@pytest.mark.parametrize("kind", KINDS)
def test_command_export_runs_in_its_runtime_like_keras(artefacts, kind, fmt, tmp_path):
    _, saved = artefacts
    image, _ = scene()
    model = load_model(saved[kind])
    x = model_input(kind, image)[None]
    expected = model.predict(x, verbose=0)
    out = tmp_path / {"tf_saved_model": "sm", "onnx": "m.onnx", "litert": "m.tflite"}[fmt]
    args = ["export", str(saved[kind]), "--format", fmt, "--out", str(out)]
    if fmt == "litert":
        args += ["--input-size", str(SIZE), str(SIZE)]
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="the export extra is not installed")
        pytest.importorskip("tf2onnx", reason="the export extra is not installed")
    assert main(args) == 0
    if fmt == "tf_saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(out))
        got = loaded.serve(x).numpy()
    elif fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(out))
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
    else:
        import tensorflow as tf

        interpreter = tf.lite.Interpreter(model_path=str(out))
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, expected, atol=TOLERANCE.get(kind, 1e-4))
