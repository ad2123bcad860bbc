"""Dataset folders for ``evaluate`` and ``fit``: reading one, fitting on its split, scoring its test rows."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics import evaluate_ranking, mae, rmse
from ..regression import RATING_COLUMN, RatingRegressorMixin

#: Dataset layouts ``evaluate`` and ``fit`` read (``auto`` guesses from the folder's files).
LAYOUTS = ("auto", "mmrec", "diffmm", "lastfm-2k-mm")


def _guess_layout(folder):
    if (folder / "trnMat.pkl").exists():
        return "diffmm"
    if (folder / "lfm2k.inter").exists():
        return "lastfm-2k-mm"
    if any(folder.glob("*.inter")):
        return "mmrec"
    raise ValueError(
        f"{folder} is in no known dataset layout: expected trnMat.pkl/valMat.pkl/tstMat.pkl "
        "(DiffMM) or a <name>.inter file (MMRec). Pass --layout to say which."
    )


def load_dataset(path, layout="auto", name=None):
    """Read a dataset folder with its official split.

    Parameters
    ----------
    path : str or Path
        The dataset folder.
    layout : {"auto", "mmrec", "diffmm", "lastfm-2k-mm"}, default="auto"
        How the folder is stored; ``"auto"`` looks at its files.
    name : str, default=None
        MMRec layout only: stem of the ``.inter`` file when the folder has several.

    Returns
    -------
    Bunch
        As :func:`invrec.datasets.load_mmrec`: ``interactions``, ``validation``, ``test``,
        ``item_features``.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    ValueError
        If the layout is unknown or the files do not match it.
    """
    from ..datasets import load_diffmm, load_lastfm_2k_mm, load_mmrec

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {str(folder)!r} does not exist (or is not a folder).")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {list(LAYOUTS)}.")
    if layout == "auto":
        layout = _guess_layout(folder)
    if layout == "diffmm":
        return load_diffmm(folder)
    if layout == "lastfm-2k-mm":
        return load_lastfm_2k_mm(folder)
    return load_mmrec(folder, name=name)


def learns_ratings(model):
    """Whether ``model`` is a rating regressor (it needs a ``rating`` column to fit and is scored by RMSE)."""
    return isinstance(model, RatingRegressorMixin)


#: Columns of a split kept in what the model is fitted on, besides ``user`` and ``item`` (given
#: environment labels, for ``--param environments=environment``).
KEPT_COLUMNS = ("environment",)


def _pairs(frame, ratings):
    if frame is None or not len(frame):
        return None
    columns = ["user", "item", *(c for c in KEPT_COLUMNS if c in frame.columns)]
    return frame[columns + [RATING_COLUMN] if ratings else columns].reset_index(drop=True)


def _user_item(frame):
    return None if frame is None or not len(frame) else frame[["user", "item"]].reset_index(drop=True)


def _ratings_of(frame, model, split):
    if frame is not None and RATING_COLUMN not in frame.columns:
        raise ValueError(f"{type(model).__name__} learns explicit ratings, but the dataset's {split} rows "
                         f"have no {RATING_COLUMN!r} column; use a dataset with ratings (an MMRec "
                         f"'.inter' file with a {RATING_COLUMN!r} column) or a ranking model.")


def fit_on_split(model, train, validation=None, item_features=None):
    """Fit ``model`` on a split's training rows, the validation rows for early stopping.

    The model sees the ``user``, ``item`` and ``environment`` (when present) columns. A rating
    regressor (:func:`learns_ratings`) fits on the ``rating`` column as ``y`` and keeps it in the
    validation rows; a recommender sees no ratings.

    Parameters
    ----------
    model : estimator
        Fitted in place.
    train : DataFrame
        Training rows (``user``, ``item`` and, for a regressor, ``rating``).
    validation : DataFrame, default=None
        Validation rows, passed as ``validation_data`` when the model's ``fit`` takes it.
    item_features : ItemFeatures, default=None

    Returns
    -------
    model : estimator
        The fitted ``model``.

    Raises
    ------
    ValueError
        If a regressor is given rows without a ``rating`` column.
    """
    ratings = learns_ratings(model)
    if ratings:
        _ratings_of(train, model, "training")
        _ratings_of(validation, model, "validation")
    train, validation = _pairs(train, ratings), _pairs(validation, ratings)
    kwargs = {"item_features": item_features}
    if validation is not None and "validation_data" in inspect.signature(model.fit).parameters:
        kwargs["validation_data"] = validation
    if ratings:
        return model.fit(train.drop(columns=RATING_COLUMN), train[RATING_COLUMN].to_numpy(), **kwargs)
    return model.fit(train, **kwargs)


def evaluate_model(model, data, k=(10, 20), metrics=("recall", "ndcg")):
    """Fit ``model`` on a dataset's official split and score its test split.

    The protocol of ``benchmarks/``: fit on the training rows with the validation rows for early
    stopping (when the split has them), rank the whole catalog for every test user known in
    training with their training and validation items excluded, and average over every test user
    (users unknown in training count as 0). A rating regressor is scored instead by the RMSE and
    MAE of its predicted ratings on the test rows of users known in training.

    Parameters
    ----------
    model : estimator
        Fitted in place.
    data : Bunch
        ``interactions``, ``validation`` (or None), ``test`` and ``item_features``, as
        :func:`load_dataset` returns.
    k : sequence of int, default=(10, 20)
        Cut-offs of the ranking metrics.
    metrics : sequence of str, default=("recall", "ndcg")
        Ranking metrics, names of :func:`invrec.metrics.evaluate_ranking`.

    Returns
    -------
    table : DataFrame
        :func:`invrec.metrics.evaluate_ranking`'s table (row ``"all"``); for a regressor one row
        ``"all"`` with ``rmse``, ``mae``, ``n_ratings`` (test rows scored) and ``n_skipped`` (test
        rows of users unknown in training).

    Raises
    ------
    ValueError
        If the dataset has no test split, or a regressor meets rows without ratings.
    """
    ratings = learns_ratings(model)
    test = _user_item(data.test)
    if test is None:
        raise ValueError("the dataset has no test split to evaluate on.")
    if ratings:
        _ratings_of(data.test, model, "test")
    fit_on_split(model, data.interactions, data.validation, data.item_features)
    known = np.isin(test["user"].to_numpy(), np.asarray(data.interactions["user"]))
    if ratings:
        truth = data.test[RATING_COLUMN].to_numpy()[known]
        pred = model.predict(test[known])
        return pd.DataFrame({"rmse": [rmse(truth, pred)], "mae": [mae(truth, pred)],
                             "n_ratings": [int(known.sum())], "n_skipped": [int((~known).sum())]},
                            index=["all"])
    users = pd.unique(test["user"].to_numpy()[known])
    recs = model.recommend(users, n=max(k), exclude=_user_item(data.validation))
    return evaluate_ranking(recs, test, k=k, metrics=metrics)
