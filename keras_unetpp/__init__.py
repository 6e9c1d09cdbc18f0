"""keras-unetpp: Keras 3 building blocks for image segmentation."""

import sys as _sys

if _sys.argv[:1] == ["-m"]:  # ``python -m keras_unetpp``: the command, whose backend starts without its start-up lines
    from keras_unetpp_cli import start_backend_quietly as _start_backend_quietly

    _start_backend_quietly()

from keras_unetpp import evaluation, layers
from keras_unetpp.inference import predict_tiled
from keras_unetpp.losses import CombinedLoss, FocalDiceLoss, HaloWeightedCrossEntropy, LabelCrossEntropy
from keras_unetpp.metrics import BinaryDice, BinaryIoU, MulticlassIoU
from keras_unetpp.models import UNetPlusPlus
from keras_unetpp.saving import load_model
from keras_unetpp.segmenter import Segmenter, describe_model, with_preprocessing

__version__ = "0.1.0"
__all__ = [
    "BinaryDice",
    "BinaryIoU",
    "CombinedLoss",
    "FocalDiceLoss",
    "HaloWeightedCrossEntropy",
    "LabelCrossEntropy",
    "MulticlassIoU",
    "Segmenter",
    "UNetPlusPlus",
    "describe_model",
    "evaluation",
    "layers",
    "load_model",
    "predict_tiled",
    "with_preprocessing",
    "__version__",
]
