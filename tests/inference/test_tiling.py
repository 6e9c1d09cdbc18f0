"""predict_tiled: coverage, blending, TTA, shapes, errors, scene report."""

import json

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keras_unetpp import UNetPlusPlus, predict_tiled
from keras_unetpp.inference import MIRROR_TTA, count_windows, gaussian_weights, predict_augmented, window_starts
from keras_unetpp.inference.tiling import tiled_bands, window_stride
from keras_unetpp.visualization import scene_report


def conv_model(kernel, channels=1):
    """A fully-convolutional model with a given (k, k) kernel, same padding."""
    inputs = keras.Input((None, None, channels))
    conv = keras.layers.Conv2D(1, kernel.shape[0], padding="same", use_bias=False)
    outputs = conv(inputs)
    conv.set_weights([np.repeat(kernel[:, :, None, None], channels, axis=2).astype("float32")])
    return keras.Model(inputs, outputs)


def correlate_same(image, kernel):
    """Independent reference: zero-padded 'same' cross-correlation in numpy."""
    r = kernel.shape[0] // 2
    p = np.pad(image.sum(-1), r)
    h, w = image.shape[:2]
    return sum(kernel[i, j] * p[i:i + h, j:j + w] for i in range(kernel.shape[0]) for j in range(kernel.shape[1]))[..., None]


@given(st.integers(1, 200), st.integers(1, 64), st.floats(0, 1))
def test_windows_cover_the_axis_and_end_at_the_border(length, tile, fraction):
    stride = max(1, round(tile * fraction))
    starts = window_starts(length, tile, stride)
    covered = np.zeros(max(length, tile), bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered[:length].all()
    assert starts[-1] + tile == max(length, tile) and starts == sorted(set(starts))
    with pytest.raises(ValueError, match="stride"):
        window_starts(length, tile, tile + 1)


@given(st.integers(1, 300), st.floats(0.01, 1.0))
def test_gaussian_weights_are_never_zero(tile, sigma):
    w = gaussian_weights(tile, sigma)
    assert w.shape == (tile, tile) and w.min() > 0 and w.max() == pytest.approx(1.0)


@given(st.integers(1, 90), st.integers(1, 90), st.integers(4, 48), st.floats(0.0, 0.9))
def test_output_has_image_shape_and_pointwise_model_is_exact(h, w, tile, overlap):
    model = conv_model(np.array([[1.5]]), channels=2)
    image = np.random.default_rng(h * w).random((h, w, 2)).astype("float32")
    out = predict_tiled(model, image, tile_size=tile, overlap=overlap, progress=False)
    assert out.shape == (h, w, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out, 1.5 * image.sum(-1, keepdims=True), rtol=1e-5)


def test_constant_model_gives_the_constant():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: keras.ops.ones_like(x[..., :1]) * 0.7)(inputs))
    out = predict_tiled(model, np.zeros((100, 77, 3)), tile_size=32, overlap=0.5, progress=False)
    np.testing.assert_allclose(out, 0.7, rtol=1e-6)


def test_small_receptive_field_matches_whole_image_away_from_border():
    """3x3 conv: only pixels within 1 px of a window edge see the window's zero
    padding. Away from the scene border (half a tile) every pixel is seen near
    the centre of some window, whose Gaussian weight dominates."""
    kernel = np.random.default_rng(0).normal(size=(3, 3))
    image = np.random.default_rng(1).random((97, 131, 1)).astype("float32")
    whole = correlate_same(image, kernel)
    scale = np.abs(whole).mean()
    tiled = predict_tiled(conv_model(kernel), image, tile_size=32, overlap=0.5, blend="gaussian", progress=False)
    error = np.abs(tiled - whole)[16:-16, 16:-16]
    assert error.max() < 5e-3 * scale  # the 1e-3 weight floor bounds the edge pixels' share
    # the plain mean shows the seams the Gaussian removes (so the test can fail)
    mean = predict_tiled(conv_model(kernel), image, tile_size=32, overlap=0.5, blend="mean", progress=False)
    assert np.abs(mean - whole)[16:-16, 16:-16].max() > 0.05 * scale


