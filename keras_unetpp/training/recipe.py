"""The training recipe of the examples, as library API: schedule with warm-up, an optional
frozen-encoder start, a resumable backup that refuses other arguments, data-parallel training,
and the curves.

The aerial and lung examples (and ``keras-unetpp`` runs of your own data) train through
[`fit()`][keras_unetpp.training.fit] with a [`Recipe`][keras_unetpp.training.Recipe]; what is
specific to a data set (loader, crops, augmentation, loss) stays with the caller.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np

from keras_unetpp.checks import finite_number, whole_number
from keras_unetpp.visualization import plot_curves

#: Keras dtype policies a run may use (the model keeps its heads in float32).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a model trains: the budget, the schedule and the start.

    Args:
        epochs: Epochs (each ``steps_per_epoch`` steps; a backup is written after each).
        steps_per_epoch: Training steps per epoch.
        learning_rate: Adam's peak learning rate; cosine decay to 5 % of it over the run.
        warmup_steps: Steps of linear warm-up from 0 to ``learning_rate`` before the decay.
        frozen_epochs: With an encoder: the first epochs train the decoder alone (encoder frozen,
            its batch norm in inference mode) at the peak rate, then everything.
        distribute: Data-parallel over this machine's devices (``data_parallel``); the learning
            rate scales with the device count.
        verbose: ``fit``'s verbosity (None: a live bar on a terminal, a line per epoch in logs).

    Examples:
        >>> Recipe(epochs=4, steps_per_epoch=300).total_steps
        1200
    """

    epochs: int
    steps_per_epoch: int
    learning_rate: float = 2e-3
    warmup_steps: int = 0
    frozen_epochs: int = 0
    distribute: bool = False
    verbose: int | None = None

    def __post_init__(self):
        for name, minimum in (("epochs", 1), ("steps_per_epoch", 1), ("warmup_steps", 0), ("frozen_epochs", 0)):
            object.__setattr__(self, name, whole_number(getattr(self, name), f"Recipe.{name}", minimum))
        if finite_number(self.learning_rate, "Recipe.learning_rate") <= 0:
            raise ValueError(f"Recipe.learning_rate must be a positive number, got {self.learning_rate!r}.")

    @property
    def total_steps(self) -> int:
        """Steps of the whole run."""
        return self.epochs * self.steps_per_epoch


