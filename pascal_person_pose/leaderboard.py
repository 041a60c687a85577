"""Leaderboards: one results file per method -> Markdown, HTML, CSV tables and bar plots.

``benchmark/results/<slug>.json`` holds one method::

    {"method": "HAZN", "citation": "...", "source": "published" | "scored",
     "tables": {"pose_ap": {"Head": .., ..., "Total": ..},          # Table 1
                "adk": {"Forehead": .., ..., "Ave.": ..},           # Table 2
                "parts": {"Head": .., ..., "Background": .., "Ave.": ..},  # Table 3
                "parts_by_size": {"XS": .., "S": .., "M": .., "L": ..}}}   # Table 4

with any subset of the four tables (a method is listed in the tables it has). Published
rows are the paper's numbers as printed, with the citation of the paper they come from;
scored rows come from ``ppp score --add-to`` and also record ``params``. Optional ``meta``
carries a scored submission's ``meta.json``.

Rows are ranked best first by each table's main column (Total, Ave., Ave., and the mean of
the four sizes; ADK is a distance, lower is better), ties by method name, so the output
depends only on the input: the same results give byte-identical files (plots included:
Agg rendering, no timestamps or software tags in the PNG metadata). Tables show one
decimal as docs/metrics.md says, except Table 3, which the paper prints with two.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pascal_person_pose import atomic
from pascal_person_pose import progress as progress_bar
from pascal_person_pose.errors import InputError
from pascal_person_pose.schema import ADK_COLUMNS, PARTS, POSE_AP_COLUMNS, SIZE_BUCKETS

SOURCES = ("published", "scored")
OPTIONAL_KEYS = ("params", "meta")


@dataclass(frozen=True)
class TableSpec:
    key: str  # the key under "tables" (and in the score JSON)
    title: str
    columns: tuple[str, ...]
    higher_is_better: bool
    decimals: int
    rank_by: tuple[str, ...]  # the columns whose mean ranks the rows

    def rank_key(self, row: dict) -> float:
        values = [row[c] for c in self.rank_by if row.get(c) is not None]
        if not values:
            return float("inf")  # nothing to rank by: last
        mean = sum(values) / len(values)
        return -mean if self.higher_is_better else mean


_PART_ORDER = (*PARTS[1:], PARTS[0])  # the paper's Table 3 puts background last
_PART_COLUMNS = (*(p.title for p in _PART_ORDER), "Ave.")
TABLES: tuple[TableSpec, ...] = (
    TableSpec("pose_ap", "Table 1: pose mAP (%)", tuple(POSE_AP_COLUMNS), True, 1, ("Total",)),
    TableSpec("adk", "Table 2: ADK (%), lower is better", (*ADK_COLUMNS, "Ave."), False, 1,
              ("Ave.",)),
    TableSpec("parts", "Table 3: part IoU (%)", _PART_COLUMNS, True, 2, ("Ave.",)),
    TableSpec("parts_by_size", "Table 4: part mIOU by person size (%)", SIZE_BUCKETS, True, 1,
              SIZE_BUCKETS),
)
TABLE_BY_KEY = {t.key: t for t in TABLES}


# ------------------------------------------------------------------------- results files


def slug(method: str) -> str:
    """A file name for a method: lowercase words joined by '-' ("Our Net (v2)" -> our-net-v2)."""
    text = re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")
    if not text:
        raise InputError(None, f"method name {method!r} has no letters or digits")
    return text


def check_result(doc, file: str | os.PathLike) -> dict:
    """Check one results document; raise an InputError naming the file, method and field."""
    if not isinstance(doc, dict):
        raise InputError(file, "must be a JSON object")
    record = str(doc.get("method", "?"))
    for key in ("method", "citation", "source", "tables"):
        if key not in doc:
            raise InputError(file, "missing", record=record, field=key)
    for key in doc:
        if key not in ("method", "citation", "source", "tables", *OPTIONAL_KEYS):
            raise InputError(file, "unknown field", record=record, field=key)
    for key in ("method", "citation"):
        if not isinstance(doc[key], str) or (key == "method" and not doc[key].strip()):
            raise InputError(file, "must be a non-empty string" if key == "method"
                             else "must be a string", record=record, field=key)
    if doc["source"] not in SOURCES:
        raise InputError(file, f"must be one of {', '.join(SOURCES)}", record=record,
                         field="source")
    tables = doc["tables"]
    if not isinstance(tables, dict) or not tables:
        raise InputError(file, f"must be an object with some of {', '.join(TABLE_BY_KEY)}",
                         record=record, field="tables")
    for key, row in tables.items():
        spec = TABLE_BY_KEY.get(key)
        if spec is None:
            raise InputError(file, f"unknown table; known: {', '.join(TABLE_BY_KEY)}",
                             record=record, field=f"tables.{key}")
        if not isinstance(row, dict) or set(row) != set(spec.columns):
            raise InputError(file, f"must have exactly the columns {', '.join(spec.columns)}",
                             record=record, field=f"tables.{key}")
        for column, value in row.items():
            if value is not None and (type(value) not in (int, float) or value != value):
                raise InputError(file, "must be a number or null", record=record,
                                 field=f"tables.{key}.{column}")
    return doc


def load_results(directory: str | os.PathLike) -> list[dict]:
    """All results documents of ``directory`` (``*.json``), checked, in file-name order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "no such results directory")
    results, seen = [], {}
    for path in sorted(directory.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(path, f"not valid JSON ({e})") from None
        check_result(doc, path)
        if doc["method"] in seen:
            raise InputError(path, f"method also in {seen[doc['method']].name}",
                             record=doc["method"], field="method")
        seen[doc["method"]] = path
        results.append(doc)
    if not results:
        raise InputError(directory, "holds no results (*.json)")
    return results


def tables_from_score(scores: dict) -> dict:
    """The paper's table rows of a :func:`scoring.score` result (tasks it has)."""
    tables = {}
    if "pose_ap" in scores:
        tables["pose_ap"] = dict(scores["pose_ap"]["table"])
    if "adk" in scores:
        tables["adk"] = dict(scores["adk"]["table"])
    if "parts" in scores:
        per_class = scores["parts"]["per_class"]
        tables["parts"] = {**{p.title: per_class[p.name] for p in _PART_ORDER},
                           "Ave.": scores["parts"]["miou"]}
    if "parts_by_size" in scores:
        tables["parts_by_size"] = {b: scores["parts_by_size"][b] for b in SIZE_BUCKETS}
    return tables


def result_from_score(scores: dict, method: str, citation: str = "",
                      meta: dict | None = None) -> dict:
    """A "scored" results document from the JSON of :func:`scoring.score`."""
    doc = {"method": method, "citation": citation, "source": "scored",
           "tables": tables_from_score(scores), "params": scores.get("params", {})}
    if meta:
        doc["meta"] = meta
    return check_result(doc, f"<{method}>")


def score_tables_text(scores: dict, method: str = "submission") -> str:
    """A score as plain-text tables laid out like the paper's Tables 1-4 (for the terminal)."""
    lines = []
    for spec, row in ((TABLE_BY_KEY[k], r) for k, r in tables_from_score(scores).items()):
        rows = [[method, *(_cell(_number(row[c]), spec.decimals) or "-" for c in spec.columns)]]
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
        stats = ", ".join(f"{k} {_cell(_number(oks[k]), 1) or '-'}"
                          for k in ("AP", "AP50", "AP75", "AR"))
        lines += ["Extra, not the paper's metric: COCO OKS keypoint AP (pycocotools)", stats, ""]
    return "\n".join(lines)


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def add_result(directory: str | os.PathLike, doc: dict) -> Path:
    """Write a scored row as ``<directory>/<slug>.json``; a published row is never replaced."""
    path = Path(directory) / f"{slug(doc['method'])}.json"
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = {}
        if isinstance(old, dict) and old.get("source") == "published":
            raise InputError(path, "holds published numbers; choose another method name",
                             record=doc["method"], field="method")
    atomic.write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path


# -------------------------------------------------------------------------------- tables


def table_frames(results: list[dict]) -> dict:
    """One pandas frame per table: rows ranked best first, columns as in the paper."""
    import pandas as pd

    frames = {}
    for spec in TABLES:
        rows = [r for r in results if spec.key in r["tables"]]
        rows.sort(key=lambda r: (spec.rank_key(r["tables"][spec.key]), r["method"]))
        frames[spec.key] = pd.DataFrame(
            [[r["tables"][spec.key][c] for c in spec.columns] for r in rows],
            index=pd.Index([r["method"] for r in rows], name="Method"),
            columns=list(spec.columns), dtype="float64")
    return frames


def _cell(value: float, decimals: int) -> str:
    return "" if value != value else f"{value:.{decimals}f}"


def render_markdown(results: list[dict], frames: dict) -> str:
    sources = {r["method"]: r for r in results}
    numbers = {r["method"]: i + 1 for i, r in enumerate(sorted(results, key=lambda r: r["method"]))}
    lines = ["# PASCAL-Person-Part with 14 joints: leaderboard", "",
             "Rows marked *published* are numbers as printed in the cited papers (on the real "
             "PASCAL-Person-Part val split); rows marked **scored** were computed by "
             "`ppp score` with this toolkit. Ranked best first.", ""]
    for spec in TABLES:
        frame = frames[spec.key]
        if frame.empty:
            continue
        lines += [f"## {spec.title}", "",
                  "| # | Method | Source | " + " | ".join(spec.columns) + " |",
                  "|---:|---|---|" + "---:|" * len(spec.columns)]
        for rank, (method, row) in enumerate(frame.iterrows(), 1):
            source = sources[method]["source"]
            mark = "*published*" if source == "published" else "**scored**"
            cells = " | ".join(_cell(v, spec.decimals) for v in row)
            lines.append(f"| {rank} | {_md(method)} [{numbers[method]}] | {mark} | {cells} |")
        lines.append("")
    lines += ["## References", ""]
    for method, n in sorted(numbers.items(), key=lambda kv: kv[1]):
        citation = sources[method]["citation"] or "unpublished"
        lines.append(f"{n}. {_md(method)}: {_md(citation)}")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


_SORT_SCRIPT = """
document.querySelectorAll("table.board").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var down = th.dataset.dir !== "down";
      table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = down ? "down" : "up";
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var c = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
        return down ? -c : c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table.board { border-collapse: collapse; margin-bottom: 2em; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }
th { cursor: pointer; background: #f3f3f3; user-select: none; }
th[data-dir="down"]::after { content: " \\25BC"; } th[data-dir="up"]::after { content: " \\25B2"; }
td.text, th.text { text-align: left; }
tr.scored { background: #fff7e0; }
.badge { font-size: 0.8em; padding: 0.1em 0.4em; border-radius: 0.3em; }
.badge.published { background: #e4ecf7; } .badge.scored { background: #f5c542; }
"""


def render_html(results: list[dict], frames: dict) -> str:
    """A self-contained page: inline style and sorting script, no network assets."""
    sources = {r["method"]: r for r in results}
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>PASCAL-Person-Part leaderboard</title>", f"<style>{_STYLE}</style>",
             "</head><body>", "<h1>PASCAL-Person-Part with 14 joints: leaderboard</h1>",
             "<p>Rows marked <span class=\"badge published\">published</span> are numbers as "
             "printed in the cited papers (real PASCAL-Person-Part val split); rows marked "
             "<span class=\"badge scored\">scored</span> were computed "
             "by <code>ppp score</code>. Click a column title to sort.</p>"]
    for spec in TABLES:
        frame = frames[spec.key]
        if frame.empty:
            continue
        heads = "".join(f"<th>{e(c)}</th>" for c in spec.columns)
        parts += [f"<h2>{e(spec.title)}</h2>", '<table class="board"><thead><tr>',
                  f'<th>#</th><th class="text">Method</th><th class="text">Source</th>{heads}'
                  "</tr></thead><tbody>"]
        for rank, (method, row) in enumerate(frame.iterrows(), 1):
            r = sources[method]
            cells = "".join(f'<td data-v="{"" if v != v else repr(float(v))}">'
                            f"{_cell(v, spec.decimals)}</td>" for v in row)
            parts.append(f'<tr class="{r["source"]}"><td data-v="{rank}">{rank}</td>'
                         f'<td class="text" data-v="{e(method)}" title="{e(r["citation"])}">'
                         f'{e(method)}</td><td class="text" data-v="{r["source"]}">'
                         f'<span class="badge {r["source"]}">{r["source"]}</span></td>'
                         f"{cells}</tr>")
        parts.append("</tbody></table>")
    parts.append("<h2>References</h2><ul>")
    for r in sorted(results, key=lambda r: r["method"]):
        parts.append(f"<li><b>{e(r['method'])}</b>: {e(r['citation'] or 'unpublished')}</li>")
    parts += ["</ul>", f"<script>{_SORT_SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def render_csv(results: list[dict]) -> str:
    """One row per method (file-name order), one column per table cell: ``table:column``."""
    import pandas as pd

    records = []
    for r in sorted(results, key=lambda r: r["method"]):
        record = {"method": r["method"], "source": r["source"], "citation": r["citation"]}
        for spec in TABLES:
            for column in spec.columns:
                record[f"{spec.key}:{column}"] = r["tables"].get(spec.key, {}).get(column)
        records.append(record)
    buf = io.StringIO()
    pd.DataFrame.from_records(records).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def render_plot(spec: TableSpec, frame, results: list[dict]) -> bytes:
    """Grouped bars, one group per column, one bar per method; scored rows hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scored = {r["method"] for r in results if r["source"] == "scored"}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(spec.columns) + 2), 4.2), dpi=100)
    width = 0.8 / max(len(frame), 1)
    x = np.arange(len(spec.columns))
    cmap = plt.get_cmap("tab20").colors  # one colour per method, the same in every plot
    colour = {r["method"]: cmap[i % len(cmap)]
              for i, r in enumerate(sorted(results, key=lambda r: r["method"]))}
    for k, (method, row) in enumerate(frame.iterrows()):
        ax.bar(x + (k - (len(frame) - 1) / 2) * width, row.to_numpy(dtype=float), width,
               label=method + (" (scored)" if method in scored else ""),
               color=colour[method], hatch="//" if method in scored else None,
               edgecolor="black" if method in scored else "none", linewidth=0.5)
    ax.set_xticks(x, spec.columns)
    ax.set_ylabel("%" + (" (lower is better)" if not spec.higher_is_better else ""))
    ax.set_title(spec.title)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


PLOT_FILES = {"pose_ap": "pose_ap.png", "adk": "adk.png", "parts": "parts_iou.png",
              "parts_by_size": "parts_by_size.png"}


def write_leaderboard(results_dir: str | os.PathLike, out: str | os.PathLike,
                      progress: bool = True) -> list[Path]:
    """Regenerate leaderboard.md/.html/.csv and one plot per table under ``out`` (a bar over
    the plots, which take most of the time)."""
    results = load_results(results_dir)
    frames = table_frames(results)
    out = Path(out)
    files = {"leaderboard.md": render_markdown(results, frames).encode(),
             "leaderboard.html": render_html(results, frames).encode(),
             "leaderboard.csv": render_csv(results).encode()}
    for spec in progress_bar.bar(TABLES, desc="plots", unit="plot", enabled=progress):
        if not frames[spec.key].empty:
            files[PLOT_FILES[spec.key]] = render_plot(spec, frames[spec.key], results)
    written = []
    for name, data in files.items():
        atomic.write_bytes(out / name, data)
        written.append(out / name)
    return written
