"""Aerial buildings: each recipe change measured on Tile 7 at one fixed budget.

Every configuration trains from scratch on Tiles 1-6 for the number of steps
that fits ``--budget-minutes`` of training on the reference CPU (2 cores, its
seconds per step measured with ``--time-steps`` and kept in
``benchmarks/results/aerial_step_seconds.json``), then segments the nine Tile 7
images whole with ``predict_tiled`` through ``with_preprocessing`` (raw uint8 in,
full-resolution probabilities out) and scores every pixel. Because the budget
is a step count, the same table can be computed on a faster machine and the
quality still describes the CPU budget.

    python research/aerial_recipe.py --time-steps baseline half         # CPU seconds per step
    python research/aerial_recipe.py --configs baseline half --budget-minutes 15

Training data come from the same ``tf.data`` pipeline as the example
(``crop_dataset`` + ``RandomDihedral``, TensorFlow backend). Writes one JSON line per configuration to ``--out`` (default
``benchmarks/results/aerial_recipe.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np

RESULTS = Path(__file__).parent / "results"
BASE = dict(downsample=1, crop=256, batch=8, filters=(8, 16, 32, 64, 128), loss="focal_dice", lr=2e-3, warmup=0.0,
            foreground=0.0, color=0.0, precision="float32")
CONFIGS = {
    "baseline": {},                                   # today's example
    "half": dict(downsample=2),                       # 1/2 scale, crop 256 = 512 px of scene
    "half_c128": dict(downsample=2, crop=128),        # 1/2 scale, today's context, 4x cheaper steps
    "third": dict(downsample=3),                      # 1/3 scale, 768 px of scene
    "half_bce": dict(downsample=2, loss="bce_dice"),  # + binary cross-entropy
    "half_wide": dict(downsample=2, filters=(16, 32, 64, 128, 256)),
    "half_warm": dict(downsample=2, warmup=0.05, lr=4e-3),
    "half_deep": dict(downsample=2, filters=(8, 16, 32, 64, 128, 256)),
    "half_c128_bce": dict(downsample=2, crop=128, loss="bce_dice"),
    "half_c128_warm": dict(downsample=2, crop=128, warmup=0.05, lr=4e-3),
    "c128": dict(crop=128),                           # full scale, crop 128: the cost of half_c128, finer detail
    "c128_bce": dict(crop=128, loss="bce_dice"),
    "c128_halo": dict(crop=128, loss="halo_dice"),    # + BCE weighing the background next to buildings 5x
    "half_c128_halo": dict(downsample=2, crop=128, loss="halo_dice"),
    "c128_halo_fg": dict(crop=128, loss="halo_dice", foreground=0.5),   # half the crops around a building pixel
    "c128_halo_w16": dict(crop=128, loss="halo_dice", filters=(16, 32, 64, 128, 256)),
    "c128_halo_fg_w16": dict(crop=128, loss="halo_dice", foreground=0.5, filters=(16, 32, 64, 128, 256)),
    # + random brightness (color x 0.5) and contrast (color) per crop: scenes differ in light and haze
    "c128_halo_color": dict(crop=128, loss="halo_dice", color=0.2),
    "c128_halo_fg_color": dict(crop=128, loss="halo_dice", foreground=0.5, color=0.2),
    # one change each from c128_halo_fg:
    "c128_halo_fg_l5": dict(crop=128, loss="halo_dice", foreground=0.5, filters=(8, 16, 32, 64, 128, 256)),  # 2x context
    "c128_halo_fg_warm": dict(crop=128, loss="halo_dice", foreground=0.5, warmup=0.05, lr=4e-3),
    "c128_halo_fg_bf16": dict(crop=128, loss="halo_dice", foreground=0.5, precision="mixed_bfloat16"),
    # the row-polygon labels need context. Half scale with one level more: a crop of
    # 128 covers 256 px of scene and the receptive field 4x the default's, at the default's step cost
    "half_c128_halo_fg_l5": dict(downsample=2, crop=128, loss="halo_dice", foreground=0.5,
                                 filters=(8, 16, 32, 64, 128, 256)),
}


def augmentation(cfg, seed):
    """The 8 symmetries, and with ``color`` random brightness / contrast (the images are blurred beforehand)."""
    from keras_unetpp.layers import aerial_augmentation

    return aerial_augmentation(seed, median_kernel=0, color_jitter=cfg["color"])


THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def config(name: str) -> dict:
    if name not in CONFIGS:
        raise SystemExit(f"Unknown config {name!r}; known: {sorted(CONFIGS)}")
    return {**BASE, **CONFIGS[name]}


def step_seconds_for(name: str, measured: dict) -> float:
    """The measured CPU seconds per step of ``name``, or of a measured config
    with the same step cost (crop, batch, filters; loss, sampling and working
    scale do not change what one step computes)."""
    if name in measured:
        return measured[name]
    key = lambda c: (c["crop"], c["batch"], tuple(c["filters"]))  # noqa: E731
    for other, seconds in measured.items():
        if other in CONFIGS and key(config(other)) == key(config(name)):
            return seconds
    raise SystemExit(f"No CPU step time for {name!r}: run --time-steps {name} on the reference CPU first.")


def load_tiles(data: Path, target: str = "building"):
    """(name, tile, uint8 image, uint8 0/1 (H, W) mask) for every pair."""
    from keras_unetpp.datasets import load_dubai

    return [(s.name, s.group, s.image, s.mask[..., 0]) for s in load_dubai(data, target)]


def make_loss(name):
    from keras_unetpp import FocalDiceLoss

    if name == "focal_dice":
        return FocalDiceLoss()

    from keras_unetpp.losses import HaloWeightedCrossEntropy

    focal_dice = FocalDiceLoss()
    bce = (HaloWeightedCrossEntropy(halo_weight=4.0, halo_width=9) if name == "halo_dice"
           else keras.losses.BinaryCrossentropy())

    def bce_dice(y_true, y_pred):
        return focal_dice(y_true, y_pred) + bce(y_true, y_pred)

    return bce_dice


def build(cfg):
    from keras_unetpp import UNetPlusPlus

    model = UNetPlusPlus((None, None, 3), filters=cfg["filters"], deep_supervision=True)
    return model


def compile_model(model, cfg, steps):
    """Adam on the library's schedule (keras_unetpp.training): warm-up from 0, cosine decay to 5 %."""
    from keras_unetpp.training import Recipe, learning_rate_schedule

    recipe = Recipe(epochs=1, steps_per_epoch=steps, learning_rate=cfg["lr"], warmup_steps=int(cfg["warmup"] * steps))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate_schedule(recipe)), loss=make_loss(cfg["loss"]))


