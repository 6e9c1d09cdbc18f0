"""Data-parallel training equals one-device training on the same global batch.

Runs in subprocesses: the 2 logical CPU devices (TensorFlow) or host devices
(JAX) must be configured before the backend starts."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains, runs subprocesses or exports: the full lane only

ROOT = Path(__file__).resolve().parents[2]

COMMON = """
import json, sys
import numpy as np
import keras
from keras_unetpp import BinaryIoU, FocalDiceLoss, UNetPlusPlus, predict_tiled
from keras_unetpp.datasets import make_shapes

x, y = make_shapes(8, size=16, seed=3)

def train(scope, unsynchronized=False):
    keras.utils.set_random_seed(0)
    with scope:
        model = UNetPlusPlus((None, None, 3), filters=(4, 8, 16), deep_supervision=True)
        if unsynchronized:  # the control: per-replica statistics, as plain BatchNormalization
            for layer in model.layers:
                if hasattr(layer, "synchronized"):
                    layer.synchronized = False
        # per_image=True: a loss that is a mean over images, so splitting the batch does not change it
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss=FocalDiceLoss(per_image=True), metrics=[BinaryIoU()])
    history = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    tiled = predict_tiled(model, x[0], tile_size=8, progress=False)
    return model.predict(x, verbose=0), history.history, tiled
"""

TENSORFLOW = COMMON + """
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
one = train(tf.distribute.OneDeviceStrategy("/cpu:0").scope())
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
two = train(mirrored.scope())
control = train(mirrored.scope(), unsynchronized=True)
"""

JAX = COMMON + """
import contextlib
import jax
assert len(jax.devices()) == 2, jax.devices()
one = train(contextlib.nullcontext())
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
two = train(contextlib.nullcontext())
control = None
"""

REPORT = """
def gap(a, b):
    return float(np.max(np.abs(a - b)))
print("RESULT" + json.dumps({
    "prediction": gap(one[0], two[0]),
    "loss": max(abs(p - q) for p, q in zip(one[1]["loss"], two[1]["loss"])),
    "iou": max(abs(p - q) for k in one[1] if k != "loss" for p, q in zip(one[1][k], two[1][k])),
    "tiled": gap(one[2], two[2]),
    "control": None if control is None else gap(one[0], control[0]),
}))
"""


def run(backend, script):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script + REPORT)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [l for l in done.stdout.splitlines() if l.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def test_mirrored_strategy_with_synchronised_batch_norm_equals_one_device():
    gaps = run("tensorflow", TENSORFLOW)
    assert gaps["prediction"] < 1e-4 and gaps["tiled"] < 1e-4, gaps
    assert gaps["loss"] < 1e-4 and gaps["iou"] < 1e-4, gaps
    assert gaps["control"] > 10 * max(gaps["prediction"], 1e-6), gaps  # per-replica statistics do differ


def test_jax_data_parallel_equals_one_device():
    pytest.importorskip("jax")
    gaps = run("jax", JAX)
    assert gaps["prediction"] < 1e-4 and gaps["tiled"] < 1e-4, gaps
    assert gaps["loss"] < 1e-4 and gaps["iou"] < 1e-4, gaps


def test_sync_batch_norm_outside_a_strategy_is_plain_batch_norm():
    """One replica: the two-pass variance of numpy, not E[x^2] - E[x]^2 (which loses digits at large means)."""
    import keras
    import numpy as np

    from keras_unetpp.models import SyncBatchNormalization

    x = (100.0 + np.random.default_rng(0).normal(0, 0.1, (4, 6, 6, 3))).astype("float32")
    out = keras.ops.convert_to_numpy(SyncBatchNormalization(epsilon=1e-6)(x, training=True))
    mean, var = x.mean(axis=(0, 1, 2), dtype=np.float64), x.var(axis=(0, 1, 2), dtype=np.float64)
    expected = (x - mean) / np.sqrt(var + 1e-6)
    np.testing.assert_allclose(out, expected, atol=2e-3)
    plain = keras.ops.convert_to_numpy(keras.layers.BatchNormalization(epsilon=1e-6)(x, training=True))
    np.testing.assert_array_equal(out, plain)
