"""Lungs in chest X-rays with UNet++, and how much augmentation helps.

Loads ``images/`` + ``masks/`` (matched by name), splits by case (20% for
validation), resizes to a square, trains UNet++ (plain, with deep supervision;
with ``--encoder``, that encoder under the compact decoder) and the X-ray
augmentation pipeline (small rotations, flips, brightness, contrast, noise; in
the tf.data graph), and writes the model, training curves,
a figure of image / true mask / predicted mask rows and metrics.json. Every
model is scored on the validation cases as they are and shifted the way real
films differ (rotated, brighter / lower contrast, noisier, lower resolution,
mirrored), raw and after post-processing (two largest regions, holes filled).

    python examples/lung_xray.py --data ../shared/data/lung-xray
    python examples/lung_xray.py --compare-augmentation   # none vs all, --seeds 3, same budget
    python examples/lung_xray.py --ablation               # none, each transform alone, all
    python examples/lung_xray.py --arms flip noise        # just these arms
    python examples/lung_xray.py --no-tta                 # plain predictions only (TTA: each film and its mirror)
    python examples/lung_xray.py --quick
"""

from __future__ import annotations

import argparse
import time

import _quiet  # noqa: F401  (first: starts the backend without its start-up lines)
import cv2
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

from keras_unetpp import BinaryIoU, FocalDiceLoss, with_preprocessing
from keras_unetpp.datasets import array_dataset, load_folder_pairs, resized_arrays, split_fraction
from keras_unetpp.evaluation import SegmentationReport, paired_comparison, segmentation_report
from keras_unetpp.inference import MIRROR_TTA, predict_augmented
from keras_unetpp.layers import xray_augmentation
from keras_unetpp.models import architecture, build_architecture
from keras_unetpp.postprocessing import fill_holes, keep_largest_regions
from keras_unetpp.training import data_parallel, save_curves, write_metrics
from keras_unetpp.visualization import comparison_figure, save_figure, save_prediction_grid

#: Augmentation arms: keyword arguments of xray_augmentation(), None for no augmentation.
ALL_OFF = dict(max_degrees=0, flip=False, brightness=0, contrast=0, noise=0)
ARMS = {
    "none": None,
    "flip": {**ALL_OFF, "flip": True},
    "rotation": {**ALL_OFF, "max_degrees": 10.0},
    "intensity": {**ALL_OFF, "brightness": 0.1, "contrast": 0.2},
    "noise": {**ALL_OFF, "noise": 0.02},
    "no_noise": {"noise": 0},  # rotation, flip and intensity together: for films known to be clean
    "all": {},
    "opacity": {"opacity": 0.6},  # all five plus white patches on the lungs (RandomOpacity): for dense opacities
}


def _rotate(image, degrees, interpolation):
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    out = cv2.warpAffine(image, matrix, (w, h), flags=interpolation, borderMode=cv2.BORDER_CONSTANT)
    return out.reshape(image.shape)


def _low_resolution(image, factor=4):
    h, w = image.shape[:2]
    small = cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(image.shape)


#: Validation under shift: how real films differ from the training set. Each maps
#: (float32 image in [0, 1], 0/1 mask) to a shifted pair; written with OpenCV and
#: numpy, independently of the augmentation layers. Rotations leave black
#: corners, as a film rotated in a scanner does.
SHIFTS = {
    "clean": lambda x, y: (x, y),
    "rotated +10": lambda x, y: (_rotate(x, 10, cv2.INTER_LINEAR), _rotate(y, 10, cv2.INTER_NEAREST)),
    "rotated -10": lambda x, y: (_rotate(x, -10, cv2.INTER_LINEAR), _rotate(y, -10, cv2.INTER_NEAREST)),
    "brighter": lambda x, y: (np.clip(x + 0.15, 0, 1), y),
    "low contrast": lambda x, y: (np.clip(0.5 + 0.6 * (x - 0.5), 0, 1), y),
    "noisy": lambda x, y: (np.clip(x + np.random.default_rng(7).normal(0, 0.05, x.shape), 0, 1).astype(np.float32), y),
    "low resolution": lambda x, y: (_low_resolution(x), y),
    "mirrored": lambda x, y: (x[:, ::-1].copy(), y[:, ::-1].copy()),
}


def postprocess(prob):
    """Two largest regions (the lungs), holes filled."""
    return fill_holes(keep_largest_regions(prob, 2)).astype(np.float32)[..., None]


def predict(model, images, tta: bool):
    """Probabilities; with ``tta`` the mean of the film as is and mirrored."""
    return predict_augmented(model, images, tta=MIRROR_TTA if tta else False)


def score_under_shifts(model, val_x, val_y, val_names, tta=False):
    """Per condition: per-case Dice, raw and post-processed."""
    out = {}
    for condition, shift in SHIFTS.items():
        pairs = [shift(x, y) for x, y in zip(val_x, val_y)]
        xs, ys = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
        prob = predict(model, xs, tta)
        out[condition] = {
            "dice": {n: segmentation_report(t, p).dice for n, t, p in zip(val_names, ys, prob)},
            "dice_postprocessed": {n: segmentation_report(t, postprocess(p)).dice
                                   for n, t, p in zip(val_names, ys, prob)},
        }
    return out


