"""evaluation: counts vs hand computation, metrics, error map, coverage tests."""

import json

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from keras_unetpp import evaluation as ev
from keras_unetpp import visualization as vis


def test_report_matches_hand_counts():
    truth = np.array([[1, 1, 0, 0], [1, 0, 0, 0]])
    pred = np.array([[1, 0, 1, 0], [1, 0, 0, 1]])
    r = ev.segmentation_report(truth, pred)
    assert r.counts == ev.ConfusionCounts(tp=2, fp=2, fn=1, tn=3)
    assert r.iou == pytest.approx(2 / 5) and r.dice == pytest.approx(4 / 7)
    assert r.precision == pytest.approx(0.5) and r.recall == pytest.approx(2 / 3)
    assert r.f1 == pytest.approx(4 / 7)
    data = json.loads(r.to_json())
    assert data["counts"] == {"tp": 2, "fp": 2, "fn": 1, "tn": 3}
    assert data["fractions"]["tn"] == pytest.approx(3 / 8)
    assert "precision" in str(r) and "TP" in str(r)


@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.sampled_from([0, 255])),
       st.integers(0, 1000))
def test_counts_match_bincount_reference(truth, seed):
    prob = np.random.default_rng(seed).random(truth.shape).astype("float32")
    counts = ev.confusion_counts(truth, prob, threshold=0.4)
    ref = np.bincount((2 * (truth > 0) + (prob >= 0.4)).ravel(), minlength=4)  # tn, fp, fn, tp
    assert (counts.tn, counts.fp, counts.fn, counts.tp) == tuple(int(v) for v in ref)


def test_empty_masks_have_documented_values():
    z = np.zeros((4, 4))
    r = ev.segmentation_report(z, z)
    assert (r.iou, r.dice, r.precision, r.recall, r.f1) == (1.0, 1.0, 1.0, 1.0, 1.0)
    r = ev.segmentation_report(z, np.ones((4, 4)))
    assert (r.iou, r.precision, r.recall) == (0.0, 0.0, 0.0)


def test_error_map_colours_and_large_masks(tmp_path):
    truth = np.array([[0, 0, 1, 1]], np.uint8)
    pred = np.array([[0, 1, 0, 1]], np.uint8)
    emap = vis.error_map(truth, pred)
    names = ["TN", "FP", "FN", "TP"]
    assert [tuple(c) for c in emap[0]] == [vis.ERROR_COLORS[n] for n in names]
    big_t = np.zeros((3072, 4608), np.uint8)
    big_t[1000:2000, 100:4000] = 1
    big_p = np.roll(big_t, 50, axis=0)
    path = vis.save_error_map(tmp_path / "e.png", big_t, big_p)
    image = cv2.imread(str(path))
    assert image.shape[0] > 3072 and image.shape[1] == 4608
    assert ev.confusion_counts(big_t, big_p).fp == 50 * 3900


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        ev.confusion_counts(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="2-D"):
        ev.confusion_counts(np.zeros((2, 3, 3)), np.zeros((2, 3, 3)))


@given(st.integers(1, 50), st.integers(1, 50), st.integers(1, 17), st.integers(0, 100))
def test_block_fractions_match_loop_reference(h, w, block, seed):
    mask = np.random.default_rng(seed).random((h, w)) > 0.5
    got = ev.block_fractions(mask, block)
    ref = [[mask[i:i + block, j:j + block].mean() for j in range(0, w, block)] for i in range(0, h, block)]
    np.testing.assert_allclose(got, np.array(ref))


def test_coverage_comparison_uses_scipy_tests():
    rng = np.random.default_rng(0)
    truth = rng.random((128, 128)) > 0.7
    pred = rng.random((128, 128)) > 0.3
    c = ev.compare_coverage(truth, pred, block_size=8)
    ref = stats.ks_2samp(ev.block_fractions(truth, 8).ravel(), ev.block_fractions(pred, 8).ravel())
    assert c.ks_statistic == pytest.approx(ref.statistic) and c.ks_pvalue < 1e-6
    assert c.chi2_pvalue < 1e-6
    same = ev.compare_coverage(truth, truth, block_size=8)
    assert same.ks_statistic == 0 and same.ks_pvalue == pytest.approx(1.0)
    r = ev.segmentation_report(truth, pred, block_size=8)
    assert json.loads(r.to_json())["coverage"]["blocks"] == 256


@given(seed=st.integers(0, 10**6), count=st.integers(1, 4))
def test_combined_report_equals_the_report_of_all_pixels_together(seed, count):
    from keras_unetpp.evaluation import SegmentationReport, segmentation_report

    rng = np.random.default_rng(seed)
    truths = [rng.random((int(rng.integers(2, 9)), 7)) > 0.6 for _ in range(count)]
    preds = [rng.random(t.shape) > 0.5 for t in truths]
    combined = SegmentationReport.combined([segmentation_report(t, p) for t, p in zip(truths, preds)])
    t, p = np.concatenate(truths), np.concatenate(preds)
    tp, fp, fn = np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
    assert combined.iou == pytest.approx(tp / (tp + fp + fn) if tp + fp + fn else 1.0)
    assert (combined.counts.tp, combined.counts.fp, combined.counts.fn) == (tp, fp, fn)
