"""Top-k ranking metrics, a DataFrame-level evaluator and a scikit-learn scorer.

Three layers, each built on the one below:

1. **Array metrics** (:func:`recall_at_k`, :func:`precision_at_k`, :func:`ndcg_at_k`,
   :func:`ndcg_legacy_at_k`, :func:`hit_rate_at_k`, :func:`mrr_at_k`, :func:`map_at_k`) take a
   ``(n_users, L)`` matrix of ranked item indices (``-1`` pads a short list) and the relevant
   items of each user (sparse matrix, dense 0/1 matrix or a list of index arrays). Users without
   any relevant item are *skipped*: they get NaN per user and are left out of the mean.
2. :func:`evaluate_ranking` takes the long ``(user, item, rank)`` frame that
   ``estimator.recommend`` returns and the held-out interactions with raw ids, and returns a
   table of metrics at several cut-offs, optionally broken down by a group column (for example
   the environment) with a ``"worst"`` row.
3. :func:`make_ranking_scorer` wraps (2) into a ``scorer(estimator, X, y=None)`` callable for
   ``GridSearchCV(scoring=...)``.

The ranking protocol
--------------------
The scorer relies on two members of the estimator, which every invrec recommender provides:

- ``estimator.recommend(users, n=k, exclude_seen=exclude_seen, items=candidate_ids_or_None)``
  returns a DataFrame with columns ``user``, ``item``, ``score`` and ``rank`` (1-based), at most
  ``n`` rows per user, with raw user and item ids. ``exclude_seen=True`` removes each user's
  training items from their list; ``items`` (raw item ids, or None for the whole catalog)
  restricts the items that may be ranked.
- ``estimator.unseen_items_`` is a 1-D array of the raw ids of the catalog items that had no
  training interaction (the new, cold-start items); it is used when ``candidates="unseen"``.

The scorer parses ``X`` with :func:`~invrec.utils.validation.check_interactions` ``(X, y)``; when
``y`` is given, rows with ``y <= 0`` are not relevant and are dropped. The users are the unique
users of the remaining rows, in order of first appearance. The candidates are ``items=None`` for
``"all"``, ``estimator.unseen_items_`` for ``"unseen"``, or the given raw ids. ``recommend`` is
called once for all those users with ``n = k``; the metric is computed by
:func:`evaluate_ranking` on the remaining rows of ``X`` and its ``"all"`` value is returned as a
Python float. Greater is better for every metric. If no row of ``X`` is relevant, a ValueError is
raised.
"""

from __future__ import annotations

import contextlib
import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils import get_tags

from invrec.pipeline import resolve_final_step as _resolve_final_step
from invrec.utils.params import check_bool, check_int
from invrec.utils.validation import ITEM, USER, check_interactions

__all__ = [
    "recall_at_k",
    "precision_at_k",
    "ndcg_at_k",
    "ndcg_legacy_at_k",
    "hit_rate_at_k",
    "mrr_at_k",
    "map_at_k",
    "evaluate_ranking",
    "make_ranking_scorer",
    "RankingScorer",
    "METRIC_NAMES",
    "rmse",
    "mae",
    "make_rating_scorer",
    "RatingScorer",
    "RATING_METRIC_NAMES",
    "get_scorer",
]

RANK = "rank"

# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _check_rankings(rankings):
    """Return ``rankings`` as a 2-D int64 array (a new array; the input is left untouched)."""
    arr = np.asarray(rankings)
    if arr.ndim != 2:
        raise ValueError(
            f"rankings must be 2-D (n_users, list_length) with one ranked list per row; got "
            f"shape {arr.shape}. Reshape a single list with rankings[None, :]."
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"rankings must hold integer item indices (-1 for padding); got dtype {arr.dtype}. "
            f"Cast them with rankings.astype(int) or encode raw ids first."
        )
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < -1:
        raise ValueError(
            f"rankings may hold item indices >= 0 and -1 for padding only; found {arr.min()}."
        )
    return arr


def _relevant_to_csr(relevant, n_users):
    """Return the relevant items as a fresh CSR array with sorted, deduplicated, 0/1 entries.

    Accepts a scipy sparse matrix, a 2-D numpy array (boolean or 0/1) or a sequence of 1-D
    arrays of item indices, one per user.
    """
    if sp.issparse(relevant):
        csr = sp.csr_array(relevant, copy=True)
    elif isinstance(relevant, np.ndarray) and relevant.ndim == 2:
        csr = sp.csr_array(_check_dense_relevance(relevant))
    elif isinstance(relevant, (str, bytes)) or not hasattr(relevant, "__len__"):
        raise ValueError(
            "relevant must be a scipy sparse matrix, a 2-D boolean/0-1 numpy array or a "
            f"sequence of 1-D arrays of item indices (one per user); got {type(relevant).__name__}."
        )
    elif isinstance(relevant, np.ndarray) and (relevant.ndim != 1 or relevant.dtype != object):
        raise ValueError(
            "relevant given as a numpy array must be 2-D (n_users, n_items) of booleans or 0/1, "
            f"or a 1-D object array of per-user index arrays; got shape {relevant.shape} and dtype "
            f"{relevant.dtype}."
        )
    else:
        csr = _index_lists_to_csr(relevant)
    if csr.shape[0] != n_users:
        raise ValueError(
            f"relevant has {csr.shape[0]} rows but rankings has {n_users}; pass one row (or one "
            f"array of relevant items) per ranked user, in the same order."
        )
    csr.sum_duplicates()
    csr.eliminate_zeros()
    csr.sort_indices()
    csr.data = np.ones_like(csr.data, dtype=np.int8)
    return csr


