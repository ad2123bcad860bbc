"""The last stage of PaInvRL and EIOR: the fused item model, built and trained.

Both methods end the same way: a :class:`~invrec.invariance.FusedItemModel` reads the content
through the mask the stages learned, and is trained on a
:class:`~invrec.invariance.FusedObjective` over the environments they found, with the shared
loop and early stopping of the estimator. What differs is said by the estimator: the objective,
the per-row losses (ranking or rating) and any head on top of the model.
"""

from __future__ import annotations

import numpy as np
import torch

from ..nn.optim import make_adam
from .fused import FusedItemModel

__all__ = ["build_fused_model", "final_environments", "train_fused_model"]


def final_environments(result, data):
    """Environment code of every training row (all 0 without environments) and their number."""
    env = result.environments
    if env is None:
        env = torch.zeros(len(data.users), dtype=torch.long, device=data.device)
    env = env.to(data.device).long()
    return env, int(env.max()) + 1 if len(env) else 1


def build_fused_model(estimator, data, mask):
    """The fused item model of ``estimator``'s widths, fusion and item id weight.

    ``mask`` is the stages' final mask (None without content: every dimension kept). With the
    estimator's ``decorrelate`` other than "none", the model's ids and/or kept content are made
    blind to the variant view, fitted on the items with training rows.
    """
    features = data.features if data.features is not None else torch.zeros(
        data.n_items, 0, device=data.device)
    if mask is None:
        mask = torch.ones(features.shape[1], device=data.device)
    fusion = estimator._part("fusion")
    model = FusedItemModel(data.n_users, data.n_items, features, mask, id_dim=estimator.embedding_dim,
                           content_dim=estimator.content_dim, fusion=fusion,
                           item_id_weight=estimator.item_id_weight, init_std=estimator.init_std,
                           generator=data.generator)
    blind = estimator.decorrelate
    if blind != "none":
        trained = torch.nonzero(torch.as_tensor(data.item_degree, device=data.device) > 0).ravel()
        model.decorrelate(trained, ids=blind in ("both", "ids"), content=blind in ("both", "content"))
    return model


def train_fused_model(estimator, model, objective, data):
    """Train ``model`` on the batch ``objective`` with ``estimator``'s step size, L2 and loop.

    Returns the ``(n_items, 2)`` (invariant, variant) weights of the trained model's items.
    """
    groups = model.l2_parameter_groups(data.l2_embedding, estimator.l2_content,
                                       estimator.item_l2_ratio, scale=data.l2_scale)
    estimator._train_epochs(model, make_adam(groups, estimator.learning_rate), objective, data)
    with torch.no_grad():
        return model.attention_weights().detach().cpu().numpy().astype(np.float64)
