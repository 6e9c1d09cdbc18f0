"""One contract for sample weights in every loss and metric of the library.

``sample_weight`` may be per sample, ``(N,)`` or ``(N, 1)``, or per pixel,
``(N, H, W)`` or ``(N, H, W, 1)``. Every loss and metric reads it as one weight
per pixel (a per-sample weight spread over the sample's pixels), and a pixel
of weight 0 has no effect at all: not on a metric's counts, not on a loss's
value, not on its gradient. Other shapes are refused with both shapes named, and
negative or NaN weights (which would turn a loss negative or NaN) are refused
wherever the values are known (numpy arrays and eager tensors; inside a traced
graph the values are not known until it runs).
"""

from __future__ import annotations

import numpy as np
from keras import ops


def pixel_weights(sample_weight, reference):
    """``sample_weight`` as float32 weights of shape ``(N, H, W, 1)`` (broadcastable to ``reference``).

    Args:
        sample_weight: Per-sample ``(N,)`` / ``(N, 1)`` or per-pixel ``(N, H, W)`` / ``(N, H, W, 1)`` weights.
        reference: The ``(N, H, W, C)`` prediction they weigh.

    Returns:
        A float32 tensor ``(N, H, W, 1)``, or ``(N, 1, 1, 1)`` for per-sample weights.

    Raises:
        ValueError: For any other shape, naming both shapes.

    Examples:
        >>> import numpy as np
        >>> tuple(pixel_weights(np.ones(2), np.zeros((2, 4, 5, 1))).shape)
        (2, 1, 1, 1)
    """
    _refuse_bad_values(sample_weight)
    weight = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
    shape, target = tuple(weight.shape), tuple(reference.shape)
    rank = len(target)
    if shape and shape[0] is not None and target[0] is not None and shape[0] != target[0]:
        raise ValueError(f"sample_weight holds {shape[0]} sample(s) (shape {shape}), the batch {target[0]} "
                         f"(prediction of shape {target}): one weight per sample or per pixel.")
    if len(shape) in (1, 2) and (len(shape) == 1 or shape[1] in (1, None)):
        return ops.reshape(weight, (-1,) + (1,) * (rank - 1))
    if len(shape) == rank - 1:
        weight = ops.expand_dims(weight, -1)
        shape = tuple(weight.shape)
    if len(shape) == rank and shape[-1] in (1, None) and all(
            a is None or b is None or a == b for a, b in zip(shape[:-1], target[:-1])):
        return weight
    raise ValueError(f"sample_weight of shape {tuple(ops.shape(sample_weight))} fits neither per-sample (N,) nor "
                     f"per-pixel (N, H, W) weights of a prediction of shape {target}.")


def _refuse_bad_values(sample_weight) -> None:
    """Raises a ValueError for negative or NaN weights, where their values are known."""
    try:
        values = np.asarray(ops.convert_to_numpy(sample_weight), np.float64)
    except Exception:  # a symbolic tensor inside a traced function: its values are not known here
        return
    if np.isnan(values).any():
        raise ValueError(f"sample_weight holds {int(np.isnan(values).sum())} NaN value(s); weights are numbers >= 0.")
    if (values < 0).any():
        raise ValueError(f"sample_weight holds negative values (min {values.min():g}); weights are >= 0 "
                         "(0: the pixel or sample has no effect).")
