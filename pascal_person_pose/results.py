"""Result records: one JSON file per method, the input of the leaderboard.

``benchmark/results/<slug>.json`` holds one method::

    {"method": "HAZN", "citation": "...", "source": "published" | "scored",
     "ground_truth": {"split": "val", "fingerprint": "sha256:<hex>" | null,
                      "name": "PASCAL-Person-Part", "images": 1817},
     "tables": {"pose_ap": {"Head": .., ..., "Total": ..},                 # Table 1
                "adk": {"Forehead": .., ..., "Ave.": ..},                  # Table 2
                "parts": {"Head": .., ..., "Background": .., "Ave.": ..},  # Table 3
                "parts_by_size": {"XS": .., "S": .., "M": .., "L": ..}},  # Table 4
     "colour": "#1f77b4",                                   # optional, the plots' colour
     "intervals": {"pose_ap": {"Head": [low, high], ...}},  # optional, same shape as tables
     "bootstrap": {...}, "params": {...}, "meta": {...}}    # optional, as ``ppp score`` wrote

with any subset of the four tables. The ground truth says what the numbers were computed
on: scored rows carry the fingerprint of :mod:`.fingerprint`; published rows, whose ground
truth no one can hash, carry ``fingerprint: null`` and the dataset's ``name``. Rows are only
ranked against rows of the same ground truth (:func:`ground_truth_key`).

A method keeps its colour for good: rows added by ``ppp score --add-to`` record the first
palette colour no other row uses, a row without one gets a colour derived from a hash of its
name; neither depends on the other rows, so adding a row never recolours the others.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pascal_person_pose import atomic, safe_json
from pascal_person_pose.errors import InputError
from pascal_person_pose.fingerprint import PREFIX as FINGERPRINT_PREFIX
from pascal_person_pose.schema import ADK_COLUMNS, PARTS, POSE_AP_COLUMNS, SIZE_BUCKETS

SOURCES = ("published", "scored")
REQUIRED_KEYS = ("method", "citation", "source", "ground_truth", "tables")
OPTIONAL_KEYS = ("colour", "intervals", "bootstrap", "params", "meta")
GROUND_TRUTH_KEYS = ("split", "fingerprint", "name", "images")
MAX_METHOD_LENGTH = 100  # the file name is a slug of the method: stays under NAME_MAX

# Matplotlib's tab20, spelled out so that a colour never depends on the installed version.
PALETTE = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728",
           "#ff9896", "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2",
           "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5")
_FINGERPRINT = re.compile(re.escape(FINGERPRINT_PREFIX) + "[0-9a-f]{64}")
_COLOUR = re.compile("#[0-9a-f]{6}")


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


PART_ORDER = (*PARTS[1:], PARTS[0])  # the paper's Table 3 puts background last
_PART_COLUMNS = (*(p.title for p in PART_ORDER), "Ave.")
TABLES: tuple[TableSpec, ...] = (
    TableSpec("pose_ap", "Table 1: pose mAP (%)", tuple(POSE_AP_COLUMNS), True, 1, ("Total",)),
    TableSpec("adk", "Table 2: ADK (%), lower is better", (*ADK_COLUMNS, "Ave."), False, 1,
              ("Ave.",)),
    TableSpec("parts", "Table 3: part IoU (%)", _PART_COLUMNS, True, 2, ("Ave.",)),
    TableSpec("parts_by_size", "Table 4: part mIOU by person size (%)", SIZE_BUCKETS, True, 1,
              SIZE_BUCKETS),
)
TABLE_BY_KEY = {t.key: t for t in TABLES}


# ---------------------------------------------------------------------------- checking


def slug(method: str) -> str:
    """A file name for a method: lowercase words joined by '-' ("Our Net (v2)" -> our-net-v2)."""
    text = re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")
    if not text:
        raise InputError(None, f"method name {method!r} has no letters or digits")
    return text


def check_method_name(method, file, record: str | None = None) -> str:
    """A method name fit for a table cell and a file name, or an InputError."""
    if not isinstance(method, str) or not method.strip():
        raise InputError(file, "must be a non-empty string", record=record, field="method")
    if len(method) > MAX_METHOD_LENGTH:
        raise InputError(file, f"is {len(method)} characters long; at most {MAX_METHOD_LENGTH}",
                         record=record, field="method")
    if any(not c.isprintable() for c in method):
        raise InputError(file, "contains a control character (a line break, a tab, ...)",
                         record=record, field="method")
    if not re.search("[a-z0-9]", method.lower()):
        raise InputError(file, "needs a letter or a digit (it names the file)", record=record,
                         field="method")
    return method


def check_result(doc, file: str | os.PathLike) -> dict:
    """Check one results document; raise an InputError naming the file, method and field."""
    if not isinstance(doc, dict):
        raise InputError(file, "must be a JSON object")
    record = doc.get("method") if isinstance(doc.get("method"), str) else "?"
    record = record[:MAX_METHOD_LENGTH].encode("unicode_escape").decode()
    for key in REQUIRED_KEYS:
        if key not in doc:
            raise InputError(file, "missing", record=record, field=key)
    for key in doc:
        if key not in REQUIRED_KEYS + OPTIONAL_KEYS:
            raise InputError(file, "unknown field", record=record, field=key)
    check_method_name(doc["method"], file, record)
    if not isinstance(doc["citation"], str):
        raise InputError(file, "must be a string", record=record, field="citation")
    if doc["source"] not in SOURCES:
        raise InputError(file, f"must be one of {', '.join(SOURCES)}", record=record,
                         field="source")
    _check_ground_truth(doc["ground_truth"], doc["source"], file, record)
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
            if value is not None and not _is_number(value):
                raise InputError(file, "must be a number or null", record=record,
                                 field=f"tables.{key}.{column}")
    if "colour" in doc and not (isinstance(doc["colour"], str) and _COLOUR.fullmatch(doc["colour"])):
        raise InputError(file, "must be a colour #rrggbb (lowercase hex)", record=record,
                         field="colour")
    if "intervals" in doc:
        _check_intervals(doc["intervals"], tables, file, record)
    for key in ("bootstrap", "params", "meta"):
        if key in doc and not isinstance(doc[key], dict):
            raise InputError(file, "must be an object", record=record, field=key)
    return doc


def _is_number(value) -> bool:
    return type(value) in (int, float) and value == value and abs(value) != float("inf")


def _check_ground_truth(gt, source: str, file, record: str) -> None:
    if not isinstance(gt, dict):
        raise InputError(file, "must be an object {split, fingerprint, ...}", record=record,
                         field="ground_truth")
    for key in gt:
        if key not in GROUND_TRUTH_KEYS:
            raise InputError(file, f"unknown field; known: {', '.join(GROUND_TRUTH_KEYS)}",
                             record=record, field=f"ground_truth.{key}")
    if not isinstance(gt.get("split"), str) or not gt["split"]:
        raise InputError(file, "must be the name of the split, e.g. val", record=record,
                         field="ground_truth.split")
    fingerprint = gt.get("fingerprint", "missing")
    if fingerprint is None:
        if source != "published":
            raise InputError(file, "is null, which only published rows may be: re-score with "
                                   "`ppp score` to record it", record=record,
                             field="ground_truth.fingerprint")
    elif not (isinstance(fingerprint, str) and _FINGERPRINT.fullmatch(fingerprint)):
        raise InputError(file, f"must be {FINGERPRINT_PREFIX}<64 hex digits> (as `ppp score` "
                               "records it), or null for published rows", record=record,
                         field="ground_truth.fingerprint")
    name = gt.get("name")
    if (fingerprint is None or name is not None) and not (isinstance(name, str) and name.strip()):
        raise InputError(file, "must name the dataset the published numbers are on",
                         record=record, field="ground_truth.name")
    images = gt.get("images")
    if images is not None and not (type(images) is int and images >= 0):
        raise InputError(file, "must be a count of images", record=record,
                         field="ground_truth.images")


def _check_intervals(intervals, tables: dict, file, record: str) -> None:
    if not isinstance(intervals, dict):
        raise InputError(file, "must be an object shaped like tables", record=record,
                         field="intervals")
    for key, row in intervals.items():
        if key not in tables:
            raise InputError(file, "covers a table the row does not have", record=record,
                             field=f"intervals.{key}")
        columns = TABLE_BY_KEY[key].columns
        if not isinstance(row, dict) or not set(row) <= set(columns):
            raise InputError(file, f"must map some of the columns {', '.join(columns)} to "
                                   "[low, high]", record=record, field=f"intervals.{key}")
        for column, pair in row.items():
            if pair is None:
                continue
            if not (isinstance(pair, list) and len(pair) == 2 and all(map(_is_number, pair))
                    and pair[0] <= pair[1]):
                raise InputError(file, "must be [low, high] with low <= high, or null",
                                 record=record, field=f"intervals.{key}.{column}")


# ------------------------------------------------------------------------- ground truth


def ground_truth_key(doc: dict) -> tuple:
    """Rows with equal keys were scored on the same ground truth; only they rank together."""
    gt = doc["ground_truth"]
    if gt["fingerprint"] is None:
        return ("published", gt["name"], gt["split"])
    return ("fingerprint", gt["fingerprint"])


def ground_truth_label(doc: dict) -> str:
    """How tables name a row's ground truth, e.g. "PASCAL-Person-Part val, published"."""
    gt = doc["ground_truth"]
    images = f" ({gt['images']} images)" if gt.get("images") is not None else ""
    if gt["fingerprint"] is None:
        return f"{gt['name']} {gt['split']}, published{images}"
    name = f"{gt['name']} " if gt.get("name") else ""
    short = gt["fingerprint"][:len(FINGERPRINT_PREFIX) + 12]
    return f"{name}{gt['split']} split, ground truth {short}{images}"


