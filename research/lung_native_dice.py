"""Scores saved lung models on the validation films at each film's own size.

``examples/lung_xray.py`` scores at its working size (``--size``), so a model
trained at 384 and one trained at 256 are scored against masks resized
differently. This scores every ``model.keras`` given on the same thing: the
films of one split as they are on disk (any size), through the model's own
preprocessing, with the mirror TTA when the model records it, against the
original masks. It prints per-film Dice for each model, the mean, the worst
film and, for two models, the paired Wilcoxon test over films.

    python research/lung_native_dice.py outputs/lungs/model.keras outputs/lung_384/model.keras \\
        --split-seed 0 --out outputs/lung_native.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras
import numpy as np

from keras_unetpp.datasets import data_root, load_folder_pairs, split_fraction
from keras_unetpp.evaluation import paired_comparison, segmentation_report
from keras_unetpp.inference import MIRROR_TTA, predict_augmented


def native_dice(model_path: Path, films: list, tta: bool) -> dict[str, float]:
    """``{film name: Dice}`` of one saved model on ``films`` at their own size."""
    model = keras.models.load_model(model_path)
    scores = {}
    for film in films:
        prob = predict_augmented(model, film.image[None], tta=MIRROR_TTA if tta else False)[0]
        scores[film.name] = segmentation_report(film.mask, prob).dice
    return scores


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="model.keras files of the lung example")
    parser.add_argument("--data", default=None, help="data directory (default: $KERAS_UNETPP_DATA/lung-xray)")
    parser.add_argument("--split-seed", type=int, default=0, help="the example's --split-seed")
    parser.add_argument("--no-tta", dest="tta", action="store_false", help="plain predictions only")
    parser.add_argument("--out", type=Path, default=None, help="write the per-film Dice as JSON here")
    args = parser.parse_args(argv)
    samples = load_folder_pairs(data_root(args.data, subdir="lung-xray"), channels=1)
    _, val = split_fraction(samples, 0.2, seed=args.split_seed)
    results = {str(path): native_dice(path, val, args.tta) for path in args.models}
    for path, scores in results.items():
        worst = min(scores, key=scores.get)
        print(f"{path}: Dice {np.mean(list(scores.values())):.4f} over {len(scores)} films at their own size, "
              f"worst {worst} {scores[worst]:.3f}")
    if len(results) == 2:
        first, second = ({name: {"dice": dice} for name, dice in s.items()} for s in results.values())
        paired = paired_comparison(second, first, key="dice")
        print(f"second against first: {paired['mean_dice_change']:+.4f} per film, better on "
              f"{paired['cases_better']} of {paired['cases']}, Wilcoxon p = {paired['wilcoxon_p']:.2g}")
    if args.out is not None:
        args.out.write_text(json.dumps({"split_seed": args.split_seed, "tta": args.tta, "dice": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
