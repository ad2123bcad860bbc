"""Datasets: the synthetic generator with ground truth, and loaders of the field's file formats.

Every function returns a :class:`~sklearn.utils.Bunch` of one shape: ``interactions`` (training
rows), ``validation`` and ``test`` (DataFrames or None), ``item_features``
(:class:`~invrec.ItemFeatures` or None), ``name`` and ``DESCR``. Loaders read the path they are
given; nothing is downloaded.
"""

from ._loaders import (
    load_amazon_baby,
    load_diffmm,
    load_lastfm_2k_mm,
    load_mmrec,
    load_movielens_100k,
    load_tiktok,
)
from ._regimes import REGIMES, spurious_scores
from ._synthetic import make_multimodal_interactions

__all__ = [
    "make_multimodal_interactions",
    "REGIMES",
    "spurious_scores",
    "load_mmrec",
    "load_diffmm",
    "load_movielens_100k",
    "load_tiktok",
    "load_lastfm_2k_mm",
    "load_amazon_baby",
]
