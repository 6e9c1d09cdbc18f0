"""Plain-numpy evaluation of a predicted mask against the true one, for masks of
any size: confusion counts, IoU/Dice/precision/recall/F1 and a scene-level
comparison of how the foreground is distributed. (The error map, a picture, is
in `visualization`.)

Large masks (e.g. 20,000 x 20,000) are processed in strips of rows, so the
only full-size arrays are the inputs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from keras_unetpp.values import foreground, single_channel

_ROWS_PER_STRIP = 512


def _binary_mask(mask, name: str) -> np.ndarray:
    """Checks a 2-D (or H x W x 1) mask; returns a read-only view, no copy."""
    return single_channel(mask, name)


def _strips(height: int):
    for start in range(0, height, _ROWS_PER_STRIP):
        yield slice(start, min(start + _ROWS_PER_STRIP, height))


def _binarize(strip: np.ndarray, threshold: float) -> np.ndarray:
    return foreground(strip, threshold)


def _pair(y_true, y_pred, threshold):
    truth = _binary_mask(y_true, "y_true")
    pred = _binary_mask(y_pred, "y_pred")
    if truth.shape != pred.shape:
        raise ValueError(f"y_true has shape {truth.shape} but y_pred has shape {pred.shape}.")
    return truth, pred


@dataclasses.dataclass(frozen=True)
class ConfusionCounts:
    """Pixel counts of a binary segmentation.

    Args:
        tp: Foreground predicted as foreground.
        fp: Background predicted as foreground.
        fn: Foreground predicted as background.
        tn: Background predicted as background.

    Examples:
        >>> c = ConfusionCounts(tp=3, fp=1, fn=0, tn=4)
        >>> c.total, c.fractions()["tp"]
        (8, 0.375)
    """

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def fractions(self) -> dict[str, float]:
        """Each count divided by the number of pixels."""
        total = max(self.total, 1)
        return {k: v / total for k, v in dataclasses.asdict(self).items()}

    def __add__(self, other: "ConfusionCounts") -> "ConfusionCounts":
        return ConfusionCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)


def confusion_counts(y_true, y_pred, threshold: float = 0.5) -> ConfusionCounts:
    """Counts TP, FP, FN and TN pixels.

    Masks may be boolean, integer (foreground = non-zero, so 0/1 and 0/255
    both work) or float probabilities (foreground = ``>= threshold``).

    Args:
        y_true: True mask, (H, W) or (H, W, 1).
        y_pred: Predicted mask or probability map of the same size.
        threshold: Foreground threshold for float inputs.

    Returns:
        A [`ConfusionCounts`][keras_unetpp.evaluation.ConfusionCounts].

    Raises:
        ValueError: If the masks are not 2-D, not numeric or differ in size.

    Examples:
        >>> confusion_counts([[1, 1], [0, 0]], [[1, 0], [1, 0]])
        ConfusionCounts(tp=1, fp=1, fn=1, tn=1)
    """
    truth, pred = _pair(y_true, y_pred, threshold)
    tp = fp = fn = 0
    for rows in _strips(truth.shape[0]):
        t, p = _binarize(truth[rows], threshold), _binarize(pred[rows], threshold)
        tp += int(np.count_nonzero(t & p))
        fp += int(np.count_nonzero(~t & p))
        fn += int(np.count_nonzero(t & ~p))
    return ConfusionCounts(tp, fp, fn, truth.size - tp - fp - fn)


def _ratio(numerator: int, denominator: int, other_errors: int) -> float:
    """numerator/denominator; for an empty denominator 1.0 when the other error
    count is also 0 (nothing to find, nothing claimed), else 0.0."""
    if denominator:
        return numerator / denominator
    return 1.0 if other_errors == 0 else 0.0


@dataclasses.dataclass(frozen=True)
class CoverageComparison:
    """Foreground fraction per block of the true vs the predicted mask.

    Args:
        block_size: Block edge in pixels.
        true_fractions: Foreground fraction of each block of the truth.
        pred_fractions: Same for the prediction.
        ks_statistic: Two-sample Kolmogorov-Smirnov statistic.
        ks_pvalue: Its p-value.
        chi2_statistic: Chi-square statistic of the 2 x bins contingency
            table of the two histograms (NaN when fewer than two bins are
            occupied).
        chi2_pvalue: Its p-value (NaN likewise).
        bins: Histogram bin count.

    Examples:
        >>> m = np.zeros((32, 32), np.uint8); m[:8] = 1
        >>> compare_coverage(m, m, block_size=8).to_dict()["blocks"]
        16
    """

    block_size: int
    true_fractions: np.ndarray
    pred_fractions: np.ndarray
    ks_statistic: float
    ks_pvalue: float
    chi2_statistic: float
    chi2_pvalue: float
    bins: int

    def to_dict(self) -> dict:
        return {
            "block_size": self.block_size,
            "blocks": int(self.true_fractions.size),
            "mean_true_fraction": float(self.true_fractions.mean()),
            "mean_pred_fraction": float(self.pred_fractions.mean()),
            "ks_statistic": self.ks_statistic,
            "ks_pvalue": self.ks_pvalue,
            "chi2_statistic": self.chi2_statistic,
            "chi2_pvalue": self.chi2_pvalue,
            "bins": self.bins,
        }


def block_fractions(mask, block_size: int = 256, threshold: float = 0.5) -> np.ndarray:
    """Foreground fraction of each ``block_size`` x ``block_size`` block.

    Blocks at the right and bottom edges may be smaller; their fraction is
    taken over their own area.

    Args:
        mask: (H, W) or (H, W, 1) mask.
        block_size: Block edge in pixels (>= 1).
        threshold: Foreground threshold for float masks.

    Returns:
        Float64 array (ceil(H / b), ceil(W / b)).

    Examples:
        >>> block_fractions([[1, 0, 0], [1, 1, 0]], block_size=2)
        array([[0.75, 0.  ]])
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}.")
    array = _binary_mask(mask, "mask")
    height, width = array.shape
    col_starts = np.arange(0, width, block_size)
    sums = np.zeros((len(range(0, height, block_size)), len(col_starts)))
    for b, start in enumerate(range(0, height, block_size)):
        strip = _binarize(array[start : start + block_size], threshold)
        sums[b] = np.add.reduceat(strip.sum(axis=0, dtype=np.int64), col_starts)
    rows = np.minimum(block_size, height - np.arange(0, height, block_size))
    cols = np.minimum(block_size, width - col_starts)
    return sums / np.outer(rows, cols)


