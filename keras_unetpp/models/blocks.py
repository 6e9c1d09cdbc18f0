"""Building blocks of the UNet++ graph: the convolution unit H, the upsampling,
and the pad/crop layers that let the model take any input size.

Every block gets a node-specific name prefix, so that layer names say which
node X^{i,j} of the paper's figure they belong to. Pruning relies on these names.
"""

from __future__ import annotations

import keras
from keras import layers, ops

UPSAMPLING_MODES = ("transpose", "bilinear", "nearest")


@keras.saving.register_keras_serializable(package="keras_unetpp")
class SyncBatchNormalization(layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with the global batch's statistics
    under a TensorFlow distribution strategy, and portable ``.keras`` files.

    With ``tf.distribute.MirroredStrategy`` each replica sees only its share of
    the batch; Keras' ``synchronized=True`` all-reduces the mean and variance so
    that data-parallel training normalises like one device on the global batch
    (segmentation batches per device are small, and per-replica statistics are a
    known quality loss). Keras allows ``synchronized=True`` only on the
    TensorFlow backend and stores it in the config, so a file saved that way
    would not load on JAX or PyTorch. This layer decides from the running
    backend instead and leaves the flag out of its config: the same file loads
    everywhere. JAX's ``keras.distribution.DataParallel`` already computes the
    statistics over the global (sharded) batch; outside a strategy the layer
    equals ``BatchNormalization`` exactly (with one replica nothing is all-reduced, and the variance is
    the two-pass one, not ``E[x^2] - E[x]^2``).

    Args:
        **kwargs: Any ``keras.layers.BatchNormalization`` argument except
            ``synchronized`` (ignored when given).

    Examples:
        >>> layer = SyncBatchNormalization(momentum=0.9)
        >>> "synchronized" in layer.get_config()
        False
    """

    def __init__(self, **kwargs):
        kwargs.pop("synchronized", None)
        super().__init__(synchronized=keras.backend.backend() == "tensorflow", **kwargs)

    def _moments(self, inputs, mask):
        # Keras' synchronized path all-reduces E[x] and E[x^2] through the replica context even where there
        # is one replica: extra work and E[x^2] - E[x]^2, which loses precision. Synchronise only when a
        # strategy runs several replicas; decided when the step is traced.
        wanted = self.synchronized
        self.synchronized = wanted and _replicas_in_sync() > 1
        try:
            return super()._moments(inputs, mask)
        finally:
            self.synchronized = wanted

    def get_config(self):
        config = super().get_config()
        config.pop("synchronized", None)  # a property of the running backend, not of the model
        return config


def _replicas_in_sync() -> int:
    """Replicas of the TensorFlow distribution strategy in whose scope or step this runs (1 outside one)."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is not None:
        return int(context.num_replicas_in_sync)
    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def conv_block(
    x,
    filters: int,
    name: str,
    batch_norm: bool = True,
    dropout: float = 0.0,
    kernel_initializer: str = "he_normal",
    batch_norm_momentum: float = 0.9,
    dtype=None,
):
    """The node function H of Zhou et al. 2018: two (3x3 conv, BN, ReLU) units.

    Args:
        x: Symbolic input tensor (N, H, W, C).
        filters: Output channels of both convolutions.
        name: Prefix of every layer name (e.g. ``"X_1_2"``).
        batch_norm: Insert batch normalisation after each convolution.
        dropout: Spatial dropout rate applied after the block (0 disables).
        kernel_initializer: Initializer of both convolution kernels.
        batch_norm_momentum: Momentum of the batch-norm moving statistics.
        dtype: Dtype policy of the block's layers (None: the global one).

    Returns:
        The symbolic output tensor (N, H, W, filters).
    """
    for unit in (1, 2):
        x = conv_unit(x, filters, 3, f"{name}_conv{unit}", f"{name}_bn{unit}", f"{name}_relu{unit}", batch_norm,
                      kernel_initializer, batch_norm_momentum, dtype)
    if dropout > 0:
        x = layers.SpatialDropout2D(dropout, name=f"{name}_dropout", dtype=dtype)(x)
    return x


def conv_unit(x, filters: int, kernel_size: int, conv_name: str, bn_name: str, relu_name: str,
              batch_norm: bool = True, kernel_initializer: str = "he_normal", batch_norm_momentum: float = 0.9,
              dtype=None):
    """One convolution (no bias when batch norm follows), optional batch norm, ReLU."""
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=not batch_norm,
                      kernel_initializer=kernel_initializer, name=conv_name, dtype=dtype)(x)
    if batch_norm:
        x = SyncBatchNormalization(momentum=batch_norm_momentum, name=bn_name, dtype=dtype)(x)
    return layers.Activation("relu", name=relu_name, dtype=dtype)(x)


def lateral_projection(x, filters: int, name: str, batch_norm: bool = True, batch_norm_momentum: float = 0.9,
                       dtype=None):
    """A 1x1 convolution (+ batch norm) + ReLU that maps an encoder feature map to the decoder's
    width at its level (the lateral connections of a feature pyramid network, Lin et al. 2017).

    Args:
        x: Symbolic encoder feature map (N, H, W, C).
        filters: The decoder's channels at this level.
        name: Prefix of the layer names (e.g. ``"X_3_0_projection"``).
        batch_norm: Insert batch normalisation after the convolution.
        batch_norm_momentum: Momentum of the batch-norm moving statistics.
        dtype: Dtype policy of the layers (None: the global one).

    Returns:
        The symbolic output tensor (N, H, W, filters).
    """
    return conv_unit(x, filters, 1, f"{name}_conv", f"{name}_bn", f"{name}_relu", batch_norm,
                     "he_normal", batch_norm_momentum, dtype)


