from keras_unetpp.models.architectures import ARCHITECTURES, architecture, build_architecture
from keras_unetpp.models.blocks import SyncBatchNormalization
from keras_unetpp.models.preprocessing import downsample_masks, preprocess_images, preprocessing_layers
from keras_unetpp.models.unet_plus_plus import UNetPlusPlus

__all__ = ["ARCHITECTURES", "SyncBatchNormalization", "UNetPlusPlus", "architecture", "build_architecture",
           "downsample_masks", "preprocess_images", "preprocessing_layers"]
