"""Input preprocessing that travels inside the saved model: value scaling,
median blur and a reduced working scale.

A model trained on preprocessed crops forgets nothing at prediction time if
the same steps are part of the ``.keras`` file: [`with_preprocessing()`][keras_unetpp.models.with_preprocessing]
wraps a trained model so that it takes raw images (e.g. uint8 RGB scenes) and
returns probabilities at the input's full resolution, and
[`preprocess_images()`][keras_unetpp.models.preprocess_images] applies exactly the same layers to whole training
images, so training and inference cannot drift apart.

Working scale ``1 / downsample``: the image is area-averaged by an integer
factor (``AveragePooling2D``), the model runs there, and its probabilities
are bilinearly upsampled back to the input's size. Steps cost
``downsample**2`` times less and every pixel sees ``downsample`` times more
context, which suits large objects such as the buildings of aerial scenes.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from keras_unetpp.layers.median_blur import MedianBlur
from keras_unetpp.layers.symmetries import Symmetries
from keras_unetpp.models.blocks import BilinearUpsampling, CropToReference, PadToMultiple, bilinear_resize_axis


def _check(input_scale: float, median_kernel: int, downsample: int) -> None:
    if not np.isfinite(input_scale) or input_scale <= 0:
        raise ValueError(f"input_scale must be a positive number, got {input_scale}.")
    if int(median_kernel) < 0 or (int(median_kernel) > 1 and int(median_kernel) % 2 == 0):
        raise ValueError(f"median_kernel must be 0, 1 or an odd size, got {median_kernel}.")
    if int(downsample) != downsample or int(downsample) < 1:
        raise ValueError(f"downsample must be a positive integer (working scale 1/downsample), got {downsample}.")


def preprocessing_layers(input_scale: float = 1 / 255, median_kernel: int = 5, downsample: int = 1) -> list:
    """The preprocessing steps as Keras layers, in order.

    Args:
        input_scale: Multiplies the raw values (``1/255`` maps uint8 to [0, 1]).
        median_kernel: Median blur window (odd); 0 or 1 for none.
        downsample: Integer factor of the working scale (1 keeps full size).

    Returns:
        A list of layers: ``Rescaling``, optionally ``MedianBlur``, and for
            ``downsample > 1`` padding to a multiple of it and ``AveragePooling2D``.

    Raises:
        ValueError: For a non-positive scale, an even kernel or a
            non-integer ``downsample``.

    Examples:
        >>> [type(layer).__name__ for layer in preprocessing_layers(downsample=2)]
        ['Rescaling', 'MedianBlur', 'PadToMultiple', 'AveragePooling2D']
    """
    _check(input_scale, median_kernel, downsample)
    steps = [layers.Rescaling(float(input_scale), name="input_scale")]
    if int(median_kernel) > 1:
        steps.append(MedianBlur(int(median_kernel), name="median_blur"))
    if int(downsample) > 1:
        steps.append(PadToMultiple(int(downsample), name="pad_to_working_scale"))
        steps.append(layers.AveragePooling2D(int(downsample), name="to_working_scale"))
    return steps


def preprocess_images(images, input_scale: float = 1 / 255, median_kernel: int = 5, downsample: int = 1) -> np.ndarray:
    """Applies the preprocessing of [`with_preprocessing()`][keras_unetpp.models.with_preprocessing] to images, e.g.
    whole training images before cropping.

    Args:
        images: (H, W, C) or (N, H, W, C) array (not modified).
        input_scale: As in [`preprocessing_layers()`][keras_unetpp.models.preprocessing_layers].
        median_kernel: As in [`preprocessing_layers()`][keras_unetpp.models.preprocessing_layers].
        downsample: As in [`preprocessing_layers()`][keras_unetpp.models.preprocessing_layers].

    Returns:
        float32 array of the same rank, height and width divided by
            ``downsample`` (rounded up).

    Examples:
        >>> x = np.full((5, 8, 3), 255, np.uint8)
        >>> y = preprocess_images(x, downsample=2)
        >>> y.shape, float(y[0, 0, 0])
        ((3, 4, 3), 1.0)
    """
    array = np.asarray(images)
    if array.ndim not in (3, 4):
        raise ValueError(f"preprocess_images expects (H, W, C) or (N, H, W, C), got shape {array.shape}.")
    x = array[None] if array.ndim == 3 else array
    x = keras.ops.convert_to_tensor(x.astype(np.float32))
    for layer in preprocessing_layers(input_scale, median_kernel, downsample):
        x = layer(x)
    out = np.asarray(keras.ops.convert_to_numpy(x), np.float32)
    return out[0] if array.ndim == 3 else out


def downsample_masks(masks, downsample: int) -> np.ndarray:
    """Binary masks at the working scale: the foreground fraction of each
    ``downsample`` x ``downsample`` block (zero-padded at the bottom/right,
    like the images), thresholded at one half.

    Args:
        masks: (H, W, 1) or (H, W) array of 0/1 (or 0/255) values.
        downsample: Integer factor.

    Returns:
        uint8 0/1 array, (ceil(H / downsample), ceil(W / downsample), 1).

    Examples:
        >>> m = np.zeros((4, 4, 1), np.uint8); m[:2, :2] = 1; m[2, 2] = 1
        >>> downsample_masks(m, 2)[..., 0].tolist()
        [[1, 0], [0, 0]]
    """
    _check(1.0, 0, downsample)
    array = np.asarray(masks)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"downsample_masks expects (H, W) or (H, W, 1), got shape {np.shape(masks)}.")
    k = int(downsample)
    fg = (array > 0).astype(np.float32)
    h, w = fg.shape[:2]
    padded = np.zeros((-(-h // k) * k, -(-w // k) * k, fg.shape[2]), np.float32)
    padded[:h, :w] = fg
    blocks = padded.reshape(padded.shape[0] // k, k, padded.shape[1] // k, k, -1).mean(axis=(1, 3))
    return (blocks >= 0.5).astype(np.uint8)


@keras.saving.register_keras_serializable(package="keras_unetpp")
class AreaResize(layers.Layer):
    """Resizes images to ``(height, width)`` by area averaging, on every backend.

    Each output pixel is the mean of the input area it covers (fractional
    pixels weighted by their overlap): OpenCV's ``INTER_AREA`` for shrinking,
    which is how [`resized_arrays()`][keras_unetpp.datasets.resized_arrays]
    prepares training images, so a model that resizes inside sees what it was
    trained on. Keras' ``Resizing(interpolation="area")`` exists on TensorFlow
    only; this layer is two matrix products built from the input's run-time size.

    Args:
        height: Output height.
        width: Output width.
        **kwargs: Standard layer arguments.

    Examples:
        >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        >>> AreaResize(2, 2)(x)[0, :, :, 0].numpy().tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """

    def __init__(self, height: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)

    @staticmethod
    def _weights(size_in, size_out: int):
        """(size_out, size_in) overlap fractions of output cells with input pixels, rows summing to 1."""
        scale = keras.ops.cast(size_in, "float32") / float(size_out)
        start = keras.ops.arange(size_out, dtype="float32")[:, None] * scale
        pixel = keras.ops.arange(size_in, dtype="float32")[None, :]
        overlap = keras.ops.minimum(pixel + 1.0, start + scale) - keras.ops.maximum(pixel, start)
        return keras.ops.maximum(overlap, 0.0) / scale

    def call(self, x):
        shape = keras.ops.shape(x)
        rows = self._weights(shape[1], self.height)  # (H', H)
        cols = self._weights(shape[2], self.width)   # (W', W)
        x = keras.ops.cast(x, "float32")
        return keras.ops.einsum("ph,nhwc,qw->npqc", rows, x, cols)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


@keras.saving.register_keras_serializable(package="keras_unetpp")
class ResizeToReference(layers.Layer):
    """Resizes ``x`` (bilinear) to the height and width of ``reference``, whatever they are at run time.

    Bilinear interpolation with half-pixel centres and edge clamping (what
    ``keras.ops.image.resize(..., "bilinear")`` computes), from the run-time
    sizes (``keras_unetpp.models.blocks.bilinear_resize_axis``):
    ``keras.ops.image.resize`` needs the output size as Python integers, which
    a traced function that has seen several film sizes (TensorFlow relaxes
    them to ``None``) does not have.

    Args:
        **kwargs: Standard layer arguments.

    Examples:
        >>> x = np.ones((1, 4, 4, 2), "float32")
        >>> ref = np.ones((1, 10, 7, 1), "float32")
        >>> tuple(ResizeToReference()([x, ref]).shape)
        (1, 10, 7, 2)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def call(self, inputs):
        x, reference = inputs
        size_out = keras.ops.shape(reference)
        x = bilinear_resize_axis(keras.ops.cast(x, "float32"), size_out[1], axis=1)
        return bilinear_resize_axis(x, size_out[2], axis=2)

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])


