"""Input values mapped onto the range a model was made for, by one written rule.

A model of this library states which values it takes
([`describe_model()`][keras_unetpp.model_info.describe_model]): a bare
``UNetPlusPlus`` takes images in [0, 1]; a model saved with its preprocessing
(``with_preprocessing``) takes raw 8-bit values, 0 to 255. Images arrive as
8-bit or 16-bit files, GeoTIFFs of any integer type, or float arrays. The rule:

1. ``input_range=(low, high)``: values from ``low`` to ``high`` become the
   model's range, linearly; values outside are clipped.
   ``input_range="percentile"``: the same with each band's 2nd and 98th
   percentile as ``low`` and ``high`` (a contrast stretch, as Raster Vision's
   analyse step computes per band).
2. Otherwise, 8-bit integers are 0..255 (divided by 255 for a [0, 1] model).
3. Other integer types (uint16, int16, ...) are refused: a 12-bit scene and a
   16-bit one need different scales, and guessing gave masks that were
   100 % foreground. The message names ``input_range``.
4. Floats go in as they are, if they lie in the model's range (refused otherwise).

A model that does not say which values it takes (one built outside this
library) gets its values as they are, 8-bit or float; rule 3 still applies.
"""

from __future__ import annotations

import numpy as np

from keras_unetpp.model_info import ModelInfo

PERCENTILES = (2.0, 98.0)
_TOLERANCE = 1e-3


def resolve_input_range(image: np.ndarray, input_range) -> tuple[np.ndarray, np.ndarray] | None:
    """``(low, high)`` per band from ``input_range`` (None, a pair, or ``"percentile"``).

    Args:
        image: (H, W, C) values (only read for ``"percentile"``).
        input_range: None, ``(low, high)`` (numbers, or one value per band) or ``"percentile"``.

    Returns:
        None, or two float64 arrays of one value per band.

    Raises:
        ValueError: For a pair with ``low >= high`` or an unknown string.
    """
    if input_range is None:
        return None
    channels = np.shape(image)[-1]
    if isinstance(input_range, str):
        if input_range != "percentile":
            raise ValueError(f"input_range must be (low, high) or 'percentile', got {input_range!r}.")
        flat = np.asarray(image, np.float64).reshape(-1, channels)
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


def to_model_values(image, info: ModelInfo, input_range=None, source: str = "the input",
                    option: str = "input_range") -> np.ndarray:
    """``image`` as the values ``info``'s model takes (a new float32 array; the input is not modified).

    Args:
        image: (..., H, W, C) array of any numeric dtype.
        info: The model's [`ModelInfo`][keras_unetpp.model_info.ModelInfo].
        input_range: None, ``(low, high)`` or ``"percentile"`` (rule 1 of the module).
        source: How messages name the data (a file name).
        option: How messages name the option (``"--input-range"`` on the command line).

    Returns:
        float32 array of the same shape.

    Raises:
        ValueError: For an integer type wider than 8 bits without ``input_range``,
            floats outside the model's range, or booleans; the message says what to pass.

    Examples:
        >>> from keras_unetpp.model_info import ModelInfo
        >>> info = ModelInfo(3, None, None, 1, False, (0.0, 1.0))
        >>> float(to_model_values(np.full((1, 1, 3), 255, np.uint8), info)[0, 0, 0])
        1.0
        >>> float(to_model_values(np.full((1, 1, 3), 2000, np.uint16), info, (0, 4000))[0, 0, 0])
        0.5
    """
    array = np.asarray(image)
    target = info.input_range
    bounds = resolve_input_range(array, input_range)
    if bounds is not None:
        low, high = bounds
        unit = np.clip((array.astype(np.float64) - low) / (high - low), 0.0, 1.0)
        return _scale_unit(unit, target).astype(np.float32)
    if array.dtype == np.bool_:
        raise ValueError(f"{source} is boolean; a segmentation model takes image values, not a mask.")
    if array.dtype == np.uint8:
        return _scale_unit(array.astype(np.float64) / 255.0, target).astype(np.float32) if target else \
            array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        made_for = "values 0..255 (8-bit)" if target is None or target[1] > 1 else "8-bit images (0..255)"
        raise ValueError(
            f"{source} holds {array.dtype} values (min {low}, max {high}); the model was made for {made_for}. "
            f"Say how to map them: {option} LOW HIGH (e.g. {option} 0 {_suggested_high(high)} for "
            f"{_bits(high)}-bit data) or {option} percentile (each band's 2nd-98th percentile).")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{source} has dtype {array.dtype}; expected integer or float image values.")
    values = array.astype(np.float32)
    if target is not None and values.size:
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if low < target[0] - _TOLERANCE * max(1.0, target[1]) or high > target[1] * (1 + _TOLERANCE):
            raise ValueError(
                f"{source} holds float values from {low:g} to {high:g}; the model takes {target[0]:g}..{target[1]:g}. "
                f"Scale the data, or pass {option} LOW HIGH to map LOW..HIGH onto the model's range.")
    return values


def _scale_unit(unit: np.ndarray, target) -> np.ndarray:
    """Values in [0, 1] mapped onto ``target`` ((0, 255) when the model does not say)."""
    low, high = target if target is not None else (0.0, 255.0)
    return low + unit * (high - low)


def _bits(value: int) -> int:
    return max(8, int(np.ceil(np.log2(max(value, 1) + 1))))


def _suggested_high(value: int) -> int:
    return 2 ** _bits(value) - 1
