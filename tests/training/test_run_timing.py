"""The train command's clock: the timed end of a run, and the budget guard's stop."""

import time
import types

import numpy as np
import pytest

from keras_unetpp.datasets.io import Sample
from keras_unetpp.training import run


def test_the_timed_end_scales_the_second_image_by_pixels_and_adds_compiling_and_saving(monkeypatch, tmp_path):
    compiling, per_pixel, saving = 0.2, 1e-6, 0.05
    calls = []

    def slow_score(segmenter, samples, out, classes, value_range):  # a compile once, then time by pixels
        pixels = samples[0].image.shape[0] * samples[0].image.shape[1]
        time.sleep((compiling if not calls else 0.0) + per_pixel * pixels)
        calls.append(pixels)

    class Segmenter:
        def save(self, path):
            time.sleep(saving)

    monkeypatch.setattr(run, "_score", slow_score)
    sides = [100, 300, 500, 200]
    val_set = [Sample(str(k), str(k), np.zeros((side, side, 1), np.uint8), np.zeros((side, side, 1), np.uint8))
               for k, side in enumerate(sides)]
    estimate = run._time_end(Segmenter(), val_set, None, (0.0, 255.0), margin=1.5, report_seconds=5.0)
    assert calls == [100 * 100, 300 * 300]          # only the first two images are scored
    # what scoring all four images and one save take, written out: 0.2 + 1e-6 * 390,000 + 0.05 s
    expected = 1.5 * (compiling + per_pixel * sum(side * side for side in sides) + saving) + 5.0
    assert estimate == pytest.approx(expected, abs=0.05)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _epochs(guard, clock, durations):
    """Runs the guard over epochs of the given lengths; returns the epochs run."""
    for epoch, seconds in enumerate(durations):
        guard.on_epoch_begin(epoch)
        clock.now += seconds
        guard.on_epoch_end(epoch)
        if guard.model.stop_training:
            return epoch + 1
    return len(durations)


def _guard(monkeypatch, total_steps):
    """A budget guard of 150 s (20 s reserved) on a clock the test moves, over epochs of 10 steps."""
    clock = _Clock()
    monkeypatch.setattr(run.time, "perf_counter", clock)
    guard = run.BudgetProgress(total_steps=total_steps, budget=150.0, started=0.0, reserve=20.0)
    guard.set_model(types.SimpleNamespace(stop_training=False))
    guard.set_params({"steps": 10})
    return guard, clock


def test_the_budget_guard_stops_before_an_epoch_that_would_end_in_the_last_half_of_the_reserve(monkeypatch):
    # 20 epochs of 10 steps planned; the first epoch compiles (30 s), then 10 s each
    guard, clock = _guard(monkeypatch, 200)
    ran = _epochs(guard, clock, [30.0] + [10.0] * 19)
    # by hand: epochs end at 30, 40, ..., 140 = 150 - 20 / 2; one more would end past it
    ends = 30.0 + 10.0 * np.arange(20)
    expected = int(np.argmax(ends + 10.0 > 140.0)) + 1
    assert ran == expected == 12 and guard.stopped_at == 120


def test_the_budget_guard_lets_a_run_on_pace_finish(monkeypatch):
    guard, clock = _guard(monkeypatch, 100)
    assert _epochs(guard, clock, [30.0] + [10.0] * 9) == 10 and guard.stopped_at is None
