"""PNG figures people look at: image / mask / prediction panels, overlays,
error maps and training curves, and [`scene_report()`][keras_unetpp.visualization.scene_report] (a scene's report
with its mask and error map on disk). Image panels are composed with OpenCV
(pixel-exact, any size); curves and comparisons are matplotlib figures (axes,
ticks, legends, error bars: what readers expect of a plot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from keras_unetpp.evaluation import SegmentationReport, segmentation_report
from keras_unetpp.masks import save_mask, write_png
from keras_unetpp.values import foreground, single_channel

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def to_rgb8(image) -> np.ndarray:
    """Converts an image or mask to uint8 RGB (H, W, 3).

    Floats are taken as [0, 1] (a mask with values up to 255 as 0..255);
    integers as 0..255, except 0/1 masks, which are scaled to 0/255.

    Args:
        image: (H, W), (H, W, 1) or (H, W, 3) array.

    Returns:
        A new uint8 (H, W, 3) array.

    Raises:
        ValueError: For another shape.

    Examples:
        >>> to_rgb8(np.array([[0.0, 1.0]])).tolist()
        [[[0, 0, 0], [255, 255, 255]]]
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise ValueError(f"Expected an image (H, W), (H, W, 1) or (H, W, 3), got shape {array.shape}.")
    if array.dtype == bool or (array.size and array.max() <= 1):
        array = array.astype(np.float32) * 255.0
    array = np.clip(np.asarray(array, np.float32), 0, 255).round().astype(np.uint8)
    return np.repeat(array[..., None], 3, axis=-1) if array.ndim == 2 else array


def overlay(image, mask, color=(255, 40, 40), opacity: float = 0.45, threshold: float = 0.5) -> np.ndarray:
    """Tints the mask's foreground pixels of ``image`` with ``color``.

    Args:
        image: The image.
        mask: Mask or probability map of the same height and width.
        color: RGB tint.
        opacity: Tint strength in [0, 1].
        threshold: Foreground threshold for float masks.

    Returns:
        A new uint8 RGB image.

    Examples:
        >>> overlay(np.zeros((1, 2)), np.array([[1, 0]]), color=(200, 0, 0), opacity=0.5)[0].tolist()
        [[100, 0, 0], [0, 0, 0]]
    """
    rgb = to_rgb8(image).astype(np.float32)
    m = foreground(single_channel(mask), threshold)
    rgb[m] = (1 - opacity) * rgb[m] + opacity * np.asarray(color, np.float32)
    return rgb.round().astype(np.uint8)


