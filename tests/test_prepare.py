"""`ppp prepare`: raw upstream files written by the sources writers -> exactly the expected
canonical files; pose matching, fallbacks, errors, resume and parallel determinism."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from pascal_person_pose import layout, schema
from pascal_person_pose.cli import main
from pascal_person_pose.errors import InputError
from pascal_person_pose.prepare import match_poses, prepare
from pascal_person_pose.sources import pascal_part, person_part, pose_mat, voc

UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "upstream-samples" / "pascal-part"
PART = {p.name: p.id for p in schema.PARTS}

# Fine parts of a fixture person, as (name, rows, cols) fractions of its box; later parts
# are painted over earlier ones, as in the PASCAL-Part devkit.
_BODY = (("hair", (0.0, 0.1), (0.2, 0.8)), ("head", (0.0, 0.2), (0.3, 0.7)),
         ("neck", (0.2, 0.25), (0.4, 0.6)), ("torso", (0.25, 0.55), (0.2, 0.8)),
         ("ruarm", (0.25, 0.4), (0.0, 0.2)), ("rlarm", (0.4, 0.55), (0.0, 0.2)),
         ("lhand", (0.4, 0.55), (0.8, 1.0)), ("luleg", (0.55, 0.75), (0.2, 0.5)),
         ("rlleg", (0.75, 1.0), (0.5, 0.8)), ("lfoot", (0.9, 1.0), (0.2, 0.5)))


def _person(shape, box, with_parts=True):
    """A person object: its silhouette is the box minus the bottom-left corner."""
    x1, y1, x2, y2 = box
    mask = np.zeros(shape, bool)
    mask[y1:y2 + 1, x1:x2 + 1] = True
    mask[y2 - 1:y2 + 1, x1:x1 + 2] = False  # not a full rectangle
    h, w = y2 - y1 + 1, x2 - x1 + 1
    parts = []
    for name, (r0, r1), (c0, c1) in _BODY if with_parts else ():
        m = np.zeros(shape, bool)
        m[y1 + int(r0 * h):y1 + max(int(r1 * h), int(r0 * h) + 1),
          x1 + int(c0 * w):x1 + max(int(c1 * w), int(c0 * w) + 1)] = True
        parts.append((name, m & mask))
    return pascal_part.PartObject("person", 15, mask, parts)


def _expected_parts(objects, shape, neck_in_head=False):
    """Independent re-statement of the merge rule: parts in file order inside each person,
    persons in file order, each painting its whole silhouette."""
    ids = dict(schema.FINE_PART_TO_ID, **({"neck": PART["head"]} if neck_in_head else {}))
    out = np.zeros(shape, np.uint8)
    for obj in objects:
        if obj.class_name != "person":
            continue
        own = np.zeros(shape, np.uint8)
        for name, m in obj.parts:
            own[m] = ids[name]
        out[obj.mask] = own[obj.mask]
    return out


def _keypoints(rng, box, unlabelled=()):
    """COCO-convention keypoints inside ``box`` with integer coordinates."""
    x1, y1, x2, y2 = box
    kp = np.zeros((14, 3), np.float32)
    kp[:, 0] = rng.integers(x1, x2 + 1, 14)
    kp[:, 1] = rng.integers(y1, y2 + 1, 14)
    kp[:, 2] = rng.integers(1, 3, 14)
    kp[list(unlabelled)] = 0
    return kp


def write_raw_fixture(raw: Path) -> dict:
    """A raw tree of four images covering the cases of `prepare`; returns what it wrote.

    - 2008_000001 (train): two overlapping persons and a dog; palette PNG that differs from
      the fine parts on 5 pixels and has 6 ignore pixels; the pose file lists the persons in
      reverse order.
    - 2008_000002 (train): one person; grayscale-colour PNG; the pose file has an extra
      person far from every instance (unmatched).
    - 2009_000003 (val): one person, raw-id PNG, no pose file.
    - 2010_000004 (val): three persons (one without fine parts), no PNG (fine parts are the
      fallback); the pose file has poses for persons 3 and 1 only.
    """
    rng = np.random.default_rng(7)
    rl = layout.RawLayout(raw)
    spec = {
        "2008_000001": ("train", (64, 48), [(5, 4, 30, 40), (20, 8, 50, 46)], "palette",
                        [1, 0], [()] * 2),
        "2008_000002": ("train", (40, 56), [(8, 6, 30, 50)], "gray", [0, None],
                        [(3, 4)]),
        "2009_000003": ("val", (48, 40), [(10, 5, 40, 38)], "raw", None, [()]),
        "2010_000004": ("val", (72, 48), [(2, 2, 20, 40), (24, 2, 44, 44), (50, 10, 69, 47)],
                        None, [2, 0], [(), (), (0, 13)]),
    }
    written = {"splits": {"train": [], "val": []}, "images": {}}
    for voc_id, (split, (w, h), boxes, png, pose_order, unlabelled) in spec.items():
        shape = (h, w)
        objects = [_person(shape, b, with_parts=not (voc_id == "2010_000004" and i == 1))
                   for i, b in enumerate(boxes)]
        if voc_id == "2008_000001":
            dog = np.zeros(shape, bool)
            dog[40:46, 52:62] = True
            objects.insert(1, pascal_part.PartObject("dog", 12, dog, [("head", dog)]))
        pascal_part.write_anno(rl.part_mat(voc_id), voc_id, objects)
        voc.write_jpeg(rl.jpeg(voc_id), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        persons = [o for o in objects if o.class_name == "person"]
        fine = _expected_parts(objects, shape)
        labels = fine.copy()
        if voc_id == "2008_000001":
            labels[0, :5] = (labels[0, :5] + 1) % schema.NUM_PARTS  # 5 differing pixels
            labels[47, 58:64] = schema.IGNORE_LABEL
        if png:
            person_part.write_label_png(rl.label_png(voc_id), labels, encoding=png)
        instances = np.zeros(shape, np.uint8)
        for k, p in enumerate(persons, start=1):
            instances[p.mask] = k
        keypoints = np.stack([_keypoints(rng, b, u) for b, u in zip(boxes, unlabelled)])
        expected_kp = np.zeros_like(keypoints)
        if pose_order is not None:
            file_kp, file_boxes = [], []
            for k in pose_order:
                if k is None:  # a pose person nowhere near any instance
                    file_kp.append(_keypoints(rng, (0, 0, 3, 3)))
                    file_boxes.append([0, 0, 3, 3])
                else:
                    file_kp.append(keypoints[k])
                    file_boxes.append(np.array(boxes[k]) + [1, -1, 0, 1])  # loose boxes
                    expected_kp[k] = keypoints[k]
            pose_mat.write_pose_mat(rl.pose_mat(voc_id), np.stack(file_kp),
                                    np.array(file_boxes, np.float32))
        written["splits"][split].append(voc_id)
        written["images"][voc_id] = {
            "split": split, "width": w, "height": h, "masks": [p.mask for p in persons],
            "parts": labels if png else fine, "fine_parts": fine, "instances": instances,
            "keypoints": expected_kp, "pose_annotated": pose_order is not None,
            "objects": objects}
    for split, ids in written["splits"].items():
        voc.write_id_list(rl.id_list(split), ids)
    return written


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw"
    return root, write_raw_fixture(root)


def _read_png(path):
    return np.asarray(Image.open(path))


def _snapshot(out: Path) -> dict:
    """Every output of OUT (not the resume state): file bytes, or a link's target."""
    snap = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if rel.parts[0] == ".prepare" or path.is_dir() and not path.is_symlink():
            continue
        snap[str(rel)] = ("link", os.readlink(path)) if path.is_symlink() else path.read_bytes()
    return snap


