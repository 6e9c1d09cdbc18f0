"""What a value means, in one place: input values, binary masks and class labels.

Every loader, loss, metric, report, the command line and the GeoTIFF path call these
functions; none decides again. Each rule has a numpy version (files, reports, the command)
and, where it also runs inside a model or a loss, a tensor version written with ``keras.ops``.

**Input values.** A model states which values it takes
([`ModelInfo.input_range`][keras_unetpp.segmenter.ModelInfo]): a bare ``UNetPlusPlus`` takes
images in [0, 1]; a [`Segmenter`][keras_unetpp.Segmenter] takes raw 8-bit values, 0 to 255
(or the range it was saved with). [`to_model_values()`][keras_unetpp.values.to_model_values]
maps an image onto that range by one rule:

1. ``input_range=(low, high)``: values from ``low`` to ``high`` become the model's range,
   linearly; values outside are clipped. ``input_range="percentile"``: the same with each
   band's 2nd and 98th percentile (a contrast stretch); pixels marked invalid (nodata) are
   left out of the percentiles.
2. Otherwise 8-bit integers are 0..255: divided by 255 for a [0, 1] model, as they are for a
   0..255 model.
3. Other integer types (uint16, int16, ...) go in as they are when the model takes a range
   wider than 8 bits and they lie inside it (a segmenter trained on 12-bit scenes takes 0..4095:
   the same sensor's files need no option). Otherwise they are refused: a 12-bit scene and a
   16-bit one need different scales, and a guess gave masks that were 100 % foreground. The
   message names the model's range and ``input_range``.
4. Floats go in as they are if they lie in the model's range, and are refused otherwise.

A model that does not say which values it takes (one built outside this library) gets 8-bit
and float values as they are; rule 3 still applies.

**Binary masks.** A true mask holds 0/1, 0/255 or booleans
([`foreground()`][keras_unetpp.values.foreground]); any other integer value is refused (an
8-bit probability map or a class-index image would otherwise pass as a mask), and a JPEG
mask is named as the cause (compression scatters values around 0 and 255). Float maps are
probabilities: foreground where ``>= threshold``
([`predicted_labels()`][keras_unetpp.values.predicted_labels] gives the mask a prediction stands
for: 0/1, or the most probable class). In a loss or a metric
([`binary_targets()`][keras_unetpp.values.binary_targets]) a batch whose maximum exceeds 1 is
an integer-coded mask (foreground where positive); otherwise values in [0, 1] are soft labels
and count as foreground where ``>= 0.5``.

**Class labels.** With ``C`` classes, a label outside ``0..C-1`` (``IGNORE_LABEL`` = 255, as
Keras' ``ignore_class`` is commonly set, or -1) and an all-zero one-hot row mark a pixel as
ignored: it has weight 0 in the loss, in ``MulticlassIoU`` and in reports alike
([`label_targets()`][keras_unetpp.values.label_targets]).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from keras import ops

#: Each band's percentiles that ``input_range="percentile"`` maps onto the model's range.
PERCENTILES = (2.0, 98.0)
#: The label that marks a pixel to ignore (any label outside 0..C-1 is ignored alike).
IGNORE_LABEL = 255
#: File types whose compression changes pixel values: masks saved so are refused by name.
LOSSY_SUFFIXES = (".jpg", ".jpeg")
_TOLERANCE = 1e-3


# --- input values -------------------------------------------------------------------------------


def resolve_input_range(image: np.ndarray, input_range, valid=None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(low, high)`` per band from ``input_range`` (None, a pair, or ``"percentile"``).

    Args:
        image: (H, W, C) values (only read for ``"percentile"``).
        input_range: None, ``(low, high)`` (numbers, or one value per band) or ``"percentile"``.
        valid: Optional (H, W) bool array: only these pixels enter the percentiles (a
            GeoTIFF's nodata mask), so a scene that is mostly nodata is stretched by its data.

    Returns:
        None, or two float64 arrays of one value per band.

    Raises:
        ValueError: For a pair with ``low >= high`` or an unknown string.

    Examples:
        >>> image = np.stack([np.arange(101.0)] * 2, -1)[None]
        >>> [v.tolist() for v in resolve_input_range(image, "percentile")]
        [[2.0, 2.0], [98.0, 98.0]]
    """
    if input_range is None:
        return None
    channels = np.shape(image)[-1]
    if isinstance(input_range, str):
        if input_range != "percentile":
            raise ValueError(f"input_range must be (low, high) or 'percentile', got {input_range!r}.")
        flat = np.asarray(image, np.float64).reshape(-1, channels)
        if valid is not None:
            flat = flat[np.asarray(valid, bool).reshape(-1)]
        if not len(flat):
            return np.zeros(channels), np.ones(channels)  # nothing valid: nothing will be read either
        low, high = np.percentile(flat, PERCENTILES, axis=0)
        high = np.where(high > low, high, low + 1.0)  # a flat band maps to the bottom of the range
        return low, high
    try:
        low, high = (np.broadcast_to(np.asarray(v, np.float64), (channels,)) for v in input_range)
    except (TypeError, ValueError):
        raise ValueError(f"input_range must be (low, high) or 'percentile', got {input_range!r}.") from None
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
        raise ValueError(f"input_range needs finite low < high, got ({low.tolist()}, {high.tolist()}).")
    return low, high


