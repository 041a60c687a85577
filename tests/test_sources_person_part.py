"""Person-Part label PNGs: the three encodings found in the wild, detected automatically."""

import numpy as np
import pytest
from PIL import Image

from pascal_person_pose.errors import InputError
from pascal_person_pose.schema import GRAY_TO_ID, PARTS, voc_palette
from pascal_person_pose.sources import person_part


@pytest.fixture
def labels():
    """Every part id, ignore pixels, and a realistic mostly-background layout."""
    rng = np.random.default_rng(0)
    out = np.zeros((40, 60), np.uint8)
    out[5:35, 10:50] = rng.integers(0, 7, size=(30, 40))
    out[0, :5] = 255
    return out


def gray_rendering(ids):
    """What a release rendered to grayscale holds: the luma of each VOC colour."""
    lut = np.zeros(256, np.uint8)
    for part in PARTS:
        lut[part.id] = part.gray
    lut[255] = 255
    return lut[ids]


def save(path, array, mode):
    image = Image.fromarray(array, mode)
    if mode == "P":
        image.putpalette(voc_palette())
    image.save(path)
    return path


@pytest.mark.parametrize("encoding", ["palette", "gray", "raw"])
def test_each_encoding_written_by_hand_reads_as_ids(tmp_path, labels, encoding):
    array = gray_rendering(labels) if encoding == "gray" else labels
    path = save(tmp_path / "x.png", array, "P" if encoding == "palette" else "L")
    read = person_part.read_label_png(path)
    assert read.dtype == np.uint8 and read.flags.writeable
    assert np.array_equal(read, labels)


@pytest.mark.parametrize("encoding", ["palette", "gray", "raw"])
def test_write_then_read_round_trips(tmp_path, labels, encoding):
    path = tmp_path / "sub" / f"{encoding}.png"
    person_part.write_label_png(path, labels, encoding=encoding)
    image = Image.open(path)
    assert image.mode == ("P" if encoding == "palette" else "L")
    values = set(np.unique(np.asarray(image)).tolist())
    assert values == ({0, 255} | set(GRAY_TO_ID) if encoding == "gray" else
                      set(range(7)) | {255})
    assert np.array_equal(person_part.read_label_png(path), labels)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_palette_written_is_the_voc_palette(tmp_path, labels):
    path = tmp_path / "x.png"
    person_part.write_label_png(path, labels)
    assert Image.open(path).convert("RGB").getpixel((0, 10)) == (0, 0, 0)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    y, x = np.argwhere(labels == 1)[0]
    assert tuple(rgb[y, x]) == PARTS[1].colour


def test_detect_encoding():
    assert person_part.detect_encoding(np.array([0, 1, 6, 255]), "P") == "palette"
    assert person_part.detect_encoding(np.array([0, 3, 6]), "L") == "raw"
    assert person_part.detect_encoding(np.array([0, 14, 38, 113, 255]), "L") == "gray"
    assert person_part.detect_encoding(np.array([52]), "L") == "gray"
    # the overlap of the two grayscale encodings: both read the same
    assert person_part.detect_encoding(np.array([0]), "L") == "raw"
    assert person_part.detect_encoding(np.array([0, 255]), "L") == "raw"
    assert person_part.detect_encoding(np.array([], int), "L") == "raw"
    assert person_part.detect_encoding(np.full((4, 5), 89, np.uint8), "L") == "gray"


def test_all_background_image_reads_the_same_under_both_readings(tmp_path):
    path = save(tmp_path / "empty.png", np.zeros((5, 7), np.uint8), "L")
    assert not person_part.read_label_png(path).any()


@pytest.mark.parametrize("mode,values,needles", [
    ("P", [0, 1, 7, 15], ["palette indices [7, 15]"]),
    ("L", [0, 38, 200], ["[200]"]),
    ("L", [0, 3, 38], ["mix", "[3]", "[38]"]),
    ("RGB", [], ["'RGB'"]),
    ("I;16", [], ["'I;16'"]),
])
def test_detect_encoding_refuses_the_rest(mode, values, needles):
    with pytest.raises(ValueError) as e:
        person_part.detect_encoding(np.array(values, int), mode)
    for needle in needles:
        assert needle in str(e.value)


def one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_png_with_unknown_values_names_file_and_values(tmp_path, labels):
    bad = labels.copy()
    bad[3, 3] = 9
    with pytest.raises(InputError) as e:
        person_part.read_label_png(save(tmp_path / "unknown.png", bad, "P"))
    one_line_error(e, "unknown.png", "[9]")
    gray = gray_rendering(labels)
    gray[3, 3] = 128
    with pytest.raises(InputError) as e:
        person_part.read_label_png(save(tmp_path / "gray.png", gray, "L"))
    one_line_error(e, "gray.png", "[128]")


def test_rgb_and_16_bit_pngs_are_refused(tmp_path, labels):
    rgb = np.asarray(Image.fromarray(labels, "P").convert("RGB"))
    with pytest.raises(InputError) as e:
        person_part.read_label_png(save(tmp_path / "rgb.png", rgb, "RGB"))
    one_line_error(e, "rgb.png", "'RGB'")
    path = tmp_path / "deep.png"
    Image.fromarray(labels.astype(np.uint16)).save(path)
    with pytest.raises(InputError) as e:
        person_part.read_label_png(path)
    one_line_error(e, "deep.png", "mode")


def test_truncated_and_missing_pngs(tmp_path, labels):
    path = save(tmp_path / "x.png", labels, "P")
    broken = tmp_path / "broken.png"
    broken.write_bytes(path.read_bytes()[:60])
    with pytest.raises(InputError) as e:
        person_part.read_label_png(broken)
    one_line_error(e, "broken.png")
    with pytest.raises(InputError) as e:
        person_part.read_label_png(tmp_path / "absent.png")
    one_line_error(e, "absent.png", "not found")


def test_writer_refuses_bad_labels(tmp_path, labels):
    with pytest.raises(ValueError):
        person_part.write_label_png(tmp_path / "a.png", np.full((3, 3), 7, np.uint8))
    with pytest.raises(ValueError):
        person_part.write_label_png(tmp_path / "b.png", labels.astype(np.int32))
    with pytest.raises(ValueError):
        person_part.write_label_png(tmp_path / "c.png", labels, encoding="rgb")
    assert list(tmp_path.iterdir()) == []
