"""Writes the model files of this folder with keras-unetpp 0.1.0 (the subclassed UNet++), so that
tests check that files saved by that release still load. Run once with that release installed;
the files and the inputs/outputs beside them are committed."""

import sys
from pathlib import Path

import keras
import numpy as np

from keras_unetpp import BinaryIoU, FocalDiceLoss, UNetPlusPlus
from keras_unetpp.models import with_preprocessing


def main() -> None:
    """Writes the files (importing this module, as pytest's doctest collection does, writes nothing)."""
    here = Path(__file__).parent
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((2, 20, 28, 3)).astype("float32")
    y = (x[..., :1] > 0.5).astype("float32")
    models = {
        "plain": UNetPlusPlus((None, None, 3), filters=(2, 4, 8)),
        "deep_supervision": UNetPlusPlus((None, None, 3), filters=(2, 4, 8), deep_supervision=True),
        "multiclass": UNetPlusPlus((None, None, 3), num_classes=3, filters=(2, 4)),
    }
    for model in models.values():
        model.compile(optimizer="adam", loss=FocalDiceLoss() if model.num_classes == 1 else "categorical_crossentropy",
                      metrics=[BinaryIoU()] if model.num_classes == 1 else [])
        model.fit(x, y if model.num_classes == 1 else keras.utils.to_categorical((x[..., 0] * 3).astype(int), 3),
                  epochs=2, verbose=0)
    models["pruned"] = models["deep_supervision"].prune(1)
    models["segmenter"] = with_preprocessing(models["deep_supervision"], channels=3, median_kernel=3, downsample=2)
    raw = (x * 255).astype("uint8")
    for name, model in models.items():
        model.save(here / f"{name}.keras")
        np.save(here / f"{name}_expected.npy", model.predict(raw if name == "segmenter" else x, verbose=0))
    np.save(here / "inputs.npy", x)
    print("written:", sorted(models), file=sys.stderr)


if __name__ == "__main__":
    main()