def data_parallel(enabled: bool):
    """``(scope, devices)``: build and compile the model inside ``scope``; the global batch is the
    per-device batch times ``devices``.

    Call it first in a program (``MultiWorkerMirroredStrategy`` must exist before TensorFlow runs
    any operation); later calls use the same strategy and return a fresh scope. TensorFlow:
    ``MirroredStrategy`` over the local GPUs (the CPU when there are none),
    ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names several workers. JAX:
    ``keras.distribution.DataParallel`` over every device. PyTorch: Keras' distribution API does
    not cover it, and this says so.

    Args:
        enabled: False gives a null scope and one device.

    Returns:
        ``(context manager, device count)``.

    Raises:
        SystemExit: On the PyTorch backend with ``enabled``.
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
    raise SystemExit(f"Data-parallel training supports the TensorFlow and JAX backends; Keras has no data-parallel "
                     f"engine for {backend!r} (run one process per GPU with torchrun and your own loop, or switch "
                     "backend).")


def learning_rate_schedule(recipe: Recipe, steps: int | None = None, devices: int = 1):
    """Cosine decay from the recipe's peak (times ``devices``) to 5 % of it over ``steps``, after
    ``warmup_steps`` of linear warm-up from 0.

    Args:
        recipe: The run's recipe.
        steps: Steps the schedule spans (default: the whole run).
        devices: Data-parallel devices (the peak scales with them).

    Returns:
        A ``keras.optimizers.schedules.CosineDecay``.

    Examples:
        >>> schedule = learning_rate_schedule(Recipe(1, 100, learning_rate=1e-3, warmup_steps=10))
        >>> round(float(schedule(5)), 6), round(float(schedule(10)), 6)
        (0.0005, 0.001)
    """
    steps = recipe.total_steps if steps is None else int(steps)
    peak = recipe.learning_rate * devices
    warmup = min(recipe.warmup_steps, steps - 1)
    if warmup <= 0:
        return keras.optimizers.schedules.CosineDecay(peak, steps, alpha=0.05)
    return keras.optimizers.schedules.CosineDecay(0.0, steps - warmup, alpha=0.05, warmup_target=peak,
                                                  warmup_steps=warmup)


class EpochCosine:
    """Cosine decay from ``peak`` to ``alpha * peak`` over ``epochs``, one rate per epoch, for a
    run whose length may change while it trains.

    ``fit`` compiles Adam on a float and sets the rate at each epoch's start through
    ``keras.callbacks.LearningRateScheduler``, so the run can be re-planned part of the way in
    ([`replan`][keras_unetpp.training.recipe.EpochCosine.replan]; the train command does it from the pace
    it measures): the rest of the cosine then stretches or shrinks to end at the new last epoch,
    going on from where it was. A per-step ``CosineDecay`` is built into the compiled step and
    cannot change length. Each epoch takes the cosine at its middle, which over epochs of many steps
    is the mean of the per-step rates it replaces.

    Args:
        peak: The first epochs' rate.
        epochs: Epochs the decay spans; epochs past it keep ``alpha * peak``.
        alpha: The last rate, as a share of ``peak``.

    Examples:
        >>> schedule = EpochCosine(1e-3, epochs=4)
        >>> [round(schedule(epoch), 6) for epoch in range(4)]
        [0.000964, 0.000707, 0.000343, 8.6e-05]
        >>> schedule.replan(2, 8)   # after two epochs, eight in all: the second half of the decay spans six
        >>> [round(schedule(epoch), 6) for epoch in range(2, 8)]
        [0.000463, 0.000343, 0.000236, 0.000148, 8.6e-05, 5.4e-05]
    """

    def __init__(self, peak: float, epochs: int, alpha: float = 0.05):
        if finite_number(peak, "EpochCosine.peak") <= 0:
            raise ValueError(f"EpochCosine.peak must be a positive number, got {peak!r}.")
        self.peak, self.alpha = float(peak), finite_number(alpha, "EpochCosine.alpha")
        self.epochs = whole_number(epochs, "EpochCosine.epochs", 1)
        self._bends = [(0, 0.0, self.epochs)]   # (first epoch, share of the decay done then, epochs in all)

    @property
    def bends(self) -> list[list]:
        """The plans in force, ``[first epoch, share of the decay done then, epochs in all]`` each:
        what [`restore`][keras_unetpp.training.recipe.EpochCosine.restore] takes back (JSON-ready)."""
        return [[epoch, round(done, 12), epochs] for epoch, done, epochs in self._bends]

    def restore(self, bends: list) -> None:
        """Takes back the plans of ``bends`` (a resumed run continues its schedule exactly).

        Args:
            bends: What [`bends`][keras_unetpp.training.recipe.EpochCosine.bends] gave.
        """
        self._bends = [(int(epoch), float(done), int(epochs)) for epoch, done, epochs in bends]
        self.epochs = self._bends[-1][2]

    def _done(self, moment: float) -> float:
        """Share of the decay done at ``moment`` (in epochs from the start of the run), by the plan
        in force then."""
        epoch, done, epochs = [bend for bend in self._bends if bend[0] <= moment][-1]
        return min(1.0, done + (1.0 - done) * (moment - epoch) / (epochs - epoch))

    def replan(self, epoch: int, epochs: int) -> None:
        """From ``epoch`` on (the first epoch not yet run), the decay ends after ``epochs`` in all;
        the epochs before keep their rates.

        Args:
            epoch: The first epoch the new plan covers.
            epochs: Epochs of the whole run, more than ``epoch``.

        Raises:
            ValueError: If ``epochs`` does not leave at least one epoch after ``epoch``.
        """
        epoch = whole_number(epoch, "epoch", 0)
        epochs = whole_number(epochs, "epochs", epoch + 1)
        done = self._done(epoch)
        self._bends = [bend for bend in self._bends if bend[0] < epoch] + [(epoch, done, epochs)]
        self.epochs = epochs

    def __call__(self, epoch: int, lr: float | None = None) -> float:
        """The rate of ``epoch`` (``lr``, the current rate, is ignored: LearningRateScheduler's API)."""
        return float(self.peak * (self.alpha + (1 - self.alpha) * 0.5 * (1 + np.cos(np.pi * self._done(epoch + 0.5)))))


def fit(model: keras.Model, loss, metrics: list, dataset, validation=None, recipe: Recipe | None = None,
        out: str | Path | None = None, config: dict | None = None, extra_callbacks: list | None = None,
        epoch_schedule: EpochCosine | None = None) -> dict:
    """Compiles ``model`` with Adam on the recipe's schedule and trains it; returns the history.

    With ``recipe.frozen_epochs`` (encoder models) the first epochs train a copy whose encoder is
    frozen (``encoder_trainable=False``) at the peak rate; its weights then go back into ``model``,
    which trains the remaining epochs on the cosine schedule. With ``out``, a backup is written
    every epoch (``out/backup``, see ``training_callbacks``): an interrupted run resumes when the
    same call runs again, and a run with another ``config`` into the same ``out`` is refused.

    Args:
        model: The model (built under ``data_parallel(recipe.distribute)[0]`` when distributing).
        loss: The loss.
        metrics: Metric objects (fresh copies are compiled, in the distribution scope).
        dataset: Training batches (``tf.data`` or a ``PyDataset``), endless; or an
            ``(images, masks)`` pair of arrays, shuffled and split into ``steps_per_epoch``
            batches per epoch.
        validation: Validation data as ``fit`` takes it, or None.
        recipe: The schedule and budget.
        out: Folder of the run (backup; None: no backup).
        config: What shapes the run (arguments), stored with the backup.
        extra_callbacks: More callbacks for the main phase (e.g. a best-weights checkpoint).
        epoch_schedule: Instead of the recipe's per-step cosine (and its warm-up), a rate per
            epoch of the main phase (epoch 0 is its first), which a callback may lengthen or
            shorten while training runs.

    Returns:
        The History dict over all phases, with ``lr`` per epoch.

    Raises:
        ValueError: For ``frozen_epochs`` on a model without an encoder, or no recipe.

    Examples:
        >>> from keras_unetpp import BinaryIoU, FocalDiceLoss, UNetPlusPlus
        >>> x, y = np.zeros((4, 16, 16, 1), "float32"), np.zeros((4, 16, 16, 1), "float32")
        >>> model = UNetPlusPlus((16, 16, 1), filters=(2, 4))
        >>> history = fit(model, FocalDiceLoss(), [BinaryIoU()], (x, y), recipe=Recipe(2, 1, verbose=0))
        >>> sorted(history), len(history["lr"])
        (['iou', 'loss', 'lr'], 2)
    """
    if recipe is None:
        raise ValueError("fit needs a Recipe (epochs, steps_per_epoch, learning rate, ...).")
    devices = data_parallel(recipe.distribute)[1]
    frozen_epochs = min(recipe.frozen_epochs, recipe.epochs - 1)
    verbose = fit_verbosity() if recipe.verbose is None else recipe.verbose
    if isinstance(dataset, tuple):  # arrays: batched by fit, shuffled
        fit_args = dict(x=dataset[0], y=dataset[1], batch_size=max(1, len(dataset[0]) // recipe.steps_per_epoch))
    else:
        fit_args = dict(x=dataset, steps_per_epoch=recipe.steps_per_epoch, shuffle=False)
    fit_args.update(validation_data=validation, verbose=verbose)
    out = None if out is None else Path(out)
    histories = []
    if frozen_epochs > 0:
        if not model.get_config().get("encoder"):
            raise ValueError("frozen_epochs needs a model with an encoder (there is no encoder to freeze).")
        with data_parallel(recipe.distribute)[0]:
            frozen = type(model).from_config({**model.get_config(), "encoder_trainable": False})
            frozen.set_weights(model.get_weights())
            frozen.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate * devices), loss=loss,
                           metrics=_fresh(metrics))
        callbacks = training_callbacks(out / "frozen", config) if out is not None else [LearningRateLogger()]
        histories.append(frozen.fit(epochs=frozen_epochs, callbacks=callbacks, **fit_args).history)
        model.set_weights(frozen.get_weights())
        if out is not None:
            with contextlib.suppress(OSError):
                (out / "frozen").rmdir()  # its backup is gone once the phase ends
    with data_parallel(recipe.distribute)[0]:
        if epoch_schedule is None:
            schedule = learning_rate_schedule(recipe, (recipe.epochs - frozen_epochs) * recipe.steps_per_epoch,
                                              devices)
        else:
            schedule = epoch_schedule(0) * devices
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=_fresh(metrics))
    callbacks = training_callbacks(out, config) if out is not None else [LearningRateLogger()]
    if epoch_schedule is not None:  # before the logger reads the rate at the epoch's end
        callbacks.insert(0, keras.callbacks.LearningRateScheduler(
            lambda epoch, lr: epoch_schedule(epoch - frozen_epochs) * devices))
    callbacks += list(extra_callbacks or [])
    histories.append(model.fit(epochs=recipe.epochs, initial_epoch=frozen_epochs, callbacks=callbacks,
                               **fit_args).history)
    # LearningRateScheduler logs ``learning_rate``: the same rate as ``lr``, which every run logs
    return {key: [v for h in histories for v in h.get(key, [])] for key in histories[-1] if key != "learning_rate"}


