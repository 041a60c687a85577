"""The leaderboard page in real headless Chromium (the ``browser`` fixture of conftest):
tables scroll inside their box at 420 px while the page does not, plots load, and sorting
starts where a reader expects."""

import shutil
from pathlib import Path

import pytest

from pascal_person_pose.leaderboard import write_leaderboard
from pascal_person_pose.results import add_result, result_from_score

RESULTS = Path(__file__).resolve().parents[1] / "benchmark" / "results"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page_url(tmp_path_factory) -> str:
    """The published rows plus a scored row with intervals (the widest cells)."""
    results = tmp_path_factory.mktemp("board") / "results"
    shutil.copytree(RESULTS, results)
    table = {c: 41.25 for c in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle",
                                "U-Body", "Total")}
    scores = {"pose_ap": {"table": table},
              "intervals": {"pose_ap": {"table": {c: [39.5, 43.0] for c in table}}},
              "bootstrap": {"resamples": 1000, "seed": 0, "level": 0.95, "method": "percentile"},
              "params": {"split": "val", "ground_truth": "sha256:" + "c" * 64, "images": 20}}
    add_result(results, result_from_score(scores, "A scored net with a rather long name"))
    out = results.parent / "out"
    write_leaderboard(results, out)
    return (out / "leaderboard.html").as_uri()


def _open(browser, url: str, width: int):
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.goto(url)
    page.wait_for_load_state("load")
    return page


@pytest.mark.parametrize("width", [420, 1280])
def test_tables_scroll_in_their_box_and_plots_load(browser, page_url, width):
    page = _open(browser, page_url, width)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        boxes = page.evaluate("""Array.from(document.querySelectorAll('.scroll')).map(b =>
            [getComputedStyle(b).overflowX, b.scrollWidth > b.clientWidth,
             b.getBoundingClientRect().right])""")
        assert len(boxes) == 5  # four published tables, one scored
        assert all(style == "auto" and right <= width for style, _, right in boxes)
        if width == 420:  # the wide tables scroll sideways inside their box
            assert sum(overflows for _, overflows, _ in boxes) >= 4
        images = page.locator("figure img")
        assert images.count() == 5
        for k in range(images.count()):
            images.nth(k).scroll_into_view_if_needed()
            images.nth(k).evaluate("img => img.decode()")
            width_px = images.nth(k).evaluate("img => img.naturalWidth")
            assert width_px > 300 and images.nth(k).bounding_box()["width"] <= width
    finally:
        page.close()


def _column(table, name: str) -> list[str]:
    return table.evaluate("""(t, name) => {
        const col = Array.from(t.tHead.rows[0].cells).findIndex(c => c.dataset.column === name);
        return Array.from(t.tBodies[0].rows).map(r => r.cells[col].dataset.v);
    }""", name)


def _click(table, name: str) -> str:
    header = table.locator(f'thead th[data-column="{name}"]')
    header.locator("button").click()
    return header.get_attribute("aria-sort")


def test_sorting_starts_ascending_for_text_and_best_first_for_numbers(browser, page_url):
    """What was seen: the first click on "Method" sorted Z-A."""
    page = _open(browser, page_url, 1280)
    try:
        pose, adk = page.locator("table.board").nth(0), page.locator("table.board").nth(1)
        assert _click(pose, "Method") == "ascending"
        methods = _column(pose, "Method")
        assert methods == sorted(methods, key=str.lower) and methods[0].startswith("AOG-Seg")
        assert _click(pose, "Method") == "descending"
        assert _column(pose, "Method") == methods[::-1]

        assert _click(pose, "Total") == "descending"
        totals = [float(v) for v in _column(pose, "Total")]
        assert totals == sorted(totals, reverse=True)
        assert _click(pose, "Total") == "ascending"
        assert [float(v) for v in _column(pose, "Total")] == sorted(totals)

        assert _click(adk, "Ave.") == "ascending"  # ADK: lower is better, best first
        averages = [float(v) for v in _column(adk, "Ave.")]
        assert averages == sorted(averages) and averages[0] == 40.7
        assert _click(adk, "#") == "ascending"  # back to the ranking
        assert _column(adk, "#") == ["1", "2", "3", "4", "5", "6"]
        assert _click(adk, "#") == "descending"
        assert _column(adk, "#") == ["6", "5", "4", "3", "2", "1"]
    finally:
        page.close()
