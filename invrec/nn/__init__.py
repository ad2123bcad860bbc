"""Generic neural building blocks of invrec's recommenders: the UltraGCN-style model, its losses,
the random draws of a training epoch, the rating head and the optimizer.

Nothing here knows about datasets, ids, early stopping or a particular method: the parts of the
invariant methods are in :mod:`invrec.invariance`, those of MILK in :mod:`invrec.multimodal`.
"""

from .._moved import moved_names
from .backbone import UltraGCNModel
from .init import normal_, normal_linear_
from .item_graph import item_item_neighbors
from .losses import degree_weights, interaction_degree_weights, item_item_loss, ultragcn_loss
from .optim import make_adam
from .rating import RatingHead, RatingScale, rating_loss
from .sampling import expand_groups, iterate_minibatches, n_negative_groups, sample_negatives
from .scoring import gather_item_vectors, pair_and_negative_scores

__all__ = [
    "UltraGCNModel",
    "pair_and_negative_scores",
    "gather_item_vectors",
    "degree_weights",
    "interaction_degree_weights",
    "ultragcn_loss",
    "item_item_loss",
    "item_item_neighbors",
    "sample_negatives",
    "n_negative_groups",
    "expand_groups",
    "iterate_minibatches",
    "make_adam",
    "normal_",
    "normal_linear_",
    "RatingHead",
    "RatingScale",
    "rating_loss",
]

_INVARIANCE = ["mgda_weight", "flat_gradient", "gradient_variance_penalty", "irmv1_penalty",
               "vrex_penalty", "StochasticGateMask", "group_by_environment", "infer_environments",
               "random_environments", "reassign_environments", "MaskObjectives", "environment_risks",
               "learn_invariant_mask", "AttentionFusion", "FusionOutput"]
_MULTIMODAL = ["cross_modality_alignment", "sample_dirichlet", "sample_missing_masks"]
_MOVED = {
    **{name: f"invrec.invariance:{name}" for name in _INVARIANCE},
    **{name: f"invrec.multimodal:{name}" for name in _MULTIMODAL},
    "UltraGCNScorer": "invrec.nn:UltraGCNModel",
    "EnvironmentScorers": "invrec.invariance:EnvironmentModels",
    "MultimodalContentScorer": "invrec.multimodal:MultimodalContentModel",
    "cyclic_environments": "invrec.multimodal:cyclic_mixtures",
    "sample_cyclic_environments": "invrec.multimodal:sample_cyclic_mixtures",
}
_REMOVED = {
    "ConvertScorer": "PaInvRL's and EIOR's item models are one, invrec.invariance.FusedItemModel",
    "ConvertModule": "its projections and fusion are parts of invrec.invariance.FusedItemModel "
                     "(fusion: invrec.invariance.AttentionFusion)",
    "RegularizationTerms": "the L2 terms are applied as weight decay, "
                           "UltraGCNModel.l2_parameter_groups",
}
__getattr__ = moved_names(__name__, _MOVED, _REMOVED)