def _fresh(metrics: list) -> list:
    """New metric objects like ``metrics``, created where this is called: inside a distribution
    scope their variables are the strategy's (summed over workers)."""
    return [type(m).from_config(m.get_config()) for m in metrics]


def fit_verbosity(quiet: bool = False) -> int:
    """``fit``'s verbose: a live progress bar on a terminal, one line per epoch in logs and pipes
    (no ANSI escape codes written into files).

    Args:
        quiet: One line per epoch even on a terminal.

    Returns:
        1 or 2.
    """
    return 1 if sys.stdout.isatty() and not quiet else 2


def training_callbacks(out: str | Path, config: dict | None = None) -> list:
    """The recipe's ``fit`` callbacks: the learning-rate logger and a backup every epoch in
    ``out/backup`` (``keras.callbacks.BackupAndRestore``).

    Interrupted (Ctrl-C, a killed job), the same run into the same ``out`` resumes from the last
    finished epoch: weights, optimizer state and the schedule's position, and says so in one line.
    The backup stores the run's configuration (``config``); a run with other arguments into the
    same ``out`` stops with the differences instead of resuming a run it is not. The backup is
    deleted when training ends. A random crop stream restarts from its seed, so a resumed run
    equals an uninterrupted one in distribution, not bit for bit (with in-memory arrays it is).

    Args:
        out: The run's folder.
        config: What shapes the run (JSON-serialisable; other values are stored as strings).

    Returns:
        ``[LearningRateLogger(), BackupAndRestore(out/backup, double_checkpoint=True)]``: a run
        killed while it saves resumes from the epoch before.

    Raises:
        SystemExit: For a backup of a run with other arguments, or one without its arguments.
    """
    out = Path(out)
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
                                 f"its own arguments, choose another output folder, or delete {backup} to start "
                                 "afresh.")
            print(f"resuming the interrupted run in {backup}", flush=True)
        elif backup.exists() and any(backup.iterdir()):
            raise SystemExit(f"{backup} holds a backup without its arguments; delete it to start afresh.")
        backup.mkdir(parents=True, exist_ok=True)
        stored.write_text(json.dumps(current, indent=1, sort_keys=True))
    # double_checkpoint: the previous epoch's copy is kept while the next one is written, so a run
    # killed in the middle of a save resumes from that copy instead of failing on a torn file
    return [LearningRateLogger(), keras.callbacks.BackupAndRestore(str(backup), double_checkpoint=True)]


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to the epoch logs as ``lr``."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def save_curves(history: dict, out: str | Path, title: str) -> list[Path]:
    """``curves_loss.png``, ``curves_lr.png`` and one ``curves_NAME.png`` per metric (training and
    validation together) from a History dict.

    Args:
        history: ``fit``'s History dict (``lr`` from ``LearningRateLogger``).
        out: Folder.
        title: Figure title.

    Returns:
        The files written.
    """
    out = Path(out)
    names = ["loss"] + [k for k in history if k not in ("loss", "lr") and not k.startswith("val_")] + ["lr"]
    written = []
    for name in names:
        series = {k: history[k] for k in (name, f"val_{name}") if k in history}
        if series:
            path = out / f"curves_{name}.png"
            plot_curves(series, path, title=title, ylabel={"lr": "learning rate"}.get(name, name))
            written.append(path)
    return written


def write_metrics(out: str | Path, payload: dict) -> Path:
    """``out/metrics.json``: ``payload`` with the date, the machine, the backend and the precision.

    Args:
        out: Folder.
        payload: JSON-serialisable results (numpy numbers become floats).

    Returns:
        The file written.
    """
    path = Path(out) / "metrics.json"
    payload = {
        "date": time.strftime("%Y-%m-%d"),
        "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, backend {keras.backend.backend()}",
        "precision": keras.mixed_precision.global_policy().name,
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path
