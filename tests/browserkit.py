"""Headless Chromium for the report and dashboard tests: Debian's `chromium` package driven by
Playwright (never `playwright install`). Tests skip, saying why, only where that binary is missing;
CI installs it (.ci/run)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason=f"no {CHROMIUM}: apt-get install -y chromium (CI installs it)")


@dataclass
class Watched:
    """A page with everything it logged, requested and tried to pop up."""

    page: Any
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"] + self.errors


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield instance
        finally:
            instance.close()


def open_page(instance: Any, url: str, *, width: int = 1400, height: int = 900) -> Watched:
    context = instance.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    page = context.new_page()
    watched = Watched(page)
    page.on("console", lambda m: watched.console.append((m.type, m.text)))
    page.on("pageerror", lambda e: watched.errors.append(str(e)))
    page.on("request", lambda r: watched.requests.append(r.url))

    def dialog(d: Any) -> None:
        watched.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    page.goto(url, wait_until="load")
    page.wait_for_function("window.linkjuice !== undefined")
    return watched


def pixel_spread(png: bytes) -> tuple[float, float]:
    """Standard deviation of the grey levels of a screenshot, and the share of pixels that are not
    background white: both are ~0 for a blank canvas."""
    from PIL import Image, ImageStat

    image = Image.open(io.BytesIO(png)).convert("L")
    stddev = ImageStat.Stat(image).stddev[0]
    histogram = image.histogram()
    drawn = 1 - sum(histogram[250:]) / (image.width * image.height)
    return stddev, drawn
