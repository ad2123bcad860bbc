"""invrec: scikit-learn-style multimedia recommenders robust to spurious correlations and to
missing item modalities."""

__version__ = "0.1.0.dev0"

import logging as _logging

# A library logs and never configures: quiet unless the application sets up logging (for example
# ``logging.basicConfig(level=logging.INFO)`` shows every stage of every fit).
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

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