@given(st.integers(8, 40), st.integers(0, 60), st.integers(0, 60), st.floats(0.0, 0.9), st.integers(0, 2**31 - 1))
def test_center_blend_equals_whole_image_where_the_context_fits_the_margin(tile, extra_h, extra_w, overlap, seed):
    """Overlap-tile: a 5x5 conv sees 2 px around each pixel; when the discarded
    margin (tile - stride) // 2 is at least 2, the tiled result equals the
    whole-image result everywhere (scene border included: windows never leave
    a scene at least one tile large)."""
    stride = window_stride(tile, overlap)
    if (tile - stride) // 2 < 2:
        overlap = 0.5  # the margin must hold the model's context
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(5, 5))
    image = rng.random((tile + extra_h, tile + extra_w, 1)).astype("float32")
    whole = correlate_same(image, kernel)
    tiled = predict_tiled(conv_model(kernel), image, tile_size=tile, overlap=overlap, progress=False)
    np.testing.assert_allclose(tiled, whole, atol=1e-5 * max(1.0, np.abs(whole).max()))


def test_center_blend_is_seamless_where_gaussian_is_not():
    """The issue's case: 5 px receptive field, tile 128, overlap 0.25, 700x1000 scene."""
    rng = np.random.default_rng(4)
    kernel = rng.normal(size=(5, 5))
    image = rng.random((700, 1000, 1)).astype("float32")
    whole, model = correlate_same(image, kernel), conv_model(kernel)
    center = predict_tiled(model, image, tile_size=128, overlap=0.25, progress=False)
    gaussian = predict_tiled(model, image, tile_size=128, overlap=0.25, blend="gaussian", progress=False)
    assert np.abs(center - whole).max() < 1e-5
    assert np.abs(gaussian - whole)[64:-64, 64:-64].max() > 1e-3  # what the default used to give


def test_center_blend_of_unetpp_equals_whole_image_when_context_fits():
    """UNet++ L1 (receptive field 18 px at stride-2 alignment): margin 16 px of a
    64 px tile at stride 32 (a multiple of 2**depth) reproduces the whole image."""
    keras.utils.set_random_seed(5)
    model = UNetPlusPlus((None, None, 1), filters=(2, 4), batch_norm=False)
    image = np.random.default_rng(5).random((96, 160, 1)).astype("float32")
    whole = model.predict(image[None], verbose=0)[0]
    tiled = predict_tiled(model, image, tile_size=64, overlap=0.5, progress=False)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_tta_of_equivariant_model_equals_plain_prediction():
    a, b, c = 0.3, -0.5, 1.2
    symmetric = np.array([[a, b, a], [b, c, b], [a, b, a]])  # invariant under D4
    model = conv_model(symmetric)
    image = np.random.default_rng(2).random((70, 45, 1)).astype("float32")
    plain = predict_tiled(model, image, tile_size=32, progress=False)
    np.testing.assert_allclose(predict_tiled(model, image, tile_size=32, tta=True, progress=False), plain, atol=1e-5)
    # and a non-equivariant model is changed by TTA (the test can fail)
    skew = conv_model(np.array([[0, 0, 0], [0, 0, 1.0], [0, 0, 0]]))
    assert not np.allclose(predict_tiled(skew, image, tile_size=32, tta=True, progress=False),
                           predict_tiled(skew, image, tile_size=32, progress=False), atol=1e-3)


def test_works_with_deep_supervision_and_pruned_unetpp(capsys):
    model = UNetPlusPlus((None, None, 3), filters=(4, 8, 16), deep_supervision=True)
    image = np.random.default_rng(3).random((40, 70, 3)).astype("float32")
    full = predict_tiled(model, image, tile_size=32, overlap=0.25, progress=True)
    assert full.shape == (40, 70, 1)
    assert "window" in capsys.readouterr().out
    assert predict_tiled(model.prune(1), image, tile_size=32, progress=False).shape == (40, 70, 1)


