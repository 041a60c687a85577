"""Full-image mode: the same FCRF over the whole image, the paper's "w/o boxes" baseline.

No detection boxes: proposals come from the maps of the whole image, with more per
type (``FULL_IMAGE_PARAMS``: 30 instead of 6, since every person of the image competes),
every assembled person is a pose, and duplicates are removed by the same pose NMS. The
paper credits boxes with a ~40x faster inference; ``benchmark/perf/fcrf_speed.py``
measures that ratio on the same scenes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .assembly import Pose, assemble_image, to_image
from .inference import FcrfParams, fcrf_box
from .pairwise_model import PairwiseModel
from .proposals import ProposalParams

FULL_IMAGE_PARAMS = FcrfParams(proposals=ProposalParams(max_per_type=30), time_limit=60.0,
                               poses_per_box="all")


def infer_image(Pj: np.ndarray, Pn: np.ndarray, Ps: np.ndarray, model: PairwiseModel,
                scale: float | tuple[float, float] = 1.0,
                params: FcrfParams = FULL_IMAGE_PARAMS) -> list[Pose]:
    """Poses of a whole image (maps of the image resized by ``scale``), after pose NMS."""
    result = fcrf_box(Pj, Pn, Ps, model, replace(params, poses_per_box="all"))
    return assemble_image([to_image(p, (0.0, 0.0), scale) for p in result.poses])
