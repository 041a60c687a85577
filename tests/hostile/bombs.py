"""Zip bombs built in milliseconds: zero-filled members of any declared size.

Deflating a GiB of zeros takes a minute; but after a full flush a deflate stream forgets
its history, so the compressed bytes of one MiB of zeros can be repeated N times (then a
final empty block) to make a valid stream of N MiB. The CRC-32 of the whole member comes
from the CRC of one MiB by zlib's crc32_combine (GF(2) matrices), so the zip is honest:
every size and checksum it declares is true.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

MIB = 1 << 20
_ZEROS = bytes(MIB)
_FINAL_EMPTY_BLOCK = b"\x03\x00"  # a last, empty block with fixed Huffman codes


def _one_mib_block() -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    return deflate.compress(_ZEROS) + deflate.flush(zlib.Z_FULL_FLUSH)


def zeros_deflated(mib: int) -> bytes:
    """A raw deflate stream of ``mib`` MiB of zero bytes (about 1 KiB per MiB)."""
    return _one_mib_block() * mib + _FINAL_EMPTY_BLOCK


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A + B from crc(A), crc(B) and len(B) (zlib's algorithm)."""
    if length2 == 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # the operator for one zero bit
    operator = _gf2_square(_gf2_square(odd))  # ... for one zero byte
    while length2:  # apply "append len(B) zero bytes" to crc(A), squaring per bit
        operator = _gf2_square(operator)
        if length2 & 1:
            crc1 = _gf2_times(operator, crc1)
        length2 >>= 1
    return crc1 ^ crc2


def zeros_crc(mib: int) -> int:
    one = zlib.crc32(_ZEROS)
    crc, length, power, power_length = 0, 0, one, MIB
    while mib:  # binary exponentiation of "append one MiB of zeros"
        if mib & 1:
            crc, length = crc32_combine(crc, power, power_length), length + power_length
        power, power_length = crc32_combine(power, power, power_length), 2 * power_length
        mib >>= 1
    return crc


def write_zip(path: Path, members: list[tuple[str, bytes | int]]) -> Path:
    """A zip whose members are given bytes (deflated) or N MiB of zeros (an int)."""
    body, directory = bytearray(), bytearray()
    for name, content in members:
        raw = name.encode()
        if isinstance(content, int):
            data, crc, size = zeros_deflated(content), zeros_crc(content), content * MIB
        else:
            deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
            data = deflate.compress(content) + deflate.flush()
            crc, size = zlib.crc32(content), len(content)
        offset = len(body)
        common = struct.pack("<HHHHHLLLH", 20, 0, 8, 0, 0x21, crc, len(data), size, len(raw))
        body += b"PK\x03\x04" + common + struct.pack("<H", 0) + raw + data
        directory += (b"PK\x01\x02" + struct.pack("<H", 20) + common
                      + struct.pack("<HHHHLL", 0, 0, 0, 0, 0o644 << 16, offset) + raw)
    end = struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, len(members), len(members),
                      len(directory), len(body), 0)
    path.write_bytes(bytes(body + directory + end))
    return path


def png_declaring(width: int, height: int, idat_mib: int = 1) -> bytes:
    """A valid 8-bit grayscale PNG header declaring ``width`` x ``height``, followed by
    ``idat_mib`` MiB of zero rows (a decoder that trusts the header allocates it all)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload)))

    stream = zlib.compress(bytes(idat_mib * MIB))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                             8, 0, 0, 0, 0))
            + chunk(b"IDAT", stream) + chunk(b"IEND", b""))
