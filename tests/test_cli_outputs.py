"""No option of any command replaces an input file or an earlier output without --overwrite,
and every option is checked before any work (the model is not even loaded)."""

import os
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from keras_unetpp.cli import main


def _model(path: Path) -> Path:
    inputs = keras.Input((None, None, 3))
    keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)).save(path)
    return path


def _inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    (tmp_path / "in").mkdir()
    (tmp_path / "masks").mkdir()
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "in" / "scene.png"), image)
    cv2.imwrite(str(tmp_path / "masks" / "scene.png"), (image[..., 0] > 128).astype(np.uint8) * 255)
    return _model(tmp_path / "m.keras"), tmp_path / "in" / "scene.png", tmp_path / "masks"


def _snapshot(*paths: Path) -> dict:
    return {p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in paths}


def test_polygons_path_naming_an_input_is_refused_even_with_overwrite(tmp_path, capsys):
    model, image, _ = _inputs(tmp_path)
    before = _snapshot(image, model)
    for target in (image, model):
        assert main(["predict", str(model), str(image), "--out", str(tmp_path / "o"), "--polygons", str(target),
                     "--overwrite"]) == 2
        assert "would replace an input" in capsys.readouterr().err
    assert _snapshot(image, model) == before
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_polygons_path_that_is_a_folder_is_named(tmp_path, capsys):
    model, image, _ = _inputs(tmp_path)
    assert main(["predict", str(model), str(image), "--out", str(tmp_path / "o"), "--polygons",
                 str(tmp_path / "in")]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_evaluate_refuses_to_replace_its_earlier_outputs_without_overwrite(tmp_path, capsys):
    model, image, masks = _inputs(tmp_path)
    out = tmp_path / "scores"
    argv = ["evaluate", str(model), "--images", str(image.parent), "--masks", str(masks), "--out", str(out)]
    assert main(argv) == 0
    before = _snapshot(out / "metrics.json", out / "scene_error_map.png")
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "exists" in error and "--overwrite" in error
    assert _snapshot(out / "metrics.json", out / "scene_error_map.png") == before
    assert main(argv + ["--overwrite"]) == 0


def test_evaluate_out_that_is_a_file_or_holds_the_masks_is_refused(tmp_path, capsys):
    model, image, masks = _inputs(tmp_path)
    (tmp_path / "file").write_text("x")
    assert main(["evaluate", str(model), "--images", str(image.parent), "--masks", str(masks), "--out",
                 str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    cv2.imwrite(str(masks / "scene_error_map.png"), np.zeros((24, 32), np.uint8))  # a mask file named like an output
    (tmp_path / "in" / "scene_error_map.png").write_bytes((masks / "scene_error_map.png").read_bytes())
    before = _snapshot(masks / "scene_error_map.png")
    assert main(["evaluate", str(model), "--images", str(image.parent), "--masks", str(masks), "--out", str(masks),
                 "--overwrite"]) == 2
    assert "would replace an input" in capsys.readouterr().err
    assert _snapshot(masks / "scene_error_map.png") == before


@pytest.mark.parametrize("target", ["file", "folder", "model"])
def test_export_refuses_existing_outputs_before_loading_the_model(tmp_path, capsys, target):
    model, _, _ = _inputs(tmp_path)
    if target == "file":
        out, fmt = tmp_path / "old.onnx", "onnx"
        out.write_bytes(b"an earlier export")
    elif target == "folder":
        out, fmt = tmp_path / "dirA", "tf_saved_model"
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    else:
        out, fmt = model.with_suffix(".onnx"), "onnx"  # --out m.keras becomes m.onnx, which exists
        out.write_bytes(b"x")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(["export", str(model), "--format", fmt, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "exists" in error or "not empty" in error
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_export_to_a_file_where_a_folder_goes_is_named(tmp_path, capsys):
    model, _, _ = _inputs(tmp_path)
    (tmp_path / "a_file").write_text("x")
    assert main(["export", str(model), "--format", "tf_saved_model", "--out", str(tmp_path / "a_file")]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--keep-largest", "-1"], ["--min-area", "-3"], ["--tile", "0"],
                                    ["--overlap", "1.0"], ["--batch-size", "0"], ["--simplify", "-1"]])
def test_bad_options_are_refused_before_any_work(tmp_path, capsys, option):
    model, image, _ = _inputs(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["predict", str(model), str(image), "--out", str(tmp_path / "o"), *option])
    assert stop.value.code == 2 and option[0] in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
