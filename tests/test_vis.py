"""Drawing part maps, outlines and skeletons, and `ppp show`."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema, vis
from pascal_person_pose.cli import main
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.submission import oracle_submission, write_submission

GRAY = 100


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_canonical_dataset(tmp_path_factory.mktemp("canonical"))


def _gray(height=60, width=80):
    return np.full((height, width, 3), GRAY, np.uint8)


def test_parts_blend_their_palette_colours():
    part_map = np.zeros((60, 80), np.uint8)
    part_map[10:20, 10:20] = schema.name2part["head"].id
    part_map[30:40, 30:40] = schema.name2part["lower_leg"].id
    part_map[50:, 70:] = schema.IGNORE_LABEL
    image = _gray()
    opaque = vis.draw_parts(image, part_map, alpha=1.0)
    assert tuple(opaque[15, 15]) == schema.name2part["head"].colour
    assert tuple(opaque[35, 35]) == schema.name2part["lower_leg"].colour
    assert tuple(opaque[55, 75]) == tuple(schema.voc_palette()[765:768])  # VOC "ignore" cream
    assert (opaque[part_map == 0] == GRAY).all()
    half = vis.draw_parts(image, part_map, alpha=0.5)
    np.testing.assert_array_equal(half[15, 15], np.round(
        (np.array(schema.name2part["head"].colour) + GRAY) / 2))
    assert (image == GRAY).all()  # the input is untouched


def test_instance_outlines_follow_each_person():
    instance_map = np.zeros((60, 80), np.uint8)
    instance_map[10:30, 10:30] = 1
    instance_map[20:50, 40:70] = 2
    out = vis.draw_instances(_gray(), instance_map)
    colours = vis.instance_colours(2)
    assert len({tuple(c) for c in colours}) == 2
    changed = (out != GRAY).any(axis=2)
    # The outline runs along each box edge, not inside nor far outside.
    assert changed[10, 20] and changed[29, 20] and changed[35, 40] and changed[35, 69]
    assert not changed[20, 20] and not changed[35, 55] and not changed[5, 5]
    assert tuple(out[10, 20]) == tuple(colours[0]) and tuple(out[35, 69]) == tuple(colours[1])
    assert (vis.draw_instances(_gray(), np.zeros((60, 80), np.uint8)) == GRAY).all()


def _pose(**joints):
    pose = np.zeros((14, 3), np.float32)
    for name, value in joints.items():
        pose[schema.JOINT_NAMES.index(name)] = value
    return pose


def test_skeleton_joints_and_bones():
    wrist = schema.name2joint["r_wrist"].colour
    lonely = _pose(r_wrist=(20, 20, 2), l_wrist=(60, 20, 1))  # no bone between them
    out = vis.draw_skeletons(_gray(), lonely[None], radius=4)
    assert tuple(out[20, 20]) == wrist  # visible: filled
    assert tuple(out[20, 60]) == (GRAY,) * 3  # occluded: hollow ...
    assert (out[20, 55:66] != GRAY).any(axis=1).sum() >= 2  # ... a ring around it
    as_prediction = vis.draw_skeletons(_gray(), lonely[None], radius=4, scores=True)
    assert tuple(as_prediction[20, 60]) == schema.name2joint["l_wrist"].colour

    arm = _pose(r_elbow=(20, 40, 2), r_wrist=(60, 40, 2), r_shoulder=(0, 0, 0))
    out = vis.draw_skeletons(_gray(), arm[None], radius=2)
    assert (out[40, 30:50] != GRAY).any(axis=1).all()  # the elbow-wrist bone
    assert (out[:10, :10] == GRAY).all()  # the unlabelled shoulder draws nothing
    named = vis.draw_skeletons(_gray(), arm[None], radius=2, joint_names=True)
    assert (named != out).any()


def test_render_and_cli_show_write_a_png(written, tmp_path):
    dataset = Dataset(written["root"], "train")
    sample = dataset[dataset.index_of("2008_000003")]
    drawing = vis.render_sample(sample)
    assert drawing.shape == sample.image.shape and drawing.dtype == np.uint8
    plain = vis.render_sample(sample, parts=False, instances=False, skeletons=False)
    np.testing.assert_array_equal(plain, sample.image)

    out = tmp_path / "show.png"
    result = CliRunner().invoke(main, ["show", str(written["root"]), "2008_000003", "--out",
                                       str(out), "--no-legend"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{out}: 2008_000003 (train, 2 persons)\n"
    np.testing.assert_array_equal(np.asarray(Image.open(out)), drawing)


@pytest.mark.parametrize("form", ["2008_000008", "2008000008", " 2008000008 ",
                                  "2008_000008.jpg", "images/2008_000008.jpg"])
def test_cli_show_takes_every_image_id_form_its_help_names(written, tmp_path, form):
    """What was seen: the numeric id the help offered was rejected, and "1 persons"."""
    result = CliRunner().invoke(main, ["show", str(written["root"]), form, "--out",
                                       str(tmp_path / "a.png")])
    assert result.exit_code == 0, result.output
    assert result.output == f"{tmp_path / 'a.png'}: 2008_000008 (train, 1 person)\n"
    help_text = CliRunner().invoke(main, ["show", "--help"]).output
    assert "2008_000652" in help_text and "2008000652" in help_text and \
        "2008_000652.jpg" in help_text


def _colour_present(image: np.ndarray, colour) -> bool:
    return bool((image.reshape(-1, 3) == np.array(colour, np.uint8)).all(axis=1).any())


def test_legend_shows_every_part_and_joint_colour():
    legend = vis.draw_legend(420, vis.legend_items())
    assert legend.shape[1] == 420
    for part in schema.PARTS[1:]:
        assert _colour_present(legend, part.colour), part.name
    for joint in schema.JOINTS:
        assert _colour_present(legend, joint.colour), joint.name
    parts_only = vis.draw_legend(420, vis.legend_items(joints=False))
    assert parts_only.shape[0] < legend.shape[0]
    assert not _colour_present(parts_only, schema.name2joint["l_ankle"].colour)


def test_cli_show_has_a_legend_below_the_drawing(written, tmp_path):
    """What was seen: `ppp show` had no colour legend."""
    out = tmp_path / "legend.png"
    result = CliRunner().invoke(main, ["show", str(written["root"]), "2008_000003", "--out",
                                       str(out)])
    assert result.exit_code == 0, result.output
    dataset = Dataset(written["root"], "train")
    drawing = vis.render_sample(dataset[dataset.index_of("2008_000003")])
    view = np.asarray(Image.open(out))
    height, width = drawing.shape[:2]
    np.testing.assert_array_equal(view[:height, :width], drawing)
    below = view[height:]
    assert view.shape[1] >= 420 and below.shape[0] > 40
    for joint in schema.JOINTS:
        assert _colour_present(below, joint.colour), joint.name


def _panels(view: np.ndarray, panel_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The two drawings of a side-by-side view, located by the layout functions."""
    top = vis.titled(np.zeros((1, 1, 3), np.uint8), "x").shape[0] - 1
    height, width = panel_shape[:2]
    gap = vis.compose([np.zeros((1, width, 3), np.uint8)] * 2).shape[1] - 2 * width
    return (view[top:top + height, :width],
            view[top:top + height, width + gap:2 * width + gap])


