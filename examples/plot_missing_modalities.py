"""
MILK as the share of missing modalities grows
=============================================

New items (held out whole) are ranked from their content alone. A growing share of them loses
one modality at inference (MILK's FTMT protocol). MILK, trained for invariance to how the
modalities are mixed, is compared with the content-aware UltraGCN backbone and popularity.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from invrec import MILKRecommender
from invrec.baselines import PopularityRecommender, UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.metrics import evaluate_ranking
from invrec.model_selection import NewItemSplit
from invrec.plotting import plot_training_history

data = make_multimodal_interactions(n_users=200, n_items=150, random_state=0)
train_rows, test_rows = next(NewItemSplit(test_size=0.2, random_state=0).split(data.interactions))
train, test = data.interactions.iloc[train_rows], data.interactions.iloc[test_rows]
old_items = np.unique(train["item"])
new_items = np.setdiff1d(np.asarray(data.item_features.item_ids), old_items)
old_features = data.item_features.reindex(old_items)

models = {
    "MILK": MILKRecommender(embedding_dim=32, max_epochs=40, batch_size=256, early_stopping=False,
                            random_state=0),
    "UltraGCN": UltraGCNRecommender(embedding_dim=32, content_dim=16, max_epochs=30, batch_size=512,
                                    early_stopping=False, random_state=0),
    "popularity": PopularityRecommender(),
}
for model in models.values():
    model.fit(train, item_features=old_features)

# %%
# Rank only the new items for every test user; knock one modality out of a share of them.
users = np.unique(test["user"])
rows = []
for share in (0.0, 0.25, 0.5, 0.75, 1.0):
    features = data.item_features.reindex(new_items)
    if share > 0:
        features = features.with_missing(share, random_state=0)
    for name, model in models.items():
        known = users[np.isin(users, model.user_ids_)]
        recs = model.recommend(known, n=20, items=new_items, item_features=features)
        ndcg = evaluate_ranking(recs, test, k=20, metrics="ndcg").loc["all", "ndcg@20"]
        rows.append({"missing share": share, "model": name, "NDCG@20": ndcg})
table = pd.DataFrame(rows).pivot(index="missing share", columns="model", values="NDCG@20")
print(table.round(4))

ax = table.plot(marker="o", figsize=(6, 3.5))
ax.set_ylabel("new-item NDCG@20")
ax.set_title("New items with missing modalities (FTMT)")
plt.tight_layout()

# %%
# MILK's training, epoch by epoch (``history_``): its total loss, and the variance of its risks
# across the modality mixtures, the invariance term of that loss (how differently the model does
# under different mixtures of the modalities); it stays tiny next to the loss.
fig, (loss, variance) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
plot_training_history(models["MILK"], ax=loss)
plot_training_history(models["MILK"], keys=["risk_variance"], ax=variance)
variance.set_title("")
plt.show()
