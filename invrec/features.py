"""Item content features: modality name -> (n_items, d_m) matrix, with the item id of every row.

:class:`ItemFeatures` is the one way item content enters invrec. A missing modality of an item is a
row of NaN in that modality's matrix; :attr:`ItemFeatures.availability` is the resulting mask. Every
operation returns a new object: the arrays inside are read-only, so nothing is changed in place.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .utils.params import check_bool
from .utils.validation import _clean_id_column, as_id_array, check_fraction, check_rng

__all__ = ["ItemFeatures", "NoReferenceContentError"]


class NoReferenceContentError(ValueError):
    """A modality that none of the reference items has: its mean, the fill of its missing rows,
    does not exist (:meth:`ItemFeatures.fill_values`).

    Attributes
    ----------
    modality : str
        The modality.
    """

    def __init__(self, message, modality):
        super().__init__(message)
        self.modality = modality


class ItemFeatures:
    """Pre-extracted item content, one float matrix per modality, rows aligned by item id.

    Parameters
    ----------
    features : dict of str to array-like or DataFrame
        Modality name -> matrix of shape ``(n_items, d_m)``. Either every value is an array whose
        rows follow ``item_ids``, or every value is a DataFrame indexed by item id (all with the
        same set of ids, in any order; the first one's order is kept). A row of NaN marks the
        modality as missing for that item.
    item_ids : array-like of shape (n_items,), default=None
        Raw ids (ints or strings) of the rows, with arrays only. None means ``0..n_items-1``
        (the MMRec and DiffMM convention: row ``i`` is item ``i``).
    dtype : numpy dtype, default=np.float32
        Storage type of the matrices.

    ItemFeatures has no ``len()`` on purpose: scikit-learn's model selection slices every fit
    parameter whose length equals the number of rows of ``X``, which would cut the catalog. Use
    :attr:`n_items`.

    Attributes
    ----------
    modalities : tuple of str
        Modality names, in the order given.
    item_ids : ndarray of shape (n_items,)
        Raw id of each row.
    dims : dict of str to int
        Width ``d_m`` of each modality.
    availability : ndarray of bool of shape (n_items, n_modalities)
        True where the item has that modality (its row is not NaN).

    Raises
    ------
    ValueError
        If a matrix is not 2-D, holds inf, or has rows that are partly NaN; if ids are duplicated,
        missing, or do not match the number of rows; if DataFrames cover different item sets.
    TypeError
        If a matrix is not numeric, or arrays and DataFrames are mixed.

    Examples
    --------
    >>> import numpy as np
    >>> from invrec import ItemFeatures
    >>> feats = ItemFeatures({"visual": np.ones((3, 2)), "text": [[1.0], [np.nan], [0.0]]},
    ...                      item_ids=["a", "b", "c"])
    >>> feats
    ItemFeatures(n_items=3, modalities={'visual': 2, 'text': 1}, missing={'text': 1})
    >>> feats.availability.tolist()
    [[True, True], [True, False], [True, True]]
    >>> feats.reindex(["c", "a"]).item_ids.tolist()
    ['c', 'a']
    """

    def __init__(self, features, item_ids=None, *, dtype=np.float32):
        if not isinstance(features, Mapping) or len(features) == 0:
            raise TypeError(
                "features must be a non-empty dict of modality name -> (n_items, d) matrix; "
                f"got {type(features).__name__}."
            )
        names = list(features)
        bad = [n for n in names if not isinstance(n, str) or not n]
        if bad:
            raise TypeError(f"modality names must be non-empty strings; got {bad!r}.")
        frames = [isinstance(v, pd.DataFrame) for v in features.values()]
        if all(frames):
            if item_ids is not None:
                raise ValueError(
                    "item_ids is taken from the DataFrames' index; pass item_ids only with arrays."
                )
            item_ids, matrices = _align_frames(features)
        elif any(frames):
            raise TypeError(
                "features mixes DataFrames and arrays; give every modality as a DataFrame indexed "
                "by item id, or every modality as an array with item_ids."
            )
        else:
            matrices = dict(features)
        if item_ids is None:
            shape = np.shape(matrices[names[0]])
            item_ids = np.arange(shape[0] if shape else 0)
        self._item_ids = _check_item_ids(item_ids)
        self._data = {
            name: _check_matrix(matrices[name], name, len(self._item_ids), dtype) for name in names
        }
        self._index = pd.Index(self._item_ids)

    # ------------------------------------------------------------------ basic views
    @property
    def modalities(self):
        return tuple(self._data)

    @property
    def item_ids(self):
        return self._item_ids

    @property
    def n_items(self):
        return len(self._item_ids)

    @property
    def n_modalities(self):
        return len(self._data)

    @property
    def dims(self):
        return {name: m.shape[1] for name, m in self._data.items()}

    @property
    def availability(self):
        if self.n_items == 0:
            return np.zeros((0, self.n_modalities), dtype=bool)
        return np.column_stack([~np.isnan(m[:, 0]) for m in self._data.values()])

    def __iter__(self):
        return iter(self._data)

    def __contains__(self, name):
        return name in self._data

    def __getitem__(self, name):
        """Read-only matrix of one modality."""
        try:
            return self._data[name]
        except KeyError:
            raise KeyError(f"no modality {name!r}; the modalities are {list(self._data)}.") from None

    def items(self):
        """Pairs (modality name, read-only matrix)."""
        return self._data.items()

    def __repr__(self):
        missing = {n: int(c) for n, c in zip(self.modalities, (~self.availability).sum(0)) if c}
        tail = f", missing={missing}" if missing else ""
        return f"ItemFeatures(n_items={self.n_items}, modalities={self.dims}{tail})"

    def _new(self, data, item_ids):
        """Build a sibling from already-validated arrays (skips re-validation)."""
        out = object.__new__(ItemFeatures)
        out._item_ids = item_ids
        out._data = {}
        for name, m in data.items():
            m = np.ascontiguousarray(m)
            m.setflags(write=False)
            out._data[name] = m
        out._index = pd.Index(item_ids)
        return out

    # ------------------------------------------------------------------ selection
    def index_of(self, item_ids):
        """Row positions of ``item_ids``.

        Raises
        ------
        KeyError
            If an id is not in this object, naming up to five of the unknown ids.
        """
        if isinstance(item_ids, np.ndarray):
            query = _clean_id_column(item_ids.ravel())
        else:                                   # a list mixing ints and strings keeps both
            query = as_id_array(item_ids, "item_ids")
        pos = self._index.get_indexer(query)
        unknown = pos < 0
        if unknown.any():
            shown = pd.unique(query[unknown])[:5].tolist()
            raise KeyError(
                f"{int(unknown.sum())} item id(s) have no features, e.g. {shown}. Pass features "
                "for every item, or use reindex(..., unknown='missing') to mark them as missing."
            )
        return pos

    def reindex(self, item_ids, *, unknown="raise"):
        """Rows for ``item_ids``, in that order (a subset, a reordering, or a superset).

        Parameters
        ----------
        item_ids : array-like of shape (n,)
            The ids wanted. Duplicates are not allowed.
        unknown : {"raise", "missing"}, default="raise"
            What to do with ids that have no row: raise a ``KeyError``, or give them NaN rows in
            every modality (all modalities missing).

        Returns
        -------
        ItemFeatures
        """
        ids = _check_item_ids(item_ids)
        if unknown == "raise":
            pos = self.index_of(ids)
            return self._new({n: m[pos] for n, m in self._data.items()}, ids)
        if unknown != "missing":
            raise ValueError(f"unknown must be 'raise' or 'missing'; got {unknown!r}.")
        pos = self._index.get_indexer(ids)
        known = pos >= 0
        data = {}
        for name, m in self._data.items():
            out = np.full((len(ids), m.shape[1]), np.nan, dtype=m.dtype)
            out[known] = m[pos[known]]
            data[name] = out
        return self._new(data, ids)

    def select_modalities(self, modalities):
        """Keep only the named modalities, in the order given."""
        names = [modalities] if isinstance(modalities, str) else list(modalities)
        for name in names:
            self[name]
        return self._new({n: self._data[n] for n in names}, self._item_ids)

    # ------------------------------------------------------------------ transforms
    def normalize(self):
        """L2-normalise each row of each modality (zero and missing rows are left as they are).

        Rows whose squared norm would overflow or underflow the storage type (values near 1e19
        and above, or 1e-19 and below, in float32) are divided by their largest absolute value
        first, in float64, so they still come out at unit length instead of keeping their huge
        values (which overflow in training: NaN models) or their tiny ones.

        Examples
        --------
        >>> import numpy as np
        >>> big = ItemFeatures({"v": np.array([[3e37, 4e37], [0.0, 0.0]], dtype=np.float32)})
        >>> big.normalize()["v"].tolist()
        [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
        """
        data = {}
        for name, m in self._data.items():
            with np.errstate(over="ignore", under="ignore"):
                norms = np.linalg.norm(m, axis=1, keepdims=True)
            # The norm is exact enough unless the squares left the range of m's type.
            fine = np.isfinite(norms) & (norms >= np.sqrt(np.finfo(norms.dtype).tiny))
            out = m / np.where(fine, norms, 1.0)
            redo = ~fine[:, 0] & ~np.isnan(m).all(axis=1)       # missing rows stay NaN
            if redo.any():
                wide = m[redo].astype(np.float64)
                scale = np.abs(wide).max(axis=1, keepdims=True)
                wide = wide / np.where(scale > 0, scale, 1.0)  # values in [-1, 1]: no overflow
                length = np.linalg.norm(wide, axis=1, keepdims=True)
                out[redo] = wide / np.where(length > 0, length, 1.0)
            data[name] = out.astype(m.dtype, copy=False)
        return self._new(data, self._item_ids)

    def fill_missing(self, strategy="mean", *, reference_items=None, values=None):
        """Replace missing rows, so that every item has every modality.

        Parameters
        ----------
        strategy : {"mean", "zero"}, default="mean"
            "mean": the mean of the available rows of that modality over ``reference_items``
            (the MILK inference rule); "zero": zeros.
        reference_items : array-like, default=None
            Ids whose available rows define the mean, typically the training items. None uses
            every item.
        values : dict of str to array-like, default=None
            Fill vectors per modality, as returned by :meth:`fill_values` (overrides
            ``strategy`` and ``reference_items``).

        Returns
        -------
        ItemFeatures
            A copy without NaN. Read :attr:`availability` *before* filling if the mask matters.
        """
        values = values if values is not None else self.fill_values(strategy, reference_items=reference_items)
        avail = self.availability
        data = {}
        for j, (name, m) in enumerate(self._data.items()):
            missing = ~avail[:, j]
            if not missing.any():
                data[name] = m
                continue
            fill = np.asarray(values[name], dtype=m.dtype).ravel()
            if fill.shape != (m.shape[1],) or not np.isfinite(fill).all():
                raise ValueError(
                    f"values[{name!r}] must be {m.shape[1]} finite numbers; got shape {fill.shape}."
                )
            out = m.copy()
            out[missing] = fill
            data[name] = out
        return self._new(data, self._item_ids)

    def fill_values(self, strategy="mean", *, reference_items=None):
        """The vectors :meth:`fill_missing` puts in missing rows, one per modality.

        Keep them to fill items that arrive later (new items at inference) exactly as the
        training items were filled.

        Parameters
        ----------
        strategy : {"mean", "zero"}, default="mean"
        reference_items : array-like, default=None
            As in :meth:`fill_missing`.

        Returns
        -------
        dict of str to ndarray of shape (d_m,)
        """
        if strategy not in ("mean", "zero"):
            raise ValueError(f"strategy must be 'mean' or 'zero'; got {strategy!r}.")
        ref = slice(None) if reference_items is None else self.index_of(reference_items)
        avail = self.availability
        values = {}
        for j, (name, m) in enumerate(self._data.items()):
            if strategy == "zero":
                values[name] = np.zeros(m.shape[1], dtype=m.dtype)
                continue
            rows = m[ref][avail[ref, j]]
            if len(rows) == 0:
                raise NoReferenceContentError(
                    f"cannot mean-fill modality {name!r}: no reference item has it. Use "
                    "strategy='zero' or widen reference_items.", name)
            values[name] = rows.mean(axis=0, dtype=np.float64).astype(m.dtype)
        return values

    def with_missing(self, fraction, *, n_missing=1, items=None, random_state=None, modalities=None,
                     weights=None):
        """Knock out modalities of randomly chosen items (missing-modality protocols).

        ``floor(fraction * len(items))`` items are drawn without replacement; each loses
        ``n_missing`` of its available modalities, chosen uniformly at random. Every item keeps at
        least one modality.

        Parameters
        ----------
        fraction : float in (0, 1]
            Share of ``items`` that lose modalities.
        n_missing : int or sequence of int, default=1
            How many modalities each chosen item loses. A sequence splits the chosen items into
            equal groups (``numpy.array_split`` sizes), one per value: ``fraction=0.9,
            n_missing=(1, 2)`` is the TikTok protocol of MILK (10% complete, 45% lose one, 45%
            lose two).
        items : array-like, default=None
            Ids eligible to lose modalities (the test new items for FTMT, the training items for
            the training half of MTMT). None means every item.
        random_state : int, Generator or None, default=None
            Seed; an int makes the draw reproducible.
        modalities : str or sequence of str, default=None
            Structured missingness: only these modalities can be lost (None: any). One name
            with ``fraction=1`` takes that modality from every item of ``items``; ``n_missing``
            equal to their number makes them go missing together.
        weights : array-like of shape (len(items),), default=None
            Structured missingness: items are drawn with probability proportional to these
            non-negative weights (without replacement), aligned with ``items`` (with the
            catalog's ``item_ids`` when ``items`` is None), for example the items' popularity
            or its inverse. None draws uniformly.

        Returns
        -------
        ItemFeatures

        Raises
        ------
        ValueError
            If a chosen item has too few available modalities to lose ``n_missing`` and keep one
            (of ``modalities``, when given), or fewer items than drawn have a positive weight.

        Examples
        --------
        FTMT: half of the test new items lose one random modality.

        >>> import numpy as np
        >>> from invrec import ItemFeatures
        >>> feats = ItemFeatures({"text": np.ones((10, 4)), "audio": np.ones((10, 3))})
        >>> ftmt = feats.with_missing(0.5, items=np.arange(5, 10), random_state=0)
        >>> int((~ftmt.availability).sum()), bool(ftmt.availability[:5].all())
        (2, True)

        Every item of 5-9 loses its audio (one modality missing for every new item):

        >>> no_audio = feats.with_missing(1.0, items=np.arange(5, 10), modalities="audio")
        >>> no_audio.availability[4:].tolist()
        [[True, True], [True, False], [True, False], [True, False], [True, False], [True, False]]
        """
        fraction = check_fraction(fraction, "fraction", allow_one=True)
        counts = np.atleast_1d(np.asarray(n_missing))
        if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.integer) or (counts < 1).any():
            raise ValueError(f"n_missing must be a positive int or a sequence of them; got {n_missing!r}.")
        rng = check_rng(random_state)
        allowed = np.ones(self.n_modalities, dtype=bool)
        if modalities is not None:
            names = [modalities] if isinstance(modalities, str) else list(modalities)
            absent = [name for name in names if name not in self._data]
            if absent or not names:
                raise ValueError(f"modalities must name some of {self.modalities}; got {modalities!r}.")
            allowed = np.isin(np.asarray(self.modalities, dtype=object), names)
        if weights is None:
            pool = np.arange(self.n_items) if items is None else self.index_of(np.unique(np.asarray(items)))
            chosen = rng.permutation(pool)[: int(np.floor(fraction * len(pool)))]
        else:
            ids = np.asarray(self._item_ids if items is None else items)
            w = np.asarray(weights, dtype=float)
            if w.shape != ids.shape or not (np.isfinite(w) & (w >= 0)).all():
                raise ValueError(f"weights must be {len(ids)} non-negative finite values, one per item; "
                                 f"got shape {w.shape}.")
            unique, first = np.unique(ids, return_index=True)
            if len(unique) != len(ids):
                raise ValueError("with weights, items must not repeat an id.")
            n_draw = int(np.floor(fraction * len(ids)))
            if (w > 0).sum() < n_draw:
                raise ValueError(f"{n_draw} items are drawn but only {int((w > 0).sum())} have a positive weight.")
            pool = self.index_of(unique)
            picked = rng.choice(len(pool), size=n_draw, replace=False, p=w[first] / w.sum()) if n_draw else []
            chosen = pool[np.asarray(picked, dtype=int)]
        lose = np.concatenate([np.full(len(g), c) for g, c in
                               zip(np.array_split(np.arange(len(chosen)), len(counts)), counts)])
        avail = self.availability
        n_avail = avail[chosen].sum(1)
        short = (lose >= n_avail) | (lose > (avail[chosen] & allowed).sum(1))
        if short.any():
            raise ValueError(
                f"{int(short.sum())} chosen item(s) have too few available modalities to lose "
                f"{int(lose[short].max())} and keep one (the object has {self.n_modalities} "
                "modalities). Lower n_missing or restrict items."
            )
        keys = rng.random((len(chosen), self.n_modalities))
        keys[~avail[chosen]] = np.inf
        keys[:, ~allowed] = np.inf
        order = np.argsort(np.argsort(keys, axis=1), axis=1)
        knock = np.zeros_like(avail)
        knock[chosen] = order < lose[:, None]
        data = {}
        for j, (name, m) in enumerate(self._data.items()):
            if knock[:, j].any():
                m = m.copy()
                m[knock[:, j]] = np.nan
            data[name] = m
        return self._new(data, self._item_ids)

    # ------------------------------------------------------------------ export
    def concat(self):
        """One matrix with the modalities side by side.

        Returns
        -------
        matrix : ndarray of shape (n_items, sum of dims)
        slices : dict of str to slice
            The columns of each modality in ``matrix``.
        """
        slices, start = {}, 0
        for name, d in self.dims.items():
            slices[name] = slice(start, start + d)
            start += d
        return np.concatenate(list(self._data.values()), axis=1), slices

    def to_tensor(self, device="cpu", *, dtype=None, concat=True):
        """The features as torch tensors on ``device``.

        Parameters
        ----------
        device : str or torch.device, default="cpu"
        dtype : torch.dtype, default=None
            None keeps float32.
        concat : bool, default=True
            True: one ``(n_items, sum of dims)`` tensor (see :meth:`concat`); False: a dict of
            one tensor per modality.
        """
        import torch

        dtype = torch.float32 if dtype is None else dtype
        if check_bool(concat, "concat"):
            return torch.as_tensor(self.concat()[0], dtype=dtype, device=device)
        return {n: torch.as_tensor(np.array(m), dtype=dtype, device=device) for n, m in self._data.items()}

    def to_frames(self):
        """A dict of one DataFrame per modality, indexed by item id."""
        return {n: pd.DataFrame(m, index=pd.Index(self._item_ids, name="item")) for n, m in self._data.items()}

    def __getstate__(self):
        return {"item_ids": self._item_ids, "data": self._data}

    def __setstate__(self, state):
        fresh = self._new(state["data"], state["item_ids"])
        self.__dict__.update(fresh.__dict__)


def _check_item_ids(item_ids):
    """Ids as a read-only 1-D array, each as given: a list mixing ints and strings is not turned
    into strings, and ids that differ only in type (``0`` and ``"0"``) are refused."""
    if isinstance(item_ids, np.ndarray) and item_ids.ndim != 1:
        raise ValueError(f"item_ids must be 1-D; got shape {item_ids.shape}.")
    ids = as_id_array(item_ids, "item_ids")
    if pd.isna(ids).any():
        raise ValueError("item_ids contains missing values (NaN/None); every row needs an id.")
    index = pd.Index(ids)
    if index.has_duplicates:
        dup = list(index[index.duplicated()].unique()[:5])
        raise ValueError(f"item_ids has duplicates, e.g. {dup}; each item must have one row.")
    ids = ids.copy()
    ids.setflags(write=False)
    return ids


def _check_matrix(values, name, n_items, dtype):
    arr = np.asarray(values)
    if arr.ndim != 2:
        hint = " Reshape a single feature with x.reshape(-1, 1)." if arr.ndim == 1 else ""
        raise ValueError(f"modality {name!r} must be a 2-D (n_items, d) matrix; got shape {arr.shape}.{hint}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"modality {name!r} must be numeric; got dtype {arr.dtype}.")
    if arr.shape[0] != n_items:
        raise ValueError(
            f"modality {name!r} has {arr.shape[0]} rows but there are {n_items} item ids; each "
            "row must belong to one item."
        )
    if arr.shape[1] == 0:
        raise ValueError(f"modality {name!r} has no columns.")
    arr = arr.astype(np.float64 if arr.dtype == np.float16 else arr.dtype, copy=False)
    if np.isinf(arr).any():
        raise ValueError(f"modality {name!r} holds inf; replace it (missing rows are all-NaN rows).")
    nan = np.isnan(arr)
    partial = nan.any(1) & ~nan.all(1)
    if partial.any():
        raise ValueError(
            f"modality {name!r} has {int(partial.sum())} row(s) that are partly NaN (first at row "
            f"{int(np.argmax(partial))}); a missing modality is a whole NaN row. Impute the "
            "single values, or set the whole row to NaN."
        )
    # C order always, as every derived ItemFeatures (_new): row reductions such as normalize()'s
    # norms sum in a layout-dependent order, so a Fortran-ordered copy would round differently.
    out = np.array(arr, dtype=dtype, order="C", copy=True)
    if np.isinf(out).any():
        raise ValueError(f"modality {name!r} overflows {np.dtype(dtype).name}; rescale it.")
    out.setflags(write=False)
    return out


def _align_frames(frames):
    names = list(frames)
    first = frames[names[0]]
    ids = first.index
    if ids.has_duplicates:
        raise ValueError(f"modality {names[0]!r} has duplicate item ids in its index.")
    matrices = {}
    for name in names:
        frame = frames[name]
        if frame.index.has_duplicates:
            raise ValueError(f"modality {name!r} has duplicate item ids in its index.")
        if len(frame.index) != len(ids) or not frame.index.isin(ids).all():
            extra = frame.index.difference(ids)[:5].tolist()
            lacking = ids.difference(frame.index)[:5].tolist()
            raise ValueError(
                f"modalities {names[0]!r} and {name!r} cover different item sets (only in "
                f"{name!r}: {extra}; only in {names[0]!r}: {lacking}). Reindex every frame to the "
                "same ids, with NaN rows for missing modalities: frame.reindex(all_ids)."
            )
        matrices[name] = frame.loc[ids].to_numpy()
    return ids.to_numpy(), matrices
