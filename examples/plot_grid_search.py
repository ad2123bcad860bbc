"""
Tuning with GridSearchCV and a ranking scorer
=============================================

Estimators are scikit-learn estimators: :class:`~sklearn.model_selection.GridSearchCV` tunes them
with a recommendation splitter (every user keeps training rows) and a ranking scorer.
"""

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import GridSearchCV

from invrec.baselines import UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.metrics import make_ranking_scorer
from invrec.model_selection import PerUserHoldout

data = make_multimodal_interactions(n_users=150, n_items=120, random_state=0)

search = GridSearchCV(
    UltraGCNRecommender(max_epochs=10, batch_size=512, early_stopping=False, random_state=0),
    {"embedding_dim": [8, 32], "learning_rate": [1e-3, 1e-2]},
    cv=PerUserHoldout(n_splits=2, random_state=0),
    scoring=make_ranking_scorer("ndcg", k=20),
)
search.fit(data.interactions, item_features=data.item_features)
print("best:", search.best_params_, round(search.best_score_, 4))

# %%
# The cross-validated NDCG@20 of every grid point.
results = pd.DataFrame(search.cv_results_)
grid = results.pivot(index="param_embedding_dim", columns="param_learning_rate",
                     values="mean_test_score")
print(grid.round(4))
ax = grid.plot.bar(rot=0, figsize=(6, 3.5))
ax.set_xlabel("embedding_dim")
ax.set_ylabel("mean NDCG@20 (2 folds)")
ax.legend(title="learning_rate")
plt.tight_layout()
