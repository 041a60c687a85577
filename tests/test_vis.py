"""Drawing part maps, outlines and skeletons, and `ppp show`."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema, vis
from pascal_person_pose.cli import main
from pascal_person_pose.dataset import Dataset

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
    result = CliRunner().invoke(main, ["show", str(written["root"]), "2008000003", "--out",
                                       str(out)])
    assert result.exit_code == 0, result.output
    assert "2008_000003 (train, 2 persons)" in result.output
    np.testing.assert_array_equal(np.asarray(Image.open(out)), drawing)


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
