"""The fused item model of PaInvRL and EIOR: ids next to masked content, split and fused.

From the invariant mask ``m`` over the content dimensions, every item ``i`` with content ``x_i``
gets an invariant part ``z_inv = W_inv (m * x_i)`` and a variant part
``z_var = W_var ((1 - m) * x_i)`` (separate projections), fused into ``f_i`` by an
:class:`~invrec.invariance.AttentionFusion` (the setting: :class:`~invrec.invariance.Fusion`).
A user and an item meet in the UltraGCN-style score ``U_u . [alpha V_i ; f_i]``, ``alpha`` the
item id weight: item id embeddings can absorb exposure bias that no content mask removes, and
``alpha = 0`` drops them. PaInvRL trains the fused score; EIOR adds the invariant-only and
variant-only scores (:meth:`~invrec.invariance.FusedItemModel.part_scores`) to its loss.

:meth:`~invrec.invariance.FusedItemModel.decorrelate` makes the ids and the invariant view
blind to the variant view (see :mod:`invrec.invariance.decorrelation`): ids projected off the
variant content's leading directions, kept dimensions read as their residual on the cut ones.
"""

from __future__ import annotations

import torch
from torch import nn

from .._moved import moved_names
from ..nn.init import normal_, normal_linear_
from ..nn.optim import l2_parameter_groups
from ..nn.scoring import _distinct
from .decorrelation import variant_item_basis, variant_residual
from .fusion import Fusion

__all__ = ["FusedItemModel", "PARTS"]

#: The scores :meth:`~invrec.invariance.FusedItemModel.part_scores` returns, in order.
PARTS = ("fused", "invariant", "variant")


