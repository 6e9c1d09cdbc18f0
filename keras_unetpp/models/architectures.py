"""The library's measured default models, by name: one definition for the examples, ``keras-unetpp train``
and the benchmarks.

- ``"compact_lite0"``: ImageNet EfficientNet-Lite0 under the compact decoder, segmentation_models_pytorch's
  ``UnetPlusPlus`` graph but for a 1x1 head; 8.0 forward GFLOP per 256 px RGB image. The aerial
  default, and ``keras-unetpp train``'s on overhead RGB imagery.
- ``"nested_lite0"``: the same encoder under the paper's nested decoder (widths 16-256, deep
  supervision); 20.0 GFLOP, for the same Tile 7 IoU at equal training time (below).
- ``"plain"``: the paper's UNet++ without an encoder, widths 8-256 over six levels, deep
  supervision. The lung default, and ``train``'s on films and photos.

At equal training time on the Dubai tiles the compact decoder scored Tile 7 IoU 0.596 / 0.590 (two
seeds) against the nested decoder's 0.606 / 0.587, with 40 % of its work per image
(docs/benchmarks.md).
"""

from __future__ import annotations

from keras_unetpp.models.unet_plus_plus import UNetPlusPlus

#: name -> the ``UNetPlusPlus`` keyword arguments that define it (input shape, classes and
#: encoder weights are the caller's).
ARCHITECTURES: dict[str, dict] = {
    "compact_lite0": {"encoder": "efficientnet_lite0", "filters": (16, 16, 24, 40, 112, 320), "decoder": "compact",
                      "decoder_filters": (16, 32, 64, 128, 256), "upsampling": "nearest"},
    "nested_lite0": {"encoder": "efficientnet_lite0", "filters": (16, 32, 64, 128, 256, 256),
                     "deep_supervision": True},
    "plain": {"filters": (8, 16, 32, 64, 128, 256), "deep_supervision": True},
}


def architecture(name: str) -> dict:
    """The keyword arguments of a named default (a copy: change it freely).

    Args:
        name: A key of [`ARCHITECTURES`][keras_unetpp.models.architectures.ARCHITECTURES].

    Returns:
        ``UNetPlusPlus`` keyword arguments.

    Raises:
        ValueError: For an unknown name.

    Examples:
        >>> architecture("compact_lite0")["decoder_filters"]
        (16, 32, 64, 128, 256)
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}.")
    return dict(ARCHITECTURES[name])


def build_architecture(name: str, channels: int = 3, num_classes: int = 1, encoder_weights: str | None = None,
                       **overrides) -> UNetPlusPlus:
    """A ``UNetPlusPlus`` of a named default.

    Args:
        name: A key of [`ARCHITECTURES`][keras_unetpp.models.architectures.ARCHITECTURES].
        channels: Input bands (any size).
        num_classes: Output channels (1: binary).
        encoder_weights: For the architectures with an encoder: ``None`` (random), ``"imagenet"``
            (the ``pretrained`` extra) or a ``.weights.h5`` path; must be ``None`` for ``"plain"``.
        **overrides: Any other ``UNetPlusPlus`` argument, replacing the architecture's own (other
            ``filters`` without ``decoder_filters``: the compact decoder's main path takes ``filters``).

    Returns:
        The model.

    Raises:
        ValueError: For an unknown name, or encoder weights for an architecture without an encoder.

    Examples:
        >>> model = build_architecture("plain", channels=1, filters=(4, 8, 16))
        >>> model.filters, model.deep_supervision
        ((4, 8, 16), True)
    """
    options = architecture(name)
    if encoder_weights is not None:
        if options.get("encoder") is None:
            raise ValueError(f"Architecture {name!r} has no encoder: encoder_weights must be None.")
        options["encoder_weights"] = encoder_weights
    if "decoder_filters" in options and "decoder_filters" not in overrides and \
            tuple(overrides.get("filters", options["filters"])) != tuple(options["filters"]):
        del options["decoder_filters"]   # other widths: the compact decoder's main path follows them
    options.update(overrides)
    return UNetPlusPlus((None, None, channels), num_classes=num_classes, **options)
