"""Invariant learning: the stages before an invariant method's final model.

* :mod:`~invrec.invariance.stages`: :class:`EnvironmentInference` and :class:`MaskLearning`, the
  configurable stage objects PaInvRL and EIOR compose, and :func:`run_stages`;
* :mod:`~invrec.invariance.masks`: :func:`binarize_mask`.

The numerical parts they run (environment models, stochastic gates, penalties, the MGDA weight)
are in :mod:`invrec.nn`.
"""

from .masks import binarize_mask
from .stages import EnvironmentInference, MaskLearning, StageResult, StageTraining, run_stages

__all__ = ["EnvironmentInference", "MaskLearning", "StageResult", "StageTraining", "binarize_mask",
           "run_stages"]
