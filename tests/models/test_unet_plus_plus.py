"""UNetPlusPlus: shapes, topology against the paper's definition, deep supervision,
pruning, serialization, errors, mixed precision."""

import re

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from perturb import perturb_weights

from keras_unetpp import UNetPlusPlus


def tiny(**kwargs):
    kwargs.setdefault("input_shape", (None, None, 1))
    kwargs.setdefault("filters", (4, 8, 16))
    return UNetPlusPlus(**kwargs)


def random_batch(rng, n=2, h=24, w=20, c=1):
    x = rng.random((n, h, w, c), dtype=np.float32)
    y = (x[..., :1] > 0.5).astype("float32")
    return x, y


def train_a_little(model, x, y, epochs=2):
    """Moves weights and batch-norm statistics away from their initial values."""
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=len(x), verbose=0)


@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    channels=st.integers(1, 4),
    classes=st.integers(1, 3),
    depth=st.integers(1, 3),
    deep_supervision=st.booleans(),
)
def test_output_has_input_size_for_any_shape(height, width, channels, classes, depth, deep_supervision):
    model = UNetPlusPlus(
        input_shape=(None, None, channels),
        num_classes=classes,
        filters=[4 * 2**d for d in range(depth + 1)],
        deep_supervision=deep_supervision,
    )
    x = np.random.default_rng(0).random((2, height, width, channels), dtype=np.float32)
    y = keras.ops.convert_to_numpy(model(x))
    assert y.shape == (2, height, width, classes)
    assert y.dtype == np.float32
    if classes == 1:
        assert ((y >= 0) & (y <= 1)).all()
    else:
        np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)


def paper_topology(depth):
    """Zhou et al. 2018: X^{i,j} (j >= 1) concatenates X^{i,0..j-1} and Up(X^{i+1,j-1})."""
    nodes = {(i, j) for i in range(depth + 1) for j in range(depth + 1 - i)}
    concat_inputs = {
        (i, j): {f"X_{i}_{k}" for k in range(j)} | {f"up X_{i + 1}_{j - 1}"}
        for (i, j) in nodes
        if j >= 1
    }
    return nodes, concat_inputs


def node_of(layer):
    """The node X_i_j a layer belongs to, from the layer's name."""
    return "_".join(layer.name.split("_")[:3])


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_topology_matches_paper(depth):
    model = UNetPlusPlus(filters=[2 * 2**d for d in range(depth + 1)])
    nodes, concat_inputs = paper_topology(depth)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D) and l.name.startswith("X_")]
    assert {node_of(l) for l in convs} == {f"X_{i}_{j}" for i, j in nodes}
    assert len(convs) == 2 * len(nodes)  # H = two 3x3 convs per node
    concats = [l for l in model.layers if isinstance(l, keras.layers.Concatenate)]
    assert len(concats) == len(concat_inputs) == depth * (depth + 1) // 2
    for layer in concats:
        i, j = (int(t) for t in layer.name.split("_")[1:3])
        found = set()
        for tensor in layer._inbound_nodes[0].input_tensors:
            producer = tensor._keras_history.operation
            if isinstance(producer, keras.layers.Conv2DTranspose):
                # the transposed conv reads the node below-left
                (source,) = producer._inbound_nodes[0].input_tensors
                found.add("up " + node_of(source._keras_history.operation))
            else:
                found.add(node_of(producer))
        assert found == concat_inputs[i, j], layer.name
        # channels of the concatenation: j skips of filters[i] + the upsampled filters[i]
        assert layer.output.shape[-1] == (j + 1) * model.filters[i]


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_compact_decoder_has_nested_nodes_from_stride_two_and_one_full_resolution_node(depth):
    """segmentation_models_pytorch's layout: X^{i,j} for i >= 1, i + j <= L, then X^{0,L} from
    X^{1,L-1} alone; the last node of each level has its decoder width, the others the level's."""
    filters = [3 + d for d in range(depth + 1)]
    decoder_filters = [20 + d for d in range(depth)]
    model = UNetPlusPlus(filters=filters, decoder="compact", decoder_filters=decoder_filters, upsampling="nearest")
    want = {(i, 0) for i in range(depth + 1)}   # the plain encoder still starts at full resolution
    want |= {(i, j) for i in range(1, depth) for j in range(1, depth + 1 - i)} | {(0, depth)}
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D) and l.name.startswith("X_")]
    assert {node_of(l) for l in convs} == {f"X_{i}_{j}" for i, j in want}
    for layer in convs:
        i, j = (int(t) for t in layer.name.split("_")[1:3])
        width = filters[i] if j == 0 else decoder_filters[i] if i + j == depth else filters[i]
        assert layer.filters == width, layer.name
    concats = {l.name: l for l in model.layers if isinstance(l, keras.layers.Concatenate)}
    for i, j in want - {(i, 0) for i in range(depth + 1)} - {(0, depth)}:
        # j skips of the level, then the level below's previous node up-sampled (nearest keeps its width)
        below = decoder_filters[i + 1] if j > 1 and i + j == depth else filters[i + 1]
        assert concats[f"X_{i}_{j}_concat"].output.shape[-1] == j * filters[i] + below
    assert f"X_0_{depth}_concat" not in concats
    x = np.random.default_rng(0).random((1, 19, 26, 3)).astype("float32")
    assert model.predict(x, verbose=0).shape == (1, 19, 26, 1)


