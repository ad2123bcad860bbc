"""
The learned invariant mask against the ground truth
===================================================

The synthetic generator knows which content dimensions carry the invariant preference and which
carry the spurious attribute (``data.invariant_mask``). PaInvRL's ``invariant_mask_`` should be
high on the first and low on the second; the title of each row gives the ROC AUC of the learned
values against the truth (1: every invariant dimension above every spurious one).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score

from invrec import PaInvRLRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.invariance import EnvironmentInference, MaskLearning

data = make_multimodal_interactions(n_users=300, n_items=200, random_state=0)
# The synthetic settings of ``benchmarks/invariance.py`` (a short final model: only the mask matters).
model = PaInvRLRecommender(
    embedding_dim=32, content_dim=32, batch_size=256, learning_rate=1e-2, n_negatives=20,
    l2_embedding=1e-2, l2_content=1e-2, max_epochs=5, n_outer_iter=2,
    environments=EnvironmentInference(n_environments=3, max_rounds=3, epochs=5),
    mask=MaskLearning(epochs=10, learning_rate=1e-2, l2=0.0), random_state=0)
model.fit(data.interactions, item_features=data.item_features)

# %%
# One row per modality: the ground truth (1 = invariant) above the learned mask.
modalities = sorted(model.invariant_mask_)
fig, axes = plt.subplots(len(modalities), 1, figsize=(7, 1.8 * len(modalities)), squeeze=False,
                         layout="constrained")
for ax, name in zip(axes[:, 0], modalities):
    truth = data.invariant_mask[name].astype(float)
    learned = model.invariant_mask_[name]
    image = ax.imshow(np.vstack([truth, learned]), aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks([0, 1], ["truth", "learned"])
    ax.set_title(f"{name}: AUC {roc_auc_score(truth, learned):.2f}; mean mask "
                 f"{learned[truth == 1].mean():.2f} on invariant, {learned[truth == 0].mean():.2f} "
                 "on spurious dimensions", fontsize=9)
fig.colorbar(image, ax=axes[:, 0].tolist(), label="mask value")
axes[-1, 0].set_xlabel("content dimension")
