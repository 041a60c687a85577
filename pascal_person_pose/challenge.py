"""Hosting the benchmark on Codabench: the bundle ``ppp challenge-bundle`` writes, and the
scoring program inside it.

A Codabench bundle (``competition.yaml`` version 2, one task, one phase, one leaderboard)
holds the reference data of one split (the canonical annotations, part maps and instance
maps, no images), a scoring program and the competition's pages. The platform runs the
scoring program in its Docker image as ``python3 $program/score.py $input $output`` with
the reference data in ``$input/ref`` and the participant's unzipped submission in
``$input/res``; the program writes ``$output/scores.json``, one number per leaderboard
column. A submission that cannot be scored gets one line on stderr, exit status 2 and no
scores file, which the platform reports as a failed submission with that log.

The scoring program carries a copy of this package beside it and calls :func:`scoring.score`,
so a hosted leaderboard shows exactly the numbers of ``ppp score``. Its columns are the
paper's Tables 1-4 (:data:`results.TABLES`); Codabench has one leaderboard per
competition, so they are one row of 30 columns ranked by Table 1's Total. Specified for
users in docs/frameworks.md.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
from PIL import Image

from pascal_person_pose import atomic, layout, schema
from pascal_person_pose import progress as progress_bar
from pascal_person_pose.errors import InputError
from pascal_person_pose.leaderboard import score_tables_text
from pascal_person_pose.results import TABLES, tables_from_score

SCORES_FILE = "scores.json"
DETAILED_RESULTS_FILE = "detailed_results.html"
PLATFORM_METADATA = "metadata"  # Codabench adds it to every prediction result
DEFAULT_DOCKER_IMAGE = "codalab/codalab-legacy:py312"
PRIMARY_COLUMN = ("pose_ap", "Total")
_TABLE_LABELS = {"pose_ap": "mAP", "adk": "ADK", "parts": "IoU", "parts_by_size": "mIOU"}
_PAGES = (("Overview", "overview.md"), ("Data", "data.md"), ("Evaluation", "evaluation.md"))
_SCORE_PY = '''"""Codabench scoring program of pascal-person-pose (written by `ppp challenge-bundle`).

The platform runs it as ``python3 $program/score.py $input $output``: $input/ref holds the
reference data, $input/res the participant's submission, and the scores go to
$output/scores.json. The toolkit travels beside this file, so the numbers are exactly
those of `ppp score`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    from pascal_person_pose.challenge import run_scoring_program
except ImportError as error:
    sys.exit(f"error: the scoring image lacks {error.name or error}; it needs Python >= 3.11 "
             "with numpy, scipy, pycocotools, opencv-python-headless and pillow")