def to_model_values(image, model_range: tuple[float, float] | None, input_range=None, source: str = "the input",
                    option: str = "input_range", bounds=None) -> np.ndarray:
    """``image`` as the values a model takes (a new float32 array; the input is not modified).

    Args:
        image: (..., H, W, C) array of any numeric dtype.
        model_range: ``(low, high)`` of the values the model takes
            ([`ModelInfo.input_range`][keras_unetpp.segmenter.ModelInfo]), or None when it does not say.
        input_range: None, ``(low, high)`` or ``"percentile"`` (rule 1 of the module).
        source: How messages name the data (a file name).
        option: How messages name the option (``"--input-range"`` on the command line).
        bounds: ``(low, high)`` per band already resolved (e.g. a whole scene's percentiles
            for one of its windows); replaces ``input_range``.

    Returns:
        float32 array of the same shape.

    Raises:
        ValueError: For an integer type wider than 8 bits without ``input_range`` (unless the
            model takes a wider range and the values lie in it), floats outside the model's
            range, or booleans; the message says what to pass.

    Examples:
        >>> float(to_model_values(np.full((1, 1, 3), 255, np.uint8), (0.0, 1.0))[0, 0, 0])
        1.0
        >>> float(to_model_values(np.full((1, 1, 3), 2000, np.uint16), (0.0, 1.0), (0, 4000))[0, 0, 0])
        0.5
    """
    array = np.asarray(image)
    if bounds is None:
        bounds = resolve_input_range(array, input_range)
    if bounds is not None:
        low, high = bounds
        unit = np.clip((array.astype(np.float64) - low) / (high - low), 0.0, 1.0)
        return _scale_unit(unit, model_range).astype(np.float32)
    if array.dtype == np.bool_:
        raise ValueError(f"{source} is boolean; a segmentation model takes image values, not a mask.")
    if array.dtype == np.uint8:
        if model_range is None:
            return array.astype(np.float32)
        return _scale_unit(array.astype(np.float64) / 255.0, model_range).astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        wide = model_range is not None and model_range[1] > 255
        if wide and model_range[0] <= low and high <= model_range[1]:
            return array.astype(np.float32)   # the model's own raw values (rule 3)
        made_for = (f"values {model_range[0]:g}..{model_range[1]:g}" if wide else "values 0..255 (8-bit)"
                    if model_range is None or model_range[1] > 1 else "8-bit images (0..255)")
        raise ValueError(
            f"{source} holds {array.dtype} values (min {low}, max {high}); the model was made for {made_for}. "
            f"Say how to map them: {option} LOW HIGH (e.g. {option} 0 {_suggested_high(high)} for "
            f"{_bits(high)}-bit data) or {option} percentile (each band's 2nd-98th percentile).")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{source} has dtype {array.dtype}; expected integer or float image values.")
    values = array.astype(np.float32)
    check_model_range(values, model_range, source, option)
    return values


def check_model_range(values: np.ndarray, model_range, source: str = "the input", option: str = "input_range"):
    """Refuses float ``values`` outside ``model_range`` (NaN aside), naming the range and the option.

    Args:
        values: Float array.
        model_range: ``(low, high)`` or None (nothing to check).
        source: How the message names the data.
        option: How the message names the option that maps values.

    Raises:
        ValueError: For values outside the range (beyond a relative tolerance of 1e-3).
    """
    if model_range is None or not np.size(values):
        return
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    target = model_range
    if low < target[0] - _TOLERANCE * max(1.0, target[1]) or high > target[1] * (1 + _TOLERANCE):
        raise ValueError(
            f"{source} holds float values from {low:g} to {high:g}; the model takes {target[0]:g}..{target[1]:g}. "
            f"Scale the data, or pass {option} LOW HIGH to map LOW..HIGH onto the model's range.")


