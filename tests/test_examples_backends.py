"""The three training examples train on the PyTorch backend, and the aerial one on JAX too (--quick,
each in a fresh interpreter, on small data sets in the layouts of the real ones). The augmentation
runs in the library's BatchStream there, on the backend itself, instead of tf.data. The other two
examples' paths on JAX (array_dataset, the six-class loss) are the same code as on PyTorch, and each
JAX run costs about 45 s of compilation on a 2-core CPU, so JAX runs one example."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from keras_unetpp.datasets.dubai import class_color

pytestmark = pytest.mark.slow  # trains in subprocesses: the full lane only

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RUNS = [("jax", "aerial_buildings.py", "aerial"), ("torch", "aerial_buildings.py", "aerial"),
        ("torch", "aerial_classes.py", "aerial"), ("torch", "lung_xray.py", "lungs")]
BACKEND_RUNS = [pytest.param(*run, marks=pytest.mark.skipif(importlib.util.find_spec(run[0]) is None,
                                                            reason=f"{run[0]} is not installed (CI installs it)"))
                for run in RUNS]


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """Seven Dubai-layout tiles (colour masks: buildings on land, a road) and ten films with lungs."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    colours = {name: np.array(class_color(name), np.uint8) for name in ("building", "land", "road", "vegetation")}
    for tile in range(1, 8):
        for k in range(2):
            mask = np.broadcast_to(colours["land"], (96, 128, 3)).copy()
            mask[10:40, 20:60] = colours["building"]
            mask[60:70] = colours["road"]
            mask[75:90, 90:120] = colours["vegetation"]
            image = np.clip(mask.astype(int) // 2 + rng.integers(0, 60, mask.shape), 0, 255).astype(np.uint8)
            _write_rgb(root / "aerial" / f"Tile {tile}" / "images" / f"image_part_00{k}.jpg", image)
            _write_rgb(root / "aerial" / f"Tile {tile}" / "masks" / f"image_part_00{k}.png", mask)
    for k in range(10):
        lungs = np.zeros((72, 64), np.uint8)
        cv2.ellipse(lungs, (20, 36), (9, 22), 0, 0, 360, 255, -1)
        cv2.ellipse(lungs, (44, 36), (9, 22), 0, 0, 360, 255, -1)
        film = np.clip(150 - lungs // 3 + rng.integers(0, 40, lungs.shape), 0, 255).astype(np.uint8)
        for sub, picture in (("images", film), ("masks", lungs)):
            (root / "lungs" / sub).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "lungs" / sub / f"case{k}.png"), picture)
    return root


@pytest.mark.parametrize("backend, example, data", BACKEND_RUNS)
def test_training_example_runs_on_the_backend(backend, example, data, small_data, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(EXAMPLES / example), "--quick", "--data", str(small_data / data),
                             "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert f"backend {backend}" in metrics["hardware"]
    assert (tmp_path / "curves_loss.png").stat().st_size > 0
