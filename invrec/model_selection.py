"""Splitting interaction tables into training and test sets.

Recommendation data is not a bag of independent samples: a row is a (user, item) interaction, and
what a fair test set looks like depends on the question asked. This module offers a one-shot
:func:`train_test_split` and cross-validators usable as ``cv=`` in
:class:`sklearn.model_selection.GridSearchCV` and :func:`sklearn.model_selection.cross_validate`:

* :class:`PerUserHoldout` -- per-user K-fold or repeated per-user holdout (warm-start users);
* :class:`LeaveLastOut` -- each user's latest interactions are the test set;
* :class:`NewItemSplit` -- the new-item (cold-start) protocol of MILK: all interactions of a random
  set of items leave training;
* :class:`EnvironmentSplit` -- out-of-distribution splits by a group column.

Every splitter yields *positional* indices (``np.int64`` arrays, ascending) into ``X``, as
scikit-learn's splitters do. ``X`` is a DataFrame with ``user`` and ``item`` columns (extra columns
ride along) or an ``(n, 2)`` array of (user, item) ids; see
:func:`invrec.utils.validation.check_interactions`. ``X`` is never modified.

Splitters follow scikit-learn's conventions: ``__init__`` only stores its arguments, parameters are
checked when :meth:`split` is called, and an int ``random_state`` makes every call to ``split``
return the same splits (None draws fresh randomness on each call; a numpy Generator advances
between calls).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import _safe_indexing

from invrec.utils.params import InvalidParameterError, check_bool, check_fraction, check_int
from invrec.utils.validation import ITEM, USER, check_interactions, check_rng

__all__ = [
    "train_test_split",
    "PerUserHoldout",
    "LeaveLastOut",
    "NewItemSplit",
    "EnvironmentSplit",
]

_BY_OPTIONS = ("user", "item", "time", "random")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _round_half_up(values):
    """Round non-negative reals to the nearest int, halves upwards (2.5 -> 3).

    A tiny tolerance absorbs float error so that, e.g., ``0.7 * 5`` rounds like 3.5.
    """
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5 + 1e-9).astype(np.int64)


def _codes(column):
    """Integer codes 0..k-1 for a column of raw ids (first-appearance order) and k."""
    codes, uniques = pd.factorize(column, sort=False)
    return codes.astype(np.int64), len(uniques)


def _sorted_unique(values, what):
    """Sorted distinct values, with a clear error when they cannot be ordered."""
    values = np.asarray(values)
    try:
        return np.unique(values)
    except TypeError as exc:
        raise TypeError(
            f"the {what} values cannot be sorted ({exc}); use ids of a single type "
            f"(all ints or all strings)."
        ) from exc


def _rank_in_group(group_codes, order):
    """Position of each row inside its group when rows are visited in ``order``.

    ``order`` must list the rows grouped by ``group_codes`` (e.g. a lexsort with the group as
    primary key). Returns an int64 array ``rank`` with ``rank[i]`` in ``0..n_group-1``.
    """
    n = len(group_codes)
    counts = np.bincount(group_codes)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64) - starts[group_codes[order]]
    return rank


def _per_user_test_mask(user_codes, test_size, rng):
    """Boolean test mask of one random per-user holdout.

    Each user's rows are shuffled and the first ``min(round_half_up(test_size * n_u), n_u - 1)``
    of them are test rows, so users with one interaction stay in training and every test user
    keeps at least one training row.
    """
    counts = np.bincount(user_codes)
    n_test_u = np.minimum(_round_half_up(test_size * counts), counts - 1)
    if counts.max() < 2:
        raise ValueError(
            "cannot hold out per user: no user has 2 or more interactions, and a user's only "
            "interaction always stays in training. Use by='random' or by='item' instead."
        )
    if n_test_u.sum() == 0:
        raise ValueError(
            f"test_size={test_size!r} is too small for this data: round(test_size * n_u) is 0 "
            f"for every user (the largest user has {int(counts.max())} interactions), so the "
            f"test set would be empty. Increase test_size."
        )
    order = np.lexsort((rng.random(len(user_codes)), user_codes))
    rank = _rank_in_group(user_codes, order)
    return rank < n_test_u[user_codes]


def validation_holdout_mask(user_codes, fraction, rng):
    """Boolean mask of the rows carved from ``X`` for early stopping: a per-user share, in expectation.

    Each user ``u`` with ``n_u`` rows holds out ``floor(fraction * n_u + U_u)`` of them (``U_u``
    uniform in [0, 1): stochastic rounding), at most ``n_u - 1``, drawn at random. The expected
    share is ``fraction`` of every user's rows, so users with few interactions are represented
    in proportion to their rows: with ``round_half_up`` (:func:`train_test_split`) a user with 2
    rows never holds one out at ``fraction=0.1``, and on a long-tailed dataset (TikTok: median 2
    training interactions per user, 103 users with 15 or more) the validation set would be
    those heavy users alone, whose ranking differs from the test users'.

    Parameters
    ----------
    user_codes : ndarray of int
        User code of every row.
    fraction : float in (0, 1)
    rng : numpy.random.RandomState

    Returns
    -------
    mask : ndarray of bool
        True at the validation rows (at least one, when some user has 2 rows or more).
    """
    counts = np.bincount(user_codes)
    if counts.max() < 2:
        raise ValueError(
            "cannot hold out per user: no user has 2 or more interactions, and a user's only "
            "interaction always stays in training."
        )
    n_out = np.minimum(np.floor(fraction * counts + rng.random_sample(len(counts))), counts - 1)
    n_out = np.maximum(n_out, 0).astype(np.int64)
    if n_out.sum() == 0:                    # a tiny X: hold out one row of its largest user
        n_out[int(np.argmax(counts))] = 1
    order = np.lexsort((rng.random_sample(len(user_codes)), user_codes))
    return _rank_in_group(user_codes, order) < n_out[user_codes]


def _indices(mask):
    return np.flatnonzero(mask).astype(np.int64)


def _check_time_column(table, time_column, hint):
    if time_column not in table.columns:
        raise ValueError(
            f"X has no time column {time_column!r} (columns: {list(map(str, table.columns))}); "
            f"{hint}"
        )
    times = table[time_column]
    n_null = int(times.isna().sum())
    if n_null:
        raise ValueError(
            f"the time column {time_column!r} has {n_null} missing value(s); drop or fill them first."
        )
    return times.to_numpy()


def _time_codes(times, time_column):
    """Dense ascending ranks of the time values (works for numbers, datetimes and strings)."""
    try:
        _, codes = np.unique(times, return_inverse=True)
    except TypeError as exc:
        raise TypeError(f"the time column {time_column!r} cannot be sorted ({exc}).") from exc
    return codes.reshape(-1).astype(np.int64)


def _check_column(table, column, name):
    if column not in table.columns:
        raise ValueError(
            f"X has no column {column!r} (set by {name}); columns: {list(map(str, table.columns))}. "
            f"Pass a DataFrame holding it, or set {name} to an existing column."
        )


# --------------------------------------------------------------------------------------------
# one-shot split
# --------------------------------------------------------------------------------------------


def _split_test_mask(table, test_size, by, rng, time_column):
    """Boolean test mask for :func:`train_test_split`."""
    n = len(table)
    if by == "user":
        user_codes, _ = _codes(table[USER])
        return _per_user_test_mask(user_codes, test_size, rng)
    if by == "item":
        items = _sorted_unique(table[ITEM].to_numpy(), "item")
        n_items = len(items)
        if n_items < 2:
            raise ValueError(
                f"by='item' needs at least 2 distinct items to put some in test; X has {n_items}."
            )
        perm = rng.permutation(n_items)
        n_new = max(1, int(test_size * n_items))
        is_new = np.zeros(n_items, dtype=bool)
        is_new[perm[:n_new]] = True
        sorted_pos = np.searchsorted(items, table[ITEM].to_numpy())
        return is_new[sorted_pos]
    if n < 2:
        raise ValueError(f"by={by!r} needs at least 2 interactions; X has {n}.")
    n_test = int(min(max(_round_half_up(test_size * n), 1), n - 1))
    mask = np.zeros(n, dtype=bool)
    if by == "time":
        times = _check_time_column(
            table, time_column, "pass time_column=<name of the timestamp column>."
        )
        codes = _time_codes(times, time_column)
        order = np.argsort(codes, kind="stable")  # ties: earlier rows count as earlier
        mask[order[n - n_test:]] = True
        return mask
    mask[rng.permutation(n)[:n_test]] = True
    return mask


def train_test_split(X, y=None, *, test_size=0.2, by="user", random_state=None,
                     time_column="timestamp"):
    """Split an interaction table into a training and a test part.

    Parameters
    ----------
    X : DataFrame or array-like of shape (n_interactions, 2)
        Interactions, one row per (user, item). Not modified.
    y : array-like of shape (n_interactions,), default=None
        Optional per-row target, split alongside ``X``.
    test_size : float in (0, 1), default=0.2
        Fraction of the unit chosen by ``by`` that goes to test.
    by : {"user", "item", "time", "random"}, default="user"
        * ``"user"`` -- per-user holdout: each user's rows are shuffled and
          ``min(round_half_up(test_size * n_u), n_u - 1)`` of them go to test. Users with a single
          interaction stay in training and every test user keeps at least one training row
          (a user with 2 rows and ``test_size=0.2`` keeps both in training).
        * ``"item"`` -- new-item split: ``max(1, int(test_size * n_items))`` of the sorted
          distinct items are drawn with ``rng.permutation(n_items)`` (the recipe of
          :class:`NewItemSplit`, so the same int seed draws the same items) and all their
          interactions go to test.
        * ``"time"`` -- global split by time: the ``round_half_up(test_size * n)`` latest rows
          by ``time_column`` go to test. Among equal timestamps, later rows count as later, so a
          tie at the boundary is split deterministically by row order.
        * ``"random"`` -- ``round_half_up(test_size * n)`` uniformly random rows go to test.

        For ``"time"`` and ``"random"`` the test count is clipped to ``[1, n - 1]``.
    random_state : int, numpy Generator or None, default=None
        Seed of the shuffling (unused by ``by="time"``).
    time_column : str, default="timestamp"
        Column holding the interaction time, used by ``by="time"``.

    Returns
    -------
    X_train, X_test : same type as X
        Rows of ``X`` in their original order. DataFrames keep their columns and index labels,
        arrays stay arrays.
    y_train, y_test : same type as y
        Only returned when ``y`` is given.

    Raises
    ------
    ValueError
        For an unknown ``by``, a ``test_size`` outside (0, 1), a missing time column, or data
        that cannot be split (for example no user with 2 interactions for ``by="user"``).

    Examples
    --------
    >>> import pandas as pd
    >>> from invrec.model_selection import train_test_split
    >>> X = pd.DataFrame({"user": [1, 1, 1, 1, 2, 2, 3], "item": list("abcdabc")})
    >>> X_train, X_test = train_test_split(X, test_size=0.5, random_state=0)
    >>> len(X_train), len(X_test)
    (4, 3)
    >>> set(X_test["user"]) <= set(X_train["user"])
    True
    """
    if by not in _BY_OPTIONS:
        raise ValueError(f"by must be one of {list(_BY_OPTIONS)}; got {by!r}.")
    test_size = check_fraction(test_size, "test_size")
    table, _ = check_interactions(X, y)
    rng = check_rng(random_state)
    test_mask = _split_test_mask(table, test_size, by, rng, time_column)
    train_idx, test_idx = _indices(~test_mask), _indices(test_mask)
    out = [_safe_indexing(X, train_idx), _safe_indexing(X, test_idx)]
    if y is not None:
        out += [_safe_indexing(y, train_idx), _safe_indexing(y, test_idx)]
    return tuple(out)


# --------------------------------------------------------------------------------------------
# cross-validators
# --------------------------------------------------------------------------------------------


class _InteractionSplitter(BaseCrossValidator):
    """Base of invrec's cross-validators: one ``get_n_splits`` for all, each class says how many."""

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits.

        Parameters
        ----------
        X : DataFrame, default=None
            Only needed by :class:`EnvironmentSplit` without ``test_groups`` (it counts the
            groups); ignored otherwise.
        y, groups : object
            Ignored, present for API compatibility.

        Returns
        -------
        n_splits : int
        """
        return self._n_splits(X)


class PerUserHoldout(_InteractionSplitter):
    """Per-user K-fold, or repeated per-user holdout, cross-validator.

    Every split keeps each test user in training with at least one interaction (warm-start
    evaluation). Users with a single interaction are never in a test set.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds (``>= 2``) when ``test_size`` is None, else number of independent
        holdouts (``>= 1``).
    test_size : float in (0, 1) or None, default=None
        * None -- per-user K-fold. Users are put in a random order and each user's rows in a random
          order; the rows of users with ``n_u >= 2`` are then dealt round-robin to the folds as one
          stream, so every fold gets the same number of rows up to one, and a user's first row
          lands in a random-looking fold. A user's rows are consecutive in the stream, hence any
          fold holds at most ``ceil(n_u / n_splits) <= n_u - 1`` of them: each test user keeps
          training rows. Fold ``f`` is the test set of split ``f``; its training set is every
          other row (including all single-interaction users). The test folds are disjoint and
          cover every row of users with ``n_u >= 2``.
        * float -- ``n_splits`` independent random per-user holdouts (like ``ShuffleSplit``), each
          with the rule of ``train_test_split(by="user")``:
          ``min(round_half_up(test_size * n_u), n_u - 1)`` test rows per user. Train and test
          cover every row.
    random_state : int, numpy Generator or None, default=None
        An int gives the same splits on every call of :meth:`split`.

    Examples
    --------
    >>> import pandas as pd
    >>> from invrec.model_selection import PerUserHoldout
    >>> X = pd.DataFrame({"user": [1, 1, 1, 2, 2, 3], "item": [1, 2, 3, 1, 2, 1]})
    >>> cv = PerUserHoldout(n_splits=2, random_state=0)
    >>> [len(test) for _, test in cv.split(X)]
    [3, 2]
    """

    def __init__(self, n_splits=5, *, test_size=None, random_state=None):
        self.n_splits = n_splits
        self.test_size = test_size
        self.random_state = random_state

    def _check_params(self):
        if self.test_size is None:
            n_splits = check_int(self.n_splits, "n_splits", 2)
            return n_splits, None
        n_splits = check_int(self.n_splits, "n_splits", 1)
        test_size = check_fraction(self.test_size, "test_size")
        return n_splits, test_size

    def _n_splits(self, X):
        """Number of splits, ``n_splits``."""
        return self._check_params()[0]

    def split(self, X, y=None, groups=None):
        """Yield ``(train, test)`` positional indices for each split.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_interactions, 2)
            Interactions.
        y, groups : object
            Ignored, present for API compatibility.

        Yields
        ------
        train, test : ndarray of int64
            Ascending row positions.
        """
        n_splits, test_size = self._check_params()
        table, _ = check_interactions(X)
        user_codes, n_users = _codes(table[USER])
        rng = check_rng(self.random_state)
        if test_size is not None:
            for _ in range(n_splits):
                mask = _per_user_test_mask(user_codes, test_size, rng)
                yield _indices(~mask), _indices(mask)
            return
        fold = self._fold_of_rows(user_codes, n_users, n_splits, rng)
        for f in range(n_splits):
            mask = fold == f
            yield _indices(~mask), _indices(mask)

    @staticmethod
    def _fold_of_rows(user_codes, n_users, n_splits, rng):
        counts = np.bincount(user_codes, minlength=n_users)
        eligible = counts[user_codes] >= 2
        n_eligible = int(eligible.sum())
        if n_eligible == 0:
            raise ValueError(
                "cannot cross-validate per user: no user has 2 or more interactions, and a "
                "user's only interaction always stays in training."
            )
        if n_eligible < n_splits:
            raise ValueError(
                f"n_splits={n_splits} is larger than the {n_eligible} interaction(s) of users with "
                f"2 or more interactions, so some test fold would be empty; lower n_splits."
            )
        user_order = rng.permutation(n_users)[user_codes]
        row_keys = rng.random(len(user_codes))
        order = np.lexsort((row_keys, user_order))
        order = order[eligible[order]]
        fold = np.full(len(user_codes), -1, dtype=np.int64)
        fold[order] = np.arange(n_eligible, dtype=np.int64) % n_splits
        return fold


class LeaveLastOut(_InteractionSplitter):
    """Leave each user's latest interactions out: one split.

    Parameters
    ----------
    n_last : int, default=1
        Number of latest interactions per user that form the test set. Users with ``n_last`` or
        fewer interactions stay fully in training, so every test user keeps training rows.
    time_column : str, default="timestamp"
        Column holding the interaction time. Rows with equal times are ordered by their position
        in ``X``: of two tied rows the later one counts as the later interaction.

    Examples
    --------
    >>> import pandas as pd
    >>> from invrec.model_selection import LeaveLastOut
    >>> X = pd.DataFrame({"user": [1, 1, 1, 2], "item": [1, 2, 3, 1],
    ...                   "timestamp": [5, 9, 7, 1]})
    >>> train, test = next(LeaveLastOut().split(X))
    >>> test.tolist()
    [1]
    """

    def __init__(self, n_last=1, *, time_column="timestamp"):
        self.n_last = n_last
        self.time_column = time_column

    def _n_splits(self, X):
        """Number of splits, always 1."""
        return 1

    def split(self, X, y=None, groups=None):
        """Yield the single ``(train, test)`` split.

        Parameters
        ----------
        X : DataFrame
            Interactions with a ``time_column`` column.
        y, groups : object
            Ignored, present for API compatibility.

        Yields
        ------
        train, test : ndarray of int64
            Ascending row positions.
        """
        n_last = check_int(self.n_last, "n_last", 1)
        table, _ = check_interactions(X)
        times = _check_time_column(
            table, self.time_column,
            "set LeaveLastOut(time_column=...) to the column holding interaction times.",
        )
        time_codes = _time_codes(times, self.time_column)
        user_codes, _ = _codes(table[USER])
        counts = np.bincount(user_codes)
        if counts.max() <= n_last:
            raise ValueError(
                f"no user has more than n_last={n_last} interactions (the largest has "
                f"{int(counts.max())}), so the test set would be empty; lower n_last."
            )
        positions = np.arange(len(table))
        order = np.lexsort((positions, time_codes, user_codes))
        rank = _rank_in_group(user_codes, order)
        n_u = counts[user_codes]
        mask = (n_u > n_last) & (rank >= n_u - n_last)
        yield _indices(~mask), _indices(mask)


class NewItemSplit(_InteractionSplitter):
    """New-item (cold-start) split of the MILK protocol.

    The sorted distinct item ids are permuted with ``np.random.default_rng(random_state)``:
    ``perm = rng.permutation(n_items)``, ``n_new = int(test_size * n_items)`` and the new items of
    split ``f`` are ``items[perm[f * n_new:(f + 1) * n_new]]`` (split 0 takes the first ``n_new``,
    exactly the peer recipe). With ``validation=True`` the first ``n_new // 2`` of them are
    validation items and the rest test items. All interactions of new items leave training.

    Parameters
    ----------
    test_size : float in (0, 1), default=0.2
        Fraction of the distinct items that are new in each split.
    validation : bool, default=False
        Whether half of the new items (rounded down) form a validation set. Then :meth:`split`
        yields ``(train, test)`` where the validation rows are in *neither* part, and
        :meth:`split_validation` yields ``(train, validation, test)``.
    n_splits : int, default=1
        Number of splits. The new-item sets of different splits are disjoint (K-fold over the
        one permutation), which needs ``n_splits * n_new <= n_items``.
    random_state : int, numpy Generator or None, default=None
        An int gives the same splits on every call.

    Examples
    --------
    >>> import pandas as pd
    >>> from invrec.model_selection import NewItemSplit
    >>> X = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [10, 11, 10, 12, 13]})
    >>> cv = NewItemSplit(test_size=0.5, random_state=0)
    >>> new = cv.new_items(X)["test"]
    >>> train, test = next(cv.split(X))
    >>> bool(X["item"].iloc[test].isin(new).all()), bool(X["item"].iloc[train].isin(new).any())
    (True, False)
    """

    def __init__(self, test_size=0.2, *, validation=False, n_splits=1, random_state=None):
        self.test_size = test_size
        self.validation = validation
        self.n_splits = n_splits
        self.random_state = random_state

    def _check_params(self):
        test_size = check_fraction(self.test_size, "test_size")
        n_splits = check_int(self.n_splits, "n_splits", 1)
        try:
            check_bool(self.validation, "validation")
        except InvalidParameterError:
            raise InvalidParameterError(
                f"NewItemSplit's validation must be True or False; got {self.validation!r} (a string "
                "such as 'no' or a number is not read as a bool).") from None
        return test_size, n_splits

    def _n_splits(self, X):
        """Number of splits, ``n_splits``."""
        return self._check_params()[1]

    def _draws(self, X):
        """Parsed table, sorted items, per-row sorted item position and per-split new items."""
        test_size, n_splits = self._check_params()
        table, _ = check_interactions(X)
        items = _sorted_unique(table[ITEM].to_numpy(), "item")
        n_items = len(items)
        n_new = int(test_size * n_items)
        need = 2 if self.validation else 1
        if n_new < need:
            raise ValueError(
                f"int(test_size * n_items) = int({test_size!r} * {n_items}) = {n_new} new item(s); "
                f"at least {need} {'are' if need > 1 else 'is'} needed"
                f"{' (one validation and one test item)' if self.validation else ''}. "
                f"Increase test_size or use more items."
            )
        if n_splits * n_new > n_items:
            raise ValueError(
                f"n_splits={n_splits} disjoint sets of {n_new} new items need "
                f"{n_splits * n_new} items but X has {n_items}; lower n_splits or test_size "
                f"(n_splits * test_size must be at most 1)."
            )
        rng = check_rng(self.random_state)
        perm = rng.permutation(n_items)
        row_item = np.searchsorted(items, table[ITEM].to_numpy())
        n_val = n_new // 2 if self.validation else 0
        blocks = []
        for f in range(n_splits):
            block = perm[f * n_new:(f + 1) * n_new]
            blocks.append((block[:n_val], block[n_val:]))
        return items, row_item, blocks

    def new_items(self, X, *, fold=0):
        """New item ids of one split.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_interactions, 2)
            Interactions.
        fold : int, default=0
            Which split, in ``0..n_splits-1``.

        Returns
        -------
        new_items : dict
            ``{"validation": ndarray, "test": ndarray}`` of raw item ids in permutation order
            (``validation`` is empty when ``validation=False``). MILK ranks among these items.
        """
        items, _, blocks = self._draws(X)
        fold = check_int(fold, "fold", 0)
        if fold >= len(blocks):
            raise ValueError(f"fold must be in 0..{len(blocks) - 1}; got {fold}.")
        val, test = blocks[fold]
        return {"validation": items[val], "test": items[test]}

    def _masks(self, X):
        items, row_item, blocks = self._draws(X)
        for val, test in blocks:
            kind = np.zeros(len(items), dtype=np.int8)  # 0 train, 1 validation, 2 test
            kind[val] = 1
            kind[test] = 2
            row_kind = kind[row_item]
            yield row_kind == 0, row_kind == 1, row_kind == 2

    def split(self, X, y=None, groups=None):
        """Yield ``(train, test)`` positional indices for each split.

        With ``validation=True`` the rows of validation items are in neither part.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_interactions, 2)
            Interactions.
        y, groups : object
            Ignored, present for API compatibility.

        Yields
        ------
        train, test : ndarray of int64
            Ascending row positions.
        """
        for train, _, test in self._masks(X):
            yield _indices(train), _indices(test)

    def split_validation(self, X, y=None, groups=None):
        """Yield ``(train, validation, test)`` positional indices for each split.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_interactions, 2)
            Interactions.
        y, groups : object
            Ignored, present for API compatibility.

        Yields
        ------
        train, validation, test : ndarray of int64
            Ascending row positions; together they cover every row.
        """
        if not self.validation:
            raise ValueError(
                "split_validation needs validation=True; with validation=False use split()."
            )
        for train, val, test in self._masks(X):
            yield _indices(train), _indices(val), _indices(test)


class EnvironmentSplit(_InteractionSplitter):
    """Split by the values of a group column, for out-of-distribution evaluation.

    Parameters
    ----------
    column : str, default="environment"
        Column of ``X`` holding each row's group (environment).
    test_groups : value or list of values, default=None
        If given, one split whose test set is the rows of these group values and whose training
        set is every other row. If None, leave-one-group-out over the sorted group values:
        split ``g`` tests on the ``g``-th group (``n_splits`` = number of groups).

    Notes
    -----
    The ``groups`` argument of :meth:`split` is ignored; the groups come from ``column``.

    Examples
    --------
    >>> import pandas as pd
    >>> from invrec.model_selection import EnvironmentSplit
    >>> X = pd.DataFrame({"user": [1, 2, 3], "item": [1, 1, 2],
    ...                   "environment": ["a", "b", "a"]})
    >>> [test.tolist() for _, test in EnvironmentSplit().split(X)]
    [[0, 2], [1]]
    """

    def __init__(self, column="environment", *, test_groups=None):
        self.column = column
        self.test_groups = test_groups

    def _test_groups(self):
        tg = self.test_groups
        if tg is None:
            return None
        if isinstance(tg, (str, bytes)) or np.isscalar(tg):
            tg = [tg]
        tg = list(tg)
        if not tg:
            raise ValueError("test_groups is empty; give at least one group value, or None.")
        return tg

    def _n_splits(self, X):
        """Number of splits: 1 with ``test_groups``, else the number of distinct groups in X."""
        if self._test_groups() is not None:
            return 1
        if X is None:
            raise ValueError(
                "EnvironmentSplit without test_groups needs X to count the groups in "
                f"column {self.column!r}."
            )
        return len(self._groups(X)[1])

    def _groups(self, X):
        table, _ = check_interactions(X)
        _check_column(table, self.column, "column")
        values = table[self.column]
        n_null = int(values.isna().sum())
        if n_null:
            raise ValueError(
                f"the group column {self.column!r} has {n_null} missing value(s); fill them first."
            )
        values = values.to_numpy()
        groups = _sorted_unique(values, f"{self.column!r}")
        return values, groups

    def split(self, X, y=None, groups=None):
        """Yield ``(train, test)`` positional indices for each split.

        Parameters
        ----------
        X : DataFrame
            Interactions with the group column.
        y, groups : object
            Ignored, present for API compatibility.

        Yields
        ------
        train, test : ndarray of int64
            Ascending row positions.
        """
        test_groups = self._test_groups()
        values, uniques = self._groups(X)
        if test_groups is not None:
            known = pd.Index(uniques)
            unknown = [g for g in test_groups if g not in known]
            if unknown:
                raise ValueError(
                    f"test_groups {unknown} not found in column {self.column!r}; its values are "
                    f"{list(uniques)[:20]}."
                )
            mask = pd.Series(values).isin(test_groups).to_numpy()
            if mask.all():
                raise ValueError(
                    f"test_groups {test_groups} cover every row of X, so the training set would "
                    f"be empty; leave at least one group for training."
                )
            yield _indices(~mask), _indices(mask)
            return
        if len(uniques) < 2:
            raise ValueError(
                f"leave-one-group-out needs at least 2 groups in column {self.column!r}; "
                f"found {len(uniques)}."
            )
        codes = np.searchsorted(uniques, values)
        for g in range(len(uniques)):
            mask = codes == g
            yield _indices(~mask), _indices(mask)
