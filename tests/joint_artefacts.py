"""The files of every kind the library saves, built for tests/test_joints.py (and, saved by one
backend, loaded by the others in tests/test_backends.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import keras
import numpy as np

from keras_unetpp import UNetPlusPlus, with_preprocessing

KINDS = ["plain", "deep_supervision", "pruned", "encoder", "segmenter", "multiclass", "mixed_precision"]
SIZE = 64  # one window of --tile 64 covers a scene: the tiled paths must equal whole-image predict


def scene():
    """A uint8 RGB scene with bright blobs, and their mask."""
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8), (9, 9), 3)
    truth = np.zeros((SIZE, SIZE), bool)
    truth[8:30, 10:40] = True
    truth[44:58, 44:60] = True
    image[truth] = np.clip(image[truth].astype(int) + 90, 0, 255).astype(np.uint8)
    return image, truth


def build(kind: str):
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
    image, truth = scene()
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
        # as the aerial example saves it with --downsample 2: blur, half scale inside, full-size probabilities out
        model = with_preprocessing(model, channels=3, median_kernel=3, downsample=2)
    return model


def write_artefacts(folder: Path) -> tuple[Path, dict[str, Path]]:
    """Trains each kind for a step and saves it (and the scene as PNG) under ``folder``."""
    image, truth = scene()
    cv2.imwrite(str(folder / "scene.png"), image[..., ::-1])
    cv2.imwrite(str(folder / "scene_truth.png"), truth.astype(np.uint8) * 255)
    saved = {}
    for kind in KINDS:
        path = folder / f"{kind}.keras"
        build(kind).save(path)
        saved[kind] = path
    return folder, saved
