"""The train command's clock: the timed end of a run, and the budget guard's stop and re-plans."""

import json
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


def _replanning_guard(monkeypatch, epochs=20, budget=250.0, reserve=20.0, replan_at=6):
    """A guard over epochs of 10 steps that re-plans after ``replan_at`` epochs, with its schedule
    and the re-plans it reported."""
    from keras_unetpp.training import EpochCosine

    clock = _Clock()
    monkeypatch.setattr(run.time, "perf_counter", clock)
    schedule, reported = EpochCosine(1e-3, epochs), []
    guard = run.BudgetProgress(total_steps=10 * epochs, budget=budget, started=0.0, reserve=reserve,
                               schedule=schedule, replan_at=replan_at, most_epochs=epochs + epochs // 2,
                               on_replan=reported.append)
    guard.set_model(types.SimpleNamespace(stop_training=False))
    guard.set_params({"steps": 10})
    return guard, clock, schedule, reported


@pytest.mark.parametrize("pace", [8.0, 12.0])
def test_a_run_off_its_timed_pace_replans_its_epochs_to_end_within_the_budget(monkeypatch, pace):
    # planned: 20 epochs of 10 s after a 30 s first one; they run at 8 s (faster) or 12 s (slower)
    guard, clock, schedule, reported = _replanning_guard(monkeypatch)
    before = [schedule(epoch) for epoch in range(6)]
    ran = _epochs(guard, clock, [30.0] + [pace] * 40)
    # by hand: the most epochs whose ends fall within the budget less the end as timed (two thirds
    # of the 20 s reserve, without its margin)
    ends = 30.0 + pace * np.arange(41)
    expected = int(np.sum(ends <= 250.0 - 20.0 * 2 / 3))
    assert ran == expected == {8.0: 26, 12.0: 18}[pace]
    assert guard.stopped_at is None and guard.total_steps == 10 * ran    # a planned end, not a cut
    assert len(reported) == 1     # a steady pace: planned once, after the sixth epoch, then kept
    assert {key: reported[0][key] for key in ("at_epoch", "epochs", "planned_epochs", "epoch_seconds")} == {
        "at_epoch": 6, "epochs": ran, "planned_epochs": 20, "epoch_seconds": pace}
    rates = np.array([schedule(epoch) for epoch in range(ran)])
    assert rates[:6].tolist() == before                       # the epochs run keep their rates
    assert np.all(np.diff(rates) < 0)                         # the decay goes on from where it was
    assert 0.05e-3 < rates[-1] < 0.07e-3                      # and reaches its floor at the new end


def test_a_run_whose_pace_drifts_later_follows_it_to_the_budget(monkeypatch):
    # 10 s epochs (as timed) until the ninth, 7 s after: a plan made a third of the way in would
    # have kept 20 epochs and ended at 194 s of 250
    guard, clock, schedule, reported = _replanning_guard(monkeypatch)
    durations = [30.0] + [10.0] * 8 + [7.0] * 40
    ran = _epochs(guard, clock, durations)
    ends = np.cumsum(durations)
    target = 250.0 - 20.0 * 2 / 3
    assert ends[ran - 1] <= target < ends[ran - 1] + 7.0     # the last epoch that fits, and no more
    assert guard.stopped_at is None and guard.total_steps == 10 * ran and len(reported) >= 2
    rates = np.array([schedule(epoch) for epoch in range(ran)])
    assert np.all(np.diff(rates) < 0) and 0.05e-3 < rates[-1] < 0.07e-3


def test_a_run_on_pace_keeps_its_plan_and_a_run_that_cannot_grow_past_the_cap_stops_there(monkeypatch):
    # 20 epochs of 10 s after a 30 s first one end at 220 s: within 240 s less the timed end, and a
    # 21st would not be
    guard, clock, schedule, reported = _replanning_guard(monkeypatch, budget=240.0)
    assert _epochs(guard, clock, [30.0] + [10.0] * 40) == 20 and reported == [] and schedule.epochs == 20
    guard, clock, schedule, reported = _replanning_guard(monkeypatch, budget=1000.0)
    assert _epochs(guard, clock, [30.0] + [10.0] * 40) == 30 == reported[-1]["epochs"]   # 20 + 20 // 2


