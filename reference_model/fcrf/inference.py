"""The FCRF's one entry point: score maps of a box -> proposals -> P_ij -> program -> people.

:func:`fcrf_box` returns every person the program assembles, in map coordinates, with the
intermediate results (proposals, program, the solver's certificate) for benchmarks and for
anyone checking optimality. Which of those people a box keeps (``assembly.box_person``;
the paper: the one nearest its centre) is the caller's policy (``reference_model.model``).
A whole image is a box too: ``FULL_IMAGE_PARAMS`` gives it more proposals and a longer
time limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .assembly import MISSING_SCORE, Pose, cluster_poses
from .features import PartRegions, pair_features
from .ilp import SOLVERS, solve_program
from .maps import ScoreMaps
from .pairwise_model import PairwiseModel
from .program import BoxProgram, Solution
from .proposals import ProposalParams, Proposals, box_proposals


@dataclass(frozen=True)
class FcrfParams:
    proposals: ProposalParams = ProposalParams()
    solver: str = "highs"  # one of ilp.SOLVERS
    time_limit: float = 1.0  # seconds per box ("within 1 sec", paper Sec. 3.1)
    lp_cuts: int = 1000  # triangles per LP cutting-plane round (0: integer loop only)
    missing_score: float = MISSING_SCORE

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; expected one of {SOLVERS}")


# Without boxes every person of the image competes for the proposals: 30 per type instead
# of 6, and a longer time limit for the larger program.
FULL_IMAGE_PARAMS = FcrfParams(proposals=ProposalParams(max_per_type=30), time_limit=60.0)


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
    proposals = box_proposals(maps, proposal_params)
    regions = PartRegions.from_scores(maps.Ps) if model.use_segment_features else None
    features = pair_features(proposals, maps, regions, model.feature_params)
    P = np.zeros((len(proposals), len(proposals)))
    P[features.i, features.j] = model.probability(features)
    P = P + P.T
    return proposals, BoxProgram.from_probabilities(proposals.types, proposals.scores, P)


def fcrf_box(maps: ScoreMaps, model: PairwiseModel,
             params: FcrfParams = FcrfParams()) -> FcrfResult:
    """Run the FCRF on the maps of one box (or image); poses stay in map coordinates."""
    proposals, program = box_program(maps, model, params.proposals)
    solution = solve_program(program, params.solver, params.time_limit,
                             lp_cuts=params.lp_cuts)
    poses = cluster_poses(proposals, solution.person, params.missing_score)
    return FcrfResult(proposals, program, solution, poses)