def upsample(x, filters: int, mode: str, name: str, dtype=None):
    """Doubles the spatial size of ``x``.

    Args:
        x: Symbolic input tensor.
        filters: Output channels for ``mode="transpose"`` (a 2x2, stride-2
            transposed convolution, as in the paper's code). The
            interpolating modes keep the input's channels.
        mode: ``"transpose"``, ``"bilinear"`` or ``"nearest"``.
        name: Layer name.
        dtype: Dtype policy of the layer (None: the global one).

    Returns:
        The upsampled symbolic tensor.
    """
    if mode == "transpose":
        return layers.Conv2DTranspose(
            filters, 2, strides=2, padding="same", name=name, dtype=dtype
        )(x)
    if mode == "bilinear":
        return BilinearUpsampling(2, name=name, dtype=dtype)(x)
    return layers.UpSampling2D(2, interpolation=mode, name=name, dtype=dtype)(x)


def bilinear_resize_axis(x, size_out, axis: int):
    """Bilinear resampling of ``x`` along one spatial ``axis`` to ``size_out``
    (half-pixel centres, edge clamping, no antialiasing: what
    ``keras.ops.image.resize(..., "bilinear")`` and OpenCV's ``INTER_LINEAR``
    compute), from sizes known only at run time.

    Output pixel ``p`` reads the input at ``(p + 0.5) * size_in / size_out - 0.5``,
    clamped to the image, from its two neighbours: two gathers and a linear
    blend, so the cost follows the output's size.

    Args:
        x: (N, H, W, C) tensor.
        size_out: The new length of ``axis`` (an int or a scalar tensor).
        axis: 1 (height) or 2 (width).

    Returns:
        ``x`` resampled along ``axis``, in its own float dtype.
    """
    size_in = ops.shape(x)[axis]
    size_in_f = ops.cast(size_in, "float32")
    source = (ops.arange(size_out, dtype="float32") + 0.5) * size_in_f / ops.cast(size_out, "float32") - 0.5
    source = ops.clip(source, 0.0, size_in_f - 1.0)
    low = ops.floor(source)
    low_index = ops.cast(low, "int32")
    high_index = ops.minimum(low_index + 1, ops.cast(size_in, "int32") - 1)
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    fraction = ops.cast(ops.reshape(source - low, shape), x.dtype)
    below, above = ops.take(x, low_index, axis=axis), ops.take(x, high_index, axis=axis)
    return below + (above - below) * fraction


@keras.saving.register_keras_serializable(package="keras_unetpp")
class BilinearUpsampling(layers.Layer):
    """Bilinear upsampling by an integer ``factor`` for inputs of any size.

    Computes what ``keras.layers.UpSampling2D(factor, interpolation="bilinear")``
    computes, but from run-time sizes: under TensorFlow, a model that has
    predicted images of several sizes is traced with unknown height and width,
    and ``UpSampling2D`` (``keras.ops.image.resize``) then fails. Used by
    [`UNetPlusPlus`][keras_unetpp.UNetPlusPlus] with ``upsampling="bilinear"``
    and by [`with_preprocessing()`][keras_unetpp.with_preprocessing]
    to return to the input's scale.

    Args:
        factor: Integer upsampling factor (>= 1), the same along both axes.
        **kwargs: Standard layer arguments.

    Examples:
        >>> import numpy as np
        >>> x = np.arange(4, dtype="float32").reshape(1, 2, 2, 1)
        >>> BilinearUpsampling(2)(x)[0, :, :, 0].numpy().round(2).tolist()[0]
        [0.0, 0.25, 0.75, 1.0]
    """

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        if int(factor) < 1:
            raise ValueError(f"factor must be an integer >= 1, got {factor!r}.")
        self.factor = int(factor)

    def call(self, x):
        shape = ops.shape(x)
        x = bilinear_resize_axis(x, shape[1] * self.factor, axis=1)
        return bilinear_resize_axis(x, shape[2] * self.factor, axis=2)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.factor, None if w is None else w * self.factor, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="keras_unetpp")
class PadToMultiple(layers.Layer):
    """Zero-pads height and width (bottom/right) up to a multiple of ``multiple``.

    Used at the model's input so that every one of the L poolings halves an
    even size; `CropToReference` removes the padding at the output.

    Args:
        multiple: The size multiple, ``2**depth`` for a UNet++ of depth L.
        **kwargs: Standard layer arguments.

    Examples:
        >>> import numpy as np
        >>> tuple(PadToMultiple(8)(np.ones((1, 5, 9, 1), "float32")).shape)
        (1, 8, 16, 1)
    """

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, x):
        shape = ops.shape(x)
        m = self.multiple
        pad_h = (m - shape[1] % m) % m
        pad_w = (m - shape[2] % m) % m
        return ops.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])

    def compute_output_shape(self, input_shape):
        def padded(n):
            return None if n is None else -(-n // self.multiple) * self.multiple

        return (
            input_shape[0],
            padded(input_shape[1]),
            padded(input_shape[2]),
            input_shape[3],
        )

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="keras_unetpp")
class CropToReference(layers.Layer):
    """Crops ``x`` to the height and width of ``reference`` (top-left kept).

    Args:
        **kwargs: Standard layer arguments.

    Examples:
        >>> import numpy as np
        >>> x = np.ones((1, 8, 16, 2), "float32")
        >>> ref = np.ones((1, 5, 9, 3), "float32")
        >>> tuple(CropToReference()([x, ref]).shape)
        (1, 5, 9, 2)
    """

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])