def compare_coverage(y_true, y_pred, block_size: int = 256, bins: int = 10, threshold: float = 0.5):
    """Tests whether the predicted foreground is distributed like the true one.

    The foreground fraction of every block is computed for both masks; their
    distributions are compared with a two-sample Kolmogorov-Smirnov test and a
    chi-square test of homogeneity on their ``bins``-bin histograms over [0, 1].

    Args:
        y_true: True mask.
        y_pred: Predicted mask or probability map.
        block_size: Block edge in pixels.
        bins: Histogram bins for the chi-square test.
        threshold: Foreground threshold for float masks.

    Returns:
        A [`CoverageComparison`][keras_unetpp.evaluation.CoverageComparison].

    Examples:
        >>> import numpy as np
        >>> m = np.zeros((64, 64), np.uint8); m[:32] = 1
        >>> compare_coverage(m, m, block_size=16).ks_statistic
        0.0
    """
    truth, pred = _pair(y_true, y_pred, threshold)
    true_fractions = block_fractions(truth, block_size, threshold).ravel()
    pred_fractions = block_fractions(pred, block_size, threshold).ravel()
    ks = stats.ks_2samp(true_fractions, pred_fractions)
    edges = np.linspace(0.0, 1.0, bins + 1)
    table = np.stack([np.histogram(true_fractions, edges)[0], np.histogram(pred_fractions, edges)[0]])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] >= 2:
        chi2 = stats.chi2_contingency(table, correction=False)
        chi2_stat, chi2_p = float(chi2.statistic), float(chi2.pvalue)
    else:
        chi2_stat = chi2_p = float("nan")
    return CoverageComparison(
        block_size, true_fractions, pred_fractions, float(ks.statistic), float(ks.pvalue), chi2_stat, chi2_p, bins
    )


