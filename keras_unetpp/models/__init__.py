from keras_unetpp.models.blocks import SyncBatchNormalization
from keras_unetpp.models.preprocessing import downsample_masks, preprocess_images, preprocessing_layers
from keras_unetpp.models.unet_plus_plus import UNetPlusPlus

__all__ = ["SyncBatchNormalization", "UNetPlusPlus", "downsample_masks", "preprocess_images", "preprocessing_layers"]
