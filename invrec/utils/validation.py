"""Validation of the interaction table, the input every invrec function shares.

The interaction table ``X`` holds one row per observed (user, item) interaction. It is either a
:class:`pandas.DataFrame` with ``user`` and ``item`` columns (extra columns such as ``timestamp``,
``rating`` or ``environment`` ride along) or any ``(n, 2)`` array-like of raw ids. Ids are raw:
ints or strings, not necessarily contiguous.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .params import check_choice, check_float, check_fraction, check_int  # noqa: F401 (one set of checkers)

USER = "user"
ITEM = "item"

__all__ = ["USER", "ITEM", "check_interactions", "check_rng", "check_fraction"]


def check_interactions(X, y=None, *, require_columns=(), name="X"):
    """Return the interaction table as a fresh DataFrame with a 0..n-1 index.

    Parameters
    ----------
    X : DataFrame or array-like of shape (n_interactions, 2)
        A DataFrame needs ``user`` and ``item`` columns; an array's columns are (user, item).
    y : array-like of shape (n_interactions,), default=None
        Optional per-row target (weights, labels or ratings), checked to match ``X``.
    require_columns : sequence of str, default=()
        Further columns that must be present (for example ``"timestamp"``).
    name : str, default="X"
        Name used in error messages.

    Returns
    -------
    table : DataFrame
        A copy of ``X`` (the caller's object is never modified) with a ``RangeIndex``, so
        positions and labels agree.
    y : ndarray of shape (n_interactions,) or None
        ``y`` as a 1-D array, or None.

    Raises
    ------
    ValueError
        If ``X`` is empty, lacks the ``user``/``item`` columns, has the wrong shape, holds
        missing ids, or if ``y`` does not match it.
    """
    if sp.issparse(X):
        raise TypeError(
            f"{name} is a sparse matrix; sparse input is not supported. Pass the interactions as "
            "a DataFrame with 'user' and 'item' columns, e.g. from the matrix's nonzero entries: "
            "pd.DataFrame({'user': M.row, 'item': M.col}) for a COO matrix M."
        )
    if isinstance(X, pd.DataFrame):
        missing = [c for c in (USER, ITEM) if c not in X.columns]
        if missing:
            raise ValueError(
                f"{name} is a DataFrame without the column(s) {missing}; it has "
                f"{list(map(str, X.columns))[:10]}. Rename the id columns to 'user' and 'item', "
                f"for example X.rename(columns={{'userID': 'user', 'itemID': 'item'}})."
            )
        table = X.reset_index(drop=True).copy()
    else:
        if isinstance(X, (str, bytes)) or X is None or np.isscalar(X):
            raise TypeError(
                f"{name} must be a DataFrame with 'user' and 'item' columns or an (n, 2) "
                f"array-like of (user, item) ids; got {type(X).__name__}."
            )
        arr = np.asarray(X, dtype=object) if not hasattr(X, "dtype") else np.asarray(X)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(
                f"{name} must have shape (n_interactions, 2) with (user, item) ids per row; "
                f"got shape {arr.shape}. Pass a DataFrame to carry extra columns."
            )
        table = pd.DataFrame({USER: _clean_id_column(arr[:, 0]), ITEM: _clean_id_column(arr[:, 1])})
    if len(table) == 0:
        raise ValueError(f"{name} has no interactions (0 rows); at least one is required.")
    for col in (USER, ITEM):
        n_null = int(table[col].isna().sum())
        if n_null:
            raise ValueError(
                f"{name} has {n_null} row(s) with a missing (NaN) {col} id; drop them first, "
                f"for example X.dropna(subset=['{col}'])."
            )
        if pd.api.types.is_float_dtype(table[col]) and np.isinf(table[col].to_numpy()).any():
            raise ValueError(f"{name} has an infinite {col} id; ids must be finite numbers or strings.")
    missing = [c for c in require_columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"{name} needs the column(s) {missing} for this operation; it has {list(map(str, table.columns))}."
        )
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1 or y.shape[0] != len(table):
            raise ValueError(
                f"y must be 1-D with one value per row of {name} ({len(table)} rows); got shape {y.shape}."
            )
    return table, y


def _clean_id_column(column):
    """Turn an object column of ids into ints where every id is integral, else keep it."""
    column = np.asarray(column)
    if column.dtype == object:
        if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in column):
            return column.astype(np.int64)
    return column


def check_rng(random_state):
    """Return a :class:`numpy.random.Generator` from None, an int or a Generator.

    invrec draws with numpy's ``Generator`` API. An int seeds it (the same int always gives the
    same draws), None draws fresh entropy, and a Generator is used as it is. A legacy
    ``RandomState`` is accepted too: one integer is drawn from it to seed a Generator.
    """
    if random_state is None or isinstance(random_state, (numbers.Integral, np.integer)):
        if isinstance(random_state, bool):
            raise TypeError("random_state must be None, an int or a numpy Generator; got a bool.")
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    raise TypeError(
        f"random_state must be None, an int, a numpy Generator or RandomState; got {random_state!r}."
    )
