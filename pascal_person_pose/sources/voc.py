"""PASCAL VOC2010: ``JPEGImages/<id>.jpg`` and id lists (one id per line).

Images are handed out as RGB uint8 whatever their stored mode (VOC has a few grayscale
JPEGs), without EXIF rotation: the annotations are drawn on the stored pixel grid.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pascal_person_pose.atomic import atomic_open, write_text
from pascal_person_pose.errors import InputError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_GRAY8 = b"\x08\x00"  # IHDR bit depth 8, colour type 0 (grayscale), bytes 24-25


@contextlib.contextmanager
def _image_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn PIL's errors for a missing, truncated or unknown file into one InputError."""
    try:
        yield
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise InputError(path, f"not a readable image ({reason})") from None


def open_image(path: str | os.PathLike) -> Image.Image:
    """The fully decoded PIL image, so that a truncated file fails here and not later."""
    with _image_errors(path):
        image = Image.open(path)
        image.load()
    return image


def read_label_values(path: str | os.PathLike) -> np.ndarray:
    """The 8-bit values of a one-channel label PNG (palette indices or gray values), (H, W).

    8-bit grayscale goes through OpenCV's decoder, about 2x faster than Pillow's and free of
    the GIL (scoring decodes thousands of maps on threads); palettes through Pillow, which
    keeps the indices. Anything but one 8-bit channel is an InputError.
    """
    with _image_errors(path):
        data = Path(path).read_bytes()
        if data[:8] == _PNG_SIGNATURE and data[24:26] == _PNG_GRAY8:
            labels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if labels is not None and labels.ndim == 2 and labels.dtype == np.uint8:
                return labels
        with Image.open(io.BytesIO(data)) as image:
            if image.mode not in ("L", "P"):
                raise InputError(path, f"label PNG has mode {image.mode}; expected one 8-bit "
                                       "channel of label values (L or P)")
            return np.array(image)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image as a writable (H, W, 3) uint8 RGB array."""
    image = open_image(path)
    with _image_errors(path):
        return np.array(image.convert("RGB"))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file header alone: cheap enough to call for every image."""
    with _image_errors(path), Image.open(path) as image:
        return image.size


def write_jpeg(path: str | os.PathLike, rgb: np.ndarray, quality: int = 90) -> None:
    """Write an (H, W, 3) uint8 RGB array as a JPEG, atomically."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
    with atomic_open(path, "wb") as f:
        Image.fromarray(rgb, "RGB").save(f, format="JPEG", quality=quality)


def read_id_list(path: str | os.PathLike) -> list[str]:
    """The ids of a list file, in file order: one per line, blanks ignored, no duplicates."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"not a readable text file ({e})") from None
    ids: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        token = line.strip()
        if not token:
            continue
        if len(token.split()) != 1:
            raise InputError(path, f"expected one id per line, got {token!r}",
                             record=f"line {number}")
        if token in first_line:
            raise InputError(path, f"duplicate id {token} (first on line {first_line[token]})",
                             record=f"line {number}")
        first_line[token] = number
        ids.append(token)
    return ids


def write_id_list(path: str | os.PathLike, ids: Iterable[str]) -> None:
    """Write ids one per line (with a final newline), atomically; the inverse of the reader."""
    ids = list(ids)
    bad = [i for i in ids if not i or len(i.split()) != 1 or i != i.strip()]
    if bad:
        raise ValueError(f"ids must be non-empty and free of whitespace: {bad[:5]}")
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    write_text(path, "".join(f"{i}\n" for i in ids))
