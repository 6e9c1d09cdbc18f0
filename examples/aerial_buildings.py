"""Buildings (or trees) in aerial images of Dubai with UNet++.

Trains UNetPlusPlus with deep supervision, FocalDiceLoss, BinaryIoU, D4
augmentation and a 5x5 median blur (in the tf.data graph) on random crops of
Tiles 1-6, validates on Tile 7, then segments every validation image whole with
tiled prediction and writes: the model, training curves (loss, IoU, learning
rate), predicted masks (0/255 PNG), overlays, error maps and metrics.json (IoU, precision, recall, F1, Dice
per image and overall).

    python examples/aerial_buildings.py --data ../shared/data/aerial-dubai
    python examples/aerial_buildings.py --target vegetation      # trees
    python examples/aerial_buildings.py --quick                  # smoke run

Also takes the original aerial project's layout: a folder with ``init/``
(256x256 RGB tiles) and ``mask/`` (0/255 masks), split by file.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
from _common import (
    LearningRateLogger,
    apply_defaults,
    common_parser,
    resolve_data,
    save_curves,
    to_numpy,
    total_report,
    write_metrics,
)

from keras_unetpp import BinaryIoU, FocalDiceLoss, UNetPlusPlus, predict_tiled
from keras_unetpp.inference import save_mask
from keras_unetpp.datasets import (
    crop_dataset,
    fixed_crops,
    is_dubai_layout,
    load_dubai,
    load_folder_pairs,
    split_by_group,
    split_fraction,
    to_float,
)
from keras_unetpp.evaluation import save_error_map, segmentation_report
from keras_unetpp.layers import MedianBlur, aerial_augmentation
from keras_unetpp.visualization import overlay, save_png


def load_split(data: Path, target: str, val_tile: int, seed: int):
    if is_dubai_layout(data):
        samples = load_dubai(data, target)
        return split_by_group(samples, [f"Tile {val_tile}"])
    if (data / "init").is_dir():
        return split_fraction(load_folder_pairs(data, "init", "mask", channels=3), 0.15, seed)
    raise SystemExit(f"{data} holds neither 'Tile N/images' folders nor init/ + mask/ folders.")


def main(argv=None):
    parser = common_parser(__doc__, "outputs/aerial")
    parser.add_argument("--target", default="building", help="class: building, vegetation (trees), road, water, land")
    parser.add_argument("--crop", type=int, default=None, help="training crop / prediction tile size")
    parser.add_argument("--val-tile", type=int, default=7)
    parser.add_argument("--tta", action="store_true", help="8-fold dihedral test-time augmentation")
    args = parser.parse_args(argv)
    apply_defaults(args, full=dict(epochs=24, steps=30, batch_size=8, crop=256, filters=[8, 16, 32, 64, 128]),
                   quick=dict(epochs=2, steps=3, batch_size=4, crop=64, filters=[8, 16, 32]))
    keras.utils.set_random_seed(args.seed)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    data = resolve_data(args.data, "aerial-dubai")

    train, val = load_split(data, args.target, args.val_tile, args.seed)
    if args.quick:
        val = val[:2]
    print(f"{len(train)} training images, {len(val)} validation images; target {args.target!r}")
    blur = MedianBlur(5)
    val_x, val_y = fixed_crops(val, args.crop, per_image=4, seed=args.seed)
    val_x = to_numpy(blur(val_x))  # the same preprocessing as in training
    train_ds = crop_dataset(train, args.crop, args.batch_size, aerial_augmentation(seed=args.seed), args.seed)

    filters = tuple(args.filters)
    model = UNetPlusPlus((None, None, 3), filters=filters, deep_supervision=True)
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, args.epochs * args.steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=FocalDiceLoss(), metrics=[BinaryIoU()])
    start = time.perf_counter()
    history = model.fit(train_ds, steps_per_epoch=args.steps, epochs=args.epochs, validation_data=(val_x, val_y),
                        callbacks=[LearningRateLogger()], verbose=2 if args.quick else 1)
    train_seconds = time.perf_counter() - start
    model.save(out / "model.keras")
    save_curves(history.history, out, f"aerial {args.target}")

    reports, per_image = [], {}
    start = time.perf_counter()
    for sample in val:
        image = to_numpy(blur(to_float(sample.image)))
        prob = predict_tiled(model, image, tile_size=args.crop, overlap=0.25, tta=args.tta)
        report = segmentation_report(sample.mask, prob, block_size=args.crop)
        reports.append(report)
        per_image[sample.name] = {k: v for k, v in report.to_dict().items() if k != "fractions"}
        stem = sample.name.replace("/", "_").replace(" ", "_")
        save_mask(out / f"{stem}_prediction.png", prob)
        save_error_map(out / f"{stem}_error_map.png", sample.mask, prob)
        save_png(out / f"{stem}_overlay.png", overlay(sample.image, prob))
    predict_seconds = time.perf_counter() - start
    overall = total_report(reports)
    print(overall)
    write_metrics(out, {
        "task": f"aerial {args.target}", "data": str(data), "quick": args.quick,
        "train_images": len(train), "val_images": len(val), "filters": list(filters),
        "epochs": args.epochs, "steps_per_epoch": args.steps, "batch_size": args.batch_size, "crop": args.crop,
        "train_seconds": round(train_seconds, 1), "predict_seconds": round(predict_seconds, 1), "tta": args.tta,
        "overall": overall.to_dict(), "per_image": per_image,
    })
    print(f"overall IoU {overall.iou:.3f}, Dice {overall.dice:.3f}; outputs in {out}/")
    return overall


if __name__ == "__main__":
    main()
