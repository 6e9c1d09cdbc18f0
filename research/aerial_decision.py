"""Aerial buildings: the decision levers measured on a trained model, no training.

Loads a model saved by ``examples/aerial_buildings.py`` (it carries its
preprocessing, so it takes the raw uint8 images), segments the validation
tile's images whole (with ``--tta`` also with 8-fold dihedral test-time augmentation)
and scores every pixel at several thresholds and minimum region areas
(``keras_unetpp.postprocessing.remove_small_regions``).

    python research/aerial_decision.py outputs/aerial/model.keras --tile-size 512

Prints a table and writes ``benchmarks/results/aerial_decision.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import keras_unetpp  # registers the classes the saved model needs
from keras_unetpp import predict_tiled
from keras_unetpp.datasets import load_dubai
from keras_unetpp.evaluation import ConfusionCounts, SegmentationReport, confusion_counts
from keras_unetpp.postprocessing import remove_small_regions

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
MIN_AREAS = (0, 64, 256, 1024)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("KERAS_UNETPP_DATA", "../shared/data")) / "aerial-dubai")
    parser.add_argument("--tile", type=int, default=7,
                        help="validation tile (or a training tile: how well the model fits it)")
    parser.add_argument("--target", default="building", help="class the model segments (vegetation for the trees model)")
    parser.add_argument("--tile-size", type=int, default=512, help="prediction window at full resolution")
    parser.add_argument("--tta", action="store_true", help="also measure 8-fold dihedral TTA (8x the prediction time)")
    parser.add_argument("--heads", default="mean",
                        help="comma-separated deep-supervision heads to compare: mean and/or 1..L")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "aerial_decision.json")
    args = parser.parse_args(argv)
    model = keras_unetpp.load_model(args.model)
    samples = load_dubai(args.data, args.target, tiles=[args.tile])
    rows = []
    unetpp = [layer for layer in [model, *model.layers] if isinstance(layer, keras_unetpp.UNetPlusPlus)]
    for head, tta in itertools.product(args.heads.split(","), (False, True) if args.tta else (False,)):
        if unetpp:
            unetpp[0].inference_head = head if head == "mean" else int(head)
            model.make_predict_function(force=True)
        start = time.perf_counter()
        probs = [predict_tiled(model, s.image, tile_size=args.tile_size, overlap=0.25, tta=tta, progress=False)
                 for s in samples]
        seconds = time.perf_counter() - start
        for threshold in THRESHOLDS:
            for min_area in MIN_AREAS:
                total = ConfusionCounts(0, 0, 0, 0)
                for sample, prob in zip(samples, probs):
                    mask = remove_small_regions(prob, min_area, threshold)
                    total = total + confusion_counts(sample.mask, mask)
                r = SegmentationReport(total)
                rows.append(dict(head=head, tta=tta, threshold=threshold, min_area=min_area, iou=round(r.iou, 4),
                                 precision=round(r.precision, 4), recall=round(r.recall, 4),
                                 predict_seconds=round(seconds, 1)))
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps({"model": str(args.model), "tile": args.tile, "target": args.target, "rows": rows},
                                   indent=2))
    print("| head | TTA | threshold | min area | IoU | precision | recall |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['head']} | {'8x' if r['tta'] else 'no'} | {r['threshold']} | {r['min_area']} | {r['iou']:.3f} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} |")


if __name__ == "__main__":
    main()