def test_prepare_writes_exactly_the_expected_canonical_files(raw, tmp_path):
    root, written = raw
    out = tmp_path / "out"
    summary = prepare(root, out, workers=1, progress=False)
    canonical = layout.CanonicalLayout(out)
    annotation_ids = []
    for split in layout.SPLITS:
        coco = json.loads(canonical.annotations(split).read_text())
        assert coco["categories"] == [schema.coco_category()]
        assert coco["part_categories"] == schema.part_categories()
        assert [im["voc_id"] for im in coco["images"]] == written["splits"][split]
        COCO(os.fspath(canonical.annotations(split)))  # loads unchanged
        for image in coco["images"]:
            voc_id = image["voc_id"]
            want = written["images"][voc_id]
            assert image == {"id": layout.image_id(voc_id), "file_name": f"{voc_id}.jpg",
                             "width": want["width"], "height": want["height"],
                             "voc_id": voc_id, "pose_annotated": want["pose_annotated"]}
            link = canonical.image(voc_id)
            assert link.is_symlink() and os.path.isabs(os.readlink(link))
            assert link.resolve() == layout.RawLayout(root).jpeg(voc_id).resolve()
            np.testing.assert_array_equal(_read_png(canonical.parts(voc_id)), want["parts"])
            np.testing.assert_array_equal(_read_png(canonical.instances(voc_id)),
                                          want["instances"])
            anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
            assert [a["instance"] for a in anns] == list(range(1, len(want["masks"]) + 1))
            for a, mask, kp in zip(anns, want["masks"], want["keypoints"]):
                ys, xs = np.nonzero(mask)
                assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                     ys.max() - ys.min() + 1]
                assert a["area"] == mask.sum()
                assert (a["category_id"], a["iscrowd"]) == (1, 0)
                np.testing.assert_array_equal(
                    mask_utils.decode(a["segmentation"]).astype(bool), mask)
                np.testing.assert_array_equal(np.reshape(a["keypoints"], (14, 3)), kp)
                assert a["num_keypoints"] == (kp[:, 2] > 0).sum()
            annotation_ids += [a["id"] for a in anns]
    assert sorted(annotation_ids) == list(range(1, 8))
    assert summary.images == {"train": 2, "val": 2}
    assert summary.persons == 7
    assert summary.processed == 4 and summary.resumed == 0


