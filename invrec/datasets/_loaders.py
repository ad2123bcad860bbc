"""Readers for public multimedia recommendation datasets kept on the user's disk.

Every loader reads files from a folder the caller names and downloads nothing. Each returns a
:class:`sklearn.utils.Bunch` with the same fields as the synthetic generator:

``interactions``
    DataFrame of the training interactions, with integer ``user`` and ``item`` columns plus
    ``rating`` and ``timestamp`` where the format stores them.
``validation``, ``test``
    DataFrames with the same columns, or None when the format (or the chosen split) has none.
``item_features``
    :class:`~invrec.features.ItemFeatures`, or None for a dataset without feature files.
``name``, ``DESCR``
    Short name of the dataset and a text describing what was read.

Three on-disk layouts are understood: MMRec (:func:`load_mmrec`), DiffMM/MMSSL
(:func:`load_diffmm`) and the raw GroupLens MovieLens-100K release
(:func:`load_movielens_100k`). Named wrappers document well-known datasets stored in them.

Safety and integrity: the DiffMM ``.pkl`` matrices are read by a restricted unpickler that admits
only the scipy.sparse matrix types and the numpy pieces they are made of, so a crafted pickle
is refused and runs nothing. The named wrappers know the published sizes of their datasets and,
with ``verify=True`` (the default), refuse a copy whose split sizes differ (a file cut short, for
example), naming the counts expected.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils import Bunch

from ..features import ItemFeatures
from ..persistence import RestrictedUnpickler, UnsafePickleError, sparse_matrix_allowlist
from ..utils.params import InvalidParameterError, check_bool
from ..utils.validation import ITEM, USER

__all__ = [
    "load_mmrec",
    "load_diffmm",
    "load_movielens_100k",
    "load_tiktok",
    "load_lastfm_2k_mm",
    "load_amazon_baby",
]

RATING = "rating"
TIMESTAMP = "timestamp"

_MMREC_EXPECTS = (
    "one '<name>.inter' tab-separated file with a header holding 'userID', 'itemID' and "
    "'x_label' (0 train, 1 validation, 2 test), plus one '.npy' feature matrix per modality "
    "whose row i belongs to itemID i"
)
_DIFFMM_FILES = {"train": "trnMat.pkl", "validation": "valMat.pkl", "test": "tstMat.pkl"}
_DIFFMM_EXPECTS = (
    "'trnMat.pkl', 'valMat.pkl' and 'tstMat.pkl' (pickled scipy.sparse users x items matrices) "
    "and optionally '<modality>_feat.npy' feature matrices whose row i belongs to item i"
)
_ML100K_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
_ML100K_EXPECTS = (
    "the GroupLens MovieLens-100K files: 'u.item' ('|'-separated movie table), 'u.data' "
    "(all ratings) and the '<split>.base'/'<split>.test' files of the chosen split"
)
_ML100K_GENRES = 19
_SPLIT_LABELS = {0: "train", 1: "validation", 2: "test"}

#: Published sizes of the named datasets, checked with ``verify=True``: interactions per split
#: (train, validation, test) and the catalog (``(n_users, n_items)`` of the DiffMM matrices, or
#: the number of items).
_PUBLISHED = {
    "lastfm-2k-mm": {"splits": (44_327, 4_799, 7_219), "items": 1_425},
    "tiktok": {"splits": (59_541, 3_051, 6_130), "shape": (9_308, 6_710)},
    "amazon-baby": {"splits": (118_551, 21_682, 20_559), "shape": (19_445, 7_050)},
}
#: MovieLens-100K: ratings of each GroupLens file and the number of movies of ``u.item``.
_ML100K_ROWS = {"u.data": 100_000, **{f"u{k}.base": 80_000 for k in range(1, 6)},
                **{f"u{k}.test": 20_000 for k in range(1, 6)}, "ua.base": 90_570, "ua.test": 9_430,
                "ub.base": 90_570, "ub.test": 9_430}
_ML100K_ITEMS = 1_682


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _check_folder(path, loader, expects):
    """Return ``path`` as a :class:`~pathlib.Path` to an existing folder.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or is not a folder.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{loader}: path must be a str or os.PathLike; got {type(path).__name__}.")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"{loader}: {folder} {what}; it should be a folder holding {expects}.")
    return folder


def _require_files(folder, names, loader, expects):
    """Return the paths of ``names`` inside ``folder``; raise naming every missing one."""
    paths = [folder / name for name in names]
    missing = [str(p.name) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{loader}: {folder} lacks the file(s) {missing}; this format expects {expects}."
        )
    return paths


def _cut_mid_line(file):
    """Whether a non-empty text file lacks its final newline, as a file cut mid-line does."""
    try:
        with open(file, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) not in (b"\n", b"\r")
    except (OSError, TypeError):
        return False


def _truncation_hint(file):
    """A sentence to append to a parse error when ``file`` looks cut mid-line, else ``""``."""
    if _cut_mid_line(file):
        return (" The file does not end with a line break, so it looks truncated (cut mid-line): "
                "copy it again from its source.")
    return ""


