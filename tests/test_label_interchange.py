"""CVAT for images 1.1 XML (skeletons or grouped points), COCO Keypoints for CVAT and Label
Studio JSON: round trips with pending proposals, edits, matching, no-op imports, the images
beside an export, bad files, the CLI's exit codes. (Outside libraries reading our files:
test_label_interop.py.)"""

import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.cli import main
from pascal_person_pose.errors import InputError
from pascal_person_pose.label.interchange import apply_import, read_any
from pascal_person_pose.label.interchange_coco import annotation_file, export_coco
from pascal_person_pose.label.interchange_cvat import export_cvat, read_cvat
from pascal_person_pose.label.interchange_labelstudio import (export_labelstudio, label_config,
                                                              read_labelstudio)
from pascal_person_pose.label.store import PROPOSALS_KEY, AnnotationStore

J = {name: k for k, name in enumerate(schema.JOINT_NAMES)}


def export_cvat_points(root, split, out):
    return export_cvat(root, split, out, shapes="points")


# format -> (export, what to write: a file name or a folder name, carries proposals)
FORMATS = {"cvat": (export_cvat, "x.xml", True),
           "cvat-points": (export_cvat_points, "x.xml", True),
           "coco": (export_coco, "coco", False),
           "labelstudio": (export_labelstudio, "x.json", True)}


def exported(fmt, out, split):
    """The file an export to ``out`` wrote (COCO: the JSON inside the dataset folder)."""
    return annotation_file(out, split) if fmt == "coco" else out


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
    proposals = np.zeros((14, 3))
    proposals[J["l_wrist"]] = (40.25, 20.5, 2)  # a pending proposal, visible
    store = AnnotationStore(root, "val")
    store.update_person(record["annotation_ids"][0], kp, proposals, 0)
    second = record["keypoints"][1].copy()
    proposals = np.zeros((14, 3))
    knee_x, knee_y, _ = second[J["l_knee"]]
    proposals[J["l_ankle"]] = (knee_x + 0.25, knee_y + 0.75, 1)  # an occluded one
    store.update_person(record["annotation_ids"][1], second, proposals, 1)
    return root


def annotations(root, split="val"):
    doc = AnnotationStore(root, split).read()
    return {a["id"]: (a["keypoints"], a["num_keypoints"], a.get(PROPOSALS_KEY))
            for a in doc["annotations"]}


def wipe(root, split="val", proposals=True):
    """Every person unlabelled (and without proposals), so that an import has to bring
    everything back."""
    store = AnnotationStore(root, split)
    with store.edit() as doc:
        for ann in doc["annotations"]:
            ann["keypoints"] = [0.0] * 42
            ann["num_keypoints"] = 0
            if proposals:
                ann.pop(PROPOSALS_KEY, None)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("split", ["train", "val"])