def test_a_restored_schedule_gives_the_rates_of_the_one_it_was_saved_from():
    from keras_unetpp.training import EpochCosine

    schedule = EpochCosine(1e-3, 20)
    schedule.replan(6, 26)
    schedule.replan(12, 24)
    restored = EpochCosine(1e-3, 20)
    restored.restore(json.loads(json.dumps(schedule.bends)))   # through plan.json
    assert restored.epochs == 24
    assert [restored(epoch) for epoch in range(30)] == pytest.approx([schedule(epoch) for epoch in range(30)],
                                                                      rel=1e-9)


def test_the_epoch_cosine_is_the_mean_of_the_per_step_cosine_over_each_epoch():
    import keras

    from keras_unetpp.training import EpochCosine

    epochs, steps = 12, 50
    per_step = keras.optimizers.schedules.CosineDecay(2e-3, epochs * steps, alpha=0.05)
    rates = np.array([float(per_step(step)) for step in range(epochs * steps)]).reshape(epochs, steps)
    schedule = EpochCosine(2e-3, epochs)
    np.testing.assert_allclose([schedule(epoch) for epoch in range(epochs)], rates.mean(axis=1), atol=2e-3 * 0.01)


def test_fit_sets_the_epoch_schedule_rate_and_follows_a_replan_made_while_it_trains():
    import keras

    from keras_unetpp import BinaryIoU, FocalDiceLoss, UNetPlusPlus
    from keras_unetpp.training import EpochCosine, Recipe, fit

    class ReplanAfterTwo(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                schedule.replan(2, 6)

    schedule = EpochCosine(1e-3, 4)
    x = np.random.default_rng(0).random((4, 16, 16, 1)).astype("float32")
    model = UNetPlusPlus((16, 16, 1), filters=(2, 4))
    history = fit(model, FocalDiceLoss(), [BinaryIoU()], (x, (x > 0.5).astype("float32")),
                  recipe=Recipe(6, 1, verbose=0), extra_callbacks=[ReplanAfterTwo()], epoch_schedule=schedule)
    # by hand: two epochs of a 4-epoch cosine at their middles, then the second half spread over four
    first = [0.05 + 0.95 * (1 + np.cos(np.pi * (e + 0.5) / 4)) / 2 for e in range(2)]
    rest = [0.05 + 0.95 * (1 + np.cos(np.pi * (0.5 + 0.5 * (e + 0.5) / 4))) / 2 for e in range(4)]
    np.testing.assert_allclose(history["lr"], 1e-3 * np.array(first + rest), rtol=1e-5)
    assert "learning_rate" not in history   # the scheduler's own log of the same rate is left out


def test_best_weights_with_a_schedule_keep_the_best_of_its_last_third_as_it_is_replanned(tmp_path):
    """Validation scores with an early spike: only the last third of the schedule's epochs count,
    and a re-plan that lengthens the run moves that third. The kept epoch is checked against the
    argmax of the scores over the epochs written out by hand."""
    from keras_unetpp import UNetPlusPlus
    from keras_unetpp.training import EpochCosine

    schedule = EpochCosine(2e-3, 6)
    best = run.BestWeights(tmp_path / "best.weights.h5", "val_iou", schedule=schedule)
    best.set_model(UNetPlusPlus((16, 16, 1), filters=(2, 4)))
    scores = [0.2, 0.95, 0.5, 0.6, 0.7, 0.65, 0.66, 0.8, 0.75]
    for epoch, score in enumerate(scores[:4]):
        best.on_epoch_end(epoch, {"val_iou": score})
    assert not best.path.exists()            # epochs 1-4 of 6: before the last third
    schedule.replan(4, 9)                    # now 9 epochs: the last third is epochs 7-9
    for epoch, score in enumerate(scores[4:], start=4):
        best.on_epoch_end(epoch, {"val_iou": score})
    kept = json.loads((tmp_path / "best.weights.h5.json").read_text())
    assert kept["epoch"] == 7 + int(np.argmax(scores[6:9])) and kept["score"] == pytest.approx(max(scores[6:9]))