def test_compact_decoder_round_trips_and_refuses_what_it_cannot_do(tmp_path, rng):
    model = tiny(filters=(4, 8, 16), decoder="compact", decoder_filters=(6, 10))
    x, _ = random_batch(rng, h=17, w=9)
    model.save(tmp_path / "compact.keras")
    loaded = keras.models.load_model(tmp_path / "compact.keras")
    assert loaded.get_config() == model.get_config() and loaded.decoder == "compact"
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for kwargs, message in [({"decoder": "flat"}, "'nested' or 'compact'"),
                            ({"decoder_filters": (4, 8)}, "pass decoder='compact'"),
                            ({"decoder": "compact", "deep_supervision": True}, "deep_supervision=False"),
                            ({"decoder": "compact", "decoder_filters": (4,)}, "one width per level 0..1"),
                            ({"decoder": "compact", "filters": (4, 8)}, "depth >= 2")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            tiny(**{"filters": (4, 8, 16), **kwargs})


def test_default_parameter_count_is_the_papers_unetpp_l4():
    # Zhou et al. 2018, Table 2: UNet++ (L4, filters 32..512) has 9.04M parameters.
    count = UNetPlusPlus().count_params()
    assert abs(count - 9.04e6) / 9.04e6 < 0.01, count


def test_deep_supervision_loss_is_weighted_mean_of_head_losses(rng):
    weights = (1.0, 2.0, 5.0)
    model = tiny(filters=(4, 8, 16, 32), deep_supervision=True, head_weights=weights)
    model.compile(loss="mean_squared_error")
    x, y = random_batch(rng, n=3, h=16, w=16)
    heads = [keras.ops.convert_to_numpy(h) for h in model(x, training=True)]
    assert len(heads) == 3
    by_hand = sum(w * np.mean((y - h) ** 2) for w, h in zip(weights, heads)) / sum(weights)
    loss = model.compute_loss(x, y, [keras.ops.convert_to_tensor(h) for h in heads])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), by_hand, rtol=1e-5)


@pytest.mark.slow  # trains a model
def test_fit_with_plain_masks_trains_every_head(rng):
    model = tiny(deep_supervision=True)
    x, y = random_batch(rng, n=4)
    before = [w.copy() for w in model.get_layer("head_1").get_weights()]
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["binary_accuracy"])
    history = model.fit(x, y, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "binary_accuracy"}
    after = model.get_layer("head_1").get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_accurate_mode_is_mean_of_heads_and_fast_mode_one_head(rng):
    model = tiny(filters=(4, 8, 16, 32), deep_supervision=True)
    x, y = random_batch(rng, h=19, w=23)
    perturb_weights(model)
    heads = [keras.ops.convert_to_numpy(h) for h in model.head_outputs(x)]
    np.testing.assert_allclose(model.predict(x, verbose=0), np.mean(heads, axis=0), atol=1e-6)
    for k in (1, 2, 3):
        fast = UNetPlusPlus.from_config({**model.get_config(), "inference_head": k})
        fast.set_weights(model.get_weights())
        np.testing.assert_allclose(fast.predict(x, verbose=0), heads[k - 1], atol=1e-6)


def test_fast_mode_is_prune_and_computes_only_needed_nodes(rng):
    model = tiny(filters=(4, 8, 16, 32), deep_supervision=True, inference_head=1)
    fast = model.prune(1)
    used = {node_of(l) for l in fast.layers if l.name.startswith("X_")}
    assert used == {"X_0_0", "X_1_0", "X_0_1"}
    x, _ = random_batch(rng)
    np.testing.assert_allclose(fast.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_pruned_model_equals_head_of_full_model(rng):
    model = tiny(filters=(4, 8, 16, 32), deep_supervision=True)
    x, _ = random_batch(rng, h=21, w=13)  # not multiples of 8: exercises padding
    perturb_weights(model)
    heads = [keras.ops.convert_to_numpy(h) for h in model.head_outputs(x)]
    for level in (1, 2):
        pruned = model.prune(level)
        assert pruned.depth == level and pruned.count_params() < model.count_params()
        np.testing.assert_allclose(pruned.predict(x, verbose=0), heads[level - 1], atol=1e-6)


def test_prune_rejects_bad_requests():
    with pytest.raises(ValueError, match="deep_supervision"):
        tiny().prune(1)
    with pytest.raises(ValueError, match="level"):
        tiny(deep_supervision=True).prune(3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"deep_supervision": True, "head_weights": (1.0, 3.0)},
        {"deep_supervision": True, "inference_head": 1},
        {"num_classes": 3, "upsampling": "bilinear", "batch_norm": False, "dropout": 0.1},
        {"output_activation": None},
    ],
)
def test_keras_file_round_trip_gives_identical_predictions(tmp_path, rng, kwargs):
    model = tiny(**kwargs)
    x, _ = random_batch(rng, h=17, w=9)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, UNetPlusPlus)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.slow
