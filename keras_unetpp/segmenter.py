"""The saved, user-facing model: a backbone with its preprocessing, and the facts every entry point needs.

A [`Segmenter`][keras_unetpp.Segmenter] takes raw images (e.g. uint8 RGB scenes) and returns
probabilities at the input's full resolution. Its config *states* what it takes and how it was
trained: input channels and value range, median kernel, working scale or size, the symmetries it
was trained under, class names and the default threshold. [`describe_model()`][keras_unetpp.segmenter.describe_model]
reads these facts once, as a [`ModelInfo`][keras_unetpp.segmenter.ModelInfo], for every entry point
(``predict_tiled``, ``predict_augmented``, GeoTIFF, export, ``keras-unetpp predict | evaluate``); a
bare [`UNetPlusPlus`][keras_unetpp.UNetPlusPlus] states its own facts (float input in [0, 1]).

A segmenter travels as a ``.keras`` file (``model.save``) or as a preset folder
(``save_to_preset(dir)`` / ``Segmenter.from_preset(dir)``: ``config.json``, ``model.weights.h5``
and ``metadata.json``, keras-hub's layout), so it can be shared on a model hub.

Files saved before ``Segmenter`` existed (a functional model from ``with_preprocessing`` whose
layers carried the facts in their names) become a ``Segmenter`` when
[`keras_unetpp.load_model()`][keras_unetpp.load_model] opens them
([`upgrade_wrapper()`][keras_unetpp.segmenter.upgrade_wrapper]), and predict exactly what they did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from keras_unetpp.checks import whole_number
from keras_unetpp.layers.median_blur import MedianBlur
from keras_unetpp.layers.symmetries import Symmetries, symmetry_transforms
from keras_unetpp.models.blocks import BilinearUpsampling, CropToReference
from keras_unetpp.models.preprocessing import AreaResize, ResizeToReference, check_preprocessing, preprocessing_layers
from keras_unetpp.models.unet_plus_plus import UNetPlusPlus

PRESET_CONFIG, PRESET_WEIGHTS, PRESET_METADATA = "config.json", "model.weights.h5", "metadata.json"


@dataclass(frozen=True)
class ModelInfo:
    """A model's input and output contract, as the model states it.

    Attributes:
        channels: Input channels, or None if the model does not say.
        height: Fixed input height, or None for any.
        width: Fixed input width, or None for any.
        classes: Output channels (1: binary probabilities).
        has_preprocessing: The model scales raw values itself (a ``Segmenter``).
        input_range: ``(low, high)`` of the input values the model takes: ``(0, 255)`` for a
            ``Segmenter`` of 8-bit images, ``(0, 1)`` for a bare ``UNetPlusPlus``, None for a
            model that does not say (one built outside this library).
        whole_image: The model resizes every input to one working size: it must see whole
            images, never tiles.
        symmetries: The ``(transpose, flip_up_down, flip_left_right)`` transforms the model was
            trained under; None where it does not say.
        size_multiple: Input sizes that are multiples of this are pooled on the model's own grid
            (a UNet++ pads to ``2**depth``, times a working-scale factor before it); 1 if none.
        median_kernel: The median blur the model applies first (0: none).
        class_names: Names of the output channels, or None.
        threshold: The default foreground threshold of a binary model.
    """

    channels: int | None
    height: int | None
    width: int | None
    classes: int
    has_preprocessing: bool
    input_range: tuple[float, float] | None
    whole_image: bool = False
    symmetries: tuple | None = None
    size_multiple: int = 1
    median_kernel: int = 0
    class_names: tuple | None = None
    threshold: float = 0.5

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


#: The facts of a model that states none (a subclassed model never called, say).
UNKNOWN = ModelInfo(None, None, None, 1, False, None)


@keras.saving.register_keras_serializable(package="keras_unetpp")
class Segmenter(keras.Model):
    """A trained backbone with its preprocessing: raw images in, probabilities at full resolution out.

    The graph is ``input -> scale input_range onto [0, 1] -> MedianBlur -> (pad, AveragePooling2D
    | AreaResize) -> backbone -> (bilinear upsampling, crop | resize back)``, a functional
    ``keras.Model`` (keras-hub's task pattern: the config holds the backbone and the facts, and
    rebuilding from it gives the same graph). Every fact is an attribute and in ``get_config()``.

    Args:
        backbone: The trained segmentation model (e.g. a ``UNetPlusPlus``) taking preprocessed
            images in [0, 1] at the working scale.
        channels: Input channels.
        input_range: ``(low, high)`` of the raw values the segmenter takes; they are mapped
            linearly onto [0, 1]. ``(0, 255)`` for 8-bit images.
        median_kernel: Median blur window (odd) the backbone was trained with; 0 for none.
            Required: it must match training (a model trained without the blur and wrapped
            with a 5x5 one changes its probabilities by up to 0.69).
        downsample: Integer factor of the working scale (area averaging; 1: full size).
        working_size: ``(height, width)``: every input is resized to this size by area
            averaging and the probabilities are resized back (bilinear); for models trained on
            whole images resized to one size (chest films). Not combined with ``downsample``.
        symmetries: The transforms the backbone was trained under (``"dihedral"``, ``"mirror"``,
            ``"flips"``, or triples of ``DIHEDRAL_TRANSFORMS``); test-time augmentation
            (``tta=True``, ``--tta``) averages over these. None: not stated (TTA uses all 8).
        class_names: Names of the output channels (for reports and polygons), or None.
        threshold: Default foreground threshold of a binary model, in (0, 1).
        name: Model name.
        **kwargs: Standard model arguments (``trainable``, ...).

    Returns:
        A model mapping (N, H, W, channels) raw images to (N, H, W, classes) float32
            probabilities, any H and W.

    Raises:
        ValueError: For invalid preprocessing arguments.

    Examples:
        >>> from keras_unetpp import Segmenter, UNetPlusPlus
        >>> model = Segmenter(UNetPlusPlus((None, None, 3), filters=(4, 8)), median_kernel=5, downsample=2,
        ...                   symmetries="dihedral")
        >>> model.predict(np.zeros((1, 30, 45, 3), np.uint8), verbose=0).shape
        (1, 30, 45, 1)
        >>> describe_model(model).input_range, describe_model(model).size_multiple
        ((0.0, 255.0), 4)
    """

    def __init__(self, backbone: keras.Model, channels: int = 3, input_range: Sequence[float] = (0.0, 255.0),
                 median_kernel: int | None = None, downsample: int = 1,
                 working_size: Sequence[int] | None = None, symmetries=None,
                 class_names: Sequence[str] | None = None, threshold: float = 0.5, name: str = "segmenter",
                 **kwargs):
        channels = whole_number(channels, "channels", 1)
        if median_kernel is None:
            raise ValueError("Segmenter needs median_kernel: the median blur the model was trained with "
                             "(5 for the aerial recipe, 0 for none). It must match training.")
        median_kernel = whole_number(median_kernel, "median_kernel", 0)
        downsample = whole_number(downsample, "downsample", 1)
        try:
            low, high = (float(v) for v in input_range)
        except (TypeError, ValueError):
            raise ValueError(f"input_range must be (low, high), got {input_range!r}.") from None
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"input_range needs finite low < high, got {input_range!r}.")
        check_preprocessing(1.0 / (high - low), median_kernel, downsample)
        if working_size is not None:
            if downsample != 1:
                raise ValueError("working_size and downsample are two ways to set the working scale: pass one.")
            working_size = tuple(whole_number(v, "working_size", 1) for v in working_size)
            if len(working_size) != 2:
                raise ValueError(f"working_size must be (height, width), got {working_size!r}.")
        transforms = None if symmetries is None else symmetry_transforms(symmetries)
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}.")
        classes = int(backbone.outputs[0].shape[-1]) if getattr(backbone, "outputs", None) else None
        if class_names is not None:
            class_names = tuple(str(v) for v in class_names)
            if classes is not None and len(class_names) not in (classes, 2 if classes == 1 else classes):
                raise ValueError(f"class_names names {len(class_names)} classes; the backbone has {classes} "
                                 "output channel(s).")

        inputs = keras.Input((None, None, channels), name="raw_images")
        x = inputs
        for layer in preprocessing_layers(1.0 / (high - low), median_kernel, downsample, offset=-low / (high - low)):
            x = layer(x)
        if working_size is not None:
            x = AreaResize(*working_size, name="to_working_size")(x)
        y = backbone(x)
        if working_size is not None:
            y = ResizeToReference(dtype="float32", name="to_input_size")([y, inputs])
        if downsample > 1:
            y = BilinearUpsampling(downsample, dtype="float32", name="to_input_scale")(y)
            y = CropToReference(dtype="float32", name="crop_to_input")([y, inputs])
        super().__init__(inputs, y, name=name, **kwargs)
        self.backbone = backbone
        self.channels = channels
        self.input_range = (low, high)
        self.median_kernel = median_kernel
        self.downsample = downsample
        self.working_size = working_size
        self.symmetries = transforms
        self.class_names = class_names
        self.threshold = float(threshold)

    def get_config(self) -> dict:
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "channels": self.channels,
            "input_range": list(self.input_range),
            "median_kernel": self.median_kernel,
            "downsample": self.downsample,
            "working_size": None if self.working_size is None else list(self.working_size),
            "symmetries": None if self.symmetries is None else [list(t) for t in self.symmetries],
            "class_names": None if self.class_names is None else list(self.class_names),
            "threshold": self.threshold,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config: dict) -> Segmenter:
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)

    def save_to_preset(self, directory: str | Path) -> Path:
        """Writes the segmenter as a preset folder: ``config.json``, ``model.weights.h5``, ``metadata.json``.

        Args:
            directory: The folder (created; it must not hold a preset already).

        Returns:
            The folder.

        Raises:
            FileExistsError: If the folder holds a preset already.

        Examples:
            >>> import tempfile, pathlib
            >>> from keras_unetpp import UNetPlusPlus
            >>> folder = pathlib.Path(tempfile.mkdtemp()) / "buildings"
            >>> model = Segmenter(UNetPlusPlus((None, None, 3), filters=(2, 4)), median_kernel=0)
            >>> sorted(p.name for p in model.save_to_preset(folder).iterdir())
            ['config.json', 'metadata.json', 'model.weights.h5']
        """
        directory = Path(directory)
        if any((directory / name).exists() for name in (PRESET_CONFIG, PRESET_WEIGHTS, PRESET_METADATA)):
            raise FileExistsError(f"{directory} holds a preset already; choose another folder or delete it first.")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / PRESET_CONFIG).write_text(json.dumps(keras.saving.serialize_keras_object(self), indent=2))
        self.save_weights(directory / PRESET_WEIGHTS)
        facts = describe_model(self)
        (directory / PRESET_METADATA).write_text(json.dumps({
            "keras_unetpp_version": _installed_version(), "keras_version": keras.__version__,
            "parameter_count": int(self.count_params()), "channels": facts.channels, "classes": facts.classes,
            "input_range": list(facts.input_range), "class_names": facts.class_names,
        }, indent=2))
        return directory

    @classmethod
    def from_preset(cls, directory: str | Path) -> Segmenter:
        """Loads a segmenter from a preset folder written by ``save_to_preset``.

        Args:
            directory: The folder.

        Returns:
            The ``Segmenter``, weights loaded.

        Raises:
            FileNotFoundError: If the folder lacks one of the preset's files.
            ValueError: If its config is not a ``Segmenter``'s.
        """
        directory = Path(directory)
        missing = [name for name in (PRESET_CONFIG, PRESET_WEIGHTS) if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{directory} is not a preset folder: it lacks {', '.join(missing)}.")
        config = json.loads((directory / PRESET_CONFIG).read_text())
        if config.get("class_name") != "keras_unetpp>Segmenter" and config.get("class_name") != "Segmenter":
            raise ValueError(f"{directory / PRESET_CONFIG} describes a {config.get('class_name')!r}, not a Segmenter.")
        model = keras.saving.deserialize_keras_object(config)
        model.load_weights(directory / PRESET_WEIGHTS)
        return model


def with_preprocessing(model: keras.Model, channels: int = 3, input_scale: float = 1 / 255,
                       median_kernel: int | None = None, downsample: int = 1, name: str = "segmenter",
                       working_size: tuple[int, int] | None = None, symmetries=None,
                       class_names: Sequence[str] | None = None, threshold: float = 0.5) -> Segmenter:
    """Wraps a trained model so that it takes raw images: a [`Segmenter`][keras_unetpp.Segmenter].

    Args:
        model: The trained segmentation model, taking preprocessed images at the working scale.
        channels: Input channels.
        input_scale: Multiplies the raw values (``1/255`` for uint8): the segmenter takes
            ``0..1/input_scale``.
        median_kernel: Median blur window (odd) the model was trained with; 0 for none. Required.
        downsample: Integer factor of the working scale the model was trained at.
        name: Name of the segmenter.
        working_size: ``(height, width)`` every input is resized to (see ``Segmenter``).
        symmetries: The transforms the model was trained under (see ``Segmenter``).
        class_names: Names of the output channels.
        threshold: Default foreground threshold.

    Returns:
        The ``Segmenter``.

    Raises:
        ValueError: For invalid preprocessing arguments.

    Examples:
        >>> from keras_unetpp import UNetPlusPlus
        >>> full = with_preprocessing(UNetPlusPlus((None, None, 3), filters=(4, 8)), median_kernel=5, downsample=2)
        >>> full.predict(np.zeros((1, 30, 45, 3), np.uint8), verbose=0).shape
        (1, 30, 45, 1)
    """
    if not np.isfinite(input_scale) or input_scale <= 0:
        raise ValueError(f"input_scale must be a positive number, got {input_scale}.")
    return Segmenter(model, channels=channels, input_range=(0.0, 1.0 / float(input_scale)),
                     median_kernel=median_kernel, downsample=downsample, working_size=working_size,
                     symmetries=symmetries, class_names=class_names, threshold=threshold, name=name)


def describe_model(model: keras.Model) -> ModelInfo:
    """The [`ModelInfo`][keras_unetpp.segmenter.ModelInfo] of ``model``, from the facts it states.

    A ``Segmenter`` states all of them; a ``UNetPlusPlus`` takes float input in [0, 1]; any other
    functional model states its shapes alone.

    Args:
        model: A built Keras model taking ``(N, H, W, C)`` images.

    Returns:
        Its input and output contract.

    Raises:
        ValueError: If the model has no known input shape (a subclassed model never called).

    Examples:
        >>> from keras_unetpp import UNetPlusPlus
        >>> core = UNetPlusPlus((None, None, 3), num_classes=2, filters=(2, 4))
        >>> info = describe_model(with_preprocessing(core, median_kernel=0))
        >>> info.input_range, info.classes, info.size_multiple
        ((0.0, 255.0), 2, 2)
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
    classes = int(getattr(model, "num_classes", None) or (int(outputs[0].shape[-1]) if outputs else 1))
    common = dict(channels=shape[-1], height=shape[1], width=shape[2], classes=classes)
    if isinstance(model, Segmenter):
        multiple = _pad_multiple(model.backbone)
        return ModelInfo(**common, has_preprocessing=True, input_range=model.input_range,
                         whole_image=model.working_size is not None, symmetries=model.symmetries,
                         size_multiple=multiple * model.downsample if multiple > 1 else 1,
                         median_kernel=model.median_kernel, class_names=model.class_names,
                         threshold=model.threshold)
    if isinstance(model, UNetPlusPlus):
        return ModelInfo(**common, has_preprocessing=False, input_range=(0.0, 1.0),
                         size_multiple=_pad_multiple(model))
    return ModelInfo(**common, has_preprocessing=False, input_range=None)