def test_clear_errors():
    model = conv_model(np.ones((1, 1)), channels=3)
    with pytest.raises(ValueError, match="input channel"):
        predict_tiled(model, np.zeros((40, 40, 1)))
    with pytest.raises(ValueError, match="overlap"):
        predict_tiled(model, np.zeros((40, 40, 3)), overlap=1.0)
    with pytest.raises(ValueError, match="blend"):
        predict_tiled(model, np.zeros((40, 40, 3)), blend="max")
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        predict_tiled(model, np.zeros((40, 40)))
    fixed = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(1, 1)])
    with pytest.raises(ValueError, match="tile_size"):
        predict_tiled(fixed, np.zeros((100, 100, 3)), tile_size=32)
    shrinking = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(1, 3)])
    with pytest.raises(ValueError, match="input's size"):
        predict_tiled(shrinking, np.zeros((40, 40, 3)), tile_size=32)


def test_scene_report_writes_mask_error_map_and_json(tmp_path):
    truth = np.zeros((64, 96), np.uint8)
    truth[10:40, 20:60] = 255
    prob = np.zeros((64, 96, 1), np.float32)
    prob[12:40, 20:60] = 0.9
    report = scene_report(prob, truth, tmp_path, block_size=32)
    assert report.counts.tp == 28 * 40 and report.counts.fn == 2 * 40 and report.counts.fp == 0
    for name in ("mask.png", "error_map.png", "report.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["coverage"]["blocks"] == 6


def test_each_tta_transform_is_mapped_back_like_numpy():
    """A model that is not equivariant: tta=[t] must equal numpy's transform,
    the model, and numpy's inverse transform."""
    from keras_unetpp.layers.dihedral import DIHEDRAL_TRANSFORMS

    rng = np.random.default_rng(3)
    skew = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(1, 3, padding="same")])
    skew.layers[0].set_weights([rng.normal(size=(3, 3, 1, 1)).astype("float32"), np.zeros(1, "float32")])
    image = rng.random((32, 32, 1)).astype("float32")
    for transpose, up_down, left_right in DIHEDRAL_TRANSFORMS:
        x = image
        x = np.transpose(x, (1, 0, 2)) if transpose else x
        x = np.flipud(x) if up_down else x
        x = np.fliplr(x) if left_right else x
        y = skew.predict(x[None], verbose=0)[0]
        y = np.fliplr(y) if left_right else y
        y = np.flipud(y) if up_down else y
        y = np.transpose(y, (1, 0, 2)) if transpose else y
        got = predict_tiled(skew, image, tile_size=32, tta=[(transpose, up_down, left_right)], progress=False)
        np.testing.assert_allclose(got, y, atol=1e-5)


@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 64), st.floats(0.0, 0.99))
def test_count_windows_counts_the_windows_predict_tiled_uses(h, w, tile, overlap):
    stride = max(1, int(round(tile * (1.0 - overlap))))
    assert window_stride(tile, overlap) == stride
    expected = len(window_starts(max(h, tile), tile, stride)) * len(window_starts(max(w, tile), tile, stride))
    assert count_windows(h, w, tile, overlap) == expected


def test_count_windows_checks_the_overlap_like_predict_tiled():
    with pytest.raises(ValueError, match="overlap"):
        count_windows(100, 100, 32, 1.0)


def _reference_mean(images, kernel, flips):
    """Independent reference for predict_augmented: numpy correlation of each
    (optionally mirrored) image, mirrored back, averaged."""
    outs = []
    for mirror in flips:
        per_image = []
        for image in images:
            x = image[:, ::-1] if mirror else image
            y = correlate_same(x, kernel)
            per_image.append(y[:, ::-1] if mirror else y)
        outs.append(np.stack(per_image))
    return np.mean(outs, axis=0)


