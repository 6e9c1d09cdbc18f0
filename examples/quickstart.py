"""Quickstart: train a small UNet++ on a SYNTHETIC toy set (shapes on textured
backgrounds, exact masks) for a minute or two on a CPU, then save the input /
true mask / prediction side by side as a PNG and report the IoU it reached.

    python examples/quickstart.py --out outputs/quickstart
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _quiet  # noqa: F401  (first: starts the backend without its start-up lines)
import keras

from keras_unetpp import BinaryIoU, FocalDiceLoss, UNetPlusPlus, evaluation
from keras_unetpp.datasets import make_shapes
from keras_unetpp.visualization import plot_curves, save_prediction_grid


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train-images", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/quickstart"))
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.train_images = 2, 64

    keras.utils.set_random_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    x_train, y_train = make_shapes(args.train_images, size=args.size, seed=args.seed)
    x_val, y_val = make_shapes(64, size=args.size, seed=args.seed + 1)

    model = UNetPlusPlus(input_shape=(None, None, 3), filters=(8, 16, 32, 64), deep_supervision=True)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=FocalDiceLoss(),
        metrics=[BinaryIoU()],
    )
    start = time.perf_counter()
    history = model.fit(
        x_train, y_train, validation_data=(x_val, y_val),
        epochs=args.epochs, batch_size=args.batch_size, verbose=2,
    )
    seconds = time.perf_counter() - start

    prob = model.predict(x_val, batch_size=32, verbose=0)
    report = evaluation.segmentation_report(y_val.reshape(-1, args.size), prob.reshape(-1, args.size))
    print(report)
    save_prediction_grid(args.out / "predictions.png", x_val[:6], y_val[:6], prob[:6])
    plot_curves(
        {k: v for k, v in history.history.items() if k in ("loss", "val_loss", "iou", "val_iou")},
        args.out / "curves.png", title="quickstart (synthetic shapes)", ylabel="loss, IoU",
    )
    model.save(args.out / "model.keras")
    result = {
        "data": "synthetic shapes (keras_unetpp.datasets.make_shapes)",
        "epochs": args.epochs,
        "train_images": args.train_images,
        "train_seconds": round(seconds, 1),
        "val_iou": report.iou,
        "val_dice": report.dice,
    }
    (args.out / "metrics.json").write_text(json.dumps(result, indent=2))
    print(f"validation IoU {report.iou:.3f} (Dice {report.dice:.3f}) after {seconds:.0f} s; "
          f"figures in {args.out}/")
    return result


if __name__ == "__main__":
    main()