def ground_truth_slug(doc: dict) -> str:
    """A short file-name part naming a row's ground truth (the plots of its group)."""
    gt = doc["ground_truth"]
    if gt["fingerprint"] is None:
        return slug(f"{gt['name']} {gt['split']}")
    return f"{gt['split']}-{gt['fingerprint'][len(FINGERPRINT_PREFIX):][:12]}"


# -------------------------------------------------------------------------------- colours


def hashed_colour(method: str) -> str:
    """A colour that depends on the method's name only (rows that record none)."""
    digest = hashlib.sha256(method.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:4], "big") / 2 ** 32
    lightness = 0.40 + 0.15 * digest[4] / 255
    rgb = colorsys.hls_to_rgb(hue, lightness, 0.70)
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


def method_colour(doc: dict) -> str:
    """The row's colour in every plot: the recorded one, else its name's hashed colour."""
    return doc.get("colour") or hashed_colour(doc["method"])


def free_colour(results: list[dict], method: str) -> str:
    """The first palette colour no row uses, else the method's hashed colour (what
    ``--add-to`` records for a new row)."""
    used = {method_colour(r) for r in results}
    return next((c for c in PALETTE if c not in used), hashed_colour(method))


# ---------------------------------------------------------------------------- reading


MAX_RESULT_BYTES = 16 * 2 ** 20  # a record is a few kB; more is not a record


