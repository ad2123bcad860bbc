"""Item ids and kept content made blind to the variant view of the content.

A learned mask splits the content dimensions into an invariant view (kept) and a variant view
(cut). Cutting is not enough on its own, for two reasons measured on the generator
(``benchmarks/shift.py``, issue 15):

* **item id embeddings absorb the shift.** Exposure driven by a spurious item attribute makes
  the attribute a strong co-occurrence signal, and the free id embedding of every item learns
  it: the spurious attribute is linearly predictable from PaInvRL's item ids with R^2 0.70 in
  the ``agree`` regime, and a perfect mask still leaves ERM-level out-of-distribution scores.
* **a cut that misses a few spurious dimensions** lets them through the invariant view at full
  strength (two kept spurious dimensions bring content-only OOD scores back to ERM level).

Both are fixed with the variant view itself, which carries the spurious attribute:

1. :func:`variant_item_basis`: the leading principal directions, over the training items, of the
   centred variant view (the components that each hold at least ``min_share`` of its variance).
   The fused model projects its item id embeddings off them, ``V - Q (Q^T V)``: the ids keep
   every collaborative direction but those that the variant content explains.
2. :func:`variant_residual`: the ridge regression of every kept dimension on the variant view,
   over the training items. The fused model reads the kept dimensions minus their prediction from
   the variant ones, so a spurious dimension the mask kept (predictable from the cut ones) is
   reduced to its noise, while an invariant one (unrelated to the variant view) passes unchanged.
   The same map applies to items passed after fit.

Only the leading components are projected out: on Last.fm's 2 x 128-d content, the components
holding 90% of the variant view's variance were 97 directions and took test NDCG@20 from .2789
to .2055; the components above a 5% share of the variance (two there, two on the generator,
where the spurious attribute is 2-d) cost .2789 -> .2746.
"""

from __future__ import annotations

import torch

__all__ = ["MIN_SHARE", "RIDGE", "variant_item_basis", "variant_residual"]

#: Smallest share of the variant view's variance a principal direction holds to be projected
#: off the item ids.
MIN_SHARE = 0.05
#: Ridge of the regression of the kept dimensions on the variant ones, relative to the number of
#: training items (the regression is on centred content of unit-scale dimensions).
RIDGE = 1e-3


def _views(mask):
    kept = mask > 0.5
    return torch.nonzero(kept).ravel(), torch.nonzero(~kept).ravel()


def variant_item_basis(features, mask, train_items, *, min_share=MIN_SHARE):
    """Orthonormal item-space basis of the variant view's leading principal directions.

    Parameters
    ----------
    features : Tensor of shape (n_items, d)
        The prepared content of the catalog.
    mask : Tensor of shape (d,)
        The invariant mask; dimensions at or below 0.5 form the variant view.
    train_items : LongTensor
        Items with training interactions (distinct): the basis is fitted on them only, and is 0 on
        every other item (their ids are never trained).
    min_share : float, default=MIN_SHARE
        A principal direction is kept when it holds at least this share of the variance.

    Returns
    -------
    basis : Tensor of shape (n_items, r)
        ``r = 0`` when the mask keeps or cuts every dimension.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.5], [4.0, 8.0]])
    >>> q = variant_item_basis(x, torch.tensor([1.0, 0.0]), torch.arange(4))
    >>> q.shape, round(float((q ** 2).sum()), 4)
    (torch.Size([4, 1]), 1.0)
    """
    kept, variant = _views(mask)
    n_items = features.shape[0]
    if len(kept) == 0 or len(variant) == 0 or len(train_items) < 2:
        return features.new_zeros(n_items, 0)
    view = features[train_items][:, variant]
    view = view - view.mean(0)
    u, s, _ = torch.linalg.svd(view, full_matrices=False)
    power = s ** 2
    total = power.sum()
    if not torch.isfinite(total) or total <= 0:
        return features.new_zeros(n_items, 0)
    r = int((power / total >= min_share).sum())
    basis = features.new_zeros(n_items, r)
    basis[train_items] = u[:, :r]
    return basis


def variant_residual(features, mask, train_items, *, ridge=RIDGE):
    """The map that removes from the kept dimensions what the variant view predicts of them.

    Returns ``(mean, coef)``: the variant view's mean over the training items, shape
    ``(n_variant,)``, and the ridge coefficients, shape ``(n_variant, n_kept)``, such that the
    kept dimensions of a content row ``x`` are read as
    ``x[kept] - (x[variant] - mean) @ coef`` (:meth:`FusedItemModel.residual_content`). Both are
    empty when the mask keeps or cuts every dimension.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[1.0, 2.0], [2.0, 4.1], [3.0, 6.0], [4.0, 7.9]])
    >>> mean, coef = variant_residual(x, torch.tensor([1.0, 0.0]), torch.arange(4))
    >>> round(float(mean), 3), round(float(coef), 3)
    (5.0, 0.51)
    """
    kept, variant = _views(mask)
    if len(kept) == 0 or len(variant) == 0 or len(train_items) < 2:
        return features.new_zeros(0), features.new_zeros(0, 0)
    rows = features[train_items]
    mean = rows[:, variant].mean(0)
    xv = rows[:, variant] - mean
    xk = rows[:, kept] - rows[:, kept].mean(0)
    gram = xv.T @ xv + ridge * len(rows) * torch.eye(len(variant), dtype=xv.dtype, device=xv.device)
    coef = torch.linalg.solve(gram, xv.T @ xk)
    return mean, coef
