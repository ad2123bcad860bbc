"""
EIOR's attention weights
========================

:class:`~invrec.EIORRecommender` fuses an invariant content representation (trained to predict
equally well in every environment) with a variant one (trained on the pooled data). Its fusion
gives every item a pair of weights, (invariant, variant), that sums to 1; ``attention_weights_``
holds them after fitting and ``history_`` records their mean over each epoch.

We fit EIOR on two draws of the synthetic generator with the same average spurious strength:
training environments that **agree** on the spurious correlation (strengths 3, 4.5, 6) and
environments that **disagree** (-1.5, 4.5, 10.5: the correlation even reverses in one of them).
When they disagree, the variant part fits some environments at the expense of others, so a
fusion that is judged environment by environment (``objective=FusedObjective(fuse="irm")``, the
default) shifts weight to the invariant part. The fusion is EIOR's default, ``fusion=Fusion()``
(gated pooling of the two parts, no self-attention), with a hard mask and strongly regularised
item ids, the settings under which the mask matters (``benchmarks/README.md``, section "EIOR",
has the figures over seeds).
"""

import matplotlib.pyplot as plt
import numpy as np

from invrec import EIORRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.invariance import EnvironmentInference, FusedObjective, Fusion, MaskLearning
from invrec.plotting import plot_attention, plot_training_history

REGIMES = {"agree": (3.0, 4.5, 6.0), "disagree": (-1.5, 4.5, 10.5)}
# The synthetic settings of ``benchmarks/eior.py`` (laptop-sized stages, a short final model).
SETTINGS = dict(embedding_dim=32, content_dim=32, batch_size=256, learning_rate=1e-2,
                n_negatives=20, l2_embedding=1e-2, l2_content=1e-2, max_epochs=40,
                n_iter_no_change=10, n_outer_iter=2,
                environments=EnvironmentInference(n_environments=3, max_rounds=3, epochs=5),
                mask=MaskLearning(weighting=0.5, epochs=10, learning_rate=1e-2, l2=0.0,
                                  threshold="auto"),
                item_l2_ratio=20.0, random_state=0,
                # EIOR's defaults, spelled out: gated attention pooling without self-attention,
                # and L_fuse judged per environment plus 0.5 L_irm + 0.5 L_erm.
                fusion=Fusion(self_attention=False, gate=True),
                objective=FusedObjective(fuse="irm", w_irm=0.5, w_erm=0.5))

models = {}
for regime, strengths in REGIMES.items():
    data = make_multimodal_interactions(n_users=300, n_items=200, spurious_strengths=strengths,
                                        random_state=0)
    models[regime] = EIORRecommender(**SETTINGS).fit(data.interactions[["user", "item"]],
                                                     item_features=data.item_features)
    weights = models[regime].attention_weights_
    print(f"{regime:9s} invariant weight: mean {weights[:, 0].mean():.3f}, "
          f"rows sum to 1: {np.allclose(weights.sum(axis=1), 1.0)}")

# %%
# Left: the distribution over items of the invariant part's weight at the end of training
# (:func:`~invrec.plotting.plot_attention`). Right: its mean over each epoch's training items,
# from ``history_``; the dotted line is the starting value, 0.5.
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
for regime, model in models.items():
    plot_attention(model, bins=25, label=regime, ax=left)
    plot_attention(model, over="epochs", label=regime, ax=right)
left.set_title("attention_weights_[:, 0]")
right.axhline(0.5, color="grey", linestyle=":")
right.set_title("history_: attention_inv")
plt.show()

# %%
# The final model's training, for the disagreeing environments: its loss, and the validation
# NDCG@20 that early stopping watched (the dotted line marks the epoch it kept).
plot_training_history(models["disagree"])
plt.show()
