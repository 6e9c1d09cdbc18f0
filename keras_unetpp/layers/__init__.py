"""Preprocessing and augmentation layers that move image and mask together."""

from keras_unetpp.layers.base import ImageMaskLayer, RandomImageMaskLayer
from keras_unetpp.layers.dihedral import DIHEDRAL_TRANSFORMS, RandomDihedral, RandomFlip, apply_dihedral, invert_dihedral
from keras_unetpp.layers.intensity import RandomBrightness, RandomContrast, RandomGaussianNoise
from keras_unetpp.layers.median_blur import MedianBlur, median_blur
from keras_unetpp.layers.opacity import RandomOpacity, opacity_map
from keras_unetpp.layers.pipelines import AugmentationPipeline, aerial_augmentation, xray_augmentation
from keras_unetpp.layers.rotation import RandomRotation
from keras_unetpp.layers.symmetries import Symmetries, symmetry_transforms

__all__ = [
    "DIHEDRAL_TRANSFORMS",
    "AugmentationPipeline",
    "ImageMaskLayer",
    "MedianBlur",
    "RandomBrightness",
    "RandomContrast",
    "RandomDihedral",
    "RandomFlip",
    "RandomGaussianNoise",
    "RandomImageMaskLayer",
    "RandomOpacity",
    "RandomRotation",
    "Symmetries",
    "aerial_augmentation",
    "apply_dihedral",
    "invert_dihedral",
    "median_blur",
    "opacity_map",
    "symmetry_transforms",
    "xray_augmentation",
]
