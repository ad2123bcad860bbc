"""PaInvRL's convert module: invariant and variant item representations fused by attention.

From a feature mask ``m`` the module builds, for every item,

* an invariant representation ``z_inv = f_inv(m * x)`` and
* a variant representation ``z_var = f_var((1 - m) * x)``

(``f_inv``, ``f_var``: separate linear maps ``d -> c``), and fuses them by a weighted sum
``z = a_inv z_inv + a_var z_var`` (the "weighted summation" of PaInvRL's Figure 1). The weights are

* ``"attention"`` (default): per item, ``s_k = q . tanh(W_a z_k + b_a)`` and
  ``(a_inv, a_var) = softmax(s_inv, s_var)``;
* ``"global"``: one learnable pair of weights shared by all items, ``softmax(l_inv, l_var)``;
* ``"invariant"``: ``z = z_inv`` (InvRL's final model: no variant part).

:class:`ConvertScorer` puts the fused content next to item id embeddings in the UltraGCN-style
scorer: item vector ``[alpha V_i ; z_i]``, where ``alpha`` (``item_id_weight``) scales the id part:
item id embeddings can absorb exposure bias that no content mask removes, and ``alpha = 0`` drops
them.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .init import normal_, normal_linear_

__all__ = ["ConvertModule", "ConvertScorer", "FUSIONS"]

FUSIONS = ("attention", "global", "invariant")


class ConvertModule(nn.Module):
    """Invariant and variant projections of masked content, fused by attention.

    Parameters
    ----------
    n_features : int
        ``d``.
    content_dim : int
        ``c``, width of each representation.
    fusion : {"attention", "global", "invariant"}, default="attention"
    init_std : float, default=0.01
        Standard deviation of the projections' initial weights (biases start at 0).
    generator : torch.Generator, default=None

    Examples
    --------
    >>> import torch
    >>> convert = ConvertModule(4, 3, generator=torch.Generator().manual_seed(0))
    >>> z, weights = convert(torch.rand(5, 4), torch.full((4,), 0.5))
    >>> z.shape, weights.shape, torch.allclose(weights.sum(1), torch.ones(5))
    (torch.Size([5, 3]), torch.Size([5, 2]), True)
    """

    def __init__(self, n_features, content_dim, *, fusion="attention", init_std=0.01, generator=None):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}; got {fusion!r}.")
        self.fusion = fusion
        self.invariant = normal_linear_(nn.Linear(n_features, content_dim), init_std, generator)
        if fusion != "invariant":
            self.variant = normal_linear_(nn.Linear(n_features, content_dim), init_std, generator)
        if fusion == "attention":
            hidden = content_dim
            self.attention = normal_linear_(nn.Linear(content_dim, hidden), 1.0 / math.sqrt(content_dim),
                                            generator)
            self.query = nn.Parameter(torch.empty(hidden))
            normal_(self.query, 1.0 / math.sqrt(hidden), generator)
        elif fusion == "global":
            self.logits = nn.Parameter(torch.zeros(2))

    def forward(self, x, mask):
        """Fused content ``(n, c)`` and the weights ``(n, 2)`` of (invariant, variant)."""
        z_inv = F.linear(x, self.invariant.weight * mask, self.invariant.bias)
        if self.fusion == "invariant":
            weights = z_inv.new_zeros(x.shape[0], 2)
            weights[:, 0] = 1.0
            return z_inv, weights
        z_var = F.linear(x, self.variant.weight * (1.0 - mask), self.variant.bias)
        if self.fusion == "global":
            weights = torch.softmax(self.logits, 0).expand(x.shape[0], 2)
        else:
            stacked = torch.stack([z_inv, z_var], dim=1)                   # (n, 2, c)
            scores = torch.tanh(self.attention(stacked)) @ self.query      # (n, 2)
            weights = torch.softmax(scores, dim=1)
        z = weights[:, :1] * z_inv + weights[:, 1:] * z_var
        return z, weights


class ConvertScorer(nn.Module):
    """UltraGCN-style scorer whose item content comes from a :class:`ConvertModule`.

    Score ``U_u . [alpha V_i ; z_i]`` with ``z_i`` the fused content of item ``i`` under the fixed
    mask ``m`` (a buffer). It has the interface of :class:`~invrec.nn.UltraGCNScorer` that
    :func:`~invrec.nn.pair_and_negative_scores` uses (``user_vectors``, ``item_vectors``,
    ``n_items``).

    Parameters
    ----------
    n_users, n_items : int
    features : Tensor of shape (n_items, d)
        Prepared content (``d >= 1``).
    mask : Tensor of shape (d,)
        The invariant mask, values in [0, 1].
    id_dim, content_dim : int, default=64
    fusion : {"attention", "global", "invariant"}, default="attention"
    item_id_weight : float, default=1.0
        ``alpha``, multiplier of the item id embeddings in the item vector (0 removes them).
    init_std : float, default=0.01
    generator : torch.Generator, default=None

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> scorer = ConvertScorer(3, 4, torch.rand(4, 5), torch.ones(5), id_dim=2, content_dim=2, generator=g)
    >>> scorer.score_users(torch.tensor([0, 2])).shape, scorer.attention_weights().shape
    (torch.Size([2, 4]), torch.Size([4, 2]))
    """

    def __init__(self, n_users, n_items, features, mask, *, id_dim=64, content_dim=64,
                 fusion="attention", item_id_weight=1.0, init_std=0.01, generator=None):
        super().__init__()
        features = torch.as_tensor(features)
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.id_dim, self.content_dim = int(id_dim), int(content_dim)
        self.item_id_weight = float(item_id_weight)
        device, dtype = features.device, features.dtype
        self.register_buffer("features", features)
        self.register_buffer("mask", torch.as_tensor(mask, dtype=dtype, device=device).clone())
        self.user_embedding = nn.Parameter(torch.empty(self.n_users, self.dim, device=device, dtype=dtype))
        self.item_embedding = nn.Parameter(torch.empty(self.n_items, self.id_dim, device=device, dtype=dtype))
        normal_(self.user_embedding, init_std, generator)
        normal_(self.item_embedding, init_std, generator)
        if features.shape[1] == 0 or self.content_dim == 0:      # a pure id model
            self.content_dim, self.convert = 0, None
            self.user_embedding = nn.Parameter(self.user_embedding[:, :self.id_dim].detach().clone())
        else:
            self.convert = ConvertModule(features.shape[1], self.content_dim, fusion=fusion,
                                         init_std=init_std, generator=generator).to(device, dtype)

    @property
    def dim(self):
        return self.id_dim + self.content_dim

    def user_vectors(self, users=None):
        return self.user_embedding if users is None else self.user_embedding[users]

    def content_vectors(self, features):
        """Fused content of arbitrary content rows (new items included)."""
        if self.convert is None:
            return features.new_zeros(features.shape[0], 0)
        return self.convert(features, self.mask)[0]

    #: Items unknown at fit time can be scored from their content (zero without a content part).
    has_content = True

    def score_new_items(self, users, features):
        """Scores of users against content rows ``features`` (n, d): only the content parts meet."""
        return self.user_vectors(users)[:, self.id_dim:] @ self.content_vectors(features).T

    def item_vectors(self, items=None, mask=None):
        """Item vectors ``[alpha V_i ; z_i]``; ``mask`` is ignored (the stored mask is used)."""
        ids = self.item_embedding if items is None else self.item_embedding[items]
        if self.convert is None:
            return self.item_id_weight * ids
        x = self.features if items is None else self.features[items]
        content = self.convert(x.reshape(-1, x.shape[-1]), self.mask)[0].view(*x.shape[:-1], -1)
        return torch.cat([self.item_id_weight * ids, content], dim=-1)

    def forward(self, users, items):
        return (self.user_vectors(users) * self.item_vectors(items)).sum(-1)

    def score_users(self, users):
        return self.user_vectors(users) @ self.item_vectors().T

    def attention_weights(self):
        """``(n_items, 2)`` weights of (invariant, variant) per catalog item."""
        if self.convert is None:
            return self.features.new_tensor([1.0, 0.0]).expand(self.n_items, 2)
        return self.convert(self.features, self.mask)[1]

    def l2_parameter_groups(self, l2_embedding, l2_content, id_weight_items=2.0, *, scale=1.0):
        """Coupled weight-decay groups: users, item ids (times ``id_weight_items``), the rest."""
        return [
            {"params": [self.user_embedding], "weight_decay": 2.0 * scale * l2_embedding},
            {"params": [self.item_embedding], "weight_decay": 2.0 * scale * l2_embedding * id_weight_items},
        ] + ([{"params": list(self.convert.parameters()), "weight_decay": 2.0 * scale * l2_content}]
             if self.convert is not None else [])
