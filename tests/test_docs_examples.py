"""The Python examples of README.md and docs/frameworks.md run as written, in order, on a
small dataset at ``DATA`` with a submission at ``submission.zip``.

detectron2 is not on PyPI, so its two registration functions are stood in for by a
minimal module that reads the metadata the way detectron2 does (flip indices from the flip
map) and checks the files it is given exist.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.submission import oracle_submission, write_submission

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/frameworks.md")


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"),
                      re.MULTILINE | re.DOTALL)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    write_canonical_dataset(tmp_path / "DATA")
    write_submission(tmp_path / "submission.zip", *oracle_submission(Dataset(tmp_path / "DATA",
                                                                             "val")))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def detectron2_stand_in(monkeypatch):
    catalog: dict[str, types.SimpleNamespace] = {}

    def register_coco_instances(name, metadata, json_file, image_root):
        assert name not in catalog, f"{name} registered twice"
        assert Path(json_file).is_file() and Path(image_root).is_dir()
        names = metadata["keypoint_names"]
        flip_map = dict(metadata["keypoint_flip_map"])
        flip_map.update({v: k for k, v in flip_map.items()})
        flip_indices = [names.index(flip_map.get(n, n)) for n in names]
        catalog[name] = types.SimpleNamespace(**metadata, json_file=json_file,
                                              image_root=image_root,
                                              flip_indices=flip_indices)

    modules = {"detectron2": types.ModuleType("detectron2"),
               "detectron2.data": types.ModuleType("detectron2.data"),
               "detectron2.data.datasets": types.ModuleType("detectron2.data.datasets")}
    modules["detectron2.data"].MetadataCatalog = types.SimpleNamespace(get=catalog.__getitem__)
    modules["detectron2.data.datasets"].register_coco_instances = register_coco_instances
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return catalog


@pytest.mark.parametrize("document", DOCUMENTS)
def test_python_examples_run(document, workdir, detectron2_stand_in, capsys):
    blocks = python_blocks(REPO / document)
    assert blocks, f"{document} has no Python example"
    namespace: dict = {"__name__": "__example__"}
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"{document} example {number}", "exec"), namespace)
        except Exception as error:  # name the example that broke
            raise AssertionError(f"{document} example {number} fails: {error!r}\n{block}")
    if document == "docs/frameworks.md":
        assert detectron2_stand_in["ppp_val"].flip_indices == schema.FLIP_INDEX.tolist()
        assert "('r_shoulder', 'l_shoulder')" in capsys.readouterr().out
        assert tuple(namespace["batch"]["image"].shape[:2]) == (2, 3)


def test_readme_shows_every_framework():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using the data in other frameworks", 1)[1].split("\n## ", 1)[0]
    for needle in ("coco_keypoint_eval", "faster_coco_eval", "mmpose_dataset_info",
                   "detectron2_keypoint_metadata", "collate"):
        assert needle in section, needle
