"""EIOR's fused item model: ids next to invariant, variant and attention-fused content.

(PaInvRL's convert module, :class:`invrec.nn.ConvertScorer`, is the same model with another
fusion; the two are to become one.)
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.attention import AttentionFusion
from ..nn.init import normal_, normal_linear_

__all__ = ["EIORScorer"]


class EIORScorer(nn.Module):
    """UltraGCN-style scorer with invariant, variant and fused item content.

    Score ``U_u . [alpha V_i ; z_i]`` where ``z_i`` is the invariant part ``W_inv (m * x_i)``,
    the variant part ``W_var ((1 - m) * x_i)`` or their :class:`~invrec.nn.AttentionFusion`.
    The id part ``U_u[:id_dim] . alpha V_i`` is the same for the three; only the fused score
    reaches the fusion parameters.

    Parameters
    ----------
    n_users, n_items : int
    features : Tensor of shape (n_items, d)
        Prepared content (``d = 0``: a pure id model).
    mask : Tensor of shape (d,)
        The invariant mask (a buffer).
    id_dim, content_dim : int
    fusion : str, default="attention"
        ``AttentionFusion`` mode.
    self_attention : bool, default=True
    gate : bool, default=False
        ``AttentionFusion`` gate (the variant part rescaled to the invariant part's scale).
    prior : float in (0, 1), default=0.5
        ``AttentionFusion`` initial invariant weight.
    item_id_weight : float, default=1.0
        ``alpha``.
    init_std : float, default=0.01
    generator : torch.Generator, default=None

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> scorer = EIORScorer(3, 4, torch.rand(4, 5), torch.ones(5), id_dim=2, content_dim=2, generator=g)
    >>> scorer.score_users(torch.tensor([0, 2])).shape, scorer.attention_weights().shape
    (torch.Size([2, 4]), torch.Size([4, 2]))
    """

    def __init__(self, n_users, n_items, features, mask, *, id_dim=64, content_dim=64,
                 fusion="attention", self_attention=True, gate=False, prior=0.5,
                 item_id_weight=1.0, init_std=0.01, generator=None):
        super().__init__()
        features = torch.as_tensor(features)
        device, dtype = features.device, features.dtype
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.id_dim = int(id_dim)
        self.content_dim = int(content_dim) if features.shape[1] > 0 else 0
        self.item_id_weight = float(item_id_weight)
        self.register_buffer("features", features)
        self.register_buffer("mask", torch.as_tensor(mask, dtype=dtype, device=device).clone())
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, self.id_dim + self.content_dim,
                                                       device=device, dtype=dtype))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, self.id_dim, device=device, dtype=dtype))
        normal_(self.user_embedding, init_std, generator)
        normal_(self.item_embedding, init_std, generator)
        self.invariant = self.variant = self.fusion = None
        if self.content_dim > 0:
            d = features.shape[1]
            self.invariant = nn.Linear(d, self.content_dim, device=device, dtype=dtype)
            self.variant = nn.Linear(d, self.content_dim, device=device, dtype=dtype)
            for layer in (self.invariant, self.variant):
                normal_linear_(layer, init_std, generator)
            self.fusion = AttentionFusion(self.content_dim, mode=fusion, self_attention=self_attention,
                                          gate=gate, prior=prior, generator=generator).to(device, dtype)

    def parts(self, x):
        """``(z_inv, z_var, fused, weights)`` of content rows ``x`` of shape (n, d)."""
        z_inv = self.invariant(x * self.mask)
        z_var = self.variant(x * (1.0 - self.mask))
        fused, weights = self.fusion(z_inv, z_var)
        return z_inv, z_var, fused, weights

    def user_vectors(self, users=None):
        return self.user_embedding if users is None else self.user_embedding[users]

    def item_vectors(self, items=None):
        """Fused item vectors ``[alpha V_i ; f_i]``."""
        ids = self.item_embedding if items is None else self.item_embedding[items]
        if self.content_dim == 0:
            return self.item_id_weight * ids
        x = self.features if items is None else self.features[items]
        return torch.cat([self.item_id_weight * ids, self.parts(x)[2]], dim=-1)

    def content_vectors(self, features):
        """Fused content of arbitrary content rows (new items included)."""
        if self.content_dim == 0:
            return features.new_zeros(features.shape[0], 0)
        return self.parts(features)[2]

    def forward(self, users, items):
        return (self.user_vectors(users) * self.item_vectors(items)).sum(-1)

    def score_users(self, users):
        return self.user_vectors(users) @ self.item_vectors().T

    def three_scores(self, users, items, negatives=None):
        """Fused, invariant-only and variant-only scores of the pairs, and of the negatives.

        Returns a list of three ``(pos (B,), neg (B, N) or None)`` pairs, in that order.
        """
        u = self.user_vectors(users)
        u_id, u_c = u[:, :self.id_dim], u[:, self.id_dim:]
        pos_id = (u_id * self.item_embedding[items]).sum(-1) * self.item_id_weight
        neg_id = None if negatives is None else (u_id @ self.item_embedding[negatives].T) * self.item_id_weight
        if self.content_dim == 0:
            return [(pos_id, neg_id)] * 3
        z_inv, z_var, fused, _ = self.parts(self.features[items])
        pos_parts = (fused, z_inv, z_var)
        if negatives is not None:
            z_inv, z_var, fused, _ = self.parts(self.features[negatives])
            neg_parts = (fused, z_inv, z_var)
        out = []
        for k in range(3):   # fused, invariant, variant
            pos = pos_id + (u_c * pos_parts[k]).sum(-1)
            neg = None if negatives is None else neg_id + u_c @ neg_parts[k].T
            out.append((pos, neg))
        return out

    @property
    def has_content(self):
        """Items unknown at fit time can be scored from content (zero without a content part)."""
        return True

    def score_new_items(self, users, features):
        """Scores of users against content rows ``features`` (n, d): only the content parts meet."""
        return self.user_vectors(users)[:, self.id_dim:] @ self.content_vectors(features).T

    def attention_weights(self):
        """``(n_items, 2)`` weights of (invariant, variant) per catalog item."""
        if self.content_dim == 0:
            return self.features.new_tensor([1.0, 0.0]).expand(self.n_items, 2)
        return self.parts(self.features)[3]
