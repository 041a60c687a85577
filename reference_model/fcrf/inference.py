"""FCRF inference on one box: proposals -> features -> P_ij -> the program -> poses.

``infer_box`` is what the networks call for each detection box; ``fcrf_box`` returns the
intermediate results too (proposals, the program, the solver's certificate), for the
benchmark and for anyone checking optimality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .assembly import MISSING_SCORE, Pose, closest_to_centre, cluster_poses, to_image
from .features import PartRegions, pair_features
from .ilp import SOLVERS, solve_program
from .maps import ScoreMaps
from .pairwise_model import PairwiseModel
from .program import BoxProgram, Solution
from .proposals import ProposalParams, Proposals, joint_proposals


@dataclass(frozen=True)
class FcrfParams:
    proposals: ProposalParams = ProposalParams()
    solver: str = "highs"  # one of ilp.SOLVERS
    time_limit: float = 1.0  # seconds per box ("within 1 sec", paper Sec. 3.1)
    lp_cuts: int = 1000  # triangles per LP cutting-plane round (0: integer loop only)
    missing_score: float = MISSING_SCORE
    poses_per_box: str = "closest"  # "closest" (the paper) or "all"

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; expected one of {SOLVERS}")
        if self.poses_per_box not in ("closest", "all"):
            raise ValueError(f"poses_per_box must be 'closest' or 'all', "
                             f"got {self.poses_per_box!r}")


@dataclass(frozen=True)
class FcrfResult:
    proposals: Proposals
    program: BoxProgram
    solution: Solution
    poses: list[Pose]  # every assembled person, map coordinates, best first


def box_program(maps: ScoreMaps, model: PairwiseModel,
                proposal_params: ProposalParams = ProposalParams()
                ) -> tuple[Proposals, BoxProgram]:
    """Proposals of the maps and the program over them."""
    proposals = joint_proposals(maps.Pj, proposal_params)
    regions = PartRegions.from_scores(maps.Ps) if model.use_segment_features else None
    features = pair_features(proposals, maps.Pn, regions, model.feature_params)
    P = np.zeros((len(proposals), len(proposals)))
    P[features.i, features.j] = model.probability(features)
    P = P + P.T
    return proposals, BoxProgram.from_probabilities(proposals.types, proposals.scores, P)


def fcrf_box(Pj: np.ndarray, Pn: np.ndarray, Ps: np.ndarray, model: PairwiseModel,
             params: FcrfParams = FcrfParams()) -> FcrfResult:
    """Run the FCRF on one set of maps; poses stay in map coordinates."""
    proposals, program = box_program(ScoreMaps(Pj, Pn, Ps), model, params.proposals)
    solution = solve_program(program, params.solver, params.time_limit,
                             lp_cuts=params.lp_cuts)
    poses = cluster_poses(proposals, solution.person, params.missing_score)
    return FcrfResult(proposals, program, solution, poses)


def infer_box(Pj: np.ndarray, Pn: np.ndarray, Ps: np.ndarray, model: PairwiseModel,
              box: Sequence[float], scale: float | tuple[float, float] = 1.0,
              params: FcrfParams = FcrfParams()) -> list[Pose]:
    """Poses of one detection box in image coordinates (at most one with "closest").

    ``Pj``, ``Pn``, ``Ps``: the maps of the box region resized by ``scale``, channels as
    in ``maps``; ``box`` = (x1, y1, x2, y2) in the image.
    """
    result = fcrf_box(Pj, Pn, Ps, model, params)
    poses = [to_image(p, box, scale) for p in result.poses]
    if params.poses_per_box == "all":
        return poses
    best = closest_to_centre(poses, box)
    return [] if best is None else [best]
