"""UNet++ on keras.applications encoders. No weights can be downloaded here, so
weights come from .weights.h5 files saved from randomly initialised
keras.applications models (how machines without internet load them)."""

import keras
import numpy as np
import pytest
from perturb import perturb_weights

from keras_unetpp import UNetPlusPlus
from keras_unetpp.models import encoders

FILTERS6 = (4, 8, 8, 16, 16, 16)


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    """An RGB ResNet50 with random weights, saved the way a user saves downloaded ones."""
    keras.utils.set_random_seed(3)
    backbone = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path_factory.mktemp("weights") / "resnet50_notop.weights.h5"
    backbone.save_weights(path)
    return path, {layer.name: layer.get_weights() for layer in backbone.layers if layer.weights}


def encoder_layers(model):
    return {layer.name: layer for layer in model.get_layer("encoder").layers if layer.weights}


def test_resnet_features_are_its_stage_outputs_at_their_strides():
    """The rule finds ResNet50's stage outputs (the layers segmentation codebases use), each at its stride."""
    backbone = encoders.build_backbone("resnet50", 3)
    found = encoders.feature_strides(backbone)
    assert found == {2: "conv1_relu", 4: "conv2_block3_out", 8: "conv3_block4_out", 16: "conv4_block6_out",
                     32: "conv5_block3_out"}
    probe = keras.Model(backbone.input, [backbone.get_layer(n).output for n in found.values()])
    shapes = [tuple(o.shape[1:3]) for o in probe(np.zeros((1, 96, 64, 3), "float32"))]
    assert shapes == [(96 // s, 64 // s) for s in found]


def test_every_weight_of_the_encoder_comes_from_the_file(resnet_weights):
    path, saved = resnet_weights
    model = UNetPlusPlus((None, None, 3), filters=FILTERS6, encoder="resnet50", encoder_weights=str(path))
    loaded = encoder_layers(model)
    assert set(loaded) == set(saved)  # all five levels used: the whole backbone
    for name, layer in loaded.items():
        for got, expected in zip(layer.get_weights(), saved[name]):
            np.testing.assert_array_equal(got, expected, err_msg=name)


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_first_convolution_adapted_to_other_channel_counts(resnet_weights, channels):
    path, saved = resnet_weights
    model = UNetPlusPlus((None, None, channels), filters=FILTERS6[:4], encoder="resnet50",
                         encoder_weights=str(path))
    bgr = saved["conv1_conv"][0]  # (7, 7, 3, 64); ResNet's caffe weights read BGR images
    b, g, r = bgr[:, :, 0], bgr[:, :, 1], bgr[:, :, 2]
    expected = {1: [r + g + b], 2: [1.5 * r, 1.5 * g], 4: [0.75 * r, 0.75 * g, 0.75 * b, 0.75 * r]}[channels]
    kernel = encoder_layers(model)["conv1_conv"].get_weights()[0]
    np.testing.assert_allclose(kernel, np.stack(expected, axis=2), rtol=1e-5, atol=1e-7)
    for name, layer in encoder_layers(model).items():  # every other weight copied as it is
        if name != "conv1_conv":
            for got, want in zip(layer.get_weights(), saved[name]):
                np.testing.assert_array_equal(got, want, err_msg=name)
    assert model.predict(np.zeros((1, 40, 36, channels), "float32"), verbose=0).shape == (1, 40, 36, 1)


@pytest.mark.parametrize("mode, reference", [
    ("caffe", lambda x: keras.applications.resnet.preprocess_input(x)),
    ("torch", lambda x: keras.applications.densenet.preprocess_input(x)),
    ("tf", lambda x: keras.applications.imagenet_utils.preprocess_input(x, mode="tf")),
])
def test_preprocessing_matches_keras_applications(mode, reference):
    x = np.random.default_rng(0).random((2, 5, 4, 3)).astype("float32")
    got = keras.ops.convert_to_numpy(encoders.EncoderPreprocessing(mode, 3)(x))
    np.testing.assert_allclose(got, reference(x.copy() * 255.0), rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_deep_supervision_pruning_and_round_trip_with_an_encoder(tmp_path):
    keras.utils.set_random_seed(0)
    model = UNetPlusPlus((None, None, 3), filters=FILTERS6, encoder="efficientnet_lite0", deep_supervision=True)
    x = np.random.default_rng(1).random((2, 40, 52, 3)).astype("float32")
    y = (x[..., :1] > 0.5).astype("float32")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    prob = model.predict(x, verbose=0)
    assert prob.shape == (2, 40, 52, 1)
    pruned = model.prune(2)
    head = keras.ops.convert_to_numpy(model.head_outputs(x)[1])
    np.testing.assert_allclose(pruned.predict(x, verbose=0), head, atol=1e-5)
    assert pruned.count_params() < model.count_params() / 4  # only the encoder levels it uses
    model.save(tmp_path / "m.keras")
    assert model.get_config()["encoder"] == "efficientnet_lite0" and model.get_config()["encoder_weights"] is None
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "m.keras").predict(x, verbose=0), prob, atol=1e-6)


@pytest.mark.slow
def test_frozen_encoder_keeps_its_weights_while_the_decoder_learns():
    model = UNetPlusPlus((None, None, 3), filters=FILTERS6[:4], encoder="resnet50", encoder_trainable=False)
    before_encoder = [w.copy() for l in encoder_layers(model).values() for w in l.get_weights()]
    before_decoder = model.get_layer("X_0_1_conv1").get_weights()[0].copy()
    x = np.random.default_rng(2).random((2, 32, 32, 3)).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    model.fit(x, (x[..., :1] > 0.5).astype("float32"), epochs=2, verbose=0)
    after_encoder = [w for l in encoder_layers(model).values() for w in l.get_weights()]
    for a, b in zip(before_encoder, after_encoder):
        np.testing.assert_array_equal(a, b)  # batch-norm statistics included: frozen BN runs in inference mode
    assert not np.allclose(model.get_layer("X_0_1_conv1").get_weights()[0], before_decoder)


def test_a_stride_the_backbone_lacks_gets_the_plain_block():
    """ConvNeXt starts at stride 4: X^{1,0} is a plain conv block on the pooled X^{0,0}."""
    model = UNetPlusPlus((None, None, 3), filters=(4, 8, 16, 16), encoder="convnext_tiny")
    names = {layer.name for layer in model.layers}
    assert "pool_1" in names and any(n.startswith("X_1_0") for n in names)
    assert not any(n.startswith("X_2_0") for n in names)  # level 2 (stride 4) comes from the backbone
    assert model.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0).shape == (1, 32, 32, 1)


