"""From a built wheel in a fresh environment outside the source tree, every command of the
README's command table works (the packaging CI step).

The wheel is built from a copy of what the build reads (pyproject.toml, README.md, the two
packages), so the checkout stays clean. The fresh venv gets the wheel without its
dependencies and sees the dependencies of the interpreter running the tests through a
``.pth`` line: a path added that way is searched after the venv's own site-packages and
its ``.pth`` files (the checkout's editable install) are not run, so every import of our
packages must come from the wheel, which the test checks. Commands run with the working
directory outside the tree and without PYTHONPATH.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from labeler_http import serve_and_fetch

REPO = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "README.md", "pascal_person_pose", "reference_model")

pytestmark = pytest.mark.slow


def _has_build_backend() -> bool:
    """setuptools >= 70.1 (it builds wheels without the `wheel` package), as pyproject asks."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit()) >= (70, 1)


def _build_wheel(tmp: Path) -> Path:
    source = tmp / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    # Build with this interpreter's setuptools when it is recent enough (no download), else
    # let pip fetch the build requirements into an isolated environment.
    isolation = ["--no-build-isolation"] if _has_build_backend() else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", *isolation,
                    "--wheel-dir", str(tmp / "dist"), str(source)], check=True, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("pascal_person_pose-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    own_site = subprocess.run([str(python), "-c", "import sysconfig; "
                               "print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(own_site, "zz_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--no-deps", "--no-index", "--quiet", str(wheel)], check=True)
    return env_dir / "bin"


class _Env:
    """Runs the installed commands in ``cwd`` (outside the checkout), no PYTHONPATH."""

    def __init__(self, bin_dir: Path, cwd: Path):
        self.bin, self.cwd = bin_dir, cwd
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(self.bin / args[0]), *args[1:]], cwd=self.cwd,
                                env=self.env, capture_output=True, text=True, timeout=600)
        if ok:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def python(self, code: str) -> str:
        return self.run("python", "-c", code).stdout


def _mirror(raw: Path, mirror: Path) -> None:
    """The PASCAL-Part and Person-Part archives, in their upstream layouts, from a raw tree."""
    mirror.mkdir()
    with tarfile.open(mirror / "trainval.tar.gz", "w:gz") as tar:
        tar.add(raw / "Annotations_Part", arcname="Annotations_Part")
    with zipfile.ZipFile(mirror / "pascal_person_part.zip", "w") as archive:
        for path in sorted((raw / "pascal_person_part").rglob("*")):
            archive.write(path, path.relative_to(raw).as_posix())


def test_every_readme_command_runs_from_the_wheel(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "pascal_person_pose/sources/manifest.json" in names
    assert "pascal_person_pose/label/static/labeler.html" in names
    work = tmp_path / "work"
    work.mkdir()
    env = _Env(_fresh_venv(tmp_path, wheel), work)
    installed = env.python("import pascal_person_pose, reference_model; "
                           "print(pascal_person_pose.__file__); print(reference_model.__file__)")
    for line in installed.split():
        assert Path(line).is_relative_to(tmp_path / "venv"), installed

    env.run("ppp", "synth", "--out", "raw", "--images", "8", "--width", "96", "--height", "72")
    env.run("ppp", "prepare", "raw", "data", "--workers", "1")
    assert "persons" in env.run("ppp", "info", "data").stdout
    voc_id = env.python("from pascal_person_pose.dataset import Dataset; "
                        "print(Dataset('data', 'val').images[0]['voc_id'])").strip()
    env.run("ppp", "show", "data", voc_id, "--out", "show.png")
    assert (work / "show.png").read_bytes()[:4] == b"\x89PNG"
    env.python("from pascal_person_pose.dataset import Dataset\n"
               "from pascal_person_pose.submission import oracle_submission, write_submission\n"
               "write_submission('sub', *oracle_submission(Dataset('data', 'val')), "
               "{'method': 'Oracle'})")
    env.run("ppp", "validate", "data", "sub")
    (work / "results").mkdir()
    env.run("ppp", "score", "data", "sub", "--json", "scores.json", "--add-to", "results")
    assert json.loads((work / "scores.json").read_text())["parts"]["miou"] == 100.0
    env.run("ppp", "nms", "sub", "nms.zip")
    env.run("ppp", "compare", "data", "sub", "nms.zip", "--resamples", "20")
    env.run("ppp", "analyze", "data", "nms.zip", "--out", "report")
    assert (work / "report" / "report.html").is_file()
    env.run("ppp", "show", "data", voc_id, "--submission", "nms.zip", "--out", "both.png")
    env.run("ppp", "leaderboard", "results", "--out", "board")
    assert (work / "board" / "leaderboard.html").is_file()
    env.run("ppp", "challenge-bundle", "data", "--split", "val", "--out", "bundle.zip")
    assert "pages/evaluation.md" in zipfile.ZipFile(work / "bundle.zip").namelist()

    _mirror(work / "raw", work / "mirror")
    downloaded = env.run("ppp", "download", "fetched", "--mirror", "mirror", "--only",
                         "pascal_part", "--only", "pascal_person_part")
    assert "pascal_part: downloaded" in downloaded.stdout, downloaded.stdout
    assert sorted(p.name for p in (work / "fetched" / "Annotations_Part").iterdir()) == \
        sorted(p.name for p in (work / "raw" / "Annotations_Part").iterdir())
    manual = env.run("ppp", "download", "fetched", "--only", "pose_annotations")
    assert "MANUAL DOWNLOAD NEEDED" in manual.stderr

    env.run("ppp", "label", "propose", "data", "--split", "val")
    checked = env.run("ppp", "label", "check", "data", "--split", "val", ok=False)
    assert checked.returncode in (0, 1) and "Traceback" not in checked.stderr  # 1: findings
    env.run("ppp", "label", "export", "data", "--split", "val", "--out", "val.xml")
    env.run("ppp", "label", "import", "data", "--split", "val", "val.xml")
    page, image = serve_and_fetch([str(env.bin / "ppp")], work, env.env, voc_id)
    assert b"<html" in page.lower() and image[:3] == b"\xff\xd8\xff"
    assert "train" in env.run("ppp-baseline", "--help").stdout
