"""Input preprocessing that travels inside the saved model: value scaling,
median blur and a reduced working scale.

A model trained on preprocessed crops forgets nothing at prediction time if
the same steps are part of the ``.keras`` file: [`Segmenter`][keras_unetpp.Segmenter]
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
from keras_unetpp.models.blocks import PadToMultiple, bilinear_resize_axis
from keras_unetpp.values import foreground


def check_preprocessing(input_scale: float, median_kernel: int, downsample: int) -> None:
    """Refuses a non-positive scale, an even median kernel or a non-integer ``downsample``, by name."""
    if not np.isfinite(input_scale) or input_scale <= 0:
        raise ValueError(f"input_scale must be a positive number, got {input_scale}.")
    if int(median_kernel) < 0 or (int(median_kernel) > 1 and int(median_kernel) % 2 == 0):
        raise ValueError(f"median_kernel must be 0, 1 or an odd size, got {median_kernel}.")
    if int(downsample) != downsample or int(downsample) < 1:
        raise ValueError(f"downsample must be a positive integer (working scale 1/downsample), got {downsample}.")


def preprocessing_layers(input_scale: float = 1 / 255, median_kernel: int = 5, downsample: int = 1,
                         offset: float = 0.0) -> list:
    """The preprocessing steps as Keras layers, in order.

    Args:
        input_scale: Multiplies the raw values (``1/255`` maps uint8 to [0, 1]).
        median_kernel: Median blur window (odd); 0 or 1 for none.
        downsample: Integer factor of the working scale (1 keeps full size).
        offset: Added after the scaling (``-low / (high - low)`` maps ``low..high`` onto [0, 1]).

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
    check_preprocessing(input_scale, median_kernel, downsample)
    steps = [layers.Rescaling(float(input_scale), offset=float(offset), name="input_scale")]
    if int(median_kernel) > 1:
        steps.append(MedianBlur(int(median_kernel), name="median_blur"))
    if int(downsample) > 1:
        steps.append(PadToMultiple(int(downsample), name="pad_to_working_scale"))
        steps.append(layers.AveragePooling2D(int(downsample), name="to_working_scale"))
    return steps


def preprocess_images(images, input_scale: float = 1 / 255, median_kernel: int = 5, downsample: int = 1) -> np.ndarray:
    """Applies the preprocessing of [`Segmenter`][keras_unetpp.Segmenter] to images, e.g.
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
    check_preprocessing(1.0, 0, downsample)
    array = np.asarray(masks)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"downsample_masks expects (H, W) or (H, W, 1), got shape {np.shape(masks)}.")
    k = int(downsample)
    fg = foreground(array).astype(np.float32)
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