def test_pruned_below_the_backbones_first_stride_keeps_the_plain_blocks():
    """ConvNeXt pruned to L1 needs no backbone level: the pruned model is X^{0,0}, X^{1,0}, X^{0,1}."""
    model = UNetPlusPlus((None, None, 3), filters=(4, 8, 16), encoder="convnext_tiny", deep_supervision=True)
    x = np.random.default_rng(0).random((1, 32, 32, 3)).astype("float32")
    pruned = model.prune(1)
    np.testing.assert_allclose(pruned.predict(x, verbose=0),
                               keras.ops.convert_to_numpy(model.head_outputs(x)[0]), atol=1e-6)
    assert "encoder" not in {layer.name for layer in pruned.layers}


@pytest.mark.parametrize("name", sorted(encoders.ENCODERS))
def test_every_named_encoder_builds_and_predicts(name):
    model = UNetPlusPlus((None, None, 3), filters=FILTERS6[:4], encoder=name)
    assert model.predict(np.zeros((1, 24, 40, 3), "float32"), verbose=0).shape == (1, 24, 40, 1)


def test_own_keras_model_and_pyramid_outputs_as_encoders(tmp_path):
    inputs = keras.Input((None, None, 1))
    s2 = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="s2")(inputs)
    s4 = keras.layers.Conv2D(12, 3, strides=2, padding="same", name="s4")(s2)
    own = keras.Model(inputs, s4)
    model = UNetPlusPlus((None, None, 1), filters=(4, 8, 16), encoder=own)
    x = np.random.default_rng(0).random((1, 20, 20, 1)).astype("float32")
    prob = model.predict(x, verbose=0)
    model.save(tmp_path / "own.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "own.keras").predict(x, verbose=0), prob, atol=1e-6)
    # a keras-hub FeaturePyramidBackbone names its levels: P1 = stride 2, P2 = stride 4
    hub_like = keras.Model(inputs, s4)
    hub_like.pyramid_outputs = {"P1": s2, "P2": s4}
    features, levels = encoders.feature_model(hub_like, 2)
    assert levels == [1, 2] and [tuple(t.shape[1:]) for t in features.outputs] == [(None, None, 6), (None, None, 12)]


def test_clear_errors():
    with pytest.raises(ValueError, match="Unknown encoder 'resnet9'"):
        UNetPlusPlus(filters=FILTERS6, encoder="resnet9")
    with pytest.raises(ValueError, match="depth <= 5"):
        UNetPlusPlus(filters=(4, 4, 4, 4, 4, 4, 4), encoder="resnet50")
    with pytest.raises(ValueError, match="encoder_weights needs an encoder"):
        UNetPlusPlus(filters=(4, 8), encoder_weights="imagenet")
    with pytest.raises(ValueError, match="Could not load encoder weights"):
        UNetPlusPlus(filters=(4, 8), encoder="resnet50", encoder_weights="/nonexistent/file.weights.h5")
    inputs = keras.Input((None, None, 3))
    rgb = keras.Model(inputs, keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs))
    with pytest.raises(ValueError, match="takes 3 channel"):
        UNetPlusPlus((None, None, 1), filters=(4, 8), encoder=rgb)


