"""CVAT for images 1.1 XML and Label Studio JSON: round trips, edits, matching, bad files."""

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.cli import main
from pascal_person_pose.errors import InputError
from pascal_person_pose.label.interchange import apply_import
from pascal_person_pose.label.interchange_cvat import export_cvat, read_cvat
from pascal_person_pose.label.interchange_labelstudio import (export_labelstudio, label_config,
                                                              read_labelstudio)
from pascal_person_pose.label.store import AnnotationStore

J = {name: k for k, name in enumerate(schema.JOINT_NAMES)}
FORMATS = {"cvat": (export_cvat, read_cvat, "x.xml"),
           "labelstudio": (export_labelstudio, read_labelstudio, "x.json")}


@pytest.fixture
def root(tmp_path):
    """The fixture with every visibility present in val: occluded, visible, unlabelled, and
    coordinates with three decimals."""
    root = tmp_path / "ds"
    written = write_canonical_dataset(root)
    record = written["images"]["2009_000012"]
    kp = record["keypoints"][0].copy()
    kp[J["r_elbow"]] = (10.125, 30.333, 1)
    kp[J["l_wrist"]] = 0
    store = AnnotationStore(root, "val")
    store.update_person(record["annotation_ids"][0], kp, None, 0)
    return root


def annotations(root, split="val"):
    doc = AnnotationStore(root, split).read()
    return {a["id"]: (a["keypoints"], a["num_keypoints"]) for a in doc["annotations"]}


def wipe(root, split="val"):
    """Every person unlabelled, so that an import has to bring everything back."""
    store = AnnotationStore(root, split)
    with store.edit() as doc:
        for ann in doc["annotations"]:
            ann["keypoints"] = [0.0] * 42
            ann["num_keypoints"] = 0


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("split", ["train", "val"])
def test_round_trip_keeps_every_joint_and_visibility(root, tmp_path, fmt, split):
    export, read, name = FORMATS[fmt]
    before = annotations(root, split)
    out = tmp_path / name
    assert export(root, split, out) == len(before)
    wipe(root, split)
    summary = apply_import(root, split, read(out), out)
    assert summary.persons == len(before) and summary.unmatched == []
    assert annotations(root, split) == before


def test_cvat_xml_has_the_skeleton_layout(root, tmp_path):
    export_cvat(root, "val", tmp_path / "x.xml")
    document = ET.parse(tmp_path / "x.xml").getroot()
    assert document.find("version").text == "1.1"
    labels = document.findall("meta/task/labels/label")
    assert [(lb.find("name").text, lb.find("type").text) for lb in labels[:2]] == [
        ("person", "skeleton"), ("forehead", "points")]
    assert all(lb.find("parent").text == "person" for lb in labels[1:])
    assert len(labels) == 15
    skeleton = document.find("image[@name='2009_000012.jpg']/skeleton")
    points = {p.get("label"): p for p in skeleton.findall("points")}
    assert len(points) == 14
    assert {k: points["r_elbow"].get(k) for k in ("occluded", "outside", "points")} == {
        "occluded": "1", "outside": "0", "points": "10.625,30.833"}
    assert points["l_wrist"].get("outside") == "1"


def test_labelstudio_tasks_use_percent_and_group_by_rectangle(root, tmp_path):
    export_labelstudio(root, "val", tmp_path / "x.json", image_url="http://host/img/")
    tasks = json.loads((tmp_path / "x.json").read_text())
    task = next(t for t in tasks if t["data"]["voc_id"] == "2009_000012")
    assert task["data"]["image"] == "http://host/img/2009_000012.jpg"
    result = task["annotations"][0]["result"]
    rectangles = [r for r in result if r["type"] == "rectanglelabels"]
    assert len(rectangles) == 3
    elbow = next(r for r in result if r["type"] == "keypointlabels"
                 and r["value"]["keypointlabels"] == ["r_elbow"]
                 and r["parentID"] == rectangles[0]["id"])
    assert elbow["value"]["x"] == pytest.approx(100 * 10.625 / 96)
    assert elbow["value"]["y"] == pytest.approx(100 * 30.833 / 72)
    occluded = [r for r in result if r["type"] == "choices"]
    assert any(r["id"] == elbow["id"] and r["value"]["choices"] == ["occluded"] for r in occluded)
    assert not any(r.get("value", {}).get("keypointlabels") == ["l_wrist"]
                   and r["parentID"] == rectangles[0]["id"] for r in result)
    config = ET.fromstring((tmp_path / "x.label_config.xml").read_text())
    assert [lb.get("value") for lb in config.findall("KeyPointLabels/Label")] == list(
        schema.JOINT_NAMES)
    assert (tmp_path / "x.label_config.xml").read_text() == label_config()


