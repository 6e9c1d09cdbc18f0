"""``keras-unetpp train`` end to end on a tiny set: the plan, the budget, the outputs, and a model that
``keras-unetpp predict`` runs; a bad input is refused before any training."""

import json
import subprocess
import sys
import time

import cv2
import keras
import numpy as np
import pytest

from keras_unetpp import describe_model, load_model
from keras_unetpp.cli import main

pytestmark = pytest.mark.slow  # trains: the full lane only

SMALL = {"working_size": 32, "filters": [4, 8, 16], "batch_size": 4}


def _films(root, count=10, suffix=".png"):
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(count):
        lungs = np.zeros((48, 40), np.uint8)
        cv2.ellipse(lungs, (12, 24), (6, 16), 0, 0, 360, 255, -1)
        cv2.ellipse(lungs, (28, 24), (6, 16), 0, 0, 360, 255, -1)
        film = np.clip(170 - lungs // 2 + rng.integers(0, 30, lungs.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "images" / f"p{k // 2}_{k}.png"), film)
        cv2.imwrite(str(root / "masks" / f"p{k // 2}_{k}{suffix}"), lungs)
    return root


def test_train_writes_a_model_that_predict_runs_within_the_budget(tmp_path):
    from keras_unetpp.training import train

    data = _films(tmp_path / "data")
    seen = []   # the caller's own callback, told of every epoch with its validation
    told = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, logs["val_iou"])))
    start = time.perf_counter()
    result = train(data / "images", data / "masks", tmp_path / "run", time_budget="30s", overrides=SMALL,
                   callbacks=[told])
    seconds = time.perf_counter() - start
    run = tmp_path / "run"
    assert seconds < 30 * 1.1, f"{seconds:.0f} s for a 30 s budget"
    for name in ("plan.json", "model.keras", "metrics.json", "report.md", "curves_loss.png"):
        assert (run / name).stat().st_size > 0, name
    plan = json.loads((run / "plan.json").read_text())["plan"]
    assert plan["kind"]["value"] == "medical" and plan["steps"]["value"] >= 20
    assert all(entry["rule"] for entry in plan.values())
    per_epoch = plan["steps"]["value"] // plan["epochs"]["value"]
    assert [epoch for epoch, _ in seen] == list(range(result["steps"] // per_epoch))
    # whole films validate it: the best of every epoch is kept
    assert result["kept"]["epoch"] == 1 + int(np.argmax([score for _, score in seen]))
    assert len(list(run.glob("*_error_map.png"))) == len(result["per_image"]) >= 2
    model = load_model(run / "model.keras")
    info = describe_model(model)
    assert info.whole_image and info.input_range == (0.0, 255.0) and info.symmetries == ((False,) * 3,
                                                                                          (False, False, True))
    assert result["overall"]["iou"] > 0.5  # ellipses on a noisy film: learnt, not guessed
    assert main(["predict", str(run / "model.keras"), str(data / "images" / "p0_0.png"), "--out",
                 str(tmp_path / "masks_out"), "--tta"]) == 0
    predicted = cv2.imread(str(tmp_path / "masks_out" / "p0_0_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
    truth = cv2.imread(str(data / "masks" / "p0_0.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert (predicted & truth).sum() / (predicted | truth).sum() > 0.5


def test_a_killed_run_resumes_with_its_own_plan_and_finishes_it(tmp_path, capsys):
    """A run killed (SIGKILL) after two epochs' backups, with its latest backup torn as by a kill in
    the middle of a save, started again with the same arguments: it takes the plan it wrote rather
    than timing again, resumes from the backup before, and trains exactly the planned steps to a
    model, with the backup gone."""
    from keras_unetpp.training import train

    data = _films(tmp_path / "data")
    run = tmp_path / "run"
    overrides = {**SMALL, "steps": 60, "epochs": 6}   # several epochs to be killed between
    # the run kills itself (SIGKILL, nothing cleaned up) at the end of its second epoch, after the backup
    killed_run = f"""
import os, signal
from keras_unetpp.training import run, train
end_of_epoch = run.BudgetProgress.on_epoch_end
def killed_after_two(self, epoch, logs=None):
    end_of_epoch(self, epoch, logs)
    if epoch == 1:
        os.kill(os.getpid(), signal.SIGKILL)
run.BudgetProgress.on_epoch_end = killed_after_two
train({str(data / 'images')!r}, {str(data / 'masks')!r}, {str(run)!r}, time_budget='60s', overrides={overrides!r})
"""
    job = subprocess.run([sys.executable, "-c", killed_run], capture_output=True, timeout=300)
    assert job.returncode == -9, job.stderr.decode()[-2000:]
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 2
    assert not (run / "model.keras").exists()
    planned = json.loads((run / "plan.json").read_text())["plan"]
    best_before = json.loads((run / "best.weights.h5.json").read_text())
    # a kill in the middle of the next save: the latest weights torn, the best ones half written
    (run / "backup" / "latest.weights.h5").write_bytes(b"\x89HDF\r\n torn")
    (run / "partial.best.weights.h5").write_bytes(b"torn")

    result = train(data / "images", data / "masks", run, time_budget="60s", overrides=overrides)
    out = capsys.readouterr().out
    assert "resuming with the plan" in out and "resuming the interrupted run" in out
    assert json.loads((run / "plan.json").read_text())["plan"] == planned
    assert result["steps"] == planned["steps"]["value"] == 60
    assert (run / "model.keras").is_file() and not (run / "backup").exists()
    best = json.loads((run / "best.weights.h5.json").read_text())
    assert best_before["epoch"] <= 2 and best["score"] >= best_before["score"]   # the best before is kept


def test_dry_run_plans_and_trains_nothing(tmp_path, capsys):
    data = _films(tmp_path / "data")
    assert main(["train", "--images", str(data / "images"), "--masks", str(data / "masks"), "--out",
                 str(tmp_path / "run"), "--dry-run", "--time-budget", "10m"]) == 0
    assert "plan (dry run" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["plan.json"]


def test_jpeg_masks_and_bad_budgets_are_refused_before_training(tmp_path, capsys):
    data = _films(tmp_path / "data", suffix=".jpg")
    assert main(["train", "--images", str(data / "images"), "--masks", str(data / "masks"), "--out",
                 str(tmp_path / "run")]) == 2
    assert "JPEG" in capsys.readouterr().err
    assert main(["train", "--images", str(data / "images"), "--masks", str(data / "masks"), "--out",
                 str(tmp_path / "run"), "--time-budget", "soon"]) == 2
    assert "time budget" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_sixteen_bit_films_keep_their_levels_in_a_whole_image_plan(tmp_path):
    """Films of levels 1000..1255 in 16-bit files: 256 distinct values, which 8-bit storage on the way
    to the model would fold into about 32 (an 11-bit range cut to 256 steps)."""
    from keras_unetpp.training.plan import fingerprint, make_plan
    from keras_unetpp.training.run import _Prepared, load_pairs

    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for k in range(6):
        mask = np.zeros((40, 40), np.uint8)
        cv2.circle(mask, (20, 20), 12, 255, -1)
        cv2.imwrite(str(tmp_path / "images" / f"p{k}_a.png"), rng.integers(1000, 1256, (40, 40)).astype(np.uint16))
        cv2.imwrite(str(tmp_path / "masks" / f"p{k}_a.png"), mask)
    samples = load_pairs(tmp_path / "images", tmp_path / "masks")
    print_ = fingerprint(samples, None)
    facts = {key: entry["value"] for key, entry in make_plan(print_, 600.0, 0.5).items()}
    assert not facts["crop"]
    facts["working_size"] = 40   # the films' own size: no resampling
    images, _ = _Prepared(samples, samples[:1], facts, print_, 0).train
    high = 2.0 ** print_["bit_depth"] - 1   # the files' values onto [0, 1] by their bit depth
    np.testing.assert_allclose(images[0, ..., 0], samples[0].image[..., 0] / high, atol=1e-6)
    assert len(np.unique(images)) == 256


def test_class_scores_are_each_classes_iou_over_all_images(tmp_path):
    """A model of three classes scored on three label maps (with ignored pixels): per-class IoU and
    their mean over the classes present, against numpy set counts of the same predictions."""
    from perturb import perturb_weights

    from keras_unetpp import UNetPlusPlus, with_preprocessing
    from keras_unetpp.datasets.io import Sample
    from keras_unetpp.inference import predict_augmented
    from keras_unetpp.training.run import _score

    model = UNetPlusPlus((None, None, 1), num_classes=3, filters=(4, 8))
    perturb_weights(model, seed=1, scale=1.0)
    segmenter = with_preprocessing(model, channels=1, input_scale=1 / 255, median_kernel=0, working_size=(24, 24))
    rng = np.random.default_rng(0)
    samples = []
    for k in range(3):
        labels = rng.integers(0, 3, (24, 24)).astype(np.uint8)
        labels[:2] = 255   # ignored
        samples.append(Sample(f"s{k}", f"s{k}", rng.integers(0, 256, (24, 24, 1)).astype(np.uint8), labels[..., None]))
    scores = _score(segmenter, samples, tmp_path, 3, (0.0, 255.0))
    truth = np.stack([s.mask[..., 0] for s in samples])
    predicted = np.stack([np.argmax(predict_augmented(segmenter, s.image[None], tta=False,
                                                      input_range=(0.0, 255.0))[0], axis=-1) for s in samples])
    counted = truth != 255
    expected = []
    for c in range(3):
        inter = np.sum((truth == c) & (predicted == c) & counted)
        union = np.sum(((truth == c) | (predicted == c)) & counted)
        expected.append(inter / union if union else None)
    assert scores["per_class_iou"] == pytest.approx(expected, abs=1e-3)
    present = [v for v in expected if v is not None]
    assert scores["mean_iou"] == pytest.approx(np.mean(present), abs=1e-3)


def test_a_run_killed_after_its_replan_resumes_with_the_replanned_epochs(tmp_path, capsys):
    """A run whose epochs each take a planned epoch's share of the budget longer than they would
    re-plans fewer epochs a third of the way in and records the new plan in ``plan.json``; killed
    (SIGKILL) right after that re-plan and started again, it follows that plan and trains exactly the
    re-planned steps, without planning again.

    The killed run plans epochs of 2 steps (not 10), so that however slow the machine, its 40 s
    hold enough epochs to reach the re-plan. The delay is the plan's share (budget / planned
    epochs), not a measured epoch, and it slows every timed epoch (all but the first, which
    compiles): a plan timed on a busy machine can overestimate its epochs, and doubling a fast
    measured epoch then still leaves them shorter than planned."""
    from keras_unetpp.training import train

    data = _films(tmp_path / "data")
    run = tmp_path / "run"
    killed_run = f"""
import os, signal, time
from keras_unetpp.training import plan, run, train
plan.MIN_EPOCH_STEPS, plan.EPOCH_END_SHARE = 2, 0.5
begin_epoch, end_epoch = run.BudgetProgress.on_epoch_begin, run.BudgetProgress.on_epoch_end
def slower_than_planned(self, epoch, logs=None):   # every timed epoch (all but the first), a planned epoch longer
    if epoch >= 1:
        time.sleep(self.budget * self.params["steps"] / self.total_steps)
    begin_epoch(self, epoch, logs)
def killed_after_replan(self, epoch, logs=None):
    end_epoch(self, epoch, logs)
    if self.replanned:   # the epoch's backup is written: killed right after its first re-plan
        os.kill(os.getpid(), signal.SIGKILL)
run.BudgetProgress.on_epoch_begin, run.BudgetProgress.on_epoch_end = slower_than_planned, killed_after_replan
train({str(data / 'images')!r}, {str(data / 'masks')!r}, {str(run)!r}, time_budget='40s', overrides={SMALL!r})
"""
    job = subprocess.run([sys.executable, "-c", killed_run], capture_output=True, timeout=300)
    stored = json.loads((run / "plan.json").read_text()) if (run / "plan.json").is_file() else {}
    assert job.returncode == -9, (f"not killed after a re-plan; planned epochs "
                                  f"{stored.get('plan', {}).get('epochs')}\n" + job.stdout.decode()[-2000:]
                                  + job.stderr.decode()[-2000:])
    replanned, planned = stored["replanned"], stored["plan"]
    seen = f"planned epochs {planned['epochs']}, re-planned {replanned}"
    # re-planned from a third of the planned epochs on (three at the least), to fewer than planned
    assert replanned["at_epoch"] >= max(3, planned["epochs"]["value"] // 3), seen
    assert replanned["at_epoch"] < replanned["epochs"] < planned["epochs"]["value"], seen
    assert replanned["planned_epochs"] == planned["epochs"]["value"], seen
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == replanned["at_epoch"]

    result = train(data / "images", data / "masks", run, time_budget="40s", overrides=SMALL)
    out = capsys.readouterr().out
    assert "resuming with the plan" in out and "re-planned after" not in out
    assert json.loads((run / "plan.json").read_text())["replanned"] == replanned
    per_epoch = planned["steps"]["value"] // planned["epochs"]["value"]
    assert result["steps"] == replanned["epochs"] * per_epoch and result["replanned"] == replanned
    assert (run / "model.keras").is_file() and not (run / "backup").exists()
