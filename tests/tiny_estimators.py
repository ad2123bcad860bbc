"""The five trained estimators at a tiny budget, for the suites that check one behaviour on each."""

from invrec import EIORRecommender, EIORRegressor, PaInvRLRecommender
from invrec.baselines import UltraGCNRecommender
from invrec.invariance import EnvironmentInference, MaskLearning
from invrec.milk import MILKRecommender


def trained_estimators(**settings):
    """UltraGCN, PaInvRL, EIOR, EIORRegressor and MILK, tiny, with ``settings`` on every one."""
    tiny = dict(batch_size=64, embedding_dim=4, device="cpu", random_state=0, **settings)
    stages = dict(environments=EnvironmentInference(2, max_rounds=1, epochs=1), mask=MaskLearning(epochs=2),
                  n_outer_iter=1, content_dim=4)
    return [UltraGCNRecommender(**tiny, content_dim=4, n_negatives=4),
            PaInvRLRecommender(**tiny, **stages, n_negatives=4),
            EIORRecommender(**tiny, **stages, n_negatives=4),
            EIORRegressor(**tiny, **stages),
            MILKRecommender(**tiny)]
