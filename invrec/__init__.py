"""invrec: scikit-learn-style multimedia recommenders robust to spurious correlations and to
missing item modalities."""

__version__ = "0.1.0.dev0"

from .eior import EIORRecommender
from .features import ItemFeatures
from .milk import MILKRecommender
from .painvrl import PaInvRLRecommender

__all__ = ["EIORRecommender", "ItemFeatures", "MILKRecommender", "PaInvRLRecommender", "__version__"]
