"""The bad-input sweep: every row of the table in docs/reliability.md, as a test.

Each case is (id, entry point, bad input, call, expected): ``expected`` is an
exception type and the words its message must contain, or a check of the
documented result. A test also keeps the table and this list in step."""

import re
import zipfile
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_unetpp import BinaryIoU, FocalDiceLoss, MulticlassIoU, UNetPlusPlus, load_model, predict_tiled
from keras_unetpp.datasets import load_dubai, load_folder_pairs
from keras_unetpp.datasets.io import read_image
from keras_unetpp.evaluation import segmentation_report

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def model():
    return UNetPlusPlus((None, None, 3), filters=(2, 4))


def iou(truth, pred):
    metric = BinaryIoU()
    metric.update_state(truth, pred)
    return float(metric.result())


def loss(truth, pred):
    return float(keras.ops.convert_to_numpy(FocalDiceLoss()(truth, pred)))


def ones(*shape):
    return np.ones(shape, np.float32)


def folder(tmp, images=(), masks=()):
    for sub, files in (("images", images), ("masks", masks)):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        for name, content in files:
            path = tmp / sub / name
            path.write_bytes(content) if isinstance(content, bytes) else cv2.imwrite(str(path), content)
    return tmp


def png(shape, value=0):
    return np.full(shape, value, np.uint8)


def encoded(suffix, array):
    return cv2.imencode(suffix, array)[1].tobytes()


