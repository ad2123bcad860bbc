"""
The IID/OOD trade-off on the synthetic generator
================================================

The synthetic generator plants a spurious content attribute whose link to clicks reverses in the
out-of-distribution test set. An ERM model (UltraGCN) uses it; PaInvRL learns a mask that keeps
the invariant dimensions. The Pareto setting moves the model along the trade-off between
in-distribution (IID) and out-of-distribution (OOD) NDCG@20: ``MaskLearning(weighting="mgda")``
(PaInvRL's per-batch Pareto weight, attention fusion), the InvRL setting (IRM alone, invariant
part only), and the settings that trade in-distribution quality for robustness: a binarised
mask (``MaskLearning(threshold="auto")``) and a down-weighted, more regularised item id part.
The settings are those of ``benchmarks/invariance.py`` (one seed here; its README has the
five-seed table). Two references frame them: popularity (no personalisation) and the oracle that
ranks by the true preference (:func:`~invrec.diagnostics.oracle_ndcg`): the ceiling out of
distribution, while in distribution the spurious attribute ranks better than the truth.
"""

import matplotlib.pyplot as plt
import pandas as pd

from invrec import PaInvRLRecommender
from invrec.baselines import PopularityRecommender, UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.diagnostics import oracle_ndcg
from invrec.invariance import EnvironmentInference, MaskLearning
from invrec.plotting import plot_iid_ood_front

data = make_multimodal_interactions(n_users=300, n_items=200, random_state=0)
# The synthetic settings of ``benchmarks/invariance.py`` (fewer epochs, to run in seconds).
backbone = dict(embedding_dim=32, content_dim=32, batch_size=256, learning_rate=1e-2,
                n_negatives=20, l2_embedding=1e-2, l2_content=1e-2, max_epochs=40,
                n_iter_no_change=10, random_state=0)


def stages(**mask):
    """The stage settings, with ``mask`` added to the mask stage's (weighting, threshold)."""
    return dict(n_outer_iter=2,
                environments=EnvironmentInference(n_environments=3, max_rounds=3, epochs=5),
                mask=MaskLearning(epochs=10, learning_rate=1e-2, l2=0.0, **mask))


settings = {
    "UltraGCN (ERM)": UltraGCNRecommender(**backbone),
    "InvRL setting": PaInvRLRecommender(**backbone, **stages(weighting=0.0), fusion="invariant"),
    "PaInvRL default (MGDA, attention)": PaInvRLRecommender(**backbone, **stages()),
    "PaInvRL invariant, hard mask, id L2 x20": PaInvRLRecommender(
        **backbone, **stages(threshold="auto"), fusion="invariant", item_l2_ratio=20.0),
    "... and id weight 0.5": PaInvRLRecommender(
        **backbone, **stages(threshold="auto"), fusion="invariant", item_l2_ratio=20.0,
        item_id_weight=0.5),
}

rows = []
for name, model in settings.items():
    model.fit(data.interactions, item_features=data.item_features)
    rows.append({"model": name, "IID": model.score(data.test), "OOD": model.score(data.test_ood)})
table = pd.DataFrame(rows).set_index("model")
print(table.round(4))

# %%
# Each point is one fitted model: up is better out of distribution, right is better in it. The
# grey line joins the settings that no other setting beats on both tests (the trade-off front);
# the dashed lines are the OOD scores of the references, the dotted ones their IID scores.
popularity = PopularityRecommender().fit(data.interactions)
references = {
    "popularity": (popularity.score(data.test), popularity.score(data.test_ood)),
    "oracle": (oracle_ndcg(data, "test"), oracle_ndcg(data, "test_ood")),
}
print(pd.DataFrame(references, index=["IID", "OOD"]).T.round(4))
ax = plot_iid_ood_front(table, **references)
ax.set_title("PaInvRL settings vs the ERM baseline (up and right is better)")
plt.show()
