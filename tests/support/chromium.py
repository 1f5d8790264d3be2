"""Debian's Chromium as every browser test launches it: headless, quiet,
and never a downloaded browser."""

from __future__ import annotations

from typing import Final

from playwright.async_api import Browser, Playwright

CHROMIUM: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


async def launch(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS
    )
