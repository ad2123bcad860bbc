"""UltraGCN's item-item graph: the ``K`` strongest co-consumption neighbours of every item."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["item_item_neighbors"]

#: Largest number of dense float64 cells held per chunk of item rows (about 128 MB).
_CHUNK_CELLS = 1 << 24


def item_item_neighbors(interaction_csr, n_neighbors, *, chunk_size=None):
    """Top-``K`` item neighbours and UltraGCN's constraint weights.

    With the binarised interaction matrix ``R`` (users x items), the co-occurrence ``G = R^T R``
    and ``g_i = sum_j G_ij``, the weight of item ``j`` for item ``i`` is the UltraGCN paper's::

        omega_ij = G_ij / (g_i - G_ii) * sqrt(g_i / g_j)       (j != i)

    Each item keeps the ``K`` largest ``omega_ij``. (UltraGCN's official code ranks with
    ``sqrt(g_i+1)/g_i * 1/sqrt(g_j+1) * G_ij`` instead; the paper's formula is used here.)
    ``G`` is never held whole: rows are computed in chunks as ``R[:, chunk]^T R``, made dense and
    cut with :func:`numpy.argpartition`.

    Parameters
    ----------
    interaction_csr : sparse matrix of shape (n_users, n_items)
        Training interactions; any non-zero counts as one.
    n_neighbors : int
        ``K``, the number of neighbours kept per item.
    chunk_size : int, default=None
        Item rows per dense chunk; None picks about 16M cells per chunk.

    Returns
    -------
    neighbors : LongTensor of shape (n_items, K)
        Neighbour indices, strongest first (ties by index). Slots beyond an item's co-consumed
        items are padding: they hold the item's own index with weight 0, so they add nothing to
        :func:`invrec.nn.item_item_loss`. An item is never its own neighbour with a positive weight.
    weights : FloatTensor of shape (n_items, K)
        ``omega_ij`` of each neighbour (0 at padding). On the CPU; the caller moves them.
    """
    n_neighbors = int(n_neighbors)
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1; got {n_neighbors}.")
    R = sp.csr_array(interaction_csr, dtype=np.float64)
    R.data[:] = 1.0
    R.eliminate_zeros()
    n_items = R.shape[1]
    user_degree = np.asarray(R.sum(axis=1)).ravel()
    g = R.T @ user_degree                                  # g_i = sum_j G_ij
    self_count = np.asarray(R.sum(axis=0)).ravel()         # G_ii of a binary matrix
    off_diag = g - self_count
    inv_sqrt_g = np.divide(1.0, np.sqrt(g), out=np.zeros_like(g), where=g > 0)
    row_scale = np.divide(np.sqrt(g), off_diag, out=np.zeros_like(g), where=off_diag > 0)

    k_sel = min(n_neighbors, n_items)
    neighbors = np.empty((n_items, n_neighbors), dtype=np.int64)
    weights = np.zeros((n_items, n_neighbors), dtype=np.float64)
    neighbors[:] = np.arange(n_items)[:, None]
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_CELLS // max(n_items, 1))
    Rc = R.tocsc()
    for start in range(0, n_items, chunk_size):
        stop = min(start + chunk_size, n_items)
        rows = np.arange(start, stop)
        block = (Rc[:, start:stop].T @ R).toarray()        # G[start:stop, :]
        block[rows - start, rows] = 0.0
        block *= row_scale[start:stop, None]
        block *= inv_sqrt_g[None, :]
        if k_sel < n_items:
            idx = np.argpartition(-block, k_sel - 1, axis=1)[:, :k_sel]
        else:
            idx = np.broadcast_to(np.arange(n_items), block.shape)
        vals = np.take_along_axis(block, idx, axis=1)
        order = np.lexsort((idx, -vals), axis=1)
        idx = np.take_along_axis(idx, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
        keep = vals > 0
        neighbors[start:stop, :k_sel] = np.where(keep, idx, rows[:, None])
        weights[start:stop, :k_sel] = np.where(keep, vals, 0.0)
    return torch.from_numpy(neighbors), torch.from_numpy(weights).to(torch.float32)