def test_summary_counts(raw, tmp_path):
    root, written = raw
    summary = prepare(root, tmp_path / "out", workers=1, progress=False)
    assert summary.pose_annotated_images == 3
    assert summary.persons_with_pose == 5
    assert summary.unmatched_poses == 1  # the stray pose of 2008_000002
    assert summary.unmatched_instances == 1  # person 2 of 2010_000004
    kps = np.concatenate([w["keypoints"] for w in written["images"].values()])
    assert summary.labelled_joints == dict(zip(schema.JOINT_NAMES,
                                               (kps[..., 2] > 0).sum(axis=0).tolist()))
    sizes = [np.bincount(w["instances"].ravel(), minlength=len(w["masks"]) + 1)[1:]
             / w["instances"].size for w in written["images"].values()]
    buckets = np.bincount(schema.size_bucket(np.concatenate(sizes)), minlength=4)
    assert summary.size_buckets == dict(zip(schema.SIZE_BUCKETS, buckets.tolist()))
    assert (summary.parts_from_png, summary.parts_from_fine_parts) == (3, 1)
    compared = sum((w["parts"] != schema.IGNORE_LABEL).sum()
                   for v, w in written["images"].items() if v != "2010_000004")
    assert summary.part_disagreement == pytest.approx(5 / compared)
    assert len(summary.warnings) == 2
    assert any("2008_000002: pose person 2" in w for w in summary.warnings)
    assert any("2010_000004: person instance 2 has no pose" in w for w in summary.warnings)


def test_image_without_pose_file_is_kept_for_parts(raw, tmp_path):
    root, _ = raw
    out = tmp_path / "out"
    prepare(root, out, workers=1, progress=False)
    coco = json.loads(layout.CanonicalLayout(out).annotations("val").read_text())
    image = next(im for im in coco["images"] if im["voc_id"] == "2009_000003")
    assert image["pose_annotated"] is False
    anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
    assert len(anns) == 1 and anns[0]["keypoints"] == [0.0] * 42
    assert anns[0]["num_keypoints"] == 0


def test_side_order_and_neck_in_head(raw, tmp_path):
    root, written = raw
    out = tmp_path / "out"
    prepare(root, out, workers=1, side_order="left_first", neck_in_head=True, progress=False)
    canonical = layout.CanonicalLayout(out)
    coco = json.loads(canonical.annotations("train").read_text())
    first = np.reshape(coco["annotations"][0]["keypoints"], (14, 3))
    np.testing.assert_array_equal(first, written["images"]["2008_000001"]["keypoints"][0]
                                  [schema.FLIP_INDEX])
    # 2010_000004 has no PNG: its parts come from the fine parts, where the neck is head now.
    want = written["images"]["2010_000004"]
    np.testing.assert_array_equal(_read_png(canonical.parts("2010_000004")),
                                  _expected_parts(want["objects"], want["instances"].shape,
                                                  neck_in_head=True))