def model_name(args) -> str:
    """The named default the run builds: the compact decoder under an encoder, else the plain UNet++."""
    return "plain" if args.encoder in (None, "none") else "compact_lite0"


def build_model(args):
    """The example's UNet++ for one-band films (keras_unetpp.models.build_architecture)."""
    options = encoder_options(args)
    return build_architecture(model_name(args), channels=1, encoder_weights=options.pop("encoder_weights", None),
                              filters=tuple(args.filters), **options)


def train_and_evaluate(args, data, arm: str, seed: int, out):
    """Trains one model of augmentation ``arm`` under the run's budget; returns its metrics."""
    keras.utils.set_random_seed(seed)
    train_x, train_y, val_x, val_y, val_names = data
    augmentation = None if ARMS[arm] is None else xray_augmentation(seed=seed, **ARMS[arm])
    scope, devices = data_parallel(args.distribute)
    ds = array_dataset(train_x, train_y, args.batch_size * devices, augmentation, seed=seed)
    filters = tuple(args.filters)
    with scope:
        model = build_model(args)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    history = fit_model(model, FocalDiceLoss(), [BinaryIoU()], ds, (val_x, val_y), args, out,
                        {**run_config(args), "arm": arm, "seed": seed})
    seconds = time.perf_counter() - start
    # The saved model takes films as they come: 8-bit grayscale of any size in, probabilities at the film's
    # size out (resized to the working size and scaled inside); 16-bit films through --input-range. It records
    # the flips it was trained with, so that --tta mirrors films and never turns them upside down.
    mirrored = ARMS[arm] is not None and ARMS[arm].get("flip", True)
    with_preprocessing(model, channels=1, median_kernel=0, working_size=(args.size, args.size),
                       symmetries="mirror" if mirrored else "none", name="lung_segmenter").save(out / "model.keras")
    save_curves(history, out, f"lungs, augmentation {arm!r}, seed {seed}")
    prob = predict(model, val_x, args.tta)
    reports = [segmentation_report(t, p) for t, p in zip(val_y, prob)]
    overall = SegmentationReport.combined(reports)
    post = SegmentationReport.combined([segmentation_report(t, postprocess(p)) for t, p in zip(val_y, prob)])
    save_prediction_grid(out / "predictions.png", val_x[:6], val_y[:6], prob[:6])
    result = {
        "augmentation": arm, "seed": seed, "filters": list(filters), "train_seconds": round(seconds, 1),
        "overall": overall.to_dict(), "overall_postprocessed": post.to_dict(),
        "mean_per_image_iou": sum(r.iou for r in reports) / len(reports),
        "per_image": {n: {"iou": r.iou, "dice": r.dice} for n, r in zip(val_names, reports)},
        "shifts": score_under_shifts(model, val_x, val_y, val_names, args.tta),
        # per epoch (args.steps steps each): learning speed, e.g. validation Dice = 2 IoU / (1 + IoU)
        "history": {k: [round(float(v), 5) for v in values] for k, values in history.items()},
    }
    if args.tta:  # the same model without it, so the gain is read off one run
        plain = predict(model, val_x, False)
        result["overall_without_tta"] = SegmentationReport.combined(
            [segmentation_report(t, p) for t, p in zip(val_y, plain)]).to_dict()
    print(f"augmentation {arm!r}, seed {seed}: val IoU {overall.iou:.3f}, Dice {overall.dice:.3f}, "
          f"post-processed Dice {post.dice:.3f}"
          + (f", without TTA {result['overall_without_tta']['dice']:.3f}" if args.tta else "") + f" ({seconds:.0f} s)")
    return result


def _mean_sd(values):
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "values": values.tolist()}


def summarize(runs: dict) -> dict:
    """Per arm, over seeds: overall Dice / IoU (raw and post-processed) and the
    mean per-case Dice of every shift condition, as mean, sd and the values."""
    summary = {}
    for arm, seeds in runs.items():
        summary[arm] = {
            "dice": _mean_sd([r["overall"]["dice"] for r in seeds]),
            "iou": _mean_sd([r["overall"]["iou"] for r in seeds]),
            "dice_postprocessed": _mean_sd([r["overall_postprocessed"]["dice"] for r in seeds]),
            "shifts": {c: _mean_sd([np.mean(list(r["shifts"][c]["dice"].values())) for r in seeds])
                       for c in SHIFTS},
        }
    return summary


def case_means(seeds: list, key: str = "iou") -> dict:
    """Per validation case, ``key`` averaged over the seeds of one arm."""
    return {name: {key: float(np.mean([r["per_image"][name][key] for r in seeds]))} for name in seeds[0]["per_image"]}


