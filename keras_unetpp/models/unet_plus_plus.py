"""UNet++ (Zhou et al., 2018) as a Keras 3 model with deep supervision and pruning."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers, ops

from keras_unetpp.checks import finite_number, whole_number
from keras_unetpp.models import encoders as encoder_lib
from keras_unetpp.models.blocks import (
    UPSAMPLING_MODES,
    CropToReference,
    PadToMultiple,
    conv_block,
    lateral_projection,
    upsample,
)


def node_name(i: int, j: int) -> str:
    """The layer-name prefix of node X^{i,j} (i: down-sampling level, j: position on the skip path)."""
    return f"X_{i}_{j}"


def node_of(layer_name: str) -> tuple[int, int] | None:
    """The node ``(i, j)`` a layer belongs to, read from its name (the inverse of
    ``node_name``); ``None`` for a layer outside the nodes (an encoder's, a head).

    Examples:
        >>> node_of("X_2_1_conv1"), node_of("head_3")
        ((2, 1), None)
    """
    parts = layer_name.split("_")
    if len(parts) > 3 and parts[0] == "X" and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]), int(parts[2])
    return None


def head_name(j: int) -> str:
    """The layer name of the 1x1 convolution that reads node X^{0,j}."""
    return f"head_{j}"


@keras.saving.register_keras_serializable(package="keras_unetpp")
class UNetPlusPlus(keras.Model):
    """UNet++: a U-Net whose skip connections are nested, dense convolution paths.

    Node ``X^{i,0}`` is the encoder at level ``i``; every other node is
    ``X^{i,j} = H([X^{i,0}, ..., X^{i,j-1}, Up(X^{i+1,j-1})])`` with ``H`` two
    3x3 convolutions (+ batch norm) + ReLU, exactly as in the paper. Depth
    ``L = len(filters) - 1``. The default ``filters=(32, 64, 128, 256, 512)`` is
    the paper's UNet++ L4 (about 9.0M parameters).

    **Any input size.** Height and width need not be multiples of ``2**L``: the
    input is zero-padded (bottom/right) to the next multiple and the output is
    cropped back, so the output always has the input's height and width.

    **Deep supervision.** With ``deep_supervision=True`` a 1x1 head reads each
    of ``X^{0,1}, ..., X^{0,L}``. In ``fit`` the loss given to ``compile`` is
    applied to every head against the same plain mask and combined as
    ``sum_k w_k * loss_k / sum_k w_k`` (``head_weights``, equal by default);
    you never repeat targets. ``model(x)``, ``predict`` and metrics see one
    tensor: the mean of the heads' activated outputs (``inference_head="mean"``,
    the paper's *accurate mode*) or head ``k`` alone (``inference_head=k``).
    The model is one graph that computes every head; for the paper's *fast
    mode*, which computes only the nodes head ``k`` needs, deploy
    ``model.prune(k)`` (same output, fewer operations). Calling
    ``model(x, training=True)`` yourself returns the list of heads.
    Validation loss in ``fit`` is the loss of that single inference output.

    **Pruning.** [`prune()`][keras_unetpp.UNetPlusPlus.prune] returns UNet++ L``k`` (``1 <= k <= L``): a smaller,
    independent model holding the trained weights of the nodes head ``k``
    needs; its predictions equal head ``k`` of this model.

    **Pretrained encoders.** With ``encoder`` (a name of
    [`ENCODERS`][keras_unetpp.models.encoders.ENCODERS], e.g. ``"resnet50"``,
    or your own ``keras.Model``) the nodes ``X^{i,0}``, ``i >= 1``, are the
    backbone's feature maps at stride ``2**i`` (found by the rule of
    [`keras_unetpp.models.encoders`][keras_unetpp.models.encoders]); ``X^{0,0}``
    stays a full-resolution conv block on the image, and a stride the backbone
    lacks gets the plain block. ``filters`` are then the decoder's widths per
    level: ``len(filters) - 1`` encoder levels are used (6 filters for all five
    of a ResNet). Named encoders take images in [0, 1], apply their ImageNet
    preprocessing inside the model and accept any channel count (the first
    convolution's RGB weights adapted by
    [`adapt_first_kernel()`][keras_unetpp.models.first_conv.adapt_first_kernel]).

    Args:
        input_shape: ``(height, width, channels)``; height and width may be
            ``None`` (any size). ``channels`` must be a positive integer.
        num_classes: Output channels. 1 means binary segmentation.
        filters: Channels of the encoder levels 0..L; at least two entries.
        deep_supervision: Put a head on every ``X^{0,j}`` and train them all.
        inference_head: ``"mean"`` (average of the heads) or an integer
            ``1..L`` choosing one head. Only used with deep supervision.
        head_weights: Loss weights of heads ``1..L`` (deep supervision only);
            ``None`` weighs them equally. Must be non-negative, not all zero.
        output_activation: ``"auto"`` (sigmoid for 1 class, softmax
            otherwise), any Keras activation name, or ``None``/``"linear"``
            for logits (then use a loss with ``from_logits=True``).
        batch_norm: Batch normalisation in every conv unit.
        batch_norm_momentum: Momentum of the moving mean/variance. The
            default 0.9 (PyTorch's 0.1) instead of Keras' 0.99: the moving
            variance starts at 1 while the real one of a fresh UNet++ is
            often ~0.01, and with 0.99 it takes several hundred steps before
            inference mode (``predict``) matches training mode; short CPU
            runs never got there.
        upsampling: ``"transpose"`` (2x2 transposed conv, the paper's code),
            ``"bilinear"`` or ``"nearest"`` (no weights).
        dropout: Spatial dropout rate after every node (0 disables).
        pad_to_multiple: Size multiple to pad the input to; default
            ``2**L``. Pruned models keep their parent's value so that their
            output equals the parent's head exactly.
        encoder: ``None`` (the paper's plain encoder), a name from
            ``keras_unetpp.models.encoders.ENCODERS`` or a functional
            ``keras.Model`` taking ``(None, None, channels)`` images (used as
            it is: no preprocessing, no channel adaptation).
        encoder_weights: For a named encoder: ``None`` (random), ``"imagenet"``
            (Keras downloads them) or the path of a ``.weights.h5`` file of the
            RGB backbone (machines without internet). Not stored in the
            config: a saved model's weights come from its file.
        encoder_trainable: ``False`` freezes the encoder (its batch norm then
            runs in inference mode); see the docs' two-phase fine-tuning.
        encoder_projection: Map each encoder feature map to the decoder's
            width ``filters[i]`` with a 1x1 convolution + batch norm + ReLU
            (a feature pyramid's lateral connection) before the nested
            nodes read it. Every node ``X^{i,j}`` of a level concatenates
            ``X^{i,0}``, so this pays where the backbone's maps are wider than
            the decoder (ResNet50: 64-2,048 channels); EfficientNet-Lite0's
            (16-320) are narrower, and projecting them adds about 10% of the
            forward FLOPs (docs/encoders.md). Only with an encoder.
        decoder: ``"nested"`` (the paper's graph: nested nodes on every level,
            full resolution included) or ``"compact"``: nested nodes from
            stride 2 down only, and full resolution reached at the end by one
            up-sampling node ``X^{0,L} = H(Up(X^{1,L-1}))``; the last node of
            each level (``i + j = L``) gets ``decoder_filters[i]``. This is the
            layout of segmentation_models_pytorch's ``UnetPlusPlus``: with
            ``encoder="efficientnet_lite0"``,
            ``filters=(16, 16, 24, 40, 112, 320)``,
            ``decoder_filters=(16, 32, 64, 128, 256)`` and
            ``upsampling="nearest"`` it is the same graph (8.1 forward GFLOP
            at 256 x 256 against 20.0 for the nested default of the aerial
            example, at equal Tile 7 IoU; docs/benchmarks.md). No deep
            supervision (there is one full-resolution head).
        decoder_filters: Widths of the last node of levels ``0..L-1``
            (``L`` entries; ``"compact"`` only). Default: ``filters[:L]``.
        name: Model name.
        **kwargs: Passed to ``keras.Model``.

    Returns:
        A ``keras.Model`` mapping ``(N, H, W, channels)`` to
            ``(N, H, W, num_classes)`` float32.

    Raises:
        ValueError: For an invalid argument, or at call time for an input
            that is not a 4-D batch with ``channels`` channels.

    Examples:
        >>> import numpy as np
        >>> model = UNetPlusPlus(input_shape=(None, None, 1), filters=(4, 8, 16))
        >>> model.predict(np.zeros((2, 30, 45, 1), "float32"), verbose=0).shape
        (2, 30, 45, 1)

    Reference:
        Zhou, Siddiquee, Tajbakhsh, Liang. "UNet++: A Nested U-Net
        Architecture for Medical Image Segmentation", DLMIA 2018.
        https://arxiv.org/abs/1807.10165
    """

    def __init__(
        self,
        input_shape: Sequence[int | None] = (None, None, 3),
        num_classes: int = 1,
        filters: Sequence[int] = (32, 64, 128, 256, 512),
        deep_supervision: bool = False,
        inference_head: str | int = "mean",
        head_weights: Sequence[float] | None = None,
        output_activation: str | None = "auto",
        batch_norm: bool = True,
        batch_norm_momentum: float = 0.9,
        upsampling: str = "transpose",
        dropout: float = 0.0,
        pad_to_multiple: int | None = None,
        encoder: str | keras.Model | dict | None = None,
        encoder_weights: str | None = None,
        encoder_trainable: bool = True,
        encoder_projection: bool = False,
        decoder: str = "nested",
        decoder_filters: Sequence[int] | None = None,
        name: str = "unet_plus_plus",
        dtype=None,
        **kwargs,
    ):
        filters = _check_filters(filters)
        depth = len(filters) - 1
        input_shape = _check_input_shape(input_shape)
        num_classes = whole_number(num_classes, "num_classes", 1)
        if upsampling not in UPSAMPLING_MODES:
            raise ValueError(
                f"upsampling must be one of {UPSAMPLING_MODES}, got {upsampling!r}."
            )
        if not 0.0 <= float(batch_norm_momentum) < 1.0:
            raise ValueError(f"batch_norm_momentum must be in [0, 1), got {batch_norm_momentum}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        if inference_head != "mean" and not (
            isinstance(inference_head, int) and not isinstance(inference_head, bool) and 1 <= inference_head <= depth
        ):
            raise ValueError(
                f"inference_head must be 'mean' or an integer in 1..{depth}, "
                f"got {inference_head!r}."
            )
        weights = _check_head_weights(head_weights, depth)
        multiple = 2**depth if pad_to_multiple is None else whole_number(pad_to_multiple, "pad_to_multiple", 1)
        if multiple < 2**depth or multiple % 2**depth:
            raise ValueError(
                f"pad_to_multiple must be a multiple of 2**depth={2**depth}, got {pad_to_multiple}."
            )
        activation = _resolve_activation(output_activation, int(num_classes))
        decoder_filters = _check_decoder(decoder, decoder_filters, filters, deep_supervision)
        if encoder_projection and encoder is None:
            raise ValueError("encoder_projection maps an encoder's feature maps to the decoder's widths; "
                             "it needs an encoder (e.g. encoder='efficientnet_lite0').")
        # Every layer gets the model's dtype policy explicitly (keras-hub's rule): building never
        # touches the global policy, and a file saved under mixed precision loads as it was saved.
        policy = keras.dtype_policies.get(dtype) if dtype is not None else keras.config.dtype_policy()
        backbone, encoder_levels = _resolve_encoder(encoder, encoder_weights, input_shape[-1], depth, policy)
        encoder_name = encoder if isinstance(encoder, str) or encoder is None else "custom"
        graph = _NestedGraph(filters, int(num_classes), activation, bool(batch_norm), float(batch_norm_momentum),
                             upsampling, float(dropout), multiple, policy, bool(encoder_projection), decoder_filters)
        inputs = keras.Input(shape=input_shape, name="image")
        heads = graph.build(inputs, list(range(1, depth + 1)) if deep_supervision else [depth],
                            backbone, encoder_levels, encoder_name, bool(encoder_trainable))
        super().__init__(inputs=inputs, outputs=heads if deep_supervision else heads[0], name=name, dtype=policy,
                         **kwargs)
        self.input_spec = None  # _check_input gives the errors, naming the model's input_shape
        self.image_shape = input_shape
        self.num_classes = int(num_classes)
        self.filters = filters
        self.depth = depth
        self.deep_supervision = bool(deep_supervision)
        self.inference_head = inference_head
        self.head_weights = weights
        self.output_activation = output_activation
        self.batch_norm = bool(batch_norm)
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.upsampling = upsampling
        self.dropout = float(dropout)
        self.pad_to_multiple = multiple
        self.encoder = encoder_name
        self.encoder_trainable = bool(encoder_trainable)
        self.encoder_projection = bool(encoder_projection)
        self.decoder = decoder
        self.decoder_filters = decoder_filters
        self._encoder_spec = None if backbone is None or encoder_name != "custom" else _encoder_spec(backbone)

    def _check_input(self, x):
        shape = tuple(x.shape)
        if len(shape) != 4:
            hint = " Add a batch axis, e.g. x[None]." if len(shape) == 3 else ""
            raise ValueError(
                f"UNetPlusPlus expects a batch of images of shape (N, H, W, C), "
                f"got an input of shape {shape}.{hint}"
            )
        if 0 in shape[1:3]:
            raise ValueError(f"UNetPlusPlus got empty images of shape {shape}: height and width must be >= 1.")
        channels = self.image_shape[-1]
        if shape[-1] is not None and shape[-1] != channels:
            raise ValueError(
                f"UNetPlusPlus was built for {channels} input channel(s) "
                f"(input_shape={self.image_shape}), got an input with {shape[-1]} "
                f"channel(s), shape {shape}."
            )
        for axis, expected in ((1, self.image_shape[0]), (2, self.image_shape[1])):
            if expected is not None and shape[axis] is not None and shape[axis] != expected:
                raise ValueError(
                    f"UNetPlusPlus was built for input_shape={self.image_shape}, "
                    f"got an input of shape {shape}. Build it with None for height "
                    f"and width to accept any size."
                )

    def call(self, inputs, training=None, mask=None):
        """The graph; with deep supervision, the list of heads when ``training`` is true and
        their combination (see ``inference_head``) otherwise."""
        self._check_input(inputs)
        outputs = super().call(inputs, training=training, mask=mask)
        if not self.deep_supervision:
            return outputs
        heads = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]  # depth 1: one head
        return heads if training else self.combine_heads(heads)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' TensorFlow trainer builds the model under a strategy from one batch of the iterator,
        # merged with strategy.reduce("MEAN", ...), which MultiWorkerMirroredStrategy cannot do for a
        # distributed batch (keras-team/keras#20585: fit fails before the first step). Only the batch's
        # shapes and dtypes matter for that build, so the local replica's values do the same job.
        if iterator is not None and self._multi_worker():
            import tensorflow as tf

            strategy = self._distribute_strategy
            for _, _, it in iterator:
                batch = next(it)
                data_batch = keras.tree.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v, batch)
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _multi_worker(self) -> bool:
        strategy = getattr(self, "_distribute_strategy", None)
        if strategy is None or keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf

        return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def train_step(self, *args, **kwargs):
        # Under MultiWorkerMirroredStrategy Keras merges each replica's logs with
        # strategy.reduce("MEAN", value, axis=0), which fails on scalars (keras-team/keras#20585);
        # one-element logs reduce to the same scalar. Other backends and strategies: unchanged.
        return self._one_element_logs(super().train_step(*args, **kwargs))

    def test_step(self, *args, **kwargs):
        return self._one_element_logs(super().test_step(*args, **kwargs))

    def _one_element_logs(self, logs):
        if not self._multi_worker():
            return logs
        return {k: ops.reshape(v, (1,)) for k, v in logs.items()}

    def predict(self, x, *args, **kwargs):
        """``keras.Model.predict``, with a clear error for an empty batch or empty images."""
        shape = tuple(getattr(x, "shape", ()) or ())
        if len(shape) == 4 and shape[0] == 0:
            raise ValueError(f"predict got an empty batch of shape {shape}: pass at least one image.")
        if len(shape) == 4:
            self._check_input(x)
        return super().predict(x, *args, **kwargs)

    def head_outputs(self, inputs, training: bool = False) -> list:
        """The output of every head (``X^{0,j}`` for the trained heads), not combined.

        Args:
            inputs: A batch ``(N, H, W, C)``.
            training: Run batch norm and dropout in training mode.

        Returns:
            A list of ``(N, H, W, num_classes)`` tensors: heads ``1..L`` with deep
                supervision, the single head ``L`` without.

        Examples:
            >>> import numpy as np
            >>> m = UNetPlusPlus((None, None, 1), filters=(2, 4, 8), deep_supervision=True)
            >>> [tuple(h.shape) for h in m.head_outputs(np.zeros((1, 8, 8, 1), "float32"))]
            [(1, 8, 8, 1), (1, 8, 8, 1)]
        """
        self._check_input(inputs)
        outputs = super().call(inputs, training=training)
        return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]

    def compute_output_spec(self, inputs, training=None, mask=None):
        self._check_input(inputs)
        outputs = super().compute_output_spec(inputs)
        if not self.deep_supervision:
            return outputs
        heads = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        return heads if training else heads[0]  # the combination has each head's shape

    def _check_targets(self, y, y_pred):
        """The masks given to ``fit`` / ``evaluate`` checked against the output, with a clear error:
        (N, H, W) masks of a one-class model get their channel axis; other channel counts or sizes
        than the output's are refused, naming both shapes."""
        if y is None or isinstance(y, (dict, list, tuple)):
            return y
        out = tuple(y_pred.shape)
        try:
            shape = tuple(y.shape)
        except (TypeError, ValueError):  # unknown rank (a retraced step): only the element count can be checked
            if self.num_classes != 1:
                return y
            return ops.reshape(y, ops.shape(y_pred))
        if len(shape) == 3 and self.num_classes == 1:
            y = ops.expand_dims(y, -1)
            shape = tuple(y.shape)
        elif len(shape) == 3:  # integer class labels of a multi-class model
            shape = shape + (1,)
        if len(shape) != 4:
            raise ValueError(f"Masks must be (N, H, W, {self.num_classes}) or (N, H, W); got shape {shape} for "
                             f"model outputs of shape {out}.")
        channels = shape[-1]
        if channels is not None and channels != self.num_classes and not (self.num_classes > 1 and channels == 1):
            hint = (" Colour-coded masks need converting to one class first (e.g. keras_unetpp.masks or "
                    "`mask == colour`)." if self.num_classes == 1 and channels == 3 else "")
            raise ValueError(f"Masks of shape {shape} do not fit the model's output {out}: {channels} channel(s) "
                             f"for {self.num_classes} class(es).{hint}")
        for axis, name in ((1, "height"), (2, "width")):
            if shape[axis] is not None and out[axis] is not None and shape[axis] != out[axis]:
                raise ValueError(f"Masks of shape {shape} do not fit the model's output {out}: the {name} differs "
                                 "(masks must have the images' size).")
        return y

    def combine_heads(self, heads):
        """Reduces the list of deep-supervision heads to the inference output.

        Args:
            heads: The list returned by ``model(x, training=True)``.

        Returns:
            Their mean (``inference_head="mean"``) or the chosen head.
        """
        if self.inference_head == "mean":
            return ops.mean(ops.stack(heads, axis=0), axis=0)
        return heads[self.inference_head - 1]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss; with deep supervision, weighted over the heads.

        Each head's loss (plus the model's regularisation losses) is computed
        by ``keras.Model.compute_loss`` and combined with the normalised head
        weights, so the regularisation term is counted exactly once.
        """
        y = self._check_targets(y, y_pred[0] if isinstance(y_pred, (list, tuple)) else y_pred)
        if not isinstance(y_pred, (list, tuple)):
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        total = 0.0
        scale = sum(self.head_weights)
        for weight, head in zip(self.head_weights, y_pred):
            if weight:
                head_loss = super().compute_loss(x, y, head, sample_weight, training=training)
                total = total + (weight / scale) * head_loss
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, (list, tuple)):
            y_pred = self.combine_heads(y_pred)
        y = self._check_targets(y, y_pred)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def prune(self, level: int) -> "UNetPlusPlus":
        """Returns UNet++ L``level``: the sub-network that computes head ``level``.

        The paper's inference-time pruning. The result is an ordinary
        [`UNetPlusPlus`][keras_unetpp.UNetPlusPlus] (``filters[:level + 1]``, no deep supervision)
        holding copies of this model's trained weights for the nodes
        ``X^{i,j}`` with ``i + j <= level``; it can be used for ``predict``
        and saved and loaded like any model.

        Args:
            level: ``1..L``; the head whose nodes to keep.

        Returns:
            A new, smaller [`UNetPlusPlus`][keras_unetpp.UNetPlusPlus].

        Raises:
            ValueError: If ``level`` is out of range, or this model has no
                deep supervision (its intermediate heads were never trained).

        Examples:
            >>> m = UNetPlusPlus((32, 32, 1), filters=(4, 8, 16), deep_supervision=True)
            >>> m.prune(1).depth
            1
        """
        if not self.deep_supervision:
            raise ValueError(
                "prune() needs a model built and trained with deep_supervision=True: "
                "without it the intermediate heads X^{0,1..L-1} are never trained."
            )
        if not (isinstance(level, int) and 1 <= level <= self.depth):
            raise ValueError(f"level must be an integer in 1..{self.depth}, got {level!r}.")
        config = self.get_config()
        config.update(
            filters=self.filters[: level + 1],
            deep_supervision=False,
            inference_head="mean",
            head_weights=None,
            pad_to_multiple=self.pad_to_multiple,
            name=f"{self.name}_L{level}",
        )
        pruned = UNetPlusPlus(**config)
        _copy_weights_by_name(pruned, self)
        return pruned

    def load_own_variables(self, store):
        """Keras' loader calls this first for the model: a 0.1 file gets a clear error, not
        hundreds of "expected 1 variables, received 0" (keras_unetpp.load_model converts it)."""
        from keras_unetpp.models.h5_layout import refuse_nested_store

        refuse_nested_store(store)
        super().load_own_variables(store)

    def get_config(self):
        config = super().get_config()
        config.pop("trainable", None)
        config.update(
            input_shape=list(self.image_shape),
            num_classes=self.num_classes,
            filters=list(self.filters),
            deep_supervision=self.deep_supervision,
            inference_head=self.inference_head,
            head_weights=list(self.head_weights) if self.deep_supervision else None,
            output_activation=self.output_activation,
            batch_norm=self.batch_norm,
            batch_norm_momentum=self.batch_norm_momentum,
            upsampling=self.upsampling,
            dropout=self.dropout,
            pad_to_multiple=self.pad_to_multiple,
        )
        if self.decoder != "nested":
            config.update(decoder=self.decoder, decoder_filters=list(self.decoder_filters))
        if self.encoder is not None:  # weights are in the saved file, never downloaded again on load
            encoder = self._encoder_spec if self.encoder == "custom" else self.encoder
            config.update(encoder=encoder, encoder_weights=None, encoder_trainable=self.encoder_trainable,
                          encoder_projection=self.encoder_projection)
        return config


def _copy_weights_by_name(target: keras.Model, source: keras.Model) -> None:
    """Copies every weight of ``target``'s layers from the same-named layers of
    ``source``, into nested models (the encoder) too."""
    for layer in target.layers:
        if isinstance(layer, keras.Model):
            _copy_weights_by_name(layer, source.get_layer(layer.name))
        elif layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


class _NestedGraph:
    """Builds the nodes X^{i,j} of UNet++ column by column, as in the paper's figure, every
    layer under one dtype policy."""

    def __init__(self, filters, num_classes, activation, batch_norm, momentum, upsampling, dropout, multiple,
                 policy, projection=False, decoder_filters=None):
        self.filters, self.depth = filters, len(filters) - 1
        self.decoder_filters = decoder_filters   # None: the nested graph; else the compact one
        self.num_classes, self.activation = num_classes, activation
        self.block = dict(batch_norm=batch_norm, batch_norm_momentum=momentum, dropout=dropout, dtype=policy)
        self.upsampling, self.multiple, self.policy = upsampling, multiple, policy
        self.projection = projection

    def build(self, inputs, head_columns, backbone, encoder_levels, encoder_name, encoder_trainable):
        padded = PadToMultiple(self.multiple, name="pad_to_multiple", dtype=self.policy)(inputs)
        nodes = self.encoder_nodes(padded, backbone, encoder_levels, encoder_name, encoder_trainable)
        if self.projection:
            nodes = {(i, 0): lateral_projection(x, self.filters[i], f"{node_name(i, 0)}_projection",
                                                self.block["batch_norm"], self.block["batch_norm_momentum"],
                                                self.policy)
                     for (i, _), x in nodes.items()}
        compact = self.decoder_filters is not None
        for i in range(self.depth + 1):
            if (i, 0) not in nodes:  # the plain encoder, or a stride the backbone lacks
                if i == 0 and compact and (1, 0) in nodes:
                    continue          # nothing reads X^{0,0} in the compact graph when the encoder gives X^{1,0}
                x = padded if i == 0 else layers.MaxPooling2D(2, name=f"pool_{i}", dtype=self.policy)(nodes[i - 1, 0])
                nodes[i, 0] = conv_block(x, self.filters[i], node_name(i, 0), **self.block)
        for j in range(1, self.depth + 1):
            for i in range(int(compact), self.depth + 1 - j):
                width = self.decoder_filters[i] if compact and i + j == self.depth else self.filters[i]
                up = upsample(nodes[i + 1, j - 1], width, self.upsampling, f"{node_name(i, j)}_up",
                              dtype=self.policy)
                skips = [nodes[i, k] for k in range(j)]
                x = layers.Concatenate(name=f"{node_name(i, j)}_concat", dtype=self.policy)(skips + [up])
                nodes[i, j] = conv_block(x, width, node_name(i, j), **self.block)
        if compact:  # full resolution only at the end: X^{0,L} = H(Up(X^{1,L-1}))
            up = upsample(nodes[1, self.depth - 1], self.decoder_filters[0], self.upsampling,
                          f"{node_name(0, self.depth)}_up", dtype=self.policy)
            nodes[0, self.depth] = conv_block(up, self.decoder_filters[0], node_name(0, self.depth), **self.block)
        heads = []
        for j in head_columns:
            h = layers.Conv2D(self.num_classes, 1, name=head_name(j), dtype=self.policy)(nodes[0, j])
            h = layers.Activation(self.activation, dtype="float32", name=f"{head_name(j)}_activation")(h)
            heads.append(CropToReference(dtype="float32", name=f"{head_name(j)}_crop")([h, inputs]))
        return heads

    def encoder_nodes(self, padded, backbone, encoder_levels, encoder_name, trainable) -> dict:
        """``{(i, 0): feature map}`` of the backbone's levels (none without an encoder)."""
        if backbone is None:
            return {}
        features, levels = encoder_lib.feature_model(backbone, self.depth, levels_found=encoder_levels)
        if features is None:
            return {}
        features.trainable = trainable
        x = padded
        if encoder_name in encoder_lib.ENCODERS:
            mode = encoder_lib.ENCODERS[encoder_name][1]
            x = encoder_lib.EncoderPreprocessing(mode, padded.shape[-1], name="encoder_preprocessing",
                                                 dtype=self.policy)(x)
        outputs = features(x)
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        return {(level, 0): out for level, out in zip(levels, outputs)}


def _resolve_encoder(encoder, weights, channels: int, depth: int, policy):
    """``(backbone, feature levels)`` for ``encoder`` (``(None, None)`` without one), checked
    against the depth; the levels are found once (one probe) and reused to build the graph."""
    if encoder is None:
        if weights is not None:
            raise ValueError("encoder_weights needs an encoder (e.g. encoder='resnet50').")
        return None, None
    if isinstance(encoder, dict):
        encoder = _encoder_from_spec(encoder)
    if isinstance(encoder, str):
        if encoder == "custom":
            raise ValueError("encoder='custom' is how a model reports your own encoder; pass the keras.Model.")
        backbone = encoder_lib.build_backbone(encoder, channels, weights, dtype=policy)
    elif isinstance(encoder, keras.Model):
        if weights is not None:
            raise ValueError("encoder_weights applies to named encoders; load your model's weights yourself.")
        if encoder.input.shape[-1] != channels:
            raise ValueError(f"The encoder takes {encoder.input.shape[-1]} channel(s), the model's input_shape "
                             f"has {channels}.")
        backbone = encoder
    else:
        raise ValueError(f"encoder must be None, a name from {sorted(encoder_lib.ENCODERS)} or a keras.Model, "
                         f"got {type(encoder).__name__}.")
    levels_found = encoder_lib.feature_levels(backbone)
    deepest = encoder_lib.deepest_level(backbone, levels_found)
    if depth > deepest:
        raise ValueError(f"filters give depth {depth}, but the encoder has features down to stride "
                         f"{2 ** deepest} only (depth <= {deepest}): pass at most {deepest + 1} filters.")
    return backbone, levels_found


def _encoder_spec(backbone: keras.Model) -> dict:
    """A custom encoder's config, with the layers of its keras-hub ``pyramid_outputs`` named (an
    attribute, which Keras' serialization drops): the reloaded model uses the same feature maps."""
    spec = keras.saving.serialize_keras_object(backbone)
    pyramid = getattr(backbone, "pyramid_outputs", None)
    if pyramid:
        spec = {**spec, "pyramid_layers": {key: tensor._keras_history[0].name for key, tensor in pyramid.items()}}
    return spec


def _encoder_from_spec(spec: dict) -> keras.Model:
    """The encoder of ``_encoder_spec``, its ``pyramid_outputs`` restored."""
    spec = dict(spec)
    names = spec.pop("pyramid_layers", None)
    backbone = keras.saving.deserialize_keras_object(spec)
    if names:
        backbone.pyramid_outputs = {key: backbone.get_layer(name).output for key, name in names.items()}
    return backbone


def _check_decoder(decoder, decoder_filters, filters, deep_supervision) -> tuple[int, ...] | None:
    """``decoder_filters`` checked for ``decoder`` (``None`` for the nested graph)."""
    depth = len(filters) - 1
    if decoder not in ("nested", "compact"):
        raise ValueError(f"decoder must be 'nested' or 'compact', got {decoder!r}.")
    if decoder == "nested":
        if decoder_filters is not None:
            raise ValueError("decoder_filters sets the widths of the compact decoder; pass decoder='compact'.")
        return None
    if deep_supervision:
        raise ValueError("decoder='compact' has one full-resolution head: pass deep_supervision=False.")
    if depth < 2:
        raise ValueError(f"decoder='compact' needs at least three filters (depth >= 2), got {tuple(filters)}.")
    if decoder_filters is None:
        return tuple(filters[:depth])
    try:
        widths = tuple(whole_number(f, "each of decoder_filters", 1) for f in decoder_filters)
    except TypeError as err:
        raise ValueError(f"decoder_filters must be a sequence of positive integers, got {decoder_filters!r}.") from err
    if len(widths) != depth:
        raise ValueError(f"decoder_filters needs one width per level 0..{depth - 1} ({depth} entries), got {widths}.")
    return widths


def _check_filters(filters) -> tuple[int, ...]:
    try:
        filters = tuple(whole_number(f, "each of filters", 1) for f in filters)
    except TypeError as err:
        raise ValueError(f"filters must be a sequence of positive integers, got {filters!r}.") from err
    if len(filters) < 2 or min(filters) < 1:
        raise ValueError(
            f"filters must hold at least two positive integers (depth = len(filters) - 1 >= 1), got {filters}."
        )
    return filters


def _check_input_shape(input_shape) -> tuple:
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"input_shape must be (height, width, channels), got {input_shape!r}."
        )
    height, width, channels = shape
    if channels is None:
        raise ValueError(f"input_shape needs a positive channel count, got {input_shape!r}.")
    whole_number(channels, "the channel count of input_shape", 1)
    for size in (height, width):
        if size is not None:
            whole_number(size, "a size of input_shape", 1)
    return tuple(None if s is None else int(s) for s in shape)


def _check_head_weights(head_weights, depth: int) -> tuple[float, ...]:
    if head_weights is None:
        return (1.0,) * depth
    weights = tuple(finite_number(w, "each of head_weights", 0.0) for w in head_weights)
    if len(weights) != depth:
        raise ValueError(f"head_weights needs {depth} entries (heads 1..{depth}), got {len(weights)}.")
    if min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"head_weights must be non-negative and not all zero, got {weights}.")
    return weights


def _resolve_activation(output_activation, num_classes: int):
    if output_activation == "auto":
        return "sigmoid" if num_classes == 1 else "softmax"
    if output_activation is None:
        return "linear"
    try:
        keras.activations.get(output_activation)
    except (ValueError, TypeError) as err:
        raise ValueError(f"Unknown output_activation {output_activation!r}.") from err
    return output_activation
