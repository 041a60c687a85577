"""Fixtures shared by the test files."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch tests run on one thread: two threads on a shared 2-core machine (and beside
    pytest-xdist's second worker) run many times slower than one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright; skipped when /usr/bin/chromium is missing,
    unless PPP_REQUIRE_BROWSER is set (CI), where a missing browser fails instead."""
    if not os.environ.get("PPP_REQUIRE_BROWSER"):
        if not Path(CHROMIUM).exists():
            pytest.skip(f"{CHROMIUM} is missing (set PPP_REQUIRE_BROWSER to fail instead)")
        pytest.importorskip("playwright.sync_api")
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking"])
        try:
            yield chromium
        finally:
            chromium.close()
