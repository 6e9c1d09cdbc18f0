"""Tiled prediction of scenes larger than a model's tile, with overlap
blending and test-time augmentation, in bounded memory.

After MONAI's ``sliding_window_inference``: windows cover the scene (on the
model's pooling grid, the last ones shorter where the scene ends, for a model
that pools; else the last ones shifted back to end at the border); predictions
are accumulated with a
weight map and divided by the accumulated weights. The default weight map is
the overlap-tile strategy of the original U-Net (Ronneberger et al. 2015): each
window keeps only its centre, a margin of half the overlap is discarded on
every side that does not touch the scene border, so wherever the model's
context fits inside that margin the tiled result equals whole-image prediction.
A Gaussian map (soft blending, as in MONAI and nnU-Net) is an option.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence

import keras
import numpy as np

from keras_unetpp.checks import whole_number
from keras_unetpp.layers.dihedral import DIHEDRAL_TRANSFORMS, apply_dihedral, invert_dihedral
from keras_unetpp.layers.symmetries import NAMED_SYMMETRIES, symmetry_transforms
from keras_unetpp.segmenter import UNKNOWN, ModelInfo, describe_model
from keras_unetpp.values import to_model_values

#: The identity transform, as a ``(transpose, flip_up_down, flip_left_right)`` triple.
IDENTITY = (False, False, False)
#: Test-time augmentation by the image as is and mirrored left-right: for
#: subjects with an up and a down (chest films, faces, street scenes).
MIRROR_TTA = (IDENTITY, (False, False, True))

BLENDS = ("center", "gaussian", "mean")


def window_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with windows of ``tile``; the last
    window is shifted back to end exactly at ``length`` (no padding).

    Args:
        length: Scene size along the axis (>= tile).
        tile: Window size.
        stride: Step between windows, in [1, tile].

    Returns:
        Sorted start offsets.

    Examples:
        >>> window_starts(10, 4, 3)
        [0, 3, 6]
        >>> window_starts(11, 4, 3)
        [0, 3, 6, 7]
    """
    if not 1 <= stride <= tile:
        raise ValueError(f"stride must be in [1, tile={tile}] so windows leave no gaps, got {stride}.")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def window_stride(tile_size: int, overlap: float) -> int:
    """The step between neighbouring windows for a window size and overlap.

    Args:
        tile_size: Window edge in pixels (>= 1).
        overlap: Fraction of a window shared with its neighbour, in [0, 1).

    Returns:
        ``max(1, round(tile_size * (1 - overlap)))``.

    Raises:
        ValueError: For an overlap outside [0, 1) or a tile size below 1.

    Examples:
        >>> window_stride(256, 0.25)
        192
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}.")
    if int(tile_size) < 1:
        raise ValueError(f"tile_size must be >= 1, got {tile_size}.")
    return max(1, int(round(int(tile_size) * (1.0 - overlap))))


def gaussian_weights(tile: int, sigma_scale: float = 0.125, floor: float = 1e-3) -> np.ndarray:
    """Gaussian importance map of a square window, peak 1, never zero.

    The map is the outer product of two 1-D Gaussians, each floored at
    ``floor``. Flooring per axis (not the product) keeps the ratio between two
    windows that meet along the scene border, where both see a pixel at the
    same vertical offset: a product floor would make them equal there.

    Args:
        tile: Window size.
        sigma_scale: Standard deviation as a fraction of ``tile``.
        floor: Smallest 1-D weight (> 0); the smallest 2-D weight is its square.

    Returns:
        float32 (tile, tile).

    Examples:
        >>> w = gaussian_weights(8)
        >>> float(w.max()) <= 1.0 and float(w.min()) >= 1e-6
        True
    """
    centre = (tile - 1) / 2.0
    d = (np.arange(tile) - centre) / max(sigma_scale * tile, 1e-6)
    g = np.maximum(np.exp(-0.5 * d**2), floor)
    w = np.outer(g, g)
    return (w / w.max()).astype(np.float32)


def model_facts(model) -> ModelInfo:
    """``describe_model(model)``, or ``UNKNOWN`` for a model that states nothing (a subclassed
    model never called): it then decides itself what it takes."""
    try:
        return describe_model(model)
    except ValueError:
        return UNKNOWN


def _check_model_input(info: ModelInfo, shape, size, what: str) -> None:
    """A named error, before any prediction, when a model of ``info`` cannot take inputs
    of ``size`` (H, W) with the channels of an array of ``shape``."""
    info.check_input(shape, what, size)
    if info.whole_image and what.startswith("windows"):
        raise ValueError("The model resizes every input to its working size (Segmenter(working_size=...)): "
                         "it must see whole images, and tiles would each be stretched to that size. Use "
                         "model.predict on the whole image, or predict_augmented for test-time augmentation.")


def predict_tiled(
    model,
    image,
    tile_size: int = 256,
    overlap: float = 0.25,
    batch_size: int = 8,
    blend: str = "center",
    tta: bool | Sequence[tuple[bool, bool, bool]] = False,
    progress: bool | None = None,
    sigma_scale: float = 0.125,
    input_range=None,
) -> np.ndarray:
    """Predicts a scene of any size window by window and blends the windows.

    Windows are taken in row order and sent to the model in full batches of
    ``batch_size`` (a batch may span two rows of windows); the accumulated
    prediction and weight maps are the only arrays of the scene's size, so a
    20,000 x 20,000 scene needs the memory of those two buffers plus two rows
    of pixels and one batch of windows, not of all windows.

    Args:
        model: Any Keras model mapping (N, h, w, c) to (N, h, w, k), e.g. a
            [`UNetPlusPlus`][keras_unetpp.UNetPlusPlus] (with deep supervision or
            pruned). Called with ``predict_on_batch``.
        image: (H, W, C) array; any H and W. Its values become the values
            the model takes by the rule of [`keras_unetpp.values`][keras_unetpp.values]:
            uint8 is 0..255 (divided by 255 for a bare UNet++, as it is for a
            ``Segmenter``), floats must lie in the model's range, and integer
            types wider than 8 bits (uint16 scenes) need ``input_range``; the
            same rule as ``keras-unetpp predict``.
        tile_size: Window edge in pixels. A scene no larger than one window
            (and a model that takes any size) is predicted whole. For a model
            that pools (UNet++, ``size_multiple`` of ``describe_model``) it is
            rounded down to a multiple of that size.
        overlap: Fraction of a window shared with its neighbour, in [0, 1).
            For a UNet++ the step between windows is rounded down to a
            multiple of the size it pads to, and the last window of a row or
            column starts on that grid too (shorter where the scene ends, as
            whole-image prediction pads it): every window pools the same pixel
            blocks as whole-image prediction, for any scene and tile size.
        batch_size: Windows per model call.
        blend: ``"center"`` (overlap-tile: each window keeps its centre and
            discards a margin of ``(tile_size - stride) // 2`` pixels on the
            sides that do not touch the scene border; equal to whole-image
            prediction wherever the model's context fits inside that margin,
            and for UNet++ when the stride is also a multiple of ``2**depth``),
            ``"gaussian"`` (weights fall off towards a window's edge: soft
            blending that hides seams of models whose context is larger than
            the margin) or ``"mean"`` (plain average of the overlapping windows).
        tta: Test-time augmentation, each transform mapped back before
            blending: ``True`` averages over the symmetries the model declares
            (``with_preprocessing(..., symmetries=...)``), else over the 8
            dihedral transforms (``DIHEDRAL_TRANSFORMS``); a name
            (``"dihedral"``, ``"mirror"``, ``"flips"``) or a subset of those
            ``(transpose, flip_ud, flip_lr)`` triples; ``False`` for none
            ([`tta_transforms()`][keras_unetpp.inference.tta_transforms]).
        progress: Show a Keras ``Progbar``; ``None`` shows it when there are
            more than 32 windows.
        sigma_scale: Gaussian standard deviation as a fraction of the tile.
        input_range: ``(low, high)`` or ``"percentile"``: map the image onto
            the values the model takes first, by the rule of
            [`keras_unetpp.values`][keras_unetpp.values]. None: the rule's defaults.

    Returns:
        float32 (H, W, k) probability (or logit) map of the whole scene.

    Raises:
        ValueError: For an image that is not (H, W, C), a channel count or
            tile size the model cannot take, an ``overlap`` outside [0, 1),
            an unknown ``blend``, or a model whose output does not have the
            window's size.

    Examples:
        >>> import numpy as np
        >>> from keras_unetpp import UNetPlusPlus
        >>> model = UNetPlusPlus((None, None, 1), filters=(4, 8))
        >>> predict_tiled(model, np.zeros((50, 70, 1)), tile_size=32).shape
        (50, 70, 1)
    """
    array = np.asarray(image)
    if array.ndim != 3:
        raise ValueError(f"predict_tiled expects one image (H, W, C), got shape {array.shape}.")
    if 0 in array.shape:
        raise ValueError(f"predict_tiled got an empty image of shape {array.shape}.")
    _check_tiling(tile_size, batch_size, overlap, blend)
    tile = int(tile_size)
    info = model_facts(model)  # the model's facts, read once here and passed on
    _check_model_input(info, array.shape, (tile, tile), "windows (tile_size)")
    array = to_model_values(array, info.input_range, input_range, "the image")
    height, width = array.shape[:2]

    def read(top, left, bottom, right):
        return array[top:bottom, left:right]

    out = None
    for top, bottom, band in tiled_bands(model, read, height, width, tile, overlap, batch_size, blend, tta,
                                         progress, sigma_scale, info=info):
        if out is None:
            out = np.empty((height, width, band.shape[-1]), np.float32)
        out[top:bottom] = band
    return out


def tiled_bands(model, read_window, height: int, width: int, tile_size: int = 256, overlap: float = 0.25,
                batch_size: int = 8, blend: str = "center", tta: bool | Sequence[tuple[bool, bool, bool]] = False,
                progress: bool | None = None, sigma_scale: float = 0.125,
                channels: int | None = None, info: ModelInfo | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """The engine of [`predict_tiled()`][keras_unetpp.predict_tiled] for scenes
    read piece by piece: yields the prediction in horizontal bands, each as
    soon as no later window touches it.

    Windows go to the model in row-major order, in full batches that may span
    two rows of windows; the only buffers span about two rows of windows
    (``(tile_size + stride) x width x (k + 1)`` float32 values), so a scene
    of any height is segmented, and written, in bounded memory. Results equal
    ``predict_tiled`` on the whole scene, band for band.

    Args:
        model: As for ``predict_tiled``.
        read_window: ``read_window(top, left, bottom, right)`` returns the
            scene's pixels in those rows and columns (bounds inside the scene)
            as a float32 (rows, cols, C) array of the values the model takes.
        height: Scene height in pixels.
        width: Scene width in pixels.
        tile_size: Window edge.
        overlap: Fraction of a window shared with its neighbour, in [0, 1).
        batch_size: Windows per model call.
        blend: ``"center"``, ``"gaussian"`` or ``"mean"`` (see ``predict_tiled``).
        tta: Test-time augmentation, as for ``predict_tiled``.
        progress: Progress bar over windows (None: when there are more than 32).
        sigma_scale: Gaussian standard deviation as a fraction of the tile.
        channels: The scene's channel count: checked against the model's
            input (with its tile size) before anything is read.
        info: The model's facts, when the caller has read them already
            (default: ``describe_model(model)``).

    Returns:
        An iterator of ``(top, bottom, band)``: rows ``top`` to ``bottom`` of
            the prediction, a float32 (bottom - top, width, k) array; the bands
            follow each other from row 0 to ``height``. The arguments are
            checked when it is created, before any window is read.

    Raises:
        ValueError: For an ``overlap``, ``blend``, ``tta``, size or model the
            tiling cannot take (as ``predict_tiled``).

    Examples:
        >>> import numpy as np
        >>> from keras_unetpp import UNetPlusPlus
        >>> scene = np.zeros((100, 40, 1), np.float32)
        >>> model = UNetPlusPlus((None, None, 1), filters=(4, 8))
        >>> read = lambda top, left, bottom, right: scene[top:bottom, left:right]
        >>> [(top, bottom) for top, bottom, _ in tiled_bands(model, read, 100, 40, tile_size=32, batch_size=2)]
        [(0, 24), (24, 48), (48, 72), (72, 100)]
    """
    _check_tiling(tile_size, batch_size, overlap, blend)
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"The scene must have at least one pixel, got {height} x {width}.")
    info = model_facts(model) if info is None else info
    if channels is not None:
        _check_model_input(info, (int(height), int(width), int(channels)), (int(tile_size),) * 2,
                           "windows (tile_size)")
    return _bands(model, info, read_window, int(height), int(width), int(tile_size), overlap, int(batch_size), blend,
                  list(_transforms(tta, info)), progress, sigma_scale)


def _on_grid(info: ModelInfo) -> bool:
    """Windows start on the model's pooling grid and end where the scene ends (shorter there):
    a model that takes any size and pads it itself (UNet++) sees each window as it sees the whole."""
    return info.size_multiple > 1 and info.height is None and info.width is None


def grid_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of windows of ``tile`` every ``stride`` pixels, the last one the first that
    reaches ``length`` (it is shorter there); with ``stride`` a multiple of a model's pooling
    size, every start lies on its grid.

    Args:
        length: Scene size along the axis.
        tile: Window size.
        stride: Step between windows, in [1, tile].

    Returns:
        Sorted start offsets.

    Examples:
        >>> grid_starts(150, 96, 64)
        [0, 64]
        >>> grid_starts(170, 96, 64)
        [0, 64, 128]
    """
    if not 1 <= stride <= tile:
        raise ValueError(f"stride must be in [1, tile={tile}] so windows leave no gaps, got {stride}.")
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + stride)
    return starts