def _scale_unit(unit: np.ndarray, target) -> np.ndarray:
    """Values in [0, 1] mapped onto ``target`` ((0, 255) when the model does not say)."""
    low, high = target if target is not None else (0.0, 255.0)
    return low + unit * (high - low)


def _bits(value: int) -> int:
    return max(8, int(np.ceil(np.log2(max(value, 1) + 1))))


def _suggested_high(value: int) -> int:
    return 2 ** _bits(value) - 1


def dtype_range(dtype) -> tuple[float, float]:
    """The value range an image of ``dtype`` is read in: 0..255 for uint8, [0, 1] for floats.

    Augmentation layers that change intensities (brightness, contrast, noise) work in this
    range, so a uint8 image stays a 0..255 image.

    Args:
        dtype: A numpy or Keras dtype (or its name).

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: For integer types other than uint8 (their range is the data's, not the type's).

    Examples:
        >>> dtype_range("uint8"), dtype_range(np.float32), dtype_range("bfloat16")
        ((0.0, 255.0), (0.0, 1.0), (0.0, 1.0))
    """
    name = dtype if isinstance(dtype, str) else getattr(dtype, "name", None) or np.dtype(dtype).name
    if name == "uint8":
        return 0.0, 255.0
    if name.startswith(("float", "bfloat")):
        return 0.0, 1.0
    raise ValueError(f"Images of dtype {name} have no fixed value range; convert them to float in [0, 1] "
                     f"(keras_unetpp.values.to_model_values with input_range) or to uint8 first.")


# --- binary masks ------------------------------------------------------------------------------


def single_channel(mask, name: str = "mask") -> np.ndarray:
    """The (H, W) view of a (H, W) or (H, W, 1) numeric or boolean mask (no copy).

    Args:
        mask: Array-like mask or probability map.
        name: How error messages call it.

    Returns:
        A 2-D array sharing memory with ``mask`` where possible.

    Raises:
        ValueError: For another shape or a non-numeric dtype.

    Examples:
        >>> single_channel(np.zeros((2, 3, 1))).shape
        (2, 3)
    """
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask (H, W) or (H, W, 1), got shape {np.shape(mask)}.")
    if array.dtype != bool and not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be numeric or boolean, got dtype {array.dtype}.")
    return array


def foreground(mask, threshold: float = 0.5, source: str | Path | None = None) -> np.ndarray:
    """Which pixels are foreground: bool as is, integers non-zero (0/1 and 0/255 masks;
    any other value refused), floats ``>= threshold``.

    Args:
        mask: Array of any shape.
        threshold: Foreground threshold for probabilities (floats).
        source: The file the mask came from, named in messages (a JPEG is named as the cause).

    Returns:
        bool array of the same shape.

    Raises:
        ValueError: If a float mask contains NaN (it would silently count as
            background), or an integer mask a value other than 0, 1 and 255.

    Examples:
        >>> foreground(np.array([0, 1, 255], np.uint8)).tolist(), foreground(np.array([0.2, 0.5])).tolist()
        ([False, True, True], [False, True])
    """
    array = np.asarray(mask)
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.integer):
        stray = (array != 0) & (array != 1) & (array != 255)
        if stray.any():
            values = np.unique(array[stray])
            where = f"{source} holds" if source is not None else "An integer mask holds"
            if source is not None and Path(source).suffix.lower() in LOSSY_SUFFIXES:
                raise ValueError(
                    f"{where} values other than 0, 1 and 255 ({int(stray.sum())} pixel(s), e.g. "
                    f"{values[:5].tolist()}): it is a JPEG, whose compression scatters mask values around 0 "
                    f"and 255, so its edges are not the ones drawn. Save masks as PNG (lossless).")
            raise ValueError(
                f"{where} values other than 0, 1 and 255 ({int(stray.sum())} pixel(s), e.g. "
                f"{values[:5].tolist()}): masks are 0/1 or 0/255. A probability map saved as 8 bits? Pass it "
                f"as floats (divide by 255) so the threshold applies; class indices? compare with the class "
                f"you want (mask == k)."
            )
        return array > 0
    if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
        raise ValueError(
            f"The mask or probability map contains {int(np.isnan(array).sum())} NaN value(s) "
            f"(shape {array.shape}); a diverged model? NaN is neither foreground nor background."
        )
    return array >= threshold