CASES = [
    # UNetPlusPlus
    ("model-channels", lambda t: model()(np.zeros((1, 16, 16, 1), "float32")), (ValueError, "3 input channel")),
    ("model-rank", lambda t: model()(np.zeros((16, 16, 3), "float32")), (ValueError, "batch axis")),
    ("model-uint8", lambda t: model().predict(np.zeros((1, 16, 16, 3), np.uint8), verbose=0),
     lambda out: out.dtype == np.float32 and out.shape == (1, 16, 16, 1)),
    ("model-float64", lambda t: model().predict(np.zeros((1, 16, 16, 3), np.float64), verbose=0),
     lambda out: out.dtype == np.float32),
    ("model-nan", lambda t: model().predict(np.full((1, 16, 16, 3), np.nan, np.float32), verbose=0),
     lambda out: np.isnan(out).all()),
    ("model-inf", lambda t: model().predict(np.full((1, 16, 16, 3), np.inf, np.float32), verbose=0),
     lambda out: np.isnan(out).all()),
    ("model-empty-batch", lambda t: model().predict(np.zeros((0, 16, 16, 3), "float32"), verbose=0),
     (ValueError, "empty batch")),
    ("model-empty-image", lambda t: model().predict(np.zeros((1, 0, 0, 3), "float32"), verbose=0),
     (ValueError, "empty images")),
    ("model-odd-size", lambda t: model().predict(np.zeros((1, 13, 27, 3), "float32"), verbose=0),
     lambda out: out.shape == (1, 13, 27, 1)),
    # predict_tiled
    ("tiled-channels", lambda t: predict_tiled(model(), np.zeros((40, 40, 1)), tile_size=16), (ValueError, "input channel")),
    ("predict-channels-after-sizes", lambda t: _after_several_sizes(model()), (ValueError, "3 input channel")),
    ("tiled-rank", lambda t: predict_tiled(model(), np.zeros((40, 40)), tile_size=16), (ValueError, "(H, W, C)")),
    ("tiled-empty", lambda t: predict_tiled(model(), np.zeros((0, 40, 3)), tile_size=16), (ValueError, "empty")),
    ("tiled-small-scene", lambda t: predict_tiled(model(), np.zeros((5, 9, 3)), tile_size=16),
     lambda out: out.shape == (5, 9, 1)),
    ("tiled-nan", lambda t: predict_tiled(model(), np.full((20, 20, 3), np.nan), tile_size=16),
     lambda out: np.isnan(out).all()),
    ("tiled-overlap", lambda t: predict_tiled(model(), np.zeros((20, 20, 3)), overlap=1.0), (ValueError, "overlap")),
    # FocalDiceLoss
    ("loss-shape", lambda t: loss(ones(1, 8, 8, 1), ones(1, 8, 9, 1)), (ValueError, "does not match")),
    ("loss-nan", lambda t: loss(ones(1, 4, 4, 1), np.full((1, 4, 4, 1), np.nan, np.float32)), lambda v: np.isnan(v)),
    ("loss-out-of-range", lambda t: loss(ones(1, 4, 4, 1), np.full((1, 4, 4, 1), 3.0, np.float32)),
     lambda v: v == pytest.approx(0.0, abs=1e-6)),  # clipped to 1: a perfect prediction, never negative
    ("loss-0-255", lambda t: loss(ones(1, 4, 4, 1) * 255, np.full((1, 4, 4, 1), 0.5, np.float32)),
     lambda v: v == pytest.approx(loss(ones(1, 4, 4, 1), np.full((1, 4, 4, 1), 0.5, np.float32)))),
    ("loss-stray-2", lambda t: loss(np.array([0, 1, 2, 0], np.float32).reshape(1, 2, 2, 1), np.full((1, 2, 2, 1), 0.5, np.float32)),
     lambda v: v == pytest.approx(loss(np.array([0, 1, 1, 0], np.float32).reshape(1, 2, 2, 1), np.full((1, 2, 2, 1), 0.5, np.float32)))),
    ("loss-minus-one-background", lambda t: loss(np.array([-1, 1, 1, -1], np.float32).reshape(1, 2, 2, 1),
                                                  np.array([0.1, 0.9, 0.8, 0.2], np.float32).reshape(1, 2, 2, 1)),
     lambda v: v == pytest.approx(loss(np.array([0, 1, 1, 0], np.float32).reshape(1, 2, 2, 1),
                                       np.array([0.1, 0.9, 0.8, 0.2], np.float32).reshape(1, 2, 2, 1)))),
    ("loss-one-hot-255", lambda t: _multiclass_loss(255.0), lambda v: v == pytest.approx(_multiclass_loss(1.0))),
    ("metric-minus-one-background", lambda t: iou(np.array([-1, 1, 1, -1], np.float32).reshape(1, 2, 2, 1),
                                                  np.array([0, 1, 1, 0], np.float32).reshape(1, 2, 2, 1)),
     lambda v: v == 1.0),
    ("loss-full-masks", lambda t: loss(ones(1, 4, 4, 1), ones(1, 4, 4, 1)), lambda v: v == pytest.approx(0.0)),
    ("loss-empty-masks", lambda t: loss(np.zeros((1, 4, 4, 1), np.float32), np.zeros((1, 4, 4, 1), np.float32)),
     lambda v: v == pytest.approx(0.0)),
    # BinaryIoU
    ("metric-channels", lambda t: iou(ones(1, 4, 4, 3), ones(1, 4, 4, 3)), (ValueError, "one output channel")),
    ("metric-shape", lambda t: iou(ones(1, 8, 8, 1), ones(1, 8, 9, 1)), (ValueError, "does not match")),
    ("metric-nan", lambda t: iou(ones(1, 4, 4, 1), np.full((1, 4, 4, 1), np.nan, np.float32)), lambda v: np.isnan(v)),
    ("metric-empty-masks", lambda t: iou(np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 4, 1))), lambda v: v == 1.0),
    ("metric-0-255", lambda t: iou(ones(1, 4, 4, 1) * 255, ones(1, 4, 4, 1)), lambda v: v == 1.0),
    # segmentation_report
    ("report-size", lambda t: segmentation_report(np.zeros((8, 8)), np.zeros((9, 8))), (ValueError, "shape")),
    ("report-nan", lambda t: segmentation_report(np.zeros((8, 8)), np.full((8, 8), np.nan)), (ValueError, "NaN")),
    ("report-stray-2", lambda t: segmentation_report(np.array([[0, 2], [1, 0]], np.uint8), np.array([[0, 1.0], [1, 0]])),
     (ValueError, "0, 1 and 255")),
    ("report-8bit-probabilities", lambda t: segmentation_report(np.array([[0, 255], [255, 0]], np.uint8),
                                                                np.array([[10, 200], [128, 0]], np.uint8)),
     (ValueError, "divide by 255")),
    ("report-minus-one", lambda t: segmentation_report(np.array([[0, -1], [1, 0]], np.int32), np.zeros((2, 2))),
     (ValueError, "0, 1 and 255")),
    ("report-empty-masks", lambda t: segmentation_report(np.zeros((4, 4), np.uint8), np.zeros((4, 4))),
     lambda r: (r.iou, r.dice) == (1.0, 1.0)),
    ("report-full-masks", lambda t: segmentation_report(np.ones((4, 4), np.uint8), np.ones((4, 4))),
     lambda r: (r.iou, r.precision, r.recall) == (1.0, 1.0, 1.0)),
    # loaders
    ("reader-missing-file", lambda t: read_image(t / "gone.png"), (FileNotFoundError, "gone.png")),
    ("loader-empty-folder", lambda t: load_folder_pairs(folder(t)), (FileNotFoundError, "No image files")),
    ("loader-missing-folder", lambda t: load_folder_pairs(t / "nowhere"), (FileNotFoundError, "does not exist")),
    ("loader-corrupt-image", lambda t: load_folder_pairs(folder(t, [("a.png", b"not an image")], [("a.png", png((4, 4)))])),
     (ValueError, "a.png")),
    ("loader-truncated-jpeg", lambda t: load_folder_pairs(
        folder(t, [("a.jpg", encoded(".jpg", png((32, 32), 90))[:-300])], [("a.png", png((32, 32)))])),
     (ValueError, "truncated JPEG")),
    ("loader-truncated-png", lambda t: load_folder_pairs(
        folder(t, [("a.png", png((32, 32), 90))], [("a.png", encoded(".png", png((32, 32), 255))[:-20])])),
     (ValueError, "truncated PNG")),
    ("loader-size-mismatch", lambda t: load_folder_pairs(folder(t, [("a.png", png((8, 8)))], [("a.png", png((8, 9)))])),
     (ValueError, "Size mismatch")),
    ("loader-unmatched", lambda t: load_folder_pairs(folder(t, [("a.png", png((8, 8)))], [("b.png", png((8, 8)))])),
     (ValueError, "Unmatched")),
    ("dubai-unknown-class", lambda t: load_dubai(t, "cars"), (ValueError, "Unknown class 'cars'")),
    # saved models
    ("keras-missing", lambda t: load_model(t / "missing.keras"), (FileNotFoundError, "missing.keras")),
    ("keras-corrupt", lambda t: load_model(_write(t / "bad.keras", b"not a zip")), (ValueError, "not a .keras archive")),
    ("keras-truncated", lambda t: load_model(_truncated_model(t)), (ValueError, "not a .keras archive")),
    ("keras-weights-only", lambda t: load_model(_weights_file(t, "m.weights.h5")), (ValueError, "weights only")),
    ("keras-legacy-h5", lambda t: load_model(_weights_file(t, "m.h5")), (ValueError, "legacy Keras 2 HDF5")),
    ("keras-no-config", lambda t: load_model(_zip(t / "m.keras", {"model.weights.h5": b""})),
     (ValueError, "not a Keras model file")),
    # masks given to fit / evaluate / validation_data (checked against the model's output)
    ("fit-mask-channels", lambda t: _compiled().evaluate(ones(2, 16, 16, 3), ones(2, 16, 16, 3), verbose=0),
     (ValueError, "3 channel(s) for 1 class(es)")),
    ("fit-mask-size", lambda t: _compiled().fit(ones(2, 16, 16, 3), ones(2, 8, 8, 1), verbose=0),
     (ValueError, "the height differs")),
    ("fit-mask-validation", lambda t: _compiled().fit(ones(2, 16, 16, 3), ones(2, 16, 16, 1), verbose=0,
                                                      validation_data=(ones(2, 16, 16, 3), ones(2, 16, 16, 3))),
     (ValueError, "do not fit the model's output")),
    ("fit-mask-no-channel", lambda t: _compiled().evaluate(ones(2, 16, 16, 3), ones(2, 16, 16), verbose=0),
     lambda v: np.all(np.isfinite(v))),
    # value ranges and bit depths
    ("tiled-uint16", lambda t: predict_tiled(model(), np.full((20, 20, 3), 4000, np.uint16), tile_size=16),
     (ValueError, "input_range LOW HIGH")),
    ("tiled-uint16-range", lambda t: _uint16_mapped(), lambda ok: ok),
    ("cli-16bit-png", lambda t: _cli(t, ["predict", _saved(t), _png16(t), "--out", str(t / "o")]),
     lambda r: r[0] == 2 and "--input-range LOW HIGH" in r[1]),
    ("cli-16bit-png-range", lambda t: _cli(t, ["predict", _saved(t), _png16(t), "--out", str(t / "o"),
                                               "--input-range", "0", "4095"], written=t / "o" / "deep_mask.png"),
     lambda r: r[0] == 0 and r[2]),
    ("cli-threshold", lambda t: _cli(t, ["predict", _saved(t), _png16(t), "--out", str(t), "--threshold", "1.5"]),
     (SystemExit, "2")),
    ("tiled-tile-larger-than-scene", lambda t: _whole_vs_tiled(tile_size=256), lambda gap: gap < 1e-5),
    ("tiled-high-overlap", lambda t: _whole_vs_tiled(tile_size=32, overlap=0.9), lambda gap: gap < 0.05),
    ("cli-text-as-tif", lambda t: _cli(t, ["predict", _saved(t), str(_write(t / "notes.tif", b"just text")),
                                           "--out", str(t / "o")]),
     lambda r: r[0] == 2 and "not a readable GeoTIFF" in r[1]),
    # outputs of the command
    ("cli-same-stem", lambda t: _cli(t, ["predict", _saved(t), _img(t / "a" / "x.png"), _img(t / "b" / "x.png"),
                                         "--out", str(t / "o")]),
     lambda r: r[0] == 2 and "would both write x_mask" in r[1]),
    ("cli-out-is-input", lambda t: _cli(t, ["predict", _saved(t), _img(t / "in" / "a.png"), _img(t / "in" / "a_mask.png"),
                                            "--out", str(t / "in")]),
     lambda r: r[0] == 2 and "would replace an input" in r[1]),
    ("cli-existing-output", lambda t: _twice(t), lambda r: r[0] == 2 and "--overwrite" in r[1]),
    ("cli-out-is-file", lambda t: _cli(t, ["predict", _saved(t), _img(t / "a.png"), "--out", _img(t / "f.png")]),
     lambda r: r[0] == 2 and "is a file" in r[1]),
    ("cli-bad-file-in-batch", lambda t: _cli(t, ["predict", _saved(t), _img(t / "in" / "a.png"),
                                                 str(_write(t / "in" / "b.png", b"junk")), "--out", str(t / "o")],
                                             written=t / "o" / "a_mask.png"),
     lambda r: r[0] == 1 and "1 of 2 inputs failed" in r[1] and r[2]),
    # ground-truth masks read by `keras-unetpp evaluate`
    ("cli-colour-mask", lambda t: _evaluate_with_mask(t, np.dstack([png((8, 8), 60), png((8, 8), 16), png((8, 8), 152)])),
     lambda r: r[0] == 2 and "--mask-color" in r[1]),
    ("cli-probability-mask", lambda t: _evaluate_with_mask(t, np.arange(64, dtype=np.uint8).reshape(8, 8)),
     lambda r: r[0] == 2 and "probability map saved as 8 bits" in r[1]),
    ("cli-jpeg-mask", lambda t: _evaluate_with_mask(t, _jpeg_noise(), suffix=".jpg"),
     lambda r: r[0] == 2 and "JPEG" in r[1]),
    ("loader-jpeg-mask", lambda t: load_folder_pairs(folder(t, [("a.png", png((32, 32)))], [("a.jpg", _jpeg_noise())])),
     (ValueError, "JPEG")),
    # files a command writes never replace an input, and replace an earlier output only with --overwrite
    ("cli-polygons-is-input", lambda t: _polygons_onto_input(t),
     lambda r: r[0] == 2 and "would replace an input" in r[1] and r[2]),
    ("cli-polygons-is-folder", lambda t: _cli(t, ["predict", _saved(t), _img(t / "in" / "a.png"), "--out",
                                                  str(t / "o"), "--polygons", str(t / "in")]),
     lambda r: r[0] == 2 and "is a folder" in r[1]),
    ("cli-evaluate-twice", lambda t: _evaluate_twice(t), lambda r: r[0] == 2 and "--overwrite" in r[1]),
    ("cli-evaluate-out-is-file", lambda t: _cli(t, ["evaluate", _saved(t), "--images", str(t / "i"), "--masks",
                                                    str(t / "m"), "--out", _img(t / "f.png")]) if _pair(t) else None,
     lambda r: r[0] == 2 and "is a file" in r[1]),
    ("cli-export-existing-file", lambda t: _cli(t, ["export", _saved(t), "--format", "onnx", "--out",
                                                    str(_write(t / "old.onnx", b"an earlier export"))]),
     lambda r: r[0] == 2 and "exists" in r[1]),
    ("cli-export-nonempty-folder", lambda t: _cli(t, ["export", _saved(t), "--format", "tf_saved_model", "--out",
                                                      str(_write_in(t / "dirA", "keep.txt"))]),
     lambda r: r[0] == 2 and "not empty" in r[1]),
    ("cli-keep-largest-negative", lambda t: _cli(t, ["predict", _saved(t), _img(t / "a.png"), "--out", str(t / "o"),
                                                     "--keep-largest", "-1"]),
     (SystemExit, "2")),
    # one rule for labels, NaN and weights in the loss, the metrics and the report
    ("loss-ignore-255", lambda t: _multiclass_loss_with_ignored(), lambda pair: pair[0] == pytest.approx(pair[1], rel=1e-5)),
    ("metric-zero-one-hot-rows", lambda t: _multiclass_iou(np.array([[[1, 0, 0], [0, 0, 0]]], np.float32),
                                                           np.array([[[1, 0, 0], [0, 1, 0]]], np.float32)),
     lambda v: v == pytest.approx(1.0)),
    ("metric-multiclass-255-only", lambda t: _multiclass_iou(np.full((1, 2, 1), 255), np.array([[[1, 0, 0], [1, 0, 0]]], np.float32)),
     lambda v: v == 0.0),
    ("metric-multiclass-nan", lambda t: _multiclass_iou(np.zeros((1, 2, 1)), np.full((1, 2, 3), np.nan, np.float32)),
     lambda v: np.isnan(v)),
    ("loss-negative-weight", lambda t: FocalDiceLoss()(ones(2, 4, 4, 1), ones(2, 4, 4, 1) * 0.5,
                                                       sample_weight=np.array([1.0, -1.0])),
     (ValueError, "negative")),
    # values by one rule at every entry point
    ("tiled-float-out-of-range", lambda t: predict_tiled(model(), np.full((20, 20, 3), 4000.0), tile_size=16),
     (ValueError, "the model takes 0..1")),
    ("tiled-uint8-bare-model", lambda t: _uint8_like_command(), lambda gap: gap < 1e-5),
    ("tiled-scene-off-grid", lambda t: _off_grid_seam(), lambda gap: gap < 1e-5),
    # arguments that are whole numbers
    ("model-fractional-filters", lambda t: UNetPlusPlus((None, None, 3), filters=(8.7, 16)),
     (ValueError, "would be floored to 8")),
    ("reader-jpeg-trailing-bytes", lambda t: _jpeg_with_trailer(t), lambda same: same),
    ("loader-unmatched-many", lambda t: load_folder_pairs(folder(t, [(f"i{k}.png", png((4, 4))) for k in range(8)],
                                                                  [("other.png", png((4, 4)))])),
     (ValueError, "and 3 more")),
    ("loss-halo-zero-weight", lambda t: _halo_zero_weight(), lambda pair: pair[0] == pytest.approx(pair[1], rel=1e-5)),
    ("loss-combined-sum", lambda t: _combined_sum(), lambda pair: pair[0] == pytest.approx(pair[1], rel=1e-5)),
    ("loss-weight-length", lambda t: FocalDiceLoss()(ones(2, 4, 4, 1), ones(2, 4, 4, 1) * 0.5,
                                                     sample_weight=np.ones(3, np.float32)),
     (ValueError, "sample_weight holds 3 sample(s)")),
    ("model-nan-head-weight", lambda t: UNetPlusPlus((None, None, 3), filters=(2, 4, 8), deep_supervision=True,
                                                     head_weights=(1.0, float("nan"))),
     (ValueError, "finite number")),
]


