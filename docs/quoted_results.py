"""One source for the results that the README and several docs pages quote.

Every number that appears on more than one page is written once, in
``docs/results.json`` (its value as printed, and where it comes from: the
command, the run's ``metrics.json`` field, the machine). Pages mark each quote::

    Tile 7 IoU <!--result:aerial_iou-->0.597<!--/result-->

(the comments are invisible on GitHub and on the site). This script fills the
marked spans from the JSON, or with ``--check`` lists every span that differs,
every key a page uses that the JSON lacks, and every JSON key no page uses.

    python docs/quoted_results.py           # rewrite the spans from docs/results.json
    python docs/quoted_results.py --check   # exit 1 on any difference (tests/test_docs.py runs it)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.json"
SPAN = re.compile(r"<!--result:([a-z0-9_]+)-->(.*?)<!--/result-->", re.S)


def pages(root: Path = ROOT) -> list[Path]:
    """The Markdown files that may quote results: the README and every docs page."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def load_results(path: Path = RESULTS) -> dict[str, str]:
    """``{key: value as printed}`` from the results file (each entry ``{"value": ..., "from": ...}``)."""
    entries = json.loads(path.read_text())
    missing = [key for key, entry in entries.items() if not entry.get("from")]
    if missing:
        raise ValueError(f"{path.name}: entries without a 'from' (where the number comes from): {missing}")
    return {key: str(entry["value"]) for key, entry in entries.items()}


def fill(text: str, results: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with every marked span set from ``results``, and the problems found (unknown keys)."""
    problems = []

    def replace(match):
        key = match.group(1)
        if key not in results:
            problems.append(f"unknown result key {key!r}")
            return match.group(0)
        return f"<!--result:{key}-->{results[key]}<!--/result-->"

    return SPAN.sub(replace, text), problems


def check(root: Path = ROOT, results_path: Path = RESULTS) -> list[str]:
    """Every difference between the pages' quotes and the results file, as readable lines."""
    results = load_results(results_path)
    problems, used = [], set()
    for page in pages(root):
        text = page.read_text()
        for match in SPAN.finditer(text):
            key, quoted = match.group(1), match.group(2)
            used.add(key)
            if key not in results:
                problems.append(f"{page.name}: unknown result key {key!r}")
            elif quoted != results[key]:
                problems.append(f"{page.name}: {key} quoted as {quoted!r}, results.json says {results[key]!r}")
    problems += [f"results.json: {key!r} is quoted on no page" for key in sorted(set(results) - used)]
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report differences, change nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        print("\n".join(problems) or "every quoted result matches docs/results.json")
        return 1 if problems else 0
    results = load_results()
    for page in pages():
        text = page.read_text()
        new, problems = fill(text, results)
        for problem in problems:
            print(f"{page.name}: {problem}")
        if new != text:
            page.write_text(new)
            print(f"updated {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
