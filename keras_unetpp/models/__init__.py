from keras_unetpp.models.unet_plus_plus import UNetPlusPlus

__all__ = ["UNetPlusPlus"]
