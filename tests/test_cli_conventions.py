"""What every command follows: absolute paths resolved at the boundary (relative paths work
everywhere, the labeler included), progress bars only on a terminal and never after
--quiet, whole-sentence command summaries, and ppp-baseline's one-line errors when the
model extra is missing."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from canonical_fixture import write_canonical_dataset
from labeler_http import serve_and_fetch
from pascal_person_pose.cli import main as ppp
from pascal_person_pose.cli.conventions import AbsolutePath, path_or_url, summary
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.submission import oracle_submission, write_submission
from reference_model.cli import main as ppp_baseline

REPO = Path(__file__).resolve().parents[1]
# Parameter names that always hold a path; a new command's `--out` typed as a plain string
# (resolved later against who knows what) fails here.
PATH_NAMES = {"raw", "out", "root", "data", "submission", "results", "file", "json_out",
              "add_to", "manifest", "checkpoint", "imagenet_resnet", "imagenet_vgg", "mirror"}


def _commands(group: click.Group, prefix: str):
    for name, command in group.commands.items():
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")


ALL_COMMANDS = [*_commands(ppp, "ppp"), *_commands(ppp_baseline, "ppp-baseline")]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}


@pytest.mark.parametrize("name,command", ALL_COMMANDS, ids=[n for n, _ in ALL_COMMANDS])
def test_every_path_parameter_is_resolved_at_the_boundary(name, command):
    for param in command.params:
        if isinstance(param.type, click.Path):
            assert isinstance(param.type, AbsolutePath), f"{name} {param.name}"
        elif param.name in PATH_NAMES:
            assert param.callback is path_or_url, f"{name} {param.name} is not a path type"


def test_absolute_path_collapses_dots_and_keeps_links(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    path_type = AbsolutePath(exists=True)
    assert path_type.convert("link/../link", None, None) == tmp_path / "link"
    assert path_or_url(None, None, "mirror") == str(tmp_path / "mirror")
    assert path_or_url(None, None, "https://example.org/x/") == "https://example.org/x/"
    assert path_or_url(None, None, None) is None


@pytest.fixture(scope="module")
def relative_tree(tmp_path_factory):
    """A synthetic raw tree, its canonical dataset and a perfect submission, all under one
    working directory and named relative to it."""
    cwd = tmp_path_factory.mktemp("cwd")
    runner = CliRunner()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        for args in (["synth", "--out", "raw", "--images", "6", "--width", "96",
                      "--height", "72", "--seed", "3"],
                     ["prepare", "raw", "data", "--workers", "1"]):
            result = runner.invoke(ppp, args)
            assert result.exit_code == 0, result.output
    finally:
        os.chdir(previous)
    poses, parts = oracle_submission(Dataset(cwd / "data", "val"))
    write_submission(cwd / "sub", poses, parts, {"method": "Oracle"})
    return cwd


def test_relative_paths_work_for_every_data_and_benchmark_command(relative_tree, monkeypatch):
    monkeypatch.chdir(relative_tree)
    runner = CliRunner()
    voc_id = Dataset(relative_tree / "data", "val").images[0]["voc_id"]
    (relative_tree / "results").mkdir(exist_ok=True)
    for args in (["info", "data", "--json", "stats.json"],
                 ["show", "data", voc_id, "--out", "show.png"],
                 ["validate", "data", "sub"],
                 ["score", "data", "sub", "--json", "scores.json", "--add-to", "results"],
                 ["nms", "sub", "nms.zip"],
                 ["leaderboard", "results", "--out", "board"],
                 ["label", "check", "data", "--split", "val", "--json", "qa.json"],
                 ["label", "export", "data", "--split", "val", "--out", "val.xml"]):
        result = runner.invoke(ppp, args)
        assert result.exit_code == 0, (args, result.output)
    for written in ("stats.json", "show.png", "scores.json", "nms.zip", "board/leaderboard.md",
                    "qa.json", "val.xml"):
        assert (relative_tree / written).is_file(), written
    assert json.loads((relative_tree / "scores.json").read_text())["parts"]["miou"] == 100.0


def test_label_serve_answers_images_of_a_relative_root(relative_tree):
    """The README's form `ppp label serve DATA`: every image was a 500 when DATA was
    relative (Flask resolved it against the package folder)."""
    voc_id = Dataset(relative_tree / "data", "val").images[0]["voc_id"]
    page, image = serve_and_fetch([sys.executable, "-m", "pascal_person_pose"], relative_tree,
                                  _env(), voc_id)
    assert b"<html" in page.lower()
    assert image[:3] == b"\xff\xd8\xff"  # a JPEG


def _stderr_on_terminal(args: list[str], cwd: Path) -> str:
    """Run ``ppp ARGS`` with stderr on a pseudo-terminal (stdout a pipe); what stderr got."""
    main_fd, terminal_fd = pty.openpty()
    fcntl.ioctl(terminal_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "pascal_person_pose", *args], cwd=cwd,
                               env=_env(), stdout=subprocess.PIPE, stderr=terminal_fd)
    os.close(terminal_fd)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    process.stdout.read()
    assert process.wait(timeout=60) == 0
    return b"".join(chunks).decode(errors="replace")


def test_progress_bars_on_a_terminal_only_and_never_after_quiet(tmp_path):
    synth = ["synth", "--images", "3", "--width", "64", "--height", "48"]
    shown = _stderr_on_terminal([*synth, "--out", "a"], tmp_path)
    assert re.search(r"synth: 100%\|.*\| 3/3", shown), shown
    assert _stderr_on_terminal(["--quiet", *synth, "--out", "b"], tmp_path) == ""
    assert _stderr_on_terminal([*synth, "--out", "c", "--quiet"], tmp_path) == ""
    piped = subprocess.run([sys.executable, "-m", "pascal_person_pose", *synth, "--out", "d"],
                           cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stderr == ""


def test_bars_of_a_scoring_run_on_a_terminal(relative_tree):
    shown = _stderr_on_terminal(["score", "data", "sub"], relative_tree)
    assert re.search(r"score parts: 100%\|.*\| 3/3", shown), shown


# Commands that can take over ~2 s on the real data: each draws a bar and takes --quiet.
LONG_COMMANDS = ("ppp synth", "ppp prepare", "ppp download", "ppp info", "ppp validate",
                 "ppp score", "ppp compare", "ppp analyze", "ppp leaderboard",
                 "ppp challenge-bundle", "ppp label propose",
                 "ppp label check", "ppp-baseline train", "ppp-baseline predict",
                 "ppp-baseline trivial")


def test_every_long_command_takes_quiet():
    commands = dict(ALL_COMMANDS)
    for name in LONG_COMMANDS:
        assert any("--quiet" in param.opts for param in commands[name].params), name


def _listed_summaries(help_text: str) -> dict[str, str]:
    """Commands section of a group's --help: name -> summary with its wrapped lines joined."""
    listed: dict[str, str] = {}
    name = None
    for line in help_text.split("Commands:\n", 1)[1].splitlines():
        if re.match(r"^  \S", line):
            name, _, text = line.strip().partition(" ")
            listed[name] = text.strip()
        elif line.strip() and name:
            listed[name] += " " + line.strip()
    return listed


