"""Results quoted on several pages come from docs/results.json (docs/quoted_results.py)."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("quoted_results", ROOT / "docs" / "quoted_results.py")
quoted_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(quoted_results)


def test_every_quote_in_the_readme_and_docs_matches_the_results_file():
    assert quoted_results.check() == []


def test_a_stale_quote_an_unknown_key_and_an_unused_entry_are_reported_and_filled(tmp_path):
    (tmp_path / "docs").mkdir()
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"iou": {"value": "0.61", "from": "a run"},
                                   "unused": {"value": "1", "from": "another run"}}))
    page = tmp_path / "README.md"
    page.write_text("IoU <!--result:iou-->0.59<!--/result--> and <!--result:typo-->x<!--/result-->\n")
    (tmp_path / "docs" / "a.md").write_text("again <!--result:iou-->0.61<!--/result-->\n")
    problems = quoted_results.check(tmp_path, results)
    assert problems == ["README.md: iou quoted as '0.59', results.json says '0.61'",
                        "README.md: unknown result key 'typo'",
                        "results.json: 'unused' is quoted on no page"]
    filled, unknown = quoted_results.fill(page.read_text(), quoted_results.load_results(results))
    assert filled == "IoU <!--result:iou-->0.61<!--/result--> and <!--result:typo-->x<!--/result-->\n"
    assert unknown == ["unknown result key 'typo'"]
