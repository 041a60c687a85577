"""The paper's FCRF (Sec. 3.1): joint proposals assembled into people by an exact integer program.

Pipeline per detection box: ``Pj`` -> joint proposals (``proposals``) -> pairwise
features f(Pn), f(Ps) (``features``) -> same-person probabilities (``pairwise_model``)
-> the program (``program``) solved exactly (``ilp``; ``ilp_pulp`` is the readable
reference, ``gaec`` the greedy warm start) -> people (``assembly``); ``inference.fcrf_box``
runs it, the one entry point, for a box or a whole image. ``maps`` defines the inputs'
channel layout, ``training`` fits the pairwise model from GT (DeeperCut's labels), and
``synthetic`` renders inputs for tests and benchmarks. numpy/scipy only (plus highspy, and
pulp for the reference): no torch.
"""

from .assembly import Pose, assemble_image, pose_scores, weighted_by_box
from .features import FeatureParams, PartRegions, pair_features
from .ilp import SOLVERS, solve_program
from .inference import FULL_IMAGE_PARAMS, FcrfParams, FcrfResult, box_program, fcrf_box
from .maps import NUM_OFFSET_CHANNELS, OFFSET_CHANNEL, ScoreMaps, offset_channel
from .pairwise_model import PairwiseModel
from .program import BoxProgram, Solution
from .proposals import ProposalParams, Proposals, box_proposals, joint_proposals
from .synthetic import RenderParams, random_people, random_program, render_score_maps
from .training import PairExamples, TrainingBox, fit_pairwise_model, pair_examples

__all__ = [
    "BoxProgram", "FULL_IMAGE_PARAMS", "FcrfParams", "FcrfResult", "FeatureParams",
    "NUM_OFFSET_CHANNELS", "OFFSET_CHANNEL", "PairExamples", "PairwiseModel", "PartRegions",
    "Pose", "ProposalParams", "Proposals", "RenderParams", "SOLVERS", "ScoreMaps", "Solution",
    "TrainingBox", "assemble_image", "box_program", "box_proposals", "fcrf_box",
    "fit_pairwise_model", "joint_proposals", "offset_channel", "pair_examples",
    "pair_features", "pose_scores", "random_people", "random_program", "render_score_maps",
    "solve_program", "weighted_by_box",
]
