"""The single source of truth for joints, part classes, fine parts and the skeleton
(docs/formats.md).

Four tables of records, as cityscapesScripts' ``labels.py`` does for its labels; every
lookup below is derived from them, so no other module spells a joint or part list.

Left and right are the person's own left and right (see ``sources.pose_mat`` for the
``side_order`` option that maps the upstream files onto this convention).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Part:
    id: int
    name: str
    title: str  # column title in the paper's Table 3
    colour: tuple[int, int, int]  # the VOC palette colour of the label id
    gray: int  # the grayscale rendering of that colour found in some releases

    @property
    def fine_parts(self) -> tuple[str, ...]:
        """The PASCAL-Part fine parts merged into this class (``FINE_PARTS`` order)."""
        return tuple(f.name for f in FINE_PARTS if f.part == self.name)


@dataclass(frozen=True)
class FinePart:
    """A PASCAL-Part person part: its label id in ``parts_fine/<id>.png`` (the PASCAL-Part
    devkit's ``part2ind`` id for persons), its ``part_name`` in the .mat files, the part
    class it merges into, and its side, the person's own ('l', 'r'; None on the centre line).
    """

    id: int
    name: str
    part: str
    side: str | None


@dataclass(frozen=True)
class Joint:
    index: int
    name: str
    parts: tuple[str, ...]  # part classes a joint lies on or between
    flip: str  # the joint's mirror partner (itself for the centre line)
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class Edge:
    a: str
    b: str
    part: str  # the part class a bone lies in


IGNORE_LABEL = 255

PARTS: tuple[Part, ...] = (
    Part(0, "background", "Background", (0, 0, 0), 0),
    Part(1, "head", "Head", (128, 0, 0), 38),
    Part(2, "torso", "Torso", (0, 128, 0), 75),
    Part(3, "upper_arm", "U-arms", (128, 128, 0), 113),
    Part(4, "lower_arm", "L-arms", (0, 0, 128), 14),
    Part(5, "upper_leg", "U-legs", (128, 0, 128), 52),
    Part(6, "lower_leg", "L-legs", (0, 128, 128), 89),
)

# Listed by part class (the synthetic bodies draw them in this order); 0 is background.
FINE_PARTS: tuple[FinePart, ...] = (
    FinePart(1, "head", "head", None),
    FinePart(10, "hair", "head", None),
    FinePart(2, "leye", "head", "l"),
    FinePart(3, "reye", "head", "r"),
    FinePart(4, "lear", "head", "l"),
    FinePart(5, "rear", "head", "r"),
    FinePart(6, "lebrow", "head", "l"),
    FinePart(7, "rebrow", "head", "r"),
    FinePart(8, "nose", "head", None),
    FinePart(9, "mouth", "head", None),
    FinePart(11, "torso", "torso", None),
    FinePart(12, "neck", "torso", None),
    FinePart(14, "luarm", "upper_arm", "l"),
    FinePart(17, "ruarm", "upper_arm", "r"),
    FinePart(13, "llarm", "lower_arm", "l"),
    FinePart(16, "rlarm", "lower_arm", "r"),
    FinePart(15, "lhand", "lower_arm", "l"),
    FinePart(18, "rhand", "lower_arm", "r"),
    FinePart(20, "luleg", "upper_leg", "l"),
    FinePart(23, "ruleg", "upper_leg", "r"),
    FinePart(19, "llleg", "lower_leg", "l"),
    FinePart(22, "rlleg", "lower_leg", "r"),
    FinePart(21, "lfoot", "lower_leg", "l"),
    FinePart(24, "rfoot", "lower_leg", "r"),
)

JOINTS: tuple[Joint, ...] = (
    Joint(0, "forehead", ("head",), "forehead", (255, 0, 85)),
    Joint(1, "neck", ("head", "torso"), "neck", (255, 0, 0)),
    Joint(2, "r_shoulder", ("torso", "upper_arm"), "l_shoulder", (255, 85, 0)),
    Joint(3, "r_elbow", ("upper_arm", "lower_arm"), "l_elbow", (255, 170, 0)),
    Joint(4, "r_wrist", ("lower_arm",), "l_wrist", (255, 255, 0)),
    Joint(5, "r_hip", ("torso", "upper_leg"), "l_hip", (0, 255, 85)),
    Joint(6, "r_knee", ("upper_leg", "lower_leg"), "l_knee", (0, 255, 170)),
    Joint(7, "r_ankle", ("lower_leg",), "l_ankle", (0, 255, 255)),
    Joint(8, "l_shoulder", ("torso", "upper_arm"), "r_shoulder", (170, 255, 0)),
    Joint(9, "l_elbow", ("upper_arm", "lower_arm"), "r_elbow", (85, 255, 0)),
    Joint(10, "l_wrist", ("lower_arm",), "r_wrist", (0, 255, 0)),
    Joint(11, "l_hip", ("torso", "upper_leg"), "r_hip", (0, 170, 255)),
    Joint(12, "l_knee", ("upper_leg", "lower_leg"), "r_knee", (0, 85, 255)),
    Joint(13, "l_ankle", ("lower_leg",), "r_ankle", (0, 0, 255)),
)

SKELETON: tuple[Edge, ...] = (
    Edge("forehead", "neck", "head"),
    Edge("neck", "r_shoulder", "torso"),
    Edge("neck", "l_shoulder", "torso"),
    Edge("r_shoulder", "r_elbow", "upper_arm"),
    Edge("l_shoulder", "l_elbow", "upper_arm"),
    Edge("r_elbow", "r_wrist", "lower_arm"),
    Edge("l_elbow", "l_wrist", "lower_arm"),
    Edge("r_shoulder", "r_hip", "torso"),
    Edge("l_shoulder", "l_hip", "torso"),
    Edge("r_hip", "l_hip", "torso"),
    Edge("r_hip", "r_knee", "upper_leg"),
    Edge("l_hip", "l_knee", "upper_leg"),
    Edge("r_knee", "r_ankle", "lower_leg"),
    Edge("l_knee", "l_ankle", "lower_leg"),
)

# Column groups of the paper's tables (Table 1: pose mAP; Table 2: ADK).
POSE_AP_COLUMNS: dict[str, tuple[str, ...]] = {
    "Head": ("forehead", "neck"),
    "Shoulder": ("r_shoulder", "l_shoulder"),
    "Elbow": ("r_elbow", "l_elbow"),
    "Wrist": ("r_wrist", "l_wrist"),
    "Hip": ("r_hip", "l_hip"),
    "Knee": ("r_knee", "l_knee"),
    "Ankle": ("r_ankle", "l_ankle"),
    "U-Body": ("forehead", "neck", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow",
               "r_wrist", "l_wrist"),
    "Total": tuple(j.name for j in JOINTS),
}
ADK_COLUMNS: dict[str, tuple[str, ...]] = {
    "Forehead": ("forehead",),
    "Neck": ("neck",),
    **{k: v for k, v in POSE_AP_COLUMNS.items() if k not in ("Head", "U-Body", "Total")},
}

# Person-size buckets of Table 4 (mIOU by person size). HAZN's thresholds are not public,
# so ours are explicit: a person's size is its instance-mask pixel count over the image area,
# XS < 0.5% <= S < 2% <= M < 8% <= L. Every result that uses them records them.
SIZE_BUCKETS: tuple[str, ...] = ("XS", "S", "M", "L")
SIZE_THRESHOLDS: tuple[float, float, float] = (0.005, 0.02, 0.08)

# Derived lookups.
NUM_JOINTS = len(JOINTS)
NUM_PARTS = len(PARTS)
JOINT_NAMES: tuple[str, ...] = tuple(j.name for j in JOINTS)
PART_NAMES: tuple[str, ...] = tuple(p.name for p in PARTS)
name2joint = {j.name: j for j in JOINTS}
name2part = {p.name: p for p in PARTS}
id2part = {p.id: p for p in PARTS}
FLIP_INDEX: np.ndarray = np.array([name2joint[j.flip].index for j in JOINTS])
FLIP_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (j.index, name2joint[j.flip].index) for j in JOINTS if j.index < name2joint[j.flip].index
)
SKELETON_INDEX: tuple[tuple[int, int], ...] = tuple(
    (name2joint[e.a].index, name2joint[e.b].index) for e in SKELETON
)
EDGE_PART_ID: tuple[int, ...] = tuple(name2part[e.part].id for e in SKELETON)
# A bone's colour: the mean of its two joints' colours (drawings, framework metadata).
SKELETON_COLOURS: tuple[tuple[int, int, int], ...] = tuple(
    tuple(int(c) for c in np.add(name2joint[e.a].colour, name2joint[e.b].colour) // 2)
    for e in SKELETON
)
JOINT_PART_IDS: tuple[tuple[int, ...], ...] = tuple(
    tuple(name2part[p].id for p in j.parts) for j in JOINTS
)
name2fine = {f.name: f for f in FINE_PARTS}
id2fine = {f.id: f for f in FINE_PARTS}
NUM_FINE_IDS = max(id2fine) + 1  # fine ids are 0 (background) .. NUM_FINE_IDS - 1
FINE_PART_TO_ID: dict[str, int] = {f.name: name2part[f.part].id for f in FINE_PARTS}
# Lookups by fine id (index 0 = background): the part class, and the side as -1 person's
# left, +1 person's right, 0 centre line or background.
FINE_ID_TO_PART: np.ndarray = np.array(
    [name2part[id2fine[i].part].id if i in id2fine else 0 for i in range(NUM_FINE_IDS)], np.uint8)
FINE_ID_SIDE: np.ndarray = np.array(
    [{"l": -1, "r": 1}.get(id2fine[i].side, 0) if i in id2fine else 0
     for i in range(NUM_FINE_IDS)], np.int8)
PART_COLOURS: np.ndarray = np.array([p.colour for p in PARTS], dtype=np.uint8)
GRAY_TO_ID: dict[int, int] = {p.gray: p.id for p in PARTS}


@functools.cache
def voc_palette() -> tuple[int, ...]:
    """The 256-entry PASCAL VOC palette (flat RGB) used by label PNGs (255 is cream)."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return tuple(palette)


def size_bucket(fraction: np.ndarray | float,
                thresholds: tuple[float, ...] = SIZE_THRESHOLDS) -> np.ndarray:
    """Bucket index (0 = XS ... 3 = L) of person sizes given as fractions of the image area."""
    return np.searchsorted(np.asarray(thresholds), fraction, side="right")


def coco_category() -> dict:
    """The COCO ``categories`` entry for a person with our 14 keypoints (1-based skeleton)."""
    return {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(JOINT_NAMES),
        "skeleton": [[a + 1, b + 1] for a, b in SKELETON_INDEX],
    }


def part_categories() -> list[dict]:
    """The ``part_categories`` entry of the canonical JSON."""
    return [{"id": p.id, "name": p.name} for p in PARTS]


def fine_part_categories() -> list[dict]:
    """The fine part ids of ``parts_fine/<id>.png`` with their names, classes and sides."""
    return [{"id": f.id, "name": f.name, "part": f.part, "side": f.side}
            for f in sorted(FINE_PARTS, key=lambda f: f.id)]