def _jpeg_with_trailer(tmp):
    """A valid JPEG with bytes after its end marker (a camera trailer) reads as the JPEG itself."""
    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    data = encoded(".jpg", image)
    plain, trailed = _write(tmp / "plain.jpg", data), _write(tmp / "trailed.jpg", data + b"TRAILER" * 10)
    return np.array_equal(read_image(plain), read_image(trailed))


def _halo_zero_weight():
    """Pixels of weight 0 change nothing: the loss equals that of the image with them removed (cut off)."""
    from keras_unetpp.losses import HaloWeightedCrossEntropy

    y = np.zeros((1, 8, 16, 1), np.float32)
    y[0, 2:5, 2:5] = 1
    y[0, 2:5, 11:14] = 1  # an object in the right half, which gets weight 0
    p = np.full_like(y, 0.3)
    weights = np.ones((1, 8, 16), np.float32)
    weights[0, :, 8:] = 0
    loss = HaloWeightedCrossEntropy(halo_weight=2.0, halo_width=3)
    cut = float(loss(y[:, :, :8], p[:, :, :8]))
    return float(loss(y, p, sample_weight=weights)), cut


def _combined_sum():
    from keras_unetpp import CombinedLoss

    y, p = ones(2, 4, 4, 1), np.full((2, 4, 4, 1), 0.6, np.float32)
    loss = CombinedLoss([FocalDiceLoss()], reduction="sum")
    return float(loss(y, p)), float(loss(y, p, sample_weight=np.ones(2, np.float32)))


