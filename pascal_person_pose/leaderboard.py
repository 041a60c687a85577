"""Leaderboards: result records (:mod:`.results`) -> Markdown, HTML, CSV tables and plots.

Rows are grouped by the ground truth they were scored on, and each group ("board") gets
its own Tables 1-4 and plots: a score on 20 synthetic images never ranks among the papers'
numbers on the real val split. Published boards come first, then scored ones by label.

Within a board, rows are ranked best first by each table's main column (Total, Ave., Ave.,
and the mean of the four sizes; ADK is a distance, lower is better), ties by method name,
so the output depends only on the input: the same results give byte-identical files (plots
included: Agg rendering, no timestamps or software tags in the PNG metadata). Tables show
one decimal, except Table 3, which the paper prints with two; a row that carries
confidence intervals shows them beside each number, "45.3 [44.1, 46.5]", and as error bars.
"""

from __future__ import annotations

import csv
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path

from pascal_person_pose import atomic
from pascal_person_pose import progress as progress_bar
from pascal_person_pose.results import (TABLE_BY_KEY, TABLES, TableSpec, ground_truth_key,
                                        ground_truth_label, ground_truth_slug, load_results,
                                        method_colour, tables_from_score)
from pascal_person_pose.schema import SIZE_BUCKETS

TITLE = "PASCAL-Person-Part with 14 joints: leaderboard"
PLOT_STEMS = {"pose_ap": "pose_ap", "adk": "adk", "parts": "parts_iou",
              "parts_by_size": "parts_by_size"}
LEGEND_POINTS = 10  # legend text size in the plots (readable when the page scales them)


@dataclass(frozen=True)
class Board:
    """The rows scored on one ground truth, ranked per table."""

    label: str
    slug: str
    results: tuple[dict, ...]
    ranked: dict  # table key -> the rows that have that table, best first

    def plot_file(self, spec: TableSpec) -> str:
        return f"{PLOT_STEMS[spec.key]}-{self.slug}.png"

    @property
    def has_intervals(self) -> bool:
        return any("intervals" in r for r in self.results)


def boards(results: list[dict]) -> list[Board]:
    """One board per ground truth: published ones first, then by label."""
    groups: dict[tuple, list[dict]] = {}
    for doc in results:
        groups.setdefault(ground_truth_key(doc), []).append(doc)
    out = []
    for docs in groups.values():
        docs.sort(key=lambda r: r["method"])
        ranked = {}
        for spec in TABLES:
            rows = [r for r in docs if spec.key in r["tables"]]
            rows.sort(key=lambda r: (spec.rank_key(r["tables"][spec.key]), r["method"]))
            if rows:
                ranked[spec.key] = rows
        out.append(Board(ground_truth_label(docs[0]), ground_truth_slug(docs[0]), tuple(docs),
                         ranked))
    out.sort(key=lambda b: (b.results[0]["ground_truth"]["fingerprint"] is not None, b.label))
    return out


# --------------------------------------------------------------------------------- cells


def _cell(value, decimals: int) -> str:
    return "" if value is None or value != value else f"{value:.{decimals}f}"


def _interval(doc: dict, spec: TableSpec, column: str) -> list | None:
    return doc.get("intervals", {}).get(spec.key, {}).get(column)


def _interval_text(pair, decimals: int) -> str:
    return "" if pair is None else f"[{pair[0]:.{decimals}f}, {pair[1]:.{decimals}f}]"


def _text_cell(doc: dict, spec: TableSpec, column: str) -> str:
    """A number as the tables print it, its interval after it when the row has one."""
    value = _cell(doc["tables"][spec.key][column], spec.decimals)
    pair = _interval(doc, spec, column)
    return f"{value} {_interval_text(pair, spec.decimals)}" if value and pair else value


def _bootstrap_note(doc: dict) -> str:
    """What a row's intervals are, from its ``bootstrap`` record."""
    boot = doc.get("bootstrap") or {}
    level = boot.get("level")
    parts = [f"{level:.0%} confidence intervals" if isinstance(level, (int, float))
             else "confidence intervals"]
    details = [f"{boot['method']}"] if "method" in boot else []
    details += [f"{boot['resamples']} resamples"] if "resamples" in boot else []
    details += [f"seed {boot['seed']}"] if "seed" in boot else []
    if details:
        parts.append(f"bootstrap over images ({', '.join(details)})")
    return ", ".join(parts)


def _references(results: list[dict]) -> list[tuple[int, dict]]:
    return list(enumerate(sorted(results, key=lambda r: r["method"]), 1))


# ------------------------------------------------------------------------------ Markdown


