"""All six classes of the Dubai aerial images with UNet++ (softmax output, per-class IoU).

Loads every tile with class-index masks (building, land, road, vegetation,
water, unlabeled; ``keras_unetpp.datasets.load_dubai_classes``), preprocesses
Tiles 1-6 whole (scale to [0, 1], 5x5 median blur), trains a six-class
UNetPlusPlus with deep supervision on random crops with the 8 symmetries of the
square, FocalDiceLoss + cross-entropy and MulticlassIoU, then segments every
Tile 7 image whole with ``predict_tiled`` through the saved model (raw uint8 in,
class probabilities out). Writes model.keras, curves, per image a colour-coded
prediction (``*_classes.png``: image | truth | prediction, in the data set's own
colours) and metrics.json (IoU per class and mean over present classes, overall
and per image).

    python examples/aerial_classes.py --data ../shared/data/aerial-dubai
    python examples/aerial_classes.py --quick
"""

from __future__ import annotations

import time

import _quiet  # noqa: F401  (first: starts the backend without its start-up lines)
import keras
import numpy as np
from _common import (
    apply_defaults,
    common_parser,
    encoder_options,
    fit_model,
    resolve_data,
    run_config,
)

from keras_unetpp import (
    CombinedLoss,
    FocalDiceLoss,
    LabelCrossEntropy,
    MulticlassIoU,
    UNetPlusPlus,
    predict_tiled,
    with_preprocessing,
)
from keras_unetpp.datasets import (
    DUBAI_CLASSES,
    Sample,
    class_color,
    crop_dataset,
    fixed_crops,
    load_dubai_classes,
    split_by_group,
)
from keras_unetpp.layers import RandomDihedral
from keras_unetpp.models import preprocess_images
from keras_unetpp.training import data_parallel, save_curves, write_metrics
from keras_unetpp.values import predicted_labels
from keras_unetpp.visualization import panel_grid, save_png

#: RGB colour of each class index, as in the data set's mask files; unknown pixels grey-black.
PALETTE = np.zeros((256, 3), np.uint8)
PALETTE[: len(DUBAI_CLASSES)] = [class_color(name) for name in DUBAI_CLASSES]
PALETTE[len(DUBAI_CLASSES):] = (40, 40, 40)


def colour_coded(classes: np.ndarray) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 in the data set's colours."""
    return PALETTE[classes]


def main(argv=None):
    parser = common_parser(__doc__, "outputs/aerial_classes")
    parser.add_argument("--crop", type=int, default=None, help="training crop and prediction tile")
    parser.add_argument("--median-kernel", type=int, default=5, help="median blur window (0 disables)")
    parser.add_argument("--val-tile", type=int, default=7)
    args = parser.parse_args(argv)
    apply_defaults(args, full=dict(epochs=20, steps=60, batch_size=8, crop=128, filters=[8, 16, 32, 64, 128]),
                   quick=dict(epochs=2, steps=3, batch_size=4, crop=64, filters=[8, 16, 32]))
    keras.utils.set_random_seed(args.seed)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    data = resolve_data(args.data, "aerial-dubai")
    train, val = split_by_group(load_dubai_classes(data), [f"Tile {args.val_tile}"])
    if args.quick:
        val = val[:2]
    classes = len(DUBAI_CLASSES)
    print(f"{len(train)} training images, {len(val)} validation images; classes {', '.join(DUBAI_CLASSES)}")

    def scaled(s):
        return Sample(s.name, s.group, preprocess_images(s.image, median_kernel=args.median_kernel), s.mask)

    val_x, val_y = fixed_crops([scaled(s) for s in val], args.crop, per_image=4, seed=args.seed)
    scope, devices = data_parallel(args.distribute)
    train_ds = crop_dataset([scaled(s) for s in train], args.crop, args.batch_size * devices,
                            RandomDihedral(seed=args.seed), args.seed)
    filters = tuple(args.filters)
    with scope:
        model = UNetPlusPlus((None, None, 3), filters=filters, num_classes=classes, deep_supervision=True,
                             **encoder_options(args))
    # Dice per class (every class counts, however rare) + cross-entropy (every pixel counts)
    loss = CombinedLoss([FocalDiceLoss(), LabelCrossEntropy()])  # label 255 (unknown colour) ignored by both
    start = time.perf_counter()
    history = fit_model(model, loss, [MulticlassIoU(classes)], train_ds, (val_x, val_y), args, out,
                        run_config(args))
    train_seconds = time.perf_counter() - start
    segmenter = with_preprocessing(model, channels=3, median_kernel=args.median_kernel, symmetries="dihedral")
    segmenter.save(out / "model.keras")
    save_curves(history, out, "aerial, six classes")

    overall, per_image = MulticlassIoU(classes), {}
    start = time.perf_counter()
    for sample in val:
        prob = predict_tiled(segmenter, sample.image, tile_size=args.crop, overlap=0.25)
        metric = MulticlassIoU(classes)
        for m in (metric, overall):
            m.update_state(sample.mask[None], prob[None])
        per_image[sample.name] = dict(zip(DUBAI_CLASSES, _rounded(metric.per_class_iou())),
                                      mean_iou=round(float(metric.result()), 4))
        predicted = predicted_labels(prob)
        stem = sample.name.replace("/", "_").replace(" ", "_")
        save_png(out / f"{stem}_classes.png",
                 panel_grid([(sample.image, colour_coded(sample.mask[..., 0]), colour_coded(predicted))],
                            ["image", "true classes", "predicted classes"]))
        save_png(out / f"{stem}_prediction.png", colour_coded(predicted))
    per_class = dict(zip(DUBAI_CLASSES, _rounded(overall.per_class_iou())))
    write_metrics(out, {
        "task": "aerial, six classes", "data": str(data), "quick": args.quick, "classes": list(DUBAI_CLASSES),
        "train_images": len(train), "val_images": len(val), "filters": list(filters), "epochs": args.epochs,
        "steps_per_epoch": args.steps, "batch_size": args.batch_size, "crop": args.crop,
        "train_seconds": round(train_seconds, 1), "predict_seconds": round(time.perf_counter() - start, 1),
        "per_class_iou": per_class, "mean_iou": round(float(overall.result()), 4), "per_image": per_image,
    })
    print("IoU per class on Tile", args.val_tile, ":",
          ", ".join(f"{name} {'-' if iou is None else f'{iou:.3f}'}" for name, iou in per_class.items()))
    print(f"mean IoU over present classes {float(overall.result()):.3f}; outputs in {out}/")
    return per_class


def _rounded(values):
    """Per-class IoUs for JSON: rounded, None for a class absent from truth and prediction."""
    return [None if np.isnan(v) else round(float(v), 4) for v in np.asarray(values)]


if __name__ == "__main__":
    main()
