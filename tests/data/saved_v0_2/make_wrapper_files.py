"""Writes the fixtures of ``tests/models/test_saved_wrappers.py``: models wrapped by the functional
``with_preprocessing`` of keras-unetpp 0.1.x (before ``Segmenter``), which named its layers
(``input_scale``, ``to_working_scale``, ``to_working_size``) instead of stating its facts in a config.

Run with that code (commit 1e8c769): ``python tests/data/saved_v0_2/make_wrapper_files.py``. The predictions
on ``inputs.npy`` are saved beside each file: the reference is what the old code computed.
"""

from pathlib import Path

import keras
import numpy as np

from keras_unetpp import UNetPlusPlus
from keras_unetpp.models import with_preprocessing

HERE = Path(__file__).resolve().parent


def main():
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (2, 40, 52, 3)).astype(np.uint8)
    np.save(HERE / "inputs.npy", images)
    kinds = {
        "aerial": lambda: with_preprocessing(UNetPlusPlus((None, None, 3), filters=(4, 8, 16)), median_kernel=5,
                                             downsample=2, symmetries="dihedral"),
        "films": lambda: with_preprocessing(UNetPlusPlus((None, None, 3), filters=(4, 8)), median_kernel=0,
                                            working_size=(32, 32), symmetries="mirror"),
        "classes": lambda: with_preprocessing(UNetPlusPlus((None, None, 3), num_classes=3, filters=(4, 8)),
                                              median_kernel=3),
    }
    for kind, build in kinds.items():
        model = build()
        model.save(HERE / f"{kind}.keras")
        np.save(HERE / f"{kind}_expected.npy", model.predict(images, verbose=0))


if __name__ == "__main__":
    main()