def render_markdown(results: list[dict], boards_: list[Board]) -> str:
    numbers = {r["method"]: n for n, r in _references(results)}
    lines = [f"# {TITLE}", "",
             "Rows are ranked only against rows scored on the same ground truth: each ground "
             "truth has its own tables. Rows marked *published* are numbers as printed in the "
             "cited papers; rows marked **scored** were computed by `ppp score` with this "
             "toolkit on the ground truth whose fingerprint the heading names. Ranked best "
             "first." + (" Brackets hold a row's confidence interval [low, high]."
                         if any(b.has_intervals for b in boards_) else ""), ""]
    if len(boards_) > 1:
        lines += [f"- [{_md(b.label)}](#{_anchor(b)})" for b in boards_] + [""]
    for board in boards_:
        lines += [f'<a id="{_anchor(board)}"></a>', "", f"## {_md(board.label)}", ""]
        for spec in TABLES:
            rows = board.ranked.get(spec.key)
            if not rows:
                continue
            lines += [f"### {spec.title}", "",
                      "| # | Method | Source | " + " | ".join(spec.columns) + " |",
                      "|---:|---|---|" + "---:|" * len(spec.columns)]
            for rank, doc in enumerate(rows, 1):
                mark = "*published*" if doc["source"] == "published" else "**scored**"
                cells = " | ".join(_text_cell(doc, spec, c) for c in spec.columns)
                lines.append(f"| {rank} | {_md(doc['method'])} [{numbers[doc['method']]}] | "
                             f"{mark} | {cells} |")
            lines += ["", f"![Plot of {spec.title}, {_md(board.label)}]"
                          f"({board.plot_file(spec)})", ""]
    lines += ["## References", ""]
    for n, doc in _references(results):
        citation = doc["citation"] or "unpublished"
        extra = f" (intervals: {_bootstrap_note(doc)})" if "intervals" in doc else ""
        lines.append(f"{n}. {_md(doc['method'])}: {_md(citation)}{_md(extra)}")
    return "\n".join(lines) + "\n"


def _anchor(board: Board) -> str:
    return f"gt-{board.slug}"


def _md(text: str) -> str:
    for c in "\\`*_[]<>|#":
        text = text.replace(c, "\\" + c)
    return text


# ---------------------------------------------------------------------------------- HTML

# Sorting: a column's first click sorts text A-Z and numbers best first (descending, or
# ascending for ADK, where lower is better); a second click reverses. Empty cells stay last.
_SORT_SCRIPT = """
document.querySelectorAll("table.board").forEach(function (table) {
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  heads.forEach(function (th, col) {
    th.querySelector("button").addEventListener("click", function () {
      var current = th.getAttribute("aria-sort");
      var dir = current === "ascending" ? "descending"
              : current === "descending" ? "ascending" : th.dataset.first;
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir);
      var numeric = th.dataset.type === "number", sign = dir === "ascending" ? 1 : -1;
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return sign * c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; line-height: 1.4; }
.scroll { overflow-x: auto; max-width: 100%; margin-bottom: 1em; }
table.board { border-collapse: collapse; white-space: nowrap; }
th, td { padding: 0.3em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f3f3f3; }
th button { font: inherit; font-weight: bold; background: none; border: 0; padding: 0;
            cursor: pointer; color: inherit; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
td.text, th.text { text-align: left; }
td.method, th.method { position: sticky; left: 0; background: #fff; }
th.method { background: #f3f3f3; }
tr.scored td { background: #fff7e0; }
.ci { color: #666; font-size: 0.85em; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em;
          border: 1px solid #0004; vertical-align: -0.05em; }
.badge { font-size: 0.8em; padding: 0.1em 0.4em; border-radius: 0.3em; }
.badge.published { background: #e4ecf7; } .badge.scored { background: #f5c542; }
figure { margin: 0 0 2em 0; } figure img { width: 100%; max-width: 900px; height: auto; }
@media (max-width: 600px) {
  body { margin: 0.6em; } h1 { font-size: 1.4em; }
  td.method { white-space: normal; min-width: 7em; max-width: 10em; }
  th, td { padding: 0.3em 0.4em; }
}
"""