def test_round_trip_keeps_every_joint_visibility_and_proposal(root, tmp_path, fmt, split):
    export, name, carries_proposals = FORMATS[fmt]
    before = annotations(root, split)
    assert any(p is not None for *_, p in before.values()) == (split == "val")
    out = tmp_path / name
    assert export(root, split, out) == len(before)
    path = exported(fmt, out, split)
    wipe(root, split, proposals=carries_proposals)
    summary = apply_import(root, split, read_any(path), path)  # the format told by the file
    assert summary.persons == len(before) and summary.unmatched == []
    assert annotations(root, split) == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_importing_an_unchanged_export_writes_nothing(root, tmp_path, fmt):
    export, name, _ = FORMATS[fmt]
    export(root, "val", tmp_path / name)
    path = exported(fmt, tmp_path / name, "val")
    annotation_path = root / "annotations" / "person_pose_val.json"
    content, stat = annotation_path.read_bytes(), os.stat(annotation_path)
    result = CliRunner().invoke(main, ["label", "import", str(root), "--split", "val",
                                       str(path)])
    assert result.exit_code == 0, result.output
    assert "no change: the 5 matched persons already hold these joints (revision 2, " \
           "nothing written)" in result.output
    after = os.stat(annotation_path)
    assert annotation_path.read_bytes() == content
    assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_pending_proposals_are_marked_as_such(root, tmp_path):
    """CVAT: the `proposed` attribute of the joint's points; Label Studio: the `status`
    choice of the region; COCO: not exported (labels only)."""
    record_ids = AnnotationStore(root, "val").read()["annotations"][0]["id"], None
    export_cvat(root, "val", tmp_path / "x.xml")
    skeleton = ET.parse(tmp_path / "x.xml").getroot().find(
        "image[@name='2009_000012.jpg']/skeleton")
    flags = {p.get("label"): p.find("attribute[@name='proposed']").text
             for p in skeleton.findall("points")}
    assert flags == {name: str(name == "l_wrist").lower() for name in schema.JOINT_NAMES}
    wrist = next(p for p in skeleton.findall("points") if p.get("label") == "l_wrist")
    assert (wrist.get("points"), wrist.get("outside")) == ("40.75,21.0", "0")
    assert record_ids[0] == int(skeleton.find("attribute[@name='annotation_id']").text)

    export_labelstudio(root, "val", tmp_path / "x.json")
    result = json.loads((tmp_path / "x.json").read_text())[0]["annotations"][0]["result"]
    status = [r for r in result if r["type"] == "choices" and r["from_name"] == "status"]
    assert [(r["id"], r["value"]["choices"]) for r in status] == [
        ("person-4-l_wrist", ["proposed"]), ("person-5-l_ankle", ["proposed"])]
    ankle = [r for r in result if r["id"] == "person-5-l_ankle"]
    assert sorted(r["from_name"] for r in ankle) == ["joints", "status", "visibility"]

    export_coco(root, "val", tmp_path / "coco")
    coco = json.loads(annotation_file(tmp_path / "coco", "val").read_text())
    wrist = coco["annotations"][0]["keypoints"][3 * J["l_wrist"]:3 * J["l_wrist"] + 3]
    assert wrist == [0, 0, 0]


def test_confirming_a_proposal_in_cvat_makes_it_a_label(root, tmp_path):
    out = tmp_path / "x.xml"
    export_cvat(root, "val", out, shapes="points")
    tree = ET.parse(out)
    image = tree.getroot().find("image[@name='2009_000012.jpg']")
    wrist = next(p for p in image.findall("points") if p.get("label") == "l_wrist")
    wrist.find("attribute[@name='proposed']").text = "false"  # unticked in CVAT
    tree.write(out)
    summary = apply_import(root, "val", read_cvat(out), out)
    assert (summary.persons, summary.changed) == (5, 1)
    aid = int(image.find("box/attribute[@name='annotation_id']").text)
    keypoints, count, pending = annotations(root)[aid]
    assert keypoints[3 * J["l_wrist"]:3 * J["l_wrist"] + 3] == [40.25, 20.5, 2.0]
    assert pending is None and count == 14


def test_cvat_points_layout_is_flat_and_grouped(root, tmp_path):
    export_cvat(root, "val", tmp_path / "x.xml", shapes="points")
    document = ET.parse(tmp_path / "x.xml").getroot()
    labels = document.findall("meta/task/labels/label")
    assert [(lb.find("name").text, lb.find("type").text) for lb in labels[:2]] == [
        ("person", "rectangle"), ("forehead", "points")]
    assert all(lb.find("parent") is None for lb in labels)
    image = document.find("image[@name='2009_000012.jpg']")
    assert [b.get("group_id") for b in image.findall("box")] == ["1", "2", "3"]
    first = [p for p in image.findall("points") if p.get("group_id") == "1"]
    assert len(first) == 14  # 13 labels and the l_wrist proposal
    assert [p.get("label") for p in first
            if p.find("attribute[@name='proposed']").text == "true"] == ["l_wrist"]
    assert not image.findall("skeleton")
    unlabelled = document.find("image[@name='2010_000005.jpg']")  # no joint labelled: no point
    assert len(unlabelled.findall("box")) == 2 and not unlabelled.findall("points")


