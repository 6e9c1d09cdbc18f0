"""The library on the JAX and PyTorch backends (each in a fresh interpreter,
since the backend is chosen at import). Skipped when the backend is missing."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import numpy as np, keras
    from scipy import ndimage
    from keras_unetpp import BinaryIoU, FocalDiceLoss, UNetPlusPlus, predict_tiled
    from keras_unetpp.layers import MedianBlur, aerial_augmentation, xray_augmentation
    assert keras.backend.backend() == "{backend}"
    rng = np.random.default_rng(0)
    x = rng.random((4, 20, 28, 1), dtype=np.float32)
    y = (x > 0.5).astype("float32")

    # model: deep supervision, focal dice loss, IoU metric, pruning
    model = UNetPlusPlus((None, None, 1), filters=(4, 8, 16), deep_supervision=True)
    model.compile(optimizer="adam", loss=FocalDiceLoss(), metrics=[BinaryIoU()])
    history = model.fit(x, y, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all(), history
    assert model.predict(x, verbose=0).shape == (4, 20, 28, 1)
    pruned = model.prune(1)
    head = keras.ops.convert_to_numpy(model.network(x, training=False)[0])
    np.testing.assert_allclose(pruned.predict(x, verbose=0), head, atol=1e-5)

    # tiled prediction with TTA: shape, range, and equal to the whole-image prediction on one tile
    scene = rng.random((45, 70, 1), dtype=np.float32)
    tiled = predict_tiled(model, scene, tile_size=32, tta=True, progress=False)
    assert tiled.shape == (45, 70, 1) and 0 <= tiled.min() and tiled.max() <= 1
    one = predict_tiled(model, scene[:32, :32], tile_size=32, progress=False)
    np.testing.assert_allclose(one, model.predict(scene[None, :32, :32], verbose=0)[0], atol=1e-5)

    # layers inside a model: median blur exact, augmentations inactive at inference
    images = rng.random((2, 16, 16, 3), dtype=np.float32)
    inputs = keras.Input((16, 16, 3))
    blur = keras.Model(inputs, MedianBlur(5)(inputs))
    np.testing.assert_array_equal(
        blur.predict(images, verbose=0), ndimage.median_filter(images, (1, 5, 5, 1), mode="nearest"))
    masks = (images[..., :1] > 0.5).astype("uint8")
    for pipeline in (aerial_augmentation(seed=1), xray_augmentation(seed=1)):
        a, b = pipeline(images, masks)
        assert a.shape == images.shape and set(np.unique(keras.ops.convert_to_numpy(b))) <= {{0, 1}}
    print("ok")
    """
)


@pytest.mark.parametrize("backend, module", [("jax", "jax"), ("torch", "torch")])
def test_library_on_other_backends(backend, module):
    pytest.importorskip(module, reason=f"{module} is not installed (pip install {module})")
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(backend=backend)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
