"""Validation of the interaction table, the input every invrec function shares.

The interaction table ``X`` holds one row per observed (user, item) interaction. It is either a
:class:`pandas.DataFrame` with ``user`` and ``item`` columns (extra columns such as ``timestamp``,
``rating`` or ``environment`` ride along) or any ``(n, 2)`` array-like of raw ids; a table of
another library with a ``to_pandas()`` method (polars, Arrow) is converted and read by column name
(neither library is needed otherwise). A scipy sparse user x item matrix is read as implicit reads
one: rows are users, columns items, the row and column indices are the ids, and each stored
non-zero entry is one interaction whose value is its weight (:func:`interactions_from_sparse`).
Ids are raw: ints or strings, not necessarily contiguous. Each id keeps its type: the int ``0`` and
the string ``"0"`` are different ids, so a column (or an id list) holding both is refused, as are
unhashable ids (lists, dicts).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pandas.api.types import infer_dtype

from .params import check_choice, check_float, check_fraction, check_int  # noqa: F401 (one set of checkers)

USER = "user"
ITEM = "item"

__all__ = ["USER", "ITEM", "check_interactions", "interactions_from_sparse", "check_rng", "check_fraction",
           "check_choice", "check_float", "check_int", "as_id_array", "check_id_values",
           "check_same_id_types", "type_mismatch_hint"]

#: Other spellings of the id columns that the error of a DataFrame without ``user`` / ``item``
#: recognises (compared lower-cased, without ``_``, ``-``, spaces or dots), so it can name the
#: exact ``rename`` to use. Nothing is renamed silently.
COLUMN_SPELLINGS = {
    USER: ("user", "users", "userid", "userids", "useridx", "uid", "customerid", "visitorid"),
    ITEM: ("item", "items", "itemid", "itemids", "itemidx", "iid", "movieid", "productid",
           "trackid", "artistid", "asin"),
}


def check_interactions(X, y=None, *, require_columns=(), name="X", allow_empty=False):
    """Return the interaction table as a fresh DataFrame with a 0..n-1 index.

    Parameters
    ----------
    X : DataFrame, array-like of shape (n_interactions, 2) or sparse matrix
        A DataFrame needs ``user`` and ``item`` columns; an array's columns are (user, item).
        A polars or Arrow table (anything with ``to_pandas()``) is converted to a DataFrame.
        A scipy sparse matrix of shape (n_users, n_items) is read by
        :func:`interactions_from_sparse`: one row per stored non-zero entry (users in increasing
        order, each user's items in increasing order), the row and column indices as ids and
        the entries' values as ``y``.
    y : array-like of shape (n_interactions,), default=None
        Optional per-row target (weights, labels or ratings), checked to match ``X``. Must be
        None when ``X`` is a sparse matrix (its values are the target).
    require_columns : sequence of str, default=()
        Further columns that must be present (for example ``"timestamp"``).
    name : str, default="X"
        Name used in error messages.
    allow_empty : bool, default=False
        Accept a table of 0 rows (``predict`` of an empty recommendation frame); otherwise it is
        refused.

    Returns
    -------
    table : DataFrame
        A copy of ``X`` (the caller's object is never modified) with a ``RangeIndex``, so
        positions and labels agree.
    y : ndarray of shape (n_interactions,) or None
        ``y`` as a 1-D array, or None; for a sparse ``X``, the values of its entries.

    Raises
    ------
    ValueError
        If ``X`` is empty (unless ``allow_empty``), lacks the ``user``/``item`` columns (the
        message names the ``rename`` to use when it recognises the id columns), has the wrong
        shape, holds missing ids or ids that differ only in type (``0`` and ``"0"``), if ``y``
        does not match it, or if ``X`` is a sparse matrix given with a ``y`` or holding NaN or
        infinite values.
    TypeError
        If ``X`` is a dict, None or a scalar, or holds unhashable ids.
    """
    if sp.issparse(X):
        if y is not None:
            raise ValueError(
                f"{name} is a sparse user x item matrix, whose stored values are the target of "
                "its interactions, so y must be None; pass the weights (or ratings) as the "
                "matrix's values, or pass a DataFrame with 'user' and 'item' columns with y."
            )
        table, y = interactions_from_sparse(X, name)
        if len(table) == 0 and not allow_empty:
            raise ValueError(f"{name} is a sparse matrix without a stored non-zero entry; at "
                             "least one interaction is required.")
        return _check_required(table, require_columns, name), y
    if isinstance(X, Mapping):
        raise TypeError(
            f"{name} is a {type(X).__name__}; pass a DataFrame with 'user' and 'item' columns "
            f"instead, for example pd.DataFrame({name}) for a dict of columns."
        )
    X = _to_pandas(X, name)
    if isinstance(X, pd.DataFrame):
        missing = [c for c in (USER, ITEM) if c not in X.columns]
        if missing:
            raise ValueError(_missing_columns_message(X.columns, missing, name))
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
    if len(table) == 0 and not allow_empty:
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
        if table[col].dtype == object:   # typed columns (ints, strings) cannot mix types
            check_id_values(table[col].to_numpy(), f"{name}'s {col} column",
                            fix=f"{name}['{col}'] = {name}['{col}'].astype(str)")
    table = _check_required(table, require_columns, name)
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1 or y.shape[0] != len(table):
            raise ValueError(
                f"y must be 1-D with one value per row of {name} ({len(table)} rows); got shape {y.shape}."
            )
    return table, y


def _check_required(table, require_columns, name):
    """``table`` itself, or a ValueError naming the columns of ``require_columns`` it lacks."""
    missing = [c for c in require_columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"{name} needs the column(s) {missing} for this operation; it has {list(map(str, table.columns))}."
        )
    return table


def interactions_from_sparse(matrix, name="X"):
    """The interactions of a scipy sparse user x item matrix, with their values.

    The convention of implicit (and of most matrix-factorisation libraries): row ``u`` is the
    user with id ``u``, column ``i`` the item with id ``i``, and each stored non-zero entry is
    one interaction whose value is its weight (or its rating, for a regressor). Explicit zeros
    are no interaction, as in ``matrix.nonzero()``; duplicate entries of a COO matrix are summed,
    as scipy does. Users without an entry (empty rows) and items without one (empty columns) are
    not part of the interactions: an item joins a model's catalog through ``item_features``.

    Parameters
    ----------
    matrix : scipy sparse matrix or array of shape (n_users, n_items)
        Any format (CSR, CSC, COO, ...); it is not modified.
    name : str, default="X"
        Name used in error messages.

    Returns
    -------
    table : DataFrame of shape (nnz, 2)
        Columns ``user`` and ``item`` (int64 row and column indices), row by row: users in
        increasing order, each user's items in increasing order (the order of the CSR form),
        with a ``RangeIndex``. A DataFrame sorted by (user, item) fits the same model.
    values : ndarray of shape (nnz,)
        The value of each entry.

    Raises
    ------
    ValueError
        If ``matrix`` is not 2-D, or holds a NaN or infinite value (the message names the entry).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from invrec.utils.validation import interactions_from_sparse
    >>> M = sp.csr_array([[0, 2.0, 0], [1.0, 0, 0]])
    >>> table, weights = interactions_from_sparse(M)
    >>> table
       user  item
    0     0     1
    1     1     0
    >>> weights
    array([2., 1.])
    """
    if not sp.issparse(matrix):
        raise TypeError(f"{name} must be a scipy sparse matrix; got {type(matrix).__name__}.")
    if matrix.ndim != 2:
        raise ValueError(f"{name} is a {matrix.ndim}-D sparse array; a user x item matrix of "
                         "shape (n_users, n_items) is needed.")
    csr = sp.csr_array(matrix, copy=True)       # a copy: the caller's arrays are never touched
    csr.sum_duplicates()                        # also sorts each row's column indices
    csr.eliminate_zeros()
    coo = csr.tocoo()
    values = np.asarray(coo.data)
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        first = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(
            f"{name} holds {int((~np.isfinite(values)).sum())} NaN or infinite value(s), first at "
            f"(row {int(coo.row[first])}, column {int(coo.col[first])}): {values[first]}. Each "
            "stored value is an interaction's weight and must be finite; drop or fill those "
            "entries first."
        )
    table = pd.DataFrame({USER: coo.row.astype(np.int64), ITEM: coo.col.astype(np.int64)})
    return table, values


def _missing_columns_message(columns, missing, name):
    """The error of a DataFrame without ``user`` / ``item``: the columns it has and the fix.

    When a column of another common spelling (``userID``, ``user_id``, ``UserId``, ``movieId``:
    :data:`COLUMN_SPELLINGS`) stands for each missing one, the fix is the exact ``rename``; two
    candidates for one column are both named and none is picked.
    """
    present = list(columns)
    shown = list(map(str, present))
    head = (f"{name} is a DataFrame without the column(s) {missing}; it has {shown[:10]}"
            f"{f' (and {len(shown) - 10} more)' if len(shown) > 10 else ''}.")
    found, ambiguous = {}, {}
    for wanted in missing:
        spellings = COLUMN_SPELLINGS[wanted]
        matches = [c for c in present if isinstance(c, str) and _plain_name(c) in spellings]
        if len(matches) == 1:
            found[matches[0]] = wanted
        elif matches:
            ambiguous[wanted] = matches
    if ambiguous:
        which = "; ".join(f"{' or '.join(map(repr, cols))} could be the {wanted!r} column"
                          for wanted, cols in ambiguous.items())
        return (f"{head} Rename the id columns to 'user' and 'item': {which}; pick one, for "
                f"example {name}.rename(columns={{{_ambiguous_example(ambiguous, found)}}}).")
    if len(found) == len(missing):
        mapping = ", ".join(f"{old!r}: {new!r}" for old, new in found.items())
        return f"{head} Rename the id columns to 'user' and 'item': {name}.rename(columns={{{mapping}}})."
    return (f"{head} Rename the id columns to 'user' and 'item', for example "
            f"{name}.rename(columns={{{_template(missing, found)}}}).")


def _ambiguous_example(ambiguous, found):
    """The rename mapping of the message for ambiguous columns: the first candidate of each."""
    pairs = [(cols[0], wanted) for wanted, cols in ambiguous.items()] + list(found.items())
    return ", ".join(f"{old!r}: {new!r}" for old, new in pairs)


def _template(missing, found):
    """The rename mapping with placeholders for the id columns no known spelling matched."""
    pairs = list(found.items()) + [(f"<{wanted} column>", wanted) for wanted in missing
                                   if wanted not in found.values()]
    return ", ".join(f"{old!r}: {new!r}" for old, new in pairs)


def _plain_name(column):
    """A column name lower-cased, without ``_``, ``-``, spaces or dots (``User_ID`` -> ``userid``)."""
    return re.sub(r"[\s_.\-]", "", column.lower())


def _clean_id_column(column):
    """Turn an object column of ids into ints where every id is integral, else keep it.

    The ints become int64, or uint64 when some exceed int64 but all fit in uint64 (ids above
    2**63); ids beyond both stay Python ints in the object column.
    """
    column = np.asarray(column)
    if column.dtype == object:
        if all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in column):
            if len(column) == 0:
                return column.astype(np.int64)
            low, high = int(min(column)), int(max(column))
            if -(1 << 63) <= low and high < (1 << 63):
                return column.astype(np.int64)
            if low >= 0 and high < (1 << 64):
                return column.astype(np.uint64)
    return column


def _to_pandas(X, name):
    """A pandas DataFrame from a table of another library (polars, pyarrow), else ``X`` itself.

    Anything with a ``to_pandas()`` method (polars and Arrow tables, among others) is converted,
    so its columns are read by name like a DataFrame's.
    """
    if isinstance(X, (pd.DataFrame, np.ndarray)) or not callable(getattr(X, "to_pandas", None)):
        if type(X).__name__ == "LazyFrame":
            raise TypeError(f"{name} is a polars LazyFrame; collect it first: {name}.collect().")
        return X
    kind = f"{type(X).__module__.split('.')[0]} {type(X).__name__}"
    try:
        converted = X.to_pandas()
    except ImportError as exc:
        raise TypeError(
            f"{name} is a {kind}, which invrec reads by converting it to pandas with "
            f"{name}.to_pandas(), and that failed: {exc}. Install what it asks for (pyarrow for "
            f"polars), or pass a pandas DataFrame with 'user' and 'item' columns."
        ) from None
    if not isinstance(converted, pd.DataFrame):
        raise TypeError(
            f"{name} is a {kind}, whose to_pandas() gives a {type(converted).__name__}, not a "
            "DataFrame; pass a table with 'user' and 'item' columns."
        )
    return converted


def as_id_array(values, name="ids"):
    """A 1-D array of raw ids from one id or an array-like of ids, each id kept as given.

    A list mixing ints and strings stays an object array (no id is turned into a string); a
    list of ints becomes int64 (uint64 above 2**63). Ids are checked with :func:`check_id_values`.

    Parameters
    ----------
    values : id or array-like of ids
        One id (an int or a str), or a list, tuple, array, Series, Index (or a polars or Arrow
        column) of them.
    name : str, default="ids"
        Name used in error messages.

    Returns
    -------
    ndarray of shape (n,)

    Raises
    ------
    TypeError
        If ``values`` is None, a dict, or holds an unhashable id (a list, a dict).
    ValueError
        If it is not 1-D, or mixes ids that differ only in type (``0`` and ``"0"``).
    """
    if values is None:
        raise TypeError(f"{name} must be an id or an array-like of ids; got None.")
    if isinstance(values, Mapping):
        raise TypeError(
            f"{name} must be an id or an array-like of ids; got a {type(values).__name__}. Pass "
            f"list({name}) for its keys or list({name}.values()) for its values."
        )
    if np.isscalar(values):
        values = [values]
    if isinstance(values, (pd.Series, pd.Index)):
        ids = values.to_numpy()
    elif isinstance(values, np.ndarray):
        ids = values
    elif callable(getattr(values, "to_numpy", None)) and not isinstance(values, (list, tuple)):
        ids = np.asarray(values.to_numpy())          # a polars Series, an Arrow array
    else:
        try:
            values = list(values)
        except TypeError:
            raise TypeError(
                f"{name} must be an id or an array-like of ids; got {type(values).__name__}."
            ) from None
        ids = _clean_id_column(np.fromiter(values, dtype=object, count=len(values)))
        if ids.dtype == object and len(ids) and infer_dtype(ids, skipna=False) == "floating":
            ids = ids.astype(np.float64)
    if ids.ndim == 0:
        ids = ids.reshape(1)
    if ids.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one id per entry); got shape {ids.shape}. Pass a flat list, "
            f"for example np.ravel({name})."
        )
    check_id_values(ids, name)
    return ids


def check_id_values(ids, name, *, fix=None):
    """Refuse unhashable ids and ids that differ only in type (``0`` and ``"0"``).

    Ids are compared by value: the int ``0`` and the string ``"0"`` are two different ids, so a
    column holding both would silently count one user (or item) twice. Only object columns that
    mix types are inspected, so typed columns cost nothing.

    Parameters
    ----------
    ids : ndarray of shape (n,)
    name : str
        What the ids are, for error messages ("X's user column").
    fix : str, default=None
        The conversion to suggest; None suggests converting every id to one type.

    Raises
    ------
    TypeError
        If an id is unhashable (a list, a dict, a set).
    ValueError
        If two distinct ids have the same string form, or a bool is among ids of other types
        (``True`` is the same key as ``1``: two entities would become one).
    """
    ids = np.asarray(ids)
    if ids.dtype != object or len(ids) == 0:
        return
    kind = infer_dtype(ids, skipna=True)
    if not kind.startswith("mixed"):
        return
    for position, value in enumerate(ids):
        try:
            hash(value)
        except TypeError:
            raise TypeError(
                f"{name} holds an unhashable id at position {position}: {value!r} "
                f"({type(value).__name__}). Ids must be ints or strings (one id per entry): "
                "flatten or convert that entry."
            ) from None
        if isinstance(value, (bool, np.bool_)):
            raise ValueError(
                f"{name} holds the bool {bool(value)!r} at position {position} among ids of other "
                f"types; {bool(value)!r} is the same key as {int(value)}, so two entities would "
                "become one. Ids must be ints or strings: map the bools to ids of the column's type "
                "first."
            )
    clash = _type_clashes(ids)
    if clash:
        fix = fix or "convert every id to one type first, e.g. ids.astype(str)"
        raise ValueError(
            f"{name} has ids that differ only in type, e.g. {_show(clash)}; they are different "
            f"ids, so one entity would be counted twice. Give every id the same type: {fix}."
        )


def check_same_id_types(ids, other, name, other_name, *, fix):
    """Refuse two id sets meant to name the same entities when their types disagree.

    Raises a ValueError when an id of ``ids`` and one of ``other`` differ only in type
    (``0`` and ``"0"``), or when the two sets have different types (ints and strings) and share
    no id at all: both mean the ids will never match.
    """
    a, b = pd.unique(np.asarray(ids)), pd.unique(np.asarray(other))
    kind_a, kind_b = _id_kind(a), _id_kind(b)
    if kind_a == kind_b and kind_a != "mixed":
        return
    both = np.concatenate([a.astype(object), b.astype(object)])
    clash = _type_clashes(both)
    if clash:
        raise ValueError(
            f"{name} and {other_name} differ in type: {_show(clash)} are different ids, so "
            f"they never match. Give both the same type: {fix}."
        )
    if "mixed" not in (kind_a, kind_b) and len(a) and len(b) and not pd.Index(b).isin(a).any():
        raise ValueError(
            f"{name} are {kind_a}s (e.g. {a[:3].tolist()}) but {other_name} are {kind_b}s (e.g. "
            f"{b[:3].tolist()}): no id matches. Give both the same ids, of the same type: {fix}."
        )


def type_mismatch_hint(unknown, known):
    """A sentence naming the unknown ids that stand for a known id of another type, or ``""``.

    ``"0"`` stands for the known int ``0``, ``0`` for the known string ``"0"``. The cost grows
    with the number of unknown ids looked at (1000 at most), not with ``known``.

    Parameters
    ----------
    unknown : array-like
        Ids that were not found.
    known : pandas.Index or array-like
        The ids they were looked up in (pass the Index at hand: its hash table is reused).
    """
    index = known if isinstance(known, pd.Index) else pd.Index(np.asarray(known))
    unknown = pd.unique(np.asarray(unknown))[:1000]
    if len(unknown) == 0 or len(index) == 0:
        return ""
    if _id_kind(unknown) == _index_kind(index) != "mixed":     # one type on both sides: no clash
        return ""
    pairs = []
    for value in unknown:
        for match in _spellings(value):
            if match in index:
                pairs.append((value, match))
                break
        if len(pairs) == 3:
            break
    if not pairs:
        return ""
    shown = ", ".join(f"{_plain(v)!r} ({type(v).__name__}) for {_plain(m)!r} ({type(m).__name__})"
                      for v, m in pairs)
    return f" They differ from the fitted ids in type only: {shown}; pass ids of the type used in fit."


def _spellings(value):
    """The ids of another type that ``value`` may stand for (``"7"`` -> 7 and 7.0; 7 -> ``"7"``)."""
    if isinstance(value, str):
        out = []
        for cast in (int, float):
            try:
                out.append(cast(value))
            except ValueError:
                pass
        return out
    if isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, (bool, np.bool_)):
        return [str(_plain(value))]
    return []


def _index_kind(index):
    """:func:`_id_kind` of a pandas Index, from its cached inferred type."""
    if index.dtype.kind in "iuf":
        return "number"
    kind = index.inferred_type
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "number"
    return "string" if kind == "string" else "mixed"


def _id_kind(ids):
    """'number', 'string' or 'mixed': the kind of a 1-D array of ids."""
    ids = np.asarray(ids)
    if ids.dtype.kind in "iuf":
        return "number"
    if ids.dtype.kind == "U":
        return "string"
    kind = infer_dtype(ids, skipna=True)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal", "empty"):
        return "number"
    if kind == "string":
        return "string"
    return "mixed"


def _type_clashes(ids):
    """Groups (up to three) of distinct ids of ``ids`` with the same string form."""
    unique = pd.unique(np.asarray(ids, dtype=object))
    forms = pd.Series([str(v) for v in unique])
    repeated = forms.duplicated(keep=False).to_numpy()
    if not repeated.any():
        return []
    groups = pd.Series(unique[repeated]).groupby(forms[repeated].to_numpy(), sort=False)
    return [list(group) for _, group in list(groups)[:3]]


def _show(clash):
    return "; ".join(" and ".join(f"{_plain(v)!r} ({type(v).__name__})" for v in group) for group in clash)


def _plain(value):
    """A numpy scalar as the Python value it holds (for messages: 0, not np.int64(0))."""
    return value.item() if isinstance(value, np.generic) else value


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
