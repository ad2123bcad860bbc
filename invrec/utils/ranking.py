"""Top-k selection on score matrices: the one ranking kernel every invrec model uses.

Scores of a chunk of users against the whole catalog form a dense ``(n_users, n_items)`` tensor on
the model's device; excluded items (a user's training items) and non-candidates are set to
``-inf`` and :func:`torch.topk` picks the best ``k``. Rows with fewer than ``k`` eligible items are
padded with ``-1``. Nothing loops over users in Python: the caller walks over user *chunks*.
:func:`similar_rows` ranks with the same kernel by cosine similarity between the rows of one
vector table (items like an item, users like a user).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

__all__ = ["top_k", "chunked_top_k", "rankings_to_frame", "similar_rows"]

#: Scores :func:`similar_rows` computes at once when no ``chunk_size`` is given (about 64 MB of
#: float32): ``2**24 // n_rows`` query rows per chunk, between 1 and 4096.
SIMILAR_CHUNK_SCORES = 1 << 24


def top_k(scores, k, *, exclude=None, candidates=None):
    """Best ``k`` items per row of a score matrix.

    Parameters
    ----------
    scores : Tensor or ndarray of shape (n_users, n_items)
        Higher is better. Not modified.
    k : int
        Length of each ranked list (capped at ``n_items``).
    exclude : sparse matrix of shape (n_users, n_items), default=None
        Non-zero entries are never ranked (for example each user's training items).
    candidates : array-like of bool of shape (n_items,), default=None
        When given, only items marked True are ranked.

    Returns
    -------
    items : ndarray of int64 of shape (n_users, min(k, n_items))
        Column indices in rank order, ``-1`` where a row ran out of eligible items.
    values : ndarray of float of shape (n_users, min(k, n_items))
        Their scores, ``-inf`` at the padding.
    """
    if isinstance(scores, np.ndarray) and not scores.flags.writeable:
        scores = np.array(scores)
    scores = torch.as_tensor(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items); got shape {tuple(scores.shape)}.")
    n_users, n_items = scores.shape
    k = int(min(k, n_items))
    if k <= 0 or n_users == 0:
        return np.empty((n_users, 0), np.int64), np.empty((n_users, 0), np.float64)
    masked = scores.to(torch.float32 if not scores.is_floating_point() else scores.dtype).clone()
    if candidates is not None:
        cand = torch.as_tensor(np.asarray(candidates, dtype=bool), device=masked.device)
        masked[:, ~cand] = -torch.inf
    if exclude is not None:
        exclude = sp.coo_array(exclude)
        if exclude.shape != (n_users, n_items):
            raise ValueError(f"exclude has shape {exclude.shape}; expected {(n_users, n_items)}.")
        if exclude.nnz:
            rows = torch.as_tensor(exclude.row.astype(np.int64), device=masked.device)
            cols = torch.as_tensor(exclude.col.astype(np.int64), device=masked.device)
            masked[rows, cols] = -torch.inf
    values, items = torch.topk(masked, k, dim=1)
    items = torch.where(torch.isneginf(values), torch.full_like(items, -1), items)
    return items.cpu().numpy().astype(np.int64), values.detach().cpu().double().numpy()


def chunked_top_k(score_fn, users, k, *, exclude=None, candidates=None, chunk_size=1024):
    """:func:`top_k` over many users, scoring ``chunk_size`` users at a time.

    Parameters
    ----------
    score_fn : callable
        ``score_fn(user_indices)`` returns the ``(len(user_indices), n_items)`` score tensor of those
        users (on any device).
    users : array-like of int
        Encoded user indices to rank for.
    k : int
        Length of each ranked list.
    exclude : sparse matrix of shape (n_all_users, n_items), default=None
        Items never ranked for each user, indexed by encoded user (rows are picked per chunk).
    candidates : array-like of bool of shape (n_items,), default=None
        Items eligible for ranking.
    chunk_size : int, default=1024
        Users scored at once; bounds memory at ``chunk_size * n_items`` scores.

    Returns
    -------
    items, values : ndarray
        As in :func:`top_k`, one row per entry of ``users``.
    """
    users = np.asarray(users, dtype=np.int64)
    exclude = None if exclude is None else sp.csr_array(exclude)
    out_items, out_values = [], []
    for start in range(0, len(users), chunk_size):
        chunk = users[start:start + chunk_size]
        with torch.no_grad():
            scores = score_fn(chunk)
        ex = None if exclude is None else exclude[chunk]
        items, values = top_k(scores, k, exclude=ex, candidates=candidates)
        out_items.append(items)
        out_values.append(values)
    if not out_items:
        return np.empty((0, 0), np.int64), np.empty((0, 0), np.float64)
    return np.concatenate(out_items), np.concatenate(out_values)


def rankings_to_frame(users, items, scores, *, item_ids=None, columns=("user", "item")):
    """Long recommendation table from the output of :func:`top_k`.

    Parameters
    ----------
    users : array-like of shape (n_users,)
        Raw id of each row of ``items``.
    items : ndarray of int of shape (n_users, k)
        Column indices in rank order, ``-1`` at padding (dropped).
    scores : ndarray of shape (n_users, k)
        Their scores.
    item_ids : array-like, default=None
        Raw id of each column index; None keeps the indices.
    columns : (str, str), default=("user", "item")
        Names of the column of ``users`` and of the column of the ranked ids
        (``("item", "similar_item")`` for the neighbours of items).

    Returns
    -------
    DataFrame
        Columns ``user``, ``item`` (or ``columns``), ``score``, ``rank`` (1-based), users in the
        given order.
    """
    query, ranked = columns
    users = np.asarray(users)
    keep = items >= 0
    rows, ranks = np.nonzero(keep)
    picked = items[keep]
    return pd.DataFrame({
        query: users[rows],
        ranked: picked if item_ids is None else np.asarray(item_ids)[picked],
        "score": scores[keep],
        "rank": ranks + 1,
    })


def similar_rows(vectors, rows, k, *, chunk_size=None):
    """The ``k`` rows of ``vectors`` most similar to each of ``rows`` by cosine, itself excluded.

    Every row is scaled to unit length once (a zero row stays zero: its similarity to anything
    is 0), then each chunk of query rows is scored against the whole table with one matrix
    product and ranked by :func:`chunked_top_k`, the query's own row excluded (``-inf``).

    Parameters
    ----------
    vectors : Tensor or ndarray of shape (n_rows, d)
        One vector per row (for example a model's item vectors); not modified.
    rows : array-like of int of shape (n_queries,)
        Row indices to find neighbours for (repeats allowed).
    k : int
        Neighbours per query (at most ``n_rows - 1``).
    chunk_size : int, default=None
        Queries scored at once, bounding memory at ``chunk_size * n_rows`` scores; None takes
        ``SIMILAR_CHUNK_SCORES // n_rows`` (between 1 and 4096). The neighbours do not depend on it
        (the similarities only up to float rounding, as any matrix product of another shape).

    Returns
    -------
    neighbours : ndarray of int64 of shape (n_queries, min(k, n_rows))
        Row indices in decreasing similarity, ``-1`` where a query ran out of other rows.
    similarities : ndarray of float of shape (n_queries, min(k, n_rows))
        Their cosine similarities, ``-inf`` at the padding.

    Examples
    --------
    >>> import numpy as np
    >>> from invrec.utils.ranking import similar_rows
    >>> vectors = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0]], dtype=np.float32)
    >>> neighbours, _ = similar_rows(vectors, [0, 2], k=2)
    >>> neighbours
    array([[1, 2],
           [1, 0]])
    """
    vectors = torch.as_tensor(np.array(vectors) if isinstance(vectors, np.ndarray) else vectors)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be 2-D (n_rows, d); got shape {tuple(vectors.shape)}.")
    if not vectors.is_floating_point():
        vectors = vectors.float()
    n_rows = vectors.shape[0]
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"rows must be indices of vectors' {n_rows} rows; got values in "
                         f"[{rows.min()}, {rows.max()}].")
    if chunk_size is None:
        chunk_size = max(1, min(4096, SIMILAR_CHUNK_SCORES // max(n_rows, 1)))
    with torch.no_grad():
        unit = torch.nn.functional.normalize(vectors.detach(), dim=1)

    def cosine(chunk):
        return unit[torch.as_tensor(chunk, device=unit.device)] @ unit.T

    itself = sp.identity(n_rows, dtype=np.float32, format="csr")
    neighbours, similarities = chunked_top_k(cosine, rows, k, exclude=itself, chunk_size=chunk_size)
    if len(rows) == 0:                          # the (0, 0) of no chunk: keep the promised width
        width = int(min(k, n_rows))
        return np.empty((0, width), np.int64), np.empty((0, width), np.float64)
    return neighbours, similarities
