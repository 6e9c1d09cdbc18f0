"""Training step time of UNetPlusPlus for several filter widths, as the examples
train it (deep supervision, FocalDiceLoss, Adam): what ``--filters`` costs.

    python benchmarks/filter_widths.py                     # 256x256, batch 8
    python benchmarks/filter_widths.py --size 128 --batch-size 16

All widths are timed in one process, interleaved, after a warm-up step that
traces (median of --repeats steps); ratios to the first width are the figure to
quote. Prints a JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform

import keras
import numpy as np
from model_throughput import conv_gflop, median_seconds

from keras_unetpp import BinaryIoU, FocalDiceLoss, UNetPlusPlus

WIDTHS = {
    "8-128": (8, 16, 32, 64, 128),
    "16-256": (16, 32, 64, 128, 256),
    "32-512": (32, 64, 128, 256, 512),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--widths", nargs="+", default=list(WIDTHS), choices=list(WIDTHS))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, args.size, args.size, 3), dtype=np.float32)
    y = (rng.random((args.batch_size, args.size, args.size, 1)) > 0.7).astype(np.float32)
    steps, gflop = {}, {}
    for name in args.widths:
        model = UNetPlusPlus((args.size, args.size, 3), filters=WIDTHS[name], deep_supervision=True)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=FocalDiceLoss(), metrics=[BinaryIoU()])
        model.train_on_batch(x, y)  # traces
        steps[name] = lambda m=model: m.train_on_batch(x, y)
        gflop[name] = conv_gflop(model, args.size)
    seconds = median_seconds(steps, args.repeats)
    first = args.widths[0]
    result = {
        "machine": f"{platform.machine()}, backend {keras.backend.backend()}",
        "size": args.size, "batch_size": args.batch_size,
        "seconds_per_step": {k: round(v, 2) for k, v in seconds.items()},
        "images_per_second": {k: round(args.batch_size / v, 2) for k, v in seconds.items()},
        "forward_gflop_per_image": {k: round(v, 1) for k, v in gflop.items()},
        f"step_time_relative_to_{first}": {k: round(v / seconds[first], 2) for k, v in seconds.items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