def _integer_column(frame, column, file):
    """Return ``frame[column]`` as int64, raising if it holds missing or non-integer values."""
    values = frame[column]
    if not pd.api.types.is_integer_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise ValueError(
            f"{file}: column '{column}' must hold integers without missing values; "
            f"it was read as {values.dtype}.{_truncation_hint(file)}"
        )
    return values.to_numpy(dtype=np.int64)


def _check_published(counts, expected, source, loader):
    """Raise unless the split sizes ``counts`` are the published ``expected`` ones.

    Parameters
    ----------
    counts, expected : tuple of int
        (train, validation, test) interactions read and published.
    source : str or Path
        What was read, for the message.
    loader : str
        The loader's name, for the message.
    """
    if tuple(counts) == tuple(expected):
        return
    shown = " / ".join(f"{n:,}" for n in counts)
    published = " / ".join(f"{n:,}" for n in expected)
    looks = "looks truncated" if sum(counts) < sum(expected) else "differs from the published release"
    raise ValueError(
        f"{loader}: {source} {looks}: it holds {shown} train / validation / test interactions, "
        f"but the published dataset has {published}. Copy the files again from their source, or pass "
        "verify=False to read a modified copy."
    )


def _check_published_size(what, got, expected, source, loader):
    """Raise unless a catalog size read (``got``) is the published ``expected`` one."""
    if got == expected:
        return
    looks = "looks truncated" if np.prod(got) < np.prod(expected) else "differs from the published release"
    raise ValueError(
        f"{loader}: {source} {looks}: it has {_count(got)} {what}, but the published dataset has "
        f"{_count(expected)}. Copy the files again from their source, or pass verify=False to read a "
        "modified copy."
    )


def _count(value):
    """``44,327`` for an int, ``9,308 x 6,710`` for a shape."""
    return " x ".join(f"{n:,}" for n in value) if isinstance(value, tuple) else f"{value:,}"


def _split_counts(splits):
    return tuple(0 if splits.get(label) is None else len(splits[label]) for label in ("train", "validation", "test"))


def _check_non_negative(values, column, file):
    """Raise if an id column holds negative values."""
    if values.size and values.min() < 0:
        raise ValueError(f"{file}: column '{column}' holds negative ids (minimum {values.min()}).")


def _check_disjoint(splits, source):
    """Raise if one (user, item) pair occurs in two of the named splits.

    Parameters
    ----------
    splits : dict of str -> DataFrame or None
        Split name to its interactions; None entries are skipped.
    source : str
        What the splits were read from, for the error message.
    """
    parts = [
        frame[[USER, ITEM]].assign(_split=label)
        for label, frame in splits.items()
        if frame is not None and len(frame)
    ]
    if len(parts) < 2:
        return
    pairs = pd.concat(parts, ignore_index=True).drop_duplicates()
    clash = pairs.duplicated(subset=[USER, ITEM], keep=False).to_numpy()
    if clash.any():
        shared = pairs.loc[clash]
        first = shared.iloc[0]
        present = set(shared["_split"])
        involved = [label for label in splits if label in present]
        n_pairs = shared[[USER, ITEM]].drop_duplicates().shape[0]
        raise ValueError(
            f"{source}: the splits {involved} must not overlap, but {n_pairs} (user, item) pair(s) "
            f"occur in more than one, for example user {first[USER]}, item {first[ITEM]}."
        )


def _read_table(file, description, **kwargs):
    """Read a delimited text file with pandas, naming ``file`` in any parse error."""
    try:
        return pd.read_csv(file, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file}: could not be read as {description}: {exc}{_truncation_hint(file)}") from exc


def _feature_name(stem):
    """Modality name of a feature file stem: ``image_feat`` -> ``image``."""
    return stem[: -len("_feat")] if stem.endswith("_feat") and len(stem) > len("_feat") else stem


def _discover_features(folder, pattern):
    """Map modality names to the feature files in ``folder`` matching ``pattern``.

    Names are the file stems with a trailing ``_feat`` removed; two files giving the same name
    are an error.
    """
    found = {}
    for file in sorted(folder.glob(pattern)):
        if not file.is_file():
            continue
        modality = _feature_name(file.stem)
        if modality in found:
            raise ValueError(
                f"{folder}: the files {found[modality].name!r} and {file.name!r} both give the "
                f"modality {modality!r}; pass features={{name: file}} to choose."
            )
        found[modality] = file
    return found


def _chosen_features(folder, features, loader, expects):
    """Resolve a user's ``{modality: file name}`` mapping to existing paths."""
    if not isinstance(features, Mapping):
        raise TypeError(
            f"{loader}: features must be None or a dict of modality name -> file name; "
            f"got {type(features).__name__}."
        )
    bad = [k for k, v in features.items() if not isinstance(k, str) or not isinstance(v, (str, os.PathLike))]
    if bad:
        raise TypeError(f"{loader}: features must map str modality names to file names; bad entries {bad}.")
    names = list(features)
    paths = _require_files(folder, [features[name] for name in names], loader, expects)
    return dict(zip(names, paths))


