"""Random draws of a training epoch: uniform negative items and shuffled minibatches.

Both take an explicit :class:`torch.Generator` (nothing touches global seeds) and draw on the
generator's device, then move the result to ``device``: the same generator state gives the same
indices wherever the model lives.
"""

from __future__ import annotations

import torch

from ..training import iterate_minibatches  # noqa: F401 (the loop owns the batch order)

__all__ = ["sample_negatives", "n_negative_groups", "expand_groups", "iterate_minibatches"]


def _draw_device(generator, device):
    if generator is not None:
        return generator.device
    return torch.device("cpu") if device is None else torch.device(device)


def n_negative_groups(n_positives, group_size):
    """Number of groups of at most ``group_size`` consecutive positives in a batch of ``n_positives``.

    ``group_size=None`` means one group (every positive of the batch shares the draw).

    Examples
    --------
    >>> n_negative_groups(10, 4), n_negative_groups(10, None), n_negative_groups(10, 1)
    (3, 1, 10)
    """
    n_positives = int(n_positives)
    if group_size is None:
        return 1
    group_size = int(group_size)
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1 or None; got {group_size}.")
    return max(1, -(-n_positives // group_size))


def expand_groups(values, n_rows):
    """Broadcast per-group rows to the positives of a batch: ``(G, ...)`` -> ``(n_rows, ...)``.

    Positive ``b`` belongs to group ``b // ceil(n_rows / G)``, the convention of every scorer and
    loss that takes grouped negatives (see :func:`sample_negatives`). ``G`` may be 1 (one shared
    row) or ``n_rows`` (one row per positive, returned as is).

    Examples
    --------
    >>> import torch
    >>> expand_groups(torch.tensor([[1], [2]]), 3).ravel().tolist()
    [1, 1, 2]
    """
    n_groups = values.shape[0]
    if n_groups == n_rows:
        return values
    if n_groups < 1 or n_groups > n_rows:
        raise ValueError(f"cannot spread {n_groups} groups over {n_rows} positives.")
    per_group = -(-n_rows // n_groups)
    return values.repeat_interleave(per_group, dim=0)[:n_rows]


def sample_negatives(n_items, n_positives, n_negatives, *, shared=True, group_size=None,
                     generator=None, device=None):
    """Negative items drawn uniformly from the whole catalog, with replacement.

    As in UltraGCN and InvRL, a user's own positives are *not* filtered out: with thousands of
    items a draw hits a positive rarely, and filtering would need a per-user lookup in the hot path.

    Three schemes, all giving every positive ``N`` negatives:

    * per positive (``shared=False``): an independent draw for each positive, shape ``(B, N)``;
    * shared by the batch (``shared=True``, ``group_size=None``): one draw of ``N`` items for all
      positives, shape ``(N,)``; its scores are one ``(B, D) @ (D, N)`` product;
    * shared by groups (``shared=True``, ``group_size=g``): the batch is cut into
      ``G = ceil(B / g)`` groups of consecutive positives (the batch order is random already) and
      each group gets its own draw, shape ``(G, N)``. It keeps the matrix-product cost of sharing
      while drawing ``G`` times more distinct negatives per step; ``g=1`` is per-positive.

    Parameters
    ----------
    n_items : int
        Items are drawn from ``0..n_items-1``.
    n_positives : int
        Batch size ``B``.
    n_negatives : int
        ``N``, negatives per positive.
    shared : bool, default=True
        Share draws between positives (see above).
    group_size : int, default=None
        Positives per shared draw; None shares one draw over the whole batch.
    generator : torch.Generator, default=None
        Source of randomness (None uses torch's default generator).
    device : torch.device or str, default=None
        Device of the result; None means the generator's device (CPU without a generator).

    Returns
    -------
    LongTensor of shape (N,), (G, N) or (B, N)

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> sample_negatives(10, 4, 3, generator=g).shape
    torch.Size([3])
    >>> sample_negatives(10, 5, 3, group_size=2, generator=g).shape
    torch.Size([3, 3])
    >>> sample_negatives(10, 4, 3, shared=False, generator=g).shape
    torch.Size([4, 3])
    """
    if int(n_items) < 1:
        raise ValueError(f"n_items must be >= 1; got {n_items}.")
    if not shared:
        size = (int(n_positives), int(n_negatives))
    elif group_size is None:
        size = (int(n_negatives),)
    else:
        size = (n_negative_groups(n_positives, group_size), int(n_negatives))
    draw_device = _draw_device(generator, device)
    out = torch.randint(0, int(n_items), size, generator=generator, device=draw_device)
    return out if device is None else out.to(device)