def _layout(height: int, width: int, tile: int, overlap: float, info: ModelInfo):
    """``(tile, stride, row starts, column starts, canvas height, canvas width)`` of the windows
    for a model of ``info``: on its pooling grid where it has one (see ``_on_grid``), else the
    last window shifted back to end at the border (the canvas edge-padded to a tile where smaller)."""
    stride = window_stride(tile, overlap)
    multiple = info.size_multiple
    if _on_grid(info):
        tile = max(multiple, tile - tile % multiple)
        stride = min(tile, max(multiple, stride - stride % multiple))
        return tile, stride, grid_starts(height, tile, stride), grid_starts(width, tile, stride), height, width
    if multiple > 1 and stride % multiple:
        stride = max(multiple, stride - stride % multiple)
    padded_h, padded_w = max(height, tile), max(width, tile)
    return (tile, stride, window_starts(padded_h, tile, stride), window_starts(padded_w, tile, stride),
            padded_h, padded_w)


def _bands(model, info, read_window, height, width, tile, overlap, batch_size, blend, transforms, progress,
           sigma_scale):
    square_or_no_transpose = height == width or not any(t[0] for t in transforms)
    if height <= tile and width <= tile and info.height is None and info.width is None and square_or_no_transpose:
        # one window holds the scene: predict it whole (edge padding to a tile would change its borders)
        whole = np.asarray(read_window(0, 0, height, width), np.float32)[None]
        yield 0, height, _predict_batches(model, whole, batch_size, transforms)[0]
        return
    tile, stride, rows, cols, padded_h, padded_w = _layout(height, width, tile, overlap, info)
    on_grid = _on_grid(info)
    margin = (tile - stride) // 2
    if blend == "center":  # per axis, once: a window's map is the outer product of its row's and column's
        row_keep = {y: _center_keep(y, tile, margin, padded_h) for y in rows}
        col_keep = {x: _center_keep(x, tile, margin, padded_w) for x in cols}
    else:
        fixed = gaussian_weights(tile, sigma_scale) if blend == "gaussian" else np.ones((tile, tile), np.float32)
    positions = [(y, x) for y in rows for x in cols]  # row-major
    total = len(positions)
    show = progress or (progress is None and total > 32)
    # a live bar on a terminal; in logs and pipes one line at the end (no ANSI escape codes)
    bar = keras.utils.Progbar(total, unit_name="window", verbose=1 if sys.stdout.isatty() else 2) if show else None

    base = 0  # the accumulators hold scene rows base .. base + len(weight_sum)
    accumulated, weight_sum = None, np.zeros((0, padded_w), np.float32)
    for start in range(0, total, int(batch_size)):  # whole batches across rows, as MONAI fills them
        chunk = positions[start : start + int(batch_size)]
        if on_grid:  # a window ends where the scene ends: windows of one size go to the model together
            prediction = _predict_by_size(model, [np.asarray(read_window(y, x, min(y + tile, height),
                                                                         min(x + tile, width)), np.float32)
                                                  for y, x in chunk], batch_size, transforms)
        else:
            windows = np.stack([_window(read_window, y, x, tile, height, width) for y, x in chunk])
            prediction = list(_predict_batches(model, windows, batch_size, transforms))
        if accumulated is None:
            accumulated = np.zeros((0, padded_w, prediction[0].shape[-1]), np.float32)
        grow = min(chunk[-1][0] + tile, padded_h) - base - len(weight_sum)
        if grow > 0:
            accumulated = np.concatenate([accumulated, np.zeros((grow, *accumulated.shape[1:]), np.float32)])
            weight_sum = np.concatenate([weight_sum, np.zeros((grow, padded_w), np.float32)])
        for (y, x), window in zip(chunk, prediction):
            h, w = window.shape[:2]
            weights = (np.outer(row_keep[y], col_keep[x]) if blend == "center" else fixed)[:h, :w]
            accumulated[y - base : y - base + h, x : x + w] += window * weights[..., None]
            weight_sum[y - base : y - base + h, x : x + w] += weights
        if bar is not None:
            bar.update(start + len(chunk))
        # rows above the next window to predict are final: no later window reaches them
        done = positions[start + len(chunk)][0] if start + len(chunk) < total else padded_h
        if done > base:
            last = min(done, height)
            if last > base:
                band = accumulated[: last - base, :width] / weight_sum[: last - base, :width, None]
                yield base, last, band
            accumulated, weight_sum = accumulated[done - base :], weight_sum[done - base :]
            base = done


