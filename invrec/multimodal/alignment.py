"""Cross-modality alignment: pull the representations of one item's modalities together.

MILK's CMAM term. For items ``j`` with modality representations ``c_j^1..c_j^M`` (each of width
``d``) and an availability mask ``a_jm``, the loss is the mean squared distance per dimension over
every pair of modalities both available for an item::

    L = sum_j sum_{m < m'} a_jm a_jm' ||c_j^m - c_j^m'||^2 / (d * sum_j sum_{m < m'} a_jm a_jm')

With two modalities and nothing missing this is ``MSE(c^1, c^2)``, the official code's form (its
weights, 0.05 and 0.5, are tuned for that scale); with more modalities it is the mean over the
available pairs, so the scale does not grow with ``M``. Pairs with a missing side contribute
nothing: a filled-in vector is not a view of the item to align with.
"""

from __future__ import annotations

import torch

__all__ = ["cross_modality_alignment"]


def cross_modality_alignment(representations, availability=None):
    """Mean squared distance between the available modality representations of each item.

    Parameters
    ----------
    representations : Tensor of shape (n, M, d)
        Representation of each item (row) in each modality.
    availability : BoolTensor of shape (n, M), default=None
        True where the item has that modality; None means every modality is available.

    Returns
    -------
    Tensor
        Scalar; 0 (still attached to the graph) when no item has two available modalities.

    Examples
    --------
    >>> import torch
    >>> reps = torch.tensor([[[0.0, 0.0], [1.0, 3.0]]])          # one item, two modalities
    >>> float(cross_modality_alignment(reps))                    # (1 + 9) / 2
    5.0
    >>> float(cross_modality_alignment(reps, torch.tensor([[True, False]])))
    0.0
    """
    if representations.ndim != 3 or representations.shape[1] < 2:
        raise ValueError(
            "representations must have shape (n, M >= 2, d); got "
            f"{tuple(representations.shape)}.")
    n, m, d = representations.shape
    first, second = torch.triu_indices(m, m, offset=1, device=representations.device)
    diff = representations[:, first] - representations[:, second]        # (n, P, d)
    per_pair = diff.square().sum(dim=-1)                                 # (n, P)
    if availability is None:
        return per_pair.sum() / (d * per_pair.numel()) if per_pair.numel() else per_pair.sum()
    if availability.shape != (n, m):
        raise ValueError(
            f"availability must have shape (n={n}, M={m}); got {tuple(availability.shape)}.")
    availability = availability.to(device=representations.device, dtype=torch.bool)
    both = (availability[:, first] & availability[:, second]).to(per_pair.dtype)
    return (per_pair * both).sum() / (d * both.sum().clamp_min(1.0))