def _titled(panel: np.ndarray, title: str, min_width: int = 96) -> np.ndarray:
    height, width = panel.shape[:2]
    if width < min_width:  # small images: enlarge so the title fits
        scale = int(np.ceil(min_width / width))
        panel = cv2.resize(panel, (width * scale, height * scale), interpolation=cv2.INTER_NEAREST)
    bar = np.full((22, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (4, 16), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)


def panel_grid(rows: Sequence[Sequence], titles: Sequence[str], gap: int = 4) -> np.ndarray:
    """Arranges rows of images (each row the same columns) into one RGB image.

    Args:
        rows: For each row, the panels (images, masks or probability maps).
        titles: One title per column.
        gap: White pixels between panels.

    Returns:
        uint8 RGB image.

    Raises:
        ValueError: If a row's length differs from ``titles``.

    Examples:
        >>> grid = panel_grid([(np.zeros((100, 100)), np.ones((100, 100)))], ["a", "b"])
        >>> grid.shape
        (126, 208, 3)
    """
    lines = []
    for row in rows:
        if len(row) != len(titles):
            raise ValueError(f"Every row needs {len(titles)} panels, got {len(row)}.")
        panels = [_titled(to_rgb8(p), t) for p, t in zip(row, titles)]
        height = max(p.shape[0] for p in panels)
        padded = []
        for p in panels:
            p = np.pad(p, ((0, height - p.shape[0]), (0, gap), (0, 0)), constant_values=255)
            padded.append(p)
        lines.append(np.concatenate(padded, axis=1))
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(l, ((0, gap), (0, width - l.shape[1]), (0, 0)), constant_values=255) for l in lines]
    return np.concatenate(lines, axis=0)


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Writes an RGB uint8 image as PNG, creating the folder.

    Args:
        path: Output path.
        rgb: (H, W, 3) uint8 RGB image.

    Returns:
        The path written.

    Raises:
        OSError: If the file cannot be written.

    Examples:
        >>> import tempfile, pathlib
        >>> save_png(pathlib.Path(tempfile.mkdtemp()) / "x.png", np.zeros((4, 4, 3), np.uint8)).name
        'x.png'
    """
    return write_png(path, rgb)


def save_prediction_grid(path, images, true_masks, predictions, threshold: float = 0.5) -> Path:
    """Saves rows of image / true mask / predicted mask / overlay as a PNG.

    Args:
        path: Output PNG path.
        images: (N, H, W, C) images.
        true_masks: (N, H, W, 1) masks.
        predictions: (N, H, W, 1) probabilities.
        threshold: Foreground threshold of the predictions.

    Returns:
        The path written.

    Examples:
        >>> import tempfile, pathlib
        >>> x = np.zeros((2, 8, 8, 3)); y = np.ones((2, 8, 8, 1))
        >>> save_prediction_grid(pathlib.Path(tempfile.mkdtemp()) / "g.png", x, y, y).exists()
        True
    """
    rows = [
        (img, truth, (pred >= threshold).astype(np.float32), overlay(img, pred, threshold=threshold))
        for img, truth, pred in zip(images, true_masks, predictions)
    ]
    return save_png(path, panel_grid(rows, ["image", "true mask", "prediction", "overlay"]))


def _figure(size: tuple[float, float]):
    """A matplotlib Figure and its axes, made without pyplot: no global state,
    no display, and a notebook's own backend is left alone."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    return fig, fig.subplots()


