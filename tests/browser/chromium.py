"""Debian's Chromium driven by Playwright: never a downloaded browser (scripts/ensure-apt.sh installs it)."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Browser, Playwright

CHROMIUM_PATH = Path(os.environ.get("QUEUEPULSE_CHROMIUM", "/usr/bin/chromium"))
# Headless and quiet: no sandbox (we run as root in CI), no GPU, and no calls home to Google.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright: Playwright) -> Browser:
    if not CHROMIUM_PATH.exists():
        raise FileNotFoundError(
            f"{CHROMIUM_PATH} is missing: `make test` installs it with scripts/ensure-apt.sh"
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM_PATH), args=LAUNCH_ARGS, headless=True)