def render_html(results: list[dict], boards_: list[Board]) -> str:
    """A page with inline style and sorting script; the plots beside it as PNG files."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{e(TITLE)}</title>", f"<style>{_STYLE}</style>", "</head><body>",
             f"<h1>{e(TITLE)}</h1>",
             "<p>Rows are ranked only against rows scored on the same ground truth: each "
             "ground truth has its own tables. Rows marked "
             '<span class="badge published">published</span> are numbers as printed in the '
             'cited papers; rows marked <span class="badge scored">scored</span> were '
             "computed by <code>ppp score</code> on the ground truth whose fingerprint the "
             "heading names. Click a column title to sort."
             + (" Brackets hold a row's confidence interval [low, high]."
                if any(b.has_intervals for b in boards_) else "") + "</p>"]
    if len(boards_) > 1:
        parts.append("<ul>" + "".join(f'<li><a href="#{_anchor(b)}">{e(b.label)}</a></li>'
                                      for b in boards_) + "</ul>")
    for board in boards_:
        parts.append(f'<section id="{_anchor(board)}"><h2>{e(board.label)}</h2>')
        for spec in TABLES:
            rows = board.ranked.get(spec.key)
            if rows:
                parts += _html_table(spec, rows, board)
        parts.append("</section>")
    parts.append("<h2>References</h2><ol>")
    for _, doc in _references(results):
        extra = f" (intervals: {e(_bootstrap_note(doc))})" if "intervals" in doc else ""
        parts.append(f"<li><b>{e(doc['method'])}</b>: "
                     f"{e(doc['citation'] or 'unpublished')}{extra}</li>")
    parts += ["</ol>", f"<script>{_SORT_SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def _html_table(spec: TableSpec, rows: list[dict], board: Board) -> list[str]:
    e = html.escape
    best = "descending" if spec.higher_is_better else "ascending"

    def head(title: str, first: str, kind: str, css: str = "") -> str:
        sort = ' aria-sort="ascending"' if title == "#" else ""
        return (f'<th{css} data-column="{e(title)}" data-first="{first}" data-type="{kind}"'
                f'{sort}>'
                f'<button type="button">{e(title)}</button></th>')

    heads = (head("#", "ascending", "number") +
             head("Method", "ascending", "text", ' class="text method"') +
             head("Source", "ascending", "text", ' class="text"') +
             "".join(head(c, best, "number") for c in spec.columns))
    out = [f"<h3>{e(spec.title)}</h3>", '<div class="scroll"><table class="board">',
           f"<thead><tr>{heads}</tr></thead><tbody>"]
    for rank, doc in enumerate(rows, 1):
        cells = []
        for column in spec.columns:
            value = doc["tables"][spec.key][column]
            text = _cell(value, spec.decimals)
            pair = _interval(doc, spec, column)
            if text and pair:
                text += f' <span class="ci">{_interval_text(pair, spec.decimals)}</span>'
            cells.append(f'<td data-v="{"" if value is None else repr(float(value))}">'
                         f"{text}</td>")
        source = doc["source"]
        out.append(f'<tr class="{source}"><td data-v="{rank}">{rank}</td>'
                   f'<td class="text method" data-v="{e(doc["method"])}" '
                   f'title="{e(doc["citation"])}"><span class="swatch" style="background:'
                   f'{method_colour(doc)}"></span>{e(doc["method"])}</td>'
                   f'<td class="text" data-v="{source}"><span class="badge {source}">'
                   f"{source}</span></td>{''.join(cells)}</tr>")
    plot = e(board.plot_file(spec))
    out += ["</tbody></table></div>",
            f'<figure><a href="{plot}"><img src="{plot}" alt="Bar plot of {e(spec.title)}, '
            f'{e(board.label)}" loading="lazy"></a></figure>']
    return out


# ----------------------------------------------------------------------------------- CSV


def render_csv(results: list[dict], boards_: list[Board]) -> str:
    """One row per method (by board, then name), one column per table cell ``table:column``;
    with ``table:column:low`` and ``:high`` beside each when any row carries intervals."""
    with_intervals = any("intervals" in r for r in results)
    header = ["method", "source", "citation", "ground_truth", "split", "fingerprint"]
    for spec in TABLES:
        for column in spec.columns:
            header.append(f"{spec.key}:{column}")
            if with_intervals:
                header += [f"{spec.key}:{column}:low", f"{spec.key}:{column}:high"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for board in boards_:
        for doc in board.results:
            gt = doc["ground_truth"]
            row = [doc["method"], doc["source"], doc["citation"], board.label, gt["split"],
                   gt["fingerprint"] or ""]
            for spec in TABLES:
                for column in spec.columns:
                    value = doc["tables"].get(spec.key, {}).get(column)
                    row.append("" if value is None else repr(float(value)))
                    if with_intervals:
                        pair = _interval(doc, spec, column)
                        row += ["", ""] if pair is None else [repr(float(v)) for v in pair]
            writer.writerow(row)
    return buf.getvalue()


# --------------------------------------------------------------------------------- plots


def plot_figure(spec: TableSpec, rows: list[dict], board_label: str):
    """Grouped bars, one group per column, one bar per method in its own stable colour;
    scored rows hatched; a row's intervals as error bars. Returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    columns = spec.columns
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(columns) + 2.5), 4.6), dpi=110)
    width = 0.84 / max(len(rows), 1)
    x = np.arange(len(columns))
    for k, doc in enumerate(rows):
        values = np.array([np.nan if doc["tables"][spec.key][c] is None
                           else doc["tables"][spec.key][c] for c in columns], dtype=float)
        scored = doc["source"] == "scored"
        bars = ax.bar(x + (k - (len(rows) - 1) / 2) * width, values, width,
                      label=doc["method"] + (" (scored)" if scored else ""),
                      color=method_colour(doc), hatch="//" if scored else None,
                      edgecolor="black" if scored else "none", linewidth=0.5)
        covered = [(bar.get_x() + bar.get_width() / 2, value, pair)
                   for bar, value, pair in zip(bars, values,
                                               (_interval(doc, spec, c) for c in columns))
                   if pair is not None and value == value]
        if covered:
            centres, heights, pairs = zip(*covered)
            err = [[max(v - p[0], 0) for v, p in zip(heights, pairs)],
                   [max(p[1] - v, 0) for v, p in zip(heights, pairs)]]
            ax.errorbar(centres, heights, yerr=err, fmt="none", ecolor="black",
                        elinewidth=0.9, capsize=2)
    ax.set_xticks(x, columns, fontsize=10)
    ax.tick_params(axis="y", labelsize=10)
    ax.set_ylabel("%" + ("  (lower is better)" if not spec.higher_is_better else ""),
                  fontsize=10)
    ax.set_title(f"{spec.title}\n{board_label}", fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=LEGEND_POINTS, loc="upper center", bbox_to_anchor=(0.5, -0.09),
              ncol=2 if len(rows) > 3 else len(rows) or 1, frameon=False)
    return fig


