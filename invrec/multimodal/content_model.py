"""A purely content-based scorer: free user vectors against per-modality item extractors.

An item has no id embedding: its representation in modality ``m`` is ``c^m = W_m x^m + b_m``, a
linear extractor of that modality's features alone (so a missing modality cannot corrupt the
extraction of the others), and its representation under a modality weighting ``theta`` is
``sum_m theta_m c^m``. A user is a free vector ``u``; a score is ``u . c``. Because items are
functions of their features, an item never seen in training is scored from its features alone.
This is MILK's model; the weighting of inference is uniform, ``theta_m = 1 / M``.

With ``availability_columns=True`` the item representation knows which modalities the item has:
the content carries ``M`` trailing 0/1 columns (1: the modality is available), and a modality
the item lacks (its columns hold a fill, a mean or an imputation) is represented by
``rho_m G_m(fill) + t_m`` instead of ``G_m(fill)``: a learned reliability ``rho_m`` of the filled
content (initially 1) and a learned fill token ``t_m`` (initially 0), one pair per modality. At
initialisation this is the plain model exactly; the pair learns only from items that lack the
modality (simulated losses in training, or items missing it in the training data).

Without content (``features=None``) the scorer falls back to one "modality" made of free item id
vectors, i.e. matrix factorisation; it then cannot score items it was not built with.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..nn.scoring import _distinct
from .._moved import moved_names

__all__ = ["MultimodalContentModel"]


def _draw(shape, generator, dtype, device, *, std=None, bound=None):
    """N(0, std) or U(-bound, bound) values drawn on the generator's device, then moved."""
    draw_device = generator.device if generator is not None else device
    if std is not None:
        out = torch.randn(shape, generator=generator, device=draw_device, dtype=dtype) * std
    else:
        out = (torch.rand(shape, generator=generator, device=draw_device, dtype=dtype) * 2 - 1) * bound
    return out.to(device)


