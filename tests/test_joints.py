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

from keras_unetpp import UNetPlusPlus, load_model, predict_tiled
from keras_unetpp.cli import main
from keras_unetpp.inference import predict_augmented
from keras_unetpp.models import with_preprocessing

pytestmark = pytest.mark.slow  # trains, runs subprocesses or exports: the full lane only

KINDS = ["plain", "deep_supervision", "pruned", "encoder", "segmenter", "multiclass", "mixed_precision"]
SIZE = 64  # one window of --tile 64 covers a scene: the tiled paths must equal whole-image predict
TOLERANCE = {"mixed_precision": 2e-2}


def _scene():
    """A uint8 RGB scene with bright blobs, and their mask."""
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8), (9, 9), 3)
    truth = np.zeros((SIZE, SIZE), bool)
    truth[8:30, 10:40] = True
    truth[44:58, 44:60] = True
    image[truth] = np.clip(image[truth].astype(int) + 90, 0, 255).astype(np.uint8)
    return image, truth


def _build(kind: str):
    keras.utils.set_random_seed(0)
    common = dict(input_shape=(None, None, 3))
    if kind == "plain":
        model = UNetPlusPlus(filters=(2, 4, 8), **common)
    elif kind in ("deep_supervision", "pruned", "segmenter"):
        model = UNetPlusPlus(filters=(2, 4, 8), deep_supervision=True, **common)
    elif kind == "encoder":
        model = UNetPlusPlus(filters=(2, 4, 4), encoder="efficientnet_lite0", **common)
    elif kind == "multiclass":
        model = UNetPlusPlus(filters=(2, 4), num_classes=3, **common)
    else:
        model = UNetPlusPlus(filters=(2, 4, 8), dtype="mixed_bfloat16", **common)
    image, truth = _scene()
    x = (image[None] / 255.0).astype("float32")
    y = truth[None, ..., None].astype("float32")
    if kind == "multiclass":
        y = keras.utils.to_categorical(truth[None].astype(int) + (image[None, ..., 0] > 200), 3)
        model.compile(optimizer="adam", loss="categorical_crossentropy")
    else:
        model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(np.repeat(x, 2, 0), np.repeat(y, 2, 0), epochs=1, verbose=0)
    if kind == "pruned":
        model = model.prune(1)
    if kind == "segmenter":
        model = with_preprocessing(model, channels=3, median_kernel=3)
    return model


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("artefacts")
    image, truth = _scene()
    cv2.imwrite(str(folder / "scene.png"), image[..., ::-1])
    cv2.imwrite(str(folder / "scene_truth.png"), truth.astype(np.uint8) * 255)
    saved = {}
    for kind in KINDS:
        model = _build(kind)
        path = folder / f"{kind}.keras"
        model.save(path)
        saved[kind] = path
    return folder, saved


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
    image, _ = _scene()
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
    image, _ = _scene()
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
    image, _ = _scene()
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
def test_command_predict_with_tta_equals_predict_augmented(artefacts, kind, tmp_path):
    folder, saved = artefacts
    image, _ = _scene()
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
    image, _ = _scene()
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
    image, truth = _scene()
    predicted = labels_of(whole_image(load_model(saved[kind]), kind, image)).astype(bool)
    iou = np.sum(predicted & truth) / max(np.sum(predicted | truth), 1)
    got = json.loads((tmp_path / "e" / "metrics.json").read_text())["overall"]["iou"]
    assert got == pytest.approx(iou, abs=0.01 if kind == "mixed_precision" else 1e-6)


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="exports are tested on TensorFlow")
@pytest.mark.parametrize("fmt", ["tf_saved_model", "onnx", "litert"])
@pytest.mark.parametrize("kind", KINDS)
def test_command_export_runs_in_its_runtime_like_keras(artefacts, kind, fmt, tmp_path):
    _, saved = artefacts
    image, _ = _scene()
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