def prepared_training_set(tiles, cfg, val_tile):
    from keras_unetpp.models import downsample_masks, preprocess_images

    images, masks = [], []
    for _, tile, image, mask in tiles:
        if tile == f"Tile {val_tile}":
            continue
        images.append(preprocess_images(image, downsample=cfg["downsample"]))
        masks.append(downsample_masks(mask, cfg["downsample"])[..., 0] if cfg["downsample"] > 1 else mask)
    return images, masks


def time_steps(names, repeats=6):
    rows = {}
    for name in names:
        cfg = config(name)
        model = build(cfg)
        compile_model(model, cfg, 1000)
        c = cfg["crop"]
        rng = np.random.default_rng(0)
        x = rng.random((cfg["batch"], c, c, 3), np.float32)
        y = (rng.random((cfg["batch"], c, c, 1)) > 0.7).astype(np.float32)
        model.train_on_batch(x, y)
        model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(repeats):
            model.train_on_batch(x, y)
        rows[name] = round((time.perf_counter() - start) / repeats, 3)
        print(f"{name}: {rows[name]} s/step", flush=True)
    path = RESULTS / "aerial_step_seconds.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    known.update(rows)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(known, indent=2))


def scores(counts):
    """IoU, precision, recall and Dice of summed confusion counts (keras_unetpp.evaluation)."""
    from keras_unetpp.evaluation import SegmentationReport

    report = SegmentationReport(counts)
    return dict(iou=round(report.iou, 4), precision=round(report.precision, 4), recall=round(report.recall, 4),
                dice=round(report.dice, 4))