def test_copy_images(raw, tmp_path):
    root, _ = raw
    out = tmp_path / "out"
    prepare(root, out, workers=1, copy_images=True, progress=False)
    image = layout.CanonicalLayout(out).image("2008_000001")
    assert not image.is_symlink()
    assert image.read_bytes() == layout.RawLayout(root).jpeg("2008_000001").read_bytes()


def test_match_poses_is_optimal_not_greedy():
    # Greedy would give pose 0 to instance 0 (IoU 0.8) and leave pose 1 with IoU 0; the
    # Hungarian assignment pairs 0-1 and 1-0 for a larger total. Pose 2 overlaps nothing.
    instances = np.array([[0, 0, 9, 9], [2, 0, 11, 9]], float)
    poses = np.array([[1, 0, 10, 9], [0, 0, 4, 9], [50, 50, 60, 60]], float)
    pose_index, instance_index = match_poses(poses, instances)
    assert dict(zip(pose_index.tolist(), instance_index.tolist())) == {0: 1, 1: 0}
    empty = match_poses(poses, np.full((1, 4), np.nan))
    assert [len(a) for a in empty] == [0, 0]


def test_resume_skips_finished_images(raw, tmp_path):
    root, _ = raw
    out = tmp_path / "out"
    prepare(root, out, workers=1, progress=False)
    before = _snapshot(out)
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    summary = prepare(root, out, workers=1, progress=False)
    assert (summary.processed, summary.resumed) == (0, 4)
    assert {p: p.stat().st_mtime_ns for p in (out / "parts").iterdir()} == mtimes
    assert _snapshot(out) == before
    # A changed input is redone; so is every image when an option changes.
    jpeg = layout.RawLayout(root).jpeg("2009_000003")
    os.utime(jpeg, ns=(jpeg.stat().st_atime_ns, jpeg.stat().st_mtime_ns + 10**9))
    assert prepare(root, out, workers=1, progress=False).processed == 1
    assert prepare(root, out, workers=1, neck_in_head=True, progress=False).processed == 4


