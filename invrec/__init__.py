"""invrec: scikit-learn-style multimedia recommenders robust to spurious correlations and to
missing item modalities."""

__version__ = "0.1.0.dev0"

from . import _moved

_moved.install()    # former module paths (invrec.nn.attention, ...) still import

from .baselines import PopularityRecommender, UltraGCNRecommender
from .eior import EIORRecommender, EIORRegressor
from .features import ItemFeatures
from .milk import MILKRecommender
from .painvrl import PaInvRLRecommender
from .persistence import load, save
from .utils.discovery import all_estimators

__all__ = [
    "EIORRecommender", "EIORRegressor", "ItemFeatures", "MILKRecommender", "PaInvRLRecommender", "PopularityRecommender",
    "UltraGCNRecommender", "__version__", "all_estimators", "load", "save",
]
