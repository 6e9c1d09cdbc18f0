"""``keras-unetpp train`` against the hand-tuned examples, at their budgets, with no option but the data.

Each task writes the folders a user would have (images and 0/255 or class-index PNG masks, the same
training and validation files as the example), runs the command line as a user runs it (a separate
process, ``--time-budget`` and the validation folders only), then reads ``RUN/metrics.json`` and
``RUN/plan.json``:

| task | data | budget | compared with |
|---|---|---|---|
| ``aerial`` | Dubai Tiles 1-6 -> Tile 7, buildings (#3C1098) | 20m | the aerial example's Tile 7 IoU |
| ``lung`` | the lung example's split (``--split 0`` or ``1``) | 32m | its Dice (films at 256 px, mirror TTA) |
| ``classes`` | Dubai Tiles 1-6 -> Tile 7, six classes (``--classes 6``) | 20m | the six-class example's mean IoU |
| ``tiny`` | 8 training films of split 0 -> its 16 validation films | 5m | the lung task |

The lung scores are also computed the example's way (films and masks resized to 256 x 256, Dice of
all 16 pooled, with and without the mirror image averaged in), so the two numbers compare directly.

    KERAS_UNETPP_DATA=../shared/data python benchmarks/train_command.py --task aerial --seed 0
    python benchmarks/train_command.py --task lung --split 1 --seed 1
    python benchmarks/train_command.py --table     # the runs so far, as Markdown rows

Writes ``benchmarks/results/runs/train_<task>[_split<K>]_seed<N>.json`` (the command, its wall time
against the budget, the plan's choices, the scores) and keeps the run in ``outputs/train_command/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
#: task -> its --time-budget (the example's training time and its scoring)
TASKS = {"aerial": "20m", "lung": "32m", "classes": "20m", "tiny": "5m"}


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="aerial")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", type=int, default=0, help="the lung example's --split-seed (lung, tiny)")
    parser.add_argument("--budget", default=None, help="--time-budget (default: the task's, above)")
    parser.add_argument("--data", type=Path, default=None, help="default: $KERAS_UNETPP_DATA")
    parser.add_argument("--work", type=Path, default=Path("outputs/train_command"))
    parser.add_argument("--results", type=Path, default=HERE / "results" / "runs")
    parser.add_argument("--table", action="store_true", help="print the Markdown rows of the runs in --results")
    return parser.parse_args(argv)


def score_of(run: dict) -> str:
    """The task's headline score, as the example reports it."""
    if run["task"] == "classes":
        return f"mean IoU {run['mean_iou']:.3f}" if "mean_iou" in run else "mean IoU (not recorded)"
    if run["task"] == "aerial":
        return f"IoU {run['overall']['iou']:.3f}"
    return f"Dice {run['dice_256']:.3f}, {run['dice_256_mirror_tta']:.3f} with TTA"


def table(results: Path) -> str:
    """One Markdown row per task and split: every seed's score, steps (planned/run) and wall time."""
    runs: dict[tuple, list] = {}
    for path in sorted(results.glob("train_*.json")):
        run = json.loads(path.read_text())
        runs.setdefault((run["task"], run.get("split")), []).append(run)
    rows = ["| task | seeds | score | steps run (planned) | wall time of the budget |", "|---|---|---|---|---|"]
    for (task, split), group in runs.items():
        group.sort(key=lambda run: run["seed"])
        name = task + ("" if split is None else f", split {split}")
        rows.append(f"| {name} | {', '.join(str(r['seed']) for r in group)} | "
                    + " / ".join(score_of(r) for r in group) + " | "
                    + " / ".join(f"{r['steps']:,} ({r['plan']['steps']:,})" for r in group) + " | "
                    + " / ".join(f"{r['wall_seconds']:,.0f} s of {r['budget_seconds']:,.0f}" for r in group) + " |")
    return "\n".join(rows)


def _write_pairs(samples, folder: Path, mask_of) -> None:
    """Images as lossless PNG (what the loader read), masks by ``mask_of``; names keep the group
    (``tile1_image_part_001``), so nothing collides and the split's prefix rule sees the tile."""
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for s in samples:
        name = s.name.replace(" ", "").replace("/", "_").lower()   # Tile 1/image_part_001 -> tile1_image_part_001
        image = s.image if s.image.shape[-1] == 1 else cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR)
        for path, pixels in ((folder / "images" / f"{name}.png", image),
                             (folder / "masks" / f"{name}.png", mask_of(s.mask[..., 0]))):
            if not cv2.imwrite(str(path), pixels):
                raise OSError(f"could not write {path}")