def predicted_labels(probabilities, threshold: float = 0.5) -> np.ndarray:
    """The mask a prediction stands for: 1/0 foreground of a one-channel map (``>= threshold``,
    by [`foreground()`][keras_unetpp.values.foreground], so NaN is refused), the most probable
    class of a map with several channels.

    Args:
        probabilities: (..., C) map; C = 1 for a binary model.
        threshold: Foreground threshold of a binary map.

    Returns:
        uint8 array of shape (...): 0/1, or class indices.

    Raises:
        ValueError: For a binary map holding NaN.

    Examples:
        >>> predicted_labels(np.array([[[0.2], [0.7]]])).tolist()
        [[0, 1]]
        >>> predicted_labels(np.array([[[0.1, 0.3, 0.6], [0.5, 0.4, 0.1]]])).tolist()
        [[2, 0]]
    """
    array = np.asarray(probabilities)
    if array.shape[-1] == 1:
        return foreground(array[..., 0], threshold).astype(np.uint8)
    return np.argmax(array, axis=-1).astype(np.uint8)


def binary_targets(y_true):
    """The tensor twin of [`foreground()`][keras_unetpp.values.foreground] for losses: float32 targets in [0, 1].

    A batch whose maximum exceeds 1 is an integer-coded mask (0/255): foreground where
    positive. Otherwise values in [0, 1] are kept (soft labels); negative values (-1 as
    background) are background. Inside a graph a stray value cannot raise, so it counts as
    foreground where positive, never as a fraction of 255.

    Args:
        y_true: Tensor of any shape.

    Returns:
        float32 tensor of the same shape.

    Examples:
        >>> [float(v) for v in binary_targets(np.array([0, 255, 2], "uint8"))]
        [0.0, 1.0, 1.0]
    """
    y_true = ops.maximum(ops.cast(ops.convert_to_tensor(y_true), "float32"), 0.0)
    return ops.where(ops.max(y_true) > 1.0, ops.cast(y_true > 0, "float32"), y_true)


def binary_truth(y_true):
    """Hard foreground (float32 0/1) of true masks, for metrics: ``binary_targets(y_true) >= 0.5``.

    Args:
        y_true: Tensor of any shape.

    Returns:
        float32 tensor of 0 and 1.

    Examples:
        >>> [float(v) for v in binary_truth(np.array([0.0, 0.4, 0.6, 1.0], "float32"))]
        [0.0, 0.0, 1.0, 1.0]
    """
    return ops.cast(binary_targets(y_true) >= 0.5, "float32")


def mask_from_file(values: np.ndarray, source: str | Path) -> np.ndarray:
    """A binary mask read from a file, as (H, W) uint8 0/1, by the rule of
    [`foreground()`][keras_unetpp.values.foreground].

    Args:
        values: The file's pixels, (H, W) or (H, W, 1) (grey or a single-channel PNG).
        source: The file (named in messages; a JPEG is named as the cause of stray values).

    Returns:
        (H, W, 1) uint8 array of 0 and 1.

    Raises:
        ValueError: For values other than 0, 1 and 255.

    Examples:
        >>> mask_from_file(np.array([[0, 255]], np.uint8), "m.png")[..., 0].tolist()
        [[0, 1]]
    """
    return foreground(single_channel(values, str(source)), source=source).astype(np.uint8)[..., None]


# --- class labels ------------------------------------------------------------------------------