def test_an_edit_in_cvat_comes_back(root, tmp_path):
    out = tmp_path / "x.xml"
    export_cvat(root, "val", out)
    tree = ET.parse(out)
    skeleton = tree.getroot().find("image[@name='2009_000012.jpg']/skeleton")
    point = next(p for p in skeleton.findall("points") if p.get("label") == "l_knee")
    point.set("points", "40.5,50.25")
    point.set("occluded", "1")
    tree.write(out)
    aid = int(skeleton.find("attribute").text)
    apply_import(root, "val", read_cvat(out), out)
    keypoints, _ = annotations(root)[aid]
    assert keypoints[3 * J["l_knee"]:3 * J["l_knee"] + 3] == [40.0, 49.75, 1.0]


def test_an_edit_in_labelstudio_comes_back(root, tmp_path):
    out = tmp_path / "x.json"
    export_labelstudio(root, "val", out)
    tasks = json.loads(out.read_text())
    result = next(t for t in tasks if t["data"]["voc_id"] == "2009_000012")["annotations"][0][
        "result"]
    person = result[0]["id"]
    knee = next(r for r in result if r.get("parentID") == person
                and r["value"]["keypointlabels"] == ["l_knee"])
    knee["value"]["x"], knee["value"]["y"] = 50.0, 25.0
    result.append({"id": knee["id"], "type": "choices", "from_name": "visibility",
                   "to_name": "image", "value": {"choices": ["occluded"]}})
    out.write_text(json.dumps(tasks))
    apply_import(root, "val", read_labelstudio(out), out)
    keypoints, _ = annotations(root)[int(person.split("-")[1])]
    assert keypoints[3 * J["l_knee"]:3 * J["l_knee"] + 3] == [47.5, 17.5, 1.0]


def test_persons_without_ids_are_matched_by_their_box(root, tmp_path):
    """Skeletons and rectangles made in the tools carry no annotation id."""
    before = annotations(root, "train")
    out = tmp_path / "x.xml"
    export_cvat(root, "train", out)
    tree = ET.parse(out)
    for skeleton in tree.getroot().iter("skeleton"):
        skeleton.remove(skeleton.find("attribute"))
    tree.write(out)
    wipe(root, "train")
    assert apply_import(root, "train", read_cvat(out), out).unmatched == []
    assert annotations(root, "train") == before

    before = annotations(root, "val")
    out = tmp_path / "x.json"
    export_labelstudio(root, "val", out)
    tasks = json.loads(out.read_text())
    for task in tasks:
        for r, item in enumerate(task["annotations"][0]["result"]):
            if item["type"] == "rectanglelabels":
                item["id"] = f"drawn{r}"
            item.pop("parentID", None)  # keypoints grouped by the rectangle around them
    out.write_text(json.dumps(tasks))
    wipe(root, "val")
    apply_import(root, "val", read_labelstudio(out), out)
    assert annotations(root, "val") == before


def cvat_with(tmp_path, change):
    """A CVAT export of the val split with one element changed by ``change(root element)``."""
    root = tmp_path / "ds"
    out = tmp_path / "bad.xml"
    export_cvat(root, "val", out)
    tree = ET.parse(out)
    change(tree.getroot())
    tree.write(out)
    return out


def first_points(document, label="r_elbow"):
    skeleton = document.find("image[@name='2009_000012.jpg']/skeleton")
    return next(p for p in skeleton.findall("points") if p.get("label") == label)


