"""Files the commands read and write: the output folder, model files, id lists and pair files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

#: Where the commands write when ``--out`` is not given (relative to the working folder; the
#: repository's ``.gitignore`` lists it).
DEFAULT_OUT = "invrec-output"


def output_path(name, out=DEFAULT_OUT):
    """Where an output called ``name`` goes: inside the folder ``out``, unless ``name`` is absolute.

    Nothing is created here; :func:`prepare_output` makes the folders just before writing.

    Parameters
    ----------
    name : str or Path
        File name given on the command line (``-o model.invrec``, ``--json metrics.json``).
    out : str or Path, default="invrec-output"
        The output folder.

    Returns
    -------
    Path

    Raises
    ------
    FileNotFoundError
        If ``name`` is absolute and its folder does not exist (invrec creates only folders inside
        ``out``).

    Examples
    --------
    >>> str(output_path("model.invrec", "runs"))
    'runs/model.invrec'
    """
    path = Path(name)
    if path.is_absolute():
        if not path.parent.is_dir():
            raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist.")
        return path
    return Path(out) / path


def prepare_output(path):
    """Create the folders of ``path`` (from :func:`output_path`) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def input_path(name, out=DEFAULT_OUT, what="file"):
    """The file ``name`` as given, or inside the output folder ``out`` when only that one exists.

    So ``invrec fit -o model.invrec`` (written to ``invrec-output/model.invrec``) is read back by
    ``invrec recommend model.invrec``.

    Raises
    ------
    FileNotFoundError
        If neither exists; the message names both places.
    """
    path = Path(name)
    if path.is_file():
        return path
    inside = Path(out) / path
    if not path.is_absolute() and inside.is_file():
        return inside
    where = "" if path.is_absolute() else f" (nor {str(inside)!r})"
    raise FileNotFoundError(f"{what} {str(path)!r} does not exist{where}.")


def write_json(path, payload):
    """Write ``payload`` (JSON types; NumPy scalars become numbers) to ``path``, creating its folder."""
    def scalar(value):
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    prepare_output(path).write_text(json.dumps(payload, indent=2, default=scalar) + "\n")


def load_model(path, trusted=False):
    """Load a model saved by ``invrec fit`` (or :func:`invrec.save`), checking what it is.

    Parameters
    ----------
    path : str or Path
        The model file.
    trusted : bool, default=False
        False reads only files of :func:`invrec.save`, with :func:`invrec.load`, which runs no code
        from the file. True also reads joblib/pickle files (``recommend --trusted``); **unpickling
        runs code from the file: only for a file you trust.**

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not an intact model file (:class:`invrec.persistence.ModelFileError`), names
        a type the safe reader refuses (:class:`invrec.persistence.UnsafeModelFileError`), or does
        not hold a fitted invrec estimator.
    """
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from ..persistence import load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist; make one with 'invrec fit'.")
    model = load(path, trusted=trusted)
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ValueError(f"{str(path)!r} holds an unfitted {type(model).__name__}; fit it before saving.") from None
    return model


def as_model_ids(values, known, what):
    """Command-line ids (strings) in the type of the model's ids ``known``.

    Parameters
    ----------
    values : array-like of str
    known : ndarray
        The model's ``user_ids_`` or ``item_ids_``.
    what : str
        ``"user"`` or ``"item"``, for the error.

    Returns
    -------
    ndarray
        Integers when the model's ids are integers, else the strings.

    Raises
    ------
    ValueError
        If the model's ids are integers and a value is not one.
    """
    values = np.asarray(values, dtype=object).astype(str)
    if not np.issubdtype(np.asarray(known).dtype, np.integer):
        return values
    numeric = pd.to_numeric(pd.Series(values), errors="coerce")
    bad = numeric.isna().to_numpy() | (numeric.to_numpy() % 1 != 0)
    if bad.any():
        raise ValueError(f"the model's {what} ids are integers; got {list(values[bad][:5])!r}.")
    return numeric.to_numpy().astype(np.int64)


def read_ids(ids, file, what):
    """Ids given on the command line followed by those of ``file`` (one per line), as strings.

    Raises
    ------
    FileNotFoundError
        If ``file`` is given and does not exist.
    """
    values = list(ids or [])
    if file is not None:
        file = Path(file)
        if not file.is_file():
            raise FileNotFoundError(f"{what} file {str(file)!r} does not exist.")
        values += [line.strip() for line in file.read_text().splitlines() if line.strip()]
    return values


def read_pairs(file, model):
    """A CSV file of (user, item) pairs with a header naming ``user`` and ``item``, in the model's id types.

    Extra columns are ignored, so a ``recommend`` output file can be passed back as is.

    Raises
    ------
    ValueError
        If the header lacks ``user`` or ``item``, or ids do not match the model's id type.
    """
    table = pd.read_csv(file, dtype=str, keep_default_na=False)
    missing = [column for column in ("user", "item") if column not in table.columns]
    if missing:
        raise ValueError(f"{str(file)!r} has no column {missing}: the exclude file is a CSV with a "
                         f"header naming 'user' and 'item' (as 'invrec recommend' writes); "
                         f"its columns are {list(table.columns)}.")
    return pd.DataFrame({"user": as_model_ids(table["user"], model.user_ids_, "user"),
                         "item": as_model_ids(table["item"], model.item_ids_, "item")})