def test_cli_show_draws_a_submission_beside_the_ground_truth(written, tmp_path):
    """What was seen: `ppp show` could only draw the ground truth."""
    dataset = Dataset(written["root"], "train")
    sample = dataset[dataset.index_of("2008_000003")]
    poses, parts = oracle_submission(dataset)
    poses[0]["score"] = 0.2
    sub = write_submission(tmp_path / "sub.zip", poses, parts, {"method": "Oracle"})
    out = tmp_path / "view.png"
    result = CliRunner().invoke(main, ["show", str(written["root"]), "2008000003",
                                       "--submission", str(sub), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == (f"{out}: 2008_000003 (train, 2 persons); beside it Oracle: "
                             "2 poses, part map\n")
    left, right = _panels(np.asarray(Image.open(out)), sample.image.shape)
    np.testing.assert_array_equal(left, vis.render_sample(sample))
    mine = sorted((p for p in poses if p["image_id"] == sample.image_id),
                  key=lambda p: p["score"])  # the lowest score is drawn first
    keypoints = np.array([p["keypoints"] for p in mine]).reshape(-1, schema.NUM_JOINTS, 3)
    expected = vis.draw_prediction(sample.image, parts["2008_000003"], keypoints)
    np.testing.assert_array_equal(right, expected)

    result = CliRunner().invoke(main, ["show", str(written["root"]), "2008000003",
                                       "--submission", str(sub), "--out", str(out),
                                       "--min-score", "0.5"])
    assert result.exit_code == 0 and "Oracle: 1 pose (score >= 0.5), part map" in \
        result.output
    poses_only = write_submission(tmp_path / "poses_only", poses, None)
    result = CliRunner().invoke(main, ["show", str(written["root"]), "2008_000008",
                                       "--submission", str(poses_only), "--out", str(out)])
    assert result.exit_code == 0
    assert "beside it poses_only: 1 pose, no part task" in result.output


def test_cli_show_bad_submission_or_output_is_one_line(written, tmp_path):
    dataset = Dataset(written["root"], "train")
    poses, _ = oracle_submission(dataset)
    elsewhere = write_submission(tmp_path / "val_ids", [dict(poses[0], image_id=2009000012)],
                                 None)
    runner = CliRunner()
    result = runner.invoke(main, ["show", str(written["root"]), "2008_000003", "--submission",
                                  str(elsewhere), "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "pose.json" in result.output and "image_id" in result.output
    assert not (tmp_path / "x.png").exists()

    for name in ("view.gif", "view"):  # issue 12: a KeyError traceback before
        result = runner.invoke(main, ["show", str(written["root"]), "2008_000003", "--out",
                                      str(tmp_path / name)])
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"error: {tmp_path / name}, field --out: cannot "
                                        "write") and len(result.output.splitlines()) == 1
        assert not (tmp_path / name).exists()


def test_cli_show_unknown_image_is_one_line(written, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["show", str(written["root"]), "2008_000003", "--split", "val",
                                  "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {written['annotation_files']['val']}: no image '2008_000003'"]
    result = runner.invoke(main, ["show", str(written["root"]), "1999_000001",
                                  "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "person_pose_train.json" in result.output and "person_pose_val.json" in result.output
    assert not (tmp_path / "x.png").exists()
