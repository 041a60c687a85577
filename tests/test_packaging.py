"""The package carries what it reads: every data file is package data, found through
importlib.resources, and pyproject's patterns match real files."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pascal_person_pose.download import MANIFEST_PATH, load_manifest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pascal_person_pose", "reference_model")


def _package_data() -> dict[str, list[str]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["package-data"]


def test_every_package_data_pattern_matches_a_file():
    for package, patterns in _package_data().items():
        for pattern in patterns:
            assert list((REPO / package).glob(pattern)), f"{package}: {pattern} matches nothing"


def test_every_data_file_of_the_packages_is_package_data():
    declared = {path for package, patterns in _package_data().items() for pattern in patterns
                for path in (REPO / package).glob(pattern)}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*"):
            # __pycache__ holds interpreter and numba caches, written at run time
            if (path.is_file() and path.suffix not in (".py", ".pyc")
                    and "__pycache__" not in path.parts):
                assert path in declared, f"{path.relative_to(REPO)} is not package data"


def test_data_files_are_read_through_the_package():
    assert MANIFEST_PATH == resources.files("pascal_person_pose.sources") / "manifest.json"
    assert set(load_manifest()) == {"voc2010", "pascal_part", "pascal_person_part",
                                    "pose_annotations"}
    page = resources.files("pascal_person_pose.label") / "static" / "labeler.html"
    assert page.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html>")
