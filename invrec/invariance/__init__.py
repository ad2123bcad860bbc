"""Invariant learning: what PaInvRL and EIOR are made of.

The stages and the settings an estimator holds (scikit-learn parameter objects, searchable with
the nested spelling ``mask__penalty``):

* :class:`EnvironmentInference` and :class:`MaskLearning`, run by :func:`run_stages`
  (:mod:`~invrec.invariance.stages`);
* :class:`Fusion` (:mod:`~invrec.invariance.fusion`) and :class:`FusedObjective`
  (:mod:`~invrec.invariance.objectives`), the final model's fusion and loss.

The numerical parts they run:

* :mod:`~invrec.invariance.environments`: the batched environment models and the reassignment
  of interactions to environments;
* :mod:`~invrec.invariance.invariant_mask`: mask learning with the ERM and IRM objectives;
* :mod:`~invrec.invariance.masks`: the stochastic-gate mask and its binarisation;
* :mod:`~invrec.invariance.penalties`: the IRM penalties; :mod:`~invrec.invariance.pareto`: the
  MGDA weight of two objectives;
* :mod:`~invrec.invariance.fused`: the fused item model (ids next to invariant, variant and
  fused content), built and trained by :mod:`~invrec.invariance.final`.
"""

from .environments import (EnvironmentModels, group_by_environment, infer_environments,
                           random_environments, reassign_environments)
from .fused import PARTS, FusedItemModel
from .fusion import FUSION_MODES, AttentionFusion, Fusion, FusionOutput
from .invariant_mask import PENALTIES, MaskObjectives, environment_risks, learn_invariant_mask
from .masks import StochasticGateMask, binarize_mask
from .objectives import POOLED, FusedObjective, environment_risk, ranking_part_losses
from .pareto import flat_gradient, mgda_weight, normalized_mgda_weight
from .penalties import gradient_variance_penalty, irmv1_penalty, vrex_penalty
from .stages import EnvironmentInference, MaskLearning, StageResult, StageTraining, run_stages

__all__ = [
    # the parts an estimator holds
    "EnvironmentInference", "MaskLearning", "Fusion", "FusedObjective", "POOLED",
    "StageResult", "StageTraining", "run_stages",
    # environments
    "EnvironmentModels", "group_by_environment", "infer_environments", "random_environments",
    "reassign_environments",
    # the mask
    "MaskObjectives", "environment_risks", "learn_invariant_mask", "PENALTIES",
    "StochasticGateMask", "binarize_mask",
    "gradient_variance_penalty", "irmv1_penalty", "vrex_penalty", "flat_gradient", "mgda_weight", "normalized_mgda_weight",
    # the fused item model
    "FusedItemModel", "PARTS", "AttentionFusion", "FusionOutput", "FUSION_MODES",
    "environment_risk", "ranking_part_losses",
]
