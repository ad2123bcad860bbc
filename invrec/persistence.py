"""Save and load fitted estimators in a file format that cannot run code when it is read.

:func:`save` writes a zip archive:

``manifest.json``
    The format name and version, the invrec (and numpy, pandas, scipy, torch) versions that wrote
    it, the estimator's class path, its constructor parameters as JSON, and the size and SHA-256
    checksum of every other member.
``arrays/<n>.npy``
    Every numeric numpy array and torch tensor the estimator holds, one ``.npy`` file each
    (read with ``allow_pickle=False``).
``payload.pkl``
    The rest of the object graph (the estimator's attributes, its torch modules without their
    tensors, the id arrays of strings) as a pickle whose arrays point to the ``.npy`` members.

:func:`load` checks the manifest and every checksum before it builds anything, then reads the
payload with a restricted unpickler: only an explicit list of types (invrec's estimators and their
parts, a few torch, numpy, scipy.sparse and pandas types and rebuild functions, plain containers)
may be named by the pickle; any other global, such as ``os.system`` or ``builtins.eval``, is
refused before it is looked up, so nothing in the file runs. ``load(path, trusted=True)`` lifts
that restriction for a file you trust and also reads plain joblib/pickle files (the format of
``invrec fit`` before this module); that runs code from the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import secrets
import warnings
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["save", "load", "read_manifest", "ModelFileError", "UnsafePickleError", "UnsafeModelFileError",
           "RestrictedUnpickler", "model_allowlist", "sparse_matrix_allowlist"]

#: Name of the format, stored in every manifest.
FORMAT = "invrec-model"
#: Version of the format this module writes; it reads every version up to this one.
FORMAT_VERSION = 1

_MANIFEST = "manifest.json"
_PAYLOAD = "payload.pkl"
_ARRAYS = "arrays/"
_PROTOCOL = 5
_CHUNK = 1 << 20
_MAX_MANIFEST = 64 << 20
#: numpy dtype kinds stored as ``.npy`` members (object and variable-width string arrays stay in
#: the payload, read by the restricted unpickler).
_NPY_KINDS = frozenset("biufcmMUSV")


# ------------------------------------------------------------------------------ errors
class ModelFileError(ValueError):
    """A file that is not an intact invrec model file: damaged, truncated, of an unknown format
    version, or holding something other than an invrec estimator."""


class UnsafePickleError(ValueError):
    """A pickle names a global outside the restricted unpickler's allowlist; nothing was run."""


class UnsafeModelFileError(UnsafePickleError, ModelFileError):
    """A model file whose payload names a global outside the allowlist of :func:`load`."""


# ------------------------------------------------------------------------------ allowlists
def _import_first(*modules):
    """The first of ``modules`` that imports (numpy 1 and 2 name their core differently)."""
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in modules:
            try:
                return importlib.import_module(name)
            except ImportError:
                continue
    raise ImportError(f"none of the modules {modules} imports")


def _key(obj):
    """``(module, qualified name)``: how pickle names a class or function."""
    return obj.__module__, obj.__qualname__


def _add(table, objects, aliases=()):
    """Admit ``objects`` under their own names and under every ``(module, name)`` in ``aliases``."""
    for obj in objects:
        table[_key(obj)] = obj
    for module, name, obj in aliases:
        table[module, name] = obj


