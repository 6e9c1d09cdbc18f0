"""Median blur and augmentation pipelines: images/s, same inputs, one run.

    python benchmarks/augmentation_throughput.py [--images 64] [--size 256]

Median blur (k = 3 and 5, uint8 RGB): ours eager, in tf.function (graph, the
tf.data path) and under XLA, a naive sort of every k*k window, cv2 and scipy.
Pipelines: ``aerial_augmentation`` and ``xray_augmentation`` in a tf.data map
vs the equivalent OpenCV/numpy per-image pipeline (what the projects used
through Albumentations). Prints a JSON report.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import cv2
import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage
from timing import best_seconds  # benchmarks/timing.py, beside this script

from keras_unetpp.layers import aerial_augmentation, median_blur, xray_augmentation


def images_per_s(fn, count, repeats=3):
    return round(count / best_seconds({"fn": fn}, repeats)["fn"], 1)


def naive_sort_median(x, k):
    """Baseline: gather every k*k window and sort it."""
    r = k // 2
    p = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="SYMMETRIC")
    h, w = x.shape[1], x.shape[2]
    windows = tf.stack([p[:, i:i + h, j:j + w] for i in range(k) for j in range(k)], axis=-1)
    return tf.sort(windows, axis=-1)[..., k * k // 2]


def median_section(images):
    n = len(images)
    x = tf.constant(images)
    out = {}
    for k in (3, 5):
        graph = tf.function(lambda t, k=k: median_blur(t, k))
        xla = tf.function(lambda t, k=k: median_blur(t, k), jit_compile=True)
        naive = tf.function(lambda t, k=k: naive_sort_median(t, k))
        out[f"k={k}"] = {
            "ours_eager": images_per_s(lambda: median_blur(x, k), n),
            "ours_tf_function": images_per_s(lambda: graph(x), n),
            "ours_xla": images_per_s(lambda: xla(x), n),
            "naive_sort_tf_function": images_per_s(lambda: naive(x), n),
            "cv2_medianBlur": images_per_s(lambda: [cv2.medianBlur(im, k) for im in images], n),
            "scipy_median_filter": images_per_s(
                lambda: [ndimage.median_filter(im, (k, k, 1), mode="nearest") for im in images], n, repeats=1),
        }
        assert np.array_equal(graph(x).numpy()[0], cv2.medianBlur(images[0], k))
    return out


def opencv_aerial(image, mask, rng):
    image = cv2.medianBlur(image, 5)
    k, flip = rng.integers(4), rng.integers(2)
    image, mask = np.rot90(image, k), np.rot90(mask, k)
    if flip:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def opencv_xray(image, mask, rng):
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-10, 10), 1.0)
    image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    if rng.integers(2):
        image, mask = image[:, ::-1], mask[:, ::-1]
    image = image + rng.uniform(-0.1, 0.1)
    mean = image.mean()
    image = mean + (image - mean) * (1 + rng.uniform(-0.2, 0.2))
    image = np.clip(image + rng.normal(0, 0.02, image.shape).astype(np.float32), 0, 1)
    return image, mask


def pipeline_section(images, masks, batch):
    n = len(images)
    float_images = images.astype(np.float32) / 255.0
    gray = float_images[..., :1].copy()
    out = {}
    for name, pipe, data, reference in (
        ("aerial (median 5x5 + D4)", aerial_augmentation(seed=0), images, opencv_aerial),
        ("xray (rotation, flip, brightness, contrast, noise)", xray_augmentation(seed=0), gray, opencv_xray),
    ):
        ds = tf.data.Dataset.from_tensor_slices((data, masks)).batch(batch).map(
            pipe, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
        rng = np.random.default_rng(0)
        out[name] = {
            "keras_unetpp_tf_data": images_per_s(lambda: [None for _ in ds], n),
            "opencv_numpy_loop": images_per_s(
                lambda: [reference(d[..., 0] if d.shape[-1] == 1 else d, m, rng) for d, m in zip(data, masks)], n),
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    masks = (rng.random((args.images, args.size, args.size, 1)) > 0.5).astype(np.uint8)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {keras.backend.backend()} backend, CPU only"
        if not tf.config.list_physical_devices("GPU") else "GPU",
        "images": f"{args.images} x {args.size}x{args.size}x3 uint8",
        "median_blur_images_per_s": median_section(images),
        "pipelines_images_per_s": pipeline_section(images, masks, args.batch_size),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