def save_figures(summary: dict, out) -> None:
    arms = list(summary)
    fig = comparison_figure(list(SHIFTS), {arm: [summary[arm]["shifts"][c]["values"] for c in SHIFTS] for arm in arms},
                            ylabel="mean Dice per case", title="validation cases as they are and shifted")
    fig.axes[0].set_ylim(max(0.0, min(min(v["shifts"][c]["values"]) for v in summary.values() for c in SHIFTS) - 0.05), 1.0)
    save_figure(fig, out / "robustness.png")
    fig = comparison_figure(["Dice", "Dice, post-processed"],
                            {arm: [summary[arm]["dice"]["values"], summary[arm]["dice_postprocessed"]["values"]]
                             for arm in arms}, ylabel="validation Dice (all pixels)", title="augmentation arms")
    fig.axes[0].set_ylim(max(0.0, min(min(v["dice"]["values"]) for v in summary.values()) - 0.05), 1.0)
    save_figure(fig, out / "arms.png")


def main(argv=None):
    parser = common_parser(__doc__, "outputs/lung")
    parser.add_argument("--size", type=int, default=None, help="images are resized to size x size")
    parser.add_argument("--compare-augmentation", action="store_true",
                        help="train without and with augmentation ('none', 'all'), --seeds each")
    parser.add_argument("--ablation", action="store_true",
                        help="train every arm: " + ", ".join(ARMS) + " (--seeds each)")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=None,
                        help="train just these arms (e.g. the single transforms of --ablation at a longer budget)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="seed of the train / validation split by case (fixed, so runs with another --seed "
                             "are scored on the same 16 cases)")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True,
                        help="score the mean of each film and its mirror image (test-time augmentation, the "
                             "default: +0.003 Dice on average for models trained with flips, docs/research-log.md; "
                             "the score without it is reported too); --no-tta scores plain predictions only")
    parser.add_argument("--seeds", type=int, default=None,
                        help="training runs per arm, seeds --seed, --seed+1, ... (default 3 when comparing, else 1)")
    args = parser.parse_args(argv)
    # The default: the plain UNet++ 8-256. --encoder efficientnet_lite0 builds the aerial default (ImageNet Lite0,
    # first convolution summed to one band, under the compact decoder): Dice 0.955 / 0.955 against 0.950 / 0.951 at
    # equal time on films like the training ones (docs/benchmarks.md), its robustness under the shifts below not
    # measured yet, where the Lite0 encoder under the nested decoder lost 0.11 on coarse scans.
    named = architecture(model_name(args))    # keras_unetpp.models.ARCHITECTURES: one definition
    apply_defaults(args, full=dict(epochs=48, steps=25, batch_size=8, size=256, filters=list(named["filters"])),
                   quick=dict(epochs=2, steps=3, batch_size=4, size=64, filters=[8, 16, 32]))
    comparing = args.compare_augmentation or args.ablation or args.arms is not None
    if args.seeds is None:
        args.seeds = (1 if args.quick else 3) if comparing else 1
    data_dir = resolve_data(args.data, "lung-xray")
    samples = load_folder_pairs(data_dir, channels=1)
    train, val = split_fraction(samples, 0.2, seed=args.split_seed)
    print(f"{len(train)} training cases, {len(val)} validation cases, resized to {args.size}x{args.size}")
    data = (*resized_arrays(train, args.size), *resized_arrays(val, args.size), [s.name for s in val])
    common = {"data": str(data_dir), "quick": args.quick, "train_cases": len(train), "val_cases": len(val),
              "size": args.size, "epochs": args.epochs, "steps_per_epoch": args.steps, "batch_size": args.batch_size,
              "seeds": args.seeds, "split_seed": args.split_seed, "tta": args.tta, "architecture": model_name(args)}
    args.out.mkdir(parents=True, exist_ok=True)
    arms = args.arms or (list(ARMS) if args.ablation else ["none", "all"] if args.compare_augmentation else ["all"])
    seeds = [args.seed + k for k in range(args.seeds)]
    out_of = lambda arm, seed: args.out / arm / f"seed{seed}" if comparing else args.out  # noqa: E731
    runs = {arm: [train_and_evaluate(args, data, arm, seed, out_of(arm, seed)) for seed in seeds] for arm in arms}
    summary = summarize(runs)
    payload = {**common, "arms": arms, "summary": summary, "runs": runs}
    if {"none", "all"} <= set(runs):
        payload["per_case_comparison"] = paired_comparison(case_means(runs["all"]), case_means(runs["none"]))
        gain = summary["all"]["dice"]["mean"] - summary["none"]["dice"]["mean"]
        payload["dice_gain_from_augmentation"] = gain
        paired = payload["per_case_comparison"]
        print(f"augmentation changes validation Dice by {gain:+.3f} (mean of {args.seeds} seeds); per case "
              f"(IoU averaged over seeds) better on {paired['cases_better']} of {paired['cases']}, "
              f"Wilcoxon p = {paired['wilcoxon_p']:.2g}")
    if comparing:
        save_figures(summary, args.out)
        for arm in arms:
            row = summary[arm]
            print(f"  {arm:10s} Dice {row['dice']['mean']:.3f} +- {row['dice']['sd']:.3f}  post-processed "
                  f"{row['dice_postprocessed']['mean']:.3f}  " +
                  "  ".join(f"{c}: {row['shifts'][c]['mean']:.3f}" for c in SHIFTS))
    write_metrics(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