def render_plot(spec: TableSpec, rows: list[dict], board_label: str) -> bytes:
    """The PNG of :func:`plot_figure` (no software tag or date: reproducible bytes)."""
    import matplotlib.pyplot as plt

    fig = plot_figure(spec, rows, board_label)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.15,
                metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------------------------- write


def write_leaderboard(results_dir: str | os.PathLike, out: str | os.PathLike, *,
                      progress: bool = False) -> list[Path]:
    """Regenerate leaderboard.md/.html/.csv and one plot per board and table under ``out``
    (``progress``: a bar over the plots, which take most of the time)."""
    results = load_results(results_dir)
    boards_ = boards(results)
    out = Path(out)
    files = {"leaderboard.md": render_markdown(results, boards_).encode(),
             "leaderboard.html": render_html(results, boards_).encode(),
             "leaderboard.csv": render_csv(results, boards_).encode()}
    plots = [(board, spec) for board in boards_ for spec in TABLES if spec.key in board.ranked]
    for board, spec in progress_bar.bar(plots, desc="plots", unit="plot", enabled=progress):
        files[board.plot_file(spec)] = render_plot(spec, board.ranked[spec.key], board.label)
    written = []
    for name, data in files.items():
        atomic.write_bytes(out / name, data)
        written.append(out / name)
    return written


# ------------------------------------------------------------------------ terminal tables


def score_tables_text(scores: dict, method: str = "submission") -> str:
    """A score as plain-text tables laid out like the paper's Tables 1-4 (for the terminal)."""
    lines = []
    for spec, row in ((TABLE_BY_KEY[k], r) for k, r in tables_from_score(scores).items()):
        rows = [[method, *(_cell(row[c], spec.decimals) or "-" for c in spec.columns)]]
        if spec.key == "parts_by_size":
            counts = scores["parts_by_size"]["counts"]
            rows.append(["persons", *(str(counts[b]) for b in SIZE_BUCKETS)])
        header = ["Method", *spec.columns]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines += [spec.title, "  ".join(h.rjust(w) if i else h.ljust(w)
                                        for i, (h, w) in enumerate(zip(header, widths)))]
        lines += ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in
                            enumerate(zip(r, widths))) for r in rows]
        if spec.key == "adk":
            lines.append(f"(GT poses matched to no prediction: {scores['adk']['unmatched_gt']}, "
                         f"skipped without forehead and neck: {scores['adk']['skipped_gt']})")
        lines.append("")
    if "coco_oks" in scores:
        oks = scores["coco_oks"]
        stats = ", ".join(f"{k} {_cell(oks[k], 1) or '-'}" for k in ("AP", "AP50", "AP75", "AR"))
        lines += ["Extra, not the paper's metric: COCO OKS keypoint AP (pycocotools)", stats, ""]
    return "\n".join(lines)
