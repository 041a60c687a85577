"""VOC JPEGImages and id lists."""

import numpy as np
import pytest
from PIL import Image

from pascal_person_pose.errors import InputError
from pascal_person_pose.sources import voc


@pytest.fixture
def rgb():
    y, x = np.mgrid[0:48, 0:64]
    return np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)


def one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_write_and_read_jpeg(tmp_path, rgb):
    path = tmp_path / "JPEGImages" / "2008_000001.jpg"
    voc.write_jpeg(path, rgb, quality=95)
    assert Image.open(path).format == "JPEG"
    image = voc.read_image(path)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8 and image.flags.writeable
    assert np.abs(image.astype(int) - rgb).mean() < 3
    assert voc.image_size(path) == (64, 48)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_grayscale_jpeg_reads_as_rgb(tmp_path):
    path = tmp_path / "gray.jpg"
    Image.fromarray(np.full((10, 20), 120, np.uint8), "L").save(path)
    image = voc.read_image(path)
    assert image.shape == (10, 20, 3)
    assert np.abs(image.astype(int) - 120).max() <= 1


def test_image_size_reads_only_the_header(tmp_path, rgb):
    path = tmp_path / "x.jpg"
    voc.write_jpeg(path, rgb)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(path.read_bytes()[:700])
    assert voc.image_size(truncated) == (64, 48)  # the pixels are never decoded
    with pytest.raises(InputError) as e:
        voc.read_image(truncated)
    one_line_error(e, "truncated.jpg", "truncated")


def test_unreadable_and_missing_images(tmp_path):
    (tmp_path / "text.jpg").write_text("not an image")
    for reader in (voc.read_image, voc.image_size):
        with pytest.raises(InputError) as e:
            reader(tmp_path / "text.jpg")
        one_line_error(e, "text.jpg", "not a readable image")
        with pytest.raises(InputError) as e:
            reader(tmp_path / "absent.jpg")
        one_line_error(e, "absent.jpg", "not found")


def test_write_jpeg_refuses_other_arrays(tmp_path, rgb):
    with pytest.raises(ValueError):
        voc.write_jpeg(tmp_path / "a.jpg", rgb[..., 0])
    with pytest.raises(ValueError):
        voc.write_jpeg(tmp_path / "b.jpg", rgb.astype(np.float32))
    assert list(tmp_path.iterdir()) == []


def test_id_list_strips_whitespace_and_skips_blank_lines(tmp_path):
    path = tmp_path / "train_id.txt"
    path.write_bytes(b"\xef\xbb\xbf2008_000001\r\n  2008_000002  \n\n\t\n2008_000010")
    assert voc.read_id_list(path) == ["2008_000001", "2008_000002", "2008_000010"]


def test_id_list_round_trip(tmp_path):
    ids = ["2010_005243", "2008_000652", "2009_001103"]
    path = tmp_path / "lists" / "val_id.txt"
    voc.write_id_list(path, ids)
    assert path.read_text() == "2010_005243\n2008_000652\n2009_001103\n"
    assert voc.read_id_list(path) == ids
    voc.write_id_list(path, [])
    assert voc.read_id_list(path) == []


def test_id_list_errors_name_the_line(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("2008_000001\n\n2008_000002 1\n")
    with pytest.raises(InputError) as e:
        voc.read_id_list(path)
    one_line_error(e, "ids.txt", "line 3", "one id per line")
    path.write_text("2008_000001\n2008_000002\n2008_000001\n")
    with pytest.raises(InputError) as e:
        voc.read_id_list(path)
    one_line_error(e, "ids.txt", "line 3", "duplicate id 2008_000001", "line 1")
    with pytest.raises(InputError) as e:
        voc.read_id_list(tmp_path / "absent.txt")
    one_line_error(e, "absent.txt", "not found")
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError) as e:
        voc.read_id_list(path)
    one_line_error(e, "ids.txt", "not a readable text file")


def test_write_id_list_refuses_bad_ids(tmp_path):
    for ids in (["a b"], [""], [" a"], ["a", "a"]):
        with pytest.raises(ValueError):
            voc.write_id_list(tmp_path / "x.txt", ids)
    assert list(tmp_path.iterdir()) == []
