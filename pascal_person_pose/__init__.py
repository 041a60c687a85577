"""pascal-person-pose: joint multi-person pose estimation and semantic part segmentation on
PASCAL-Person-Part with 14 joints: data, metrics, submissions, leaderboards, labeling.

Importing the package stays light: torch is imported only by the torch adapter
(``pascal_person_pose.torch_dataset.TorchDataset``) and by ``reference_model``.
"""

__version__ = "0.1.0"