GROUPS = [(["ppp"], ppp), (["ppp", "label"], ppp.commands["label"]),
          (["ppp-baseline"], ppp_baseline)]


@pytest.mark.parametrize("words,group", GROUPS, ids=[" ".join(w) for w, _ in GROUPS])
def test_help_lists_whole_sentences(words, group):
    result = CliRunner().invoke(ppp if words[0] == "ppp" else ppp_baseline,
                                [*words[1:], "--help"], terminal_width=80)
    assert result.exit_code == 0
    listed = _listed_summaries(result.output)
    assert set(listed) == set(group.commands)
    for name, text in listed.items():
        assert text == summary(group.commands[name]), name
        assert text.endswith(".") and not text.endswith("..."), (name, text)
    if words == ["ppp"]:
        assert listed["nms"].startswith("Pose NMS (paper Sec. 4.1)")


# Hides the model extra from the interpreter, as a venv without it would.
_BLOCK_MODEL_EXTRA = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"torch", "pulp", "highspy", "safetensors", "numba"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
from reference_model.cli import main
main(sys.argv[1:], prog_name="ppp-baseline")
"""


def _baseline_without_model_extra(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCK_MODEL_EXTRA, *args], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=120)


def test_baseline_without_the_model_extra_says_what_to_install(tmp_path):
    write_canonical_dataset(tmp_path / "data")
    assert _baseline_without_model_extra(["--help"], tmp_path).returncode == 0
    for args in (["train", "--data", "data", "--out", "run"],
                 ["trivial", "--data", "data", "--out", "sub", "--gt-boxes"]):
        result = _baseline_without_model_extra(args, tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr == ("error: ppp-baseline needs the model extra (torch is not "
                                 "installed): pip install 'pascal-person-pose[model]'\n")


def test_trivial_checks_its_options_before_importing_torch(tmp_path):
    (tmp_path / "data").mkdir()
    result = _baseline_without_model_extra(["trivial", "--data", "data", "--out", "sub"],
                                           tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("error: give exactly one of --checkpoint (detector boxes) and "
                             "--gt-boxes\n")
    help_text = CliRunner().invoke(ppp_baseline, ["trivial", "--help"]).output
    assert "Exactly one of --checkpoint" in " ".join(help_text.split())
