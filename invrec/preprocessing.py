"""Steps that prepare what flows into a recommender: the training interactions and the item content.

Two kinds of step, for :class:`invrec.pipeline.RecommenderPipeline`:

* :class:`KCoreFilter` drops users and items with too few training interactions (the *k*-core).
  It is a *sampler* in imbalanced-learn's sense: ``fit_resample(X, y)`` returns fewer rows, so
  it acts at fit time only; the pipeline leaves the rows it scores or predicts untouched.
* :class:`ModalityTransformer` applies a scikit-learn transformer (``StandardScaler``, ``PCA``,
  ...) to each modality of an :class:`~invrec.ItemFeatures`, the item content that reaches an
  estimator as ``fit(X, item_features=...)``. Such steps subclass
  :class:`ItemFeaturesTransformer`; the pipeline passes them the ``item_features`` of ``fit``,
  ``predict`` and ``recommend``, never ``X``.

A scikit-learn :class:`~sklearn.pipeline.Pipeline` transforms ``X`` only, in ``fit`` and at
inference alike, so it can hold neither kind: both refuse it with an error naming
:func:`invrec.pipeline.make_pipeline`.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.preprocessing import StandardScaler
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted

from .features import ItemFeatures
from .utils.params import Interval, validate_parameters
from .utils.validation import ITEM, USER, check_interactions

__all__ = ["KCoreFilter", "ItemFeaturesTransformer", "ModalityTransformer"]

_PIPELINE_HINT = ("use invrec.pipeline.make_pipeline (or RecommenderPipeline), which {does}, "
                  "instead of sklearn.pipeline.Pipeline")


# --------------------------------------------------------------------------------------------
# Interactions
# --------------------------------------------------------------------------------------------


def _kcore_mask(users, items, min_user_interactions, min_item_interactions):
    """Rows of the ``(min_user, min_item)``-core of an interaction list.

    A row is kept when its user and its item both have at least the required number of kept
    rows; dropping rows lowers other counts, so the counts are taken again until nothing
    changes. Each pass is two ``bincount`` over the rows still kept.

    Parameters
    ----------
    users, items : ndarray of int of shape (n,)
        Codes ``0..n_users-1`` and ``0..n_items-1`` of each row's user and item.
    min_user_interactions, min_item_interactions : int
        The thresholds, >= 1.

    Returns
    -------
    keep : ndarray of bool of shape (n,)
    n_iter : int
        Passes that dropped rows (0 when every row is kept at once).

    Examples
    --------
    >>> import numpy as np
    >>> users, items = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 0])
    >>> keep, n_iter = _kcore_mask(users, items, 2, 2)
    >>> keep.tolist(), n_iter
    ([True, True, True, True, False], 1)
    """
    keep = np.ones(len(users), dtype=bool)
    n_users = int(users.max()) + 1 if len(users) else 0
    n_items = int(items.max()) + 1 if len(items) else 0
    n_iter = 0
    while keep.any():
        user_count = np.bincount(users[keep], minlength=n_users)
        item_count = np.bincount(items[keep], minlength=n_items)
        still = keep & (user_count[users] >= min_user_interactions) & (item_count[items] >= min_item_interactions)
        if np.array_equal(still, keep):
            break
        keep, n_iter = still, n_iter + 1
    return keep, n_iter


class KCoreFilter(BaseEstimator):
    """Keep the *k*-core of the training interactions: users and items with enough of them.

    Users with fewer than ``min_user_interactions`` rows and items with fewer than
    ``min_item_interactions`` rows are dropped, then the counts are taken again on what is left
    (dropping an item lowers its users' counts), until every remaining user and item meets its
    threshold. Every row of ``X`` counts as one interaction: repeated (user, item) rows count
    each time and weights ``y`` are not read (a row of weight 0 counts; drop such rows first).

    The filter is a *sampler*: :meth:`fit_resample` returns the kept rows of ``X`` (and of
    ``y``). In :class:`invrec.pipeline.RecommenderPipeline` it acts during ``fit`` only:
    ``predict``, ``score`` and the scorers see every held-out row, so a user the filter removed
    from training is still evaluated (with ``handle_unknown="ignore"`` on the recommender such a
    user gets no recommendation and scores 0 in a ranking metric; with ``"error"`` scoring it
    raises). Filtering at inference would let the filter choose the test users. Items dropped
    from ``X`` stay in the catalog when ``item_features`` lists them (as items without training
    interaction, recommended from their content).

    Parameters
    ----------
    min_user_interactions : int, default=5
        Rows a user needs to stay, >= 1 (1 keeps every user).
    min_item_interactions : int, default=5
        Rows an item needs to stay, >= 1 (1 keeps every item).

    Attributes
    ----------
    user_ids_ : ndarray
        Raw ids of the users kept, in order of first appearance in ``X``.
    item_ids_ : ndarray
        Raw ids of the items kept, in order of first appearance in ``X``.
    n_iter_ : int
        Counting passes that dropped rows (0 when ``X`` already was its core).
    n_rows_in_, n_rows_kept_ : int
        Rows of ``X`` and rows kept.

    Examples
    --------
    >>> import pandas as pd
    >>> from invrec.preprocessing import KCoreFilter
    >>> X = pd.DataFrame({"user": ["a", "a", "b", "b", "c"], "item": [1, 2, 1, 2, 1]})
    >>> kept, _ = KCoreFilter(min_user_interactions=2, min_item_interactions=2).fit_resample(X)
    >>> kept
      user  item
    0    a     1
    1    a     2
    2    b     1
    3    b     2
    """

    _parameter_constraints = {
        "min_user_interactions": [Interval(numbers.Integral, 1, None)],
        "min_item_interactions": [Interval(numbers.Integral, 1, None)],
    }

    def __init__(self, min_user_interactions=5, min_item_interactions=5):
        self.min_user_interactions = min_user_interactions
        self.min_item_interactions = min_item_interactions

    def fit(self, X, y=None):
        """Find the core of ``X``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_interactions, 2)
            Interactions, as every invrec estimator reads them.
        y : array-like of shape (n_interactions,), default=None
            Checked to match ``X``; not read.

        Returns
        -------
        self : KCoreFilter
        """
        self._fit_mask(X, y)
        return self

    def fit_resample(self, X, y=None):
        """Find the core of ``X`` and return its rows.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_interactions, 2)
            Interactions. Not modified.
        y : array-like of shape (n_interactions,), default=None
            Per-row targets, filtered like ``X``.

        Returns
        -------
        X_kept : same type as X
            The kept rows, in their order (a DataFrame keeps its index labels).
        y_kept : same type as y, or None

        Raises
        ------
        ValueError
            If no row is left: the thresholds are too high for this data.
        """
        rows = np.flatnonzero(self._fit_mask(X, y))
        return _safe_indexing(X, rows), None if y is None else _safe_indexing(y, rows)

    def transform(self, X):
        """Refused: the filter changes the training rows only (see the class notes).

        Raises
        ------
        TypeError
            Always, naming the pipeline that applies the filter at fit time only.
        """
        raise TypeError(
            "KCoreFilter drops training rows: it cannot be a transform step of a "
            "scikit-learn Pipeline, which would also filter the rows it scores and leave y "
            "misaligned. " + _PIPELINE_HINT.format(does="applies it during fit only")
            + ", or call fit_resample(X, y) yourself."
        )

    def _fit_mask(self, X, y):
        validate_parameters(self)
        table, _ = check_interactions(X, y)
        users, user_ids = pd.factorize(table[USER])
        items, item_ids = pd.factorize(table[ITEM])
        keep, n_iter = _kcore_mask(users, items, self.min_user_interactions, self.min_item_interactions)
        if not keep.any():
            raise ValueError(
                f"KCoreFilter(min_user_interactions={self.min_user_interactions}, "
                f"min_item_interactions={self.min_item_interactions}) keeps none of the "
                f"{len(table)} rows of X: no set of users and items meets both thresholds. "
                "Lower them."
            )
        self.user_ids_ = np.asarray(user_ids)[np.unique(users[keep])]
        self.item_ids_ = np.asarray(item_ids)[np.unique(items[keep])]
        self.n_iter_ = n_iter
        self.n_rows_in_, self.n_rows_kept_ = len(table), int(keep.sum())
        return keep


# --------------------------------------------------------------------------------------------
# Item content
# --------------------------------------------------------------------------------------------


class ItemFeaturesTransformer(BaseEstimator):
    """Base class of the pipeline steps that transform the item content, not the interactions.

    A subclass implements ``fit(X)`` and ``transform(X)`` where ``X`` is an
    :class:`~invrec.ItemFeatures` (a dict is read as one), and ``transform`` returns a new
    ItemFeatures. :class:`invrec.pipeline.RecommenderPipeline` recognises these steps by this
    class: it fits them on the ``item_features`` given to its ``fit`` and transforms the
    ``item_features`` given to ``fit``, ``predict`` and ``recommend`` with them.
    """

    def fit_transform(self, X, y=None):
        """``fit(X).transform(X)``."""
        return self.fit(X, y).transform(X)

    def _check_features(self, X):
        """``X`` as an ItemFeatures, or a TypeError saying where such a step belongs."""
        if isinstance(X, ItemFeatures):
            return X
        if isinstance(X, dict):
            return ItemFeatures(X)
        raise TypeError(
            f"{type(self).__name__} transforms item content (an invrec.ItemFeatures), got "
            f"{type(X).__name__}. In a pipeline, "
            + _PIPELINE_HINT.format(does="passes it the item_features given to fit, predict "
                                         "and recommend")
            + "; alone, call fit_transform(item_features)."
        )


class ModalityTransformer(ItemFeaturesTransformer):
    """Apply a scikit-learn transformer to each modality of the item content, separately.

    One clone of ``transformer`` per modality is fitted on the rows of the items that have the
    modality; missing rows (all-NaN) stay missing, so an estimator fills them as usual (after
    the transformation). The output width of a modality is the transformer's (``PCA(16)``
    gives 16 columns). The estimators L2-normalise each modality of each item afterwards, so a
    transformer changes the *direction* of an item's vector: ``StandardScaler`` stops the
    columns with the largest spread from dominating it, ``PCA`` keeps the main directions of
    variation and makes wide modalities (768-d text) cheaper.

    In :class:`invrec.pipeline.RecommenderPipeline` the step is fitted on the ``item_features``
    given to ``fit`` (every item listed there, with or without interactions: the transformer
    never sees ``X`` or a target) and the same fitted transformers are applied to the
    ``item_features`` of new items given to ``predict`` or ``recommend``.

    Parameters
    ----------
    transformer : transformer, default=None
        A scikit-learn transformer (``fit`` and ``transform`` on a 2-D float array). None means
        ``StandardScaler()``. It is cloned, never fitted itself.
    modalities : str or list of str, default=None
        The modalities to transform; the others pass through unchanged. None means every
        modality.

    Attributes
    ----------
    transformers_ : dict of str to transformer
        The fitted clone of each transformed modality.
    n_features_in_ : dict of str to int
        Width of each transformed modality at fit time.

    Examples
    --------
    >>> import numpy as np
    >>> from invrec import ItemFeatures
    >>> from invrec.preprocessing import ModalityTransformer
    >>> feats = ItemFeatures({"visual": [[1.0, 10.0], [3.0, 30.0], [np.nan, np.nan]]})
    >>> ModalityTransformer().fit_transform(feats)["visual"].tolist()
    [[-1.0, -1.0], [1.0, 1.0], [nan, nan]]
    """

    _parameter_constraints = {
        "transformer": "no_validation",        # checked in fit: anything with fit and transform
        "modalities": [None, str, list, tuple],
    }

    def __init__(self, transformer=None, *, modalities=None):
        self.transformer = transformer
        self.modalities = modalities

    def fit(self, X, y=None):
        """Fit one clone of the transformer on each selected modality's available rows.

        Parameters
        ----------
        X : ItemFeatures or dict
            The item content.
        y : None
            Ignored.

        Returns
        -------
        self : ModalityTransformer

        Raises
        ------
        ValueError
            If a selected modality is not in ``X`` or no item has it, or the transformer
            fails on a modality (the message names it).
        """
        self._check_parameters()
        features = self._check_features(X)
        names = self._selected(features)
        base = StandardScaler() if self.transformer is None else self.transformer
        fitted = {}
        for name in names:                      # a loop over modalities, not items
            matrix = features[name]
            available = ~np.isnan(matrix[:, 0])
            if not available.any():
                raise ValueError(f"modality {name!r} is missing for every item of X: there is no "
                                 f"row to fit {type(base).__name__} on. Leave it out with "
                                 "modalities=[...].")
            fitted[name] = _on_modality(name, lambda rows=matrix[available]: clone(base).fit(rows))
        self.transformers_ = fitted
        self.n_features_in_ = {name: features.dims[name] for name in names}
        return self

    def transform(self, X):
        """The item content with each fitted modality transformed; missing rows stay missing.

        Parameters
        ----------
        X : ItemFeatures or dict
            Item content with the fitted modalities, at their fitted widths (other modalities
            pass through).

        Returns
        -------
        ItemFeatures
            A new object, the same items in the same order.
        """
        check_is_fitted(self, "transformers_")
        features = self._check_features(X)
        lacking = [name for name in self.transformers_ if name not in features]
        if lacking:
            raise ValueError(f"X lacks the modalities {lacking} this {type(self).__name__} was "
                             f"fitted on; it has {list(features.modalities)}.")
        widths = {name: features.dims[name] for name in self.transformers_}
        if widths != self.n_features_in_:
            raise ValueError(f"X has modality widths {widths}; {type(self).__name__} was fitted "
                             f"on {self.n_features_in_}.")
        data = {}
        for name, matrix in features.items():
            step = self.transformers_.get(name)
            data[name] = matrix if step is None else _transform_available(name, step, matrix)
        return ItemFeatures(data, item_ids=features.item_ids)

    def _check_parameters(self):
        validate_parameters(self)
        if self.transformer is not None and not (hasattr(self.transformer, "fit")
                                                 and hasattr(self.transformer, "transform")):
            raise TypeError(f"transformer must have fit and transform (a scikit-learn "
                            f"transformer such as StandardScaler() or PCA(16)); got "
                            f"{self.transformer!r}.")

    def _selected(self, features):
        if self.modalities is None:
            return list(features.modalities)
        names = [self.modalities] if isinstance(self.modalities, str) else list(self.modalities)
        unknown = [name for name in names if name not in features]
        if unknown or not names:
            raise ValueError(f"modalities={self.modalities!r} names modalities that X does not "
                             f"have ({unknown}); X has {list(features.modalities)}.")
        return names


def _on_modality(name, action):
    """Run ``action()``; a ValueError it raises names the modality."""
    try:
        return action()
    except ValueError as exc:
        raise ValueError(f"modality {name!r}: {exc}") from exc


def _transform_available(name, step, matrix):
    """``step.transform`` of the available rows of ``matrix``; missing rows stay NaN."""
    available = ~np.isnan(matrix[:, 0])
    if not available.any():
        width = _output_width(name, step, matrix.shape[1])
        return np.full((len(matrix), width), np.nan, dtype=matrix.dtype)
    rows = np.asarray(_on_modality(name, lambda: step.transform(matrix[available])), dtype=np.float64)
    if rows.ndim != 2 or not np.isfinite(rows).all():
        raise ValueError(f"modality {name!r}: {type(step).__name__}.transform returned "
                         f"{'non-finite values' if rows.ndim == 2 else f'shape {rows.shape}'}; "
                         "item content must be a finite 2-D matrix.")
    out = np.full((len(matrix), rows.shape[1]), np.nan)
    out[available] = rows
    return out


def _output_width(name, step, width):
    """Columns ``step`` gives for ``width`` input columns (one zero row transformed)."""
    return np.asarray(_on_modality(name, lambda: step.transform(np.zeros((1, width))))).shape[1]