def _installed_version() -> str:
    """This library's version as installed (read without importing the package's top level)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("keras-unetpp")
    except PackageNotFoundError:
        return "unknown"


def _pad_multiple(model) -> int:
    """The size a UNet++ pads its input to (a model that is not one: 1)."""
    return int(model.pad_to_multiple) if isinstance(model, UNetPlusPlus) else 1


def upgrade_wrapper(model: keras.Model) -> keras.Model:
    """A model saved by the functional ``with_preprocessing`` of earlier releases, as a ``Segmenter``.

    Such a model carried its facts in the names of its layers (``input_scale``,
    ``to_working_scale``, ``to_working_size``) and in a ``Symmetries`` layer. This is the one
    place that reads them: the backbone (the same object, weights and all) is wrapped again, so
    predictions are unchanged. Any other model is returned as it is.

    Args:
        model: A loaded model.

    Returns:
        A ``Segmenter`` for an old wrapper; ``model`` otherwise.
    """
    if isinstance(model, Segmenter) or isinstance(model, UNetPlusPlus):
        return model
    layers = {layer.name: layer for layer in getattr(model, "layers", [])}
    scale = layers.get("input_scale")
    if not isinstance(scale, keras.layers.Rescaling) or float(getattr(scale, "offset", 0.0) or 0.0) != 0.0:
        return model
    backbones = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(backbones) != 1:
        return model
    blur = next((layer for layer in model.layers if isinstance(layer, MedianBlur)), None)
    pooling = layers.get("to_working_scale")
    resize = layers.get("to_working_size")
    declared = next((layer for layer in model.layers if isinstance(layer, Symmetries)), None)
    return Segmenter(backbones[0], channels=int(model.inputs[0].shape[-1]),
                     input_range=(0.0, 1.0 / float(scale.scale)),
                     median_kernel=int(blur.kernel_size) if blur is not None else 0,
                     downsample=int(pooling.pool_size[0]) if pooling is not None else 1,
                     working_size=(resize.height, resize.width) if resize is not None else None,
                     symmetries=declared.transforms if declared is not None else None, name=model.name)
