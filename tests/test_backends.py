"""The library on the TensorFlow, JAX and PyTorch backends (each in a fresh
interpreter, since the backend is chosen at import), gradients taken by each
backend's own autodiff. Skipped when the backend is missing."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains, runs subprocesses or exports: the full lane only

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
    head = keras.ops.convert_to_numpy(model.head_outputs(x)[0])
    np.testing.assert_allclose(pruned.predict(x, verbose=0), head, atol=1e-5)

    # a keras.applications encoder under the nested decoder: grayscale, deep supervision, prune, .keras
    import tempfile
    enc = UNetPlusPlus((None, None, 1), filters=(4, 8, 8), encoder="efficientnetv2b0", deep_supervision=True)
    enc.compile(optimizer="adam", loss=FocalDiceLoss())
    assert np.isfinite(enc.fit(x[:, :16, :16], y[:, :16, :16], epochs=1, verbose=0).history["loss"]).all()
    enc_prob = enc.predict(x, verbose=0)
    assert enc_prob.shape == (4, 20, 28, 1)
    path = tempfile.mkdtemp() + "/enc.keras"
    enc.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path).predict(x, verbose=0), enc_prob, atol=1e-5)
    assert enc.prune(1).predict(x, verbose=0).shape == (4, 20, 28, 1)

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
    # the loss's gradient, taken by this backend's own autodiff, against the analytic derivative
    yt = (rng.random((2, 6, 6, 1)) > 0.5).astype("float32")
    p0 = rng.uniform(0.05, 0.95, yt.shape).astype("float32")
    loss_fn = FocalDiceLoss(alpha=0.5, gamma=2.0, smooth=1.0)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        grad = np.asarray(jax.grad(lambda v: loss_fn(yt, v))(p0))
    elif backend == "torch":
        import torch
        v = torch.tensor(p0, requires_grad=True)
        loss_fn(yt, v).backward()
        grad = v.grad.numpy()
    else:
        import tensorflow as tf
        v = tf.Variable(p0)
        with tf.GradientTape() as tape:
            value = loss_fn(yt, v)
        grad = tape.gradient(value, v).numpy()
    y64, p64 = yt.astype(np.float64), p0.astype(np.float64)
    inter, total = np.sum(y64 * p64), np.sum(y64) + np.sum(p64) + 1.0
    dice = (2 * inter + 1.0) / total
    d_dice = (2 * y64 * total - (2 * inter + 1.0)) / total**2
    expected = -(1.0 + 0.5 * 2.0 * (1.0 - dice)) * d_dice
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-7)

    # mixed precision: finite loss and metric, float32 outputs, loss scaling for float16 only
    for policy in ("mixed_float16", "mixed_bfloat16"):
        keras.config.set_dtype_policy(policy)
        m = UNetPlusPlus((None, None, 1), filters=(4, 8), deep_supervision=True)
        m.compile(optimizer="adam", loss=FocalDiceLoss(), metrics=[BinaryIoU()])
        h = m.fit(x, y, epochs=2, verbose=0).history
        assert np.isfinite(h["loss"]).all() and np.isfinite(h["iou"]).all(), (policy, h)
        assert keras.backend.standardize_dtype(m.predict(x, verbose=0).dtype) == "float32", policy
        assert (policy == "mixed_float16") == isinstance(m.optimizer, keras.optimizers.LossScaleOptimizer), policy
    keras.config.set_dtype_policy("float32")
    print("ok")
    """
)


# TensorFlow, the default backend, runs every piece of this script in the rest of the suite.
@pytest.mark.parametrize("backend, module", [("jax", "jax"), ("torch", "torch")])
def test_library_on_other_backends(backend, module):
    pytest.importorskip(module, reason=f"{module} is not installed (pip install {module})")
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(backend=backend)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


# The joints of every saved artefact with every entry point (tests/test_joints.py) on the other
# backends, on the files this process's backend saved (a .keras file does not depend on the backend
# that wrote it), exports aside (they are TensorFlow's). PyTorch runs them all; JAX, whose
# compilations make each new shape slow on a CPU, the predict paths (whole, tiled, TTA, the command
# on PNG and JPEG).
JOINTS_ON = {"torch": "not export", "jax": "loaded_file or tta or png_and_jpeg"}


@pytest.mark.parametrize("backend", sorted(JOINTS_ON))
def test_joints_on_other_backends(backend, saved_artefacts):
    pytest.importorskip(backend, reason=f"{backend} is not installed (pip install {backend})")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "KERAS_BACKEND": backend, "KERAS_UNETPP_JOINT_ARTEFACTS": str(saved_artefacts[0])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests" / "test_joints.py"),
         "-k", JOINTS_ON[backend]], env=env, capture_output=True, text=True, timeout=900, cwd=root)
    assert result.returncode == 0 and " passed" in result.stdout, result.stdout[-4000:] + result.stderr[-2000:]
    assert "skipped" not in result.stdout.splitlines()[-1], result.stdout[-2000:]
