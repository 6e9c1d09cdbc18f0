"""``keras-unetpp train``: from folders of labelled images to a saved model, by a plan.

[`train()`][keras_unetpp.training.run.train] loads the pairs, splits them (a validation folder, or a
fraction grouped by file-name prefix so that pieces of one scene or patient never land on both
sides), writes the fingerprint and the plan (``plan.json``, printed first), times a few real steps
to fit the number of steps to the budget, trains by the library's recipe (a backup every epoch:
an interrupted run resumes), keeps the best weights by validation IoU, and writes the model
(a [`Segmenter`][keras_unetpp.Segmenter] carrying its preprocessing and symmetries),
``metrics.json``, curves, an error map per validation image and ``report.md``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from keras_unetpp.checks import whole_number
from keras_unetpp.datasets.io import Sample, check_same_size, match_pairs, read_image
from keras_unetpp.training.plan import (
    MAX_EPOCHS,
    MIN_EPOCH_STEPS,
    RESERVE,
    describe_plan,
    fingerprint,
    make_plan,
    write_plan,
    write_whole,
)
from keras_unetpp.training.recipe import EpochCosine, Recipe, fit, save_curves, write_metrics
from keras_unetpp.values import any_class_foreground, labels_from_file, mask_from_file

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_duration(text: str) -> float:
    """Seconds of ``"30m"``, ``"1.5h"``, ``"90s"`` or ``"600"``.

    Args:
        text: A number with an optional unit (s, m, h).

    Returns:
        Seconds.

    Raises:
        ValueError: For anything else, naming the forms it takes.

    Examples:
        >>> parse_duration("30m"), parse_duration("1.5h"), parse_duration("90")
        (1800.0, 5400.0, 90.0)
    """
    match = _DURATION.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"A time budget is a positive number with s, m or h (e.g. 30m, 1.5h), got {text!r}.")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def load_pairs(images: str | Path, masks: str | Path, classes: int | None = None) -> list[Sample]:
    """Image/mask pairs of two folders matched by file stem (PNG, JPEG, BMP, TIFF).

    Args:
        images: Folder of images (8-bit or 16-bit, grey or colour).
        masks: Folder of masks: 0/1 or 0/255 (binary), or class indices 0..C-1 with 255 for pixels
            to ignore (with ``classes``).
        classes: Class count of class-index masks (None: binary masks).

    Returns:
        Samples; ``group`` is the file stem.

    Raises:
        ValueError: For unmatched or unreadable files, sizes that differ, masks that break the rule
            of ``keras_unetpp.values`` (JPEG masks named), or labels outside 0..C-1 and 255.
    """
    samples = []
    for stem, image_path, mask_path in match_pairs(Path(images), Path(masks)):
        grey = read_image(image_path, 3, allow_16bit=True)
        same = np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
        image = grey[..., :1] if same else grey
        raw = read_image(mask_path, 1, allow_16bit=False)
        check_same_size(image, raw, image_path, mask_path)
        mask = mask_from_file(raw, mask_path) if classes is None else labels_from_file(raw, classes, mask_path)
        samples.append(Sample(stem, stem, image, mask))
    return samples


def split_by_prefix(samples: Sequence[Sample], fraction: float, seed: int = 0, separator: str | None = "_"):
    """Validation samples drawn by group: the file-name prefix before ``separator`` (patient, scene),
    so that pieces of one group never land on both sides.

    Args:
        samples: The labelled set.
        fraction: Share of groups for validation, in (0, 1).
        seed: Seed of the draw.
        separator: The prefix ends at its first occurrence (None: each file is its own group).

    Returns:
        ``(train, validation, note)``: ``note`` says how the split was made, with a warning for sets
            too small to validate on.

    Raises:
        ValueError: If fewer than two groups exist.

    Examples:
        >>> s = [Sample(f"p{k // 2}_{k}", f"p{k // 2}_{k}", np.zeros((2, 2, 1)), np.zeros((2, 2, 1))) for k in range(10)]
        >>> train, val, note = split_by_prefix(s, 0.2)
        >>> len(train), len(val), {x.name.split("_")[0] for x in train} & {x.name.split("_")[0] for x in val}
        (8, 2, set())
    """
    group_of = (lambda name: name.split(separator)[0]) if separator else (lambda name: name)
    groups = sorted({group_of(s.name) for s in samples})
    if len(groups) < 2:
        raise ValueError(f"Only {len(groups)} group(s) of file names to split by; pass --val-images/--val-masks, "
                         "or name files PREFIX_rest so that the split can keep each prefix on one side.")
    count = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    chosen = set(np.random.default_rng(seed).choice(groups, count, replace=False).tolist())
    val = [s for s in samples if group_of(s.name) in chosen]
    train = [s for s in samples if group_of(s.name) not in chosen]
    note = f"{len(val)} validation image(s) from {count} of {len(groups)} file-name groups (prefix before {separator!r})"
    if len(val) < 4:
        note += (f"; WARNING: {len(val)} validation image(s) say little about the model: pass --val-images/"
                 "--val-masks with more, or more data")
    return train, val, note


def train(images: str | Path | None, masks: str | Path | None, out: str | Path, val_images: str | Path | None = None,
          val_masks: str | Path | None = None, val_fraction: float = 0.2, group_separator: str | None = "_",
          time_budget: str | float = "30m", classes: int | None = None, encoder: str | None = None,
          kind: str | None = None, seed: int = 0, dry_run: bool = False, overrides: dict | None = None,
          scenes: str | Path | None = None, labels: str | Path | None = None,
          label_field: str | None = None, callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict:
    """Trains a segmentation model on folders of labelled images, by a plan fitted to a time budget.

    Args:
        images: Folder of training images (``None`` with ``scenes``).
        masks: Folder of their masks (same stems).
        out: The run's folder (``plan.json``, ``model.keras``, ``metrics.json``, curves, error maps,
            ``report.md``; a backup while training). Running again into it resumes an interrupted
            run with the same arguments.
        val_images: Folder of validation images (with ``val_masks``); default: a split.
        val_masks: Their masks.
        val_fraction: Share of file-name groups held out when no validation folders are given.
        group_separator: File names are grouped by the prefix before it for the split (None: by file).
        time_budget: ``"30m"``, ``"1h"``, or seconds.
        classes: Class count of class-index masks (None: binary masks).
        encoder: Override the planned encoder (``"none"``: the plain UNet++).
        kind: Override the inferred kind: ``"overhead"``, ``"medical"`` or ``"photo"``.
        seed: Seed of the split, the crops and the weights.
        dry_run: Write and print the plan, train nothing.
        overrides: Plan entries to set by hand (``{"working_size": 128, "filters": [8, 16, 32]}``);
            the plan records them as set by the caller.
        scenes: Instead of ``images``/``masks``: a folder of GeoTIFF scenes (or one), with ``labels``.
        labels: Vector footprints of the foreground (GeoJSON, GeoPackage, FlatGeobuf), rasterised on
            each scene's grid; chips with nodata are left out and the split keeps each scene (or, from
            one scene, each quarter) on one side
            ([`load_scene_chips`][keras_unetpp.datasets.scenes.load_scene_chips]).
        label_field: With ``labels``: the footprints' attribute that gives each one's class (whole
            numbers 1..K, or names: one class per distinct name, sorted); the model then has a class
            per value plus the background
            ([`footprint_classes`][keras_unetpp.datasets.scenes.footprint_classes]).
        callbacks: More Keras callbacks for the training, after the run's own (e.g.
            ``keras.callbacks.ModelCheckpoint("run/epoch{epoch:03d}.weights.h5", save_weights_only=True)``
            to keep every epoch's weights).

    Returns:
        The metrics (with the plan).

    Raises:
        ValueError: For bad folders, files, masks or options, before any training.

    Examples:
        >>> train("images/", "masks/", "runs/buildings", time_budget="30m")  # doctest: +SKIP
    """
    seconds = parse_duration(time_budget) if isinstance(time_budget, str) else float(time_budget)
    if classes is not None:
        classes = whole_number(classes, "classes", 2)
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    if (val_images is None) != (val_masks is None):
        raise ValueError("Pass both --val-images and --val-masks, or neither (a split of the training folders).")
    if (scenes is None) != (labels is None) or (scenes is None) == (images is None or masks is None):
        raise ValueError("Pass --images and --masks (folders of labelled images), or --scenes and --labels "
                         "(GeoTIFF scenes and vector footprints).")
    if scenes is not None and (classes is not None or val_images is not None):
        raise ValueError("--scenes/--labels train on a split of the scenes, with classes from --label-field: "
                         "--classes and --val-images do not apply.")
    if label_field is not None and scenes is None:
        raise ValueError("--label-field names an attribute of the --labels footprints: it needs --scenes/--labels.")
    out = Path(out)
    started = time.perf_counter()
    if scenes is not None:
        from keras_unetpp.datasets.scenes import CHIP_SEPARATOR, footprint_classes, load_scene_chips, read_footprints

        class_names = ["background", "foreground"]
        footprints = read_footprints(labels, label_field)
        if label_field is not None:
            class_names = footprint_classes(footprints[2], label_field, labels)[1]
            classes = len(class_names) if len(class_names) > 2 else None
            print(f"classes from {label_field!r}: " + ", ".join(f"{k} {name}" for k, name in enumerate(class_names)),
                  flush=True)
        samples = load_scene_chips(scenes, labels, field=label_field, footprints=footprints)
        group_separator = CHIP_SEPARATOR
        images, masks = scenes, labels   # what the run records
    else:
        samples = load_pairs(images, masks, classes)
    if val_images is not None:
        train_set, val_set = samples, load_pairs(val_images, val_masks, classes)
        split_note = f"{len(val_set)} validation image(s) from {val_images}"
    else:
        train_set, val_set, split_note = split_by_prefix(samples, val_fraction, seed, group_separator)
    print_ = fingerprint(train_set, classes)
    if scenes is not None:
        print_["class_names"] = class_names

    def planned(step_seconds=None, left=seconds, epoch_seconds=0.0, end_seconds=None):
        made = make_plan(print_, left, step_seconds, kind=kind, encoder=encoder, epoch_seconds=epoch_seconds,
                         end_seconds=end_seconds)
        unknown = set(overrides or {}) - set(made) - {"steps", "epochs"}
        if unknown:
            raise ValueError(f"overrides name no plan entry: {sorted(unknown)} (entries: {sorted(made)}).")
        made.update({key: {"value": value, "rule": "set by the caller"} for key, value in (overrides or {}).items()})
        return made

    plan = planned()
    print(f"{len(train_set)} training image(s); {split_note}", flush=True)
    if dry_run:
        out.mkdir(parents=True, exist_ok=True)
        write_plan(out / "plan.json", print_, plan)
        print("plan (dry run, nothing trained):\n" + describe_plan(plan), flush=True)
        return {"plan": plan, "fingerprint": print_}

    keras.utils.set_random_seed(seed)
    facts = {key: entry["value"] for key, entry in plan.items()}
    prepared = _Prepared(train_set, val_set, facts, print_, seed)
    loss, metrics = prepared.loss(), prepared.metrics()
    interrupted = (out / "backup" / "run_config.json").is_file() and (out / "plan.json").is_file()
    if interrupted:  # resume with the interrupted run's own plan: timing again would change its step count
        stored = json.loads((out / "plan.json").read_text())
        plan, replanned = stored["plan"], stored.get("replanned")
        print(f"resuming with the plan in {out / 'plan.json'}", flush=True)
    else:
        replanned = None
        timed = prepared.model()
        timing = _time_fit(timed, loss, metrics, prepared.dataset(), prepared.validation(), facts["learning_rate"])
        step_seconds, epoch_seconds = timing["step"], timing["epoch_end"]
        end_seconds = _time_end(prepared.segmenter(timed), val_set, classes, prepared.range)
        # training compiles its step and its validation once more
        setup = time.perf_counter() - started + timing["first_step"] + timing["first_validation"]
        if seconds - setup - end_seconds < 20 * step_seconds:
            raise ValueError(f"Loading, planning and timing took {setup:.0f} s and a step takes {step_seconds:.1f} "
                             f"s: a budget of {seconds:.0f} s leaves too little for training. Give --time-budget at "
                             f"least {math.ceil((setup + end_seconds + 100 * step_seconds) / 60)}m.")
        plan = planned(step_seconds, seconds - setup, epoch_seconds, end_seconds)
    facts = {key: entry["value"] for key, entry in plan.items()}
    out.mkdir(parents=True, exist_ok=True)
    write_plan(out / "plan.json", print_, plan, replanned=replanned)
    print("plan:\n" + describe_plan(plan), flush=True)

    steps = facts["steps"]
    # a plan written before it planned epochs: 10 steps an epoch, 100 at the most
    epochs = facts.get("epochs") or max(1, min(steps // MIN_EPOCH_STEPS, MAX_EPOCHS))
    per_epoch = max(1, steps // epochs)
    schedule = EpochCosine(facts["learning_rate"], epochs)
    # re-plans from the measured pace, unless the caller fixed the steps or the epochs; a resumed
    # run follows the plan it had (its budget is spent in part)
    fixed = bool({"steps", "epochs"} & set(overrides or {}))
    if replanned:
        schedule.restore(replanned["bends"])
    most_epochs = epochs if fixed else epochs + epochs // 2
    recipe = Recipe(epochs=most_epochs, steps_per_epoch=per_epoch, learning_rate=facts["learning_rate"])
    best = out / "best.weights.h5"
    callbacks_config = {"images": str(images), "masks": str(masks), "classes": classes, "kind": facts["kind"],
                        "encoder": facts["encoder"], "steps": epochs * per_epoch, "seed": seed}
    model = prepared.model()  # fresh weights: the timing steps trained the first one

    def record(change):  # in plan.json, where a resumed run finds it
        write_plan(out / "plan.json", print_, plan, replanned=change)

    # a plan made before the end of the run was timed kept a flat share for it
    guard = BudgetProgress(schedule.epochs * per_epoch, seconds, started, facts.get("end_seconds", RESERVE * seconds),
                           schedule=schedule, replan_at=None if fixed or interrupted else max(3, epochs // 3),
                           most_epochs=most_epochs, on_replan=record, planned_epochs=epochs)
    history = fit(model, loss, metrics, prepared.dataset(), prepared.validation(), recipe, out, callbacks_config,
                  extra_callbacks=[BestWeights(best, prepared.monitor, resumed=interrupted,
                                               schedule=schedule if facts["crop"] else None), guard, *callbacks],
                  epoch_schedule=schedule)
    steps_done = guard.stopped_at or guard.total_steps
    kept = {"epoch": steps_done // per_epoch, "of": steps_done // per_epoch, "rule": "the last epoch"}
    if best.exists():
        model.load_weights(best)
        chosen = json.loads(best.with_name(best.name + ".json").read_text())
        kept.update(epoch=chosen["epoch"], rule=f"the best {chosen['monitor']} ({chosen['score']:.3f})"
                    + (" of the last third" if facts["crop"] else ""))
    segmenter = prepared.segmenter(model)
    segmenter.save(out / "model.keras")
    save_curves(history, out, f"keras-unetpp train: {facts['kind']}")
    scores = _score(segmenter, val_set, out, classes, prepared.range)
    result = {"plan": plan, "fingerprint": print_, "split": split_note, "steps": steps_done, "kept": kept,
              **({"replanned": guard.replanned or replanned} if (guard.replanned or replanned) else {}),
              "seconds": round(time.perf_counter() - started, 1), "budget_seconds": seconds, **scores}
    write_metrics(out, result)
    _report(out, result)
    by_class = f" (mean IoU of the classes {scores['mean_iou']:.3f})" if "mean_iou" in scores else ""
    print(f"validation IoU {scores['overall']['iou']:.3f}{by_class} over {len(val_set)} image(s), with the "
          f"weights of epoch {kept['epoch']} of {kept['of']}; {result['seconds']:.0f} s of the {seconds:.0f} s "
          f"budget; outputs in {out}/", flush=True)
    return result


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the highest ``monitor`` in ``path``, and that score in
    ``path`` + ``.json``.

    Written here rather than with ``keras.callbacks.ModelCheckpoint`` for an interrupted run:
    each file is written beside its place and then moved there in one step, so a run killed in the
    middle of a save leaves the previous best whole; and a resumed run starts from the best score
    it had reached, where a fresh ``ModelCheckpoint`` would take the first epoch after the resume
    as the best so far, however much worse.

    With ``schedule``, only the epochs of its last third count: the end of the cosine, where the
    rate is under 30 % of its peak. ``train`` passes it when it validates on crops, a sample of
    the validation images whose score swings at high rates: on the Dubai buildings, 36 crops of
    Tile 7 scored up to 0.16 above the whole images at one epoch and below them at another, and
    the best of all epochs by crops was an early spike (``benchmarks/kept_weights.py``).

    Args:
        path: The weights file (``.weights.h5``).
        monitor: The epoch log to maximise (e.g. ``"val_iou"``).
        resumed: Whether this run resumes one interrupted in the same folder (its best is kept).
        schedule: The run's [`EpochCosine`][keras_unetpp.training.recipe.EpochCosine]: only its
            last third of epochs count (re-plans included). None: every epoch counts.

    Example:
        Pass it to ``fit`` (``callbacks=[BestWeights(path, "val_iou")]``); here by hand:

        >>> import tempfile
        >>> from keras_unetpp import UNetPlusPlus
        >>> path = Path(tempfile.mkdtemp()) / "best.weights.h5"
        >>> best = BestWeights(path, "val_iou")
        >>> best.set_model(UNetPlusPlus((16, 16, 1), filters=(2, 4)))
        >>> best.on_epoch_end(0, {"val_iou": 0.5})
        >>> best.on_epoch_end(1, {"val_iou": 0.4})   # not better: the first epoch's weights stay
        >>> json.loads(path.with_name("best.weights.h5.json").read_text())["epoch"]
        1
        >>> BestWeights(path, "val_iou", resumed=True).best   # a resumed run starts from it
        0.5
        >>> late = BestWeights(path.with_name("late.weights.h5"), "val_iou", schedule=EpochCosine(2e-3, 6))
        >>> late.set_model(best.model)
        >>> for epoch, score in enumerate([0.3, 0.9, 0.4, 0.5, 0.6, 0.55]):   # epoch 2's spike is early
        ...     late.on_epoch_end(epoch, {"val_iou": score})
        >>> late.best
        0.6
    """

    def __init__(self, path: str | Path, monitor: str, resumed: bool = False, schedule: EpochCosine | None = None):
        super().__init__()
        self.path, self.monitor, self.schedule = Path(path), monitor, schedule
        self.score_path = self.path.with_name(self.path.name + ".json")
        self.best = -math.inf
        if resumed and self.path.is_file() and self.score_path.is_file():
            self.best = json.loads(self.score_path.read_text())["score"]

    def on_epoch_end(self, epoch, logs=None):
        score = (logs or {}).get(self.monitor)
        if score is None or not score > self.best:
            return
        if self.schedule is not None and epoch + 1 <= self.schedule.epochs - max(1, self.schedule.epochs // 3):
            return
        self.best = float(score)
        write_whole(self.path, self.model.save_weights)
        record = {"monitor": self.monitor, "score": self.best, "epoch": epoch + 1}
        write_whole(self.score_path, lambda partial: partial.write_text(json.dumps(record)))


class BudgetProgress(keras.callbacks.Callback):
    """One line per epoch: steps done, and the time used and left against the whole run's budget.

    With ``schedule`` and ``replan_at``, from that many epochs on, the remaining epochs are planned
    again after every epoch from the pace of the latest ones (the median of up to ``window``,
    leaving out the first, which compiles): as many as end within the budget less two thirds of the
    reserve (the end as timed, without its margin), at most ``most_epochs`` in all. When the count
    changes, the schedule's cosine is stretched or shrunk to end with it, going on from where it
    is, and ``on_replan`` receives the new plan, to record it. A plan made from a few timed steps
    cannot follow a machine that runs faster or slower than they did, or whose pace drifts while
    it trains; this takes back the difference. Training stops after the planned epochs, or
    earlier, with a line that says so, when the next epoch would end past the budget less half the
    reserve (for validation and saving).

    Args:
        total_steps: Steps of the plan.
        budget: Seconds of the whole run.
        started: ``time.perf_counter()`` at the run's start.
        reserve: Seconds kept for the run's end.
        schedule: The run's [`EpochCosine`][keras_unetpp.training.recipe.EpochCosine] (None: no
            re-plan).
        replan_at: Epochs after which re-planning begins (None: never).
        most_epochs: The most epochs a re-plan may give (``fit`` runs that many at the most).
        on_replan: Called with ``{"at_epoch", "epochs", "planned_epochs", "epoch_seconds",
            "bends"}`` when the plan changes.
        window: Epochs whose median duration is the pace.
        planned_epochs: The epochs of the plan, recorded with each re-plan (default: those of
            ``total_steps`` at the first re-plan).
    """

    def __init__(self, total_steps: int, budget: float, started: float, reserve: float,
                 schedule: EpochCosine | None = None, replan_at: int | None = None, most_epochs: int | None = None,
                 on_replan=None, window: int = 8, planned_epochs: int | None = None):
        super().__init__()
        self.total_steps, self.budget, self.started, self.reserve = total_steps, budget, started, reserve
        self.schedule, self.replan_at, self.most_epochs, self.on_replan = schedule, replan_at, most_epochs, on_replan
        self.window = window
        self.durations, self.epoch_begun = [], None
        self.stopped_at = None
        self.replanned = None
        self.planned_epochs = planned_epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_begun = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.durations.append(now - self.epoch_begun)
        # the first epoch (and the first after a resume) compiles the step and the validation: the
        # epochs after it tell the pace
        timed = self.durations[1:] or self.durations
        epoch_seconds = float(np.mean(timed))
        used = now - self.started
        per_epoch = max(self.params.get("steps") or 1, 1)
        steps = (epoch + 1) * per_epoch
        if (self.schedule is not None and self.replan_at is not None and epoch + 1 >= self.replan_at
                and len(self.durations) >= 2 and steps < self.total_steps):
            epoch_seconds = float(np.median(timed[-self.window:]))
            self._replan(epoch + 1, used, epoch_seconds, per_epoch)
        left = (self.total_steps - steps) / per_epoch * epoch_seconds
        print(f"  budget: {used / 60:.1f} of {self.budget / 60:.1f} min used, about {left / 60:.1f} min of "
              f"training left ({steps}/{self.total_steps} steps)", flush=True)
        if steps >= self.total_steps:
            self.model.stop_training = True   # fit may run longer, for a re-plan that adds epochs
        elif used + epoch_seconds > self.budget - self.reserve / 2:
            self.stopped_at = steps
            self.model.stop_training = True
            print(f"  stopping after {steps} of {self.total_steps} steps: the next epoch would end past the "
                  f"budget (steps ran slower than timed)", flush=True)

    def _replan(self, done: int, used: float, epoch_seconds: float, per_epoch: int) -> None:
        current = self.total_steps // per_epoch
        if self.planned_epochs is None:
            self.planned_epochs = current
        # the end as timed, without its margin of 1.5 (the guard keeps half the reserve)
        fit_in = int((self.budget - 2 * self.reserve / 3 - used) // epoch_seconds)
        epochs = max(done + 1, min(done + fit_in, self.most_epochs or current))
        if epochs == current:
            return
        self.schedule.replan(done, epochs)
        self.total_steps = epochs * per_epoch
        self.replanned = {"at_epoch": done, "epochs": epochs, "planned_epochs": self.planned_epochs,
                          "epoch_seconds": round(epoch_seconds, 2), "bends": self.schedule.bends}
        print(f"  re-planned after {done} epochs at {epoch_seconds:.1f} s an epoch: {epochs} epochs in all "
              f"(before {current}), {self.total_steps} steps", flush=True)
        if self.on_replan is not None:
            self.on_replan(self.replanned)


class _FitClock(keras.callbacks.Callback):
    """The moments of a short ``fit``: the start, every batch's end (one list per epoch) and the
    length of every validation pass."""

    def on_train_begin(self, logs=None):
        self.begun, self.batch_ends, self.validations = time.perf_counter(), [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.batch_ends.append([])

    def on_train_batch_end(self, batch, logs=None):
        self.batch_ends[-1].append(time.perf_counter())

    def on_test_begin(self, logs=None):
        self.test_begun = time.perf_counter()

    def on_test_end(self, logs=None):
        self.validations.append(time.perf_counter() - self.test_begun)


def _time_fit(model, loss, metrics: list, dataset, validation, learning_rate: float,
              steps: int = 6) -> dict[str, float]:
    """Times ``model`` in the loop training runs: two epochs of ``steps`` steps through ``fit``, the
    data pipeline and the validation pass included. The first epoch compiles the step and the
    validation and fills the pipeline's buffers; the second is the steady state.

    Returns:
        ``step`` (median seconds between the second epoch's batch ends), ``epoch_end`` (its
        validation pass and two weight saves: the backup and the best-weights checkpoint), and
        ``first_step`` and ``first_validation`` (the first epoch's, compiling included; training
        compiles both once more).
    """
    import tempfile

    from keras_unetpp.training.recipe import _fresh

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=_fresh(metrics))
    clock = _FitClock()
    model.fit(dataset, steps_per_epoch=steps, epochs=2, validation_data=validation, callbacks=[clock], verbose=0,
              shuffle=False)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        model.save_weights(Path(folder) / "timed.weights.h5")
        saving = time.perf_counter() - start
    return {"step": float(np.median(np.diff(clock.batch_ends[1]))),
            "epoch_end": clock.validations[1] + 2 * saving,
            "first_step": clock.batch_ends[0][0] - clock.begun,
            "first_validation": clock.validations[0]}


def _time_end(segmenter, val_set, classes, value_range, margin: float = 1.5, report_seconds: float = 5.0) -> float:
    """Seconds the run's end will take: scoring every validation image as ``_score`` does, and
    saving the model. The first image scored compiles the prediction, the second gives the time
    per pixel, which the pixels of all the images scale; ``margin`` covers a slower machine, and
    ``report_seconds`` the curves and the report. An epoch's validation pass does not predict it:
    whole tiled scenes took 38 times their validation pass, films 0.6 to 2 times."""
    import tempfile

    times = []
    with tempfile.TemporaryDirectory() as folder:
        for sample in val_set[:2]:
            start = time.perf_counter()
            _score(segmenter, [sample], Path(folder), classes, value_range)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        segmenter.save(Path(folder) / "timed.keras")
        saving = time.perf_counter() - start
    pixels = [sample.image.shape[0] * sample.image.shape[1] for sample in val_set]
    per_pixel = times[-1] / pixels[len(times) - 1]
    compiling = max(0.0, times[0] - per_pixel * pixels[0])
    return margin * (compiling + per_pixel * sum(pixels) + saving) + report_seconds


class _Prepared:
    """The data and model of a plan: what differs between overhead crops and whole images."""

    def __init__(self, train_set, val_set, facts: dict, print_: dict, seed: int):
        from keras_unetpp.datasets import fixed_crops
        from keras_unetpp.datasets.pipeline import resized_arrays
        from keras_unetpp.models import preprocess_images
        from keras_unetpp.values import to_model_values

        self.facts, self.print_, self.seed = facts, print_, seed
        self.classes = print_["classes"]
        self.bands = print_["bands"]
        self.range = (0.0, float(2 ** print_["bit_depth"] - 1))

        def unit(image):  # the file's values onto [0, 1] by its bit depth (the one rule of keras_unetpp.values)
            return to_model_values(image, (0.0, 1.0), self.range)

        if facts["crop"]:
            self.train = [Sample(s.name, s.group, preprocess_images(unit(s.image), 1.0, facts["median_kernel"]),
                                 s.mask) for s in train_set]
            crops = [Sample(s.name, s.group, preprocess_images(unit(s.image), 1.0, facts["median_kernel"]), s.mask)
                     for s in val_set]
            self.val = fixed_crops(crops, facts["crop"], per_image=4, seed=seed)
        else:
            size = facts["working_size"]
            # float32 in [0, 1], not 8-bit: a 16-bit film keeps its levels
            self.train = resized_arrays([Sample(s.name, s.group, unit(s.image), s.mask) for s in train_set], size)
            self.val = resized_arrays([Sample(s.name, s.group, unit(s.image), s.mask) for s in val_set], size)
        self.monitor = "val_iou" if self.classes == 2 else "val_mean_iou"

    def model(self):
        from keras_unetpp.models import build_architecture

        encoder = self.facts["encoder"]
        return build_architecture(self.facts["architecture"], self.bands, 1 if self.classes == 2 else self.classes,
                                  encoder_weights="imagenet" if encoder else None, encoder=encoder,
                                  filters=self.facts["filters"])

    def loss(self):
        from keras_unetpp import CombinedLoss, FocalDiceLoss, HaloWeightedCrossEntropy, LabelCrossEntropy

        name = self.facts["loss"]
        if name == "halo_dice":
            return CombinedLoss([FocalDiceLoss(), HaloWeightedCrossEntropy(halo_weight=4.0, halo_width=9)])
        if name == "focal_dice+cross_entropy":
            return CombinedLoss([FocalDiceLoss(), LabelCrossEntropy()])
        return FocalDiceLoss()

    def metrics(self):
        from keras_unetpp import BinaryIoU, MulticlassIoU

        return [BinaryIoU()] if self.classes == 2 else [MulticlassIoU(self.classes)]

    def augmentation(self):
        from keras_unetpp.layers import (
            AugmentationPipeline,
            RandomBrightness,
            RandomContrast,
            RandomFlip,
            aerial_augmentation,
            xray_augmentation,
        )

        kind = self.facts["augmentation"]
        if kind == "dihedral":
            return aerial_augmentation(self.seed, median_kernel=0)
        if kind == "film":
            return xray_augmentation(self.seed)
        return AugmentationPipeline([RandomFlip("horizontal", seed=self.seed),
                                     RandomBrightness(0.1, seed=self.seed + 1),
                                     RandomContrast(0.2, seed=self.seed + 2)])

    def dataset(self):
        from keras_unetpp.datasets import array_dataset, crop_dataset

        batch = self.facts["batch_size"]
        if self.facts["crop"]:
            return crop_dataset(self.train, self.facts["crop"], batch, self.augmentation(), self.seed,
                                foreground_fraction=self.facts["foreground_fraction"])
        images, masks = self.train
        return array_dataset(images, masks, batch, self.augmentation(), seed=self.seed)

    def validation(self):
        return self.val

    def segmenter(self, model):
        from keras_unetpp import with_preprocessing

        working = self.facts["working_size"]
        return with_preprocessing(model, channels=self.bands, input_scale=1.0 / self.range[1],
                                  median_kernel=self.facts["median_kernel"],
                                  working_size=(working, working) if working else None,
                                  symmetries=self.facts["symmetries"])


def _score(segmenter, val_set, out: Path, classes, value_range) -> dict:
    """Scores on the whole validation images (tiled where large), with an error map per image; the
    files' values mapped by their bit depth, as training mapped them."""
    from keras_unetpp import MulticlassIoU, predict_tiled
    from keras_unetpp.evaluation import SegmentationReport, segmentation_report
    from keras_unetpp.inference import predict_augmented
    from keras_unetpp.segmenter import describe_model
    from keras_unetpp.visualization import save_error_map

    info = describe_model(segmenter)
    reports, per_image = [], {}
    every_class = MulticlassIoU(classes) if classes is not None else None
    for sample in val_set:
        if info.whole_image:
            prob = predict_augmented(segmenter, sample.image[None], tta=False, input_range=value_range)[0]
        else:
            prob = predict_tiled(segmenter, sample.image, tile_size=256, overlap=0.25, progress=False,
                                 input_range=value_range)
        if classes is not None:  # per class over all images; per image the foreground of any class
            every_class.update_state(sample.mask[None], prob[None])
            truth, prob = any_class_foreground(sample.mask, prob, classes)
        else:
            truth = sample.mask
        report = segmentation_report(truth, prob)
        reports.append(report)
        per_image[sample.name] = {"iou": report.iou, "dice": report.dice, "precision": report.precision,
                                  "recall": report.recall}
        save_error_map(out / f"{sample.name}_error_map.png", truth, prob)
    overall = SegmentationReport.combined(reports)
    scores = {"overall": {k: v for k, v in overall.to_dict().items() if k != "fractions"}, "per_image": per_image}
    if every_class is not None:  # IoU of each class over all images, and their mean over the classes present
        scores["per_class_iou"] = [None if np.isnan(v) else round(float(v), 4) for v in every_class.per_class_iou()]
        scores["mean_iou"] = round(float(every_class.result()), 4)
    return scores


def _report(out: Path, result: dict) -> Path:
    """``report.md``: the plan, the scores per image, the worst images shown."""
    lines = ["# Training report", "",
             f"Validation IoU **{result['overall']['iou']:.3f}** (Dice {result['overall']['dice']:.3f}) over "
             f"{len(result['per_image'])} image(s); {result['steps']} steps in {result['seconds'] / 60:.1f} min of "
             f"a {result['budget_seconds'] / 60:.0f} min budget. {result['split']}.", "",
             f"The model has the weights of epoch {result['kept']['epoch']} of {result['kept']['of']}: "
             f"{result['kept']['rule']}.", ""]
    if "mean_iou" in result:
        names = result["fingerprint"].get("class_names") or [str(k) for k in range(len(result["per_class_iou"]))]
        lines += [f"Mean IoU over the classes present **{result['mean_iou']:.3f}**; per class: "
                  + ", ".join(f"{name} {'-' if iou is None else f'{iou:.3f}'}"
                              for name, iou in zip(names, result["per_class_iou"])) + ".", ""]
    lines += ["## Plan", "",
             "| choice | value | rule |", "|---|---|---|"]
    lines += [f"| {key} | {entry['value']} | {entry['rule']} |" for key, entry in result["plan"].items()]
    lines += ["", "## Per image (worst first)", "", "| image | IoU | Dice | precision | recall |", "|---|---|---|---|---|"]
    ranked = sorted(result["per_image"].items(), key=lambda item: item[1]["iou"])
    lines += [f"| {name} | {s['iou']:.3f} | {s['dice']:.3f} | {s['precision']:.3f} | {s['recall']:.3f} |"
              for name, s in ranked]
    lines += ["", "## The worst images", ""]
    lines += [f"![{name}]({name}_error_map.png)" for name, _ in ranked[:3]]
    lines += ["", "Error maps: true positives white, false positives blue, false negatives red.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path

