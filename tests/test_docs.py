"""The repository stands on its own: nothing points to the team's notes outside it, and
docs/README.md indexes every page of docs/."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTES = "DES" + "IGN"  # the team's design note, which is not part of the repository


def _repository_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    files = []
    for name in listed.splitlines():
        path = REPO / name
        if path.is_file() and b"\0" not in path.read_bytes()[:4096]:
            files.append(path)
    return files


def test_nothing_refers_to_files_outside_the_repository():
    offenders = []
    for path in _repository_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            outside = ("../shared" in line or "shared/upstream" in line) and \
                path.relative_to(REPO).parts[0] != "tests"  # tests may read the samples
            if re.search(rf"\b{NOTES}\b", line) or outside:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_docs_index_lists_every_page():
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", index))
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"README.md"}
    assert pages <= linked, f"not in docs/README.md: {sorted(pages - linked)}"
