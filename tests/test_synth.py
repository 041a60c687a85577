"""The synthetic scenes: determinism, agreement of every written file with the others and with
the picture, the person's own left/right, and the variety the benchmarks rely on."""

import hashlib
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pascal_person_pose import schema
from pascal_person_pose.cli import main
from pascal_person_pose.layout import RawLayout
from pascal_person_pose.sources import MAT_HEADER_TEXT, pascal_part, person_part, pose_mat, voc
from pascal_person_pose.synth import render_scene, write_raw_tree
from pascal_person_pose.synth.tree import synth_id

J = schema.name2joint


@pytest.fixture(scope="module")
def scenes():
    """40 scenes of 320x240, the default size."""
    rng = np.random.default_rng(2024)
    return [render_scene(rng, 320, 240) for _ in range(40)]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw")
    summary = write_raw_tree(out, 8, seed=11, val_fraction=0.25)
    return out, summary


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _fine_map(person) -> np.ndarray:
    """Fine-part names per pixel (head last, so the face parts inside it stay visible)."""
    out = np.full(person.mask.shape, "", dtype=object)
    for name, mask in sorted(person.parts, key=lambda p: p[0] != "head"):
        out[mask] = name
    return out


def test_same_seed_same_files_whatever_the_workers(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_raw_tree(a, 4, seed=5, width=160, height=120)
    write_raw_tree(b, 4, seed=5, width=160, height=120, workers=2)
    write_raw_tree(c, 4, seed=6, width=160, height=120)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert fa.keys() == fb.keys() == fc.keys()
    assert len(fa) == 4 * 4 + 2
    for name, data in fa.items():  # every byte, .mat headers included: hashable releases
        assert data == fb[name], name
    differ = [n for n in fa if fa[n] != fc[n] and not n.endswith("_id.txt")]
    assert len(differ) == 16


def test_same_seed_same_bytes_at_another_time(tmp_path, monkeypatch):
    """scipy stamps the time into .mat headers; ours are constant, so a release hashes."""
    write_raw_tree(tmp_path / "a", 2, seed=3, width=96, height=72)
    monkeypatch.setattr(time, "asctime", lambda *args: "Thu Jan  1 00:00:00 2099")
    write_raw_tree(tmp_path / "b", 2, seed=3, width=96, height=72)
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    digest = lambda files: hashlib.sha256(b"".join(  # noqa: E731
        name.encode() + hashlib.sha256(data).digest() for name, data in files.items())).hexdigest()
    assert digest(fa) == digest(fb)
    mats = [data for name, data in fa.items() if name.endswith(".mat")]
    assert len(mats) == 4 and all(data.startswith(MAT_HEADER_TEXT) for data in mats)


def test_render_scene_is_deterministic():
    s1 = render_scene(np.random.default_rng(3), 200, 150)
    s2 = render_scene(np.random.default_rng(3), 200, 150)
    assert np.array_equal(s1.image, s2.image)
    assert np.array_equal(s1.keypoints, s2.keypoints)
    assert s1.image.shape == (150, 200, 3) and s1.image.dtype == np.uint8
    assert s1.keypoints.shape == (len(s1.persons), 14, 3)
    assert s1.boxes.shape == (len(s1.persons), 4)


def test_tree_reads_back_consistently(tree):
    root, summary = tree
    layout = RawLayout(root)
    ids = [synth_id(i) for i in range(8)]
    train, val = voc.read_id_list(layout.id_list("train")), voc.read_id_list(layout.id_list("val"))
    assert sorted(train + val) == ids and len(val) == 2 == summary["val"]
    shuffled = 0
    n_persons = 0
    for voc_id in ids:
        assert voc.image_size(layout.jpeg(voc_id)) == (320, 240)
        imname, objects = pascal_part.read_anno(layout.part_mat(voc_id))
        assert imname == voc_id
        persons = pascal_part.read_persons(layout.part_mat(voc_id))
        n_persons += len(persons)
        assert persons
        for obj in objects:
            assert (obj.class_name == "person") == (obj.class_ind == 15)
            for _, mask in obj.parts:  # parts lie inside their object
                assert not (mask & ~obj.mask).any()
        # persons are disjoint, and every pixel of a person is in one of its parts
        owners = np.sum([p.mask for p in persons], axis=0)
        assert owners.max() == 1
        for p in persons:
            assert np.array_equal(p.part_map > 0, p.mask)
        labels = person_part.read_label_png(layout.label_png(voc_id))
        assert np.array_equal(labels, pascal_part.merge_part_maps(persons, labels.shape))

        pose = pose_mat.read_pose_mat(layout.pose_mat(voc_id))
        assert len(pose.keypoints) == len(persons)
        boxes = np.array([[xs.min(), ys.min(), xs.max(), ys.max()] for ys, xs in
                          (np.nonzero(p.mask) for p in persons)], np.float32)
        match = [int(np.flatnonzero((boxes == b).all(1))[0]) for b in pose.boxes]
        assert sorted(match) == list(range(len(persons)))
        shuffled += match != sorted(match)
        for kp, m in zip(pose.keypoints, match):
            part_map = persons[m].part_map
            for j, (x, y, v) in enumerate(kp):
                if v == 0:
                    assert x == y == 0
                    continue
                assert 0 <= x <= 319 and 0 <= y <= 239
                if v == 2:  # a visible joint lies on one of its own parts
                    assert part_map[int(round(y)), int(round(x))] in schema.JOINT_PART_IDS[j]
    assert summary["persons"] == n_persons
    assert shuffled > 0  # the pose files list people in another order than the .mat files


def test_label_pngs_use_all_encodings(tmp_path):
    summary = write_raw_tree(tmp_path, 30, seed=0, width=64, height=48)
    assert all(summary["label_encodings"][e] > 0 for e in ("palette", "gray", "raw"))
    assert summary["label_encodings"]["palette"] > 15


def test_visible_joints_lie_on_the_persons_own_side(scenes):
    checked = 0
    for scene in scenes:
        for person in scene.persons:
            fine = _fine_map(person)
            for j, (x, y, v) in enumerate(person.keypoints):
                if v != 2:
                    continue
                name = fine[int(round(y)), int(round(x))]
                assert schema.FINE_PART_TO_ID[name] in schema.JOINT_PART_IDS[j]
                side = schema.JOINT_NAMES[j][:2]
                if side in ("r_", "l_") and name not in ("torso", "neck"):
                    assert name[0] == side[0], (schema.JOINT_NAMES[j], name)
                checked += 1
    assert checked > 500


def test_left_and_right_are_the_persons_own(scenes):
    """Facing the camera, the right shoulder is on the image's left; from behind, the right."""
    seen = Counter()
    for scene in scenes:
        for person in scene.persons:
            kp = person.keypoints
            r, l = kp[J["r_shoulder"].index], kp[J["l_shoulder"].index]
            if r[2] == 0 or l[2] == 0:
                continue
            assert (r[0] < l[0]) == person.facing_camera
            parts = dict(person.parts)
            if "ruarm" in parts and "luarm" in parts:
                rx, lx = np.nonzero(parts["ruarm"])[1].mean(), np.nonzero(parts["luarm"])[1].mean()
                assert (rx < lx) == person.facing_camera
            seen[person.facing_camera] += 1
    assert seen[True] > 10 and seen[False] > 3


def test_scenes_span_sizes_truncation_occlusion_and_poses(scenes):
    persons = [p for s in scenes for p in s.persons]
    sizes = [p.mask.sum() / (320 * 240) for p in persons]
    buckets = Counter(schema.size_bucket(sizes).tolist())
    assert all(buckets[b] >= 3 for b in range(4)), buckets
    assert any(p.truncated for p in persons) and any(p.occluded for p in persons)
    v = np.concatenate([p.keypoints[:, 2] for p in persons])
    assert {0, 1, 2} <= set(v.tolist())
    assert set(p.pose for p in persons) >= {"standing", "seated", "crouched", "arms_raised"}
    counts = Counter(len(s.persons) for s in scenes)
    assert max(counts) >= 4 and 1 in counts
    assert all(1 <= len(s.persons) <= 6 for s in scenes)
    classes = {o.class_name for s in scenes for o in s.objects}
    assert "chair" in classes and len(classes) >= 3
    for scene in scenes:  # annotated things never overlap
        masks = [p.mask for p in scene.persons] + [o.mask for o in scene.objects]
        assert np.sum(masks, axis=0).max() <= 1


def test_fine_part_names_are_pascal_parts(scenes):
    names = {n for s in scenes for p in s.persons for n, _ in p.parts}
    assert names <= set(schema.FINE_PART_TO_ID)
    assert {"head", "hair", "torso", "neck", "luarm", "rlarm", "lhand", "ruleg", "rlleg",
            "lfoot", "leye", "mouth", "nose", "rear"} <= names


def test_cli_writes_a_tree(tmp_path):
    out = tmp_path / "raw"
    result = CliRunner().invoke(main, ["synth", "--out", str(out), "--images", "3",
                                       "--seed", "4", "--width", "96", "--height", "72",
                                       "--val-fraction", "0.34"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and "persons:" in result.output
    layout = RawLayout(out)
    assert voc.read_id_list(layout.id_list("val")) != []
    assert len(list(layout.pose_mat_dir.glob("*.mat"))) == 3


@pytest.mark.parametrize("args, field", [
    (["--images", "0"], "images"),
    (["--images", "-5"], "images"),
    (["--seed", "-1"], "seed"),
    (["--width", "8"], "width"),
    (["--val-fraction", "1.5"], "val_fraction"),
    (["--workers", "0"], "workers"),
])
def test_cli_bad_arguments_one_line_exit_2(tmp_path, args, field):
    result = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "raw"), *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and f"field {field}" in lines[0]
    assert not (tmp_path / "raw").exists()


def test_cli_out_is_a_file(tmp_path):
    (tmp_path / "raw").write_text("not a folder")
    result = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "raw")])
    assert result.exit_code == 2 and "not a directory" in result.output