def test_a_build_probes_the_backbone_once(monkeypatch):
    """Finding the feature maps runs the backbone on a 256 probe; a build does it once, not per use."""
    calls = []
    original = encoders.feature_strides
    monkeypatch.setattr(encoders, "feature_strides", lambda backbone: calls.append(backbone.name) or original(backbone))
    UNetPlusPlus((None, None, 3), filters=FILTERS6[:4], encoder="mobilenetv3large")
    assert len(calls) == 1


def test_encoder_projection_maps_each_feature_map_to_the_decoder_width(tmp_path):
    """With encoder_projection, node X^{i,0} is relu(batch_norm(1x1 conv(feature_i))) of width filters[i]:
    checked against the same arithmetic in numpy on the encoder's own feature maps."""
    inputs = keras.Input((None, None, 2))
    s2 = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="s2")(inputs)
    s4 = keras.layers.Conv2D(12, 3, strides=2, padding="same", name="s4")(s2)
    own = keras.Model(inputs, [s2, s4])
    keras.utils.set_random_seed(4)
    model = UNetPlusPlus((None, None, 2), filters=(3, 5, 7), encoder=own, encoder_projection=True,
                         deep_supervision=True)
    x = np.random.default_rng(5).random((2, 12, 16, 2)).astype("float32")
    perturb_weights(model)  # kernels and batch-norm statistics away from their initial values
    features = [keras.ops.convert_to_numpy(f) for f in own(x)]
    for i, feature in ((1, features[0]), (2, features[1])):
        kernel = model.get_layer(f"X_{i}_0_projection_conv").get_weights()[0]
        gamma, beta, mean, var = model.get_layer(f"X_{i}_0_projection_bn").get_weights()
        eps = model.get_layer(f"X_{i}_0_projection_bn").epsilon
        expected = np.maximum(0, (np.einsum("nhwc,cd->nhwd", feature, kernel[0, 0]) - mean)
                              / np.sqrt(var + eps) * gamma + beta)
        probe = keras.Model(model.inputs, model.get_layer(f"X_{i}_0_projection_relu").output)
        got = probe.predict(x, verbose=0)
        assert got.shape[-1] == (3, 5, 7)[i]
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert model.get_layer("X_1_1_concat").input[0].shape[-1] == 5  # the decoder reads the projection
    prob = model.predict(x, verbose=0)
    model.save(tmp_path / "projected.keras")
    loaded = keras.saving.load_model(tmp_path / "projected.keras")
    assert loaded.encoder_projection
    np.testing.assert_allclose(loaded.predict(x, verbose=0), prob, atol=1e-6)
    pruned = model.prune(1)
    np.testing.assert_allclose(pruned.predict(x, verbose=0),
                               keras.ops.convert_to_numpy(model.head_outputs(x)[0]), atol=1e-6)
    with pytest.raises(ValueError, match="encoder_projection .* needs an encoder"):
        UNetPlusPlus(filters=(4, 8), encoder_projection=True)


def test_custom_encoder_keeps_its_pyramid_outputs_through_save_and_prune(tmp_path):
    """Its pyramid names an earlier map at stride 2 than the stride rule would pick: the reloaded and the
    pruned model must use the same one (the attribute is not part of Keras' serialization)."""
    import keras
    import numpy as np

    from keras_unetpp import UNetPlusPlus, load_model

    x = keras.Input((None, None, 3))
    first = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="first")(x)
    later = keras.layers.Conv2D(4, 3, padding="same", name="later_same_stride")(first)
    deep = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="deep")(later)
    encoder = keras.Model(x, deep, name="custom_encoder")
    encoder.pyramid_outputs = {"P1": first, "P2": deep}
    keras.utils.set_random_seed(0)
    model = UNetPlusPlus((None, None, 3), filters=(4, 6, 8), encoder=encoder, deep_supervision=True)
    images = np.random.default_rng(0).random((1, 32, 32, 3)).astype("float32")
    expected = model.predict(images, verbose=0)
    model.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(images, verbose=0), expected, atol=1e-5)
    np.testing.assert_allclose(again.prune(2).predict(images, verbose=0), model.prune(2).predict(images, verbose=0),
                               atol=1e-5)