def _window(read_window, y: int, x: int, tile: int, height: int, width: int) -> np.ndarray:
    """The (tile, tile, C) window at ``(y, x)``, edge-padded where the scene is
    smaller than a tile."""
    pixels = np.asarray(read_window(y, x, min(y + tile, height), min(x + tile, width)), np.float32)
    pad_h, pad_w = tile - pixels.shape[0], tile - pixels.shape[1]
    if pad_h or pad_w:
        pixels = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return pixels


def _predict_by_size(model, windows: list, batch_size: int, transforms) -> list:
    """Predictions of windows that may differ in size, in their order: windows of one size are batched."""
    out = [None] * len(windows)
    for size in dict.fromkeys(w.shape for w in windows):
        index = [i for i, w in enumerate(windows) if w.shape == size]
        prediction = _predict_batches(model, np.stack([windows[i] for i in index]), batch_size, transforms)
        for i, p in zip(index, prediction):
            out[i] = p
    return out


def _check_tiling(tile_size, batch_size, overlap, blend) -> None:
    """A named error for a tile, batch, overlap or blend the tiling cannot take."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}.")
    whole_number(tile_size, "tile_size", 1)
    whole_number(batch_size, "batch_size", 1)
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}.")


def _center_keep(start: int, tile: int, margin: int, length: int) -> np.ndarray:
    """1-D overlap-tile weights of the window at ``start`` along an axis of
    ``length``: 1 in its centre, 0 in the margins that do not touch the border
    (a window that reaches the border keeps everything up to it)."""
    keep = np.zeros(tile, np.float32)
    keep[0 if start == 0 else margin : tile if start + tile >= length else tile - margin] = 1.0
    return keep


def _replicas(model) -> int:
    """Replicas of the TensorFlow distribution strategy the model was built
    under (``Model.distribute_strategy``), 1 elsewhere (JAX shards the batch itself)."""
    strategy = getattr(model, "distribute_strategy", None)
    return max(1, int(getattr(strategy, "num_replicas_in_sync", 1) or 1))


def tta_transforms(tta, model=None) -> tuple:
    """The transforms test-time augmentation averages over.

    Args:
        tta: ``True``: the symmetries ``model`` declares (a
            [`Symmetries`][keras_unetpp.layers.Symmetries] layer, put there by
            ``with_preprocessing(..., symmetries=...)``), else the 8 dihedral
            transforms; ``False``: the identity alone; a name (``"dihedral"``,
            ``"mirror"``, ``"flips"``, ``"none"``) or a sequence of triples from
            ``DIHEDRAL_TRANSFORMS``: those.
        model: The model that will predict (only read for ``tta=True``).

    Returns:
        A tuple of ``(transpose, flip_up_down, flip_left_right)`` triples.

    Raises:
        ValueError: For anything else, naming what ``tta`` may be.

    Examples:
        >>> from keras_unetpp import UNetPlusPlus
        >>> from keras_unetpp import with_preprocessing
        >>> core = UNetPlusPlus((None, None, 1), filters=(2, 4))
        >>> len(tta_transforms(True, core)), len(tta_transforms("mirror"))
        (8, 2)
        >>> tta_transforms(True, with_preprocessing(core, channels=1, median_kernel=0, symmetries="mirror"))
        ((False, False, False), (False, False, True))
    """
    return _transforms(tta, model_facts(model) if tta is True and model is not None else UNKNOWN)


def _transforms(tta, info: ModelInfo) -> tuple:
    """``tta_transforms`` for a model whose facts were read already."""
    if tta is True:
        return info.symmetries or DIHEDRAL_TRANSFORMS
    if tta is False or tta is None:
        return (IDENTITY,)
    try:
        return symmetry_transforms(tta)
    except ValueError:
        raise ValueError(f"tta must be a bool, a name of symmetries ({sorted(NAMED_SYMMETRIES)}) or a non-empty "
                         f"sequence of triples from DIHEDRAL_TRANSFORMS, got {tta!r}.") from None


def predict_augmented(
    model,
    images,
    tta: bool | Sequence[tuple[bool, bool, bool]] = True,
    batch_size: int = 8,
    input_range=None,
) -> np.ndarray:
    """Whole-image test-time augmentation: the mean of the model's predictions
    on transformed copies of a batch, each mapped back first.

    What [`predict_tiled()`][keras_unetpp.inference.predict_tiled] does per window,
    for images that fit the model whole (chest X-rays, validation crops).
    ``model.predict`` on a flipped batch and a flip back is all it takes, but
    getting the inverse of a transposed-and-flipped prediction right is where
    hand-written TTA goes wrong; this uses the same
    [`apply_dihedral()`][keras_unetpp.layers.apply_dihedral] /
    [`invert_dihedral()`][keras_unetpp.layers.invert_dihedral] pair as the training
    augmentation.

    Args:
        model: Any Keras model mapping (N, H, W, C) to (N, H, W, k).
        images: (N, H, W, C) array (square if a transform transposes).
        tta: ``True``: the symmetries the model declares
            (``with_preprocessing(..., symmetries=...)``), else the 8 dihedral
            transforms; ``False``: the identity (plain prediction); a name
            (``"dihedral"``, ``"mirror"``, ``"flips"``) or a subset of
            ``DIHEDRAL_TRANSFORMS``, e.g. ``MIRROR_TTA`` (as is and left-right
            mirrored, for subjects that are not symmetric under rotation, such
            as chest films).
        batch_size: Images per model call.
        input_range: How the images' values become the model's, as for
            [`predict_tiled()`][keras_unetpp.inference.predict_tiled] (None: the
            rule's defaults: uint8 is 0..255, floats must lie in the model's range).

    Returns:
        float32 (N, H, W, k) mean prediction.

    Raises:
        ValueError: For images that are not (N, H, W, C), an unknown transform,
            non-square images with a transposing transform, a model that takes
            another channel count or image size, or a model whose output does not
            have the images' size.

    Examples:
        >>> import numpy as np
        >>> from keras_unetpp import UNetPlusPlus
        >>> model = UNetPlusPlus((None, None, 1), filters=(4, 8))
        >>> predict_augmented(model, np.zeros((2, 32, 32, 1)), tta=MIRROR_TTA).shape
        (2, 32, 32, 1)
    """
    array = np.asarray(images)
    if array.ndim != 4 or 0 in array.shape:
        raise ValueError(f"predict_augmented expects a batch of images (N, H, W, C), got shape {array.shape}.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    info = model_facts(model)
    _check_model_input(info, array.shape, array.shape[1:3], "images")
    array = to_model_values(array, info.input_range, input_range, "the images")
    transforms = _transforms(tta, info)
    if array.shape[1] != array.shape[2] and any(t[0] for t in transforms):
        raise ValueError(f"Transposing transforms need square images, got shape {array.shape}; "
                         f"use a subset of DIHEDRAL_TRANSFORMS without transpose (e.g. MIRROR_TTA).")
    return _predict_batches(model, array, int(batch_size), transforms)


def _predict_batches(model, windows, batch_size, transforms):
    replicas = _replicas(model)
    out = None
    for transform in transforms:
        batch_out = []
        for start in range(0, len(windows), batch_size):
            batch = apply_dihedral(windows[start : start + batch_size], *transform)
            if replicas > 1:  # predict_on_batch runs the whole batch on every replica (Keras 3.x, TensorFlow)
                # every replica needs at least one window: pad a short last batch, drop the extra outputs
                padded = np.concatenate([batch, np.repeat(batch[-1:], (-len(batch)) % replicas, axis=0)])
                pred = keras.ops.convert_to_numpy(model.predict(padded, batch_size=len(padded), verbose=0))
                pred = pred[: len(batch)]
            else:
                pred = keras.ops.convert_to_numpy(model.predict_on_batch(batch))
            if pred.ndim != 4 or tuple(pred.shape[:3]) != tuple(batch.shape[:3]):
                raise ValueError(
                    f"The model maps inputs of shape {tuple(batch.shape)} to {pred.shape}; tiled and augmented "
                    f"prediction need (N, h, w, k) outputs of the input's size."
                )
            batch_out.append(keras.ops.convert_to_numpy(invert_dihedral(pred.astype(np.float32), *transform)))
        prediction = np.concatenate(batch_out)
        out = prediction if out is None else out + prediction
    return out / len(transforms)


def count_windows(height: int, width: int, tile_size: int = 256, overlap: float = 0.25, model=None) -> int:
    """How many windows [`predict_tiled()`][keras_unetpp.inference.predict_tiled] evaluates (before TTA).

    Args:
        height: Scene height.
        width: Scene width.
        tile_size: Window edge.
        overlap: Window overlap fraction.
        model: The model that will predict: its pooling grid rounds the tile and the
            step between windows (None: a model without one).

    Returns:
        The number of windows (1 for a scene predicted whole).

    Examples:
        >>> count_windows(3072, 4608, 256, 0.25)
        384
    """
    info = UNKNOWN if model is None else model_facts(model)
    if height <= tile_size and width <= tile_size and info.height is None and info.width is None:
        return 1
    _, _, rows, cols, _, _ = _layout(int(height), int(width), int(tile_size), overlap, info)
    return len(rows) * len(cols)


