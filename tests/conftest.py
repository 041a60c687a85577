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


@pytest.fixture(scope="session")
def canonical(tmp_path_factory) -> dict:
    """The hand-made canonical dataset (``canonical_fixture``), written once per session.

    Read-only: a test that changes files writes its own copy with
    ``write_canonical_dataset``. Returns what the writer returns, plus ``"root"``.
    """
    from canonical_fixture import write_canonical_dataset

    root = tmp_path_factory.mktemp("canonical")
    return {**write_canonical_dataset(root), "root": root}


@pytest.fixture(scope="session")
def oracle(canonical, tmp_path_factory) -> dict:
    """The val split's ground truth as a perfect submission (read-only).

    ``poses`` and ``parts`` as ``oracle_submission`` returns them, ``dataset`` the val
    split, and the written submission as a directory (``perfect_dir``) and a zip
    (``perfect_zip``), both with meta ``{"method": "Oracle", "authors": ["A", "B"]}``.
    """
    from pascal_person_pose.dataset import Dataset
    from pascal_person_pose.submission import oracle_submission, write_submission

    dataset = Dataset(canonical["root"], "val")
    poses, parts = oracle_submission(dataset)
    out = tmp_path_factory.mktemp("oracle")
    meta = {"method": "Oracle", "authors": ["A", "B"]}
    return {"dataset": dataset, "poses": poses, "parts": parts,
            "perfect_dir": write_submission(out / "perfect", poses, parts, meta),
            "perfect_zip": write_submission(out / "perfect.zip", poses, parts, meta)}
