"""What the entry points need to know about a model, read from the model alone.

``predict_tiled``, ``predict_augmented``, ``export``, the command line and
``geo`` all ask the same questions of the model they are given: how many input
channels, which input size, how many classes, whether it carries its own
preprocessing and which input values it expects. [`describe_model()`][keras_unetpp.model_info.describe_model]
answers them once, for any Keras model (UNet++, a pruned one, one wrapped by
[`with_preprocessing()`][keras_unetpp.models.with_preprocessing], or your own functional model), and
[`ModelInfo.check_input()`][keras_unetpp.model_info.ModelInfo.check_input] gives the one error message for an input that does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class ModelInfo:
    """A model's input and output contract.

    Attributes:
        channels: Input channels, or None if the model does not say.
        height: Fixed input height, or None for any.
        width: Fixed input width, or None for any.
        classes: Output channels (1: binary probabilities).
        has_preprocessing: The model scales raw values itself (it starts with the
            ``input_scale`` layer of ``with_preprocessing``).
        whole_image: The model resizes every input to one working size
            (``with_preprocessing(..., working_size=...)``): it must see whole
            images, never tiles.
        input_range: ``(low, high)`` of the input values the model was made for:
            ``(0, 1 / input_scale)`` with preprocessing (``(0, 255)`` for uint8
            images), ``(0, 1)`` for a bare ``UNetPlusPlus``, None for a model
            that does not say (one built outside this library).
        symmetries: The ``(transpose, flip_up_down, flip_left_right)``
            transforms the model was trained under, as its
            [`Symmetries`][keras_unetpp.layers.Symmetries] layer records them
            (``with_preprocessing(..., symmetries=...)``); None where it does not say.
    """

    channels: int | None
    height: int | None
    width: int | None
    classes: int
    has_preprocessing: bool
    input_range: tuple[float, float] | None
    whole_image: bool = False
    symmetries: tuple | None = None

    @property
    def input_shape(self) -> tuple:
        """``(height, width, channels)`` of one image (None where free)."""
        return (self.height, self.width, self.channels)

    def check_input(self, shape, what: str = "the input", size=None) -> None:
        """Raises a ValueError naming the problem when an array of ``shape`` (channels last)
        cannot go through the model in windows of ``size`` (default: its own height and width).

        Args:
            shape: The array's shape, channels last.
            what: How the message names what the model would see (e.g. ``"windows of tile_size=256"``).
            size: ``(height, width)`` the model will see.
        """
        if self.channels is not None and shape[-1] != self.channels:
            raise ValueError(f"The model takes {self.channels} input channel(s), the input has {shape[-1]} "
                             f"(shape {tuple(shape)}).")
        size = tuple(shape[-3:-1]) if size is None else tuple(size)
        fixed = (self.height, self.width)
        if any(s is not None and s != d for s, d in zip(fixed, size)):
            raise ValueError(f"The model takes inputs of {fixed} (height, width), not {what} of {size}.")


def describe_model(model: keras.Model) -> ModelInfo:
    """The [`ModelInfo`][keras_unetpp.model_info.ModelInfo] of ``model``.

    Args:
        model: A built Keras model taking ``(N, H, W, C)`` images.

    Returns:
        Its input and output contract.

    Raises:
        ValueError: If the model has no known input shape (a subclassed model never called).

    Examples:
        >>> from keras_unetpp import UNetPlusPlus
        >>> from keras_unetpp.models import with_preprocessing
        >>> core = UNetPlusPlus((None, None, 3), num_classes=2, filters=(2, 4))
        >>> describe_model(with_preprocessing(core, median_kernel=0))
        ModelInfo(channels=3, height=None, width=None, classes=2, has_preprocessing=True, input_range=(0.0, 255.0), whole_image=False, symmetries=None)
    """
    inputs = getattr(model, "inputs", None)
    outputs = getattr(model, "outputs", None)
    if not inputs:
        raise ValueError(f"Cannot tell the input shape of model {model.name!r}: call it once on a batch, or build "
                         "it as a functional model.")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4:
        raise ValueError(f"Model {model.name!r} takes inputs of shape {shape}; segmentation models here take "
                         "(N, H, W, C) images.")
    classes = getattr(model, "num_classes", None) or (int(outputs[0].shape[-1]) if outputs else 1)
    from keras_unetpp.models import UNetPlusPlus

    scale = _input_scale(model)
    if scale is not None:
        input_range = (0.0, float(round(1.0 / scale, 6)))
    else:
        input_range = (0.0, 1.0) if isinstance(model, UNetPlusPlus) else None
    whole_image = any(layer.name == "to_working_size" for layer in getattr(model, "layers", []))
    return ModelInfo(channels=shape[-1], height=shape[1], width=shape[2], classes=int(classes),
                     has_preprocessing=scale is not None, input_range=input_range, whole_image=whole_image,
                     symmetries=_declared_symmetries(model))


def _declared_symmetries(model) -> tuple | None:
    """The transforms of the model's ``Symmetries`` layer, if it has one."""
    from keras_unetpp.layers.symmetries import Symmetries

    for layer in getattr(model, "layers", []):
        if isinstance(layer, Symmetries):
            return layer.transforms
    return None


def _input_scale(model) -> float | None:
    """The scale of the model's ``input_scale`` layer (``with_preprocessing``), if it has one."""
    for layer in getattr(model, "layers", []):
        if layer.name == "input_scale" and isinstance(layer, keras.layers.Rescaling):
            return float(layer.scale)
    return None
