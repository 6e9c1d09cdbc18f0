"""Training and inference throughput (images/s) of UNetPlusPlus, against a plain
functional Keras UNet++ of the same topology written here independently.

    python benchmarks/model_throughput.py                 # UNet++ L4, 32-512, 256x256
    python benchmarks/model_throughput.py --size 128 --filters 16 32 64 128 256

Both models are timed in the same process, interleaved, after a warm-up that
traces and compiles (median of --repeats steps); the ratio is the figure to quote. Prints a JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import keras
import numpy as np
from keras import layers
from timing import median_seconds  # benchmarks/timing.py, beside this script

from keras_unetpp import UNetPlusPlus


def plain_unetpp(size, channels, filters):
    """Reference UNet++ (fixed size, no padding/cropping, no subclassing)."""
    depth = len(filters) - 1

    def unit(x, f):
        for _ in range(2):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False, kernel_initializer="he_normal")(x)
            x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
        return x

    inputs = keras.Input((size, size, channels))
    grid = [[None] * (depth + 1) for _ in range(depth + 1)]
    grid[0][0] = unit(inputs, filters[0])
    for i in range(1, depth + 1):
        grid[i][0] = unit(layers.MaxPooling2D()(grid[i - 1][0]), filters[i])
        # every new encoder level completes one diagonal of the nested decoder
        for j in range(1, i + 1):
            row = i - j
            up = layers.Conv2DTranspose(filters[row], 2, strides=2)(grid[row + 1][j - 1])
            grid[row][j] = unit(layers.concatenate(grid[row][:j] + [up]), filters[row])
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32")(grid[0][depth])
    return keras.Model(inputs, outputs)


def conv_gflop(model, size):
    """Forward multiply-adds x 2 of all (transposed) convolutions for one image."""
    total = 0
    for layer in model.layers:
        for sub in getattr(layer, "layers", [layer]):
            if isinstance(sub, (layers.Conv2D, layers.Conv2DTranspose)):
                out = sub.output.shape
                h, w = (size if d is None else d for d in out[1:3])
                k = int(np.prod(sub.kernel.shape))
                per_pixel = k if isinstance(sub, layers.Conv2D) else k // 4  # stride-2 transpose
                total += 2 * h * w * per_pixel
    return total / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--filters", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jit-compile", default="auto", choices=["auto", "true", "false"],
                        help="XLA for both models (on CPU, oneDNN without XLA is faster for large convs)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, args.size, args.size, 3), dtype=np.float32)
    y = (x[..., :1] > 0.5).astype("float32")
    models = {
        "keras_unetpp": UNetPlusPlus(input_shape=(None, None, 3), filters=args.filters),
        "plain_functional": plain_unetpp(args.size, 3, args.filters),
    }
    results = {}
    for name, model in models.items():
        jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
        model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=jit)
        model.train_on_batch(x, y)  # trace + compile
        model.predict_on_batch(x)
        results[name] = {"params": model.count_params()}
    train = median_seconds({n: (lambda m=m: m.train_on_batch(x, y)) for n, m in models.items()}, args.repeats)
    infer = median_seconds({n: (lambda m=m: m.predict_on_batch(x)) for n, m in models.items()}, args.repeats)
    for name in models:
        results[name].update(
            train_images_per_s=round(args.batch_size / train[name], 3),
            predict_images_per_s=round(args.batch_size / infer[name], 3),
        )
    ours, ref = results["keras_unetpp"], results["plain_functional"]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, backend {keras.backend.backend()}",
        "size": args.size,
        "filters": args.filters,
        "batch_size": args.batch_size,
        "jit_compile": args.jit_compile,
        "gflop_per_image_forward": round(conv_gflop(models["plain_functional"], args.size), 1),
        **results,
        "train_ratio_ours_vs_plain": round(ours["train_images_per_s"] / ref["train_images_per_s"], 3),
        "predict_ratio_ours_vs_plain": round(ours["predict_images_per_s"] / ref["predict_images_per_s"], 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