class FusedItemModel(nn.Module):
    """UltraGCN-style model whose item vectors hold invariant, variant and fused content.

    It has the interface of :class:`~invrec.nn.UltraGCNModel` that the training and scoring
    code uses (``user_vectors``, ``item_vectors``, ``score_users``, ``n_items``).

    Parameters
    ----------
    n_users, n_items : int
    features : Tensor of shape (n_items, d)
        Prepared content (``d = 0``: a pure id model).
    mask : Tensor of shape (d,)
        The invariant mask, values in [0, 1] (a buffer).
    id_dim, content_dim : int, default=64
        Widths of the id part and of each content part (``content_dim=0``: a pure id model).
    fusion : Fusion or str, default="attention"
        The fusion setting (a str is its mode).
    item_id_weight : float, default=1.0
        ``alpha``.
    init_std : float, default=0.01
        Standard deviation of the initial embeddings and projections (biases start at 0).
    generator : torch.Generator, default=None

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> model = FusedItemModel(3, 4, torch.rand(4, 5), torch.ones(5), id_dim=2, content_dim=2, generator=g)
    >>> model.score_users(torch.tensor([0, 2])).shape, model.attention_weights().shape
    (torch.Size([2, 4]), torch.Size([4, 2]))
    """

    def __init__(self, n_users, n_items, features, mask, *, id_dim=64, content_dim=64,
                 fusion="attention", item_id_weight=1.0, init_std=0.01, generator=None):
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
            if isinstance(fusion, str):
                fusion = Fusion(mode=fusion)
            self.fusion = fusion.build(self.content_dim, generator=generator).to(device, dtype)
        # Decorrelation from the variant view (empty: off, see decorrelate).
        self.register_buffer("id_basis", features.new_zeros(self.n_items, 0))
        self.register_buffer("residual_mean", features.new_zeros(0))
        self.register_buffer("residual_coef", features.new_zeros(0, 0))

    def decorrelate(self, train_items, *, ids=True, content=True):
        """Make the item ids (``ids``) and the invariant view (``content``) blind to the variant view.

        ``train_items`` (LongTensor) are the items with training interactions, on which both maps
        are fitted. With a mask that keeps or cuts every dimension both stay off. Returns self.
        """
        if self.content_dim == 0:
            return self
        if ids:
            self.id_basis = variant_item_basis(self.features, self.mask, train_items)
        if content:
            self.residual_mean, self.residual_coef = variant_residual(self.features, self.mask, train_items)
        return self

    def residual_content(self, x):
        """Content rows ``x`` with their kept dimensions replaced by the residual on the variant ones."""
        coef = getattr(self, "residual_coef", None)
        if coef is None or coef.numel() == 0:
            return x
        kept = self.mask > 0.5
        x = x.clone()
        x[:, kept] = x[:, kept] - (x[:, ~kept] - self.residual_mean) @ coef
        return x

    def item_ids(self, items=None):
        """Item id embeddings as the scores read them: projected off ``id_basis`` when set."""
        table = self.item_embedding
        basis = getattr(self, "id_basis", None)
        if basis is None or basis.shape[1] == 0:
            return table if items is None else table[items]
        loadings = basis.T @ table
        return table - basis @ loadings if items is None else table[items] - basis[items] @ loadings

    # ------------------------------------------------------------------ content
    def content_parts(self, x):
        """``(z_inv, z_var, fused, weights)`` of content rows ``x`` of shape (n, d)."""
        z_inv = self.invariant(self.residual_content(x) * self.mask)
        z_var = self.variant(x * (1.0 - self.mask))
        fused, weights = self.fusion(z_inv, z_var)
        return z_inv, z_var, fused, weights

    def content_vectors(self, features):
        """Fused content of arbitrary content rows (new items included)."""
        if self.content_dim == 0:
            return features.new_zeros(features.shape[0], 0)
        return self.content_parts(features)[2]

    def attention_weights(self, items=None):
        """``(n, 2)`` weights of (invariant, variant) of the catalog items (or of ``items``)."""
        n = self.n_items if items is None else len(items)
        if self.content_dim == 0:
            return self.features.new_tensor([1.0, 0.0]).expand(n, 2)
        return self.content_parts(self.features if items is None else self.features[items])[3]

    # ------------------------------------------------------------------ scores
    def user_vectors(self, users=None):
        return self.user_embedding if users is None else self.user_embedding[users]

    def item_vectors(self, items=None):
        """Fused item vectors ``[alpha V_i ; f_i]``."""
        ids = self.item_ids(items)
        if self.content_dim == 0:
            return self.item_id_weight * ids
        x = self.features if items is None else self.features[items]
        return torch.cat([self.item_id_weight * ids, self.content_parts(x)[2]], dim=-1)

    def forward(self, users, items):
        return (self.user_vectors(users) * self.item_vectors(items)).sum(-1)

    def score_users(self, users, *, item_vectors=None):
        """Scores against the catalog; ``item_vectors``: the catalog's, computed once by the caller."""
        return self.user_vectors(users) @ (self.item_vectors() if item_vectors is None else item_vectors).T

    #: Items unknown at fit time can be scored from their content (zero without a content part).
    has_content = True

    def score_new_items(self, users, features):
        """Scores of users against content rows ``features`` (n, d): only the content parts meet."""
        return self.user_vectors(users)[:, self.id_dim:] @ self.content_vectors(features).T

    def part_scores(self, users, items, negatives=None, parts=PARTS):
        """Scores of the pairs and of shared negatives with the fused, invariant or variant content.

        Parameters
        ----------
        users, items : LongTensor of shape (B,)
        negatives : LongTensor of shape (N,), default=None
            Items scored against every user of the batch.
        parts : sequence of {"fused", "invariant", "variant"}, default=all three

        Returns
        -------
        list of (Tensor (B,), Tensor (B, N) or None)
            ``(positive, negative)`` scores of each requested part, in the order asked. The id
            part is the same for the three; only the fused score reaches the fusion parameters.
        """
        u = self.user_vectors(users)
        u_id, u_c = u[:, :self.id_dim], u[:, self.id_dim:]
        table = self.item_ids()
        pos_id = (u_id * table[items]).sum(-1) * self.item_id_weight
        neg_id = None if negatives is None else (u_id @ table[negatives].T) * self.item_id_weight
        if self.content_dim == 0:
            return [(pos_id, neg_id)] * len(parts)
        # The content of each distinct item once (a batch repeats items): positives and negatives.
        batch = items if negatives is None else torch.cat([items, negatives])
        distinct, position = _distinct(batch, self.n_items)
        z_inv, z_var, fused, _ = self.content_parts(self.features[distinct])
        content = {"fused": fused, "invariant": z_inv, "variant": z_var}
        pos_at, neg_at = position[:len(items)], position[len(items):]
        return [(pos_id + (u_c * content[part][pos_at]).sum(-1),
                 None if negatives is None else neg_id + u_c @ content[part][neg_at].T)
                for part in parts]

    # ------------------------------------------------------------------ training
    def l2_parameter_groups(self, l2_embedding, l2_content, id_weight_items=2.0, *, scale=1.0):
        """Coupled weight decay: users, item ids (times ``id_weight_items``), the two projections;
        none on the fusion (its weights are bounded by the softmax) or on a rating head."""
        content = [] if self.content_dim == 0 else [*self.invariant.parameters(), *self.variant.parameters()]
        rest = [p for name, p in self.named_parameters() if name.startswith(("fusion.", "head."))]
        return l2_parameter_groups(self.user_embedding, self.item_embedding, content, l2_embedding,
                                   l2_content, id_weight_items, scale=scale, free=rest)

__getattr__ = moved_names(__name__, {}, {
    "ConvertScorer": "PaInvRL's and EIOR's item models are one, invrec.invariance.FusedItemModel",
    "ConvertModule": "its projections and fusion are parts of invrec.invariance.FusedItemModel "
                     "(fusion: invrec.invariance.AttentionFusion)",
    "EIORScorer": "use invrec.invariance.FusedItemModel (three_scores is part_scores)",
    "FUSIONS": "the one fusion vocabulary is invrec.invariance.FUSION_MODES",
})
