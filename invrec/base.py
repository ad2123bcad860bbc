"""BaseRecommender: the scikit-learn contract every invrec estimator shares, written once.

A subclass only says what its model is: it declares ``_parameter_constraints`` and implements
``_fit_model(data)`` (build and train on the encoded :class:`FitData`); scoring defaults ask the
trained ``module_``. Everything else lives here: parameter validation (once, in ``fit``), atomic
fits (a failed or interrupted fit restores the previous state), input validation, id encoding,
the catalog, each user's training items, the fit-preparation hooks, nested stage parameters,
``predict`` / ``recommend`` / ``score``, the ranking protocol of :mod:`invrec.metrics`, unknown
ids, device resolution, seeding, the call into the shared training loop
(:mod:`invrec.training`) with the class's monitored metric, and CPU-portable pickling.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import logging
import numbers
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Union

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state

from .features import ItemFeatures, NoReferenceContentError
from .metrics import make_ranking_scorer, ndcg_at_k
from .model_selection import validation_holdout_mask
from .training import EarlyStopping, progress_bar, resolve_batch_size, resolve_l2_embedding, train_epochs
from .utils.params import Interval, StrOptions, check_bool, check_fraction, check_int, validate_parameters
from .utils.ranking import chunked_top_k, rankings_to_frame, similar_rows
from .utils.validation import (ITEM, USER, _clean_id_column, as_id_array, check_interactions,
                               check_same_id_types, type_mismatch_hint)

if TYPE_CHECKING:                       # Python 3.11's typing.Self, for 3.10 too
    from typing_extensions import Self

__all__ = ["BaseRecommender", "FitData", "resolve_device"]

#: Metric reported by :meth:`BaseRecommender.score` and used for early stopping.
SCORE_METRIC, SCORE_K = "ndcg", 20

logger = logging.getLogger(__name__)

#: What ``X`` may be (see :func:`invrec.utils.validation.check_interactions`): a DataFrame with
#: ``user`` and ``item`` columns, an ``(n, 2)`` array or list of rows, a scipy sparse user x item
#: matrix, or a polars / pyarrow table.
InteractionsLike = Any
#: Ids or values: a list, an ndarray, a pandas Series or Index.
ArrayLike = Union[Sequence[Any], np.ndarray, pd.Series, pd.Index]

#: Users a ranking validation pass ranks at most (a fixed random sample of the held-out users per
#: fit): early stopping ranks the catalog for each of them after every epoch, so its cost stays
#: bounded as users grow; the standard error of a 10,000-user NDCG@20 is about 0.003 or less.
VALIDATION_MAX_USERS = 10_000


@dataclass
class WarmState:
    """What a fit with ``warm_start=True`` continues from.

    The final loop leaves one behind as ``_warm`` (``optimizer_state`` and ``generator_state``:
    the optimizer's moments and the random stream at its end; ``stages``: a staged estimator's
    environments and mask; the training ``rows``; the ``structure`` parameters); a warm fit
    copies it and adds the fitted ``module``, ids and ``history``. ``_warm`` lives in memory
    only: pickling and :func:`invrec.save` leave it out, so a loaded model continues with a
    fresh optimizer and, for PaInvRL and EIOR, cannot continue (their stages are not stored).
    """

    module: torch.nn.Module | None = None
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    history: list | None = None
    optimizer_state: dict | None = None
    generator_state: torch.Tensor | None = None
    generator_state_device: str | None = None
    stages: object = None
    rows: tuple | None = None
    structure: dict | None = None


#: Parameters that shape the model: a warm start with any of them changed would not train the
#: model they describe, so it raises.
WARM_STRUCTURE = ("embedding_dim", "content_dim", "item_id_weight", "decorrelate", "availability_aware")


def _takes(function, name):
    """Whether ``function`` accepts a keyword argument ``name`` (False for None)."""
    if function is None:
        return False
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def validation_users(users, *, seed=0, max_users=None):
    """The sorted distinct users of ``users`` a ranking validation ranks.

    Every distinct user when there are at most ``max_users`` (default
    :data:`VALIDATION_MAX_USERS`); otherwise a sample of that many, drawn without replacement by
    a generator seeded with ``seed`` (the fit's seed, so a fit validates on the same users every
    epoch and a refit with the same ``random_state`` on the same ones).

    Examples
    --------
    >>> validation_users([3, 1, 3, 2]).tolist()
    [1, 2, 3]
    >>> len(validation_users(range(50), max_users=10, seed=0))
    10
    """
    order = np.unique(np.asarray(users, dtype=np.int64))
    limit = VALIDATION_MAX_USERS if max_users is None else int(max_users)
    if len(order) <= limit:
        return order
    return np.sort(np.random.default_rng(seed).choice(order, size=limit, replace=False))


#: Rows of ``X`` that :meth:`BaseRecommender.predict` scores at once (its memory bound: a chunk's
#: item vectors, about 1 kB a row at 256 content dimensions; the results do not depend on it).
PREDICT_CHUNK_SIZE = 1 << 15

#: Scores that :meth:`BaseRecommender.predict` computes at once for items unknown at fit time
#: (each row's user against every new item): fewer rows per chunk when there are many new items.
PREDICT_CHUNK_SCORES = 1 << 24


def resolve_device(device):
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch.device into a torch.device.

    ``"mps"`` (Apple GPUs) is accepted where ``torch.backends.mps.is_available()``.

    Raises
    ------
    ValueError
        If the device is not one of these, or is not available on this machine (CUDA asked for
        and ``torch.cuda.is_available()`` False, a CUDA index beyond the GPUs, MPS without an
        Apple GPU); the message lists the devices available here.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r}. "
                         f"{_available_devices()}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was asked for but CUDA is not available on this machine "
                f"(torch.cuda.is_available() is False). Use device='auto' or 'cpu'. {_available_devices()}"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r} was asked for but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s). {_available_devices()}")
    elif resolved.type == "mps":
        if not _mps_available():
            raise ValueError(
                f"device={device!r} was asked for but MPS (an Apple GPU) is not available on this "
                f"machine (torch.backends.mps.is_available() is False). {_available_devices()}"
            )
    elif resolved.type != "cpu":
        raise ValueError(f"device={device!r}: invrec trains on 'cpu', 'cuda' or 'mps' devices. "
                         f"{_available_devices()}")
    return resolved


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _available_devices():
    """A sentence listing the device names that work on this machine."""
    names = ["'auto'", "'cpu'"]
    if torch.cuda.is_available():
        names += ["'cuda'"] + [f"'cuda:{k}'" for k in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("'mps'")
    return f"Available here: {', '.join(names)}."


@dataclass
class FitData:
    """Everything a fit works on, prepared once by ``fit``; every tensor lives on ``device``.

    Attributes
    ----------
    users, items : LongTensor of shape (n_train,)
        Encoded training interactions (the validation rows carved for early stopping excluded).
    targets : Tensor of shape (n_train,) or None
        ``y`` of those rows, when given: weights for a ranking model, ratings for a regressor.
    n_users, n_items : int
        Sizes of the user index and of the catalog.
    user_degree, item_degree : Tensor of shape (n_users,) / (n_items,)
        Training interactions per user and per item.
    features : Tensor of shape (n_items, d) or None
        Content of every catalog item: each modality L2-normalised per item, missing rows filled
        with the training mean, modalities concatenated.
    feature_slices : dict of str to slice
        Columns of each modality in ``features``.
    availability : BoolTensor of shape (n_items, n_modalities) or None
        True where the item had that modality before filling.
    device : torch.device
    generator : torch.Generator
        Seeded generator on ``device`` for every random draw of the fit.
    validation : tuple of two int ndarrays or None
        Encoded (user, item) of the held-out rows (known ids only).
    validation_targets : ndarray or None
        ``y`` of those rows, when the estimator reads one (a regressor's held-out ratings).
    environments : ndarray or None
        Raw environment label of every training row, when the estimator reads them from ``X``.
    seen : scipy CSR array of shape (n_users, n_items)
        Training rows.
    batch_size : int or None
        Interactions per step of every loop of the fit: the estimator's ``batch_size``, with
        ``"auto"`` resolved from the training rows (:func:`invrec.training.resolve_batch_size`);
        None for an estimator that does not train in batches.
    l2_scale : float or None
        Factor of the whole-matrix L2 terms of one step (``1 / batch_size`` for a given int,
        ``1 / 4096`` under ``"auto"``).
    l2_embedding : float or None
        The id-embedding L2 weight of the fit: the estimator's ``l2_embedding`` with ``"auto"``
        resolved from the training graph's density (:func:`invrec.training.resolve_l2_embedding`).
    warm : WarmState or None
        What a ``warm_start=True`` fit continues from (None: a fit from scratch).
    stage_result : object
        The stages' result of a staged estimator, kept for a later warm start.
    validation_ranking : tuple or None
        ``(users, relevant)`` of the ranking validation, built on first use: the sorted encoded
        users it ranks (at most :data:`VALIDATION_MAX_USERS`, see :func:`validation_users`) and
        their held-out items as a CSR array, one row per user.
    """

    users: torch.Tensor
    items: torch.Tensor
    targets: torch.Tensor | None
    n_users: int
    n_items: int
    user_degree: torch.Tensor
    item_degree: torch.Tensor
    features: torch.Tensor | None
    feature_slices: dict = field(default_factory=dict)
    availability: torch.Tensor | None = None
    device: torch.device = torch.device("cpu")
    generator: torch.Generator | None = None
    validation: tuple | None = None
    validation_targets: np.ndarray | None = None
    environments: np.ndarray | None = None
    seen: sp.csr_array | None = None
    batch_size: int | None = None
    l2_scale: float | None = None
    l2_embedding: float | None = None
    validation_ranking: tuple | None = None
    warm: WarmState | None = None
    stage_result: object = None

    def ranking_validation(self):
        """``(users, relevant)`` of the ranking validation, computed once per fit (see above)."""
        if self.validation_ranking is None:
            users, items = self.validation
            order = validation_users(users, seed=self.generator.initial_seed() if self.generator else 0)
            keep = np.isin(users, order)
            codes = np.searchsorted(order, users[keep])
            self.validation_ranking = (order, _csr(codes, items[keep], (len(order), self.n_items)))
        return self.validation_ranking


class BaseRecommender(BaseEstimator):
    """Base class of invrec recommenders (not used directly).

    The shared constructor parameters (set by subclasses, documented there) are ``device``,
    ``random_state``, ``verbose``, ``handle_unknown`` and, for trained models,
    ``max_epochs``, ``batch_size``, ``learning_rate``, ``early_stopping``,
    ``validation_fraction`` and ``n_iter_no_change``.

    Fitted attributes common to every estimator: ``user_ids_`` and ``item_ids_`` (raw ids in
    encoding order; ``item_ids_`` is the catalog), ``unseen_items_`` (catalog items without a
    training interaction), ``n_users_``, ``n_items_``, ``item_features_`` (the features aligned
    to the catalog, missing rows as NaN, or None), ``history_`` (one dict per epoch) and
    ``device_`` (where the model was trained); trained models also set ``batch_size_`` (the
    batch size the fit used: ``batch_size`` with ``"auto"`` resolved,
    :func:`invrec.training.resolve_batch_size`) and ``l2_embedding_`` (likewise,
    :func:`invrec.training.resolve_l2_embedding`).

    Estimators that learn vectors (a ``module_`` with ``user_vectors()`` and ``item_vectors()``)
    also expose them as ``user_embeddings_`` and ``item_embeddings_`` (read-only arrays, rows in
    the order of ``user_ids_`` and ``item_ids_``) and rank neighbours by their cosine similarity
    with :meth:`similar_items` and :meth:`similar_users`.
    """

    #: Fitted attributes holding torch state; moved to the CPU when pickled.
    _torch_attributes = ("module_",)

    #: ``(fitted attribute, buffer name)`` of the torch buffers that hold the prepared item
    #: content (``FitData.features``: normalised, filled, concatenated). Pickling and
    #: :func:`invrec.save` leave them out and unpickling rebuilds them from ``item_features_``
    #: (see :meth:`_rebuild_content`), so a model file holds the content once.
    _content_buffers = (("module_", "features"),)

    # ------------------------------------------------------------------ sklearn plumbing
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.input_tags.two_d_array = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        tags.requires_fit = True
        return tags

    #: Constraints of the shared parameters (see :mod:`invrec.utils.params`); subclasses add
    #: theirs, merged down the hierarchy and checked once at the start of ``fit``.
    _parameter_constraints = {
        "handle_unknown": [StrOptions({"error", "ignore"})],
        "max_epochs": [Interval(numbers.Integral, 1, None)],
        "batch_size": [Interval(numbers.Integral, 1, None), StrOptions({"auto"})],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "early_stopping": ["boolean"],
        "warm_start": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None)],
        "device": ["device"],
        "random_state": ["random_state"],
        "verbose": [Interval(numbers.Integral, 0, None), "boolean"],
    }

    #: Parameters holding a part (a stage, the fusion, an objective) whose None means the part's
    #: defaults: parameter name -> factory.
    _default_parts: ClassVar[dict[str, Callable[[], Any]]] = {}

    #: Parts a str may stand for: parameter name -> the part's setting the str is (``fusion="global"``
    #: is the default fusion with ``mode="global"``).
    _spelled_parts: ClassVar[dict[str, str]] = {}

    #: Former constructor parameters -> how to spell them now (raised with that hint).
    _renamed_parameters: ClassVar[dict[str, str]] = {}

    #: The validation metric of early stopping: history key and whether lower is better.
    _monitor = (f"valid_{SCORE_METRIC}@{SCORE_K}", False)

    def get_params(self, deep=True):
        """Parameters of the estimator; with ``deep``, those of its stages too.

        A stage parameter left at None (the stage's defaults) still lists the default stage's
        parameters under the nested spelling (``environments__n_environments``), so a search can
        reach them.
        """
        params = super().get_params(deep=deep)
        if deep:
            for name, factory in self._default_parts.items():
                if params.get(name) is None:
                    params.update({f"{name}__{key}": value for key, value in factory().get_params().items()})
        return params

    def set_params(self, **params):
        """Set parameters; a nested stage setting turns a None stage into its default object first."""
        for key in params:
            if key in self._renamed_parameters:
                raise ValueError(_renamed_message(type(self).__name__, key, self._renamed_parameters[key]))
        params = dict(params)
        for name in self._default_parts:
            if not any(k.startswith(f"{name}__") for k in params):
                continue
            if name in params:          # the part set with its nested settings (a round trip)
                part = self._resolve_part(name, params[name])
                nested = {k[len(name) + 2:]: params[k] for k in params if k.startswith(f"{name}__")}
                if part is not None and params[name] is None and nested == part.get_params():
                    for key in nested:  # None with its defaults spelled out: None stays
                        del params[f"{name}__{key}"]
                elif part is not None:
                    params[name] = part
            elif not isinstance(getattr(self, name, None), BaseEstimator):
                part = self._resolve_part(name, getattr(self, name, None))
                if part is not None:
                    setattr(self, name, part)
        return super().set_params(**params)

    def _part(self, name):
        """The part object of parameter ``name``: the default one when None, the one a str spells
        when the part has a spelling (``fusion="invariant"``), else None (not a part)."""
        return self._resolve_part(name, getattr(self, name))

    def _resolve_part(self, name, value):
        factory = self._default_parts[name]
        if value is None:
            return factory()
        if isinstance(value, str) and name in self._spelled_parts:
            return factory(**{self._spelled_parts[name]: value})
        return value if isinstance(value, BaseEstimator) else None

    # ------------------------------------------------------------------ fit
    def fit(self, X: InteractionsLike, y: ArrayLike | None = None, *,
            item_features: ItemFeatures | dict | None = None,
            validation_data: InteractionsLike | None = None) -> Self:
        """Fit the recommender on observed interactions.

        A fit is atomic: when it fails or is interrupted (Ctrl-C), the estimator is left exactly
        as it was before the call (still fitted on the previous data, or unfitted).

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_interactions, 2)
            Training interactions: ``user`` and ``item`` columns (raw ids) or (user, item) rows.
        y : array-like of shape (n_interactions,), default=None
            Optional per-interaction weights, finite and >= 0 (a regressor reads ratings here
            instead: see its class). Rows with ``y = 0`` are not interactions and are dropped.
            A trained model multiplies each training interaction's loss term (with its
            negatives) by its weight divided by the mean weight of the training rows, so a
            weight of 2 counts an interaction about twice, constant weights (all ones) give
            exactly the model fitted without ``y``, and only the ratios of the weights matter.
            PaInvRL's and EIOR's environment and mask stages ignore the weights (they see every
            interaction once); their final model reads them. Popularity sums them per item.
        item_features : ItemFeatures or dict, default=None
            Item content (a dict is passed to :class:`~invrec.ItemFeatures`). Its items join the
            catalog even without interactions, so they can be recommended.
        validation_data : DataFrame or array-like, default=None
            Held-out interactions for the validation metric and early stopping. When None and
            ``early_stopping`` is True, each user holds out a share ``validation_fraction`` of its
            rows of ``X`` in expectation
            (:func:`~invrec.model_selection.validation_holdout_mask`). Either way the validation
            rows count as seen at recommendation time (``recommend(exclude_seen=True)`` leaves
            them out), except in ``score(X)`` for the pairs of ``X`` itself, so
            ``score(validation_data)`` gives the validation metric back (with more than
            :data:`VALIDATION_MAX_USERS` = 10,000 validation users, early stopping ranks a random
            sample of that many, fixed for the fit, so a pass costs the same at any scale).

        Returns
        -------
        self : object
        """
        validate_parameters(self)
        for name in self._default_parts:          # the parts' settings too, before any work
            part = self._part(name)
            if part is not None:
                validate_parameters(part)
        previous = dict(self.__dict__)
        try:
            self._fit(X, y, item_features, validation_data)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(previous)
            raise
        return self

    def _check_target(self, y):
        """``y`` as weights (finite, >= 0, some > 0), or None; a regressor reads ratings instead."""
        if y is None:
            return None
        y = _check_weights(y)
        negative = y < 0
        if negative.any():
            first = int(np.argmax(negative))
            raise ValueError(
                f"y holds {int(negative.sum())} negative value(s), first at row {first} "
                f"({y[first]:g}). y weighs each interaction and must be >= 0 (0 drops the row); "
                "clip or shift it, or give no y."
            )
        if not (y > 0).any():
            raise ValueError("every row of X has y <= 0 (a weight of 0 drops the row); there is no "
                             "interaction to learn from.")
        return y

    def _interaction_weights(self, data):
        """Weights of the training rows for a trained ranking model's loss, or None.

        ``data.targets`` (the checked ``y`` of the rows trained on) divided by their mean, in
        float64 before the float32 result: the loss keeps its scale and constant weights give
        None (every row weighs 1: exactly the unweighted model). A regressor's targets are
        ratings: it does not call this.

        Returns
        -------
        Tensor of shape (n_train,) or None
        """
        targets = data.targets
        if targets is None or len(targets) == 0 or bool((targets == targets[0]).all()):
            return None
        wide = targets.double()
        return (wide / wide.mean()).to(targets.dtype)

    def _fit(self, X, y, item_features, validation_data):
        table, y = check_interactions(X, y)
        features = _as_item_features(item_features)
        y = self._check_target(y)
        warm = self._warm_start_from()
        self._encode(table, features)  # every user and item of X is known, whatever its weight
        if warm is not None:
            self._adopt_encoding(warm)
        if y is not None:
            keep = self._interaction_rows(y)
            table, y = table.loc[keep].reset_index(drop=True), y[keep]
        users = self._user_index.get_indexer(table[USER])
        items = self._item_index.get_indexer(table[ITEM])
        self._seen = _csr(users, items, (self.n_users_, self.n_items_))
        self._set_unseen_items(items)

        train_pos, valid_pos, valid_table = self._split_validation(table, validation_data)
        device = resolve_device(getattr(self, "device", "cpu"))
        seed = int(check_random_state(getattr(self, "random_state", None)).randint(2**31 - 1))
        generator = torch.Generator(device=device).manual_seed(seed)
        if warm is not None:
            warm.module = warm.module.to(device)
            if warm.generator_state is not None and generator.device == torch.device(warm.generator_state_device):
                generator.set_state(warm.generator_state)
        tr_users, tr_items = users[train_pos], items[train_pos]
        data = FitData(
            users=torch.as_tensor(tr_users, device=device),
            items=torch.as_tensor(tr_items, device=device),
            targets=None if y is None else torch.as_tensor(y[train_pos], dtype=torch.float32, device=device),
            n_users=self.n_users_,
            n_items=self.n_items_,
            user_degree=torch.as_tensor(np.bincount(tr_users, minlength=self.n_users_), dtype=torch.float32, device=device),
            item_degree=torch.as_tensor(np.bincount(tr_items, minlength=self.n_items_), dtype=torch.float32, device=device),
            features=None,
            device=device,
            generator=generator,
            seen=_csr(tr_users, tr_items, (self.n_users_, self.n_items_)),
            warm=warm,
        )
        if hasattr(self, "batch_size"):
            data.batch_size, data.l2_scale = resolve_batch_size(self.batch_size, len(tr_users))
            self.batch_size_ = data.batch_size
        if hasattr(self, "l2_embedding"):
            data.l2_embedding = self.l2_embedding_ = resolve_l2_embedding(self.l2_embedding, tr_users, tr_items)
        self._validation_seen = None
        if valid_table is not None:
            u = self._user_index.get_indexer(valid_table[USER])
            i = self._item_index.get_indexer(valid_table[ITEM])
            known = (u >= 0) & (i >= 0)
            if not known.any():
                hint = (type_mismatch_hint(valid_table[USER].to_numpy(), self._user_index)
                        or type_mismatch_hint(valid_table[ITEM].to_numpy(), self._item_index))
                raise ValueError(f"validation_data shares no user and item with X and the catalog.{hint}")
            data.validation = (u[known], i[known])
            if valid_pos is None:       # given as validation_data: not rows of X (see recommend)
                self._validation_seen = _csr(u[known], i[known], (self.n_users_, self.n_items_))
            if valid_pos is not None and y is not None:
                data.validation_targets = y[valid_pos]
            self._prepare_validation(data, valid_table, known)
        self._prepare_fit(data, table, y, train_pos)
        if self.item_features_ is not None:
            reference = self.item_ids_[np.unique(tr_items)]
            try:
                data.features, data.feature_slices, data.availability = self._content(
                    self.item_features_, reference_items=reference, device=device)
            except NoReferenceContentError as exc:
                raise _no_training_content(exc.modality, self.item_features_, len(reference)) from None
        self.history_ = [] if warm is None else warm.history
        self.device_ = str(device)
        name, began = type(self).__name__, time.perf_counter()
        logger.info("%s: fitting on %d training rows (%d users, %d items%s) on %s%s", name, len(tr_users),
                    self.n_users_, self.n_items_, ", with content" if data.features is not None else "",
                    device, f", batch {data.batch_size}" if data.batch_size else "")
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            self._fit_model(data)
        logger.info("%s: fitted in %.2f s", name, time.perf_counter() - began)

    def _interaction_rows(self, y):
        """Mask of the rows of ``X`` that are interactions, from the checked ``y``.

        A weight of 0 is no interaction: ``y > 0``. A regressor overrides this (every rating,
        zero or negative included, is an interaction).
        """
        return y > 0

    def _prepare_fit(self, data, table, y, train_pos):
        """Hook: read what the method needs from the training table into ``data`` (no-op here).

        ``table`` is the parsed ``X`` (extra columns kept; rows that are not interactions, see
        :meth:`_interaction_rows`, dropped), ``y``
        its checked target (or None) and ``train_pos`` the positions of the rows trained on.
        Fit-time results go in ``data`` (for example ``data.environments``), not on ``self``.
        """

    def _prepare_validation(self, data, valid_table, known):
        """Hook: read what the method needs from the validation rows into ``data`` (no-op here).

        ``valid_table`` is the validation DataFrame (carved from ``X`` or given), ``known`` the mask
        of its rows whose user and item are known (those in ``data.validation``).
        """

    def _encode(self, table, features):
        """Build the user index and the catalog (feature items first, then new items of X)."""
        self.user_ids_ = pd.unique(table[USER].to_numpy())
        x_items = pd.unique(table[ITEM].to_numpy())
        if features is not None:
            check_same_id_types(
                x_items, features.item_ids, "X's item ids", "item_features' item ids",
                fix="X.assign(item=X['item'].astype(str)) for string ids, or build the "
                    "ItemFeatures with item_ids of the type of X's item column")
            extra = x_items[pd.Index(features.item_ids).get_indexer(x_items) < 0]
            catalog = _join_ids(features.item_ids, extra) if len(extra) else features.item_ids
            self.item_features_ = features.reindex(catalog, unknown="missing") if len(extra) else features
        else:
            catalog, self.item_features_ = x_items, None
        self.item_ids_ = np.asarray(catalog)
        self._user_index = pd.Index(self.user_ids_)
        self._item_index = pd.Index(self.item_ids_)
        self.n_users_, self.n_items_ = len(self.user_ids_), len(self.item_ids_)

    # ------------------------------------------------------------------ warm start
    def _warm_start_from(self):
        """The :class:`WarmState` this fit continues from, or None (a fit from scratch).

        With ``warm_start=True`` on a fitted estimator: copies of its model and of what the
        previous fit left in memory (copies, so a failed fit leaves the fitted one intact).
        """
        if not getattr(self, "warm_start", False) or "module_" not in self.__dict__:
            return None
        previous = self.__dict__.get("_warm")
        now = self._structure()
        if previous is not None and previous.structure != now:
            changed = sorted(k for k in now if previous.structure.get(k) != now[k])
            raise ValueError(
                f"warm_start=True continues the fitted model, but {', '.join(changed)} changed since "
                f"it was fitted ({', '.join(f'{k}={previous.structure.get(k)!r}' for k in changed)} then): "
                "the model has the old shape. Set them back, or set warm_start=False to fit from scratch.")
        warm = WarmState() if previous is None else replace(
            previous, optimizer_state=copy.deepcopy(previous.optimizer_state),
            generator_state=previous.generator_state.clone())
        warm.module, warm.history = copy.deepcopy(self.module_), list(self.history_)
        warm.user_ids, warm.item_ids = self.user_ids_, self.item_ids_
        return warm

    def _structure(self):
        """The values of :data:`WARM_STRUCTURE` this estimator has."""
        return {k: getattr(self, k) for k in WARM_STRUCTURE if hasattr(self, k)}

    def _adopt_encoding(self, warm):
        """Keep the fitted model's encoding: the same users and catalog, in the fitted order."""
        same_users = len(warm.user_ids) == self.n_users_ and self._user_index.get_indexer(warm.user_ids).min() >= 0
        same_items = len(warm.item_ids) == self.n_items_ and self._item_index.get_indexer(warm.item_ids).min() >= 0
        if not (same_users and same_items):
            raise ValueError(
                f"warm_start=True continues the fitted model, whose users and catalog are fixed "
                f"({len(warm.user_ids)} users, {len(warm.item_ids)} items), but X and item_features "
                f"give {self.n_users_} users and {self.n_items_} items"
                f"{'' if same_users else ' (other users)'}{'' if same_items else ' (another catalog)'}. "
                "Continue with interactions of the same users over the same catalog, or set "
                "warm_start=False to fit from scratch.")
        if self.item_features_ is not None:
            self.item_features_ = self.item_features_.reindex(warm.item_ids)
        self.user_ids_, self.item_ids_ = warm.user_ids, warm.item_ids
        self._user_index, self._item_index = pd.Index(self.user_ids_), pd.Index(self.item_ids_)

    def _warm_module(self, data, build):
        """The model to train: the fitted one under a warm start, else ``build()``."""
        return build() if data.warm is None else data.warm.module

    def _set_unseen_items(self, train_items):
        """Catalog items without a (positive) training interaction: the new items."""
        warm = np.zeros(self.n_items_, dtype=bool)
        warm[train_items] = True
        self.unseen_items_ = self.item_ids_[~warm]

    def _content(self, features, *, reference_items=None, device):
        """Normalised, filled (:meth:`_fill`), concatenated content tensor, its slices and availability."""
        matrix, slices = self._fill(features.normalize(), reference_items).concat()
        availability = torch.as_tensor(features.availability, device=device)
        return torch.as_tensor(matrix, dtype=torch.float32, device=device), slices, availability

    def _fill(self, normalised, reference_items):
        """Missing rows replaced by the mean of ``reference_items`` (given at fit; kept for later items)."""
        if not hasattr(self, "_fill_values") or reference_items is not None:
            self._fill_values = normalised.fill_values("mean", reference_items=reference_items)
        return normalised.fill_missing(values=self._fill_values)

    def _split_validation(self, table, validation_data):
        """Rows to train on, and the validation rows.

        Returns
        -------
        train_pos : ndarray
            Positions in ``table`` of the rows trained on.
        valid_pos : ndarray or None
            Positions in ``table`` of the carved validation rows (None when none were carved).
        valid_table : DataFrame or None
            The validation rows (carved from ``table``, or ``validation_data`` parsed).
        """
        all_rows = np.arange(len(table))
        if validation_data is not None:
            valid, _ = check_interactions(validation_data, name="validation_data")
            return all_rows, None, valid
        if not getattr(self, "early_stopping", False):
            return all_rows, None, None
        fraction = check_fraction(self.validation_fraction, "validation_fraction")
        rng = check_random_state(getattr(self, "random_state", None))
        try:
            mask = validation_holdout_mask(pd.factorize(table[USER])[0], fraction, rng)
        except ValueError as exc:
            raise ValueError(
                f"early_stopping=True needs a validation share of X, which cannot be carved: {exc} "
                "Pass validation_data, or set early_stopping=False."
            ) from None
        valid_pos = np.flatnonzero(mask)
        return np.flatnonzero(~mask), valid_pos, table.iloc[valid_pos]

    # ------------------------------------------------------------------ training loop
    def _train_epochs(self, module, optimizer, batch_loss, data, *, n_rows=None, stage="final"):
        """Train ``module`` with the shared loop (:func:`invrec.training.train_epochs`).

        The monitored metric is the class's ``_monitor`` (:meth:`_validation_score`), recorded
        after every epoch when there are validation rows; with ``early_stopping`` the best epoch
        is restored and training stops after ``n_iter_no_change`` epochs without improvement.
        ``batch_loss(rows)`` returns the loss of a LongTensor of training-row positions, or
        ``(loss, logs)`` (see :mod:`invrec.training`).
        """
        n_rows = len(data.users) if n_rows is None else n_rows
        monitor, lower_is_better = self._monitor
        early = bool(getattr(self, "early_stopping", False))
        stopping = EarlyStopping(monitor, lower_is_better=lower_is_better, restore_best=early,
                                 patience=self.n_iter_no_change if early else None)
        validate = None if data.validation is None else (lambda: self._validation_score(data))
        if data.warm is not None and data.warm.optimizer_state is not None:
            optimizer.load_state_dict(data.warm.optimizer_state)
        bar = _progress(self.max_epochs, self.verbose, type(self).__name__)
        try:
            records = train_epochs(module, optimizer, batch_loss, n_rows=n_rows, max_epochs=self.max_epochs,
                                   batch_size=data.batch_size, generator=data.generator, device=data.device,
                                   history=self.history_, stage=stage, validate=validate,
                                   stopping=stopping, progress=bar)
        finally:
            if bar is not None:
                bar.close()
        # What a later warm_start=True fit continues from (in memory only; see WarmState).
        self._warm = WarmState(optimizer_state=optimizer.state_dict(), generator_state=data.generator.get_state(),
                               generator_state_device=str(data.generator.device), stages=data.stage_result,
                               rows=(data.users, data.items), structure=self._structure())
        return records

    def _validation_score(self, data):
        """NDCG@20 on the validation rows, ranking the catalog with training items excluded.

        At most :data:`VALIDATION_MAX_USERS` users are ranked (a sample fixed for the fit).
        """
        order, relevant = data.ranking_validation()
        rankings, _ = chunked_top_k(self._user_scorer(), order, SCORE_K, exclude=data.seen,
                                    chunk_size=self._chunk_size())
        return ndcg_at_k(rankings, relevant, SCORE_K)

    # ------------------------------------------------------------------ model hooks
    def _fit_model(self, data):  # pragma: no cover - abstract
        raise NotImplementedError

    def _score_users(self, users, catalog=None):
        """Scores of encoded ``users`` (int array) against every catalog item: a (n, n_items) tensor.

        The default asks the trained ``module_`` (its ``score_users``); ``catalog`` is its
        catalog item vectors when the caller computed them once (:meth:`_user_scorer`).
        """
        users = torch.as_tensor(users, device=self._inference_device())
        if catalog is None:
            return self.module_.score_users(users)
        return self.module_.score_users(users, item_vectors=catalog)

    def _user_scorer(self):
        """``users -> scores`` for one ranking pass: the catalog's item vectors computed once.

        Ranking many users goes chunk by chunk (:func:`~invrec.utils.ranking.chunked_top_k`);
        a model whose ``module_`` has ``item_vectors`` and a ``score_users`` that takes them
        (``item_vectors=``) projects the catalog's content once for the whole pass instead of
        once per chunk. Other models score as before.
        """
        module = getattr(self, "module_", None)
        if not (hasattr(module, "item_vectors") and _takes(getattr(module, "score_users", None), "item_vectors")):
            return self._score_users
        with torch.no_grad():
            catalog = module.item_vectors()
        return functools.partial(self._score_users, catalog=catalog)

    def _score_pairs(self, users, items):
        """Scores of encoded (user, item) pairs: the default calls ``module_(users, items)``."""
        device = self._inference_device()
        return self.module_(torch.as_tensor(users, device=device), torch.as_tensor(items, device=device))

    def _score_new_items(self, users, features):
        """Scores of encoded users against items unknown at fit time, from their content alone.

        ``features`` is the (n_new, d) content tensor prepared like the training content. The
        default asks ``module_.score_new_items``; models without a content part cannot do this.
        """
        module = getattr(self, "module_", None)
        if not getattr(module, "has_content", False):
            raise ValueError(
                f"{type(self).__name__} cannot score items unknown at fit time: it has no content "
                "model. Refit with those items in item_features."
            )
        device = self._inference_device()
        return module.score_new_items(torch.as_tensor(users, device=device), features.to(device))

    def _chunk_size(self):
        """Users scored at once: about 2**24 scores per chunk."""
        return max(1, min(4096, (1 << 24) // max(self.n_items_, 1)))

    # ------------------------------------------------------------------ inference
    def _check_fitted(self):
        if not hasattr(self, "item_ids_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "interactions first."
            )

    def _encode_users(self, users):
        """Encoded users and a mask of the known ones; unknown ones raise unless 'ignore'.

        Users that are all unknown because their ids differ from the fitted ones in type only
        (``"0"`` for ``0``) raise even with 'ignore': skipping them would skip everyone.
        """
        return self._encode_ids(users, self._user_index, "users", "user id(s) were not seen in fit",
                                "known users")

    def _encode_items(self, items):
        """Encoded catalog items and a mask of the known ones, as :meth:`_encode_users` for users."""
        return self._encode_ids(items, self._item_index, "items", "item id(s) are not in the catalog",
                                "catalog items")

    def _encode_ids(self, values, index, name, unknown, known_ones):
        """Raw ids, their codes in ``index`` and the mask of the known ones (``handle_unknown``)."""
        values = as_id_array(values, name)
        codes = index.get_indexer(values)
        known = codes >= 0
        if not known.all() and (self.handle_unknown == "error" or not known.any()):
            hint = type_mismatch_hint(values[~known], index)
            if self.handle_unknown == "error" or hint:
                shown = pd.unique(values[~known])[:5].tolist()
                raise ValueError(
                    f"{int((~known).sum())} {unknown}, e.g. {shown}.{hint} Pass "
                    f"{known_ones}, or set handle_unknown='ignore' to skip them."
                )
        return values, codes, known

    def predict(self, X: InteractionsLike, *, item_features: ItemFeatures | dict | None = None) -> np.ndarray:
        """Score each (user, item) row of ``X``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n, 2)
            Rows to score (raw ids).
        item_features : ItemFeatures or dict, default=None
            Content of items that are not in the catalog: they are scored from their content
            alone (models with a content part only).

        Returns
        -------
        scores : ndarray of shape (n,)
            Higher means more likely to interact. With ``handle_unknown="ignore"``, rows with an
            unknown user or item are NaN.

        Notes
        -----
        Rows are scored in chunks of at most :data:`PREDICT_CHUNK_SIZE` (and, for items scored
        from content alone, at most :data:`PREDICT_CHUNK_SCORES` scores against the new items
        at once), so the working memory beyond the input and the output does not grow with the
        number of rows.
        """
        self._check_fitted()
        table, _ = check_interactions(X, allow_empty=True)   # no rows (an empty recommend): no scores
        _, u, known_u = self._encode_users(table[USER].to_numpy())
        i = self._item_index.get_indexer(table[ITEM])
        out = np.full(len(table), np.nan)
        new_rows = known_u & (i < 0)
        if new_rows.any():
            if item_features is not None:
                raw = table[ITEM].to_numpy()[new_rows]
                new_ids, new_content = self._new_item_content(item_features, raw)
                col = pd.Index(new_ids).get_indexer(raw)
                where, users = np.flatnonzero(new_rows), u[new_rows]
                step = _chunk_rows(len(new_ids))
                for start in range(0, len(where), step):
                    part = slice(start, start + step)
                    with torch.no_grad():                    # (chunk, n_new) scores, then the pairs
                        scores = self._score_new_items(users[part], new_content)
                        picked = scores[torch.arange(len(col[part]), device=scores.device),
                                        torch.as_tensor(col[part], device=scores.device)]
                    out[where[part]] = picked.cpu().double().numpy()
            elif self.handle_unknown == "error":
                self._raise_unknown_items(table[ITEM].to_numpy()[i < 0])
        where = np.flatnonzero(known_u & (i >= 0))
        step = _chunk_rows(1)
        for start in range(0, len(where), step):
            rows = where[start:start + step]
            with torch.no_grad():
                out[rows] = self._score_pairs(u[rows], i[rows]).cpu().double().numpy()
        return out

    def recommend(self, users: ArrayLike, n: int = 10, *, exclude_seen: bool = True,
                  items: ArrayLike | None = None, exclude: InteractionsLike | None = None,
                  item_features: ItemFeatures | dict | None = None) -> pd.DataFrame:
        """Top-``n`` items for each user.

        Parameters
        ----------
        users : array-like of raw user ids, or one id
        n : int, default=10
            Length of each list (shorter when fewer candidates remain).
        exclude_seen : bool, default=True
            Leave out every (user, item) pair ``fit`` saw: the rows of ``X`` (the share carved
            from it for early stopping included) and the rows given as ``validation_data``.
            ``score(X)`` keeps the pairs of ``X`` itself in (they are its relevant items), so
            ``score(validation_data)`` is the validation metric early stopping saw.
        items : array-like of raw item ids, default=None
            Candidates to rank; None ranks the whole catalog (and the new items of
            ``item_features``). Ids outside the catalog need ``item_features``, unless
            ``handle_unknown="ignore"`` (then they are dropped).
        exclude : DataFrame or array-like of shape (m, 2), default=None
            Further (user, item) pairs to leave out, for example the validation interactions.
        item_features : ItemFeatures or dict, default=None
            Content of candidate items unknown at fit time (new items), scored from content
            alone. With ``items=None``, every item of ``item_features`` outside the catalog is
            a candidate next to the catalog; the catalog items in it keep their fitted model.

        Returns
        -------
        DataFrame
            Columns ``user``, ``item``, ``score``, ``rank`` (1-based), users in the given order.
            With ``handle_unknown="ignore"``, unknown users get no rows.
        """
        self._check_fitted()
        n = check_int(n, "n")
        exclude_seen = check_bool(exclude_seen, "exclude_seen")
        users, codes, known = self._encode_users(users)
        users, codes = users[known], codes[known]
        candidates, new_ids, new_content = self._candidates(items, item_features)
        if exclude_seen:
            seen = self._exclusions(exclude)
        else:
            seen = None if exclude is None else self._exclusions(exclude, include_training=False)
        score_users = self._user_scorer()
        if new_ids is None:
            top, values = chunked_top_k(score_users, codes, n, exclude=seen,
                                        candidates=candidates, chunk_size=self._chunk_size())
            return rankings_to_frame(users, top, values, item_ids=self.item_ids_)
        # Candidates include items unknown at fit time: score them from content next to the catalog.
        n_new = len(new_ids)
        wide_seen = None if seen is None else sp.hstack([seen, sp.csr_array((seen.shape[0], n_new))]).tocsr()
        wide_candidates = np.concatenate([candidates if candidates is not None else np.ones(self.n_items_, bool),
                                          np.ones(n_new, bool)])

        def score_fn(chunk):
            known_scores = score_users(chunk)
            return torch.cat([known_scores, self._score_new_items(chunk, new_content).to(known_scores.device)], dim=1)

        top, values = chunked_top_k(score_fn, codes, n, exclude=wide_seen, candidates=wide_candidates,
                                    chunk_size=self._chunk_size())
        return rankings_to_frame(users, top, values, item_ids=_join_ids(self.item_ids_, new_ids))

    def score(self, X: InteractionsLike, y: ArrayLike | None = None) -> float:
        """NDCG@20 of the held-out interactions ``X``, ranking the catalog with seen items excluded.

        This is :func:`invrec.metrics.make_ranking_scorer` ``("ndcg", k=20)``: the users of
        ``X`` are ranked against every catalog item except their training items, and each user's
        rows in ``X`` are the relevant items. Use that function for other metrics or candidates.

        Returns
        -------
        score : float
        """
        self._check_fitted()
        if self.handle_unknown == "ignore":
            table, y = check_interactions(X, y)
            keep = self._user_index.get_indexer(table[USER]) >= 0
            X, y = table.loc[keep], None if y is None else y[keep]
        return make_ranking_scorer(SCORE_METRIC, k=SCORE_K)(self, X, y)

    # ------------------------------------------------------------------ learned vectors
    @property
    def user_embeddings_(self) -> np.ndarray:
        """Learned user vectors, one row per user in the order of ``user_ids_``.

        A read-only copy (``ndarray`` of shape ``(n_users_, d)``): writing to it raises, and the
        model never changes under it. The vectors are the ones the model scores with
        (``module_.user_vectors()``; their dot product with ``item_embeddings_`` is the score of
        a ranking model). Raises :class:`~sklearn.exceptions.NotFittedError` before ``fit``, and
        an ``AttributeError`` for an estimator without learned vectors
        (:class:`~invrec.baselines.PopularityRecommender`).
        """
        return self._embeddings("user")

    @property
    def item_embeddings_(self) -> np.ndarray:
        """Learned item vectors, one row per catalog item in the order of ``item_ids_``.

        A read-only copy (``ndarray`` of shape ``(n_items_, d)``), as :attr:`user_embeddings_`:
        ``module_.item_vectors()``, the id part next to the content part where the model has one
        (a new item scored from content alone has no row here). Raises
        :class:`~sklearn.exceptions.NotFittedError` before ``fit``, and an ``AttributeError``
        for an estimator without learned vectors.
        """
        return self._embeddings("item")

    def similar_items(self, items: ArrayLike, n: int = 10) -> pd.DataFrame:
        """The ``n`` catalog items most similar to each of ``items``, by cosine of their vectors.

        Similarity is the cosine between rows of :attr:`item_embeddings_` (the vectors the model
        scores with); each item is left out of its own list. Scored in chunks of items against
        the catalog, so memory stays bounded whatever the catalog's size.

        Parameters
        ----------
        items : array-like of raw item ids, or one id
            Catalog items to find neighbours for. An id outside the catalog raises a
            ``ValueError``, or, with ``handle_unknown="ignore"``, gets no rows.
        n : int, default=10
            Neighbours per item (fewer when the catalog has at most ``n`` items).

        Returns
        -------
        DataFrame
            The long format of :meth:`recommend`: columns ``item`` (the query), ``similar_item``,
            ``score`` (the cosine similarity, in [-1, 1]) and ``rank`` (1-based), queries in the
            given order.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        AttributeError
            If the estimator learns no vectors (popularity ranks by counts: nothing to compare).
        ValueError
            For unknown ids (see ``items``).

        See Also
        --------
        similar_users : The same for users.

        Examples
        --------
        >>> from invrec.baselines import UltraGCNRecommender
        >>> from invrec.datasets import make_multimodal_interactions
        >>> data = make_multimodal_interactions(n_users=30, n_items=20, random_state=0)
        >>> model = UltraGCNRecommender(max_epochs=1, embedding_dim=8, content_dim=8,
        ...                             early_stopping=False, random_state=0)
        >>> model = model.fit(data.interactions, item_features=data.item_features)
        >>> neighbours = model.similar_items([0, 1], n=3)
        >>> neighbours.columns.tolist()
        ['item', 'similar_item', 'score', 'rank']
        >>> neighbours.groupby("item").size().tolist()
        [3, 3]
        """
        return self._similar("item", items, n)

    def similar_users(self, users: ArrayLike, n: int = 10) -> pd.DataFrame:
        """The ``n`` users most similar to each of ``users``, by cosine of their vectors.

        Similarity is the cosine between rows of :attr:`user_embeddings_`; each user is left out
        of its own list. Scored in chunks of users against every user, memory bounded.

        Parameters
        ----------
        users : array-like of raw user ids, or one id
            Users seen in fit. An unknown id raises a ``ValueError``, or, with
            ``handle_unknown="ignore"``, gets no rows.
        n : int, default=10
            Neighbours per user (fewer when there are at most ``n`` users).

        Returns
        -------
        DataFrame
            Columns ``user`` (the query), ``similar_user``, ``score`` (the cosine similarity)
            and ``rank`` (1-based), queries in the given order.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        AttributeError
            If the estimator learns no vectors.
        ValueError
            For unknown ids (see ``users``).

        See Also
        --------
        similar_items : The same for items.
        """
        return self._similar("user", users, n)

    def _similar(self, kind, ids, n):
        """Neighbours of ``kind`` ("user" or "item") by cosine of the learned vectors."""
        module = self._vector_module(f"similar_{kind}s")
        n = check_int(n, "n")
        if kind == "user":
            ids, codes, known = self._encode_users(ids)
        else:
            ids, codes, known = self._encode_items(ids)
        with torch.no_grad():
            vectors = module.user_vectors() if kind == "user" else module.item_vectors()
        neighbours, similarity = similar_rows(vectors, codes[known], n)
        return rankings_to_frame(ids[known], neighbours, similarity,
                                 item_ids=self.user_ids_ if kind == "user" else self.item_ids_,
                                 columns=(kind, f"similar_{kind}"))

    def _embeddings(self, kind):
        """A read-only CPU copy of the module's user or item vectors."""
        module = self._vector_module(f"{kind}_embeddings_")
        with torch.no_grad():
            vectors = module.user_vectors() if kind == "user" else module.item_vectors()
        out = vectors.detach().to("cpu", copy=True).numpy()
        out.flags.writeable = False
        return out

    def _vector_module(self, what):
        """The fitted ``module_`` when it has user and item vectors; else why ``what`` is missing."""
        self._check_fitted()
        module = getattr(self, "module_", None)
        if not all(callable(getattr(module, name, None)) for name in ("user_vectors", "item_vectors")):
            raise AttributeError(
                f"{type(self).__name__} has no {what}: it learns no user and item vectors (its "
                "scores do not come from a model with user_vectors() and item_vectors()), so "
                "there is nothing to compare or expose. Use an estimator that learns vectors, "
                "such as UltraGCNRecommender, PaInvRLRecommender, EIORRecommender or "
                "MILKRecommender."
            )
        return module

    @contextlib.contextmanager
    def _scoring_pairs(self, table):
        """Keep the (user, item) pairs of ``table`` in the rankings while a scorer scores them.

        They are the scorer's relevant items: ``recommend(exclude_seen=True)`` otherwise leaves
        out the ``validation_data`` rows given to fit, so ``score(validation_data)`` would rank
        its own targets away. Used by :func:`invrec.metrics.make_ranking_scorer`'s scorers.
        """
        if getattr(self, "_validation_seen", None) is None:
            yield
            return
        u, i = self._user_index.get_indexer(table[USER]), self._item_index.get_indexer(table[ITEM])
        ok = (u >= 0) & (i >= 0)
        self._scored_pairs = _csr(u[ok], i[ok], (self.n_users_, self.n_items_))
        try:
            yield
        finally:
            self.__dict__.pop("_scored_pairs", None)

    def _candidates(self, items, item_features):
        """Candidate mask over the catalog, plus ids and content of new items (or None)."""
        if items is None:
            if item_features is None:
                return None, None, None
            # The new items of item_features join the catalog as candidates.
            features = _as_item_features(item_features)
            new = features.item_ids[self._item_index.get_indexer(features.item_ids) < 0]
            if len(new) == 0:
                return None, None, None
            new_ids, content = self._new_item_content(features, new)
            return None, new_ids, content
        items = as_id_array(items, "items")
        pos = self._item_index.get_indexer(items)
        mask = np.zeros(self.n_items_, dtype=bool)
        mask[pos[pos >= 0]] = True
        unknown = items[pos < 0]
        if len(unknown) == 0:
            return mask, None, None
        if item_features is not None:
            new_ids, content = self._new_item_content(item_features, unknown)
            return mask, new_ids, content
        if self.handle_unknown == "error":
            self._raise_unknown_items(unknown)
        return mask, None, None

    def _new_item_content(self, item_features, item_ids):
        """Content tensor of items unknown at fit time, prepared like the training content."""
        if self.item_features_ is None:
            raise ValueError(f"{type(self).__name__} was fitted without item_features; it cannot score new items.")
        features = _as_item_features(item_features)
        ids = pd.unique(np.asarray(item_ids))
        hint = type_mismatch_hint(ids, self._item_index)
        if hint:                        # "0" for the catalog's 0 would be scored as a new item
            raise ValueError(f"{len(ids)} item id(s) are not in the catalog, e.g. {ids[:5].tolist()}.{hint}")
        try:
            features = features.reindex(ids).select_modalities(self.item_features_.modalities)
        except KeyError as exc:
            raise ValueError(f"item_features lacks items or modalities to score: {exc.args[0]}") from None
        if features.dims != self.item_features_.dims:
            raise ValueError(
                f"item_features has modality widths {features.dims}; the model was fitted with "
                f"{self.item_features_.dims}."
            )
        device = self._inference_device()
        content, _, _ = self._content(features, device=device)
        return ids, content

    def _exclusions(self, exclude, include_training=True):
        """CSR (n_users, n_items) of pairs to leave out of rankings.

        With ``include_training``: the rows of ``X`` and of ``validation_data`` given to fit,
        less the pairs ``score`` is scoring (``_scored_pairs``, its relevant items).
        """
        if include_training:
            seen = self._seen
            given = getattr(self, "_validation_seen", None)
            if given is not None:
                scored = getattr(self, "_scored_pairs", None)
                if scored is not None:
                    given = (given - given.multiply(scored > 0)).tocsr()
                    given.eliminate_zeros()
                seen = (seen + given).tocsr()
        else:
            seen = sp.csr_array(self._seen.shape, dtype=self._seen.dtype)
        if exclude is None:
            return seen
        table, _ = check_interactions(exclude, name="exclude")
        u = self._user_index.get_indexer(table[USER])
        i = self._item_index.get_indexer(table[ITEM])
        ok = (u >= 0) & (i >= 0)
        if not ok.any():                # ids of another type would silently exclude nothing
            hint = (type_mismatch_hint(table[USER].to_numpy(), self._user_index)
                    or type_mismatch_hint(table[ITEM].to_numpy(), self._item_index))
            if hint:
                raise ValueError(f"exclude shares no (user, item) pair with the fitted ids.{hint}")
        return (seen + _csr(u[ok], i[ok], seen.shape)).tocsr()

    def _raise_unknown_items(self, unknown):
        unknown = pd.unique(np.asarray(unknown))
        raise ValueError(
            f"{len(unknown)} item id(s) are not in the catalog, e.g. {unknown[:5].tolist()}."
            f"{type_mismatch_hint(unknown, self._item_index)} "
            "Pass their content with item_features=... to score them from content alone, or set "
            "handle_unknown='ignore' to skip them."
        )

    def _inference_device(self):
        """Where fitted tensors live now (the CPU after unpickling without CUDA)."""
        module = getattr(self, "module_", None)
        if isinstance(module, torch.nn.Module):
            for tensor in module.parameters():
                return tensor.device
            for tensor in module.buffers():
                return tensor.device
        return torch.device("cpu")

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        state.pop("_content_buffers_left_out", None)
        left_out = self._content_buffers_to_leave_out(state)
        for name in self._torch_attributes:
            value = state.get(name)
            if isinstance(value, torch.nn.Module):
                # Copy the module without the buffers left out (a memo entry maps each to None).
                memo = {id(buffer): None for (attr, _), buffer in left_out.items() if attr == name}
                value = copy.deepcopy(value, memo)
                for (attr, buffer_name) in left_out:
                    if attr == name:
                        value._buffers[buffer_name] = None
                state[name] = value.to("cpu")
            elif isinstance(value, torch.Tensor):
                state[name] = value.cpu()
        if left_out:
            state["_content_buffers_left_out"] = [(attr, buffer_name, tensor.dtype)
                                                  for (attr, buffer_name), tensor in left_out.items()]
        state.pop("_user_index", None)
        state.pop("_item_index", None)
        state.pop("_warm", None)        # optimizer moments and stages: in memory only (WarmState)
        return state

    def _content_buffers_to_leave_out(self, state):
        """The content buffers (:attr:`_content_buffers`) that unpickling can rebuild bit for bit.

        A buffer is left out only when the content rebuilt from ``item_features_`` now equals
        it exactly (same shape, dtype and bits); any other buffer stays in the pickle.

        Returns
        -------
        dict of (str, str) -> Tensor
            ``(attribute, buffer name)`` -> the buffer, for each one to leave out.
        """
        if state.get("item_features_") is None or not hasattr(self, "_fill_values"):
            return {}
        buffers = {}
        for attr, buffer_name in self._content_buffers:
            module = state.get(attr)
            tensor = getattr(module, "_buffers", {}).get(buffer_name) if isinstance(module, torch.nn.Module) else None
            if isinstance(tensor, torch.Tensor) and tensor.numel() > 0:
                buffers[attr, buffer_name] = tensor
        if not buffers:
            return {}
        try:
            rebuilt = self._rebuild_content()
        except Exception:  # noqa: BLE001 - a model that cannot rebuild its content keeps it in the pickle
            return {}
        return {key: tensor for key, tensor in buffers.items()
                if tensor.shape == rebuilt.shape
                and torch.equal(rebuilt.to(tensor.dtype), tensor.detach().to("cpu"))}

    def _rebuild_content(self):
        """The content tensor fit prepared, rebuilt on the CPU from ``item_features_``.

        ``item_features_`` normalised, filled with the values fit kept (``_fill_values``, or
        MILK's imputer) and concatenated: what ``fit`` put in ``FitData.features``.
        """
        content, _, _ = self._content(self.item_features_, device=torch.device("cpu"))
        return content

    def __setstate__(self, state):
        state = dict(state)
        left_out = state.pop("_content_buffers_left_out", None)
        super().__setstate__(state)
        if left_out:
            self._restore_content_buffers(left_out)
        if "user_ids_" in state:
            self._user_index = pd.Index(self.user_ids_)
            self._item_index = pd.Index(self.item_ids_)
        target = getattr(self, "device", "cpu")
        if getattr(self, "device_", "cpu").startswith("cuda") and not torch.cuda.is_available():
            if target not in ("auto", "cpu", None):
                warnings.warn(
                    f"This model was trained on {self.device_} but CUDA is not available here; it "
                    "runs on the CPU.", stacklevel=2,
                )
            return
        if str(target).startswith("cuda") or (target == "auto" and torch.cuda.is_available()):
            device = resolve_device(target)
            for name in self._torch_attributes:
                value = getattr(self, name, None)
                if isinstance(value, (torch.nn.Module, torch.Tensor)):
                    setattr(self, name, value.to(device))

    def _restore_content_buffers(self, left_out):
        """Put back the content buffers :meth:`__getstate__` left out, rebuilt from ``item_features_``."""
        content = self._rebuild_content()
        for attr, buffer_name, dtype in left_out:
            module = getattr(self, attr, None)
            if not isinstance(module, torch.nn.Module) or buffer_name not in module._buffers:
                raise ValueError(f"the pickled {type(self).__name__} has no {attr}.{buffer_name} buffer to "
                                 "rebuild its content into; the pickle is damaged.")
            tensor = content.to(dtype)
            expected = getattr(module, "n_items", tensor.shape[0])
            if tensor.shape[0] != expected:
                raise ValueError(f"the pickled {type(self).__name__}'s item_features_ has {tensor.shape[0]} "
                                 f"items but {attr} scores {expected}; the pickle is damaged.")
            module._buffers[buffer_name] = tensor


# ---------------------------------------------------------------------- helpers
def reject_renamed(init):
    """Decorate an ``__init__``: a former parameter (``_renamed_parameters``) raises a TypeError
    naming its new spelling. The signature seen by scikit-learn stays the real one."""

    @functools.wraps(init)
    def checked(self, *args, **kwargs):
        renamed = type(self)._renamed_parameters
        for key in kwargs:
            if key in renamed:
                raise TypeError(_renamed_message(type(self).__name__, key, renamed[key]))
        return init(self, *args, **kwargs)

    return checked


def _renamed_message(owner, key, hint):
    return f"{owner} has no parameter {key!r} any more: {hint}."


def _join_ids(first, second):
    """``first`` then ``second``: one array, each id keeping its type (numpy would turn ints
    joined to strings into strings, and uint64 joined to int64 into floats)."""
    first, second = np.asarray(first), np.asarray(second)
    if first.dtype == second.dtype:
        return np.concatenate([first, second])
    return _clean_id_column(np.concatenate([first.astype(object), second.astype(object)]))


def _check_weights(y):
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("y must be numeric: one weight per interaction.") from None
    if not np.isfinite(y).all():
        raise ValueError("y holds NaN or inf; give every interaction a finite weight.")
    limit = float(np.finfo(np.float32).max)
    if y.size and np.abs(y).max() > limit:
        raise ValueError(f"y holds values beyond float32's range (|y| > {limit:.3g}), where models "
                         "train; rescale y (a model reads only the ratios of the weights).")
    return y


def _no_training_content(modality, features, n_reference):
    """The error of a fit where no trained item has ``modality``: its missing rows have no mean."""
    others = [m for m in features.modalities if m != modality]
    drop = (f"drop it: item_features.select_modalities({others!r})" if others
            else "fit without item_features")
    return ValueError(
        f"item_features' modality {modality!r} is missing for all {n_reference} item(s) of the "
        "training rows, so the missing rows of that modality cannot be filled with the training "
        f"items' mean. Give some items of X content for {modality!r}, or {drop}."
    )


def _as_item_features(item_features):
    if item_features is None or isinstance(item_features, ItemFeatures):
        return item_features
    if isinstance(item_features, dict):
        return ItemFeatures(item_features)
    raise TypeError(
        "item_features must be an invrec.ItemFeatures or a dict of modality -> DataFrame indexed "
        f"by item id; got {type(item_features).__name__}."
    )


def _chunk_rows(width):
    """Rows of ``predict`` per chunk when each row costs ``width`` scores (module constants)."""
    return max(1, min(PREDICT_CHUNK_SIZE, PREDICT_CHUNK_SCORES // max(int(width), 1)))


def _csr(rows, cols, shape):
    data = np.ones(len(rows), dtype=np.float32)
    out = sp.csr_array((data, (np.asarray(rows), np.asarray(cols))), shape=shape)
    out.sum_duplicates()
    out.data[:] = 1.0
    return out


def _progress(total, verbose, name):
    """A tqdm bar over ``total`` epochs when ``verbose``, else None."""
    return progress_bar(total, verbose, f"{name} epochs")
