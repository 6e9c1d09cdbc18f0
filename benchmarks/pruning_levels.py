"""Pruning: validation IoU and inference speed of UNet++ L1..L_L pruned from one
deep-supervision model, on the SYNTHETIC shapes set, in one run.

    python benchmarks/pruning_levels.py [--epochs 8] [--size 64]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import keras
from timing import median_seconds  # benchmarks/timing.py, beside this script

from keras_unetpp import BinaryIoU, FocalDiceLoss, UNetPlusPlus, evaluation
from keras_unetpp.datasets import make_shapes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--filters", type=int, nargs="+", default=[8, 16, 32, 64])
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    x, y = make_shapes(384, size=args.size, seed=0)
    vx, vy = make_shapes(128, size=args.size, seed=1)
    model = UNetPlusPlus((None, None, 3), filters=args.filters, deep_supervision=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=FocalDiceLoss(), metrics=[BinaryIoU()])
    model.fit(x, y, epochs=args.epochs, batch_size=16, verbose=0)

    rows = []
    candidates = [(f"L{k} (pruned)", model.prune(k)) for k in range(1, model.depth)]
    candidates.append((f"L{model.depth} (full, mean of heads)", model))
    for name, m in candidates:
        prob = m.predict(vx, batch_size=32, verbose=0)
        seconds = median_seconds({name: lambda m=m: m.predict(vx, batch_size=32, verbose=0)}, repeats=3)[name]
        iou = evaluation.segmentation_report(vy.reshape(-1, args.size), prob.reshape(-1, args.size)).iou
        rows.append({"model": name, "params": m.count_params(), "val_iou": round(iou, 4),
                     "predict_images_per_s": round(len(vx) / seconds, 1)})
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                      "data": f"synthetic shapes {args.size}x{args.size}", "epochs": args.epochs,
                      "filters": args.filters, "levels": rows}, indent=2))


if __name__ == "__main__":
    main()
