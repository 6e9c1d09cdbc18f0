"""Which epoch's weights should ``keras-unetpp train`` keep? Every epoch of one aerial run, scored.

Runs ``keras_unetpp.training.train`` on the aerial task of ``train_command.py`` (Dubai Tiles 1-6 ->
Tile 7, buildings, 20 minutes, no option but the data) and keeps every epoch's weights. Then, for
every epoch from a third of the way in, it measures:

- ``crops_36``: the validation IoU ``train`` logs (4 random 128 px crops per Tile 7 image);
- ``crops_288``: the same on 32 crops per image (8x as many, computed afterwards);
- ``whole``: the IoU of all of Tile 7, whole images tiled: the score ``train`` reports.

and reports the ``whole`` IoU of the epoch each rule keeps: the final epoch; the best by
``crops_36`` (what ``train`` keeps); the best by ``crops_36`` or ``crops_288`` among the last
third of the epochs; the best by ``crops_288``.

    KERAS_UNETPP_DATA=../shared/data python benchmarks/kept_weights.py --seed 1

Writes ``benchmarks/results/runs/kept_weights_seed<N>.json`` and ``kept_weights_seed<N>.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path

import keras

from keras_unetpp.evaluation import SegmentationReport, segmentation_report

HERE = Path(__file__).resolve().parent


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", default="20m")
    parser.add_argument("--data", type=Path, default=None, help="default: $KERAS_UNETPP_DATA")
    parser.add_argument("--work", type=Path, default=Path("outputs/kept_weights"))
    parser.add_argument("--results", type=Path, default=HERE / "results" / "runs")
    return parser.parse_args(argv)


def tile_iou(segmenter, samples, value_range) -> float:
    """IoU of all pixels of ``samples``, each whole image tiled as ``train`` scores it."""
    from keras_unetpp import predict_tiled

    reports = [segmentation_report(s.mask, predict_tiled(segmenter, s.image, tile_size=256, overlap=0.25,
                                                         progress=False, input_range=value_range))
               for s in samples]
    return SegmentationReport.combined(reports).iou


def crop_iou(backbone, crops) -> float:
    """Pooled IoU of the backbone's masks of preprocessed crops (the metric ``train`` logs)."""
    images, masks = crops
    predicted = backbone.predict(images, batch_size=16, verbose=0)
    return SegmentationReport.combined([segmentation_report(t, q) for t, q in zip(masks, predicted)]).iou


def main(argv=None) -> dict:
    args = parse(argv)
    from train_command import prepare

    from keras_unetpp.datasets import fixed_crops
    from keras_unetpp.datasets.io import Sample, data_root
    from keras_unetpp.models import preprocess_images
    from keras_unetpp.segmenter import describe_model
    from keras_unetpp.training import train
    from keras_unetpp.training.run import load_pairs
    from keras_unetpp.values import to_model_values

    train_dir, val_dir = prepare("aerial", 0, data_root(args.data), Path("outputs/train_command"))
    out = args.work / f"aerial_seed{args.seed}"
    shutil.rmtree(out, ignore_errors=True)
    (out / "epochs").mkdir(parents=True)
    keep = [keras.callbacks.ModelCheckpoint(str(out / "epochs" / "e{epoch:03d}.weights.h5"), save_weights_only=True),
            keras.callbacks.CSVLogger(str(out / "epochs" / "log.csv"))]
    start = time.perf_counter()
    result = train(train_dir / "images", train_dir / "masks", out / "run", val_images=val_dir / "images",
                   val_masks=val_dir / "masks", time_budget=args.budget, seed=args.seed, callbacks=keep)
    wall = time.perf_counter() - start
    plan = {k: v["value"] for k, v in result["plan"].items()}
    logged = {int(row["epoch"]) + 1: float(row["val_iou"]) for row in csv.DictReader(open(out / "epochs" / "log.csv"))}
    epochs = max(logged)
    kept_epoch = json.loads((out / "run" / "best.weights.h5.json").read_text())["epoch"]

    segmenter = keras.saving.load_model(out / "run" / "model.keras")
    backbone = segmenter.backbone
    value_range = describe_model(segmenter).input_range   # the range the saved model states
    val = load_pairs(val_dir / "images", val_dir / "masks")
    # onto [0, 1] by the one rule of keras_unetpp.values, as train prepares its validation crops
    prepared = [Sample(s.name, s.group, preprocess_images(to_model_values(s.image, (0.0, 1.0), value_range), 1.0,
                                                          plan["median_kernel"]), s.mask)
                for s in val]
    crops_288 = fixed_crops(prepared, plan["crop"], per_image=32, seed=args.seed + 1)
    first = max(1, epochs // 3)
    per_epoch = {}
    for epoch in sorted(set(range(first, epochs + 1)) | {kept_epoch}):
        backbone.load_weights(out / "epochs" / f"e{epoch:03d}.weights.h5")
        per_epoch[epoch] = {"crops_36": logged[epoch], "crops_288": crop_iou(backbone, crops_288),
                            "whole": tile_iou(segmenter, val, value_range)}
        print(f"epoch {epoch}: {per_epoch[epoch]}", flush=True)
    last_third = [e for e in per_epoch if e > epochs - max(1, epochs // 3)]
    rules = {"final": epochs,
             "best crops_36 (what train keeps)": kept_epoch,
             "best crops_36, last third": max(last_third, key=lambda e: per_epoch[e]["crops_36"]),
             "best crops_288": max(per_epoch, key=lambda e: per_epoch[e]["crops_288"]),
             "best crops_288, last third": max(last_third, key=lambda e: per_epoch[e]["crops_288"])}
    summary = {"seed": args.seed, "budget": args.budget, "wall_seconds": round(wall, 1), "epochs": epochs,
               "steps": result["steps"], "train_iou": result["overall"]["iou"],
               "rules": {rule: {"epoch": e, **per_epoch[e]}
                         for rule, e in rules.items()},
               "per_epoch": per_epoch, "date": time.strftime("%Y-%m-%d")}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"kept_weights_seed{args.seed}.json").write_text(json.dumps(summary, indent=1))
    _plot(per_epoch, logged, args.results / f"kept_weights_seed{args.seed}.png", args.seed)
    print(json.dumps(summary["rules"], indent=1))
    shutil.rmtree(out / "epochs")  # 66 MB an epoch
    return summary


def _plot(per_epoch: dict, logged: dict, path: Path, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(list(logged), list(logged.values()), color="0.6", label="36 crops (logged)")
    ax.plot(list(per_epoch), [v["crops_288"] for v in per_epoch.values()], label="288 crops")
    ax.plot(list(per_epoch), [v["whole"] for v in per_epoch.values()], label="Tile 7, whole images")
    ax.set_xlabel("epoch")
    ax.set_ylabel("IoU")
    ax.set_title(f"keras-unetpp train, buildings, seed {seed}: validation IoU per epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