def test_coco_export_is_what_cvat_reads(root, tmp_path):
    export_coco(root, "val", tmp_path / "coco")
    coco = json.loads((tmp_path / "coco/annotations/person_keypoints_val.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["person"]
    assert coco["categories"][0]["keypoints"] == list(schema.JOINT_NAMES)
    assert coco["categories"][0]["skeleton"] == [[a + 1, b + 1] for a, b in
                                                 schema.SKELETON_INDEX]
    elbow = coco["annotations"][0]["keypoints"][3 * J["r_elbow"]:3 * J["r_elbow"] + 3]
    assert elbow == [10.625, 30.833, 1]  # CVAT's continuous coordinates
    assert all(a["segmentation"] == [] and a["iscrowd"] == 0 for a in coco["annotations"])
    assert {im["file_name"] for im in coco["images"]} == {
        "2009_000012.jpg", "2010_000001.jpg", "2010_000005.jpg"}


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
    unlabelled = document.find("image[@name='2010_000005.jpg']/skeleton")
    assert {p.get("outside") for p in unlabelled.findall("points")} == {"1"}


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
    unlabelled = next(t for t in tasks if t["data"]["voc_id"] == "2010_000005")
    assert {r["type"] for r in unlabelled["annotations"][0]["result"]} == {"rectanglelabels"}
    # what Label Studio's converter needs: task and annotation ids, model_index
    assert [(t["id"], t["annotations"][0]["id"]) for t in tasks] == [
        (t["data"]["image_id"], t["data"]["image_id"]) for t in tasks]
    config = ET.fromstring((tmp_path / "x.label_config.xml").read_text())
    assert [(lb.get("value"), lb.get("model_index"))
            for lb in config.findall("KeyPointLabels/Label")] == [
        (name, str(k)) for k, name in enumerate(schema.JOINT_NAMES)]
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
    keypoints, *_ = annotations(root)[aid]
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
    keypoints, *_ = annotations(root)[int(person.split("-")[1])]
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


def drawn_elsewhere(out, keep_ids=()):
    """The CVAT points export at ``out`` with every person box but those of ``keep_ids``
    stripped of its id and moved to the image's corner, where no person is."""
    tree = ET.parse(out)
    for box in tree.getroot().iter("box"):
        attribute = box.find("attribute")
        if int(attribute.text) in keep_ids:
            continue
        box.remove(attribute)
        for key, value in (("xtl", "0"), ("ytl", "0"), ("xbr", "1"), ("ybr", "1")):
            box.set(key, value)
    tree.write(out)


def test_an_import_that_matches_nothing_names_each_element_and_exits_2(root, tmp_path):
    out = tmp_path / "x.xml"
    export_cvat(root, "val", out, shapes="points")
    drawn_elsewhere(out)
    path = root / "annotations" / "person_pose_val.json"
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["label", "import", str(root), "--split", "val", str(out)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[:5] == [f"warning: {out}: image {name}, group {g} matches no person of the val "
                         "split; skipped" for name, g in (("2009_000012.jpg", 1),
                                                          ("2009_000012.jpg", 2),
                                                          ("2009_000012.jpg", 3),
                                                          ("2010_000005.jpg", 1),
                                                          ("2010_000005.jpg", 2))]
    assert lines[5:] == [f"error: {out}: matched no person of the val split (5 unmatched, "
                         "nothing written)"]
    assert path.read_bytes() == before


def test_a_partial_match_names_what_it_skipped(root, tmp_path):
    out = tmp_path / "x.xml"
    export_cvat(root, "val", out, shapes="points")
    ids = [a["id"] for a in AnnotationStore(root, "val").read()["annotations"]]
    drawn_elsewhere(out, keep_ids=ids[1:])
    result = CliRunner().invoke(main, ["label", "import", str(root), "--split", "val", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr == (f"warning: {out}: image 2009_000012.jpg, group 1 matches no "
                             "person of the val split; skipped\n")
    assert result.stdout.startswith("no change: the 4 matched persons")


@pytest.mark.parametrize("fmt, out, folder", [
    ("cvat", "export/val.xml", "export/images"),
    ("coco", "export", "export/images/val"),
    ("labelstudio", "export/val.json", "export/images")])
@pytest.mark.parametrize("mode", ["link", "copy"])
def test_the_images_go_where_the_tools_look(root, tmp_path, fmt, out, folder, mode):
    result = CliRunner().invoke(main, ["label", "export", str(root), "--split", "val", "--out",
                                       str(tmp_path / out), "--format", fmt, "--images", mode])
    assert result.exit_code == 0, result.output
    done = {"link": "linked", "copy": "copied"}[mode]
    assert f"{done} 3 images into {tmp_path / folder}" in result.output
    for voc_id in ("2009_000012", "2010_000001", "2010_000005"):
        placed = tmp_path / folder / f"{voc_id}.jpg"
        assert placed.is_symlink() == (mode == "link")
        assert placed.read_bytes() == (root / "images" / f"{voc_id}.jpg").read_bytes()
