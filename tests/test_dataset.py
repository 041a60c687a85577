"""The canonical dataset: loading, index, lazy pixels, validation, statistics, `ppp info`,
the torch adapter."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pycocotools.coco import COCO

from canonical_fixture import write_canonical_dataset
from pascal_person_pose import schema
from pascal_person_pose.cli import main
from pascal_person_pose.dataset import Dataset
from pascal_person_pose.errors import InputError


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_canonical_dataset(tmp_path_factory.mktemp("canonical"))


@pytest.fixture
def fresh(tmp_path):
    """A private copy to break."""
    return write_canonical_dataset(tmp_path / "ds")


def test_fixture_joints_lie_on_their_parts_and_instances(written):
    for record in written["images"].values():
        for g, pose in enumerate(record["keypoints"]):
            for j in np.flatnonzero(pose[:, 2] == 2):
                x, y = pose[j, :2].astype(int)
                assert record["part_map"][y, x] in schema.JOINT_PART_IDS[j]
                assert record["instance_map"][y, x] == record["instances"][g]


@pytest.mark.parametrize("symlink_images", [False, True])
def test_samples_match_what_was_written(tmp_path, symlink_images):
    written = write_canonical_dataset(tmp_path, symlink_images=symlink_images)
    for split in ("train", "val"):
        dataset = Dataset(tmp_path, split)
        assert [s.voc_id for s in dataset] == written["splits"][split]
        for sample in dataset:
            record = written["images"][sample.voc_id]
            assert (sample.image_id, sample.width, sample.height, sample.pose_annotated) == (
                record["image_id"], record["width"], record["height"], record["pose_annotated"])
            assert [p.annotation_id for p in sample.persons] == record["annotation_ids"]
            assert [p.instance for p in sample.persons] == record["instances"]
            np.testing.assert_array_equal(sample.keypoints, record["keypoints"])
            np.testing.assert_array_equal(sample.boxes, record["boxes"])
            np.testing.assert_array_equal(sample.part_map, record["part_map"])
            np.testing.assert_array_equal(sample.instance_map, record["instance_map"])
            np.testing.assert_array_equal(sample.masks, record["masks"])
            for person, mask in zip(sample.persons, record["masks"]):
                np.testing.assert_array_equal(person.mask, mask)
                assert person.keypoints.dtype == np.float64 and person.keypoints.shape == (14, 3)
            assert sample.image.shape == (record["height"], record["width"], 3)
            # The JPEG adds noise; 5x5 means of the RGB channels survive it.
            decoded, rendered = (cv2.blur(a.astype(np.float32), (5, 5))
                                 for a in (sample.image, record["image"]))
            assert np.abs(decoded - rendered).mean() < 2.5


def test_lookup_by_voc_id_image_id_and_digits(written):
    dataset = Dataset(written["root"], "val")
    position = written["splits"]["val"].index("2009_000012")
    assert dataset.index_of("2009_000012") == position
    assert dataset.index_of(2009000012) == position
    assert dataset.index_of(np.int64(2009000012)) == position
    assert dataset.index_of("2009000012") == position
    assert dataset.keypoints("2010_000001").shape == (0, 14, 3)
    np.testing.assert_array_equal(dataset.keypoints(2009000012),
                                  written["images"]["2009_000012"]["keypoints"])
    assert [a["id"] for a in dataset.annotations(2009000012)] == \
        written["images"]["2009_000012"]["annotation_ids"]
    assert dataset[-1].voc_id == written["splits"]["val"][-1]
    with pytest.raises(InputError, match=r"person_pose_val\.json: no image '2008_000003'"):
        dataset.index_of("2008_000003")
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_index_keeps_annotation_order_when_images_interleave(fresh):
    """Annotations of one image need not be contiguous in the file."""
    path = fresh["annotation_files"]["val"]
    coco = json.loads(path.read_text())
    coco["annotations"] = coco["annotations"][::-1]
    path.write_text(json.dumps(coco))
    dataset = Dataset(fresh["root"], "val")
    ids = [a["id"] for a in dataset.annotations("2009_000012")]
    assert ids == fresh["images"]["2009_000012"]["annotation_ids"][::-1]
    sample = dataset[dataset.index_of("2009_000012")]
    assert [p.annotation_id for p in sample.persons] == ids
    np.testing.assert_array_equal(sample.keypoints,
                                  fresh["images"]["2009_000012"]["keypoints"][::-1])


def test_pycocotools_loads_the_json_unchanged(written):
    path = written["annotation_files"]["val"]
    coco = COCO(str(path))
    dataset = Dataset(written["root"], "val")
    assert dataset.coco == json.loads(path.read_text())
    assert sorted(coco.getImgIds()) == sorted(im["id"] for im in dataset.images)
    for sample in dataset:
        ann_ids = coco.getAnnIds(imgIds=sample.image_id)
        assert ann_ids == [p.annotation_id for p in sample.persons]
        for person in sample.persons:
            ann = coco.loadAnns(person.annotation_id)[0]
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), person.mask)
            assert ann["area"] == person.mask.sum()
    assert coco.loadCats(1)[0]["keypoints"] == list(schema.JOINT_NAMES)


def test_pixels_are_read_only_when_asked(fresh):
    for path in (fresh["root"] / "images").iterdir():
        path.unlink()
    dataset = Dataset(fresh["root"], "val")
    poses = [sample.keypoints for sample in dataset]  # no pixel file touched
    assert sum(len(p) for p in poses) == 5
    with pytest.raises(InputError, match=r"images/2009_000012\.jpg: file not found"):
        dataset[0].image


def _break(fresh, edit):
    path = fresh["annotation_files"]["val"]
    coco = json.loads(path.read_text())
    edit(coco)
    path.write_text(json.dumps(coco))
    return path


def _first_ann(coco):
    return coco["annotations"][0]


# The train split holds annotations 1-3, so val's first annotation is 4.
BROKEN = [
    (lambda c: _first_ann(c).pop("keypoints"), "annotation 4", "keypoints", "missing"),
    (lambda c: _first_ann(c).update(keypoints=_first_ann(c)["keypoints"][:39]),
     "annotation 4", "keypoints", "42 numbers"),
    (lambda c: _first_ann(c).update(keypoints=["1"] * 42), "annotation 4", "keypoints",
     "42 numbers"),
    (lambda c: _first_ann(c).update(image_id=2001000001), "annotation 4", "image_id",
     "image 2001000001 is not in images"),
    (lambda c: _first_ann(c).update(instance=0), "annotation 4", "instance", "1-255"),
    (lambda c: c["annotations"][1].update(instance=1), "annotation 5", "instance", "twice"),
    (lambda c: c["annotations"][1].update(id=4), "annotation 4", "id", "duplicate"),
    (lambda c: _first_ann(c)["segmentation"].update(size=[10, 10]), "annotation 4",
     "segmentation", "not the image's"),
    (lambda c: _first_ann(c).update(segmentation=[[1, 2, 3, 4, 5, 6]]), "annotation 4",
     "segmentation", "RLE"),
    (lambda c: _first_ann(c)["keypoints"].__setitem__(2, 3), "annotation 4", "keypoints",
     "visibility 0, 1 or 2"),
    (lambda c: _first_ann(c)["keypoints"].__setitem__(0, float("nan")), "annotation 4",
     "keypoints", "finite"),
    (lambda c: _first_ann(c)["keypoints"].__setitem__(2, 0), "annotation 4", "keypoints",
     "x = y = 0"),
    (lambda c: _first_ann(c).update(num_keypoints=3), "annotation 4", "num_keypoints",
     "number of labelled joints"),
    (lambda c: _first_ann(c).update(category_id=2), "annotation 4", "category_id", "person"),
    (lambda c: c["images"][0].pop("width"), "image 2009000012", "width", "missing"),
    (lambda c: c["images"][0].update(height=-4), "image 2009000012", "height", "positive"),
    (lambda c: c["images"][0].update(voc_id="2009_000013"), "image 2009000012", "voc_id",
     "not the unique VOC id"),
    (lambda c: c["images"][1].update(id=2009000012, voc_id="2009_000012"), "image 2009000012",
     "id", "duplicate"),
    (lambda c: c["images"][0].update(pose_annotated="no"), "image 2009000012",
     "pose_annotated", "true or false"),
    (lambda c: c["categories"][0]["keypoints"].reverse(), "category 1", "keypoints",
     "schema order"),
    (lambda c: c.pop("images"), None, "images", "missing or not a list"),
]


@pytest.mark.parametrize("edit, record, field, message", BROKEN)
def test_broken_json_names_file_record_and_field(fresh, edit, record, field, message):
    path = _break(fresh, edit)
    with pytest.raises(InputError) as error:
        Dataset(fresh["root"], "val")
    assert error.value.file == str(path)
    assert error.value.record == record and error.value.field == field
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unreadable_or_missing_annotation_file(fresh):
    path = fresh["annotation_files"]["val"]
    path.write_text("{not json")
    with pytest.raises(InputError, match="person_pose_val.json: not valid JSON"):
        Dataset(fresh["root"], "val")
    with pytest.raises(InputError, match="person_pose_test.json: annotation file not found"):
        Dataset(fresh["root"], "test")


def test_bad_label_pngs(fresh):
    root = fresh["root"]
    parts = fresh["images"]["2009_000012"]["part_map"].copy()
    parts[5, 5] = 9
    Image.fromarray(parts).save(root / "parts" / "2009_000012.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "instances" / "2009_000012.png")
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(root / "parts" / "2010_000001.png")
    Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(root / "instances" / "2010_000005.png")
    dataset = Dataset(root, "val")
    with pytest.raises(InputError, match=r"parts/2009_000012\.png: values \[9\] are not part"):
        dataset[0].part_map
    with pytest.raises(InputError, match=r"instances/2009_000012\.png.*is 10x10 pixels but the "
                                         r"annotation file says 96x72"):
        dataset[0].instance_map
    with pytest.raises(InputError, match=r"parts/2010_000001\.png: label PNG has mode RGB"):
        dataset[1].part_map
    with pytest.raises(InputError, match=r"instances/2010_000005\.png: label PNG has mode RGB"):
        dataset[2].instance_map


def test_statistics_count_what_was_written(written):
    stats = Dataset(written["root"], "val").statistics()
    records = [written["images"][v] for v in written["splits"]["val"]]
    assert stats["images"] == 3 and stats["pose_annotated_images"] == 2
    assert stats["persons"] == sum(len(r["instances"]) for r in records)
    visibility = np.concatenate([r["keypoints"][..., 2] for r in records])
    for j, name in enumerate(schema.JOINT_NAMES):
        assert stats["joints"][name] == {"visible": int((visibility[:, j] == 2).sum()),
                                         "occluded": int((visibility[:, j] == 1).sum())}
    sizes = np.concatenate([r["masks"].sum(axis=(1, 2)) / (r["width"] * r["height"])
                            for r in records])
    assert list(stats["persons_by_size"].values()) == np.bincount(
        schema.size_bucket(sizes), minlength=4).tolist() == [1, 1, 1, 2]
    pixels = np.concatenate([r["part_map"].ravel() for r in records])
    assert stats["part_pixel_share"]["head"] == pytest.approx((pixels == 1).mean())
    assert stats["part_pixel_share"]["ignore"] == pytest.approx(16 / pixels.size)
    assert sum(stats["part_pixel_share"].values()) == pytest.approx(1)


def test_cli_info_prints_a_table_and_writes_json(written, tmp_path):
    out = tmp_path / "stats.json"
    result = CliRunner().invoke(main, ["info", str(written["root"]), "--json", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["train", "val"]
    assert lines[1].split() == ["images", "2", "3"]
    assert "  l_wrist" in result.output and "XS (< 0.5%)" in result.output
    assert [line.split()[-2:] for line in lines if line.startswith("  l_elbow")] == [["1/1",
                                                                                      "3/0"]]
    assert json.loads(out.read_text())["val"]["persons"] == 5


def test_cli_info_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["info", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'annotations'}: no person_pose_<split>.json annotation file "
        "(run `ppp prepare` first)"]


def test_importing_the_library_does_not_import_torch():
    code = ("import sys, pascal_person_pose, pascal_person_pose.dataset, pascal_person_pose.cli, "
            "pascal_person_pose.transforms, pascal_person_pose.vis; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


class TestTorchAdapter:
    torch = pytest.importorskip("torch")

    def test_items_are_tensors_matching_the_sample(self, written):
        from pascal_person_pose.torch_dataset import TorchDataset

        dataset = Dataset(written["root"], "val")
        item = TorchDataset(dataset)[0]
        record = written["images"]["2009_000012"]
        assert item["image"].shape == (3, 72, 96) and item["image"].dtype == self.torch.float32
        assert 0 <= item["image"].min() and item["image"].max() <= 1
        assert item["part_map"].dtype == self.torch.int64
        assert self.torch.equal(item["part_map"], self.torch.from_numpy(
            record["part_map"].astype(np.int64)))
        assert self.torch.equal(item["instance_map"], self.torch.from_numpy(
            record["instance_map"].astype(np.int64)))
        assert item["masks"].shape == (3, 72, 96) and item["masks"].dtype == self.torch.bool
        assert self.torch.equal(item["keypoints"], self.torch.from_numpy(record["keypoints"]))
        assert self.torch.equal(item["boxes"], self.torch.from_numpy(record["boxes"]))
        assert item["image_id"].item() == 2009000012

    def test_transform_is_applied_and_seeded_from_torch(self, written):
        from pascal_person_pose.torch_dataset import TorchDataset
        from pascal_person_pose.transforms import Compose, RandomCrop, RandomFlip

        torch = self.torch
        dataset = TorchDataset(Dataset(written["root"], "val"),
                               Compose([RandomFlip(0.5), RandomCrop(40, 40)]))
        torch.manual_seed(3)
        first = [dataset[0]["keypoints"] for _ in range(6)]
        torch.manual_seed(3)
        again = [dataset[0]["keypoints"] for _ in range(6)]
        assert all(torch.equal(a, b) for a, b in zip(first, again))
        assert len({a.numpy().tobytes() for a in first}) > 1  # not the same draw every time
        assert dataset[0]["image"].shape == (3, 40, 40)

    def test_collate_pads_sizes_and_persons(self, written):
        from torch.utils.data import DataLoader

        from pascal_person_pose.torch_dataset import TorchDataset, collate

        torch = self.torch
        loader = DataLoader(TorchDataset(Dataset(written["root"], "val")), batch_size=3,
                            collate_fn=collate)
        batch = next(iter(loader))
        assert batch["image"].shape == (3, 3, 72, 96)
        assert batch["keypoints"].shape == (3, 3, 14, 3)
        assert batch["masks"].shape == (3, 3, 72, 96)
        assert batch["person_valid"].tolist() == [[True] * 3, [False] * 3, [True, True, False]]
        assert batch["image_size"].tolist() == [[72, 96], [48, 64], [64, 80]]
        assert (batch["part_map"][1, 48:] == schema.IGNORE_LABEL).all()
        assert (batch["part_map"][1, :, 64:] == schema.IGNORE_LABEL).all()
        assert (batch["image"][1, :, 48:] == 0).all()
        assert (batch["keypoints"][2, 2] == 0).all() and (batch["boxes"][1] == 0).all()
        assert batch["image_id"].tolist() == [2009000012, 2010000001, 2010000005]
        assert torch.equal(batch["part_map"][0], torch.from_numpy(
            written["images"]["2009_000012"]["part_map"].astype(np.int64)))
