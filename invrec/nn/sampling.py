"""Random draws of a training epoch: uniform negative items and shuffled minibatches.

Both take an explicit :class:`torch.Generator` (nothing touches global seeds) and draw on the
generator's device, then move the result to ``device``: the same generator state gives the same
indices wherever the model lives.
"""

from __future__ import annotations

import torch

__all__ = ["sample_negatives", "iterate_minibatches"]


def _draw_device(generator, device):
    if generator is not None:
        return generator.device
    return torch.device("cpu") if device is None else torch.device(device)


def sample_negatives(n_items, n_positives, n_negatives, *, shared=True, generator=None,
                     device=None):
    """Negative items drawn uniformly from the whole catalog, with replacement.

    As in UltraGCN and InvRL, a user's own positives are *not* filtered out: with thousands of
    items a draw hits a positive rarely, and filtering would need a per-user lookup in the hot path.

    Parameters
    ----------
    n_items : int
        Items are drawn from ``0..n_items-1``.
    n_positives : int
        Batch size ``B`` (only used when ``shared=False``).
    n_negatives : int
        ``N``, negatives per positive.
    shared : bool, default=True
        True draws one set of ``N`` items for the whole batch (its scores are one
        ``(B, D) @ (D, N)`` matrix product: the fast scheme); False draws ``N`` items per positive.
    generator : torch.Generator, default=None
        Source of randomness (None uses torch's default generator).
    device : torch.device or str, default=None
        Device of the result; None means the generator's device (CPU without a generator).

    Returns
    -------
    LongTensor of shape (N,) when shared, else (B, N)

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> sample_negatives(10, 4, 3, generator=g).shape
    torch.Size([3])
    >>> sample_negatives(10, 4, 3, shared=False, generator=g).shape
    torch.Size([4, 3])
    """
    if int(n_items) < 1:
        raise ValueError(f"n_items must be >= 1; got {n_items}.")
    size = (int(n_negatives),) if shared else (int(n_positives), int(n_negatives))
    draw_device = _draw_device(generator, device)
    out = torch.randint(0, int(n_items), size, generator=generator, device=draw_device)
    return out if device is None else out.to(device)


def iterate_minibatches(n, batch_size, *, shuffle=True, generator=None, device=None):
    """Index batches covering ``0..n-1`` once (one epoch).

    Parameters
    ----------
    n : int
        Number of rows (training interactions).
    batch_size : int
        Rows per batch; the last batch is shorter when ``batch_size`` does not divide ``n``.
    shuffle : bool, default=True
        Walk a fresh random permutation (drawn from ``generator``); False walks ``0..n-1`` in order.
    generator : torch.Generator, default=None
        Source of the permutation.
    device : torch.device or str, default=None
        Device of the yielded tensors; None means the generator's device (CPU without one).

    Yields
    ------
    LongTensor of shape (batch_size,) or shorter (the last one)

    Examples
    --------
    >>> [b.tolist() for b in iterate_minibatches(5, 2, shuffle=False)]
    [[0, 1], [2, 3], [4]]
    """
    n, batch_size = int(n), int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    draw_device = _draw_device(generator, device)
    if shuffle:
        order = torch.randperm(n, generator=generator, device=draw_device)
    else:
        order = torch.arange(n, device=draw_device)
    if device is not None:
        order = order.to(device)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]