def _jpeg_noise():
    mask = np.zeros((32, 32), np.uint8)
    cv2.circle(mask, (16, 16), 9, 255, -1)
    return cv2.imdecode(np.frombuffer(encoded(".jpg", mask), np.uint8), cv2.IMREAD_GRAYSCALE)


def _polygons_onto_input(tmp):
    image = Path(_img(tmp / "in" / "a.png"))
    before = image.read_bytes()
    code, err, _ = _cli(tmp, ["predict", _saved(tmp), str(image), "--out", str(tmp / "o"), "--polygons", str(image),
                              "--overwrite"])
    return code, err, image.read_bytes() == before


def _pair(tmp):
    _img(tmp / "i" / "a.png")
    (tmp / "m").mkdir(exist_ok=True)
    cv2.imwrite(str(tmp / "m" / "a.png"), png((12, 12), 255))
    return True


def _evaluate_twice(tmp):
    _pair(tmp)
    args = ["evaluate", _saved(tmp), "--images", str(tmp / "i"), "--masks", str(tmp / "m"), "--out", str(tmp / "e")]
    assert _cli(tmp, args)[0] == 0
    return _cli(tmp, args)


def _write_in(folder_path, name):
    folder_path.mkdir(parents=True, exist_ok=True)
    (folder_path / name).write_text("mine")
    return folder_path


