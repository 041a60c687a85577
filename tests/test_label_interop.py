"""Our interchange files read by libraries nobody on this project wrote.

- datumaro (the dataset layer CVAT itself imports with) reads the CVAT XML export in the
  ``points`` layout with its images beside it, and the COCO Keypoints export folder;
- Label Studio's converter (label_studio_sdk.converter) turns the Label Studio export into
  YOLO keypoints without edits (task and annotation ids, ``model_index``, ``parentID``);
- the standalone label-studio-converter (the ``test`` extra) reads the same file.

datumaro and label-studio-sdk pin versions of OpenCV, pandas and Pillow that conflict with
this project's, so they are installed without their pins (tests/interop-requirements.txt,
done by ``make test``); where they are missing, their tests are skipped saying so.

The Label Studio converters run in their own process, as they do for a user: they import
ijson, whose C backend segfaults on import in a process where pulp has run HiGHS (as the
FCRF tests do in the same pytest worker).
"""

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.label.interchange import export_images, place_images
from pascal_person_pose.label.interchange_coco import export_coco, images_folder
from pascal_person_pose.label.interchange_cvat import export_cvat
from pascal_person_pose.label.interchange_labelstudio import export_labelstudio, label_config
from pascal_person_pose.label.store import AnnotationStore

_INSTALL = ("pip install --no-deps -r tests/interop-requirements.txt (its pins conflict with "
            "ours; make test does it)")
J = {name: k for k, name in enumerate(schema.JOINT_NAMES)}


def needs(module: str, how: str):
    """The module, or the test skipped saying how to install it."""
    return pytest.importorskip(module, reason=f"{module} is not installed: {how}")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """val with an occluded joint and a pending proposal."""
    root = tmp_path_factory.mktemp("interop") / "ds"
    written = write_canonical_dataset(root)
    record = written["images"]["2009_000012"]
    keypoints = record["keypoints"][0].copy()
    keypoints[J["r_elbow"], 2] = 1
    keypoints[J["l_wrist"]] = 0
    proposals = np.zeros((14, 3))
    proposals[J["l_wrist"]] = (40.25, 20.5, 2)
    AnnotationStore(root, "val").update_person(record["annotation_ids"][0], keypoints,
                                               proposals, 0)
    return root


def convert_outside(module: str, how: str, out: Path, calls: str) -> None:
    """Run ``module``'s ``Converter`` on the Label Studio file ``out`` in a new Python
    process; ``calls`` are its conversion calls on ``convert`` (one per line)."""
    if importlib.util.find_spec(module.split(".")[0]) is None:  # not imported here
        pytest.skip(f"{module} is not installed: {how}")
    script = textwrap.dedent(f"""
        from {module} import Converter
        from pascal_person_pose.label.interchange_labelstudio import label_config
        convert = Converter(config=label_config(), project_dir={str(out.parent)!r},
                            download_resources=False)
    """) + textwrap.dedent(calls)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def expected_points(root):
    """{(voc id, annotation id): {joint name: (x, y, occluded, proposed)}} in the tools'
    continuous coordinates, from our own export model."""
    return {(image.voc_id, person.annotation_id): {
        name: (x, y, v == 1, proposed) for _, name, x, y, v, proposed in person.joints()}
        for image in export_images(root, "val") for person in image.persons}


def test_datumaro_reads_the_cvat_points_layout_with_its_images(root, tmp_path):
    dm = needs("datumaro", _INSTALL)
    out = tmp_path / "cvat" / "val.xml"
    export_cvat(root, "val", out, shapes="points")
    place_images(root, "val", out.parent / "images", "link")
    dataset = dm.Dataset.import_from(str(out), "cvat")
    labels = dataset.categories()[dm.AnnotationType.label]
    read = {}
    for item in dataset:
        assert Path(item.media.path) == out.parent / "images" / f"{item.id}.jpg"
        assert item.media.data.shape[:2] == item.media.size  # the image itself is read
        groups: dict = {}
        for annotation in item.annotations:
            groups.setdefault(annotation.group, []).append(annotation)
        for shapes in groups.values():
            box = next(a for a in shapes if isinstance(a, dm.Bbox))
            assert labels[box.label].name == "person"
            read[item.id, int(box.attributes["annotation_id"])] = {
                labels[a.label].name: (*a.points, a.attributes["occluded"],
                                       a.attributes["proposed"])
                for a in shapes if isinstance(a, dm.Points)}
    assert read == expected_points(root)


