"""A screenshot of the report page from a running queuepulse, for docs/ and the README.

python -m tests.browser.report_screenshot --url http://127.0.0.1:8000 --from 2025-01-01 --to 2025-12-31
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.chromium import launch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--from", dest="first", required=True)
    parser.add_argument("--to", dest="last", required=True)
    parser.add_argument("--query", default="", help="more of the page's query string, e.g. token=...")
    parser.add_argument("--out", type=Path, default=Path("docs/reports.png"))
    parser.add_argument("--pdf", type=Path, help="also print the page to this A4 PDF")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"{args.url}/reports?from={args.first}&to={args.last}&{args.query}")
        page.wait_for_selector("body[data-state=ready]")
        page.screenshot(path=str(args.out), full_page=True)
        print(args.out)
        if args.pdf:
            page.emulate_media(media="print")
            page.pdf(path=str(args.pdf), format="A4", print_background=True)
            print(args.pdf)
        browser.close()


if __name__ == "__main__":
    main()