def _load_feature_matrix(file):
    """Load one ``.npy`` feature matrix as float32, checking it is a numeric 2-D array."""
    try:
        matrix = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{file}: could not be read as a numeric .npy array: {exc}") from exc
    if not isinstance(matrix, np.ndarray) or matrix.ndim != 2:
        shape = getattr(matrix, "shape", None)
        raise ValueError(f"{file}: a feature file must hold a 2-D (n_items, dim) array; got shape {shape}.")
    if not (np.issubdtype(matrix.dtype, np.integer) or np.issubdtype(matrix.dtype, np.floating)):
        raise ValueError(f"{file}: a feature file must hold real numbers; got dtype {matrix.dtype}.")
    # Cast first: float16 sums overflow to inf, so no arithmetic happens before this line.
    return matrix.astype(np.float32)


def _load_features(files):
    """Load every modality file and check they agree on the number of rows.

    Parameters
    ----------
    files : dict of str -> Path
        Modality name to its ``.npy`` file.

    Returns
    -------
    matrices : dict of str -> ndarray of float32
    n_rows : int or None
        The shared number of rows, None when ``files`` is empty.
    """
    matrices = {name: _load_feature_matrix(file) for name, file in files.items()}
    rows = {files[name].name: m.shape[0] for name, m in matrices.items()}
    if len(set(rows.values())) > 1:
        raise ValueError(
            f"the feature files must have one row per item, but their row counts differ: {rows}."
        )
    n_rows = next(iter(rows.values())) if rows else None
    return matrices, n_rows


def _make_item_features(matrices, item_ids, files):
    """Wrap ``matrices`` (rows aligned with ``item_ids``) in ItemFeatures, or None when empty.

    ``files`` maps each modality to its file, named in the error when a matrix is rejected (for
    example for holding inf or partly-NaN rows).
    """
    if not matrices:
        return None
    try:
        return ItemFeatures(matrices, item_ids=item_ids)
    except (ValueError, TypeError) as exc:
        names = {name: Path(file).name for name, file in files.items()}
        raise ValueError(f"invalid item features read from {names}: {exc}") from exc


def _describe(title, folder, splits, n_users, n_items, item_features, extra=""):
    """Build the ``DESCR`` text of a loaded dataset."""
    counts = " / ".join(
        f"{label} {len(frame):,}" for label, frame in splits.items() if frame is not None
    )
    if item_features is None:
        feats = "none"
    else:
        feats = ", ".join(f"{name} ({item_features.dims[name]}-d)" for name in item_features.modalities)
    lines = [
        f"{title}",
        f"Read from {folder}.",
        f"{n_users:,} users x {n_items:,} items; interactions: {counts}.",
        f"Item features: {feats}.",
    ]
    if extra:
        lines.append(extra)
    return "\n".join(lines)


def _bunch(interactions, validation, test, item_features, name, descr, **extra):
    """Assemble the Bunch every loader returns."""
    return Bunch(
        interactions=interactions,
        validation=validation,
        test=test,
        item_features=item_features,
        name=name,
        DESCR=descr,
        **extra,
    )


def _n_distinct(splits, column):
    """Number of distinct ids of ``column`` over all non-empty splits."""
    values = [frame[column].to_numpy() for frame in splits.values() if frame is not None]
    return int(np.unique(np.concatenate(values)).size) if values else 0


# --------------------------------------------------------------------------------------------
# MMRec layout
# --------------------------------------------------------------------------------------------


def _find_inter_file(folder, name, loader):
    """Return the ``.inter`` file to read: ``<name>.inter`` or the only one in ``folder``."""
    if name is not None:
        return _require_files(folder, [f"{name}.inter"], loader, _MMREC_EXPECTS)[0]
    candidates = sorted(p for p in folder.glob("*.inter") if p.is_file())
    if not candidates:
        raise FileNotFoundError(
            f"{loader}: {folder} holds no '.inter' file; the MMRec layout expects {_MMREC_EXPECTS}."
        )
    if len(candidates) > 1:
        stems = [p.stem for p in candidates]
        raise ValueError(
            f"{loader}: {folder} holds several '.inter' files {[p.name for p in candidates]}; "
            f"pass name= one of {stems} to choose."
        )
    return candidates[0]