def test_datumaro_reads_the_coco_keypoints_folder(root, tmp_path):
    dm = needs("datumaro", _INSTALL)
    export_coco(root, "val", tmp_path / "coco")
    place_images(root, "val", images_folder(tmp_path / "coco", "val"), "copy")
    dataset = dm.Dataset.import_from(str(tmp_path / "coco"), "coco_person_keypoints")
    points = dataset.categories()[dm.AnnotationType.points][0]
    assert points.labels == list(schema.JOINT_NAMES)
    assert points.joints == {(a + 1, b + 1) for a, b in schema.SKELETON_INDEX}
    expected = expected_points(root)
    seen = 0
    for item in dataset:
        assert item.media.data is not None
        for shape in (a for a in item.annotations if isinstance(a, dm.Points)):
            labels = {name: value for name, value in expected[item.id, shape.id].items()
                      if not value[3]}  # COCO carries labels only
            xy = np.reshape(shape.points, (-1, 2))
            read = {name: (*xy[j], shape.visibility[j] == dm.Points.Visibility.hidden, False)
                    for j, name in enumerate(schema.JOINT_NAMES)
                    if shape.visibility[j] != dm.Points.Visibility.absent}
            assert read == labels
            seen += 1
    assert seen == 5


def test_label_studio_s_converter_makes_yolo_keypoints_of_our_file(root, tmp_path):
    out = tmp_path / "ls" / "val.json"
    export_labelstudio(root, "val", out)
    convert_outside("label_studio_sdk.converter", _INSTALL, out, f"""
        convert.convert_to_yolo({str(out)!r}, {str(tmp_path / "yolo")!r}, is_dir=False)
    """)
    assert (tmp_path / "yolo" / "classes.txt").read_text().split() == ["person"]
    for image in export_images(root, "val"):
        lines = (tmp_path / "yolo" / "labels" / f"{image.voc_id}.txt").read_text().splitlines()
        assert len(lines) == len(image.persons)
        for line, person in zip(lines, image.persons):
            values = np.array(line.split(), float)
            x, y, w, h = person.bbox
            np.testing.assert_allclose(values[1:5], [(x + w / 2) / image.width,
                                                     (y + h / 2) / image.height,
                                                     w / image.width, h / image.height])
            keypoints = values[5:].reshape(schema.NUM_JOINTS, 3)  # model_index order
            expected = np.zeros((schema.NUM_JOINTS, 3))
            for j, _, jx, jy, _, _ in person.joints():  # the converter knows no visibility
                expected[j] = (jx / image.width, jy / image.height, 2)
            np.testing.assert_allclose(keypoints, expected)


def test_the_standalone_label_studio_converter_reads_our_file(root, tmp_path):
    out = tmp_path / "ls" / "val.json"
    export_labelstudio(root, "val", out)
    convert_outside("label_studio_converter",
                    "pip install 'pascal-person-pose[test]' installs it", out, f"""
        convert.convert_to_json_min({str(out)!r}, {str(tmp_path / "min")!r}, is_dir=False)
        convert.convert_to_coco({str(out)!r}, {str(tmp_path / "coco")!r}, is_dir=False)
    """)
    (minimal,) = (tmp_path / "min").glob("*.json")
    tasks = {t["id"]: t for t in json.loads(minimal.read_text())}
    assert set(tasks) == {image.image_id for image in export_images(root, "val")}
    coco = json.loads((tmp_path / "coco" / "result.json").read_text())
    person = next(c["id"] for c in coco["categories"] if c["name"] == "person")
    boxes = sorted(tuple(a["bbox"]) for a in coco["annotations"] if a["category_id"] == person)
    assert boxes == sorted(tuple(p.bbox.tolist()) for image in export_images(root, "val")
                           for p in image.persons)