def _numpy_globals():
    multiarray = _import_first("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = _import_first("numpy._core.numeric", "numpy.core.numeric")
    table = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        table[f"{core}.multiarray", "_reconstruct"] = multiarray._reconstruct
        table[f"{core}.multiarray", "scalar"] = multiarray.scalar
        table[f"{core}.numeric", "_frombuffer"] = numeric._frombuffer
    return table


def _random_state_globals():
    """What a ``numpy.random.RandomState`` (a valid ``random_state``) pickles to."""
    from numpy.random import MT19937, _pickle

    return {
        ("numpy.random._pickle", "__randomstate_ctor"): _pickle.__randomstate_ctor,
        ("numpy.random._pickle", "__bit_generator_ctor"): _pickle.__bit_generator_ctor,
        ("numpy.random._mt19937", "MT19937"): MT19937,
    }


#: The scipy.sparse matrix and array types (every format).
_SPARSE_NAMES = tuple(f"{fmt}_{kind}" for fmt in ("coo", "csr", "csc", "bsr", "dia", "dok", "lil")
                      for kind in ("matrix", "array"))


def _sparse_globals():
    """The scipy.sparse types under their current, private and former module names."""
    import scipy.sparse as sp

    table = {}
    for name in _SPARSE_NAMES:
        cls = getattr(sp, name, None)
        if cls is None:
            continue
        fmt = name.split("_")[0]
        for module in (cls.__module__, "scipy.sparse", f"scipy.sparse._{fmt}", f"scipy.sparse.{fmt}",
                       "scipy.sparse._arrays"):
            table[module, name] = cls
    return table


def sparse_matrix_allowlist():
    """The globals a pickled scipy.sparse matrix may name: the sparse types and numpy's pieces.

    Used by the dataset loaders to read the DiffMM ``*.pkl`` interaction matrices.

    Returns
    -------
    allowlist : dict of (str, str) -> object
        ``(module, name)`` as written in a pickle -> the object it stands for.
    """
    import copyreg

    table = {**_numpy_globals(), **_sparse_globals()}
    # dok_matrix is a dict subclass: pickled through copyreg's rebuild of a dict subclass.
    table["copyreg", "_reconstructor"] = copyreg._reconstructor
    table["builtins", "dict"] = dict
    return table


def _torch_globals():
    import torch

    table = {}
    _add(table, (torch.nn.Linear, torch.nn.ModuleList, torch.Size))
    table["torch", "device"] = torch.device
    for name, dtype in _torch_dtypes().items():
        table["torch", name] = dtype
    return table


def _torch_dtypes():
    """``torch.float32`` and the other dtypes by name, read from the module's own namespace (no
    lazy submodule import is triggered by a name read from a file)."""
    import torch

    return {name: obj for name, obj in vars(torch).items() if isinstance(obj, torch.dtype)}


def _pandas_globals():
    import pandas as pd
    from pandas._libs.internals import _unpickle_block
    from pandas.core.indexes.base import _new_Index
    from pandas.core.internals.managers import BlockManager, SingleBlockManager

    table = {("pandas", "NA"): pd.NA}
    _add(table, (pd.DataFrame, pd.Series, pd.Index, pd.RangeIndex, pd.StringDtype, pd.array,
                 _unpickle_block, _new_Index, BlockManager, SingleBlockManager))
    for obj in (pd.DataFrame, pd.Series, pd.Index, pd.RangeIndex, pd.StringDtype):
        table["pandas", obj.__name__] = obj
    return table


def _invrec_types():
    """invrec's estimators (every one :func:`~invrec.utils.discovery.all_estimators` finds) and
    the types their fitted attributes and parameters hold. Types only: no function."""
    from .features import ItemFeatures
    from .invariance import (AttentionFusion, EnvironmentInference, EnvironmentModels, FusedItemModel,
                             FusedObjective, Fusion, MaskLearning, StochasticGateMask)
    from .multimodal import CrossModalImputer, MultimodalContentModel
    from .nn import RatingHead, RatingScale, UltraGCNModel
    from .utils.discovery import all_estimators

    parts = (ItemFeatures, EnvironmentModels, FusedItemModel, AttentionFusion, Fusion, StochasticGateMask,
             FusedObjective, EnvironmentInference, MaskLearning, MultimodalContentModel, CrossModalImputer,
             UltraGCNModel, RatingHead, RatingScale)
    table = {}
    _add(table, (*parts, *(cls for _, cls in all_estimators())))
    return table


def _safe_builtins():
    import collections

    table = {}
    _add(table, (collections.OrderedDict,))
    for kind in (slice, complex, range, set, frozenset, bytearray):
        table["builtins", kind.__name__] = kind
    return table


_MODEL_ALLOWLIST = None


def model_allowlist():
    """The globals :func:`load` lets a model payload name (built once, then cached).

    Returns
    -------
    allowlist : dict of (str, str) -> object
        ``(module, name)`` as written in a pickle -> the object it stands for.
    """
    global _MODEL_ALLOWLIST
    if _MODEL_ALLOWLIST is None:
        _MODEL_ALLOWLIST = {
            **_safe_builtins(), **_numpy_globals(), **_random_state_globals(), **_sparse_globals(),
            **_pandas_globals(), **_torch_globals(), **_invrec_types(),
        }
    return _MODEL_ALLOWLIST


# ------------------------------------------------------------------------------ unpicklers
class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of an allowlist.

    Every global a pickle names (``GLOBAL``, ``STACK_GLOBAL``, ``INST``, ``OBJ`` and extension
    codes all go through :meth:`find_class`) is looked up in ``allowlist``; any other name raises
    before a module is imported or an object looked up, so a crafted pickle cannot reach
    ``os.system``, ``builtins.eval`` or any other callable.

    Parameters
    ----------
    file : binary file
        The pickle stream.
    allowlist : dict of (str, str) -> object
        ``(module, name)`` -> the object that name stands for.
    refuse : callable, default=None
        ``refuse(module, name)`` returns the exception to raise for a refused global; None raises
        :class:`UnsafePickleError`.
    arrays : callable, default=None
        ``arrays(pid)`` resolves a persistent id (the ``.npy`` members of a model file); None
        refuses every persistent id.
    """

    def __init__(self, file, allowlist, *, refuse=None, arrays=None):
        super().__init__(file)
        self._allowlist = allowlist
        self._refuse = refuse
        self._arrays = arrays

    def find_class(self, module, name):
        try:
            return self._allowlist[module, name]
        except (KeyError, TypeError):
            pass
        if self._refuse is not None:
            raise self._refuse(module, name)
        raise UnsafePickleError(f"the pickle names {module}.{name}, which is not in the allowlist; nothing was run.")

    def persistent_load(self, pid):
        if self._arrays is None:
            raise pickle.UnpicklingError("the pickle holds a persistent id, which this reader does not accept.")
        return self._arrays(pid)


class _TrustedUnpickler(pickle.Unpickler):
    """Plain unpickling (any global) of a model payload, for ``load(..., trusted=True)``."""

    def __init__(self, file, arrays):
        super().__init__(file)
        self._arrays = arrays

    def persistent_load(self, pid):
        return self._arrays(pid)


class _Anything:
    """Stands for every global while :func:`_named_globals` walks a payload without building it."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Anything()

    def __setstate__(self, state):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass

    def __setitem__(self, key, value):
        pass

    def add(self, value):
        pass


class _GlobalCollector(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file)
        self.names = set()

    def find_class(self, module, name):
        self.names.add((module, name))
        return _Anything

    def persistent_load(self, pid):
        return _Anything()


def _named_globals(payload):
    """Every ``(module, name)`` the pickle ``payload`` names, found without building anything."""
    collector = _GlobalCollector(io.BytesIO(payload))
    collector.load()
    return collector.names


# ------------------------------------------------------------------------------ saving
def _tensor_record(tensor):
    """A CPU numpy array of ``tensor``'s data, and what rebuilds the tensor from it."""
    import torch

    if tensor.layout != torch.strided or tensor.is_quantized:
        raise ValueError(f"invrec.save stores dense tensors only; the model holds a {tensor.layout} "
                         f"tensor of shape {tuple(tensor.shape)}.")
    if type(tensor) not in (torch.Tensor, torch.nn.Parameter):
        raise ValueError(f"invrec.save stores torch.Tensor and torch.nn.Parameter only; the model holds a "
                         f"{type(tensor).__name__}.")
    data = tensor.detach().to("cpu").resolve_conj().resolve_neg().contiguous()
    try:
        array = data.numpy()
    except TypeError:  # no numpy dtype (bfloat16, float8, ...): store the bits as integers
        view = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[data.element_size()]
        array = data.view(view).numpy()
    kind = "parameter" if isinstance(tensor, torch.nn.Parameter) else "tensor"
    return array, {"kind": kind, "dtype": str(tensor.dtype).removeprefix("torch."),
                   "requires_grad": bool(tensor.requires_grad and tensor.is_leaf)}


class _HashingStream:
    """A write-only file object that hashes and counts what goes through it."""

    def __init__(self, out):
        self._out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.digest.update(data)
        self.size += len(data)
        return self._out.write(data)


class _ArchiveWriter:
    """Writes the members of a model archive, remembering each one's size and checksum."""

    def __init__(self, archive):
        self.archive = archive
        self.members = {}
        self.arrays = {}

    def _write(self, name, fill, compress):
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with self.archive.open(info, "w", force_zip64=True) as out:
            stream = _HashingStream(out)
            fill(stream)
        self.members[name] = {"sha256": stream.digest.hexdigest(), "size": stream.size}

    def write_bytes(self, name, data, compress=True):
        self._write(name, lambda stream: stream.write(data), compress)

    def write_array(self, array, record):
        key = str(len(self.arrays))
        name = f"{_ARRAYS}{key}.npy"
        self._write(name, lambda stream: np.lib.format.write_array(stream, array, allow_pickle=False),
                    compress=False)
        self.arrays[key] = {"member": name, **record}
        return key


def _string_array_reduction(obj):
    """Rebuild a pandas string array through ``pandas.array`` from its values as objects, so the
    file holds no storage-specific (python or pyarrow) internals."""
    import pandas as pd

    return pd.array, (obj.to_numpy(dtype=object), obj.dtype)


class _ModelPickler(pickle.Pickler):
    """Pickles a model with its numeric arrays and tensors written as ``.npy`` members."""

    def __init__(self, file, writer):
        super().__init__(file, protocol=_PROTOCOL)
        self._writer = writer
        self._seen = {}     # id(obj) -> (obj, key): one member per array, shared ones once

    def persistent_id(self, obj):
        import torch

        if isinstance(obj, torch.Tensor):
            make = _tensor_record
        elif type(obj) is np.ndarray and obj.dtype.kind in _NPY_KINDS and not obj.dtype.hasobject:
            make = _array_record
        else:
            return None
        known = self._seen.get(id(obj))
        if known is None:
            array, record = make(obj)
            known = self._seen[id(obj)] = (obj, self._writer.write_array(array, record))
        return ("invrec.array", known[1])

    def reducer_override(self, obj):
        import pandas as pd

        if isinstance(obj, pd.api.extensions.ExtensionArray) and isinstance(obj.dtype, pd.StringDtype):
            return _string_array_reduction(obj)
        return NotImplemented


def _array_record(array):
    return array, {"kind": "ndarray"}


def _jsonable(value, depth=0):
    """A JSON-ready description of a parameter value (for reading the manifest, not for loading)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else repr(float(value))
    if isinstance(value, (list, tuple)) and depth < 8:
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict) and depth < 8 and all(isinstance(k, str) for k in value):
        return {k: _jsonable(v, depth + 1) for k, v in value.items()}
    if hasattr(value, "get_params") and depth < 8:
        params = value.get_params(deep=False)
        return {"class": _class_path(type(value)), "params": {k: _jsonable(v, depth + 1) for k, v in params.items()}}
    return {"repr": repr(value)}


def _class_path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_fitted(model):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        return False
    return True


def _versions():
    import pandas as pd
    import scipy
    import sklearn
    import torch

    from . import __version__

    return {"invrec": __version__, "numpy": np.__version__, "pandas": pd.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "torch": torch.__version__.split("+")[0]}


def _manifest(model, writer):
    versions = _versions()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "invrec_version": versions["invrec"],
        "versions": versions,
        "estimator": _class_path(type(model)),
        "fitted": _is_fitted(model),
        "params": {k: _jsonable(v) for k, v in model.get_params(deep=False).items()},
        "members": writer.members,
        "arrays": writer.arrays,
    }


def _check_model(model):
    from .base import BaseRecommender

    if not isinstance(model, BaseRecommender):
        raise TypeError(
            f"invrec.save writes invrec estimators; got {type(model).__name__}. Save the estimator itself "
            "(for a search, its best_estimator_), or use joblib for other objects."
        )


def _check_path(path, verb):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}.")
    path = Path(path).expanduser()
    if verb == "write" and not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist.")
    if verb == "read" and not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"model file {str(path)!r} {what}.")
    return path


def _warn_outside_allowlist(model, payload):
    try:
        named = _named_globals(payload)
    except Exception:  # noqa: BLE001 - the check must never break a save that succeeded
        return
    refused = sorted(f"{m}.{n}" for m, n in named - set(model_allowlist()))
    if refused:
        warnings.warn(
            f"the saved {type(model).__name__} holds {refused}, outside the types invrec.load admits "
            "by default: load this file with invrec.load(path, trusted=True), which runs code from it.",
            UserWarning, stacklevel=3,
        )


def save(model, path):
    """Save an invrec estimator to a file that :func:`load` reads without running code from it.

    The file is a zip archive: a JSON manifest (format version, invrec version, estimator class,
    constructor parameters, a SHA-256 checksum of every member), the numeric arrays and tensors
    as ``.npy`` members, and the rest of the estimator as a pickle that :func:`load` reads with a
    restricted unpickler. Tensors are stored as CPU copies. The file is written to a temporary
    name beside ``path`` and moved into place when complete, so an interrupted save leaves no
    partial file behind.

    Parameters
    ----------
    model : invrec estimator
        Fitted or not; any subclass of :class:`invrec.base.BaseRecommender`.
    path : str or os.PathLike
        Where to write (any file name; ``model.invrec`` is a good one). An existing file is
        replaced.

    Returns
    -------
    path : Path
        The file written.

    Raises
    ------
    TypeError
        If ``model`` is not an invrec estimator or ``path`` is not a path.
    FileNotFoundError
        If the folder of ``path`` does not exist.
    ValueError
        If the model holds a tensor this format cannot store (sparse, quantized or a tensor
        subclass).

    Warns
    -----
    UserWarning
        If the model holds an object whose type is outside :func:`load`'s allowlist (a subclass
        you defined, for example): the file is written, and loads with ``trusted=True`` only.

    See Also
    --------
    load : Read the file back.
    read_manifest : Read a file's manifest without loading the model.

    Examples
    --------
    >>> import invrec
    >>> from invrec.datasets import make_multimodal_interactions
    >>> data = make_multimodal_interactions(n_users=30, n_items=20, random_state=0)
    >>> model = invrec.PopularityRecommender().fit(data.interactions)
    >>> path = invrec.save(model, "model.invrec")  # doctest: +SKIP
    >>> invrec.load("model.invrec").recommend([0], n=3)  # doctest: +SKIP
    """
    _check_model(model)
    path = _check_path(path, "write")
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temporary, "xb") as file, zipfile.ZipFile(file, "w", allowZip64=True) as archive:
            writer = _ArchiveWriter(archive)
            buffer = io.BytesIO()
            _ModelPickler(buffer, writer).dump(model)
            payload = buffer.getvalue()
            writer.write_bytes(_PAYLOAD, payload)
            manifest = json.dumps(_manifest(model, writer), indent=1, sort_keys=True).encode()
            archive.writestr(zipfile.ZipInfo(_MANIFEST, date_time=(1980, 1, 1, 0, 0, 0)), manifest,
                             compress_type=zipfile.ZIP_DEFLATED)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    _warn_outside_allowlist(model, payload)
    return path


# ------------------------------------------------------------------------------ loading
def _damaged(path, problem):
    return ModelFileError(f"{str(path)!r} is not an intact invrec model file: {problem}. Save the model again "
                          "(invrec.save or `invrec fit`), or copy the file again if it was transferred.")


def _read_member(archive, path, name):
    try:
        return archive.read(name)
    except KeyError:
        raise _damaged(path, f"the member {name!r} is missing") from None
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib and struct errors all mean damage
        raise _damaged(path, f"the member {name!r} cannot be read ({type(exc).__name__}: {exc})") from None


def _parse_manifest(path, raw):
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, f"its manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _damaged(path, f"its manifest does not name the format {FORMAT!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _damaged(path, f"its format version {version!r} is not a positive integer")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} was written by invrec {manifest.get('invrec_version', '?')} in model format "
            f"version {version}; this invrec reads versions up to {FORMAT_VERSION}: upgrade invrec to load it."
        )
    members, arrays = manifest.get("members"), manifest.get("arrays")
    if not isinstance(members, dict) or _PAYLOAD not in members or not isinstance(arrays, dict) \
            or not isinstance(manifest.get("estimator"), str):
        raise _damaged(path, "its manifest lacks the estimator, members or arrays entries")
    for name, entry in members.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and isinstance(entry.get("size"), int)):
            raise _damaged(path, f"the manifest entry of {name!r} has no sha256 and size")
    for key, entry in arrays.items():
        if not (isinstance(entry, dict) and entry.get("member") in members):
            raise _damaged(path, f"array {key!r} names no member of the archive")
    return manifest


def _read_manifest_member(archive, path):
    try:
        size = archive.getinfo(_MANIFEST).file_size
    except KeyError:
        raise _damaged(path, f"it has no {_MANIFEST}") from None
    if size > _MAX_MANIFEST:
        raise _damaged(path, f"its manifest claims {size} bytes, more than a manifest can hold")
    return _parse_manifest(path, _read_member(archive, path, _MANIFEST))


def _open_archive(path):
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{str(path)!r} is not an invrec model file (not a zip archive: truncated, damaged, or another "
            "format). If it is a joblib or pickle file you made yourself or otherwise trust (for example "
            "one written by `invrec fit` before invrec.save existed), load it with invrec.load(path, "
            "trusted=True) (`invrec recommend --trusted` on the command line): that runs code from the file."
        )
    try:
        return zipfile.ZipFile(path)
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib and struct errors all mean damage
        raise _damaged(path, f"its zip directory cannot be read ({type(exc).__name__}: {exc})") from None


def _verify_members(archive, path, manifest):
    """Check that the archive holds exactly the manifest's members, each of the recorded size
    and checksum (read in chunks)."""
    present = {info.filename: info for info in archive.infolist()}
    expected = set(manifest["members"]) | {_MANIFEST}
    extra, missing = sorted(set(present) - expected), sorted(expected - set(present))
    if extra or missing:
        raise _damaged(path, f"its members do not match the manifest (missing {missing}, unexpected {extra})")
    for name, entry in manifest["members"].items():
        if present[name].file_size != entry["size"]:
            raise _damaged(path, f"the member {name!r} holds {present[name].file_size} bytes, "
                                 f"the manifest says {entry['size']}")
        digest = hashlib.sha256()
        try:
            with archive.open(name) as member:
                for chunk in iter(lambda: member.read(_CHUNK), b""):
                    digest.update(chunk)
        except Exception as exc:  # noqa: BLE001 - zipfile, zlib and struct errors all mean damage
            raise _damaged(path, f"the member {name!r} cannot be read ({type(exc).__name__}: {exc})") from None
        if digest.hexdigest() != entry["sha256"]:
            raise _damaged(path, f"the checksum of the member {name!r} does not match the manifest")


def read_manifest(path):
    """Read a model file's manifest (format, versions, estimator, parameters) without loading it.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.

    Returns
    -------
    manifest : dict
        ``format``, ``format_version``, ``invrec_version``, ``versions``, ``estimator`` (class
        path), ``fitted``, ``params`` (as JSON; objects as ``{"class": ..., "params": ...}`` or
        ``{"repr": ...}``), ``members`` (size and SHA-256 of each member) and ``arrays``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ModelFileError
        If it is not a model archive or its manifest is damaged.
    """
    path = _check_path(path, "read")
    with _open_archive(path) as archive:
        return _read_manifest_member(archive, path)


def _array_loader(archive, path, manifest):
    """``persistent_load`` of a model payload: rebuild each array or tensor from its ``.npy``."""
    cache = {}

    def load_array(pid):
        if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == "invrec.array" and pid[1] in manifest["arrays"]):
            raise _damaged(path, f"the payload refers to an unknown array {pid!r}")
        if pid[1] not in cache:
            cache[pid[1]] = _rebuild_array(archive, path, manifest["arrays"][pid[1]])
        return cache[pid[1]]

    return load_array


def _rebuild_array(archive, path, record):
    try:
        with archive.open(record["member"]) as member:
            array = np.lib.format.read_array(member, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a .npy member that does not parse is damage
        raise _damaged(path, f"the array {record['member']!r} cannot be read ({type(exc).__name__}: {exc})") from None
    if record.get("kind") == "ndarray":
        return array
    return _to_tensor(path, array, record)


def _to_tensor(path, array, record):
    import torch

    dtype = _torch_dtypes().get(str(record.get("dtype")))
    if dtype is None:
        raise _damaged(path, f"the tensor dtype {record.get('dtype')!r} is unknown")
    if not array.flags.writeable:
        array = array.copy()
    tensor = torch.from_numpy(array)
    if tensor.dtype != dtype:
        tensor = tensor.view(dtype)
    if record.get("kind") == "parameter":
        return torch.nn.Parameter(tensor, requires_grad=bool(record.get("requires_grad")))
    return tensor.requires_grad_(bool(record.get("requires_grad")))


def _refusal(path):
    def refuse(module, name):
        return UnsafeModelFileError(
            f"{str(path)!r} refers to {module}.{name}, which is not among the types invrec.load admits "
            "(invrec's estimators and their parts, numpy, scipy.sparse, pandas and torch containers); "
            "nothing from the file was run. If you made this file yourself or otherwise trust it, "
            "invrec.load(path, trusted=True) (`invrec recommend --trusted` on the command line) loads it "
            "with plain pickle, which runs code from the file."
        )

    return refuse


def _unpickle_payload(archive, path, manifest, trusted):
    from .base import BaseRecommender

    payload = io.BytesIO(_read_member(archive, path, _PAYLOAD))
    arrays = _array_loader(archive, path, manifest)
    if trusted:
        reader = _TrustedUnpickler(payload, arrays)
    else:
        reader = RestrictedUnpickler(payload, model_allowlist(), refuse=_refusal(path), arrays=arrays)
    try:
        model = reader.load()
    except (UnsafePickleError, ModelFileError):
        raise
    except Exception as exc:  # noqa: BLE001 - a checksummed payload that does not rebuild
        written = manifest.get("versions", {})
        raise ModelFileError(
            f"{str(path)!r} could not be rebuilt ({type(exc).__name__}: {exc}). It was written with "
            f"{written}; this environment has {_versions()}: load it where those versions are installed."
        ) from exc
    if not isinstance(model, BaseRecommender) or _class_path(type(model)) != manifest["estimator"]:
        raise _damaged(path, f"it holds a {type(model).__name__}, not the {manifest['estimator']} its manifest names")
    return model


def _load_trusted_pickle(path):
    import joblib

    from .base import BaseRecommender

    try:
        model = joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a model file"
        raise ModelFileError(f"{str(path)!r} is neither an invrec model file nor a joblib/pickle file "
                             f"({type(exc).__name__}: {exc}).") from None
    if not isinstance(model, BaseRecommender):
        raise ModelFileError(f"{str(path)!r} holds a {type(model).__name__}, not an invrec estimator.")
    return model


def load(path, *, trusted=False):
    """Load an estimator saved by :func:`save`, running no code from the file.

    The manifest is read first: its format version must be one this invrec reads, and every
    member must have the size and SHA-256 checksum it records, so a damaged, truncated or edited
    file is refused before anything is built. The payload is then unpickled with a restricted
    unpickler that resolves only an allowlist of types (invrec's estimators and their parts, and
    the numpy, scipy.sparse, pandas, torch and builtin containers they hold); a file naming
    anything else is refused with :class:`UnsafeModelFileError`, and nothing from it runs.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save` (or, with ``trusted=True``, by ``joblib.dump`` or
        :func:`pickle.dump`).
    trusted : bool, default=False
        Whether you trust the file. True unpickles the payload with plain :mod:`pickle`, any type
        allowed, and reads plain joblib/pickle files too (such as model files of ``invrec fit``
        before :func:`save` existed). **Unpickling a file runs code from it: pass True only for a
        file you made yourself or otherwise trust.** Checksums are checked either way.

    Returns
    -------
    model : invrec estimator
        Torch tensors on the CPU, or on the estimator's ``device`` when that is a CUDA device
        available here.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ModelFileError
        If the file is not a model archive (with ``trusted=False``), is damaged or truncated, fails
        a checksum, has a newer format version, or does not hold an invrec estimator.
    UnsafeModelFileError
        If the payload names a type outside the allowlist (``trusted=False`` only). A subclass of
        :class:`ModelFileError` and :class:`UnsafePickleError`, both ValueErrors.

    See Also
    --------
    save : Write a model file.
    read_manifest : Read a file's manifest without loading the model.
    """
    if not isinstance(trusted, bool):
        raise TypeError(f"trusted must be True or False; got {trusted!r}.")
    path = _check_path(path, "read")
    if trusted and not zipfile.is_zipfile(path):
        return _load_trusted_pickle(path)
    with _open_archive(path) as archive:
        manifest = _read_manifest_member(archive, path)
        _verify_members(archive, path, manifest)
        return _unpickle_payload(archive, path, manifest, trusted)