sys.exit(run_scoring_program(sys.argv[1], sys.argv[2]))
'''


@dataclass(frozen=True)
class Column:
    """One leaderboard column: a cell of the paper's Tables 1-4."""

    table: str  # results.TableSpec.key
    name: str  # the paper's column title
    higher_is_better: bool
    decimals: int

    @property
    def key(self) -> str:
        return f"{self.table}_{re.sub(r'[^a-z0-9]+', '_', self.name.lower()).strip('_')}"

    @property
    def title(self) -> str:
        return f"{_TABLE_LABELS[self.table]} {self.name}"


COLUMNS: tuple[Column, ...] = tuple(Column(spec.key, name, spec.higher_is_better, spec.decimals)
                                    for spec in TABLES for name in spec.columns)


def leaderboard_scores(scores: dict) -> dict[str, float]:
    """``scores.json`` content for a :func:`scoring.score` result: one number per column
    the submission has a value for (a task it left out, or an undefined IoU, has none)."""
    tables = tables_from_score(scores)
    return {c.key: float(tables[c.table][c.name]) for c in COLUMNS
            if tables.get(c.table, {}).get(c.name) is not None}


# ----------------------------------------------------------------------- scoring program


def run_scoring_program(input_dir: str | os.PathLike, output_dir: str | os.PathLike) -> int:
    """Score ``input_dir/res`` against ``input_dir/ref``; write ``output_dir/scores.json``.

    Returns the exit status: 0 when scored, 2 (one line on stderr, no scores file) when the
    submission or the reference data cannot be scored.
    """
    from pascal_person_pose.scoring import score

    input_dir, output_dir = Path(input_dir), Path(output_dir)
    try:
        split = _reference_split(input_dir / "ref")
        scores = score(input_dir / "ref", _read_result(input_dir / "res"), split, progress=False)
    except InputError as error:  # an invalid submission names its first problem and count
        print(f"error: {error}", file=sys.stderr)
        return 2
    tables = score_tables_text(scores, "submission")
    print(tables)
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_json(output_dir / SCORES_FILE, leaderboard_scores(scores), indent=2)
    atomic.write_text(output_dir / DETAILED_RESULTS_FILE,
                      f"<!doctype html><meta charset=utf-8><pre>{_escape(tables)}</pre>\n")
    return 0


def _reference_split(ref: Path) -> str:
    found = [s for s in layout.SPLITS if layout.CanonicalLayout(ref).annotations(s).is_file()]
    if len(found) != 1:
        raise InputError(ref, "the reference data holds no single annotations/"
                              "person_pose_<split>.json; rebuild the bundle")
    return found[0]


def _read_result(res: Path):
    """The submission as ``ppp score`` reads it, less the platform's own ``metadata`` file; a
    single top folder (a zip of the folder rather than of its contents) is opened."""
    from pascal_person_pose.submission import read_submission

    entries = [p for p in res.iterdir() if p.name != PLATFORM_METADATA] if res.is_dir() else []
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name != "parts":
        res = entries[0]
    submission = read_submission(res)
    submission.problems[:] = [p for p in submission.problems if p.file != PLATFORM_METADATA]
    return submission


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------------- bundle


def write_bundle(root: str | os.PathLike, split: str, out: str | os.PathLike, *,
                 title: str | None = None, docker_image: str = DEFAULT_DOCKER_IMAGE,
                 start: datetime.date | None = None, end: datetime.date | None = None,
                 progress: bool = True) -> Path:
    """Write the Codabench bundle of ``split`` of the canonical dataset at ``root``.

    ``out`` ending in ``.zip`` gets the zip to upload; any other ``out`` gets the same
    files as a directory (it must not exist yet), to edit before zipping its contents.
    """
    from pascal_person_pose.dataset import Dataset

    dataset = Dataset(root, split)
    out = Path(out)
    if out.suffix.lower() != ".zip" and out.exists():
        raise InputError(out, "already exists; the bundle is written to a new directory")
    if end is not None and start is not None and end <= start:
        raise InputError(None, f"the phase would end ({end}) before it starts ({start})")
    title = title or f"PASCAL-Person-Part with 14 joints: pose and parts ({split})"
    files = {"competition.yaml": _competition_yaml(title, split, docker_image,
                                                   start or datetime.date.today(), end),
             "logo.png": _logo()}
    fields = _page_fields(dataset, title, docker_image)
    for name in ("terms.md", *(file for _, file in _PAGES)):
        template = resources.files("pascal_person_pose") / "challenge_pages" / name
        files[f"pages/{name}"] = template.read_text(encoding="utf-8").format(**fields)
    files["scoring_program/metadata.yaml"] = "command: python3 $program/score.py $input $output\n"
    files["scoring_program/score.py"] = _SCORE_PY
    files.update(_package_files("scoring_program/pascal_person_pose",
                                resources.files("pascal_person_pose")))
    canonical = dataset.layout
    files[f"reference_data/annotations/{canonical.annotations(split).name}"] = \
        canonical.annotations(split)
    for image in progress_bar.bar(dataset.images, desc="bundle", unit="img", enabled=progress):
        voc_id = image["voc_id"]
        files[f"reference_data/parts/{voc_id}.png"] = canonical.parts(voc_id)
        files[f"reference_data/instances/{voc_id}.png"] = canonical.instances(voc_id)
    _write(files, out)
    return out


def _competition_yaml(title: str, split: str, docker_image: str, start: datetime.date,
                      end: datetime.date | None) -> str:
    phase = {"index": 0, "name": f"{split} split", "start": start.isoformat(),
             "description": f"Submissions are scored on the {split} split.",
             "max_submissions_per_day": 5, "tasks": [0]}
    if end is not None:
        phase["end"] = end.isoformat()
    columns = [{"title": c.title, "key": c.key, "index": i,
                "sorting": "desc" if c.higher_is_better else "asc", "precision": c.decimals}
               for i, c in enumerate(COLUMNS)]
    primary = next(i for i, c in enumerate(COLUMNS) if (c.table, c.name) == PRIMARY_COLUMN)
    competition = {
        "version": 2,
        "title": title,
        "description": "Joint multi-person pose estimation and semantic part segmentation "
                       "(Xia et al., CVPR 2017), scored by pascal-person-pose.",
        "image": "logo.png",
        "registration_auto_approve": True,
        "docker_image": docker_image,
        "enable_detailed_results": True,
        "make_programs_available": True,
        "terms": "pages/terms.md",
        "pages": [{"title": t, "file": f"pages/{file}"} for t, file in _PAGES],
        "tasks": [{"index": 0, "name": f"PASCAL-Person-Part {split}",
                   "description": "Poses (pose.json) and part maps (parts/<voc_id>.png).",
                   "scoring_program": "scoring_program", "reference_data": "reference_data"}],
        "phases": [phase],
        "leaderboards": [{"index": 0, "title": "Results", "key": "main",
                          "submission_rule": "Force_Last", "primary_index": primary,
                          "columns": columns}],
    }
    return "# Codabench competition bundle written by `ppp challenge-bundle`.\n" + \
        _yaml(competition) + "\n"


def _yaml(value, indent: int = 0) -> str:
    """Block-style YAML of dicts, lists, strings, numbers and booleans (strings quoted)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:\n{_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {_yaml(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]"
        lines = []
        for item in value:
            text = _yaml(item, indent + 2)
            lines.append(f"{pad}- {text.lstrip()}" if isinstance(item, dict)
                         else f"{pad}- {text}")
        return "\n".join(lines)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a double-quoted YAML scalar


def _page_fields(dataset, title: str, docker_image: str) -> dict[str, str]:
    rows = "\n".join(f"| {c.title} | `{c.key}` | {'higher' if c.higher_is_better else 'lower'} |"
                     for c in COLUMNS)
    return {"title": title, "split": dataset.split, "images": str(len(dataset)),
            "joints": ", ".join(schema.JOINT_NAMES),
            "parts": ", ".join(f"{p.id} {p.name}" for p in schema.PARTS),
            "columns": rows, "docker_image": docker_image}


def _logo() -> bytes:
    """The joints' colours as 14 bands: a plain logo derived from the schema."""
    bands = np.repeat(np.array([j.colour for j in schema.JOINTS], np.uint8)[None], 14, axis=0)
    image = Image.fromarray(bands).resize((280, 280), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _package_files(prefix: str, package: Traversable) -> dict[str, Traversable]:
    """Every file of the installed package (bytecode caches left out), by bundle path."""
    files = {}
    for entry in package.iterdir():
        if entry.name == "__pycache__" or entry.name.endswith(".pyc"):
            continue
        if entry.is_dir():
            files.update(_package_files(f"{prefix}/{entry.name}", entry))
        else:
            files[f"{prefix}/{entry.name}"] = entry
    return files


def _write(files: dict[str, str | bytes | Path | Traversable], out: Path) -> None:
    """Write ``files`` (bundle path -> content, or a file to copy) as a zip or a directory,
    atomically: nothing appears at ``out`` until every file is written."""
    def content(value) -> bytes:
        if isinstance(value, str):
            return value.encode("utf-8")
        return value if isinstance(value, bytes) else value.read_bytes()

    if out.suffix.lower() == ".zip":
        with atomic.atomic_open(out, "wb") as f, zipfile.ZipFile(f, "w") as archive:
            for name, value in files.items():
                compress = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
                archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)),
                                 content(value), compress_type=compress)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, value in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(content(value))
        staging.chmod(0o777 & ~_umask())
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