def test_pruned_model_round_trip(tmp_path, rng):
    model = tiny(filters=(4, 8, 16, 32), deep_supervision=True)
    x, y = random_batch(rng, h=13, w=30)
    train_a_little(model, x, y, epochs=1)
    pruned = model.prune(2)
    pruned.save(tmp_path / "pruned.keras")
    loaded = keras.models.load_model(tmp_path / "pruned.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), pruned.predict(x, verbose=0))


def test_grayscale_and_fixed_size_inputs(rng):
    model = UNetPlusPlus(input_shape=(32, 48, 1), filters=(4, 8, 16))
    assert model.predict(np.zeros((1, 32, 48, 1), "float32"), verbose=0).shape == (1, 32, 48, 1)


@pytest.mark.parametrize(
    "shape, message",
    [((2, 16, 16, 3), "1 input channel"), ((16, 16, 1), r"x\[None\]"), ((16, 1), r"\(N, H, W, C\)")],
)
def test_bad_input_shape_gets_clear_error(shape, message):
    with pytest.raises(ValueError, match=message):
        tiny()(np.zeros(shape, "float32"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"filters": (8,)}, "at least two"),
        ({"input_shape": (32, 32)}, "height, width, channels"),
        ({"input_shape": (None, None, 0)}, "channel"),
        ({"num_classes": 0}, "num_classes"),
        ({"upsampling": "cubic"}, "upsampling"),
        ({"dropout": 1.0}, "dropout"),
        ({"deep_supervision": True, "inference_head": 5}, "inference_head"),
        ({"deep_supervision": True, "head_weights": (1.0,)}, "head_weights"),
        ({"deep_supervision": True, "head_weights": (0.0, 0.0)}, "head_weights"),
        ({"output_activation": "nonsense"}, "output_activation"),
        ({"pad_to_multiple": 6}, "pad_to_multiple"),
    ],
)
def test_bad_arguments_get_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.slow
def test_mixed_precision_trains_and_outputs_float32(restore_policy, rng, policy):
    keras.config.set_dtype_policy(policy)
    model = tiny(deep_supervision=True)
    x, y = random_batch(rng, h=16, w=16)
    assert model.get_layer("X_0_0_conv1").compute_dtype == policy.split("_")[1]
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    out = model(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


@pytest.mark.parametrize("encoder", [None, "mobilenetv3large"])
def test_saved_under_mixed_precision_loads_with_its_policy(restore_policy, rng, tmp_path, encoder):
    """A model saved under mixed_bfloat16 computes in bfloat16 after loading where the global
    policy is float32 (its layers are rebuilt in __init__), and the global policy is left alone."""
    keras.config.set_dtype_policy("mixed_bfloat16")
    filters = (4, 8, 8) if encoder else (4, 8)
    model = UNetPlusPlus((None, None, 3), filters=filters, encoder=encoder)
    x = rng.random((1, 16, 16, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "bf16.keras")
    keras.config.set_dtype_policy("float32")
    loaded = keras.saving.load_model(tmp_path / "bf16.keras")
    assert keras.config.dtype_policy().name == "float32"
    computes = {layer.compute_dtype for layer in loaded.layers if isinstance(layer, keras.layers.Conv2D)}
    assert computes == {"bfloat16"}
    if encoder:
        inner = loaded.get_layer("encoder").layers
        assert {layer.compute_dtype for layer in inner if isinstance(layer, keras.layers.Conv2D)} == {"bfloat16"}
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)


@pytest.mark.slow  # trains a model
def test_inference_mode_matches_training_mode_after_a_short_fit():
    """Regression: with Keras' default BN momentum 0.99 the moving variance
    (initialised to 1) lagged the real one (~0.01) for hundreds of steps and
    predict() returned garbage after short runs."""
    from keras_unetpp.datasets import make_shapes

    keras.utils.set_random_seed(0)
    x, y = make_shapes(64, size=32, seed=0)
    model = UNetPlusPlus(filters=(4, 8, 16), deep_supervision=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(x, y, batch_size=16, epochs=8, verbose=0)  # 32 steps
    train_mode = keras.ops.convert_to_numpy(model.combine_heads(model(x, training=True)))
    inference = model.predict(x, verbose=0)
    # measured: 7% of pixels flip with momentum 0.9, 82% with Keras' 0.99
    assert np.mean((train_mode >= 0.5) != (inference >= 0.5)) < 0.2


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear", "nearest"])
def test_one_model_predicts_many_sizes_in_turn(upsampling):
    """Under TensorFlow, predict retraces with unknown height and width after a
    few sizes: every upsampling mode must work from run-time sizes."""
    model = tiny(upsampling=upsampling)
    sizes = [(35, 26), (21, 11), (13, 2), (4, 1), (8, 33), (26, 37)]
    for h, w in sizes:
        x = np.random.default_rng(h * w).random((1, h, w, 1)).astype("float32")
        got = model.predict(x, verbose=0)
        assert got.shape == (1, h, w, 1)
        np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model(x, training=False)), atol=1e-5)