@given(st.integers(1, 3), st.integers(3, 20), st.integers(3, 20), st.integers(0, 10_000))
def test_mirror_tta_is_the_mean_of_the_image_and_its_mirror(n, h, w, seed):
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(3, 3))  # no symmetry: mirroring changes its output
    model = conv_model(kernel)
    images = rng.random((n, h, w, 1)).astype("float32")
    before = images.copy()
    got = predict_augmented(model, images, tta=MIRROR_TTA, batch_size=2)
    np.testing.assert_allclose(got, _reference_mean(images, kernel, (False, True)), atol=1e-5)
    np.testing.assert_allclose(predict_augmented(model, images, tta=False), _reference_mean(images, kernel, (False,)),
                               atol=1e-5)
    np.testing.assert_array_equal(images, before)  # the caller's batch is not touched


def test_full_tta_of_a_batch_matches_predict_tiled_per_image():
    rng = np.random.default_rng(5)
    model = conv_model(rng.normal(size=(3, 3)))
    images = rng.random((3, 16, 16, 1)).astype("float32")
    got = predict_augmented(model, images, tta=True)
    want = np.stack([predict_tiled(model, x, tile_size=16, tta=True, progress=False) for x in images])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_predict_augmented_names_bad_input():
    model = conv_model(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\), got shape \(8, 8, 1\)"):
        predict_augmented(model, np.zeros((8, 8, 1)))
    with pytest.raises(ValueError, match="square images"):
        predict_augmented(model, np.zeros((1, 8, 12, 1)), tta=True)
    with pytest.raises(ValueError, match="tta must be"):
        predict_augmented(model, np.zeros((1, 8, 8, 1)), tta=[(True, True)])
    with pytest.raises(ValueError, match="batch_size"):
        predict_augmented(model, np.zeros((1, 8, 8, 1)), batch_size=0)
    # the model's input is checked before any prediction, with the numbers named
    with pytest.raises(ValueError, match=r"takes 1 input channel\(s\), the input has 3"):
        predict_augmented(model, np.zeros((1, 8, 8, 3)))
    fixed = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(1, 1)])
    with pytest.raises(ValueError, match=r"takes inputs of \(16, 16\).*images of \(8, 8\)"):
        predict_augmented(fixed, np.zeros((2, 8, 8, 1)))
    assert predict_augmented(fixed, np.zeros((2, 16, 16, 1)), tta=False).shape == (2, 16, 16, 1)


def window_mean_model(channels=1):
    """A model whose output depends on where the window lies: every output
    pixel is the mean of its window (so the blend weights decide the result)."""
    inputs = keras.Input((None, None, channels))
    outputs = keras.layers.Lambda(lambda x: keras.ops.mean(x, axis=(1, 2, 3), keepdims=True) + 0.0 * x[..., :1])(inputs)
    return keras.Model(inputs, outputs)


def blended_window_means(image, tile, stride, blend):
    """Independent reference: every window's mean, spread over the window with
    the blend's weights, accumulated over a zero canvas and normalised."""
    h, w = image.shape[:2]
    ph, pw = max(h, tile), max(w, tile)
    padded = np.pad(image[..., 0], ((0, ph - h), (0, pw - w)), mode="edge")
    starts = [sorted({min(s, max(0, n - tile)) for s in range(0, max(n - tile, 0) + stride, stride)} | {max(0, n - tile)})
              for n in (ph, pw)]
    margin = (tile - stride) // 2
    total, weight = np.zeros((ph, pw)), np.zeros((ph, pw))
    for y in starts[0]:
        for x in starts[1]:
            if blend == "center":
                wmap = np.zeros((tile, tile))
                top, left = (0 if y == 0 else margin), (0 if x == 0 else margin)
                bottom, right = (tile if y + tile == ph else tile - margin), (tile if x + tile == pw else tile - margin)
                wmap[top:bottom, left:right] = 1.0
            elif blend == "gaussian":
                wmap = gaussian_weights(tile)
            else:
                wmap = np.ones((tile, tile))
            total[y : y + tile, x : x + tile] += wmap * padded[y : y + tile, x : x + tile].mean()
            weight[y : y + tile, x : x + tile] += wmap
    return (total / weight)[:h, :w, None]


