"""Every ```python block of README.md and docs/*.md runs, so the docs cannot drift
from the code. Blocks run in order, each page in a fresh namespace."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains, runs subprocesses or exports: the full lane only

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_blocks_run(page, tmp_path, monkeypatch):
    blocks = BLOCK.findall(page.read_text())
    if not blocks:
        pytest.skip(f"{page.name} has no python blocks")
    monkeypatch.chdir(tmp_path)  # blocks that save files write here
    namespace = {"__name__": "__docs__"}
    for code in blocks:
        exec(compile(code, f"{page.name}", "exec"), namespace)


def test_no_placeholders_left():
    for page in PAGES:
        text = page.read_text()
        assert not re.search(r"\b(BENCH_[A-Z]+|PRUNING_TABLE|EXAMPLE_[A-Z]+|AERIAL_LINE)\b", text), page.name
