"""Lungs in chest X-rays with UNet++, and how much augmentation helps.

Loads ``images/`` + ``masks/`` (matched by name), splits by case (20% for
validation), resizes to a square, trains UNetPlusPlus with deep supervision
and the X-ray augmentation pipeline (small rotations, flips, brightness,
contrast, noise; in the tf.data graph), and writes the model, training curves,
a figure of image / true mask / predicted mask rows and metrics.json.

    python examples/lung_xray.py --data ../shared/data/lung-xray
    python examples/lung_xray.py --compare-augmentation   # same budget, with and without
    python examples/lung_xray.py --quick
"""

from __future__ import annotations

import time

import _quiet  # noqa: F401  (first: starts the backend without its start-up lines)
import keras
import numpy as np
import scipy.stats
from _common import (
    apply_defaults,
    fit_verbosity,
    common_parser,
    data_parallel,
    resolve_data,
    save_curves,
    training_callbacks,
    write_metrics,
)

from keras_unetpp import BinaryIoU, FocalDiceLoss, UNetPlusPlus
from keras_unetpp.datasets import array_dataset, load_folder_pairs, resized_arrays, split_fraction
from keras_unetpp.evaluation import SegmentationReport, segmentation_report
from keras_unetpp.layers import xray_augmentation
from keras_unetpp.visualization import save_prediction_grid


def train_and_evaluate(args, data, augment: bool, out):
    """Trains one model under the run's budget; returns its metrics."""
    keras.utils.set_random_seed(args.seed)
    train_x, train_y, val_x, val_y, val_names = data
    augmentation = xray_augmentation(seed=args.seed) if augment else None
    scope, devices = data_parallel(args.distribute)
    ds = array_dataset(train_x, train_y, args.batch_size * devices, augmentation, seed=args.seed)
    filters = tuple(args.filters)
    with scope:
        model = UNetPlusPlus((None, None, 1), filters=filters, deep_supervision=True)
        schedule = keras.optimizers.schedules.CosineDecay(2e-3 * devices, args.epochs * args.steps, alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=FocalDiceLoss(), metrics=[BinaryIoU()])
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    history = model.fit(ds, steps_per_epoch=args.steps, epochs=args.epochs, validation_data=(val_x, val_y),
                        callbacks=training_callbacks(out), verbose=fit_verbosity(args.quick),
                        shuffle=False)  # the tf.data pipeline draws random crops itself
    seconds = time.perf_counter() - start
    model.save(out / "model.keras")
    label = "with" if augment else "without"
    save_curves(history.history, out, f"lungs, {label} augmentation")
    prob = model.predict(val_x, batch_size=8, verbose=0)
    reports = [segmentation_report(t, p) for t, p in zip(val_y, prob)]
    overall = SegmentationReport.combined(reports)
    save_prediction_grid(out / "predictions.png", val_x[:6], val_y[:6], prob[:6])
    result = {
        "augmentation": augment, "filters": list(filters), "train_seconds": round(seconds, 1),
        "overall": overall.to_dict(),
        "mean_per_image_iou": sum(r.iou for r in reports) / len(reports),
        "per_image": {n: {"iou": r.iou, "dice": r.dice} for n, r in zip(val_names, reports)},
    }
    print(f"{label} augmentation: val IoU {overall.iou:.3f}, Dice {overall.dice:.3f} ({seconds:.0f} s)")
    return result


def paired_comparison(with_aug: dict, without_aug: dict) -> dict:
    """Per-case IoU changes (same validation cases, two models) and a Wilcoxon
    signed-rank test: one overall IoU from 16 cases says little on its own."""
    change = np.array([with_aug[name]["iou"] - without_aug[name]["iou"] for name in with_aug])
    nonzero = change[change != 0]
    p_value = float(scipy.stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else 1.0
    return {"cases": len(change), "cases_better": int((change > 0).sum()), "cases_worse": int((change < 0).sum()),
            "mean_iou_change": float(change.mean()), "median_iou_change": float(np.median(change)),
            "wilcoxon_p": p_value}


def main(argv=None):
    parser = common_parser(__doc__, "outputs/lung")
    parser.add_argument("--size", type=int, default=None, help="images are resized to size x size")
    parser.add_argument("--compare-augmentation", action="store_true")
    args = parser.parse_args(argv)
    apply_defaults(args, full=dict(epochs=12, steps=25, batch_size=8, size=256, filters=[8, 16, 32, 64, 128]),
                   quick=dict(epochs=2, steps=3, batch_size=4, size=64, filters=[8, 16, 32]))
    data_dir = resolve_data(args.data, "lung-xray")
    samples = load_folder_pairs(data_dir, channels=1)
    train, val = split_fraction(samples, 0.2, seed=args.seed)
    print(f"{len(train)} training cases, {len(val)} validation cases, resized to {args.size}x{args.size}")
    data = (*resized_arrays(train, args.size), *resized_arrays(val, args.size), [s.name for s in val])
    common = {"data": str(data_dir), "quick": args.quick, "train_cases": len(train), "val_cases": len(val),
              "size": args.size, "epochs": args.epochs, "steps_per_epoch": args.steps, "batch_size": args.batch_size}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.compare_augmentation:
        runs = {label: train_and_evaluate(args, data, aug, args.out / label)
                for label, aug in (("with_augmentation", True), ("without_augmentation", False))}
        gain = runs["with_augmentation"]["overall"]["iou"] - runs["without_augmentation"]["overall"]["iou"]
        paired = paired_comparison(runs["with_augmentation"]["per_image"], runs["without_augmentation"]["per_image"])
        write_metrics(args.out, {**common, "runs": runs, "iou_gain_from_augmentation": gain,
                                 "per_case_comparison": paired})
        print(f"augmentation changes validation IoU by {gain:+.3f}; better on {paired['cases_better']} of "
              f"{paired['cases']} cases, median per-case change {paired['median_iou_change']:+.3f} "
              f"(Wilcoxon p = {paired['wilcoxon_p']:.2f})")
        return runs
    result = train_and_evaluate(args, data, True, args.out)
    write_metrics(args.out, {**common, **result})
    return result


if __name__ == "__main__":
    main()
