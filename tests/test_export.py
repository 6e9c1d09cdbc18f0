"""Exported models run in their own runtimes and agree with Keras' predict."""

import keras
import numpy as np
import pytest

from keras_unetpp import UNetPlusPlus, with_preprocessing
from keras_unetpp.cli import main
from keras_unetpp.export import export_model

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="exports are tested on TensorFlow")]


def raw_segmenter(deep_supervision=True, prune=None):
    keras.utils.set_random_seed(0)
    core = UNetPlusPlus((None, None, 3), filters=(4, 8, 16), deep_supervision=deep_supervision)
    core.predict(np.random.default_rng(0).random((4, 32, 32, 3), "float32"), verbose=0)
    core = core.prune(prune) if prune else core
    return with_preprocessing(core, channels=3, median_kernel=5)  # raw uint8 in, median blur, batch norm


def raw_images(shape=(2, 48, 80, 3)):
    return np.random.default_rng(1).integers(0, 256, shape).astype("float32")


def test_direct_call_runs_batch_norm_in_inference_mode():
    """MedianBlur must not hand `training=True` on to the model behind it."""
    model = raw_segmenter()
    x = raw_images()
    before = [w.copy() for w in model.get_weights()]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), model.predict(x, verbose=0), atol=1e-6)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)  # moving statistics untouched


@pytest.mark.parametrize("prune", [None, 1], ids=["deep_supervision", "pruned"])
def test_saved_model_matches_predict(tmp_path, prune):
    import tensorflow as tf

    model = raw_segmenter(prune=prune)
    x = raw_images()
    path = export_model(model, tmp_path / "sm")
    loaded = tf.saved_model.load(str(path))  # keep a reference: its variables live as long as it does
    served = loaded.serve(x).numpy()
    np.testing.assert_allclose(served, model.predict(x, verbose=0), atol=1e-4)


def test_onnx_matches_predict_at_any_size(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'keras-unetpp[export]')")
    pytest.importorskip("tf2onnx", reason="tf2onnx not installed (pip install 'keras-unetpp[export]')")
    model = raw_segmenter()
    path = export_model(model, tmp_path / "m", "onnx")
    assert path.suffix == ".onnx"
    session = ort.InferenceSession(str(path))
    for shape in [(2, 48, 80, 3), (1, 33, 21, 3)]:
        x = raw_images(shape)
        out = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=1e-4)


def test_litert_from_the_command_line_matches_predict(tmp_path):
    import tensorflow as tf

    model = raw_segmenter(deep_supervision=False)
    model.save(tmp_path / "m.keras")
    assert main(["export", str(tmp_path / "m.keras"), "--format", "litert", "--input-size", "48", "80"]) == 0
    interpreter = tf.lite.Interpreter(str(tmp_path / "m.tflite"))
    interpreter.allocate_tensors()
    x = raw_images((1, 48, 80, 3))
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=1e-4)


def test_unknown_format_is_named(tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        export_model(raw_segmenter(), tmp_path / "x", "coreml")