def curves_figure(
    curves: Mapping[str, Sequence[float]],
    title: str = "",
    xlabel: str = "epoch",
    ylabel: str = "",
    size: tuple[float, float] = (6.4, 4.0),
):
    """A matplotlib figure of named series against epochs 1..n, with axes, ticks, grid and legend.

    Args:
        curves: ``{name: values per epoch}`` (e.g. a Keras ``History.history``);
            non-finite values are left out of the line (a gap, not a zero).
        title: Axes title.
        xlabel: Label of the x axis.
        ylabel: Label of the y axis.
        size: Figure size in inches.

    Returns:
        The ``matplotlib.figure.Figure`` (made without pyplot: nothing to close).

    Raises:
        ValueError: If there is nothing finite to plot.

    Examples:
        >>> fig = curves_figure({"loss": [1.0, 0.5, 0.3]}, ylabel="loss")
        >>> fig.axes[0].get_ylabel()
        'loss'
    """
    series = {k: np.asarray(v, np.float64) for k, v in curves.items() if len(v)}
    if not any(np.isfinite(v).any() for v in series.values()):
        raise ValueError("curves_figure needs at least one finite value.")
    fig, ax = _figure(size)
    for name, values in series.items():
        epochs = np.arange(1, len(values) + 1)
        keep = np.isfinite(values)
        ax.plot(epochs[keep], values[keep], marker="o", markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Saves a matplotlib figure as PNG (parent folders created).

    Args:
        fig: A ``matplotlib.figure.Figure``.
        path: Output PNG path.

    Returns:
        The path written.

    Examples:
        >>> import tempfile, pathlib
        >>> save_figure(curves_figure({"iou": [0.2, 0.6]}), pathlib.Path(tempfile.mkdtemp()) / "c.png").exists()
        True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_curves(
    curves: Mapping[str, Sequence[float]],
    path: str | Path,
    title: str = "",
    xlabel: str = "epoch",
    ylabel: str = "",
) -> Path:
    """Plots named series (e.g. a Keras ``History.history``) as a PNG with
    matplotlib: axes with ticks and labels, grid, legend.

    Args:
        curves: ``{name: values per epoch}``; non-finite values are skipped.
        path: Output PNG path (640 x 400 px).
        title: Figure title.
        xlabel: Label of the x axis.
        ylabel: Label of the y axis.

    Returns:
        The path written.

    Raises:
        ValueError: If there is nothing to plot.

    Examples:
        >>> import tempfile, pathlib
        >>> plot_curves({"loss": [1.0, 0.5, 0.3]}, pathlib.Path(tempfile.mkdtemp()) / "c.png").exists()
        True
    """
    return save_figure(curves_figure(curves, title, xlabel, ylabel), path)


def comparison_figure(
    groups: Sequence[str],
    values: Mapping[str, Sequence[Sequence[float]]],
    ylabel: str = "",
    title: str = "",
    size: tuple[float, float] = (8.0, 4.0),
):
    """Grouped bars: for each group (e.g. a test condition) one bar per arm
    (e.g. with / without augmentation) at the mean over repeats (seeds), with
    error bars of one standard deviation and the single repeats as dots.

    Args:
        groups: Names along the x axis.
        values: ``{arm: [repeats of group 0, repeats of group 1, ...]}``.
        ylabel: Label of the y axis.
        title: Axes title.
        size: Figure size in inches.

    Returns:
        The ``matplotlib.figure.Figure``.

    Raises:
        ValueError: If an arm does not give one list of repeats per group.

    Examples:
        >>> fig = comparison_figure(["clean", "noisy"], {"aug": [[0.9, 0.92], [0.8, 0.84]]}, ylabel="Dice")
        >>> [round(float(b.get_height()), 2) for b in fig.axes[0].patches]
        [0.91, 0.82]
    """
    for arm, per_group in values.items():
        if len(per_group) != len(groups):
            raise ValueError(f"arm {arm!r} has {len(per_group)} groups of repeats, expected {len(groups)}.")
    fig, ax = _figure(size)
    width = 0.8 / max(len(values), 1)
    x = np.arange(len(groups))
    for k, (arm, per_group) in enumerate(values.items()):
        means = [float(np.mean(r)) for r in per_group]
        spread = [float(np.std(r, ddof=1)) if len(r) > 1 else 0.0 for r in per_group]
        offset = x - 0.4 + width * (k + 0.5)
        ax.bar(offset, means, width, yerr=spread, capsize=3, label=arm, alpha=0.85)
        for xi, r in zip(offset, per_group):
            ax.plot(np.full(len(r), xi), r, "k.", markersize=3)
    ax.set_xticks(x, groups, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    return fig


#: RGB colours of the error map, by outcome.
ERROR_COLORS = {
    "TN": (0, 0, 0),
    "FN": (230, 50, 50),
    "FP": (40, 120, 255),
    "TP": (255, 255, 255),
}

def error_map(y_true, y_pred, threshold: float = 0.5, colors: dict | None = None) -> np.ndarray:
    """Colours every pixel by outcome: TN, FN, FP, TP (see ``ERROR_COLORS``).

    Args:
        y_true: True mask.
        y_pred: Predicted mask or probability map of the same size.
        threshold: Foreground threshold for float masks.
        colors: Optional mapping ``{"TN"|"FN"|"FP"|"TP": (r, g, b)}``.

    Returns:
        uint8 RGB image (H, W, 3); the only full-size array allocated.

    Examples:
        >>> error_map([[1, 0]], [[1, 1]])[0].tolist()
        [[255, 255, 255], [40, 120, 255]]
    """
    palette = {**ERROR_COLORS, **(colors or {})}
    lookup = np.array([palette[k] for k in ("TN", "FP", "FN", "TP")], np.uint8)  # index 2*t + p
    truth, pred = single_channel(y_true, "y_true"), single_channel(y_pred, "y_pred")
    if truth.shape != pred.shape:
        raise ValueError(f"y_true has shape {truth.shape} but y_pred has shape {pred.shape}.")
    out = np.empty(truth.shape + (3,), np.uint8)
    for start in range(0, truth.shape[0], 512):  # strips of rows: no other full-size temporaries
        rows = slice(start, start + 512)
        out[rows] = lookup[2 * foreground(truth[rows], threshold).astype(np.uint8) + foreground(pred[rows], threshold)]
    return out


def save_error_map(path: str | Path, y_true, y_pred, threshold: float = 0.5, legend: bool = True) -> Path:
    """Writes the error map as a PNG, with a legend strip below it.

    Args:
        path: Output file (``.png``).
        y_true: True mask.
        y_pred: Predicted mask or probability map.
        threshold: Foreground threshold for float masks.
        legend: Append a strip naming the four colours.

    Returns:
        The path written.

    Raises:
        OSError: If the file cannot be written.

    Examples:
        >>> import tempfile, pathlib
        >>> save_error_map(pathlib.Path(tempfile.mkdtemp()) / "e.png", [[1, 0]], [[1, 1]]).suffix
        '.png'
    """
    image = error_map(y_true, y_pred, threshold)
    if legend:
        strip = _legend_strip(image.shape[1])
        if strip.shape[1] > image.shape[1]:  # a small image: widened with grey so that the legend is whole
            image = np.pad(image, ((0, 0), (0, strip.shape[1] - image.shape[1]), (0, 0)), constant_values=128)
        image = np.concatenate([image, strip], axis=0)
    return write_png(path, image)


#: Width of one legend entry: a colour swatch and its two-letter label.
_LEGEND_CELL = 24 + cv2.getTextSize("TN", cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0] + 8


def _legend_strip(width: int) -> np.ndarray:
    """The four colours and their labels, in as many rows as the width needs (never cut off)."""
    columns = max(1, min(4, width // _LEGEND_CELL))
    rows = -(-4 // columns)
    strip = np.full((28 * rows, max(width, columns * _LEGEND_CELL), 3), 128, np.uint8)
    cell = strip.shape[1] // columns
    for k, (label, color) in enumerate(ERROR_COLORS.items()):
        x0, y0 = (k % columns) * cell, (k // columns) * 28
        cv2.rectangle(strip, (x0 + 4, y0 + 6), (x0 + 20, y0 + 22), color, -1)
        cv2.putText(strip, label, (x0 + 24, y0 + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def scene_report(
    probabilities, true_mask, out_dir: str | Path | None = None, threshold: float = 0.5, block_size: int = 256
) -> SegmentationReport:
    """Evaluates a scene prediction: report with coverage tests, and, when
    ``out_dir`` is given, ``mask.png``, ``error_map.png`` and ``report.json``.

    Args:
        probabilities: (H, W[, 1]) predicted map, e.g. from [`predict_tiled()`][keras_unetpp.inference.predict_tiled].
        true_mask: (H, W[, 1]) true mask (bool, 0/1 or 0/255).
        out_dir: Folder for the files; ``None`` writes nothing.
        threshold: Foreground threshold.
        block_size: Block size of the coverage comparison.

    Returns:
        The [`SegmentationReport`][keras_unetpp.evaluation.SegmentationReport].

    Examples:
        >>> truth = np.zeros((64, 64), np.uint8); truth[:32] = 1
        >>> round(scene_report(truth * 0.9, truth, block_size=32).iou, 3)
        1.0
    """
    report = segmentation_report(true_mask, probabilities, threshold, block_size=block_size)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_mask(out / "mask.png", probabilities, threshold)
        save_error_map(out / "error_map.png", true_mask, probabilities, threshold)
        report.to_json(out / "report.json")
    return report
