"""The multimodal UltraGCN-style scorer shared by the ERM baseline, PaInvRL and EIOR.

A user is one free vector ``u`` of width ``id_dim + content_dim``. An item is the concatenation of
a free id vector ``V_i`` (width ``id_dim``) and a linear projection of its content,
``W (m * x_i) + b`` (width ``content_dim``), where ``m`` is an optional per-dimension mask (all ones
when absent). The score of a pair is the dot product of the two vectors. This is InvRL's
"UltraGCNNet": UltraGCN keeps no graph propagation at inference, the graph only enters through the
degree weights of its loss (see :mod:`invrec.nn.losses`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .init import normal_, normal_linear_
from .optim import l2_parameter_groups
from .._moved import moved_names

__all__ = ["UltraGCNModel"]


def _rows(table, index):
    """``table[index]`` for an index tensor of any shape, via ``index_select``.

    ``index_select``'s backward is a dense ``index_add`` (faster on CPU than the accumulate-put of
    advanced indexing).
    """
    if index is None:
        return table
    flat = table.index_select(0, index.reshape(-1))
    return flat.view(*index.shape, *table.shape[1:])


class UltraGCNModel(nn.Module):
    """Dot-product scorer with user/item id embeddings and a linear content tower.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the encoded user and item index ranges.
    features : Tensor or ndarray of shape (n_items, d), or None
        Item content, already prepared by the caller (each modality block L2-normalised per item,
        blocks concatenated, missing rows filled). Stored as the buffer ``features`` in the module's
        floating dtype, so ``.to()`` moves and casts it with the parameters (arrays are copied; a
        tensor already of that dtype is kept as is, on its device: parameters are created there). ``d`` may be 0 (or
        ``features`` None): the scorer is then a pure id model and ``content_dim`` is forced to 0.
    id_dim : int, default=64
        Width of the item id embedding (and of the id part of the user vector).
    content_dim : int, default=64
        Output width of the content tower (and of the content part of the user vector).
    init_std : float, default=0.01
        Standard deviation of the normal initialisation of both embeddings and of the projection
        weight. The projection bias starts at zero.
    bias : bool, default=True
        Whether the content tower has a bias (InvRL drops it while learning the mask).
    generator : torch.Generator, default=None
        Source of the initial values (None uses torch's default generator). The same generator
        state gives the same initial parameters on any device.

    Attributes
    ----------
    user_embedding : Parameter of shape (n_users, id_dim + content_dim)
    item_embedding : Parameter of shape (n_items, id_dim)
    projection : Linear(d, content_dim) or None
        None when the scorer has no content.
    features : buffer of shape (n_items, d)

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> scorer = UltraGCNModel(3, 4, torch.rand(4, 5), id_dim=2, content_dim=3, generator=g)
    >>> scorer.item_vectors().shape
    torch.Size([4, 5])
    >>> scorer(torch.tensor([0, 2]), torch.tensor([1, 3])).shape
    torch.Size([2])
    >>> scorer.score_users(torch.tensor([1])).shape
    torch.Size([1, 4])
    """

    def __init__(self, n_users, n_items, features=None, *, id_dim=64, content_dim=64,
                 init_std=0.01, bias=True, generator=None):
        super().__init__()
        n_users, n_items, id_dim = int(n_users), int(n_items), int(id_dim)
        if n_users < 1 or n_items < 1:
            raise ValueError(f"n_users and n_items must be >= 1; got {n_users} and {n_items}.")
        if id_dim < 0 or int(content_dim) < 0:
            raise ValueError("id_dim and content_dim must be >= 0.")
        dtype = torch.get_default_dtype()
        if features is None:
            features = torch.zeros((n_items, 0), dtype=dtype)
        elif not isinstance(features, torch.Tensor):
            features = np.array(features, dtype=np.float64)   # a private, writable copy
        features = torch.as_tensor(features).to(dtype=dtype)
        if features.ndim != 2 or features.shape[0] != n_items:
            raise ValueError(
                f"features must have shape (n_items={n_items}, d); got {tuple(features.shape)}.")
        n_features = features.shape[1]
        content_dim = int(content_dim) if n_features > 0 else 0
        if id_dim + content_dim == 0:
            raise ValueError("The scorer needs id_dim > 0 or content (d > 0 and content_dim > 0).")
        device = features.device

        self.n_users, self.n_items = n_users, n_items
        self.id_dim, self.content_dim, self.n_features = id_dim, content_dim, n_features
        self.register_buffer("features", features)
        self.user_embedding = nn.Parameter(
            torch.empty(n_users, id_dim + content_dim, device=device, dtype=dtype))
        self.item_embedding = nn.Parameter(torch.empty(n_items, id_dim, device=device, dtype=dtype))
        if content_dim > 0:
            self.projection = nn.Linear(n_features, content_dim, bias=bias, device=device,
                                        dtype=dtype)
        else:
            self.projection = None
        self.reset_parameters(init_std, generator=generator)

    def reset_parameters(self, init_std=0.01, *, generator=None):
        """Draw fresh initial values: N(0, init_std) for embeddings and weight, zero bias.

        Parameters
        ----------
        init_std : float, default=0.01
            Standard deviation of the normal draws.
        generator : torch.Generator, default=None
            Source of the draws.
        """
        normal_(self.user_embedding, init_std, generator)
        normal_(self.item_embedding, init_std, generator)
        if self.projection is not None:
            normal_linear_(self.projection, init_std, generator)

    @property
    def dim(self):
        """Width of user and item vectors, ``id_dim + content_dim``."""
        return self.id_dim + self.content_dim

    def user_vectors(self, users=None):
        """User vectors ``U_u``.

        Parameters
        ----------
        users : LongTensor of any shape, default=None
            Encoded user indices; None means all users.

        Returns
        -------
        Tensor of shape users.shape + (id_dim + content_dim,)
        """
        return _rows(self.user_embedding, users)

    def content_vectors(self, items=None, mask=None):
        """Content part ``W (mask * x_i) + b`` of the item vectors.

        The mask is folded into the weight (``W diag(mask)``), which equals masking the features
        and costs ``content_dim * d`` multiplications instead of ``n * d``.

        Parameters
        ----------
        items : LongTensor of any shape, default=None
            Encoded item indices; None means all items.
        mask : Tensor of shape (d,), default=None
            Multiplied into every item's features; None means no mask. Ignored without content.

        Returns
        -------
        Tensor of shape items.shape + (content_dim,)
        """
        x = _rows(self.features, items)
        if self.projection is None:
            return x.new_zeros((*x.shape[:-1], 0))
        weight = self.projection.weight
        if mask is not None:
            if mask.shape != (self.n_features,):
                raise ValueError(
                    f"mask must have shape ({self.n_features},); got {tuple(mask.shape)}.")
            weight = weight * mask
        return F.linear(x, weight, self.projection.bias)

    def item_vectors(self, items=None, mask=None):
        """Item vectors ``[V_i ; W (mask * x_i) + b]``.

        Parameters
        ----------
        items : LongTensor of any shape, default=None
            Encoded item indices (for example ``(B, K)`` neighbour lists); None means all items.
        mask : Tensor of shape (d,), default=None
            Per-feature multiplier applied to the content before the projection (the invariant
            mask of later methods); None means all ones.

        Returns
        -------
        Tensor of shape items.shape + (id_dim + content_dim,)
        """
        ids = _rows(self.item_embedding, items)
        if self.projection is None:
            return ids
        return torch.cat([ids, self.content_vectors(items, mask)], dim=-1)

    def forward(self, users, items, mask=None):
        """Scores of (user, item) pairs.

        Parameters
        ----------
        users, items : LongTensor of shape (n,)
            Encoded indices of the pairs.
        mask : Tensor of shape (d,), default=None
            Feature mask, as in :meth:`item_vectors`.

        Returns
        -------
        Tensor of shape (n,)
        """
        return (self.user_vectors(users) * self.item_vectors(items, mask)).sum(dim=-1)

    def score_users(self, users, mask=None, *, item_vectors=None):
        """Scores of some users against the whole catalog (one matrix product).

        Parameters
        ----------
        users : LongTensor of shape (n,)
            Encoded user indices.
        mask : Tensor of shape (d,), default=None
            Feature mask, as in :meth:`item_vectors`.
        item_vectors : Tensor of shape (n_items, id_dim + content_dim), default=None
            The catalog's :meth:`item_vectors` computed once by the caller (to score many chunks
            of users with one projection of the content; ``mask`` is then not read); None
            computes them.

        Returns
        -------
        Tensor of shape (n, n_items)
        """
        if item_vectors is None:
            item_vectors = self.item_vectors(None, mask)
        return self.user_vectors(users) @ item_vectors.T

    @property
    def has_content(self):
        """True when the scorer has item content (it can score items from content alone)."""
        return self.n_features > 0

    def score_new_items(self, users, features):
        """Scores of users against items known only by their content rows ``features`` (n, d).

        Only the content parts meet: ``U_u[id_dim:] . (W x + b)`` (new items have no id vector).
        """
        u = self.user_vectors(users)
        content = self.projection(features) if self.projection is not None else features[:, :0]
        return u[:, self.id_dim:] @ content.T

    def l2_parameter_groups(self, l2_embedding, l2_content, id_weight_items=2.0, *, scale=1.0):
        """Optimizer parameter groups whose ``weight_decay`` applies InvRL's whole-matrix L2.

        InvRL adds ``scale * (l2_embedding * (||U||^2 + id_weight_items ||V||^2) + l2_content *
        (||W||^2 + ||b||^2))`` to its loss: that adds ``2 * scale * l2 * p`` to each parameter's
        gradient; torch's Adam and SGD add ``weight_decay * p`` to the gradient before their
        update (coupled L2, not AdamW's decoupled decay), so these groups give the same update
        without building the whole-matrix norms in autograd at every step
        (:func:`~invrec.nn.optim.l2_parameter_groups`).

        Parameters
        ----------
        l2_embedding, l2_content : float
            Weights of the embedding and content-tower terms.
        id_weight_items : float, default=2.0
            Multiplier of the item id embeddings' term.
        scale : float, default=1.0
            Multiplier of every term (``1 / batch_size`` for a per-positive mean loss).

        Returns
        -------
        list of dict
            ``{"params": [...], "weight_decay": ...}`` for users, items and the content tower
            (absent without content).

        Examples
        --------
        >>> import torch
        >>> scorer = UltraGCNModel(3, 4, torch.rand(4, 5), id_dim=2, content_dim=2)
        >>> [g["weight_decay"] for g in scorer.l2_parameter_groups(1e-2, 0.5, scale=0.5)]
        [0.01, 0.02, 0.5]
        """
        content = [] if self.projection is None else list(self.projection.parameters())
        return l2_parameter_groups(self.user_embedding, self.item_embedding, content, l2_embedding,
                                   l2_content, id_weight_items, scale=scale)

    def extra_repr(self):
        return (f"n_users={self.n_users}, n_items={self.n_items}, id_dim={self.id_dim}, "
                f"content_dim={self.content_dim}, n_features={self.n_features}")


#: Former names of this module's parts.
__getattr__ = moved_names(__name__, {
    "UltraGCNScorer": "invrec.nn.backbone:UltraGCNModel",
})
