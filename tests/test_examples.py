"""The examples run end to end in their --quick mode and write what they promise."""

import json
import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # trains, runs subprocesses or exports: the full lane only

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, *args):
    argv, path = sys.argv, list(sys.path)
    sys.argv = [name, *args]
    sys.path.insert(0, str(EXAMPLES))  # the examples import their _common helpers
    try:
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = argv, path
        import keras

        keras.mixed_precision.set_global_policy("float32")  # --precision sets it for the process


def test_quickstart_quick(tmp_path):
    run_example("quickstart.py", "--quick", "--out", str(tmp_path))
    for name in ("predictions.png", "curves.png", "model.keras", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.0 <= metrics["val_iou"] <= 1.0


DATA = Path(os.environ.get("KERAS_UNETPP_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def needs_data(name: str):
    """Skip a test with a clear reason when the real data set ``name`` is absent."""
    return pytest.mark.skipif(not (DATA / name).is_dir(),
                              reason=f"real data not found at {DATA / name} (set KERAS_UNETPP_DATA)")


needs_aerial_data = needs_data("aerial-dubai")
needs_lung_data = needs_data("lung-xray")


@needs_aerial_data
def test_aerial_example_quick(tmp_path):
    run_example("aerial_buildings.py", "--quick", "--data", str(DATA / "aerial-dubai"), "--out", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.0 <= metrics["overall"]["iou"] <= 1.0 and len(metrics["per_image"]) == 2
    assert metrics["target"] == "building" and metrics["loss"] == "halo_dice"
    for name in ("model.keras", "curves_loss.png", "curves_iou.png", "curves_lr.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    for kind in ("error_map", "overlay", "prediction"):
        assert len(list(tmp_path.glob(f"*_{kind}.png"))) == 2, kind
    import cv2

    for name, per_image in metrics["per_image"].items():  # the saved mask is the one the metrics were taken on
        saved = cv2.imread(str(tmp_path / f"{name.replace('/', '_').replace(' ', '_')}_prediction.png"), 0) > 127
        assert int(saved.sum()) == per_image["counts"]["tp"] + per_image["counts"]["fp"]
    # the saved model carries its preprocessing: raw uint8 pixels in, the example's own prediction out
    import keras

    from keras_unetpp import predict_tiled
    from keras_unetpp.datasets import load_dubai

    model = keras.saving.load_model(tmp_path / "model.keras")
    sample = next(s for s in load_dubai(DATA / "aerial-dubai", tiles=[7]) if s.name in metrics["per_image"])
    tile = metrics["crop"] * metrics["downsample"]
    mask = predict_tiled(model, sample.image, tile_size=tile, overlap=0.25)[..., 0] >= 0.5
    saved = cv2.imread(str(tmp_path / f"{sample.name.replace('/', '_').replace(' ', '_')}_prediction.png"), 0) > 127
    assert sample.image.dtype == np.uint8 and np.mean(mask != saved) < 1e-4


@needs_lung_data
def test_lung_example_quick_compare(tmp_path):
    run_example("lung_xray.py", "--quick", "--compare-augmentation", "--seeds", "2", "--no-tta",
                "--data", str(DATA / "lung-xray"), "--out", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["tta"] is False and all("overall_without_tta" not in r for rs in metrics["runs"].values() for r in rs)
    assert set(metrics["runs"]) == {"all", "none"} and all(len(r) == 2 for r in metrics["runs"].values())
    for name in ("robustness.png", "arms.png", "all/seed0/predictions.png", "none/seed1/model.keras"):
        assert (tmp_path / name).stat().st_size > 0, name
    # each saved model records the flips it was trained with: --tta mirrors films of the augmented arm only
    import keras

    from keras_unetpp import describe_model

    for arm, declared in (("all", ((False, False, False), (False, False, True))), ("none", ((False, False, False),))):
        assert describe_model(keras.saving.load_model(tmp_path / arm / "seed0" / "model.keras")).symmetries == declared
    # the paired per-case comparison, recomputed from the per-case IoUs (mean over seeds) with plain Python
    def case_mean(arm, name):
        return sum(r["per_image"][name]["iou"] for r in metrics["runs"][arm]) / len(metrics["runs"][arm])
    names = set(metrics["runs"]["all"][0]["per_image"])
    assert len(names) == metrics["val_cases"]
    changes = sorted(case_mean("all", n) - case_mean("none", n) for n in names)
    paired = metrics["per_case_comparison"]
    assert paired["cases_better"] == sum(c > 0 for c in changes)
    assert paired["cases_worse"] == sum(c < 0 for c in changes)
    middle = len(changes) // 2
    median = changes[middle] if len(changes) % 2 else (changes[middle - 1] + changes[middle]) / 2
    assert paired["median_iou_change"] == pytest.approx(median)
    assert 0.0 <= paired["wilcoxon_p"] <= 1.0
    for arm, seeds in metrics["runs"].items():
        for run in seeds:  # the "clean" condition is the validation set itself: same per-case Dice
            clean = run["shifts"]["clean"]["dice"]
            assert clean == pytest.approx({n: v["dice"] for n, v in run["per_image"].items()})
        dice = [r["overall"]["dice"] for r in seeds]
        mean = sum(dice) / 2
        sd = (sum((d - mean) ** 2 for d in dice)) ** 0.5  # n - 1 = 1
        assert metrics["summary"][arm]["dice"]["mean"] == pytest.approx(mean)
        assert metrics["summary"][arm]["dice"]["sd"] == pytest.approx(sd)


@needs_lung_data
def test_lung_example_trains_just_the_arms_asked_for(tmp_path):
    run_example("lung_xray.py", "--quick", "--arms", "noise", "--seed", "1", "--data", str(DATA / "lung-xray"),
                "--out", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["runs"]) == {"noise"} and metrics["arms"] == ["noise"] and metrics["tta"] is True
    assert "per_case_comparison" not in metrics  # needs both 'none' and 'all'
    assert (tmp_path / "noise" / "seed1" / "model.keras").stat().st_size > 0
    assert (tmp_path / "robustness.png").stat().st_size > 0
    # another --seed trains another model, scored on the same split (--split-seed 0); and by
    # default (TTA) on the mean of each film and its mirror: recomputed here from the saved model with numpy
    import keras

    from keras_unetpp import UNetPlusPlus
    from keras_unetpp.datasets import load_folder_pairs, resized_arrays, split_fraction

    saved = keras.saving.load_model(tmp_path / "noise" / "seed1" / "model.keras")
    model = next(layer for layer in saved.layers if isinstance(layer, UNetPlusPlus))  # the network inside
    _, val = split_fraction(load_folder_pairs(DATA / "lung-xray", channels=1), 0.2, seed=0)
    val_x, val_y = resized_arrays(val, metrics["size"])
    prob = (model.predict(val_x, verbose=0) + model.predict(val_x[:, :, ::-1], verbose=0)[:, :, ::-1]) / 2
    assert set(metrics["runs"]["noise"][0]["per_image"]) == {s.name for s in val}
    for sample, truth, p in zip(val, val_y, prob):
        t, q = truth[..., 0] > 0.5, p[..., 0] >= 0.5
        dice = 2 * (t & q).sum() / max(t.sum() + q.sum(), 1)
        assert metrics["runs"]["noise"][0]["per_image"][sample.name]["dice"] == pytest.approx(dice, abs=1e-6), sample.name
    plain = model.predict(val_x, verbose=0) >= 0.5
    truth = val_y > 0.5
    assert metrics["runs"]["noise"][0]["overall_without_tta"]["dice"] == pytest.approx(
        2 * (plain & truth).sum() / (plain.sum() + truth.sum()), abs=1e-6)


def test_lung_shift_conditions_move_image_and_mask_together():
    """The robustness conditions: geometric ones move the mask with the image, the others keep it."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import lung_xray
    finally:
        sys.path.remove(str(EXAMPLES))
    image = np.zeros((32, 32, 1), np.float32)
    image[8:20, 4:12] = 0.8
    mask = (image > 0.5).astype(np.float32)
    for condition, shift in lung_xray.SHIFTS.items():
        x, y = shift(image, mask)
        assert x.shape == image.shape and y.shape == mask.shape, condition
        if condition.startswith("rotated") or condition == "mirrored":
            assert np.mean((x > 0.5) == (y > 0.5)) > 0.97, condition   # the mask followed the image
            assert not np.array_equal(y, mask), condition
        else:
            np.testing.assert_array_equal(y, mask)
    np.testing.assert_array_equal(lung_xray.SHIFTS["mirrored"](image, mask)[1], mask[:, ::-1])


def write_init_mask_layout(data, count):
    """The original aerial project's layout from the synthetic set: init/*.png RGB, mask/*.png 0/255."""
    import cv2

    from keras_unetpp.datasets import make_shapes

    images, masks = make_shapes(count, size=64, seed=5)
    for folder in ("init", "mask"):
        (data / folder).mkdir(parents=True)
    for k, (image, mask) in enumerate(zip(images, masks)):
        cv2.imwrite(str(data / "init" / f"{k}.png"), (image[..., ::-1] * 255).astype("uint8"))
        cv2.imwrite(str(data / "mask" / f"{k}.png"), (mask[..., 0] * 255).astype("uint8"))


def all_layers(model):
    """Every layer of a model, those of nested models included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)




def test_aerial_example_loss_default_follows_the_target():
    """The halo term is for buildings only; every other target defaults to focal Dice, and an explicit
    --loss wins (resolved by the example's own argument parsing, as its run uses it)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import aerial_buildings
    finally:
        sys.path.remove(str(EXAMPLES))
    assert aerial_buildings.parse_args([]).loss == "halo_dice"
    assert aerial_buildings.parse_args(["--target", "vegetation"]).loss == "focal_dice"
    assert aerial_buildings.parse_args(["--target", "road", "--loss", "halo_dice"]).loss == "halo_dice"


@needs_aerial_data
def test_tree_masks_of_the_real_tiles_are_their_vegetation_colour():
    import cv2

    from keras_unetpp.datasets import load_dubai
    from keras_unetpp.datasets.dubai import class_color

    samples = load_dubai(DATA / "aerial-dubai", "vegetation", tiles=[7])
    assert samples[0].name == "Tile 7/image_part_001"
    bgr = cv2.imread(str(DATA / "aerial-dubai" / "Tile 7" / "masks" / "image_part_001.png"))
    trees = (bgr[..., 2] == class_color("vegetation")[0]) & (bgr[..., 1] == class_color("vegetation")[1]) & (
        bgr[..., 0] == class_color("vegetation")[2])
    assert trees.any()
    np.testing.assert_array_equal(samples[0].mask[..., 0], trees)


def test_aerial_example_on_init_mask_layout(tmp_path):
    """The original aerial project's layout: init/ (RGB tiles) + mask/ (0/255), split by file;
    trained under --precision mixed_bfloat16, which the saved model keeps."""
    import keras

    write_init_mask_layout(tmp_path / "data", 8)
    out = tmp_path / "out"
    run_example("aerial_buildings.py", "--quick", "--precision", "mixed_bfloat16", "--data", str(tmp_path / "data"),
                "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_images"] + metrics["val_images"] == 8 and metrics["val_images"] >= 1
    assert metrics["precision"] == "mixed_bfloat16" and 0.0 <= metrics["overall"]["iou"] <= 1.0
    model = keras.saving.load_model(out / "model.keras")
    convs = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.Conv2D)]
    assert {layer.compute_dtype for layer in convs} == {"bfloat16"}
    assert {layer.variable_dtype for layer in convs} == {"float32"}


def test_aerial_example_distributed_over_two_devices(tmp_path):
    """--distribute on 2 logical CPU devices (TensorFlow MirroredStrategy): the global batch doubles."""
    import subprocess

    write_init_mask_layout(tmp_path / "data", 6)
    script = (
        "import sys, runpy, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        f"sys.path.insert(0, {str(EXAMPLES)!r})\n"
        "sys.argv = sys.argv[1:]\n"
        f"runpy.run_path({str(EXAMPLES / 'aerial_buildings.py')!r}, run_name='__main__')\n"
    )
    out = tmp_path / "out"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run([sys.executable, "-c", script, "aerial_buildings.py", "--quick", "--distribute",
                             "--data", str(tmp_path / "data"), "--out", str(out)],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["devices"] == 2 and 0.0 <= metrics["overall"]["iou"] <= 1.0


@needs_aerial_data
def test_six_class_example_quick_reports_the_iou_of_its_saved_predictions(tmp_path):
    import cv2

    from keras_unetpp.datasets import DUBAI_CLASS_COLORS

    run_example("aerial_classes.py", "--quick", "--data", str(DATA / "aerial-dubai"), "--out", str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["classes"] == list(DUBAI_CLASS_COLORS) and len(metrics["per_image"]) == 2
    for name in ("model.keras", "curves_loss.png", "curves_mean_iou.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    # per-class IoU recomputed from the saved colour-coded predictions and the original colour masks
    inter = {c: 0 for c in DUBAI_CLASS_COLORS}
    union = dict(inter)
    for image_name in metrics["per_image"]:
        stem = image_name.replace("/", "_").replace(" ", "_")
        predicted = cv2.imread(str(tmp_path / f"{stem}_prediction.png"))[..., ::-1]
        tile, part = image_name.split("/")
        truth = cv2.imread(str(DATA / "aerial-dubai" / tile / "masks" / f"{part}.png"))[..., ::-1]
        labelled = np.zeros(truth.shape[:2], bool)
        for c, hex_code in DUBAI_CLASS_COLORS.items():
            labelled |= np.all(truth == [int(hex_code[i:i + 2], 16) for i in (1, 3, 5)], axis=-1)
        for c, hex_code in DUBAI_CLASS_COLORS.items():
            rgb = [int(hex_code[i:i + 2], 16) for i in (1, 3, 5)]
            t, p = np.all(truth == rgb, axis=-1), np.all(predicted == rgb, axis=-1) & labelled
            inter[c] += int(np.sum(t & p))
            union[c] += int(np.sum(t | p))
    for c in DUBAI_CLASS_COLORS:
        expected = inter[c] / union[c] if union[c] else None
        got = metrics["per_class_iou"][c]
        assert (got is None) if expected is None else got == pytest.approx(expected, abs=1e-4), c
    present = [v for v in metrics["per_class_iou"].values() if v is not None]
    assert metrics["mean_iou"] == pytest.approx(sum(present) / len(present), abs=1e-4)


@needs_lung_data
def test_lung_example_with_a_pretrained_style_encoder(tmp_path):
    """--encoder puts a keras.applications backbone under the nested decoder (grayscale: first conv adapted)."""
    import keras

    run_example("lung_xray.py", "--quick", "--encoder", "efficientnetv2b0", "--filters", "4", "8", "16",
                "--data", str(DATA / "lung-xray"), "--out", str(tmp_path))
    from keras_unetpp import UNetPlusPlus

    saved = keras.saving.load_model(tmp_path / "model.keras")
    model = next(layer for layer in saved.layers if isinstance(layer, UNetPlusPlus))
    assert model.get_config()["encoder"] == "efficientnetv2b0"
    assert model.get_layer("encoder").inputs[0].shape[-1] == 1


def test_a_named_lite_encoder_starts_from_imagenet_weights_unless_told_otherwise():
    """The docs suggest --encoder efficientnet_lite1 for a larger encoder: it must not silently train from
    random weights, while encoders whose weights need a download stay random unless asked."""
    import argparse

    sys.path.insert(0, str(EXAMPLES))
    try:
        import _common
    finally:
        sys.path.remove(str(EXAMPLES))

    def options(encoder, weights=None):
        return _common.encoder_options(argparse.Namespace(encoder=encoder, encoder_weights=weights))

    for lite in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        assert options(lite)["encoder_weights"] == "imagenet", lite
        assert options(lite, "none")["encoder_weights"] is None, lite
    assert options("efficientnetv2b0")["encoder_weights"] is None
    assert options("resnet50", "imagenet")["encoder_weights"] == "imagenet"
    assert options("none") == {} and options(None) == {}
    with pytest.raises(SystemExit, match="--encoder-weights needs --encoder"):
        options(None, "imagenet")
