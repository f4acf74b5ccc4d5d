"""Screenshots of both wall screens from a running queuepulse, for docs/ and the README.

python -m tests.browser.screenshots --url http://127.0.0.1:8000 [--size 1920x1080] [--out docs]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.chromium import launch

# Long enough for a few polls and for the lobby's highlight of an old call to have ended.
SETTLE_MS = 2500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--suffix", default="", help="appended to the file names, e.g. -4k")
    parser.add_argument("--query", default="", help="extra query string for both pages, e.g. token=...")
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": width, "height": height})
        for screen in ("wallboard", "lobby"):
            page.goto(f"{args.url}/screens/{screen}?{args.query}")
            page.wait_for_selector("body[data-connection=live]")
            page.wait_for_timeout(SETTLE_MS)
            path = args.out / f"{screen}{args.suffix}.png"
            page.screenshot(path=str(path))
            print(path)
        browser.close()


if __name__ == "__main__":
    main()