def _multiclass_iou(labels, prob):
    metric = MulticlassIoU(3)
    metric.update_state(labels, prob)
    return float(metric.result())


def _multiclass_loss_with_ignored():
    """Label 255 on half the pixels against the same pixels weighted 0 (any valid label there)."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (1, 8, 8, 1))
    ignored = rng.random((1, 8, 8)) < 0.5
    prob = rng.dirichlet(np.ones(3), (1, 8, 8)).astype("float32")
    with_255 = float(keras.ops.convert_to_numpy(FocalDiceLoss()(np.where(ignored[..., None], 255, labels), prob)))
    weighted = float(keras.ops.convert_to_numpy(FocalDiceLoss()(labels, prob, sample_weight=(~ignored).astype("float32"))))
    return with_255, weighted


def _uint8_like_command():
    """predict_tiled on a uint8 scene with a bare UNet++ feeds what the command feeds: values / 255."""
    net = model()
    scene = np.random.default_rng(0).integers(0, 256, (20, 28, 3)).astype(np.uint8)
    expected = net.predict((scene / 255.0).astype("float32")[None], verbose=0)[0]
    return float(np.abs(predict_tiled(net, scene, tile_size=64) - expected).max())


def _off_grid_seam():
    """A 150 x 170 scene in tiles of 98: the last windows start on the model's grid, as whole-image prediction
    pools it (a depth-1 UNet++, whose context fits the overlap)."""
    net = model()
    scene = np.random.default_rng(1).random((150, 170, 3)).astype("float32")
    whole = net.predict(scene[None], verbose=0)[0]
    return float(np.abs(predict_tiled(net, scene, tile_size=98, overlap=0.5) - whole).max())


def _after_several_sizes(net):
    """A model that has already predicted at several sizes (several traced functions), then meets
    the wrong channel count: one clear error, not a backend trace per traced size."""
    for size in (16, 24, 32):
        net.predict(np.zeros((1, size, size, 3), "float32"), verbose=0)
    return net.predict(np.zeros((1, 16, 16, 4), "float32"), verbose=0)


def _multiclass_loss(scale):
    labels = np.array([[[0, 1], [2, 1]]])
    one_hot = np.eye(3, dtype=np.float32)[labels] * scale
    prob = np.full((1, 2, 2, 3), 1 / 3, np.float32)
    prob[0, 0, 0] = [0.8, 0.1, 0.1]
    return loss(one_hot, prob)


def _whole_vs_tiled(**kwargs):
    """Largest gap between predict_tiled and whole-image predict of a UNet++ on a 60 x 76 scene."""
    m = UNetPlusPlus((None, None, 3), filters=(2, 4, 8))
    scene = np.random.default_rng(0).random((60, 76, 3)).astype("float32")
    whole = m.predict(scene[None], verbose=0)[0]
    return float(np.abs(predict_tiled(m, scene, progress=False, **kwargs) - whole).max())


def _compiled():
    m = model()
    m.compile(optimizer="adam", loss=FocalDiceLoss(), metrics=[BinaryIoU()])
    return m


def _weights_file(tmp, name):
    path = tmp / name
    model().save_weights(tmp / "w.weights.h5")
    path.write_bytes((tmp / "w.weights.h5").read_bytes())
    return path


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _uint16_mapped():
    m = model()
    scene = np.random.default_rng(0).integers(0, 4096, (16, 16, 3)).astype(np.uint16)
    got = predict_tiled(m, scene, tile_size=16, input_range=(0, 4095))
    want = m.predict((scene / 4095.0)[None].astype("float32"), verbose=0)[0]
    return np.allclose(got, want, atol=1e-5)


def _saved(tmp):
    path = tmp / "deep.keras"
    if not path.exists():
        UNetPlusPlus((None, None, 3), filters=(2, 4), deep_supervision=True).save(path)
    return str(path)


def _png16(tmp):
    path = tmp / "deep.png"
    cv2.imwrite(str(path), np.full((12, 12, 3), 3000, np.uint16))
    return str(path)


def _img(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), png((12, 12, 3), 90))
    return str(path)


def _cli(tmp, args, written=None):
    """``(exit code, stderr, whether ``written`` exists afterwards)``."""
    import contextlib
    import io

    from keras_unetpp.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue(), written is not None and written.is_file()


def _twice(tmp):
    args = ["predict", _saved(tmp), _img(tmp / "a.png"), "--out", str(tmp / "o")]
    assert _cli(tmp, args)[0] == 0
    return _cli(tmp, args)


def _evaluate_with_mask(tmp, mask, suffix=".png"):
    _img(tmp / "images" / "a.png")
    (tmp / "masks").mkdir()
    cv2.imwrite(str(tmp / "masks" / f"a{suffix}"), mask)
    return _cli(tmp, ["evaluate", _saved(tmp), "--images", str(tmp / "images"), "--masks", str(tmp / "masks"),
                      "--out", str(tmp / "e")])


def _write(path, data):
    path.write_bytes(data)
    return path


def _truncated_model(tmp):
    path = tmp / "m.keras"
    model().save(path)
    return _write(path, path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("case, call, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, call, expected, tmp_path):
    if isinstance(expected, tuple):
        error, words = expected
        with pytest.raises(error, match=re.escape(words)):
            call(tmp_path)
    else:
        assert expected(call(tmp_path)), f"{case}: not the documented result"


def test_the_docs_table_lists_exactly_these_cases():
    documented = re.findall(r"^\| `([a-z0-9-]+)` \|", DOC.read_text(), flags=re.M)
    assert sorted(documented) == sorted(c[0] for c in CASES)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([".png", ".jpg"]), st.integers(0, 1000))
def test_image_reader_never_returns_garbage(tmp_path_factory, noise, suffix, cut):
    """Random bytes and truncated real files: an error naming the file, or the
    exact pixels of an intact file; never a partly decoded image."""
    tmp = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(cut)
    original = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    whole = encoded(suffix, original[..., ::-1])
    for data in (noise, whole[: cut % len(whole)], whole[:8] + noise):
        path = _write(tmp / f"x{suffix}", data)
        try:
            image = read_image(path, channels=3)
        except ValueError as error:
            assert str(path) in str(error)
            continue
        reference = cv2.imdecode(np.frombuffer(whole, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        np.testing.assert_array_equal(image, reference)  # only a complete file decodes


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    prob = rng.random((24, 32, 1)).astype(np.float32)
    truth = (rng.random((24, 32)) > 0.5).astype(np.uint8) * 255
    return image, prob, truth


def _public_array_functions():
    from keras_unetpp import masks, postprocessing, visualization
    from keras_unetpp.evaluation import confusion_counts
    from keras_unetpp.models import downsample_masks, preprocess_images

    return {
        "predict_tiled": lambda i, p, t: predict_tiled(model(), i, tile_size=16, tta=True, progress=False),
        "segmentation_report": lambda i, p, t: segmentation_report(t, p, block_size=8),
        "confusion_counts": lambda i, p, t: confusion_counts(t, p),
        "remove_small_regions": lambda i, p, t: postprocessing.remove_small_regions(p, 10),
        "keep_largest_regions": lambda i, p, t: postprocessing.keep_largest_regions(p, 2),
        "preprocess_images": lambda i, p, t: preprocess_images(i, median_kernel=5, downsample=2),
        "downsample_masks": lambda i, p, t: downsample_masks(t, 2),
        "single_channel": lambda i, p, t: masks.single_channel(p),
        "foreground": lambda i, p, t: masks.foreground(p),
        "overlay": lambda i, p, t: visualization.overlay(i, p),
        "error_map": lambda i, p, t: visualization.error_map(t, p),
        "to_rgb8": lambda i, p, t: visualization.to_rgb8(p),
        "loss": lambda i, p, t: FocalDiceLoss()(t[None, ..., None], p[None]),
        "metric": lambda i, p, t: BinaryIoU().update_state(t[None, ..., None], p[None]),
    }


@pytest.mark.parametrize("name", sorted(_public_array_functions()))
def test_inputs_are_never_modified_in_place(name):
    image, prob, truth = _scene()
    copies = [a.copy() for a in (image, prob, truth)]
    _public_array_functions()[name](image, prob, truth)
    for before, after in zip(copies, (image, prob, truth)):
        np.testing.assert_array_equal(before, after)
