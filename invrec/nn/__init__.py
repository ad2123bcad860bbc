"""Neural building blocks of invrec's recommenders: the UltraGCN-style scorer, its losses, and the
random draws of a training epoch.

The estimators in :mod:`invrec.baselines` and the invariant-learning methods compose these parts;
nothing here knows about datasets, ids or early stopping.
"""

from .alignment import cross_modality_alignment
from .attention import AttentionFusion, FusionOutput
from .backbone import RegularizationTerms, UltraGCNScorer
from .content_scorer import MultimodalContentScorer
from .item_graph import item_item_neighbors
from .mixup import cyclic_environments, sample_cyclic_environments, sample_dirichlet
from .losses import degree_weights, item_item_loss, ultragcn_loss
from .sampling import expand_groups, iterate_minibatches, n_negative_groups, sample_negatives
from .optim import make_adam
from .rating import RatingHead, RatingScale, rating_loss
from .scoring import gather_item_vectors, pair_and_negative_scores
from .pareto import flat_gradient, mgda_weight
from .penalties import gradient_variance_penalty, irmv1_penalty, vrex_penalty
from .masks import StochasticGateMask
from .environments import (EnvironmentScorers, group_by_environment, infer_environments,
                           random_environments, reassign_environments)
from .invariant_mask import MaskObjectives, environment_risks, learn_invariant_mask
from .fusion import ConvertModule, ConvertScorer

__all__ = [
    "UltraGCNScorer",
    "RegularizationTerms",
    "pair_and_negative_scores",
    "gather_item_vectors",
    "degree_weights",
    "ultragcn_loss",
    "item_item_loss",
    "item_item_neighbors",
    "sample_negatives",
    "n_negative_groups",
    "expand_groups",
    "iterate_minibatches",
    "make_adam",
    # invariant learning (PaInvRL, EIOR)
    "mgda_weight", "flat_gradient",
    "gradient_variance_penalty", "irmv1_penalty", "vrex_penalty",
    "StochasticGateMask",
    "EnvironmentScorers", "group_by_environment", "infer_environments", "random_environments",
    "reassign_environments",
    "MaskObjectives", "environment_risks", "learn_invariant_mask",
    "ConvertModule", "ConvertScorer",
    # new items and missing modalities (MILK)
    "MultimodalContentScorer",
    "cross_modality_alignment",
    "sample_dirichlet",
    "cyclic_environments",
    "sample_cyclic_environments",
    # fusion and explicit ratings (EIOR)
    "AttentionFusion",
    "FusionOutput",
    "RatingHead",
    "RatingScale",
    "rating_loss",
]