def _check_dense_relevance(dense):
    """Check a dense relevance matrix is boolean or 0/1 and return it as bool."""
    if dense.dtype != bool and not np.isin(dense, (0, 1)).all():
        raise ValueError(
            "a dense 2-D relevant array must be boolean or hold only 0 and 1 (relevant or not); "
            "to pass item indices per user, pass a list of 1-D arrays instead."
        )
    return dense.astype(bool)


def _index_lists_to_csr(lists):
    """Stack a sequence of per-user item-index arrays into a CSR array."""
    n_rows = len(lists)
    if n_rows == 0:
        return sp.csr_array((0, 0), dtype=np.int8)
    try:
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=n_rows)
    except TypeError:
        raise ValueError(
            "relevant given as a sequence must hold one 1-D array of item indices per user, for "
            "example [np.array([0, 3]), np.array([], dtype=int)]."
        ) from None
    cols = np.concatenate([np.asarray(a).ravel() for a in lists]) if lengths.sum() else np.empty(0)
    if cols.size and not (np.issubdtype(cols.dtype, np.number) and np.all(cols == np.round(cols))):
        raise ValueError(
            "relevant item indices must be integers; encode raw ids to 0..n_items-1 first."
        )
    cols = cols.astype(np.int64)
    if cols.size and cols.min() < 0:
        raise ValueError(f"relevant item indices must be >= 0; found {cols.min()}.")
    rows = np.repeat(np.arange(n_rows), lengths)
    n_cols = int(cols.max()) + 1 if cols.size else 0
    data = np.ones(cols.size, dtype=np.int8)
    return sp.csr_array((data, (rows, cols)), shape=(n_rows, n_cols))


# --------------------------------------------------------------------------------------------
# Shared core: the hit matrix
# --------------------------------------------------------------------------------------------