class MultimodalContentModel(nn.Module):
    """Dot-product scorer of free user vectors and per-modality linear item extractors.

    Parameters
    ----------
    n_users : int
        Size of the encoded user index range.
    features : Tensor of shape (n_items, D), or None
        Item content prepared by the caller (each modality L2-normalised per item, missing rows
        filled, modalities concatenated); stored as the buffer ``features``. None builds the
        id-embedding fallback (then ``n_items`` is required).
    slices : sequence of slice, default=None
        Columns of each modality in ``features`` (``ItemFeatures.concat``'s slices, in order);
        None means one modality spanning every column (but the availability columns).
    dim : int, default=64
        Width of user vectors and of every modality representation.
    init_std : float, default=0.1
        Standard deviation of the normal initial user (and fallback item) vectors (MILK: 0.1).
        Extractors start like ``torch.nn.Linear``: ``U(-1/sqrt(d_m), 1/sqrt(d_m))``.
    n_items : int, default=None
        Number of items of the id fallback (ignored when ``features`` is given).
    generator : torch.Generator, default=None
        Source of the initial values.
    availability_columns : bool, default=False
        The last ``M`` columns of ``features`` (and of any content passed later) are the items'
        availability indicators, 1.0 where the modality is available and 0.0 where its columns
        hold a fill; a missing modality is then represented with the learned ``fill_scale`` and
        ``fill_token``. Ignored without features.

    Attributes
    ----------
    user_embedding : Parameter of shape (n_users, dim)
    extractors : ModuleList of Linear(d_m, dim)
        One per modality (empty in the id fallback).
    item_embedding : Parameter of shape (n_items, dim) or None
        Only in the id fallback.
    fill_scale : Parameter of shape (M,) or None
        Reliability ``rho_m`` of a filled modality (only with ``availability_columns``).
    fill_token : Parameter of shape (M, dim) or None
        Fill token ``t_m`` added to a filled modality's representation (idem).
    n_modalities : int

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> scorer = MultimodalContentModel(3, torch.rand(5, 6), [slice(0, 4), slice(4, 6)], dim=2,
    ...                                  generator=g)
    >>> scorer.modality_vectors(torch.tensor([0, 4])).shape   # (items, modalities, dim)
    torch.Size([2, 2, 2])
    >>> scorer.score_users(torch.tensor([1])).shape
    torch.Size([1, 5])
    """

    #: Class default, so that models pickled before the option read as without it.
    availability_columns = False

    def __init__(self, n_users, features=None, slices=None, *, dim=64, init_std=0.1, n_items=None,
                 generator=None, availability_columns=False):
        super().__init__()
        dtype = torch.get_default_dtype()
        n_users, dim = int(n_users), int(dim)
        if n_users < 1 or dim < 1:
            raise ValueError(f"n_users and dim must be >= 1; got {n_users} and {dim}.")
        if features is None:
            if n_items is None or int(n_items) < 1:
                raise ValueError("without features, n_items (>= 1) is required.")
            device = generator.device if generator is not None else torch.device("cpu")
            features = torch.zeros((int(n_items), 0), dtype=dtype, device=device)
            slices = []
            availability_columns = False
        else:
            features = torch.as_tensor(features).to(dtype=dtype)
            if features.ndim != 2 or features.shape[1] == 0:
                raise ValueError(f"features must have shape (n_items, D > 0); got {tuple(features.shape)}.")
            if slices is None:
                if availability_columns:
                    raise ValueError("availability_columns=True needs the modality slices.")
                slices = [slice(0, features.shape[1])]
            slices = list(slices)
            widths = [s.stop - s.start for s in slices]
            n_content = features.shape[1] - (len(slices) if availability_columns else 0)
            if any(w < 1 for w in widths) or sum(widths) != n_content:
                extra = f" and {len(slices)} availability columns" if availability_columns else ""
                raise ValueError(
                    f"slices must cover the {n_content} feature columns{extra}; got {slices}.")
        device = features.device
        self.n_users, self.n_items, self.dim = n_users, int(features.shape[0]), dim
        self.register_buffer("features", features)
        self._bounds = [(int(s.start), int(s.stop)) for s in slices]
        self.user_embedding = nn.Parameter(_draw((n_users, dim), generator, dtype, device, std=init_std))
        self.extractors = nn.ModuleList()
        for start, stop in self._bounds:
            layer = nn.Linear(stop - start, dim, device=device, dtype=dtype)
            bound = 1.0 / math.sqrt(stop - start)
            with torch.no_grad():
                layer.weight.copy_(_draw(layer.weight.shape, generator, dtype, device, bound=bound))
                layer.bias.copy_(_draw(layer.bias.shape, generator, dtype, device, bound=bound))
            self.extractors.append(layer)
        self.availability_columns = bool(availability_columns)
        self._n_content = features.shape[1] - (len(self._bounds) if self.availability_columns else 0)
        if self.availability_columns:
            self.fill_scale = nn.Parameter(torch.ones(len(self._bounds), dtype=dtype, device=device))
            self.fill_token = nn.Parameter(torch.zeros((len(self._bounds), dim), dtype=dtype, device=device))
        else:
            self.fill_scale = self.fill_token = None
        if self._bounds:
            self.item_embedding = None
        else:
            self.item_embedding = nn.Parameter(
                _draw((self.n_items, dim), generator, dtype, device, std=init_std))

    @property
    def n_modalities(self):
        """Number of modalities (1 in the id fallback)."""
        return max(1, len(self._bounds))

    @property
    def has_content(self):
        """False in the id fallback."""
        return bool(self._bounds)

    def user_vectors(self, users=None):
        """User vectors; ``users`` None means all users."""
        return self.user_embedding if users is None else self.user_embedding[users]

    def _linear(self, features):
        """``G_m`` of every modality's columns, ``(n, D[+M])`` -> ``(n, M, dim)``."""
        if not self.has_content:
            raise ValueError("this scorer has no content extractors (it was built without features).")
        return torch.stack([layer(features[:, start:stop])
                            for layer, (start, stop) in zip(self.extractors, self._bounds)], dim=1)

    def extract(self, features):
        """Modality representations of content rows: ``(n, D)`` -> ``(n, M, dim)``.

        Parameters
        ----------
        features : Tensor of shape (n, D), or (n, D + M) with ``availability_columns``
            Prepared like the ``features`` buffer (for items unknown at construction). With
            ``availability_columns``, a modality whose indicator is 0 is represented as
            ``fill_scale[m] * G_m(x^m) + fill_token[m]``.
        """
        reps = self._linear(features)
        if not self.availability_columns:
            return reps
        if features.shape[1] != self._n_content + len(self._bounds):
            raise ValueError(
                f"content rows must have {self._n_content} feature and {len(self._bounds)} "
                f"availability columns; got {features.shape[1]} columns.")
        available = features[:, self._n_content:].unsqueeze(-1) > 0.5           # (n, M, 1)
        return torch.where(available, reps, self._as_lost(reps))

    def _as_lost(self, reps):
        """Representations ``(n, M, dim)`` of filled modalities: ``rho_m c^m + t_m``."""
        return reps * self.fill_scale.view(1, -1, 1) + self.fill_token

    def lost_vectors(self, features, modality=None):
        """Representation of every modality of content rows as if each were missing (filled).

        Parameters
        ----------
        features : Tensor of shape (n, D) or (n, D + M)
            Fill content (the availability columns, if any, are ignored).
        modality : int, default=None
            Only this modality (its columns alone are read); None: every modality.

        Returns
        -------
        Tensor of shape (n, M, dim), or (n, dim) for one ``modality``
            ``G_m(x^m)``, or with ``availability_columns`` ``fill_scale[m] * G_m(x^m) +
            fill_token[m]``: what an item whose modality ``m`` holds that fill gets.
        """
        if modality is None:
            reps = self._linear(features)
            return self._as_lost(reps) if self.availability_columns else reps
        if not self.has_content:
            raise ValueError("this scorer has no content extractors (it was built without features).")
        start, stop = self._bounds[modality]
        rep = self.extractors[modality](features[:, start:stop])
        if self.availability_columns:
            rep = rep * self.fill_scale[modality] + self.fill_token[modality]
        return rep

    def modality_vectors(self, items=None):
        """Representation of catalog items in each modality.

        Parameters
        ----------
        items : LongTensor of shape (n,), default=None
            Encoded items; None means every item.

        Returns
        -------
        Tensor of shape (n, M, dim)
        """
        if not self.has_content:
            table = self.item_embedding if items is None else self.item_embedding[items]
            return table.unsqueeze(1)
        x = self.features if items is None else self.features.index_select(0, items)
        return self.extract(x)

    def batch_modality_vectors(self, items):
        """Modality representations of an index tensor with repeats, each distinct item once.

        Returns
        -------
        distinct : LongTensor of shape (n_distinct,)
            The sorted distinct items.
        vectors : Tensor of shape (n_distinct, M, dim)
        where : LongTensor of items.shape
            Position of every entry of ``items`` in ``distinct``.
        """
        distinct, where = _distinct(items.reshape(-1), self.n_items)
        return distinct, self.modality_vectors(distinct), where.view(items.shape)

    @staticmethod
    def fuse(vectors, weights=None):
        """Weighted sum over the modality axis: ``(n, M, dim)`` -> ``(n, dim)``.

        ``weights`` of shape (M,) (None: uniform) or (E, M) (then the result is ``(E, n, dim)``).
        """
        if weights is None:
            return vectors.mean(dim=1)
        if weights.ndim == 1:
            return torch.einsum("nmd,m->nd", vectors, weights)
        return torch.einsum("nmd,em->end", vectors, weights)

    def item_vectors(self, items=None):
        """Uniformly fused item vectors (the inference representation), ``(n, dim)``."""
        return self.fuse(self.modality_vectors(items))

    def forward(self, users, items):
        """Scores of (user, item) pairs under the uniform fusion, shape ``(n,)``."""
        return (self.user_vectors(users) * self.item_vectors(items)).sum(dim=-1)

    def score_users(self, users, *, item_vectors=None):
        """Scores of ``users`` against every catalog item, ``(n_users_given, n_items)``.

        ``item_vectors``: the catalog's :meth:`item_vectors`, computed once by the caller.
        """
        return self.user_vectors(users) @ (self.item_vectors() if item_vectors is None else item_vectors).T

    def score_new_items(self, users, features):
        """Scores of ``users`` against items given by their prepared content ``(n_new, D)``."""
        return self.user_vectors(users) @ self.fuse(self.extract(features)).T

    def extra_repr(self):
        widths = [stop - start for start, stop in self._bounds]
        extra = ", availability_columns=True" if self.availability_columns else ""
        return (f"n_users={self.n_users}, n_items={self.n_items}, dim={self.dim}, "
                f"modality_widths={widths}{extra}")


#: Former names of this module's parts.
__getattr__ = moved_names(__name__, {
    "MultimodalContentScorer": "invrec.multimodal.content_model:MultimodalContentModel",
})
