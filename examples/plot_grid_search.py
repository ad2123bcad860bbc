"""
Tuning a pipeline with GridSearchCV and a ranking scorer
========================================================

Estimators are scikit-learn estimators, and so are invrec's pipelines:
:class:`~sklearn.model_selection.GridSearchCV` tunes a k-core filter of the training interactions
and the recommender after it together, with a recommendation splitter (every user keeps training
rows) and a ranking scorer. ``error_score="raise"`` stops the search at the first fit or score
that fails, instead of recording NaN and picking a best setting among the rest.
"""

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import GridSearchCV

from invrec.baselines import UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.metrics import get_scorer
from invrec.model_selection import PerUserHoldout
from invrec.pipeline import make_pipeline
from invrec.preprocessing import KCoreFilter

data = make_multimodal_interactions(n_users=150, n_items=120, random_state=0)

# The filter drops, at fit time only, the items with fewer training interactions than the
# threshold; they stay in the catalog through item_features, recommended from their content.
# A user whose every training row was with such items leaves training too: the held-out rows are
# all scored, so handle_unknown="ignore" gives that user an empty list (0), where "error" would
# stop the search.
pipe = make_pipeline(
    KCoreFilter(min_user_interactions=1, min_item_interactions=1),
    UltraGCNRecommender(max_epochs=10, batch_size=512, early_stopping=False, random_state=0,
                        handle_unknown="ignore"),
)
search = GridSearchCV(
    pipe,
    {"kcorefilter__min_item_interactions": [1, 8], "ultragcnrecommender__embedding_dim": [8, 32]},
    cv=PerUserHoldout(n_splits=2, random_state=0),
    scoring=get_scorer("ndcg@20"),       # GridSearchCV(scoring="ndcg@20") is not possible
    error_score="raise",
)
search.fit(data.interactions, item_features=data.item_features)
print("best:", search.best_params_, round(search.best_score_, 4))

# %%
# The cross-validated NDCG@20 of every grid point.
results = pd.DataFrame(search.cv_results_)
grid = results.pivot(index="param_ultragcnrecommender__embedding_dim",
                     columns="param_kcorefilter__min_item_interactions", values="mean_test_score")
print(grid.round(4))
ax = grid.plot.bar(rot=0, figsize=(6, 3.5))
ax.set_xlabel("embedding_dim")
ax.set_ylabel("mean NDCG@20 (2 folds)")
ax.legend(title="min_item_interactions")
plt.tight_layout()
