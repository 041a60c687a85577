"""Training the reference model, split by job: ``runtime`` (processes, devices, the budget,
``train.json``, the shared loop), ``data`` (what each stage learns from) and ``stages``
(the paper's four stages in order, and :func:`train`)."""

from .runtime import TrainBudget, learning_rate
from .stages import BUDGETS, STAGES, train

__all__ = ["BUDGETS", "STAGES", "TrainBudget", "learning_rate", "train"]
