"""The paper's FCRF (Sec. 3.1): joint proposals assembled into people by an exact integer program.

Pipeline per detection box: ``Pj`` -> joint proposals (``proposals``) -> pairwise
features f(Pn), f(Ps) (``features``) -> same-person probabilities (``pairwise_model``)
-> the program (``program``) solved exactly (``ilp``; ``ilp_pulp`` is the readable
reference, ``gaec`` the greedy warm start) -> poses (``assembly``). ``maps`` defines the
channel layout of the inputs, ``training`` fits the pairwise model from GT, ``full_image``
runs the same inference without boxes, and ``synthetic`` renders inputs for tests and
benchmarks. numpy/scipy only (plus highspy, and pulp for the reference): no torch.
"""

from .assembly import Pose, assemble_image, pose_scores
from .features import FeatureParams, PartRegions, pair_features
from .full_image import FULL_IMAGE_PARAMS, infer_image
from .ilp import SOLVERS, solve_program
from .inference import FcrfParams, FcrfResult, box_program, fcrf_box, infer_box
from .maps import NUM_OFFSET_CHANNELS, OFFSET_CHANNEL, ScoreMaps, offset_channel
from .pairwise_model import PairwiseModel
from .program import BoxProgram, Solution
from .proposals import ProposalParams, Proposals, joint_proposals
from .synthetic import RenderParams, random_people, random_program, render_score_maps
from .training import TrainingBox, fit_pairwise_model

__all__ = [
    "BoxProgram", "FULL_IMAGE_PARAMS", "FcrfParams", "FcrfResult", "FeatureParams",
    "NUM_OFFSET_CHANNELS", "OFFSET_CHANNEL", "PairwiseModel", "PartRegions", "Pose",
    "ProposalParams", "Proposals", "RenderParams", "SOLVERS", "ScoreMaps", "Solution",
    "TrainingBox", "assemble_image", "box_program", "fcrf_box", "fit_pairwise_model",
    "infer_box", "infer_image", "joint_proposals", "offset_channel", "pair_features",
    "pose_scores", "random_people", "random_program", "render_score_maps", "solve_program",
]