def _first_occurrence(top):
    """Boolean mask, True where an entry is the first occurrence of its value in its row."""
    order = np.argsort(top, axis=1, kind="stable")
    ordered = np.take_along_axis(top, order, axis=1)
    repeat = np.zeros(top.shape, dtype=bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    first = np.empty(top.shape, dtype=bool)
    np.put_along_axis(first, order, ~repeat, axis=1)
    return first


def _hit_matrix(rankings, rel, k):
    """Hits of the first ``k`` ranked positions against the relevant CSR.

    Parameters
    ----------
    rankings : ndarray of int64 of shape (n_users, L)
        Checked rankings.
    rel : csr_array of shape (n_users, n_items)
        Sorted, deduplicated relevance.
    k : int
        Cut-off.

    Returns
    -------
    hits : ndarray of bool of shape (n_users, min(k, L))
        True where the ranked item is relevant (an item repeated in a list counts once, at its
        first position; padding never hits).
    n_relevant : ndarray of int64 of shape (n_users,)
        Number of relevant items per user.
    """
    top = rankings[:, :k]
    n_users, n_cols = rel.shape
    n_relevant = np.diff(rel.indptr).astype(np.int64)
    rel_keys = np.repeat(np.arange(n_users, dtype=np.int64), n_relevant) * n_cols + rel.indices
    valid = (top >= 0) & (top < n_cols)
    keys = np.arange(n_users, dtype=np.int64)[:, None] * n_cols + np.where(valid, top, 0)
    pos = np.searchsorted(rel_keys, keys).clip(max=max(rel_keys.size - 1, 0))
    hits = valid & (rel_keys[pos] == keys) if rel_keys.size else np.zeros(top.shape, bool)
    return hits & _first_occurrence(top), n_relevant


def _discount(length):
    """``1 / log2(r + 1)`` for ranks ``r = 1..length``."""
    return 1.0 / np.log2(np.arange(2, length + 2, dtype=np.float64))


def _cumulative_discount(length):
    """Ideal DCG of ``0..length`` consecutive hits: entry ``m`` is the DCG of ``m`` hits."""
    return np.concatenate([[0.0], np.cumsum(_discount(length))])


def _divide(num, den):
    """``num / den`` with 0 where ``den`` is 0 (skipped users are set to NaN later)."""
    num = np.asarray(num, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=np.asarray(den) > 0)


# Per-user formulas: f(hits, n_relevant, k) -> float array, meaningful where n_relevant > 0.


def _recall(hits, n_relevant, k):
    return _divide(hits.sum(axis=1), n_relevant)


def _precision(hits, n_relevant, k):
    return hits.sum(axis=1) / float(k)


def _dcg(hits):
    return hits @ _discount(hits.shape[1])


def _ndcg(hits, n_relevant, k):
    ideal_len = np.minimum(k, n_relevant)
    ideal = _cumulative_discount(int(ideal_len.max(initial=0)))[ideal_len]
    return _divide(_dcg(hits), ideal)


def _ndcg_legacy(hits, n_relevant, k):
    ideal = _cumulative_discount(hits.shape[1])[hits.sum(axis=1)]
    return _divide(_dcg(hits), ideal)


def _hit_rate(hits, n_relevant, k):
    return hits.any(axis=1).astype(np.float64)


def _mrr(hits, n_relevant, k):
    if hits.shape[1] == 0:
        return np.zeros(hits.shape[0])
    return np.where(hits.any(axis=1), 1.0 / (hits.argmax(axis=1) + 1.0), 0.0)


def _map(hits, n_relevant, k):
    precision_at_r = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    return _divide((precision_at_r * hits).sum(axis=1), np.minimum(k, n_relevant))


_FORMULAS = {
    "recall": _recall,
    "precision": _precision,
    "ndcg": _ndcg,
    "ndcg_legacy": _ndcg_legacy,
    "hit_rate": _hit_rate,
    "mrr": _mrr,
    "map": _map,
}

#: Names accepted by :func:`evaluate_ranking` and :func:`make_ranking_scorer`.
METRIC_NAMES = tuple(_FORMULAS)


def _reduce(per_user, n_relevant, average):
    """Set skipped users to NaN; return the mean over evaluated users or the per-user array."""
    per_user = np.asarray(per_user, dtype=np.float64).copy()
    evaluated = n_relevant > 0
    per_user[~evaluated] = np.nan
    if not average:
        return per_user
    return float(per_user[evaluated].mean()) if evaluated.any() else float("nan")


def _array_metric(name, rankings, relevant, k, average):
    """Validate the inputs, build the hit matrix and apply one formula."""
    k = check_int(k, "k")
    average = check_bool(average, "average")      # "no" would otherwise average
    rankings = _check_rankings(rankings)
    rel = _relevant_to_csr(relevant, rankings.shape[0])
    hits, n_relevant = _hit_matrix(rankings, rel, k)
    return _reduce(_FORMULAS[name](hits, n_relevant, k), n_relevant, average)


_ARRAY_DOC = """{summary}

    {definition}

    Parameters
    ----------
    rankings : array-like of int of shape (n_users, L)
        Row ``u`` holds the item indices ranked for user ``u``, best first; ``-1`` pads a shorter
        list and never hits. Only the first ``k`` positions count (all ``L`` when ``L < k``). An
        item repeated within a row counts once, at its first position.
    relevant : sparse matrix, ndarray or sequence of array-like
        Relevant items per user: a scipy sparse matrix of shape (n_users, n_items) whose non-zero
        entries are relevant, a 2-D numpy array of booleans or 0/1, or a sequence (list, tuple,
        1-D object array) of ``n_users`` 1-D arrays of item indices. A list of lists is always
        read as index lists, never as a dense matrix.
    k : int
        Cut-off, a positive int.
    average : bool, default=True
        Return the mean over evaluated users (True) or the per-user values (False).

    Returns
    -------
    score : float or ndarray of shape (n_users,)
        With ``average=True``, the mean over users with at least one relevant item (NaN, without
        a warning, when there is none). With ``average=False``, one float per user, NaN for the
        skipped users (those with no relevant item).

    Examples
    --------
    >>> import numpy as np
    >>> from invrec.metrics import {name}
    >>> rankings = np.array([[2, 0, 5], [4, 3, -1]])
    >>> relevant = [np.array([0, 1]), np.array([4])]
    >>> {name}(rankings, relevant, k=2)
    {example}
    >>> {name}(rankings, relevant, k=2, average=False)
    {example_per_user}
    """


def _document(name, summary, definition, example, example_per_user):
    """Attach the shared array-metric docstring to the function ``name``."""
    def decorate(func):
        func.__doc__ = _ARRAY_DOC.format(
            summary=summary, definition=definition, name=name, example=example,
            example_per_user=example_per_user,
        )
        return func
    return decorate


@_document(
    "recall_at_k", "Recall at ``k``: the share of a user's relevant items found in the top ``k``.",
    "``hits@k / |relevant|``.", "0.75", "array([0.5, 1. ])",
)
def recall_at_k(rankings, relevant, k, *, average=True):
    return _array_metric("recall", rankings, relevant, k, average)


@_document(
    "precision_at_k", "Precision at ``k``: the share of the top ``k`` positions that are relevant.",
    "``hits@k / k``, dividing by ``k`` even when the list is shorter than ``k``.",
    "0.5", "array([0.5, 0.5])",
)
def precision_at_k(rankings, relevant, k, *, average=True):
    return _array_metric("precision", rankings, relevant, k, average)


@_document(
    "ndcg_at_k", "Normalised discounted cumulative gain at ``k`` (binary relevance).",
    "DCG sums ``1 / log2(r + 1)`` over the hit ranks ``r <= k``; it is divided by the ideal DCG, "
    "that of ``min(k, |relevant|)`` hits at the top. This matches "
    "``sklearn.metrics.ndcg_score(..., k=k)``.",
    "0.6934264036172708", "array([0.38685281, 1.        ])",
)
def ndcg_at_k(rankings, relevant, k, *, average=True):
    return _array_metric("ndcg", rankings, relevant, k, average)


@_document(
    "ndcg_legacy_at_k", "NDCG at ``k`` in the MMGCN / InvRL convention.",
    "Same DCG as :func:`ndcg_at_k`, but the ideal DCG is taken over ``min(hits@k, k)`` positions "
    "instead of ``min(k, |relevant|)`` (0 when nothing is hit). It is never lower than the "
    "standard NDCG; use it only to compare with numbers reported in those papers.",
    "0.8154648767857288", "array([0.63092975, 1.        ])",
)
def ndcg_legacy_at_k(rankings, relevant, k, *, average=True):
    return _array_metric("ndcg_legacy", rankings, relevant, k, average)


@_document(
    "hit_rate_at_k", "Hit rate at ``k``: whether any relevant item is in the top ``k``.",
    "1 if ``hits@k > 0`` else 0.", "1.0", "array([1., 1.])",
)
def hit_rate_at_k(rankings, relevant, k, *, average=True):
    return _array_metric("hit_rate", rankings, relevant, k, average)


@_document(
    "mrr_at_k", "Mean reciprocal rank at ``k``.",
    "``1 / rank`` of the first relevant item within the top ``k``, 0 when there is none.",
    "0.75", "array([0.5, 1. ])",
)
def mrr_at_k(rankings, relevant, k, *, average=True):
    return _array_metric("mrr", rankings, relevant, k, average)


@_document(
    "map_at_k", "Mean average precision at ``k``.",
    "Sum of ``precision@r`` over the hit ranks ``r <= k``, divided by ``min(k, |relevant|)``.",
    "0.625", "array([0.25, 1.  ])",
)
def map_at_k(rankings, relevant, k, *, average=True):
    return _array_metric("map", rankings, relevant, k, average)


# --------------------------------------------------------------------------------------------
# DataFrame level
# --------------------------------------------------------------------------------------------


def _check_metric_names(metrics):
    """Return the metric names as a tuple, checking each is known."""
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not names:
        raise ValueError(f"metrics is empty; pass at least one of {list(METRIC_NAMES)}.")
    unknown = [m for m in names if m not in _FORMULAS]
    if unknown:
        raise ValueError(f"unknown metric name(s) {unknown}; valid names are {list(METRIC_NAMES)}.")
    return tuple(dict.fromkeys(names))


def _check_ks(k):
    """Return the cut-offs as a tuple of positive ints, duplicates removed."""
    if isinstance(k, (str, bytes, numbers.Number)) or not hasattr(k, "__iter__"):
        return (check_int(k, "k"),)
    ks = tuple(k)
    if not ks:
        raise ValueError("k is empty; pass a positive int or a sequence of positive ints.")
    return tuple(dict.fromkeys(check_int(v, "k") for v in ks))


def _check_recommendations(recommendations):
    """Check the long (user, item, rank) frame and return (users, items, 0-based positions)."""
    if not isinstance(recommendations, pd.DataFrame):
        raise TypeError(
            "recommendations must be a DataFrame with columns 'user', 'item' and 'rank', as "
            f"returned by estimator.recommend(...); got {type(recommendations).__name__}."
        )
    missing = [c for c in (USER, ITEM, RANK) if c not in recommendations.columns]
    if missing:
        raise ValueError(
            f"recommendations lacks the column(s) {missing}; it needs 'user', 'item' and a 1-based "
            f"'rank' (the long format of estimator.recommend)."
        )
    frame = recommendations[[USER, ITEM, RANK]]
    if frame.isna().any().any():
        raise ValueError("recommendations has missing user, item or rank values; drop those rows.")
    rank = frame[RANK]
    numeric = pd.api.types.is_numeric_dtype(rank) and not pd.api.types.is_bool_dtype(rank)
    rank = rank.to_numpy(dtype=np.float64) if numeric else rank.to_numpy()
    if len(rank) and not (numeric and np.all(rank == np.round(rank)) and rank.min() >= 1):
        raise ValueError(
            "recommendations['rank'] must hold positive integers (1 = best); got values such as "
            f"{rank[:5].tolist()}."
        )
    if frame.duplicated([USER, RANK]).any():
        raise ValueError(
            "recommendations has duplicated (user, rank) pairs; each user's ranks must be distinct."
        )
    return frame[USER].to_numpy(), frame[ITEM].to_numpy(), rank.astype(np.int64) - 1


def _encode(*columns):
    """Factorize the concatenation of ``columns`` jointly; return the codes of each column."""
    joined = pd.concat([pd.Series(np.asarray(c)) for c in columns], ignore_index=True)
    codes, uniques = pd.factorize(joined)
    splits = np.cumsum([len(c) for c in columns])[:-1]
    return np.split(codes.astype(np.int64), splits), len(uniques)


def _rankings_matrix(users, items, positions, n_users, width):
    """Scatter the long recommendations into an (n_users, width) matrix padded with -1."""
    rankings = np.full((n_users, width), -1, dtype=np.int64)
    keep = positions < width
    rankings[users[keep], positions[keep]] = items[keep]
    return rankings


def _score_row(rankings, rel_users, rel_items, shape, ks, names):
    """One row of :func:`evaluate_ranking`: every (metric, k) plus the user counts."""
    data = np.ones(len(rel_users), dtype=np.int8)
    rel = sp.csr_array((data, (rel_users, rel_items)), shape=shape)
    rel.sum_duplicates()
    hits, n_relevant = _hit_matrix(rankings, rel, max(ks))
    row = {}
    for name in names:
        for k in ks:
            per_user = _FORMULAS[name](hits[:, :k], n_relevant, k)
            row[f"{name}@{k}"] = _reduce(per_user, n_relevant, average=True)
    n_evaluated = int((n_relevant > 0).sum())
    row["n_users"] = n_evaluated
    row["n_skipped"] = shape[0] - n_evaluated
    return row


def _group_codes(values):
    """Factorize the group column (sorted when possible); NaN groups get code -1."""
    try:
        return pd.factorize(values, sort=True)
    except TypeError:
        return pd.factorize(values, sort=False)


def evaluate_ranking(
    recommendations, relevant, *, k=(10, 20), metrics=("recall", "ndcg"), group=None
):
    """Score long-format recommendations against held-out interactions.

    Parameters
    ----------
    recommendations : DataFrame
        Columns ``user``, ``item`` and ``rank`` (1-based, distinct per user; ``score`` and other
        columns are ignored), the long format that ``estimator.recommend(...)`` returns. Ids are
        raw (ints or strings). Gaps in the ranks are padding.
    relevant : DataFrame or array-like of shape (n_interactions, 2)
        Held-out interactions, anything :func:`~invrec.utils.validation.check_interactions`
        accepts; every row is relevant.
    k : int or sequence of int, default=(10, 20)
        Cut-off(s).
    metrics : str or sequence of str, default=("recall", "ndcg")
        Names among ``"recall"``, ``"precision"``, ``"ndcg"``, ``"ndcg_legacy"``,
        ``"hit_rate"``, ``"mrr"`` and ``"map"`` (see the ``*_at_k`` functions).
    group : str, default=None
        A column of ``relevant`` (for example ``"environment"``) to break the scores down by.

    Returns
    -------
    scores : DataFrame
        Columns ``"{metric}@{k}"`` (metric-major order) then ``n_users`` (users evaluated) and
        ``n_skipped`` (users with no relevant row), both of the nullable ``Int64`` dtype. The row
        ``"all"`` scores every relevant row. The users are those of ``recommendations`` and of
        ``relevant`` together: a user with relevant rows but no recommendation is evaluated with
        an empty list (scoring 0); a user without relevant rows is skipped and counted in
        ``n_skipped``. With ``group``, one more row per group value (sorted when sortable;
        rows whose group is missing only count in ``"all"``) scores the relevant rows of that
        group alone, users with no row in it being skipped; then a row ``"worst"`` holds the
        minimum of each metric column over the group rows, with ``<NA>`` counts.

    Raises
    ------
    ValueError
        On an unknown metric name, a non-positive ``k``, a ``group`` column missing from
        ``relevant`` (or a group value named ``"all"`` or ``"worst"``), or ``recommendations``
        with missing columns, non-positive ranks or duplicated ``(user, rank)`` pairs.

    Examples
    --------
    >>> import pandas as pd
    >>> from invrec.metrics import evaluate_ranking
    >>> recs = pd.DataFrame({"user": ["a", "a", "b", "b"], "item": ["x", "y", "y", "z"],
    ...                      "rank": [1, 2, 1, 2]})
    >>> held_out = pd.DataFrame({"user": ["a", "b"], "item": ["y", "x"]})
    >>> evaluate_ranking(recs, held_out, k=2, metrics=["recall", "hit_rate"])
         recall@2  hit_rate@2  n_users  n_skipped
    all       0.5         0.5        2          0
    """
    ks = _check_ks(k)
    names = _check_metric_names(metrics)
    rec_users, rec_items, positions = _check_recommendations(recommendations)
    table, _ = check_interactions(relevant, name="relevant")
    if group is not None and group not in table.columns:
        raise ValueError(
            f"group={group!r} is not a column of relevant, which has "
            f"{list(map(str, table.columns))}; "
            f"pass the name of the column holding the groups (for example 'environment')."
        )
    (rec_u, rel_u), n_users = _encode(rec_users, table[USER])
    (rec_i, rel_i), n_items = _encode(rec_items, table[ITEM])
    width = min(int(positions.max(initial=-1)) + 1, max(ks))
    rankings = _rankings_matrix(rec_u, rec_i, positions, n_users, width)
    shape = (n_users, n_items)
    rows = {"all": _score_row(rankings, rel_u, rel_i, shape, ks, names)}
    if group is not None:
        rows.update(_group_rows(table[group], rankings, rel_u, rel_i, shape, ks, names))
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = group
    counts = ["n_users", "n_skipped"]
    frame[counts] = frame[counts].astype("Int64")
    return frame


def _group_rows(groups, rankings, rel_u, rel_i, shape, ks, names):
    """Rows of :func:`evaluate_ranking` for each group value, then the ``"worst"`` row."""
    codes, values = _group_codes(groups)
    clashing = [v for v in values if isinstance(v, str) and v in ("all", "worst")]
    if clashing:
        raise ValueError(
            f"the group column holds the value(s) {clashing}, which clash with the rows 'all' and "
            f"'worst' of the result; rename them first."
        )
    rows = {}
    for code, value in enumerate(values):
        mask = codes == code
        rows[value] = _score_row(rankings, rel_u[mask], rel_i[mask], shape, ks, names)
    metric_columns = [c for c in next(iter(rows.values())) if "@" in c]
    rows["worst"] = {c: min(r[c] for r in rows.values()) for c in metric_columns}
    rows["worst"].update(n_users=np.nan, n_skipped=np.nan)
    return rows


# --------------------------------------------------------------------------------------------
# Scorer
# --------------------------------------------------------------------------------------------


def _check_candidates(candidates):
    """Return ``"all"``, ``"unseen"`` or a 1-D array of raw item ids."""
    if isinstance(candidates, str):
        if candidates not in ("all", "unseen"):
            raise ValueError(
                "candidates must be 'all', 'unseen' or an array-like of raw item ids; "
                f"got {candidates!r}."
            )
        return candidates
    ids = np.asarray(candidates)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(
            "candidates given as item ids must be a non-empty 1-D array-like (list, array, "
            f"Series); got shape {ids.shape}."
        )
    if pd.isna(ids).any():
        raise ValueError("candidates holds missing item ids; drop them first.")
    return ids


def _name(estimator):
    """The estimator's class name, for error messages."""
    return type(estimator).__name__


def _check_rating_model(estimator):
    """Refuse an estimator whose ``predict`` does not give ratings (a TypeError naming it)."""
    if not callable(getattr(estimator, "predict", None)):
        raise TypeError(
            f"make_rating_scorer cannot score {_name(estimator)}: it has no predict method. Pass a "
            f"rating regressor (such as invrec.eior.EIORRegressor), or a pipeline ending in one."
        )
    if callable(getattr(estimator, "recommend", None)) and not _predicts_ratings(estimator):
        raise TypeError(
            f"make_rating_scorer scores predicted ratings, but {_name(estimator)} is a ranking model: "
            f"its predict gives ranking scores on no rating scale, so an RMSE of them means "
            f"nothing. Score it with make_ranking_scorer, or fit a rating regressor (such as "
            f"invrec.eior.EIORRegressor) on the ratings."
        )


def _predicts_ratings(estimator):
    """Whether a recommender is a rating regressor: invrec's mixin, or sklearn's regressor tag."""
    from invrec.regression import RatingRegressorMixin      # it imports this module

    if isinstance(estimator, RatingRegressorMixin):
        return True
    try:
        return get_tags(estimator).estimator_type == "regressor"
    except AttributeError:          # an object without scikit-learn tags
        return False


class RankingScorer:
    """Scorer ``scorer(estimator, X, y=None) -> float`` built by :func:`make_ranking_scorer`.

    Parameters
    ----------
    metric : str
        One of :data:`METRIC_NAMES`.
    k : int
        Cut-off and the length of the lists asked from ``estimator.recommend``.
    candidates : {"all", "unseen"} or array-like of raw item ids
        Items that may be recommended.
    exclude_seen : bool
        Passed to ``estimator.recommend``.

    Examples
    --------
    >>> from invrec.metrics import RankingScorer
    >>> RankingScorer("recall", 10, "unseen", True)
    make_ranking_scorer(metric='recall', k=10, candidates='unseen', exclude_seen=True)
    """

    def __init__(self, metric, k, candidates, exclude_seen):
        if not isinstance(metric, str):
            raise ValueError(
                f"metric must be one metric name among {list(METRIC_NAMES)}; got {metric!r}."
            )
        self.metric = _check_metric_names(metric)[0]
        self.k = check_int(k, "k")
        self.candidates = _check_candidates(candidates)
        self.exclude_seen = check_bool(exclude_seen, "exclude_seen")

    def __repr__(self):
        cand = self.candidates
        cand = repr(cand) if isinstance(cand, str) else f"<{cand.size} item ids>"
        return (
            f"make_ranking_scorer(metric={self.metric!r}, k={self.k}, candidates={cand}, "
            f"exclude_seen={self.exclude_seen})"
        )

    def _candidate_ids(self, estimator):
        """Raw ids passed as ``items=`` to ``recommend`` (None for the whole catalog)."""
        if isinstance(self.candidates, np.ndarray):
            return self.candidates
        if self.candidates == "all":
            return None
        if not hasattr(estimator, "unseen_items_"):
            raise AttributeError(
                f"candidates='unseen' needs estimator.unseen_items_ (the raw ids of the items "
                f"without training interaction); {type(estimator).__name__} has none. Fit it first "
                f"or pass the candidate ids explicitly."
            )
        unseen = np.asarray(estimator.unseen_items_)
        if unseen.size == 0:
            raise ValueError(
                "candidates='unseen' but estimator.unseen_items_ is empty: every catalog item "
                "had a training interaction, so there is no new item to rank."
            )
        return unseen

    def __call__(self, estimator, X, y=None):
        """Score ``estimator`` on the held-out interactions ``X`` (see the ranking protocol).

        A pipeline is scored through its final step, on ``X`` as its transform steps leave it
        (:func:`invrec.pipeline.resolve_final_step`).

        Raises
        ------
        TypeError
            If the estimator (a pipeline's final step) has no ``recommend``: it cannot rank.
        ValueError
            If no row of ``X`` is relevant.
        """
        estimator, X = _resolve_final_step(estimator, X)
        if not callable(getattr(estimator, "recommend", None)):
            raise TypeError(
                f"make_ranking_scorer cannot score {_name(estimator)}: it cannot rank (it has no "
                f"recommend(users, n=...) method). Pass an invrec recommender, or a pipeline "
                f"ending in one (invrec.pipeline.make_pipeline)."
            )
        table, y = check_interactions(X, y)
        if y is not None:
            table = table.loc[np.asarray(y > 0)]
        if len(table) == 0:
            raise ValueError(
                "no relevant interaction to score: every row of X has y <= 0. The test fold needs "
                "at least one row with a positive target."
            )
        users = table[USER].drop_duplicates().to_numpy()
        # The rows scored are the relevant items: an invrec estimator keeps them in its rankings
        # even when fit saw them as validation_data (which exclude_seen otherwise leaves out).
        keep_in = getattr(estimator, "_scoring_pairs", None)
        with keep_in(table) if keep_in is not None else contextlib.nullcontext():
            recs = estimator.recommend(
                users, n=self.k, exclude_seen=self.exclude_seen, items=self._candidate_ids(estimator)
            )
        scores = evaluate_ranking(recs, table[[USER, ITEM]], k=self.k, metrics=self.metric)
        return float(scores.loc["all", f"{self.metric}@{self.k}"])


def make_ranking_scorer(metric="ndcg", k=20, *, candidates="all", exclude_seen=True):
    """Build a ranking scorer for ``GridSearchCV(scoring=...)`` and ``cross_validate``.

    The scorer follows the ranking protocol: it parses ``X`` with ``check_interactions(X, y)``;
    when ``y`` is given, rows with ``y <= 0`` are not relevant and are dropped. The users are the
    unique users of the remaining rows, in order of first appearance. It calls
    ``estimator.recommend(users, n=k, exclude_seen=exclude_seen, items=ids)`` once, where ``ids``
    is None for ``candidates="all"``, ``estimator.unseen_items_`` for ``"unseen"`` and the given
    raw ids otherwise; ``recommend`` returns a DataFrame with columns ``user``, ``item``,
    ``score`` and ``rank`` (1-based), at most ``k`` rows per user. The metric is then computed by
    :func:`evaluate_ranking` against the remaining rows of ``X`` and its ``"all"`` value is
    returned as a Python float. Greater is better for every metric, so no sign flip is needed.
    A test user the estimator returns nothing for scores 0. Relevant rows are used as they are,
    even when their item is not a candidate: for a cold-start protocol, hold out interactions
    with new items only.

    Parameters
    ----------
    metric : str, default="ndcg"
        One of ``"recall"``, ``"precision"``, ``"ndcg"``, ``"ndcg_legacy"``, ``"hit_rate"``,
        ``"mrr"`` and ``"map"``.
    k : int, default=20
        Cut-off, a positive int.
    candidates : {"all", "unseen"} or array-like of raw item ids, default="all"
        Items that may be recommended: the whole catalog, the items without training interaction
        (``estimator.unseen_items_``, for cold-start evaluation), or the given ids.
    exclude_seen : bool, default=True
        Whether each user's training items are removed from their list.

    Returns
    -------
    scorer : RankingScorer
        A picklable callable ``scorer(estimator, X, y=None) -> float``.

    Raises
    ------
    ValueError
        At creation, on an unknown metric, a non-positive ``k`` or bad ``candidates``; at call
        time, when no row of ``X`` is relevant.

    Examples
    --------
    >>> from invrec.metrics import make_ranking_scorer
    >>> scorer = make_ranking_scorer("recall", k=10, candidates="unseen")
    >>> scorer
    make_ranking_scorer(metric='recall', k=10, candidates='unseen', exclude_seen=True)

    It plugs into model selection, alone or in a multi-metric dict::

        GridSearchCV(model, grid, scoring={"ndcg": make_ranking_scorer("ndcg", 20),
                                           "recall": make_ranking_scorer("recall", 20)},
                     refit="ndcg")
    """
    return RankingScorer(metric, k, candidates, exclude_seen)


# --------------------------------------------------------------------------------------------
# Rating-prediction metrics and scorer (explicit feedback)
# --------------------------------------------------------------------------------------------

#: Names accepted by :func:`make_rating_scorer`.
RATING_METRIC_NAMES = ("rmse", "mae")


def _check_rating_pair(y_true, y_pred):
    """Return ``y_true`` and ``y_pred`` as float64 1-D arrays of equal, non-zero length."""
    true = np.asarray(y_true, dtype=np.float64).ravel()
    pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if true.shape != pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length; got {true.size} and {pred.size}."
        )
    if true.size == 0:
        raise ValueError("y_true is empty; there is no rating to score.")
    if not (np.isfinite(true).all() and np.isfinite(pred).all()):
        raise ValueError(
            "y_true and y_pred must be finite; a NaN prediction usually comes from an unknown "
            "user or item under handle_unknown='ignore': drop those rows or pass skip_missing=True "
            "to the scorer."
        )
    return true, pred