def evaluate(model, tiles, cfg, val_tile, tta=False, heads=("mean", "deepest")):
    from keras_unetpp import predict_tiled, with_preprocessing
    from keras_unetpp.evaluation import ConfusionCounts, confusion_counts

    depth = len(cfg["filters"]) - 1
    cores = {"mean": model, "deepest": model.prune(depth)}
    out = {}
    for head in heads:
        core = cores[head]
        wrapped = with_preprocessing(core, median_kernel=5, downsample=cfg["downsample"])
        total = {t: ConfusionCounts(0, 0, 0, 0) for t in THRESHOLDS}
        for _, tile, image, mask in tiles:
            if tile != f"Tile {val_tile}":
                continue
            prob = predict_tiled(wrapped, image, tile_size=cfg["crop"] * cfg["downsample"], overlap=0.25,
                                 batch_size=8, tta=tta, progress=False)[..., 0]
            for t in THRESHOLDS:
                total[t] = total[t] + confusion_counts(mask, prob, t)
        out[head] = {str(t): scores(c) for t, c in total.items()}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("KERAS_UNETPP_DATA", "../shared/data")) / "aerial-dubai")
    parser.add_argument("--configs", nargs="+", default=[])
    parser.add_argument("--time-steps", nargs="+", default=[])
    parser.add_argument("--budget-minutes", type=float, default=15.0)
    parser.add_argument("--steps", type=int, default=None, help="train this many steps instead of the budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-tile", type=int, default=7)
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--heads", nargs="+", default=["mean", "deepest"], choices=["mean", "deepest"],
                        help="inference heads to score: the mean of the deep-supervision heads, the deepest one")
    parser.add_argument("--out", type=Path, default=RESULTS / "aerial_recipe.jsonl")
    args = parser.parse_args(argv)
    if args.time_steps:
        time_steps(args.time_steps)
    if not args.configs:
        return
    step_seconds_file = RESULTS / "aerial_step_seconds.json"
    step_seconds = json.loads(step_seconds_file.read_text()) if step_seconds_file.exists() else {}
    tiles = load_tiles(args.data)
    for name in args.configs:
        cfg = config(name)
        steps = args.steps or int(args.budget_minutes * 60 / step_seconds_for(name, step_seconds))
        keras.utils.set_random_seed(args.seed)
        keras.mixed_precision.set_global_policy(cfg["precision"])
        images, masks = prepared_training_set(tiles, cfg, args.val_tile)
        model = build(cfg)
        compile_model(model, cfg, steps)
        from keras_unetpp.datasets import Sample, crop_dataset
        samples = [Sample(str(k), str(k), image, mask[..., None]) for k, (image, mask) in enumerate(zip(images, masks))]
        data = crop_dataset(samples, cfg["crop"], cfg["batch"], augmentation(cfg, args.seed), args.seed,
                            foreground_fraction=cfg["foreground"])
        start = time.perf_counter()
        history = model.fit(data, steps_per_epoch=steps, epochs=1, verbose=2)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        result = evaluate(model, tiles, cfg, args.val_tile, args.tta, args.heads)
        row = dict(config=name, **{k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}, steps=steps,
                   budget_minutes=args.budget_minutes, seed=args.seed, val_tile=args.val_tile, tta=args.tta,
                   final_loss=round(float(history.history["loss"][-1]), 4), train_seconds=round(seconds, 1),
                   eval_seconds=round(time.perf_counter() - start, 1), backend=keras.backend.backend(), tile7=result)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        summary = ", ".join(f"{head} IoU@0.5 {r['0.5']['iou']} (P {r['0.5']['precision']} R {r['0.5']['recall']})"
                            for head, r in result.items())
        print(f"{name}: steps {steps}, {summary}, train {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
