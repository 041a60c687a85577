"""The labeler in real headless Chromium: edits by mouse and keys reach the JSON on disk
exactly; a second tab with stale data cannot overwrite the first one's save.

Skipped when /usr/bin/chromium is missing, unless PPP_REQUIRE_BROWSER is set (CI), where a
missing browser fails instead.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.label.store import float32_list
from test_label_server import running_server

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser
if not Path(CHROMIUM).exists() and not os.environ.get("PPP_REQUIRE_BROWSER"):
    pytest.skip(f"{CHROMIUM} is missing (set PPP_REQUIRE_BROWSER to fail instead)",
                allow_module_level=True)
if os.environ.get("PPP_REQUIRE_BROWSER"):
    from playwright import sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api")

J = {name: k for k, name in enumerate(schema.JOINT_NAMES)}


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking"])
        try:
            yield browser
        finally:
            browser.close()


def open_labeler(browser, url):
    page = browser.new_page(viewport={"width": 1200, "height": 760})
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    return page, requests


def idle(page):
    page.evaluate("() => labeler.idle()")


def js_round1(value):
    """The page's rounding of dragged coordinates: Math.round(v * 10) / 10."""
    return math.floor(value * 10 + 0.5) / 10


def test_drag_keys_undo_mirror_and_next_person_reach_the_file(browser, tmp_path):
    written = write_canonical_dataset(tmp_path / "ds")
    record = written["images"]["2008_000003"]
    first, second = record["keypoints"][0].copy(), record["keypoints"][1].copy()
    with running_server(tmp_path / "ds", "train", tmp_path / "server.log") as (url, _):
        page, requests = open_labeler(browser, url)
        assert page.evaluate("() => labeler.state.data.voc_id") == "2008_000003"
        assert page.evaluate("() => labeler.state.person") == 0

        # drag the right elbow by (+12, +8) screen pixels
        elbow = J["r_elbow"]
        sx, sy = page.evaluate(f"() => labeler.toScreen(...labeler.state.data.persons[0]"
                               f".keypoints[{elbow}].slice(0, 2))")
        box = page.locator("canvas").bounding_box()
        start = (round(box["x"] + sx), round(box["y"] + sy))
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(start[0] + 6, start[1] + 4)
        page.mouse.move(start[0] + 12, start[1] + 8)
        page.mouse.up()
        scale = page.evaluate("() => labeler.state.view.scale")
        first[elbow, 0] = js_round1(first[elbow, 0] + 12 / scale)
        first[elbow, 1] = js_round1(first[elbow, 1] + 8 / scale)
        assert page.evaluate("() => labeler.state.joint") == elbow

        page.keyboard.press("o")  # the dragged elbow becomes occluded
        first[elbow, 2] = 1
        page.keyboard.press("Tab")  # next joint: the right wrist
        page.keyboard.press("x")  # not labelled ...
        page.keyboard.press("Control+z")  # ... undone
        page.keyboard.press("m")  # mirror: left and right swapped
        first = first[schema.FLIP_INDEX]
        page.keyboard.press("n")  # next person
        idle(page)
        assert page.evaluate("() => labeler.state.person") == 1
        page.keyboard.press("o")  # its forehead occluded
        second[J["forehead"], 2] = 1
        idle(page)
        assert page.evaluate("() => labeler.state.stale") is False
        page.close()

    doc = json.loads(written["annotation_files"]["train"].read_text())
    assert doc["revision"] == 6  # drag, o, x, undo, mirror, o: each saved at once
    by_id = {a["id"]: a for a in doc["annotations"]}
    for aid, expected in zip(record["annotation_ids"], (first, second)):
        assert by_id[aid]["keypoints"] == float32_list(expected)
        assert by_id[aid]["num_keypoints"] == int((expected[:, 2] > 0).sum())
        assert "proposed_keypoints" not in by_id[aid]
    # untouched persons stay as they were
    other = written["images"]["2008_000008"]
    assert by_id[other["annotation_ids"][0]]["keypoints"] == float32_list(other["keypoints"][0])
    # one self-contained page: nothing was fetched from anywhere but the labeler
    assert requests and all(r.startswith(url) or r.startswith("data:") for r in requests)


def test_a_stale_tab_is_refused_and_told_to_reload(browser, tmp_path):
    written = write_canonical_dataset(tmp_path / "ds")
    record = written["images"]["2008_000003"]
    with running_server(tmp_path / "ds", "train", tmp_path / "server.log") as (url, _):
        first, _ = open_labeler(browser, url)
        second, _ = open_labeler(browser, url)
        first.keyboard.press("o")  # forehead occluded, saved as revision 1
        idle(first)
        second.keyboard.press("x")  # based on revision 0: refused
        idle(second)
        assert second.evaluate("() => labeler.state.stale") is True
        banner = second.locator("#banner")
        assert banner.is_visible() and "reload" in banner.inner_text()
        second.keyboard.press("v")  # no further saves from the stale tab
        idle(second)
        for page in (first, second):
            page.close()
    doc = json.loads(written["annotation_files"]["train"].read_text())
    assert doc["revision"] == 1
    ann = next(a for a in doc["annotations"] if a["id"] == record["annotation_ids"][0])
    expected = record["keypoints"][0].copy()
    expected[J["forehead"], 2] = 1
    assert ann["keypoints"] == float32_list(expected)


def test_proposals_are_shown_and_confirmed(browser, tmp_path):
    from pascal_person_pose.label.proposals import propose_split

    written = write_canonical_dataset(tmp_path / "ds")
    propose_split(tmp_path / "ds", "val")  # the person with an unlabelled l_ankle
    record = written["images"]["2009_000012"]
    with running_server(tmp_path / "ds", "val", tmp_path / "server.log") as (url, _):
        page, _ = open_labeler(browser, url)
        assert page.evaluate("() => labeler.state.data.voc_id") == "2009_000012"
        page.keyboard.press("n")
        idle(page)
        state = page.locator(".joint[data-joint=l_ankle] .state")
        assert state.inner_text() == "proposed"
        assert "proposed joints to confirm" in page.locator("#flags").inner_text()
        proposal = page.evaluate("() => labeler.state.data.persons[1].proposed[13]")
        page.keyboard.press("Shift+C")  # confirm all proposals of the person
        idle(page)
        assert state.inner_text() == "visible"
        assert "persons done" in page.locator("#progress").inner_text()
        page.close()
    doc = json.loads(written["annotation_files"]["val"].read_text())
    ann = next(a for a in doc["annotations"] if a["id"] == record["annotation_ids"][1])
    assert ann["keypoints"][39:42] == float32_list(np.array(proposal))
    assert "proposed_keypoints" not in ann and ann["num_keypoints"] == 14