def rmse(y_true, y_pred):
    """Root mean squared error of rating predictions, ``sqrt(mean((y_pred - y_true)^2))``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        Observed and predicted ratings, finite.

    Returns
    -------
    float
        Lower is better.

    Examples
    --------
    >>> from invrec.metrics import rmse
    >>> rmse([4, 3, 5], [3.5, 3, 3])   # sqrt((0.25 + 0 + 4) / 3)
    1.1902380714238083
    """
    true, pred = _check_rating_pair(y_true, y_pred)
    return float(np.sqrt(np.mean(np.square(pred - true))))


def mae(y_true, y_pred):
    """Mean absolute error of rating predictions, ``mean(|y_pred - y_true|)``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        Observed and predicted ratings, finite.

    Returns
    -------
    float
        Lower is better.

    Examples
    --------
    >>> from invrec.metrics import mae
    >>> mae([4, 3, 5], [3.5, 3, 3])    # (0.5 + 0 + 2) / 3
    0.8333333333333334
    """
    true, pred = _check_rating_pair(y_true, y_pred)
    return float(np.mean(np.abs(pred - true)))


_RATING_FUNCTIONS = {"rmse": rmse, "mae": mae}


class RatingScorer:
    """Scorer ``scorer(estimator, X, y=None) -> float`` built by :func:`make_rating_scorer`.

    Parameters
    ----------
    metric : {"rmse", "mae"}
        The error reported, negated (greater is better, as sklearn's ``neg_*`` scorers).
    column : str
        Column of ``X`` holding the ratings, used when ``y`` is None.
    skip_missing : bool
        Leave out rows whose prediction is NaN instead of raising.

    Examples
    --------
    >>> from invrec.metrics import RatingScorer
    >>> RatingScorer("mae", "rating", False)
    make_rating_scorer(metric='mae', column='rating', skip_missing=False)
    """

    def __init__(self, metric, column, skip_missing):
        if metric not in RATING_METRIC_NAMES:
            raise ValueError(
                f"metric must be one of {list(RATING_METRIC_NAMES)}; got {metric!r}."
            )
        self.metric, self.column = metric, column
        self.skip_missing = check_bool(skip_missing, "skip_missing")

    def __repr__(self):
        return (
            f"make_rating_scorer(metric={self.metric!r}, column={self.column!r}, "
            f"skip_missing={self.skip_missing})"
        )

    def __call__(self, estimator, X, y=None):
        """Negated error of ``estimator.predict(X)`` against the ratings ``y`` (or ``X[column]``).

        A pipeline is scored through its final step, on ``X`` as its transform steps leave it.

        Raises
        ------
        TypeError
            If the estimator (a pipeline's final step) has no ``predict``, or is a ranking model
            (it has ``recommend`` and is not a rating regressor): its scores are not ratings.
        ValueError
            If there is no rating to score against, or a prediction is NaN (unless
            ``skip_missing``).
        """
        estimator, X = _resolve_final_step(estimator, X)
        _check_rating_model(estimator)
        table, y = check_interactions(X, y)
        if y is None:
            if self.column not in table.columns:
                raise ValueError(
                    f"no ratings to score against: y is None and X has no {self.column!r} column. "
                    f"Pass the held-out ratings as y (fit(X, y) does so in GridSearchCV)."
                )
            y = table[self.column].to_numpy()
        pred = np.asarray(estimator.predict(table), dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if self.skip_missing:
            keep = ~np.isnan(pred)
            if not keep.any():
                raise ValueError("every prediction is NaN (all users or items unknown).")
            pred, y = pred[keep], y[keep]
        return -_RATING_FUNCTIONS[self.metric](y, pred)


def make_rating_scorer(metric="rmse", *, column="rating", skip_missing=False):
    """Build a rating-prediction scorer for ``GridSearchCV(scoring=...)`` and ``cross_validate``.

    The scorer parses ``X`` with :func:`~invrec.utils.validation.check_interactions` ``(X, y)``,
    calls ``estimator.predict`` on it (one predicted rating per row) and returns the **negated**
    error against ``y``, or against the ``column`` of ``X`` when ``y`` is None, as a Python float:
    greater is better, as for sklearn's ``"neg_root_mean_squared_error"``, so it plugs into
    ``GridSearchCV`` unchanged. Use it with estimators fitted on explicit ratings, whose
    ``predict`` returns ratings on the training scale.

    Parameters
    ----------
    metric : {"rmse", "mae"}, default="rmse"
        :func:`rmse` or :func:`mae`.
    column : str, default="rating"
        Column of ``X`` holding the observed ratings, read when ``y`` is None (the MovieLens
        loader keeps ratings there).
    skip_missing : bool, default=False
        Leave out rows predicted NaN (unknown users or items under ``handle_unknown="ignore"``)
        instead of raising a ValueError.

    Returns
    -------
    scorer : RatingScorer
        A picklable callable ``scorer(estimator, X, y=None) -> float``.

    Examples
    --------
    >>> import pandas as pd
    >>> from invrec.metrics import make_rating_scorer
    >>> class MeanModel:                       # predicts 3.5 for every pair
    ...     def predict(self, X):
    ...         return [3.5] * len(X)
    >>> held_out = pd.DataFrame({"user": [1, 2], "item": [7, 8], "rating": [4, 2]})
    >>> make_rating_scorer("mae")(MeanModel(), held_out)     # -(0.5 + 1.5) / 2
    -1.0
    """
    return RatingScorer(metric, column, skip_missing)


# --------------------------------------------------------------------------------------------
# Scorers by name
# --------------------------------------------------------------------------------------------

#: Names :func:`get_scorer` reads as rating scorers (negated errors, as sklearn's ``neg_*``).
_RATING_SCORER_NAMES = {f"neg_{name}": name for name in RATING_METRIC_NAMES}


def get_scorer(scoring, **options):
    """An invrec scorer from its name, such as ``"ndcg@20"``; a callable is returned as it is.

    scikit-learn reads a ``scoring`` string from its own fixed table of names
    (:func:`sklearn.metrics.get_scorer_names`), which has no public way to add names (scikit-learn
    1.9 included), so ``GridSearchCV(scoring="ndcg@20")`` cannot work. Pass
    ``scoring=get_scorer("ndcg@20")`` instead: a scorer object is accepted wherever scikit-learn
    takes a callable, alone or in a dict of several metrics. Beware that scikit-learn's
    ``"recall"`` and ``"precision"`` strings are classification metrics (of ``predict`` against
    labels ``y``), not ranking ones.

    Parameters
    ----------
    scoring : str or callable
        ``"<metric>@<k>"`` with a metric among :data:`METRIC_NAMES` (``"ndcg@20"``,
        ``"recall@10"``, ``"map@5"``); a bare metric name is ``k=20`` (``"ndcg"`` is
        ``"ndcg@20"``); ``"neg_rmse"`` or ``"neg_mae"`` for a rating scorer (the negated error).
        A callable (an existing scorer) is returned unchanged.
    **options
        Keyword arguments of :func:`make_ranking_scorer` (``candidates``, ``exclude_seen``) or
        :func:`make_rating_scorer` (``column``, ``skip_missing``).

    Returns
    -------
    RankingScorer, RatingScorer or the given callable

    Raises
    ------
    ValueError
        On a name that is none of these (the message lists the valid forms), or on options
        given with a callable.

    Examples
    --------
    >>> from invrec.metrics import get_scorer
    >>> get_scorer("recall@10", candidates="unseen")
    make_ranking_scorer(metric='recall', k=10, candidates='unseen', exclude_seen=True)
    >>> get_scorer("ndcg")
    make_ranking_scorer(metric='ndcg', k=20, candidates='all', exclude_seen=True)
    >>> get_scorer("neg_mae")
    make_rating_scorer(metric='mae', column='rating', skip_missing=False)

    Several metrics at once, for ``GridSearchCV(scoring=..., refit="ndcg@20")``::

        scoring = {name: get_scorer(name) for name in ("ndcg@20", "recall@20")}
    """
    if callable(scoring) and not isinstance(scoring, str):
        if options:
            raise ValueError(f"options {sorted(options)} apply to a scorer name only; the callable "
                             f"{scoring!r} is returned as it is.")
        return scoring
    if not isinstance(scoring, str):
        raise ValueError(f"scoring must be a scorer name such as 'ndcg@20', or a callable; got "
                         f"{scoring!r}.")
    if scoring in _RATING_SCORER_NAMES:
        return make_rating_scorer(_RATING_SCORER_NAMES[scoring], **options)
    metric, at, k = scoring.partition("@")
    if metric in _FORMULAS and (not at or k.isdigit()):
        return make_ranking_scorer(metric, int(k) if at else 20, **options)
    hint = (" Ratings are scored as negated errors: use 'neg_rmse' or 'neg_mae'."
            if scoring in RATING_METRIC_NAMES else "")
    raise ValueError(
        f"{scoring!r} is not an invrec scorer name. Valid names are '<metric>@<k>' (or '<metric>' "
        f"for k=20) with a metric among {list(METRIC_NAMES)}, for example 'ndcg@20', and "
        f"{sorted(_RATING_SCORER_NAMES)}.{hint} scikit-learn's own names are read by "
        f"sklearn.metrics.get_scorer."
    )