@dataclasses.dataclass(frozen=True)
class SegmentationReport:
    """Binary segmentation quality of one mask (or a sum over many).

    Empty denominators: IoU, Dice and F1 are 1.0 when there is no foreground
    in truth or prediction; precision (recall) is 1.0 when nothing was
    predicted (nothing was there) and nothing was missed (claimed), else 0.

    Args:
        counts: The pixel counts.
        coverage: Optional scene-level [`CoverageComparison`][keras_unetpp.evaluation.CoverageComparison].

    Examples:
        >>> r = SegmentationReport(ConfusionCounts(tp=2, fp=2, fn=0, tn=4))
        >>> r.iou, r.precision, r.recall
        (0.5, 0.5, 1.0)
    """

    counts: ConfusionCounts
    coverage: CoverageComparison | None = None

    @classmethod
    def combined(cls, reports: "Sequence[SegmentationReport]") -> "SegmentationReport":
        """The report of all pixels of several images: counts added up (not
        an average of per-image scores).

        Args:
            reports: Reports of single images.

        Returns:
            A [`SegmentationReport`][keras_unetpp.evaluation.SegmentationReport] without coverage comparison.

        Examples:
            >>> a = SegmentationReport(ConfusionCounts(tp=2, fp=0, fn=0, tn=2))
            >>> b = SegmentationReport(ConfusionCounts(tp=0, fp=2, fn=0, tn=2))
            >>> SegmentationReport.combined([a, b]).iou
            0.5
        """
        counts = ConfusionCounts(0, 0, 0, 0)
        for report in reports:
            counts = counts + report.counts
        return cls(counts)

    @property
    def precision(self) -> float:
        c = self.counts
        return _ratio(c.tp, c.tp + c.fp, c.fn)

    @property
    def recall(self) -> float:
        c = self.counts
        return _ratio(c.tp, c.tp + c.fn, c.fp)

    @property
    def iou(self) -> float:
        c = self.counts
        return _ratio(c.tp, c.tp + c.fp + c.fn, 0)

    @property
    def dice(self) -> float:
        c = self.counts
        return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, 0)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (equals Dice for pixels)."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict:
        out = {
            "iou": self.iou,
            "dice": self.dice,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "counts": dataclasses.asdict(self.counts),
            "fractions": self.counts.fractions(),
        }
        if self.coverage is not None:
            out["coverage"] = self.coverage.to_dict()
        return out

    def to_json(self, path: str | Path | None = None, indent: int = 2) -> str:
        """The report as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text)
        return text

    def __str__(self) -> str:
        c = self.counts
        f = c.fractions()
        lines = [
            f"{'metric':<12}{'value':>12}",
            *(f"{k:<12}{getattr(self, k):>12.4f}" for k in ("iou", "dice", "precision", "recall", "f1")),
            f"{'outcome':<12}{'pixels':>12}{'fraction':>12}",
            *(f"{k.upper():<12}{getattr(c, k):>12d}{f[k]:>12.4f}" for k in ("tp", "fp", "fn", "tn")),
        ]
        if self.coverage is not None:
            v = self.coverage
            lines += [
                f"coverage per {v.block_size}px block ({v.true_fractions.size} blocks)",
                f"{'KS':<12}{v.ks_statistic:>12.4f}  p={v.ks_pvalue:.4g}",
                f"{'chi-square':<12}{v.chi2_statistic:>12.4f}  p={v.chi2_pvalue:.4g}",
            ]
        return "\n".join(lines)


def segmentation_report(
    y_true, y_pred, threshold: float = 0.5, block_size: int | None = None
) -> SegmentationReport:
    """Evaluates a predicted mask against the true one.

    Args:
        y_true: True mask (H, W) or (H, W, 1): bool, 0/1, 0/255 or float.
        y_pred: Predicted mask or probability map of the same size.
        threshold: Foreground threshold for float masks.
        block_size: When given, adds the block-coverage comparison
            ([`compare_coverage()`][keras_unetpp.evaluation.compare_coverage]) to the report.

    Returns:
        A [`SegmentationReport`][keras_unetpp.evaluation.SegmentationReport]; ``print`` it for a table,
            ``to_json()`` for JSON.

    Examples:
        >>> r = segmentation_report([[1, 1], [0, 0]], [[1, 0], [0, 0]])
        >>> round(r.iou, 3), r.precision, r.recall
        (0.5, 1.0, 0.5)
    """
    counts = confusion_counts(y_true, y_pred, threshold)
    coverage = compare_coverage(y_true, y_pred, block_size, threshold=threshold) if block_size else None
    return SegmentationReport(counts, coverage)


def paired_comparison(first: dict, second: dict, key: str = "iou") -> dict:
    """Per-case changes of ``key`` from ``second`` to ``first`` (the same cases scored by two models)
    and a Wilcoxon signed-rank test: one overall score over 16 cases says little on its own.

    Args:
        first: ``{case: {key: value}}`` of the model under test.
        second: The same cases of the model it is compared with.
        key: The score compared (``"iou"``, ``"dice"``, ...).

    Returns:
        ``cases``, ``cases_better``, ``cases_worse``, ``mean_KEY_change``, ``median_KEY_change`` and
            ``wilcoxon_p`` (1.0 with fewer than two non-zero changes).

    Raises:
        ValueError: If the two do not score the same cases.

    Examples:
        >>> a = {"x": {"iou": 0.9}, "y": {"iou": 0.8}, "z": {"iou": 0.7}}
        >>> b = {"x": {"iou": 0.8}, "y": {"iou": 0.8}, "z": {"iou": 0.6}}
        >>> r = paired_comparison(a, b)
        >>> r["cases"], r["cases_better"], round(r["mean_iou_change"], 3)
        (3, 2, 0.067)
    """
    if set(first) != set(second):
        raise ValueError(f"paired_comparison needs the same cases on both sides; only one side has "
                         f"{sorted(set(first) ^ set(second))[:5]}.")
    change = np.array([first[name][key] - second[name][key] for name in first])
    nonzero = change[change != 0]
    p_value = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else 1.0
    return {"cases": len(change), "cases_better": int((change > 0).sum()), "cases_worse": int((change < 0).sum()),
            f"mean_{key}_change": float(change.mean()), f"median_{key}_change": float(np.median(change)),
            "wilcoxon_p": p_value}
