"""keras-unetpp: Keras 3 building blocks for image segmentation."""

from keras_unetpp.models import UNetPlusPlus

__version__ = "0.1.0"
__all__ = ["UNetPlusPlus", "__version__"]
