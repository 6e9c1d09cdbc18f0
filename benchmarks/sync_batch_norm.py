"""What synchronised batch norm costs a training step with one replica (no distribution strategy).

``SyncBatchNormalization`` used Keras' ``synchronized=True`` path on every TensorFlow run: E[x] and
E[x^2] all-reduced through the default replica context. It now takes it only under a strategy with
several replicas. This times a training step of a UNet++-like stack (two 3x3 convolutions with batch
norm and ReLU per level, five levels) both ways, in turns, on TensorFlow.

    python benchmarks/sync_batch_norm.py --size 256 --batch 8 --repeats 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from timing import median_seconds  # noqa: E402  (benchmarks/timing.py, beside this script)


def stack(synchronized: bool, size: int, filters=(16, 32, 64, 128, 256)) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    x = inputs
    for level, width in enumerate(filters):
        for _ in range(2):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(synchronized=synchronized)(x)
            x = keras.layers.ReLU()(x)
        if level < len(filters) - 1:
            x = keras.layers.MaxPooling2D()(x)
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("synchronized batch norm exists on the TensorFlow backend only.")
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, args.size, args.size, 3), dtype=np.float32)
    y = (rng.random((args.batch, args.size // 16, args.size // 16, 1)) > 0.5).astype(np.float32)
    models = {"plain": stack(False, args.size), "synchronized": stack(True, args.size)}
    seconds = median_seconds({name: (lambda m=m: m.train_on_batch(x, y)) for name, m in models.items()},
                             args.repeats)
    print(json.dumps({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                      "size": args.size, "batch": args.batch, "seconds_per_step": seconds,
                      "synchronized_over_plain": round(seconds["synchronized"] / seconds["plain"], 3)}, indent=1))


if __name__ == "__main__":
    main()