@pytest.mark.parametrize("change, message, element", [
    (lambda d: first_points(d).set("points", "12;x"), "must be 'x,y'",
     "image 2009_000012.jpg, skeleton 1, points r_elbow"),
    (lambda d: first_points(d).set("label", "nose"), "unknown joint 'nose'",
     "image 2009_000012.jpg, skeleton 1, points nose"),
    (lambda d: first_points(d).set("outside", "2"), "must be 0 or 1",
     "image 2009_000012.jpg, skeleton 1, points r_elbow"),
    (lambda d: first_points(d, "forehead").set("points", "500.5,10.5"),
     "joint forehead lies outside the 96x72 image", "image 2009_000012.jpg, skeleton 1"),
    (lambda d: d.find("image[@name='2009_000012.jpg']").set("name", "2009_999999.jpg"),
     "not in the val split", "image 2009_999999.jpg"),
    (lambda d: d.find("image[@name='2009_000012.jpg']/skeleton/attribute").__setattr__(
        "text", "x1"), "must be an integer", "image 2009_000012.jpg, skeleton 1"),
    (lambda d: d.find("image[@name='2009_000012.jpg']/skeleton/attribute").__setattr__(
        "text", "9999"), "annotation 9999 is not a person", "image 2009_000012.jpg, skeleton 1"),
    (lambda d: d.find("image[@name='2009_000012.jpg']").append(
        d.find("image[@name='2009_000012.jpg']/skeleton")), "appears twice",
     "image 2009_000012.jpg, skeleton 4"),
])
def test_a_malformed_cvat_file_names_the_element(root, tmp_path, change, message, element):
    out = cvat_with(tmp_path, change)
    before = out.parent.joinpath("ds/annotations/person_pose_val.json").read_bytes()
    with pytest.raises(InputError, match=message) as error:
        apply_import(root, "val", read_cvat(out), out)
    text = str(error.value)
    assert "\n" not in text and str(out) in text and element in text
    assert out.parent.joinpath("ds/annotations/person_pose_val.json").read_bytes() == before


@pytest.mark.parametrize("content, message", [
    ("<annotations><image", "not well-formed XML"),
    ("<tasks/>", "expected <annotations>"),
])
def test_a_broken_xml_file_is_one_line(tmp_path, content, message):
    out = tmp_path / "bad.xml"
    out.write_text(content)
    with pytest.raises(InputError, match=message):
        read_cvat(out)


def labelstudio_with(tmp_path, change):
    out = tmp_path / "bad.json"
    export_labelstudio(tmp_path / "ds", "val", out)
    tasks = json.loads(out.read_text())
    change(tasks[0]["annotations"][0]["result"], tasks)
    out.write_text(json.dumps(tasks))
    return out


def keypoint(result, name="r_elbow"):
    return next(r for r in result if r["type"] == "keypointlabels"
                and r["value"]["keypointlabels"] == [name])


@pytest.mark.parametrize("change, message, element", [
    (lambda r, t: keypoint(r)["value"].__setitem__("keypointlabels", ["nose"]),
     "unknown joint 'nose'", "task 1 (2009_000012), result"),
    (lambda r, t: keypoint(r)["value"].__setitem__("x", "12"), "must be a number",
     "task 1 (2009_000012), result"),
    (lambda r, t: keypoint(r).__delitem__("value"), "missing or not an object",
     "task 1 (2009_000012), result"),
    (lambda r, t: keypoint(r).__setitem__("parentID", "ghost"), "no person rectangle with id",
     "task 1 (2009_000012), result"),
    (lambda r, t: (keypoint(r).pop("parentID"), keypoint(r)["value"].update(x=99.5, y=1.0)),
     "lies in no person rectangle", "task 1 (2009_000012), result"),
    (lambda r, t: t[0].__setitem__("data", "2009_000012.jpg"), "missing or not an object",
     "task 1"),
])
def test_a_malformed_labelstudio_file_names_the_element(root, tmp_path, change, message,
                                                         element):
    out = labelstudio_with(tmp_path, change)
    with pytest.raises(InputError, match=message) as error:
        apply_import(root, "val", read_labelstudio(out), out)
    text = str(error.value)
    assert "\n" not in text and str(out) in text and element in text


def test_ppp_label_export_and_import(root, tmp_path):
    runner = CliRunner()
    before = annotations(root)
    for name in ("x.xml", "x.json"):
        out = tmp_path / name
        result = runner.invoke(main, ["label", "export", str(root), "--split", "val",
                                      "--out", str(out)])
        assert result.exit_code == 0 and f"wrote {len(before)} persons" in result.output
        wipe(root)
        result = runner.invoke(main, ["label", "import", str(root), "--split", "val", str(out)])
        assert result.exit_code == 0, result.output
        assert annotations(root) == before
    assert (tmp_path / "x.label_config.xml").exists()


def test_ppp_label_import_of_a_bad_file_is_one_line_and_exit_2(root, tmp_path):
    out = cvat_with(tmp_path, lambda d: first_points(d).set("points", "12;x"))
    result = CliRunner().invoke(main, ["label", "import", str(root), "--split", "val", str(out)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "points r_elbow" in result.output
    other = tmp_path / "x.csv"
    other.write_text("")
    result = CliRunner().invoke(main, ["label", "import", str(root), "--split", "val",
                                       str(other)])
    assert result.exit_code == 2 and "pass --format" in result.output
