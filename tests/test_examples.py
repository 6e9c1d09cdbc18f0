"""The examples run end to end in their --quick mode and write what they promise."""

import json
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, *args):
    argv = sys.argv
    sys.argv = [name, *args]
    try:
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    finally:
        sys.argv = argv


def test_quickstart_quick(tmp_path):
    run_example("quickstart.py", "--quick", "--out", str(tmp_path))
    for name in ("predictions.png", "curves.png", "model.keras", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.0 <= metrics["val_iou"] <= 1.0