def with_preprocessing(
    model: keras.Model,
    channels: int = 3,
    input_scale: float = 1 / 255,
    median_kernel: int | None = None,
    downsample: int = 1,
    name: str = "segmenter",
    working_size: tuple[int, int] | None = None,
    symmetries=None,
) -> keras.Model:
    """Wraps a trained model so that it takes raw images and returns
    probabilities at the input's full resolution.

    The wrapper is a functional ``keras.Model``: ``input -> Rescaling ->
    MedianBlur -> (pad, AveragePooling2D) -> model -> (bilinear upsampling,
    crop to the input's size)``. Save it with ``model.save("x.keras")``; a
    loaded copy (after ``import keras_unetpp``) predicts from raw pixels, for
    example ``predict_tiled(keras.saving.load_model("x.keras"), uint8_scene)``.

    Args:
        model: The trained segmentation model (e.g. [`UNetPlusPlus`][keras_unetpp.UNetPlusPlus]),
            taking preprocessed images at the working scale.
        channels: Input channels.
        input_scale: Multiplies the raw values (``1/255`` for uint8).
        median_kernel: Median blur window (odd) the model was trained with;
            0 for none. Required: the blur must match training (a model
            trained without it and wrapped with a 5x5 blur changes its
            probabilities by up to 0.69), so there is no default to forget.
        downsample: Integer factor of the working scale; the same one the
            model was trained at.
        name: Name of the wrapper model.
        working_size: ``(height, width)``: every input is resized to this size
            by area averaging ([`AreaResize`][keras_unetpp.models.preprocessing.AreaResize],
            as [`resized_arrays()`][keras_unetpp.datasets.resized_arrays]
            prepares training images) and the probabilities are resized back
            to the input's size (bilinear); for models trained on whole images
            resized to one size (chest X-rays). Not combined with ``downsample``.
        symmetries: The transforms the model was trained under, recorded in
            the saved model (a [`Symmetries`][keras_unetpp.layers.Symmetries]
            layer) so that test-time augmentation (``tta=True``,
            ``keras-unetpp predict --tta``) averages over these alone:
            ``"dihedral"`` (the 8 symmetries of the square, the aerial recipe),
            ``"mirror"`` (left-right flips only, chest films), ``"flips"``, or
            a sequence of triples from ``DIHEDRAL_TRANSFORMS``. None records
            nothing (TTA then uses all 8).

    Returns:
        A ``keras.Model`` mapping (N, H, W, channels) raw images to
            (N, H, W, classes) float32 probabilities, any H and W.

    Raises:
        ValueError: For invalid preprocessing arguments.

    Examples:
        >>> from keras_unetpp import UNetPlusPlus
        >>> core = UNetPlusPlus((None, None, 3), filters=(4, 8))
        >>> full = with_preprocessing(core, median_kernel=5, downsample=2)
        >>> full.predict(np.zeros((1, 30, 45, 3), np.uint8), verbose=0).shape
        (1, 30, 45, 1)
    """
    if int(channels) < 1:
        raise ValueError(f"channels must be >= 1, got {channels}.")
    if median_kernel is None:
        raise ValueError("with_preprocessing needs median_kernel: the median blur the model was trained with "
                         "(5 for the aerial recipe, 0 for none). It must match training.")
    if working_size is not None:
        if int(downsample) != 1:
            raise ValueError("working_size and downsample are two ways to set the working scale: pass one.")
        if len(tuple(working_size)) != 2 or min(int(v) for v in working_size) < 1:
            raise ValueError(f"working_size must be (height, width) of positive integers, got {working_size!r}.")
    declared = None if symmetries is None else Symmetries(symmetries, name="symmetries")  # checks it first
    inputs = keras.Input((None, None, int(channels)), name="raw_images")
    x = inputs if declared is None else declared(inputs)
    for layer in preprocessing_layers(input_scale, median_kernel, downsample):
        x = layer(x)
    if working_size is not None:
        height, width = (int(v) for v in working_size)
        x = AreaResize(height, width, name="to_working_size")(x)
    y = model(x)
    if working_size is not None:
        y = ResizeToReference(dtype="float32", name="to_input_size")([y, inputs])
    if int(downsample) > 1:
        y = BilinearUpsampling(int(downsample), dtype="float32", name="to_input_scale")(y)
        y = CropToReference(dtype="float32", name="crop_to_input")([y, inputs])
    return keras.Model(inputs, y, name=name)
