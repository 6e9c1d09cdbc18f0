"""Export trained models for deployment outside Python / Keras, through
Keras' own ``Model.export``: TensorFlow SavedModel, ONNX and LiteRT (TFLite).

``UNetPlusPlus`` and the models of ``with_preprocessing`` are functional
models, so ``model.export(path, format=...)`` works on them directly.
``export_model`` adds what deployment needs on top: LiteRT wants a fixed
input size and batch 1 to keep every convolution a built-in op, and a fixed
``input_shape`` for the other formats too; for those it exports a functional
model with that explicit input (sharing the weights) called in inference mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras
import numpy as np

from keras_unetpp.segmenter import describe_model

EXPORT_FORMATS = ("tf_saved_model", "onnx", "litert")
SUFFIXES = {"tf_saved_model": "", "onnx": ".onnx", "litert": ".tflite"}


def model_input_shape(model: keras.Model) -> tuple:
    """The per-image input shape ``(H, W, C)`` of a model (H, W may be None).

    Raises:
        ValueError: If the model has no known input shape.
    """
    return describe_model(model).input_shape


def inference_model(model: keras.Model, input_shape: Sequence[int | None] | None = None,
                    batch_size: int | None = None) -> keras.Model:
    """A functional model that calls ``model`` in inference mode on an
    explicit input (what the exporters need).

    Args:
        model: Any Keras segmentation model (UNetPlusPlus, a pruned one, one
            from [`with_preprocessing()`][keras_unetpp.with_preprocessing]).
        input_shape: ``(H, W, C)``; default the model's own (H, W may be None).
        batch_size: Fixed batch size, or None for any.

    Returns:
        A ``keras.Model`` sharing ``model``'s weights.
    """
    shape = tuple(input_shape) if input_shape is not None else model_input_shape(model)
    inputs = keras.Input(shape=shape, batch_size=batch_size, name="images")
    return keras.Model(inputs, model(inputs, training=False), name=f"{model.name}_inference")


def export_model(
    model: keras.Model,
    path: str | Path,
    format: str = "tf_saved_model",
    input_shape: Sequence[int | None] | None = None,
    verbose: bool = False,
    overwrite: bool = False,
) -> Path:
    """Exports a trained model with ``keras.Model.export``.

    - ``"tf_saved_model"``: a SavedModel folder (TensorFlow Serving, TF.js,
      ``tf.saved_model.load``); any batch and image size unless
      ``input_shape`` fixes them. Its ``serve`` signature takes float32
      ``(N, H, W, C)``.
    - ``"onnx"``: an ``.onnx`` file (onnxruntime, TensorRT, OpenVINO); needs
      ``tf2onnx`` on the TensorFlow backend (``pip install tf2onnx``).
    - ``"litert"``: a ``.tflite`` file (LiteRT / TensorFlow Lite); fixed
      input size (default 256 x 256) and batch 1, so every op is a built-in
      (with free sizes TFLite falls back to "Flex" TensorFlow ops, which
      the standard interpreter cannot run).

    Args:
        model: The model (preprocessing inside it travels along).
        path: Output folder (SavedModel) or file.
        format: One of ``EXPORT_FORMATS``.
        input_shape: ``(H, W, C)`` of the exported input; default the
            model's own, for LiteRT ``(256, 256, C)`` where it is free.
        verbose: Let Keras print what it exports.
        overwrite: Replace an existing file, or write into a SavedModel folder that is not empty
            (refused otherwise, before anything is exported).

    Returns:
        The path written.

    Raises:
        ValueError: For an unknown format, or an output path that exists (without ``overwrite``)
            or is of the wrong kind (a folder where a file goes, or the reverse).
        ImportError: When the format's converter is not installed, naming it.

    Examples:
        >>> from keras_unetpp import UNetPlusPlus
        >>> import tempfile, pathlib
        >>> model = UNetPlusPlus((None, None, 1), filters=(2, 4))
        >>> out = export_model(model, pathlib.Path(tempfile.mkdtemp()) / "unetpp")  # doctest: +SKIP
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {format!r}.")
    shape = tuple(input_shape) if input_shape is not None else model_input_shape(model)
    batch_size = None
    if format == "litert":
        shape = tuple(256 if s is None else s for s in shape[:2]) + tuple(shape[2:])
        batch_size = 1
    if format == "onnx" and keras.backend.backend() == "tensorflow":
        try:
            import tf2onnx  # noqa: F401
        except ImportError:
            raise ImportError("ONNX export on the TensorFlow backend needs tf2onnx: pip install tf2onnx onnx") from None
    path = Path(path)
    if SUFFIXES[format] and path.suffix != SUFFIXES[format]:
        path = path.with_suffix(SUFFIXES[format])
    check_export_path(path, format, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    own = model_input_shape(model)
    target = model if (shape == own and batch_size is None) else inference_model(model, shape, batch_size)
    if format == "onnx":  # Keras' ONNX exporter asks for one eager call first, functional or not
        target(np.zeros((1,) + tuple(64 if s is None else s for s in shape), "float32"), training=False)
    target.export(str(path), format=format, verbose=verbose)
    return path


def check_export_path(path: Path, format: str, overwrite: bool = False) -> None:
    """Refuses, before any work, an output that exists (without ``overwrite``) or is of the wrong kind.

    Args:
        path: The output file (ONNX, LiteRT) or folder (SavedModel).
        format: One of ``EXPORT_FORMATS``.
        overwrite: Allow replacing a file or writing into a non-empty folder.

    Raises:
        ValueError: Naming the path and what to do.

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> check_export_path(folder / "new.onnx", "onnx")  # nothing there: fine
    """
    path = Path(path)
    if format == "tf_saved_model":
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is a file; a SavedModel is a folder: choose another output path.")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise ValueError(f"{path} is a folder that is not empty; pass overwrite=True (--overwrite) to write "
                             "into it, or choose a new folder.")
        return
    if path.is_dir():
        raise ValueError(f"{path} is a folder; {format} export writes one file: name a file (e.g. {path / 'model'}"
                         f"{SUFFIXES[format]}).")
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists; pass overwrite=True (--overwrite) to replace it, or choose another path.")