def _read_mmrec_inter(file):
    """Read an MMRec ``.inter`` file into train/validation/test DataFrames.

    Returns
    -------
    splits : dict
        ``{"train": DataFrame, "validation": DataFrame or None, "test": DataFrame or None}``.
    """
    table = _read_table(file, "an MMRec tab-separated .inter file", sep="\t")
    required = ["userID", "itemID", "x_label"]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(
            f"{file}: the header lacks the column(s) {missing}; an MMRec .inter file needs "
            f"{required} (optional 'rating', 'timestamp'); found {list(map(str, table.columns))}."
        )
    users = _integer_column(table, "userID", file)
    items = _integer_column(table, "itemID", file)
    labels = _integer_column(table, "x_label", file)
    _check_non_negative(users, "userID", file)
    _check_non_negative(items, "itemID", file)
    unknown = np.setdiff1d(np.unique(labels), list(_SPLIT_LABELS))
    if unknown.size:
        raise ValueError(
            f"{file}: x_label must be 0 (train), 1 (validation) or 2 (test); found {unknown.tolist()}."
        )
    frame = pd.DataFrame({USER: users, ITEM: items})
    for column in (RATING, TIMESTAMP):
        if column in table.columns:
            frame[column] = table[column].to_numpy()
    splits = {}
    for code, label in _SPLIT_LABELS.items():
        part = frame.loc[labels == code].reset_index(drop=True)
        splits[label] = part if len(part) or code == 0 else None
    if len(splits["train"]) == 0:
        raise ValueError(f"{file}: no training interactions (no row has x_label 0).")
    return splits


def _load_mmrec(path, *, name, features, loader, title, dataset_name=None, published=None):
    """Read the MMRec layout; shared by :func:`load_mmrec` and its wrappers.

    ``published`` (``{"splits": (train, validation, test), "items": n}``) is checked when given.
    """
    folder = _check_folder(path, loader, _MMREC_EXPECTS)
    inter = _find_inter_file(folder, name, loader)
    if features is None:
        files = _discover_features(folder, "*.npy")
    else:
        files = _chosen_features(folder, features, loader, _MMREC_EXPECTS)
    splits = _read_mmrec_inter(inter)
    if published is not None:
        _check_published(_split_counts(splits), published["splits"], inter, loader)
    _check_disjoint(splits, inter)
    matrices, n_rows = _load_features(files)
    if published is not None and n_rows is not None:
        _check_published_size("feature rows (items)", n_rows, published["items"],
                              [p.name for p in files.values()], loader)
    if n_rows is not None:
        top = max(int(frame[ITEM].max()) for frame in splits.values() if frame is not None)
        if top >= n_rows:
            raise ValueError(
                f"{inter}: itemID {top} has no feature row; the feature files "
                f"{[p.name for p in files.values()]} have {n_rows} rows (row i is itemID i)."
            )
    item_features = _make_item_features(matrices, np.arange(n_rows or 0), files)
    n_items = n_rows if n_rows is not None else _n_distinct(splits, ITEM)
    file_names = [p.name for p in files.values()] or "none"
    descr = _describe(
        title, folder, splits, _n_distinct(splits, USER), n_items, item_features,
        extra=f"Interactions file: {inter.name}; feature files: {file_names}.",
    )
    return _bunch(
        splits["train"], splits["validation"], splits["test"], item_features,
        dataset_name or inter.stem, descr,
    )


def load_mmrec(path, *, name=None, features=None):
    """Load a dataset stored in the MMRec layout.

    The folder holds one ``<name>.inter`` tab-separated file whose header names at least
    ``userID``, ``itemID`` and ``x_label`` (0 train, 1 validation, 2 test); optional ``rating``
    and ``timestamp`` columns are kept. Each modality is one ``.npy`` matrix whose row ``i``
    holds the features of ``itemID`` ``i``.

    Parameters
    ----------
    path : str or os.PathLike
        The dataset folder.
    name : str, default=None
        Stem of the ``.inter`` file to read (``"baby"`` reads ``baby.inter``). None reads the
        only ``.inter`` file in the folder.
    features : dict of str -> str, default=None
        Modality name to feature file name, to choose and rename modalities, for example
        ``{"text": "all-MiniLM-L6-v2.npy", "audio": "vggish.npy"}``. None takes every ``*.npy``
        in the folder, named by its stem without a trailing ``_feat``
        (``image_feat.npy`` -> ``"image"``). An empty dict reads no features.

    Returns
    -------
    data : Bunch
        ``interactions``, ``validation`` and ``test`` DataFrames (``user``, ``item`` and
        ``rating``/``timestamp`` when present; a split with no rows is None), ``item_features``
        (:class:`~invrec.features.ItemFeatures` with item ids ``0..n_rows-1``, or None when no
        feature file is read), ``name`` (the ``.inter`` stem) and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If the folder, the ``.inter`` file or a chosen feature file is missing.
    ValueError
        If several ``.inter`` files exist and ``name`` is None, if the header lacks a required
        column, if x_label holds other codes, if a (user, item) pair occurs in two splits, if
        the feature files disagree on their row count, or if an itemID has no feature row.

    Examples
    --------
    >>> data = load_mmrec("data/baby", name="baby")  # doctest: +SKIP
    >>> data.item_features.modalities  # doctest: +SKIP
    ('image', 'text')
    """
    return _load_mmrec(
        path, name=name, features=features, loader="load_mmrec", title="Dataset in the MMRec layout."
    )


