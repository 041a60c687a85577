"""The labeler in real headless Chromium: edits by mouse and keys reach the JSON on disk
exactly; a second tab with stale data cannot overwrite the first one's save.

Skipped when /usr/bin/chromium is missing, unless PPP_REQUIRE_BROWSER is set (CI), where a
missing browser fails instead.
"""

import json
import math
import re
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


def open_context(browser, url):
    """A labeler page in its own browser context: another person at another computer."""
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    return context, page


def test_labelers_on_different_images_save_at_once_without_conflict(browser, tmp_path):
    """Three browser contexts: two on different images type concurrently and all their
    saves land; a third, on the first image, is refused, names the key that reloads, and
    saves again after it."""
    written = write_canonical_dataset(tmp_path / "ds")
    first, second = written["images"]["2008_000003"], written["images"]["2008_000008"]
    with running_server(tmp_path / "ds", "train", tmp_path / "server.log") as (url, _):
        (a_context, a), (b_context, b), (c_context, c) = (open_context(browser, url)
                                                          for _ in range(3))
        b.keyboard.press("PageDown")
        idle(b)
        assert [p.evaluate("() => labeler.state.data.voc_id") for p in (a, b, c)] == [
            "2008_000003", "2008_000008", "2008_000003"]
        expected = {first["annotation_ids"][0]: first["keypoints"][0].copy(),
                    second["annotation_ids"][0]: second["keypoints"][0].copy()}
        for k in range(6):  # keys pressed in turn, saves in flight in both at once
            for page, record in ((a, first), (b, second)):
                joint = expected[record["annotation_ids"][0]][k + 1]
                page.keyboard.press("Tab")
                page.keyboard.press("o" if joint[2] == 2 else "v")  # always a change
                joint[2] = 1 if joint[2] == 2 else 2
        idle(a)
        idle(b)
        assert [p.evaluate("() => labeler.state.stale") for p in (a, b)] == [False, False]
        assert a.locator("#revision").inner_text() == "image revision 6"
        assert b.locator("#revision").inner_text() == "image revision 6"

        c.keyboard.press("x")  # based on revision 0 of the first image: refused
        idle(c)
        banner = c.locator("#banner").inner_text()
        assert c.evaluate("() => labeler.state.stale") and "changed since" in banner
        key = re.search(r"press (\S+) to reload", banner).group(1)
        keys_table = {row.locator("td").nth(1).inner_text(): row.locator("kbd").all_inner_texts()
                      for row in c.locator("table.keys tr").all()}
        assert any(key in kbds and "reload" in what for what, kbds in keys_table.items())
        c.keyboard.press(key)
        idle(c)
        assert not c.evaluate("() => labeler.state.stale")
        assert not c.locator("#banner").is_visible()
        assert c.evaluate("() => labeler.state.data.persons[0].keypoints[1][2]") == \
            expected[first["annotation_ids"][0]][1, 2]
        c.keyboard.press("x")  # the forehead, now based on revision 6: saved
        expected[first["annotation_ids"][0]][0] = 0
        idle(c)
        assert c.locator("#revision").inner_text() == "image revision 7"
        for context in (a_context, b_context, c_context):
            context.close()

    doc = json.loads(written["annotation_files"]["train"].read_text())
    assert doc["revision"] == 13
    assert {im["voc_id"]: im["revision"] for im in doc["images"]} == {
        "2008_000003": 7, "2008_000008": 6}
    by_id = {a["id"]: a for a in doc["annotations"]}
    for aid, keypoints in expected.items():
        assert by_id[aid]["keypoints"] == float32_list(keypoints)


def test_a_relative_root_is_served(browser, tmp_path):
    """`ppp label serve ds` run in the folder that holds ds: the page loads its images."""
    write_canonical_dataset(tmp_path / "ds")
    with running_server("ds", "val", tmp_path / "server.log", cwd=tmp_path) as (url, _):
        page, _ = open_labeler(browser, url)
        statuses = []
        page.on("response", lambda response: statuses.append((response.url, response.status)))
        assert page.evaluate("() => labeler.state.data.voc_id") == "2010_000005"
        page.keyboard.press("PageUp")
        idle(page)
        assert page.evaluate("() => labeler.state.data.voc_id") == "2010_000001"
        assert page.evaluate("() => labeler.state.photo.naturalWidth") == 64
        assert {u.rsplit("/", 2)[-2]: s for u, s in statuses if "/api/" not in u} == {
            "image": 200, "parts": 200}
        page.close()
