"""
The learned invariant mask against the ground truth
===================================================

The synthetic generator knows which content dimensions carry the invariant preference and which
carry the spurious attribute (``data.invariant_mask``). PaInvRL's ``invariant_mask_`` should be
high on the first and low on the second.
"""

import matplotlib.pyplot as plt
import numpy as np

from invrec import PaInvRLRecommender
from invrec.datasets import make_multimodal_interactions

data = make_multimodal_interactions(n_users=200, n_items=150, random_state=0)
model = PaInvRLRecommender(embedding_dim=32, content_dim=16, max_epochs=5, batch_size=512,
                           n_environments=2, n_outer_iter=2, env_max_rounds=1, env_epochs=2,
                           mask_epochs=10, mask_learning_rate=1e-2, random_state=0)
model.fit(data.interactions, item_features=data.item_features)

# %%
# One row per modality: the ground truth (1 = invariant) above the learned mask.
modalities = sorted(model.invariant_mask_)
fig, axes = plt.subplots(len(modalities), 1, figsize=(7, 1.6 * len(modalities)), squeeze=False)
for ax, name in zip(axes[:, 0], modalities):
    truth = data.invariant_mask[name].astype(float)
    learned = model.invariant_mask_[name]
    image = ax.imshow(np.vstack([truth, learned]), aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks([0, 1], ["truth", "learned"])
    ax.set_title(f"{name}: mean mask {learned[truth == 1].mean():.2f} on invariant dimensions, "
                 f"{learned[truth == 0].mean():.2f} on the others", fontsize=9)
fig.colorbar(image, ax=axes[:, 0].tolist(), label="mask value")
axes[-1, 0].set_xlabel("content dimension")
