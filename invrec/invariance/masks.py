"""Turning a learned soft feature mask into the hard one a final model reads."""

from __future__ import annotations

import torch

__all__ = ["binarize_mask"]


def binarize_mask(mask, threshold):
    """Hard 0/1 mask from a soft one (None: unchanged).

    ``threshold="auto"`` keeps the upper of the two groups that minimise the within-group sum of
    squares of the mask values (a two-means split, Otsu's rule); a float ``t`` keeps
    ``(m - min) / (max - min) >= t``. A constant mask keeps every dimension.

    Examples
    --------
    >>> import torch
    >>> binarize_mask(torch.tensor([0.6, 0.9, 0.7, 1.0]), 0.5).tolist()
    [0.0, 1.0, 0.0, 1.0]
    >>> binarize_mask(torch.tensor([0.80, 0.99, 0.85, 1.0, 0.97]), "auto").tolist()
    [0.0, 1.0, 0.0, 1.0, 1.0]
    """
    if threshold is None:
        return mask
    span = mask.max() - mask.min()
    if float(span) <= 0:
        return torch.ones_like(mask)
    if isinstance(threshold, str):       # "auto": best split of the sorted values
        values = mask.detach().double().sort().values
        n = values.numel()
        sizes = torch.arange(1, n, dtype=torch.float64, device=values.device)
        csum, csq = values.cumsum(0)[:-1], values.square().cumsum(0)[:-1]
        total, total_sq = values.sum(), values.square().sum()
        lower = csq - csum.square() / sizes
        upper = (total_sq - csq) - (total - csum).square() / (n - sizes)
        split = int(torch.argmin(lower + upper))
        cut = (values[split] + values[split + 1]) / 2
        return (mask.double() > cut).to(mask.dtype)
    return ((mask - mask.min()) / span >= threshold).to(mask.dtype)