def read_result(path: Path) -> dict:
    """One checked record (read by the safe reader: hand-edited files are user input)."""
    return check_result(safe_json.load(path, max_bytes=MAX_RESULT_BYTES), path)


def load_results_with_paths(directory: str | os.PathLike) -> list[tuple[Path, dict]]:
    """``(path, document)`` of every ``*.json`` of ``directory``, checked, in file-name
    order; an empty list for a directory without results."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "no such results directory")
    loaded, seen = [], {}
    for path in sorted(directory.glob("*.json")):
        doc = read_result(path)
        key = slug(doc["method"])
        if key in seen:
            other, other_path = seen[key]
            same = "method also in" if other == doc["method"] else \
                f"method too close to {other!r} (same name once case and punctuation are " \
                "ignored) in"
            raise InputError(path, f"{same} {other_path.name}", record=doc["method"],
                             field="method")
        seen[key] = (doc["method"], path)
        loaded.append((path, doc))
    return loaded


def load_results(directory: str | os.PathLike) -> list[dict]:
    """All results documents of ``directory`` (``*.json``), checked, in file-name order."""
    results = [doc for _, doc in load_results_with_paths(directory)]
    if not results:
        raise InputError(directory, "holds no results (*.json)")
    return results


# ---------------------------------------------------------------------- scored results


def tables_from_score(scores: dict) -> dict:
    """The paper's table rows of a :func:`scoring.score` result (tasks it has).

    Also maps the score's ``intervals`` (the same nesting, [low, high] leaves, possibly
    covering only some numbers) onto the table rows; what it does not cover is left out.
    """
    tables = {}
    for key in ("pose_ap", "adk"):
        if "table" in scores.get(key, {}):
            tables[key] = dict(scores[key]["table"])
    if "parts" in scores:
        per_class, parts = scores["parts"].get("per_class", {}), {}
        for part in PART_ORDER:
            if part.name in per_class:
                parts[part.title] = per_class[part.name]
        if "miou" in scores["parts"]:
            parts["Ave."] = scores["parts"]["miou"]
        tables["parts"] = parts
    if "parts_by_size" in scores:
        tables["parts_by_size"] = {b: scores["parts_by_size"][b] for b in SIZE_BUCKETS
                                   if b in scores["parts_by_size"]}
    return tables


def result_from_score(scores: dict, method: str, citation: str = "",
                      meta: dict | None = None) -> dict:
    """A "scored" results document from the JSON of :func:`scoring.score`."""
    params = scores.get("params", {})
    if "ground_truth" not in params:
        raise InputError(None, "the scores record no ground-truth fingerprint "
                               "(params.ground_truth); score again with this version")
    doc = {"method": method, "citation": citation, "source": "scored",
           "ground_truth": {"split": params["split"], "fingerprint": params["ground_truth"],
                            **({"images": params["images"]} if "images" in params else {})},
           "tables": tables_from_score(scores)}
    if "intervals" in scores:
        doc["intervals"] = {k: {c: list(v) if v is not None else None for c, v in row.items()}
                            for k, row in tables_from_score(scores["intervals"]).items()
                            if k in doc["tables"] and row}
        doc["bootstrap"] = scores.get("bootstrap", {})
    doc["params"] = params
    if meta:
        doc["meta"] = meta
    return check_result(doc, f"<{method}>")


def plan_add(directory: str | os.PathLike, method: str, *, replace: bool = False
             ) -> tuple[Path, dict | None, list[dict]]:
    """Where a scored row of ``method`` goes: ``(path, the row it replaces or None, every
    row of the directory)``; an InputError if it would clash, checked before any work.

    A method clashes with a row of the same name, or of a name equal once case and
    punctuation are ignored (they would share a file name, and a reader could not tell
    them apart). A published row is never replaced; a scored one only with ``replace``.
    """
    check_method_name(method, None)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(directory, "is not a directory; --add-to needs a results directory")
    try:
        loaded = load_results_with_paths(directory) if directory.exists() else []
    except InputError as e:
        raise InputError(None, f"cannot add to a results directory that `ppp leaderboard` "
                               f"refuses: {e}") from None
    key = slug(method)
    path, replaced = directory / f"{key}.json", None
    for existing_path, doc in loaded:
        if slug(doc["method"]) != key:
            continue
        what = "the name" if doc["method"] == method else \
            f"too close to the name {doc['method']!r}"
        if doc["source"] == "published":
            raise InputError(existing_path, f"method {method!r} is {what} of a published "
                                            "row; choose another method name",
                             record=doc["method"], field="method")
        if not replace:
            raise InputError(existing_path, f"method {method!r} is {what} of a scored row "
                                            f"({ground_truth_label(doc)}); pass --replace to "
                                            "replace it, or choose another method name",
                             record=doc["method"], field="method")
        path, replaced = existing_path, doc
    if replaced is None and path.exists():
        # Taken by a row whose method names another file (a hand-named file).
        other = next(doc for p, doc in loaded if p == path)
        raise InputError(path, f"the file name for method {method!r} holds the row of "
                               f"{other['method']!r}; choose another method name")
    return path, replaced, [doc for _, doc in loaded]


def add_result(directory: str | os.PathLike, doc: dict, *, replace: bool = False) -> Path:
    """Write a scored row into ``directory`` after :func:`plan_add`'s checks.

    A new row records the first free palette colour; a replaced row keeps its colour.
    """
    path, replaced, existing = plan_add(directory, doc["method"], replace=replace)
    colour = method_colour(replaced) if replaced else \
        doc.get("colour") or free_colour(existing, doc["method"])
    doc = check_result({**doc, "colour": colour}, path)
    atomic.write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path