def prepare(task: str, split: int, data: Path, work: Path) -> tuple[Path, Path]:
    """The task's training and validation folders (written once)."""
    from keras_unetpp.datasets import load_dubai, load_dubai_classes, load_folder_pairs, split_by_group, split_fraction

    root = work / "data" / (f"{task}_split{split}" if task in ("lung", "tiny") else task)
    train_dir, val_dir = root / "train", root / "val"
    if (root / "done").is_file():
        return train_dir, val_dir
    shutil.rmtree(root, ignore_errors=True)
    if task in ("aerial", "classes"):
        samples = (load_dubai(data / "aerial-dubai", "building") if task == "aerial"
                   else load_dubai_classes(data / "aerial-dubai"))
        train, val = split_by_group(samples, ["Tile 7"])
        mask_of = (lambda m: (m * 255).astype(np.uint8)) if task == "aerial" else (lambda m: m.astype(np.uint8))
    else:
        train, val = split_fraction(load_folder_pairs(data / "lung-xray", channels=1), 0.2, seed=split)
        if task == "tiny":
            train = [train[k] for k in np.random.default_rng(split).choice(len(train), 8, replace=False)]
        mask_of = lambda m: (m * 255).astype(np.uint8)  # noqa: E731
    _write_pairs(train, train_dir, mask_of)
    _write_pairs(val, val_dir, mask_of)
    (root / "done").write_text(f"{len(train)} training, {len(val)} validation\n")
    return train_dir, val_dir


def example_way_dice(model_path: Path, val_dir: Path) -> dict:
    """The lung example's score of a model: films and masks at 256 x 256, Dice of all pooled, plain
    and with the mirror image averaged in."""
    import keras

    from keras_unetpp.datasets import load_folder_pairs, resized_arrays
    from keras_unetpp.evaluation import SegmentationReport, segmentation_report
    from keras_unetpp.inference import MIRROR_TTA, predict_augmented

    model = keras.saving.load_model(model_path)
    images, masks = resized_arrays(load_folder_pairs(val_dir, channels=1), 256)
    scores = {}
    for key, tta in (("dice_256", False), ("dice_256_mirror_tta", MIRROR_TTA)):
        prob = predict_augmented(model, images, tta=tta, input_range=(0.0, 1.0))
        scores[key] = SegmentationReport.combined([segmentation_report(t, p) for t, p in zip(masks, prob)]).dice
    return scores


def main(argv=None) -> dict:
    args = parse(argv)
    if args.table:
        print(table(args.results))
        return {}
    from keras_unetpp.datasets.io import data_root

    data = data_root(args.data)
    budget = args.budget or TASKS[args.task]
    train_dir, val_dir = prepare(args.task, args.split, data, args.work)
    tag = f"{args.task}" + (f"_split{args.split}" if args.task in ("lung", "tiny") else "") + f"_seed{args.seed}"
    out = args.work / tag
    shutil.rmtree(out, ignore_errors=True)
    command = ["keras-unetpp", "train", "--images", str(train_dir / "images"), "--masks", str(train_dir / "masks"),
               "--val-images", str(val_dir / "images"), "--val-masks", str(val_dir / "masks"),
               "--out", str(out), "--time-budget", budget, "--seed", str(args.seed)]
    if args.task == "classes":
        command += ["--classes", "6"]
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "keras_unetpp", *command[1:]])
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"keras-unetpp train failed (exit {done.returncode})")
    metrics = json.loads((out / "metrics.json").read_text())
    result = {"task": args.task, "seed": args.seed, "split": args.split if args.task in ("lung", "tiny") else None,
              "command": " ".join(command), "budget": budget, "budget_seconds": metrics["budget_seconds"],
              "wall_seconds": round(wall, 1), "over_budget": round(wall / metrics["budget_seconds"] - 1, 3),
              "steps": metrics["steps"], "plan": {k: v["value"] for k, v in metrics["plan"].items()},
              "overall": metrics["overall"], "date": time.strftime("%Y-%m-%d")}
    result.update({key: metrics[key] for key in ("mean_iou", "per_class_iou") if key in metrics})
    if args.task in ("lung", "tiny"):
        result.update(example_way_dice(out / "model.keras", val_dir))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"train_{tag}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "plan"}, indent=1))
    return result


if __name__ == "__main__":
    main()
