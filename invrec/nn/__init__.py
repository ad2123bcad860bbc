"""Neural building blocks of invrec's recommenders: the UltraGCN-style scorer, its losses, and the
random draws of a training epoch.

The estimators in :mod:`invrec.baselines` and the invariant-learning methods compose these parts;
nothing here knows about datasets, ids or early stopping.
"""

from .attention import AttentionFusion, FusionOutput
from .backbone import RegularizationTerms, UltraGCNScorer
from .item_graph import item_item_neighbors
from .losses import bpr_loss, degree_weights, item_item_loss, ultragcn_loss
from .sampling import expand_groups, iterate_minibatches, n_negative_groups, sample_negatives
from .optim import make_adam
from .rating import RatingHead, RatingScale, rating_loss
from .scoring import gather_item_vectors, pair_and_negative_scores

__all__ = [
    "UltraGCNScorer",
    "RegularizationTerms",
    "pair_and_negative_scores",
    "gather_item_vectors",
    "degree_weights",
    "ultragcn_loss",
    "bpr_loss",
    "item_item_loss",
    "item_item_neighbors",
    "sample_negatives",
    "n_negative_groups",
    "expand_groups",
    "iterate_minibatches",
    "make_adam",
    "AttentionFusion",
    "FusionOutput",
    "RatingHead",
    "RatingScale",
    "rating_loss",
]