# --------------------------------------------------------------------------------------------
# DiffMM / MMSSL layout
# --------------------------------------------------------------------------------------------


def _refuse_global(file):
    """The error for a matrix pickle that names a global outside the sparse-matrix allowlist."""
    def refuse(module, name):
        return UnsafePickleError(
            f"{file}: refused to unpickle: the file names {module}.{name}, which is not part of a "
            "scipy.sparse matrix (a DiffMM interaction matrix pickle holds only scipy.sparse and numpy "
            "objects). Nothing from the file was run. It may have been crafted to run code: do not "
            "load it with pickle unless you made it yourself."
        )

    return refuse


def _unpickle_matrix(file):
    """Read ``file`` with the restricted unpickler of scipy.sparse matrices."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old pickles name scipy.sparse.coo
        try:
            with open(file, "rb") as handle:
                return RestrictedUnpickler(handle, sparse_matrix_allowlist(), refuse=_refuse_global(file)).load()
        except UnsafePickleError:
            raise
        except EOFError as exc:
            raise ValueError(f"{file}: the pickle ends early, so the file looks truncated: copy it again "
                             f"from its source ({exc or 'no data'}).") from exc
        except Exception as exc:  # noqa: BLE001 - only allowlisted objects were built; any failure is damage
            hint = " The file looks truncated: copy it again from its source." if "truncated" in str(exc) else ""
            raise ValueError(f"{file}: could not be unpickled as a scipy.sparse matrix "
                             f"({type(exc).__name__}: {exc}).{hint}") from exc


def _read_sparse_pickle(file):
    """Unpickle a users x items scipy.sparse matrix and return it in canonical COO form.

    The restricted unpickler admits only scipy.sparse types and numpy arrays. Duplicate entries
    are merged and stored zeros dropped, so every remaining entry is one interaction.
    """
    matrix = _unpickle_matrix(file)
    if not sp.issparse(matrix) or matrix.ndim != 2:
        raise ValueError(
            f"{file}: expected a pickled 2-D scipy.sparse users x items matrix; got {type(matrix).__name__}."
        )
    if matrix.dtype.kind not in "biuf":
        raise ValueError(f"{file}: the matrix must hold real numbers; got dtype {matrix.dtype}.")
    coo = sp.coo_matrix(matrix).tocsr().tocoo()
    coo.eliminate_zeros()
    return coo


def _check_verify(verify, loader):
    """``verify`` as a bool (:func:`~invrec.utils.params.check_bool`), the loader named in the error."""
    try:
        return check_bool(verify, "verify")
    except InvalidParameterError:
        raise InvalidParameterError(
            f"{loader}: verify must be True or False; got {verify!r} (a string such as 'no' or a number "
            "is not read as a bool).") from None


def _coo_to_frame(matrix):
    """Interactions of a users x items COO matrix: user = row, item = column."""
    return pd.DataFrame({USER: matrix.row.astype(np.int64), ITEM: matrix.col.astype(np.int64)})


def _load_diffmm(path, *, features, loader, title, dataset_name=None, optional=None, published=None):
    """Read the DiffMM layout; shared by :func:`load_diffmm` and its wrappers.

    ``optional`` maps further modality names to files read only when present; ``published``
    (``{"splits": (train, validation, test), "shape": (n_users, n_items)}``) is checked when given.
    """
    folder = _check_folder(path, loader, _DIFFMM_EXPECTS)
    files = _require_files(folder, list(_DIFFMM_FILES.values()), loader, _DIFFMM_EXPECTS)
    if features is None:
        feature_files = _discover_features(folder, "*_feat.npy")
    else:
        feature_files = _chosen_features(folder, features, loader, _DIFFMM_EXPECTS)
    for modality, file in (optional or {}).items():
        if (folder / file).is_file():
            feature_files[modality] = folder / file
    matrices = {label: _read_sparse_pickle(file) for label, file in zip(_DIFFMM_FILES, files)}
    shapes = {_DIFFMM_FILES[label]: m.shape for label, m in matrices.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(
            f"{folder}: the three interaction matrices must share one users x items shape; "
            f"got {shapes}."
        )
    n_users, n_items = matrices["train"].shape
    splits = {label: _coo_to_frame(m) for label, m in matrices.items()}
    if published is not None:
        _check_published_size("users x items", (n_users, n_items), tuple(published["shape"]), folder, loader)
        _check_published(_split_counts(splits), published["splits"], folder, loader)
    if len(splits["train"]) == 0:
        raise ValueError(f"{files[0]}: the training matrix holds no interactions.")
    _check_disjoint({_DIFFMM_FILES[label]: frame for label, frame in splits.items()}, folder)
    arrays, n_rows = _load_features(feature_files)
    if n_rows is not None and n_rows != n_items:
        raise ValueError(
            f"{folder}: the feature files {[p.name for p in feature_files.values()]} have {n_rows} rows, "
            f"but the interaction matrices have {n_items} item columns; row i must be item i."
        )
    item_features = _make_item_features(arrays, np.arange(n_items), feature_files)
    descr = _describe(
        title, folder, splits, n_users, n_items, item_features,
        extra=f"Matrix shape {n_users} x {n_items}; users are rows, items are columns.",
    )
    return _bunch(
        splits["train"], splits["validation"], splits["test"], item_features,
        dataset_name or folder.name, descr,
    )


def load_diffmm(path, *, features=None):
    """Load a dataset stored in the DiffMM/MMSSL layout.

    The folder holds ``trnMat.pkl``, ``valMat.pkl`` and ``tstMat.pkl``: pickled
    :mod:`scipy.sparse` matrices of shape (n_users, n_items) whose non-zero entries are the
    interactions of each split; user ids are row indices and item ids column indices. Optional
    ``<modality>_feat.npy`` files hold item features, row ``i`` for item ``i``.

    The matrices are pickles, read by a restricted unpickler that admits only the scipy.sparse
    matrix types and the numpy arrays inside them: a pickle naming anything else (``os.system``,
    ``builtins.eval``, ...) is refused with :class:`invrec.persistence.UnsafePickleError` and
    nothing from it runs.

    Parameters
    ----------
    path : str or os.PathLike
        The dataset folder.
    features : dict of str -> str, default=None
        Modality name to feature file name, to choose and rename modalities, for example
        ``{"visual": "image_feat.npy"}``. None takes every ``*_feat.npy`` in the folder, named
        by the part before ``_feat`` (``audio_feat.npy`` -> ``"audio"``). An empty dict reads no
        features.

    Returns
    -------
    data : Bunch
        ``interactions``, ``validation`` and ``test`` DataFrames with ``user`` and ``item``
        columns (the matrix values, all 1 in the published files, are not kept; stored zeros are
        dropped and duplicate entries merged), ``item_features``
        (:class:`~invrec.features.ItemFeatures` with item ids ``0..n_items-1``, or None when the
        folder has no feature file), ``name`` (the folder name) and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If the folder, one of the three matrices or a chosen feature file is missing.
    ValueError
        If a pickle does not hold a 2-D sparse matrix, is truncated or damaged, the matrices
        differ in shape, the splits share a (user, item) pair, or the feature row count differs
        from the number of items.
    UnsafePickleError
        If a pickle names a global that is not part of a scipy.sparse matrix (a ValueError).
    """
    return _load_diffmm(
        path, features=features, loader="load_diffmm", title="Dataset in the DiffMM/MMSSL layout."
    )


# --------------------------------------------------------------------------------------------
# MovieLens-100K (raw GroupLens release)
# --------------------------------------------------------------------------------------------


def _read_ml_ratings(file):
    """Read a headerless tab-separated ``user item rating timestamp`` file of MovieLens-100K."""
    table = _read_table(file, "MovieLens tab-separated ratings", sep="\t", header=None)
    if table.shape[1] != 4:
        raise ValueError(
            f"{file}: expected 4 tab-separated columns (user, item, rating, timestamp); "
            f"found {table.shape[1]}."
        )
    columns = [USER, ITEM, RATING, TIMESTAMP]
    table.columns = columns
    frame = pd.DataFrame({c: _integer_column(table, c, file) for c in columns})
    if len(frame) == 0:
        raise ValueError(f"{file}: holds no ratings.")
    return frame


def _read_ml_items(file):
    """Read ``u.item`` into (item ids, titles Series, genre multi-hot float32 matrix)."""
    n_columns = 5 + _ML100K_GENRES
    table = _read_table(
        file, "the '|'-separated MovieLens movie table", sep="|", header=None,
        encoding="latin-1", quoting=csv.QUOTE_NONE, keep_default_na=False,
    )
    if table.shape[1] != n_columns:
        raise ValueError(
            f"{file}: expected {n_columns} '|'-separated columns (id, title, release date, video "
            f"release date, URL and {_ML100K_GENRES} genre flags); found {table.shape[1]}."
        )
    table.columns = range(n_columns)
    ids = _integer_column(table, 0, file)
    if np.unique(ids).size != ids.size:
        raise ValueError(f"{file}: movie ids must be unique.")
    flags = table.iloc[:, 5:]
    if not all(pd.api.types.is_integer_dtype(flags[c]) for c in flags.columns):
        raise ValueError(f"{file}: the {_ML100K_GENRES} genre flags must be integers 0 or 1.")
    genre = flags.to_numpy(dtype=np.int64)
    if not np.isin(genre, (0, 1)).all():
        raise ValueError(f"{file}: the {_ML100K_GENRES} genre flags must be 0 or 1.")
    titles = pd.Series(table[1].to_numpy(), index=pd.Index(ids, name=ITEM), name="title")
    return ids, titles, genre.astype(np.float32)


def _check_known_items(frame, ids, file, item_file):
    """Raise if ``frame`` rates a movie that ``u.item`` does not list."""
    unknown = np.setdiff1d(frame[ITEM].to_numpy(), ids)
    if unknown.size:
        raise ValueError(f"{file}: item id(s) {unknown[:5].tolist()} are not listed in {item_file.name}.")


def load_movielens_100k(path, *, split="u1", verify=True):
    """Load MovieLens-100K from the raw GroupLens folder (``ml-100k``).

    943 users rated 1,682 movies 100,000 times (ratings 1-5, unix timestamps,
    1997-09 to 1998-04). The only item content in the release is a 19-genre multi-hot vector
    and the title, both from ``u.item``. GroupLens forbids redistribution: the files must be
    obtained from https://grouplens.org/datasets/movielens/100k/ by the user.

    Parameters
    ----------
    path : str or os.PathLike
        The ``ml-100k`` folder.
    split : {"u1", "u2", "u3", "u4", "u5", "ua", "ub"} or None, default="u1"
        The GroupLens split to read: training rows from ``<split>.base``, test rows from
        ``<split>.test`` (u1-u5 are the 80/20 folds, ua/ub hold out 10 ratings per user). None
        puts all of ``u.data`` in ``interactions`` and sets ``test`` to None.
    verify : bool, default=True
        Check the row counts against the GroupLens release (100,000 ratings in ``u.data``,
        80,000 / 20,000 in ``u1``-``u5``, 90,570 / 9,430 in ``ua``/``ub``, 1,682 movies) and
        raise when they differ, as they do for a file cut short. False reads a modified copy.

    Returns
    -------
    data : Bunch
        ``interactions`` and ``test`` DataFrames with ``user``, ``item`` (raw GroupLens ids,
        from 1), ``rating`` and ``timestamp``; ``validation`` None; ``item_features``
        (:class:`~invrec.features.ItemFeatures` with one modality ``"genre"``, a (1682, 19)
        float32 multi-hot matrix, item ids = movie ids); ``item_titles`` (Series of titles
        indexed by movie id); ``name`` ``"movielens-100k"`` and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If the folder or a needed file is missing.
    ValueError
        If ``split`` is unknown, a file has the wrong columns, a rated movie is not in
        ``u.item``, the base and test files share a (user, item) pair, or (with ``verify=True``)
        a file's row count is not the published one.
    """
    loader = "load_movielens_100k"
    if split is not None and split not in _ML100K_SPLITS:
        raise ValueError(f"{loader}: split must be one of {list(_ML100K_SPLITS)} or None; got {split!r}.")
    verify = _check_verify(verify, loader)
    folder = _check_folder(path, loader, _ML100K_EXPECTS)
    rating_names = ["u.data"] if split is None else [f"{split}.base", f"{split}.test"]
    item_file, *rating_files = _require_files(folder, ["u.item", *rating_names], loader, _ML100K_EXPECTS)
    ids, titles, genre = _read_ml_items(item_file)
    frames = [_read_ml_ratings(file) for file in rating_files]
    if verify:
        _check_published_size("movies", ids.size, _ML100K_ITEMS, item_file, loader)
        for frame, file in zip(frames, rating_files):
            _check_published_size("ratings", len(frame), _ML100K_ROWS[file.name], file, loader)
    for frame, file in zip(frames, rating_files):
        _check_known_items(frame, ids, file, item_file)
    splits = {"train": frames[0], "test": frames[1] if split is not None else None}
    _check_disjoint(splits, f"{folder}: {split}.base and {split}.test" if split else folder / "u.data")
    item_features = _make_item_features({"genre": genre}, ids, {"genre": item_file})
    descr = _describe(
        "MovieLens-100K (GroupLens raw release).", folder, splits, _n_distinct(splits, USER),
        ids.size, item_features,
        extra=f"Split: {split or 'none (all of u.data)'}; ratings 1-5 with unix timestamps.",
    )
    return _bunch(
        splits["train"], None, splits["test"], item_features, "movielens-100k", descr, item_titles=titles
    )


# --------------------------------------------------------------------------------------------
# Named datasets
# --------------------------------------------------------------------------------------------


def load_tiktok(path, *, verify=True):
    """Load the TikTok micro-video dataset as preprocessed for MMSSL/DiffMM.

    The DiffMM release (``Datasets/tiktok`` in https://github.com/HKUDS/DiffMM) has 9,308
    users x 6,710 items with 59,541 / 3,051 / 6,130 train / validation / test interactions
    (each validation and test user has exactly one). Item features: ``image_feat.npy``
    (128-d, modality ``"visual"``) and ``audio_feat.npy`` (128-d, ``"acoustic"``), stored as
    float16 and returned as float32; ``text_feat.npy`` (768-d, ``"textual"``) is added when
    present. Research use only; the repository states no licence.

    The interaction matrices are pickles, read as in :func:`load_diffmm` by a restricted
    unpickler that runs no code from them.

    Parameters
    ----------
    path : str or os.PathLike
        The ``tiktok`` folder.
    verify : bool, default=True
        Check the split sizes (and catalog size) against the published ones above and raise
        when they differ, as they do for a file cut short. False reads a modified copy.

    Returns
    -------
    data : Bunch
        As :func:`load_diffmm`, with modalities ``"visual"``, ``"acoustic"`` (and
        ``"textual"``) and ``name`` ``"tiktok"``.

    Raises
    ------
    FileNotFoundError
        If the folder, a matrix, ``image_feat.npy`` or ``audio_feat.npy`` is missing.
    ValueError
        As :func:`load_diffmm`, and with ``verify=True`` if the matrices are not 9,308 x 6,710
        with 59,541 / 3,051 / 6,130 interactions.
    """
    return _load_diffmm(
        path,
        features={"visual": "image_feat.npy", "acoustic": "audio_feat.npy"},
        optional={"textual": "text_feat.npy"},
        loader="load_tiktok",
        title="TikTok micro-videos (MMSSL/DiffMM preprocessing).",
        dataset_name="tiktok",
        published=_PUBLISHED["tiktok"] if _check_verify(verify, "load_tiktok") else None,
    )


def load_lastfm_2k_mm(path, *, audio="vggish", verify=True):
    """Load Last.fm-2K (HetRec 2011) extended with multimodal artist features, MMRec layout.

    From the resource of "See the Movie, Hear the Song, Read the Book" (Spillo et al.,
    https://github.com/giuspillo/extending_sota_data_mm_feat, ``4_mmrec/data/lfm2k``):
    ``lfm2k.inter`` holds 56,345 user-artist interactions of 1,858 users and 1,425 artists,
    split 44,327 / 4,799 / 7,219. Modalities: ``"text"`` (artist tags encoded with
    all-MiniLM-L6-v2, 384-d) and ``"audio"`` (VGGish, 128-d, or Whisper, 512-d, averaged over
    the artist's songs). ``lfm2k_og_ids.inter`` (the original HetRec ids) is not read.
    Non-commercial research use only.

    Parameters
    ----------
    path : str or os.PathLike
        The ``lfm2k`` folder.
    audio : {"vggish", "whisper"}, default="vggish"
        Which audio encoder's features to read as the ``"audio"`` modality.
    verify : bool, default=True
        Check the split sizes (and catalog size) against the published ones above and raise
        when they differ, as they do for a file cut short. False reads a modified copy.

    Returns
    -------
    data : Bunch
        As :func:`load_mmrec`, with modalities ``"text"`` and ``"audio"`` and ``name``
        ``"lastfm-2k-mm"``.

    Raises
    ------
    FileNotFoundError
        If the folder, ``lfm2k.inter`` or a feature file is missing.
    ValueError
        If ``audio`` is unknown, or as :func:`load_mmrec`, and with ``verify=True`` if
        ``lfm2k.inter`` does not hold 44,327 / 4,799 / 7,219 interactions or the feature files
        do not have 1,425 rows (a truncated file, for example).
    """
    encoders = ("vggish", "whisper")
    if audio not in encoders:
        raise ValueError(f"load_lastfm_2k_mm: audio must be one of {list(encoders)}; got {audio!r}.")
    return _load_mmrec(
        path,
        name="lfm2k",
        features={"text": "all-MiniLM-L6-v2.npy", "audio": f"{audio}.npy"},
        loader="load_lastfm_2k_mm",
        title=f"Last.fm-2K with multimodal artist features (text: all-MiniLM-L6-v2, audio: {audio}).",
        dataset_name="lastfm-2k-mm",
        published=_PUBLISHED["lastfm-2k-mm"] if _check_verify(verify, "load_lastfm_2k_mm") else None,
    )


def load_amazon_baby(path, *, verify=True):
    """Load Amazon Baby (5-core, as in MMRec/LATTICE) from its DiffMM copy.

    19,445 users x 7,050 items with 118,551 / 21,682 / 20,559 train / validation / test
    interactions (160,792 in all, MMRec's ``baby``). The DiffMM repository ships no feature
    files for it, so ``item_features`` is None unless ``*_feat.npy`` files (row i = item i)
    were added to the folder. Amazon review data (McAuley lab): research use only.

    The interaction matrices are pickles, read as in :func:`load_diffmm` by a restricted
    unpickler that runs no code from them.

    Parameters
    ----------
    path : str or os.PathLike
        The ``baby`` folder.
    verify : bool, default=True
        Check the split sizes (and catalog size) against the published ones above and raise
        when they differ, as they do for a file cut short. False reads a modified copy.

    Returns
    -------
    data : Bunch
        As :func:`load_diffmm`, with ``name`` ``"amazon-baby"``.

    Raises
    ------
    FileNotFoundError
        If the folder or one of the three matrices is missing.
    ValueError
        As :func:`load_diffmm`.
    """
    return _load_diffmm(
        path, features=None, loader="load_amazon_baby",
        title="Amazon Baby, 5-core (MMRec split, DiffMM copy).", dataset_name="amazon-baby",
        published=_PUBLISHED["amazon-baby"] if _check_verify(verify, "load_amazon_baby") else None,
    )
