"""The limits on untrusted input, in one place (docs/limits.md explains each figure).

Kept free of heavy imports: the CLI shows these defaults in ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
RATIO_FLOOR = MIB  # zip members smaller than this cannot hide a bomb worth refusing


@dataclass(frozen=True)
class SubmissionLimits:
    """What an untrusted submission may hold; sizes are uncompressed bytes.

    Checked on the sizes a zip declares (and a folder's file sizes) before anything is
    read, so a zip bomb is refused without being inflated; a member that inflates beyond
    its declared size is cut there and fails its CRC check. The defaults leave wide room
    for the real val split (1817 part maps of about 500x375 pixels, 10-100 KB each; a
    pose.json of about 10k poses, a few MB) while bounding what reading costs.
    """

    pose_bytes: int = 128 * MIB  # pose.json: parsing costs a few times its size in memory
    member_bytes: int = 16 * MIB  # any other file (an 8-bit 500x500 map is 0.25 MB raw)
    total_bytes: int = 2048 * MIB  # all files together
    ratio: float = 100.0  # uncompressed / compressed, for zip members over RATIO_FLOOR
    files: int = 20_000  # entries of a zip, or files of a folder

    def for_member(self, name: str) -> int:
        return self.pose_bytes if name == "pose.json" else self.member_bytes


@dataclass(frozen=True)
class DownloadLimits:
    """How long ``ppp download`` waits for one archive.

    ``timeout`` bounds everything spent on one archive (every URL and retry): the largest,
    VOC2010's 1.3 GB tar, needs about 3 hours at 1 Mbit/s. ``min_rate`` over each ``window``
    of seconds catches a stalled or trickling server within a minute, while any working
    connection (a slow one moves 100 KB/s) passes easily; ``window`` is also how long one
    read may wait for a byte.
    """

    timeout: float = 6 * 3600.0
    min_rate: float = 4096.0  # bytes per second
    window: float = 60.0
