"""Neural building blocks of invrec's recommenders: the UltraGCN-style scorer, its losses, and the
random draws of a training epoch.

The estimators in :mod:`invrec.baselines` and the invariant-learning methods compose these parts;
nothing here knows about datasets, ids or early stopping.
"""

from .backbone import RegularizationTerms, UltraGCNScorer
from .item_graph import item_item_neighbors
from .losses import bpr_loss, degree_weights, item_item_loss, ultragcn_loss
from .sampling import iterate_minibatches, sample_negatives
from .scoring import pair_and_negative_scores

__all__ = [
    "UltraGCNScorer",
    "RegularizationTerms",
    "pair_and_negative_scores",
    "degree_weights",
    "ultragcn_loss",
    "bpr_loss",
    "item_item_loss",
    "item_item_neighbors",
    "sample_negatives",
    "iterate_minibatches",
]
