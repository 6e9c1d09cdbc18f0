"""Looks at every page of the built docs site in a real browser, at a desktop and a phone width.

    mkdocs build --site-dir site && python docs/check_pages.py site [--chromium /usr/bin/chromium]

Needs Chromium (Debian: ``apt install chromium``) and ``pip install playwright`` (only its driver is
used: the browser is the system's, nothing is downloaded). For each page, at 1280 and 390 px wide, it
fails on: an image that did not load, a code block or table wider than the page or cut off without
a scroll bar of its own, a page that scrolls sideways, and a page without a heading. Prints one line per problem and exits 1
if there is any.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

WIDTHS = (1280, 390)
CHECK = """() => {
  const problems = [];
  const viewport = document.documentElement.clientWidth;
  if (!document.querySelector('article h1, article h2')) problems.push('no heading');
  if (document.documentElement.scrollWidth > viewport + 1) problems.push('the page scrolls sideways');
  for (const img of document.querySelectorAll('article img')) {
    if (!img.complete || img.naturalWidth === 0) problems.push('broken image ' + img.getAttribute('src'));
  }
  for (const el of document.querySelectorAll('article pre, article table')) {
    const name = el.tagName.toLowerCase();
    const box = (el.closest('.md-typeset__scrollwrap') || el).getBoundingClientRect();  // what is on screen
    if (box.left < -1 || box.right > viewport + 1) problems.push(name + ' wider than the page');
    const holders = [el, el.querySelector('code'), el.closest('.md-typeset__scrollwrap')].filter(Boolean);
    const scrolls = holders.some(h => ['auto', 'scroll'].includes(getComputedStyle(h).overflowX));
    if (!scrolls && el.scrollWidth > el.clientWidth + 1) problems.push(name + ' content cut off (no scroll bar)');
  }
  return problems;
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", type=Path, help="the folder mkdocs built")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    pages = sorted(p for p in args.site.rglob("*.html") if "assets" not in p.parts and p.name != "404.html")
    failures = 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        for width in WIDTHS:
            page = browser.new_page(viewport={"width": width, "height": 900})
            for path in pages:
                page.goto(path.resolve().as_uri(), wait_until="load")
                for problem in page.evaluate(CHECK):
                    print(f"{path.relative_to(args.site)} at {width} px: {problem}")
                    failures += 1
            page.close()
        browser.close()
    print(f"{len(pages)} pages at {', '.join(map(str, WIDTHS))} px: {failures} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