def test_interrupted_run_resumes_where_it_stopped(raw, tmp_path):
    root, _ = raw
    out = tmp_path / "out"
    mat = layout.RawLayout(root).part_mat("2009_000003")  # third of four images
    good = mat.read_bytes()
    mat.write_bytes(good[:len(good) // 2])
    with pytest.raises(InputError):
        prepare(root, out, workers=1, progress=False)
    assert _snapshot(out) == {}  # nothing in place before every image succeeded
    mat.write_bytes(good)
    summary = prepare(root, out, workers=1, progress=False)
    assert (summary.processed, summary.resumed) == (2, 2)
    assert len(list((out / "instances").iterdir())) == 4


def test_worker_process_error_reaches_the_caller(raw, tmp_path):
    root, _ = raw
    bad_file, message = _break_truncated_mat(root)
    with pytest.raises(InputError, match=message) as error:
        prepare(root, tmp_path / "out", workers=2, progress=False)
    assert error.value.file == str(bad_file)


def test_two_workers_give_identical_output(raw, tmp_path):
    root, _ = raw
    one = prepare(root, tmp_path / "one", workers=1, progress=False)
    two = prepare(root, tmp_path / "two", workers=2, progress=False)
    assert _snapshot(tmp_path / "one") == _snapshot(tmp_path / "two")
    assert one == two


def _break_missing_jpeg(root: Path) -> tuple[Path, str]:
    jpeg = layout.RawLayout(root).jpeg("2010_000004")
    jpeg.unlink()
    return layout.RawLayout(root).id_list("val"), f"record 2010_000004: listed, but its JPEG {jpeg}"


def _break_truncated_mat(root: Path) -> tuple[Path, str]:
    mat = layout.RawLayout(root).part_mat("2008_000002")
    mat.write_bytes(mat.read_bytes()[:100])
    return mat, "not a readable MATLAB .mat file"


def _break_png_values(root: Path) -> tuple[Path, str]:
    png = layout.RawLayout(root).label_png("2009_000003")
    labels = np.asarray(Image.open(png)).copy()
    labels[0, 0] = 9
    Image.fromarray(labels, "L").save(png)
    return png, "grayscale values [9]"


@pytest.mark.parametrize("breaker", [_break_missing_jpeg, _break_truncated_mat,
                                     _break_png_values])
def test_bad_input_is_one_line_exit_2_and_outputs_stay_intact(raw, tmp_path, breaker):
    root, _ = raw
    out = tmp_path / "out"
    prepare(root, out, workers=1, progress=False)
    before = _snapshot(out)
    # Force every image to be redone, so a partial run would overwrite outputs.
    jpeg = layout.RawLayout(root).jpeg("2008_000001")
    os.utime(jpeg, ns=(jpeg.stat().st_atime_ns, jpeg.stat().st_mtime_ns + 10**9))
    bad_file, message = breaker(root)
    result = CliRunner().invoke(main, ["prepare", str(root), str(out), "--workers", "1",
                                       "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert str(bad_file) in result.stderr and message in result.stderr
    assert _snapshot(out) == before
    leftovers = [p for p in out.rglob("*.tmp")]
    assert leftovers == []


def test_cli_prints_the_summary_table(raw, tmp_path):
    root, _ = raw
    result = CliRunner().invoke(main, ["prepare", str(root), str(tmp_path / "out"),
                                       "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.split() == ["images", "(train)", "2"] for line in lines)
    assert any(line.startswith("labelled joints: r_wrist") for line in lines)
    assert "PNG vs fine parts disagreement" in result.stdout


@pytest.mark.skipif(not UPSTREAM.is_dir(), reason="upstream samples not beside the repo")
def test_real_pascal_part_files(tmp_path):
    """The 18 real PASCAL-Part files, without Person-Part PNGs or poses: 19 persons."""
    root = tmp_path / "raw"
    rl = layout.RawLayout(root)
    ids = sorted(p.stem for p in UPSTREAM.glob("*.mat"))
    for voc_id in ids:
        for src, dst in ((UPSTREAM / f"{voc_id}.jpg", rl.jpeg(voc_id)),
                         (UPSTREAM / f"{voc_id}.mat", rl.part_mat(voc_id))):
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src)
    voc.write_id_list(rl.id_list("train"), ids[::2])
    voc.write_id_list(rl.id_list("val"), ids[1::2])
    out = tmp_path / "out"
    summary = prepare(root, out, workers=1, progress=False)
    assert summary.persons == 19 and summary.pose_annotated_images == 0
    assert summary.parts_from_fine_parts == 18
    for split in layout.SPLITS:
        coco = COCO(os.fspath(layout.CanonicalLayout(out).annotations(split)))
        for ann in coco.loadAnns(coco.getAnnIds()):
            voc_id = layout.voc_id(ann["image_id"])
            instances = _read_png(layout.CanonicalLayout(out).instances(voc_id))
            own = instances == ann["instance"]
            assert (coco.annToMask(ann).astype(bool) | ~own).all()  # instance pixels in mask


def test_synthetic_tree_end_to_end(tmp_path):
    """A small `synth` tree: every person is matched to its own pose through the shuffled
    .mat and pose-file orders, and the PNGs agree with the fine parts."""
    from pascal_person_pose.synth import render_scene, write_raw_tree
    from pascal_person_pose.synth.tree import image_rng, synth_id

    seed, n, width, height = 5, 6, 160, 120
    synth = write_raw_tree(tmp_path / "raw", n, seed, width=width, height=height)
    summary = prepare(tmp_path / "raw", tmp_path / "out", workers=1, progress=False)
    assert summary.images == {"train": synth["train"], "val": synth["val"]}
    assert summary.persons == summary.persons_with_pose == synth["persons"]
    assert summary.unmatched_poses == summary.unmatched_instances == 0
    assert sum(summary.labelled_joints.values()) == (synth["joints"]["visible"]
                                                     + synth["joints"]["occluded"])
    assert summary.part_disagreement == 0.0
    annotations = []
    for split in layout.SPLITS:
        coco = COCO(os.fspath(layout.CanonicalLayout(tmp_path / "out").annotations(split)))
        annotations += coco.loadAnns(coco.getAnnIds())
    for i in range(n):
        scene = render_scene(image_rng(seed, i), width, height)
        image_id = layout.image_id(synth_id(i))
        anns = [a for a in annotations if a["image_id"] == image_id]
        masks = [mask_utils.decode(a["segmentation"]).astype(bool) for a in anns]
        assert len(anns) == len(scene.persons)
        for person in scene.persons:
            match = [a for a, m in zip(anns, masks) if np.array_equal(m, person.mask)]
            assert len(match) == 1
            # As the dataset reads them: float32, exactly what the scene holds.
            np.testing.assert_array_equal(
                np.reshape(match[0]["keypoints"], (14, 3)).astype(np.float32), person.keypoints)