def label_targets(y_true, num_classes: int, rank: int | None = None):
    """One-hot targets and the pixels that count, from integer labels or one-hot rows (tensors).

    Integer labels (``(..., 1)`` or without a channel axis): a label outside
    ``0..num_classes-1`` (``IGNORE_LABEL``, -1) is ignored. One-hot rows (``(..., C)``, 0/1 or
    0/255): an all-zero row is ignored.

    Args:
        y_true: Labels or one-hot rows.
        num_classes: ``C`` (>= 2).
        rank: The prediction's rank: ``y_true`` of that rank with ``C`` channels is one-hot
            (default: any ``y_true`` whose last axis has ``C`` entries).

    Returns:
        ``(one_hot, valid)``: float32 ``(..., C)`` and float32 ``(..., 1)`` (1 where the pixel counts).

    Examples:
        >>> one_hot, valid = label_targets(np.array([[0], [2], [255]]), 3)
        >>> np.asarray(one_hot).tolist(), np.asarray(valid)[:, 0].tolist()
        ([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]], [1.0, 1.0, 0.0])
    """
    y_true = ops.convert_to_tensor(y_true)
    if y_true.shape[-1] == num_classes and rank in (None, len(y_true.shape)):
        rows = binary_targets(y_true)  # 0/255 one-hot read as 0/1
        valid = ops.cast(ops.sum(rows, axis=-1, keepdims=True) > 0, "float32")
        return rows, valid
    if rank is not None and len(y_true.shape) == rank:
        if y_true.shape[-1] != 1:
            raise ValueError(f"Multi-class y_true must be one-hot with {num_classes} channels or integer labels "
                             f"with one channel; got shape {tuple(y_true.shape)}.")
        y_true = ops.squeeze(y_true, -1)
    elif rank is None and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    labels = ops.cast(y_true, "int32")
    inside = ops.logical_and(labels >= 0, labels < num_classes)
    rows = ops.one_hot(ops.where(inside, labels, 0), num_classes, dtype="float32")
    valid = ops.expand_dims(ops.cast(inside, "float32"), -1)
    return rows * valid, valid


def valid_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The numpy twin of [`label_targets()`][keras_unetpp.values.label_targets]'s ``valid``: which pixels count.

    Args:
        labels: Integer labels (any shape) or one-hot rows (``(..., C)``).
        num_classes: ``C``.

    Returns:
        bool array: labels inside ``0..C-1``, or one-hot rows with a non-zero entry.

    Examples:
        >>> valid_labels(np.array([0, 2, 3, 255, -1]), 3).tolist()
        [True, True, False, False, False]
    """
    array = np.asarray(labels)
    if array.ndim and array.shape[-1] == num_classes and num_classes > 1:
        return np.any(array > 0, axis=-1)
    return (array >= 0) & (array < num_classes)


def labels_from_file(values: np.ndarray, num_classes: int, source: str | Path) -> np.ndarray:
    """A class-index mask read from a file: labels ``0..C-1``, and ``IGNORE_LABEL`` for pixels to leave out.

    Args:
        values: The file's pixels, (H, W) or (H, W, 1).
        num_classes: ``C``.
        source: The file (named in messages).

    Returns:
        (H, W, 1) uint8 array of the labels.

    Raises:
        ValueError: For labels outside ``0..C-1`` other than ``IGNORE_LABEL`` (the class count named).

    Examples:
        >>> labels_from_file(np.array([[0, 2, 255]], np.uint8), 3, "m.png")[..., 0].tolist()
        [[0, 2, 255]]
    """
    labels = single_channel(values, str(source))
    stray = np.setdiff1d(np.unique(labels), np.r_[np.arange(num_classes), IGNORE_LABEL])
    if stray.size:
        raise ValueError(f"{source} holds labels {stray[:5].tolist()} outside 0..{num_classes - 1} and "
                         f"{IGNORE_LABEL} (ignored); is --classes {num_classes} right?")
    return labels.astype(np.uint8)[..., None]


def any_class_foreground(labels: np.ndarray, probabilities: np.ndarray, num_classes: int):
    """A multi-class truth and prediction as one binary pair, for a report and an error map: foreground
    is any class but 0 (the background), and ignored pixels count on neither side.

    Args:
        labels: (H, W) or (H, W, 1) integer labels of the truth.
        probabilities: (H, W, C) class probabilities.
        num_classes: ``C``.

    Returns:
        ``(truth, prediction)``: (H, W) uint8 0/1 and (H, W, 1) float32 0/1, 0 where the label is ignored.

    Examples:
        >>> truth, pred = any_class_foreground(np.array([[0, 2, 255]]), np.eye(3)[[[1, 2, 2]]], 3)
        >>> truth.tolist(), pred[..., 0].tolist()
        ([[0, 1, 0]], [[1.0, 1.0, 0.0]])
    """
    labels = np.asarray(labels)
    labels = labels[..., 0] if labels.ndim == 3 else labels
    keep = valid_labels(labels[..., None], num_classes)[..., 0]   # a channel axis: never read as one-hot rows
    truth = ((labels > 0) & keep).astype(np.uint8)
    prediction = ((np.asarray(probabilities).argmax(-1) > 0) & keep).astype(np.float32)[..., None]
    return truth, prediction

