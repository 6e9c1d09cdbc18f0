"""BandPolygons: regions joined across bands equal polygonising the whole mask at once.

The reference labels the whole mask with ``scipy.ndimage.label`` (8-connected) and traces every
label with one ``rasterio.features.shapes`` call; polygons are compared as shapely geometries
(``equals``: the same point set), with their pixel counts and mean probabilities counted by numpy.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("rasterio", reason="the geo extra is not installed: pip install -e '.[geo]'")
pytest.importorskip("shapely", reason="the geo extra is not installed: pip install -e '.[geo]'")
import rasterio.features  # noqa: E402
import scipy.ndimage  # noqa: E402
import shapely  # noqa: E402
import shapely.geometry  # noqa: E402
from affine import Affine  # noqa: E402

from keras_unetpp.geo import mask_polygons  # noqa: E402
from keras_unetpp.polygons import BandPolygons  # noqa: E402


def reference(mask, prob=None, transform=None, min_area=0, simplify=0.0):
    """[(geometry, pixels, mean probability)] of the whole mask, by scipy + rasterio directly."""
    labels, count = scipy.ndimage.label(mask, structure=np.ones((3, 3)))
    kwargs = {} if transform is None else {"transform": transform}
    shapes = {}
    for geometry, value in rasterio.features.shapes(labels.astype(np.int32), mask=labels > 0, connectivity=8,
                                                    **kwargs):
        shapes.setdefault(int(value), []).append(shapely.geometry.shape(geometry))
    out = []
    for label in range(1, count + 1):
        pixels = int((labels == label).sum())
        if pixels < min_area:
            continue
        shape = shapely.union_all(shapes[label])
        if simplify:
            shape = shape.simplify(simplify, preserve_topology=True)
        mean = None if prob is None else round(float(prob[labels == label].mean()), 4)
        out.append((shape, pixels, mean))
    return out


def streamed(mask, cuts, prob=None, transform=None, min_area=0, simplify=0.0):
    stream = BandPolygons(mask.shape[1], transform, min_area=min_area, simplify=simplify)
    features = []
    edges = [0, *cuts, mask.shape[0]]
    for top, bottom in zip(edges[:-1], edges[1:]):
        features += stream.add(mask[top:bottom], None if prob is None else prob[top:bottom])
    features += stream.finish()
    return [(shapely.geometry.shape(f["geometry"]), f["properties"]["pixels"],
             f["properties"].get("mean_probability")) for f in features]


def assert_same(got, want):
    assert len(got) == len(want)
    unmatched = list(want)
    for shape, pixels, mean in got:
        match = next((w for w in unmatched if w[1] == pixels and w[2] == mean and w[0].equals(shape)), None)
        assert match is not None, f"no reference region equals {shape.wkt[:80]} ({pixels} pixels)"
        unmatched.remove(match)


@st.composite
def masks_and_cuts(draw):
    height = draw(st.integers(1, 24))
    width = draw(st.integers(1, 20))
    density = draw(st.sampled_from([0.2, 0.5, 0.8]))
    seed = draw(st.integers(0, 2**31 - 1))
    mask = np.random.default_rng(seed).random((height, width)) < density
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, height - 1)), max_size=6)))) if height > 1 else []
    return mask, cuts, seed


@settings(max_examples=60, deadline=None)
@given(masks_and_cuts())
def test_bands_equal_the_whole_mask(case):
    mask, cuts, seed = case
    prob = np.random.default_rng(seed + 1).random(mask.shape)
    assert_same(streamed(mask, cuts, prob), reference(mask, prob))


@settings(max_examples=40, deadline=None)
@given(masks_and_cuts(), st.integers(1, 4), st.integers(1, 3))
def test_regions_traced_a_few_at_a_time_equal_the_whole_mask(case, group, rows):
    """A speckled band is traced in groups of regions (strips of rows): the pieces still match."""
    mask, cuts, seed = case
    prob = np.random.default_rng(seed + 1).random(mask.shape)
    with mock.patch("keras_unetpp.polygons.REGIONS_AT_A_TIME", group), \
            mock.patch("keras_unetpp.polygons.ROWS_AT_A_TIME", rows):
        got = streamed(mask, cuts, prob, Affine(0.5, 0, 500000, 0, -0.5, 2800000), min_area=2)
    assert_same(got, reference(mask, prob, Affine(0.5, 0, 500000, 0, -0.5, 2800000), min_area=2))


@settings(max_examples=25, deadline=None)
@given(masks_and_cuts(), st.integers(0, 6), st.sampled_from([0.0, 0.6]))
def test_min_area_and_simplify_apply_to_the_joined_region(case, min_area, simplify):
    mask, cuts, _ = case
    transform = Affine(0.5, 0, 500000, 0, -0.5, 2800000)
    assert_same(streamed(mask, cuts, None, transform, min_area, simplify),
                reference(mask, None, transform, min_area, simplify))


def test_a_ring_with_an_island_over_many_bands_keeps_its_hole():
    mask = np.zeros((12, 12), bool)
    mask[1:11, 1:11] = True
    mask[3:9, 3:9] = False          # the hole
    mask[5:7, 5:7] = True           # an island in it: a region of its own
    got = streamed(mask, [2, 4, 5, 6, 8, 10])
    assert_same(got, reference(mask))
    ring = max(got, key=lambda g: g[1])[0]
    assert len(ring.interiors) == 1 and ring.area == 100 - 36


def test_a_region_spanning_every_band_is_held_until_it_ends():
    mask = np.zeros((40, 6), bool)
    mask[:, 2] = True               # a column through all the bands
    mask[5, 4] = True               # a speck, complete in its own band
    stream = BandPolygons(6)
    emitted = [list(stream.add(mask[top:top + 4])) for top in range(0, 40, 4)]
    assert [len(e) for e in emitted] == [0, 1] + [0] * 8   # the speck as soon as its band is done
    tail = list(stream.finish())
    assert len(tail) == 1 and tail[0]["properties"]["pixels"] == 40


def test_memory_follows_the_bands_for_small_regions():
    rng = np.random.default_rng(0)
    stream = BandPolygons(64)
    held = 0
    for _ in range(50):   # speckle: many one-pixel regions, none reaching far
        band = rng.random((8, 64)) < 0.05
        list(stream.add(band))
        held = max(held, stream.held_pixels)
    assert held <= 2 * 64   # only the specks on a band's last row wait, each a piece of a pixel or two


def test_a_line_through_every_band_holds_its_own_pixels_not_its_rows():
    """A line along the scene's edge (a road, a river bank) costs its pixels, not rows x width."""
    width, bands, rows = 500, 30, 16
    stream = BandPolygons(width)
    held = 0
    rng = np.random.default_rng(1)
    for _ in range(bands):
        band = rng.random((rows, width)) < 0.1
        band[:, 0:2] = True                   # the line
        band[:, 2] = False                    # kept apart from the speckle
        list(stream.add(band))
        held = max(held, stream.held_pixels)
    (line,) = [f for f in stream.finish() if f["properties"]["pixels"] >= 2 * rows * bands]
    assert line["properties"]["pixels"] == 2 * rows * bands
    assert held < 2 * rows * bands + 3 * width   # the line and a band edge's specks; rows x width is 240,000


def test_mask_polygons_is_the_one_band_case_with_running_ids():
    mask = np.zeros((5, 7), bool)
    mask[0, 5:7] = True
    mask[2:4, 0:2] = True
    features = mask_polygons(mask)
    assert sorted(f["properties"]["id"] for f in features) == [1, 2]
    assert sorted(f["properties"]["pixels"] for f in features) == [2, 4]


def test_bad_bands_are_refused_by_name():
    stream = BandPolygons(5)
    with pytest.raises(ValueError, match=r"\(rows, 5\)"):
        list(stream.add(np.zeros((3, 4))))
    list(stream.add(np.zeros((3, 5)), np.zeros((3, 5))))
    with pytest.raises(ValueError, match="every band or with none"):
        list(stream.add(np.zeros((3, 5))))
    with pytest.raises(ValueError, match="min_area"):
        BandPolygons(5, min_area=1.5)