@given(st.integers(33, 120), st.integers(33, 90), st.sampled_from([8, 16, 24, 32]), st.sampled_from([0.0, 0.25, 0.5]),
       st.integers(1, 7), st.sampled_from(["center", "gaussian", "mean"]), st.integers(0, 1000))
def test_bands_follow_each_other_and_blend_every_window_like_numpy(h, w, tile, overlap, batch, blend, seed):
    """tiled_bands yields contiguous bands from row 0 to the bottom, whatever
    the batch (batches span rows of windows), and their rows blend each
    window's prediction with the blend's weights as a whole-canvas numpy
    accumulation does."""
    from keras_unetpp.inference import tiled_bands

    image = np.random.default_rng(seed).random((h, w, 1)).astype(np.float32)
    read_log = []

    def read(top, left, bottom, right):
        read_log.append((top, left, bottom, right))
        return image[top:bottom, left:right]

    bands = list(tiled_bands(window_mean_model(), read, h, w, tile_size=tile, overlap=overlap, batch_size=batch,
                             blend=blend))
    assert bands[0][0] == 0 and bands[-1][1] == h
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:])) and all(b[1] > b[0] for b in bands)
    assert len(read_log) == count_windows(h, w, tile, overlap)
    result = np.concatenate([band for _, _, band in bands])
    expected = blended_window_means(image, tile, window_stride(tile, overlap), blend)
    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_tiled_bands_checks_before_reading():
    from keras_unetpp.inference import tiled_bands

    def read(*_):
        raise AssertionError("nothing may be read before the arguments are checked")

    model = conv_model(np.ones((3, 3)), channels=3)
    with pytest.raises(ValueError, match="overlap"):
        tiled_bands(model, read, 50, 50, tile_size=16, overlap=1.0)
    with pytest.raises(ValueError, match="blend"):
        tiled_bands(model, read, 50, 50, tile_size=16, blend="max")
    with pytest.raises(ValueError, match="channel"):
        tiled_bands(model, read, 50, 50, tile_size=16, channels=4)


_SEAM_MODELS = {}


def _seam_model(depth: int):
    if depth not in _SEAM_MODELS:
        keras.utils.set_random_seed(depth)
        _SEAM_MODELS[depth] = UNetPlusPlus((None, None, 2), filters=(4, 8, 16)[: depth + 1])
    return _SEAM_MODELS[depth]


@given(depth=st.sampled_from([1, 2]), height=st.integers(20, 170), width=st.integers(20, 170),
       tile=st.integers(48, 130), seed=st.integers(0, 1000))
def test_tiles_of_any_scene_and_tile_size_equal_whole_image_prediction(depth, height, width, tile, seed):
    """The reference is the model on the whole scene (it pads it to its own grid once). Windows on that
    grid, with a margin wider than the model's context (depth 1: 12 px, depth 2: 24 px), give the same."""
    if depth == 2:
        tile = max(tile, 96)
    model = _seam_model(depth)
    scene = np.random.default_rng(seed).random((height, width, 2)).astype("float32")
    whole = model.predict(scene[None], verbose=0)[0]
    tiled = predict_tiled(model, scene, tile_size=tile, overlap=0.5, progress=False)
    np.testing.assert_allclose(tiled, whole, atol=2e-5)


@given(height=st.integers(1, 200), width=st.integers(1, 200), tile=st.integers(32, 128),
       overlap=st.sampled_from([0.0, 0.25, 0.5]))
def test_count_windows_counts_the_windows_tiling_reads(height, width, tile, overlap):
    model = _seam_model(2)
    reads = []

    def read(top, left, bottom, right):
        reads.append((top, left))
        return np.zeros((bottom - top, right - left, 2), np.float32)

    bands = tiled_bands(model, read, height, width, tile_size=tile, overlap=overlap, batch_size=64)
    covered = np.zeros((height, width), bool)
    for top, bottom, band in bands:
        covered[top:bottom] = True
        assert band.shape[:2] == (bottom - top, width)
    assert covered.all()
    assert count_windows(height, width, tile, overlap, model) == len(reads)
