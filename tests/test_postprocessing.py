"""Mask clean-up against scipy.ndimage.label (an independent labelling)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from keras_unetpp.postprocessing import fill_holes, keep_largest_regions, remove_small_regions

EIGHT = np.ones((3, 3), int)


def reference_regions(mask):
    labels, count = ndimage.label(mask, structure=EIGHT)
    areas = ndimage.sum(mask, labels, index=np.arange(1, count + 1)).astype(int)
    return labels, areas


@given(seed=st.integers(0, 10**6), height=st.integers(1, 30), width=st.integers(1, 30),
       min_area=st.integers(0, 12), density=st.floats(0.05, 0.7))
def test_remove_small_regions_matches_scipy(seed, height, width, min_area, density):
    prob = np.random.default_rng(seed).random((height, width, 1))
    prob = np.where(prob < density, 0.9, 0.1)
    original = prob.copy()
    labels, areas = reference_regions(prob[..., 0] >= 0.5)
    expected = np.isin(labels, 1 + np.flatnonzero(areas >= min_area)) & (labels > 0)
    np.testing.assert_array_equal(remove_small_regions(prob, min_area), expected)
    np.testing.assert_array_equal(prob, original)


@given(seed=st.integers(0, 10**6), count=st.integers(1, 4))
def test_keep_largest_regions_keeps_the_largest(seed, count):
    mask = np.random.default_rng(seed).random((25, 25)) < 0.3
    labels, areas = reference_regions(mask)
    out = keep_largest_regions(mask, count)
    kept = np.unique(labels[out])
    assert len(kept) == min(count, len(areas))
    if len(areas) > count:  # every kept region is at least as large as every dropped one
        dropped = np.setdiff1d(np.arange(1, len(areas) + 1), kept)
        assert areas[kept - 1].min() >= areas[dropped - 1].max()
    assert not np.any(out & ~mask)


@pytest.mark.parametrize("call, message", [
    (lambda: remove_small_regions(np.zeros((2, 2, 2)), 1), "2-D mask"),
    (lambda: remove_small_regions(np.full((2, 2), np.nan), 1), "NaN"),
    (lambda: remove_small_regions(np.zeros((2, 2)), -1), "min_area"),
    (lambda: keep_largest_regions(np.zeros((2, 2)), 0), "count"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


FOUR = ndimage.generate_binary_structure(2, 1)


@given(seed=st.integers(0, 10**6), height=st.integers(1, 30), width=st.integers(1, 30),
       density=st.floats(0.2, 0.9), max_area=st.one_of(st.none(), st.integers(0, 8)))
def test_fill_holes_matches_scipy(seed, height, width, density, max_area):
    """scipy's binary_fill_holes (4-connected background flood from outside) is the reference;
    with max_area, the holes it fills are labelled by scipy and kept only up to that size."""
    prob = np.where(np.random.default_rng(seed).random((height, width)) < density, 0.9, 0.1)
    original = prob.copy()
    mask = prob >= 0.5
    filled = ndimage.binary_fill_holes(mask, structure=FOUR)
    if max_area is not None:
        holes, count = ndimage.label(filled & ~mask, structure=FOUR)
        sizes = ndimage.sum(np.ones_like(mask), holes, index=np.arange(1, count + 1))
        filled = mask | np.isin(holes, 1 + np.flatnonzero(sizes <= max_area))
    np.testing.assert_array_equal(fill_holes(prob, max_area=max_area), filled)
    np.testing.assert_array_equal(prob, original)


def test_fill_holes_rejects_a_negative_area():
    with pytest.raises(ValueError, match="max_area must be >= 0"):
        fill_holes(np.zeros((3, 3)), max_area=-1)
