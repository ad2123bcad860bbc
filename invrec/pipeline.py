"""Pipelines that end in a recommender: ``recommend``, ranking scorers and item content through.

A scikit-learn :class:`~sklearn.pipeline.Pipeline` chains transformers of ``X`` in front of an
estimator. Before a recommender three more things are needed, which
:class:`RecommenderPipeline` (a ``Pipeline`` subclass; :func:`make_pipeline` names its steps)
adds:

* ``recommend`` (and the fitted attributes ``unseen_items_``, ``item_ids_``, ...) reach the final
  recommender, so the ranking scorers of :mod:`invrec.metrics` and ``GridSearchCV`` work on it;
* steps that change the training rows, such as :class:`~invrec.preprocessing.KCoreFilter`
  (*samplers*: they have ``fit_resample(X, y)``), act during ``fit`` only;
* steps that transform the item content (:class:`~invrec.preprocessing.ItemFeaturesTransformer`,
  such as :class:`~invrec.preprocessing.ModalityTransformer`) get the ``item_features`` of
  ``fit``, and transform the new items' ``item_features`` of ``predict`` and ``recommend``.

The ranking and rating scorers also see through a plain ``Pipeline``
(:func:`resolve_final_step`): they score its final step on ``X`` as its transform steps leave it.
"""

from __future__ import annotations

import copy
import time
from collections import Counter

from sklearn import get_config
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, check_memory

from .preprocessing import ItemFeaturesTransformer
from .utils.params import validate_parameters

__all__ = ["RecommenderPipeline", "make_pipeline", "resolve_final_step"]

#: Arguments of ``fit`` the pipeline routes itself: through the steps to the final recommender.
FIT_ARGUMENTS = ("item_features", "validation_data")

SAMPLER, CONTENT, TRANSFORMER = "sampler", "item_features", "transformer"


def _kind(step):
    """What a step works on: the training rows (sampler), the item content or ``X``."""
    if isinstance(step, ItemFeaturesTransformer):
        return CONTENT
    if hasattr(step, "fit_resample"):
        return SAMPLER
    return TRANSFORMER


def _is_passthrough(step):
    return step is None or (isinstance(step, str) and step == "passthrough")


def _final_has(attribute):
    """``available_if`` check: the final step has ``attribute``."""
    def check(self):
        final = self.steps[-1][1]
        return not _is_passthrough(final) and hasattr(final, attribute)
    return check


def _fit_step(step, kind, X, y, item_features, params):
    """Fit one intermediate step; returns it with ``X``, ``y`` and ``item_features`` after it.

    A module-level function, so that ``memory`` can cache it.
    """
    if kind == SAMPLER:
        X, y = step.fit_resample(X, y, **params)
    elif kind == CONTENT:
        item_features = step.fit_transform(item_features, **params)
    elif hasattr(step, "fit_transform"):
        X = step.fit_transform(X, y, **params)
    else:
        X = step.fit(X, y, **params).transform(X)
    return step, X, y, item_features


class RecommenderPipeline(Pipeline):
    """A scikit-learn Pipeline whose final step is a recommender.

    It is a :class:`sklearn.pipeline.Pipeline` (``get_params`` / ``set_params`` with
    ``step__param`` names, ``clone``, slicing, pickling, ``GridSearchCV``) whose steps are of
    three kinds, told apart by what they have:

    * **samplers** (``fit_resample(X, y)``, as :class:`~invrec.preprocessing.KCoreFilter`)
      change the training rows and ``y``; they act in ``fit`` only and are skipped by
      ``predict``, ``score`` and the scorers, which see every held-out row;
    * **item-content steps** (:class:`~invrec.preprocessing.ItemFeaturesTransformer`
      subclasses, as :class:`~invrec.preprocessing.ModalityTransformer`) are fitted on the
      ``item_features`` given to ``fit`` and transform it, and the ``item_features`` of new items
      given to ``predict`` or ``recommend``; they never see ``X``;
    * **transformers** of ``X`` (any other step: ``fit_transform`` / ``transform``) work as in a
      scikit-learn Pipeline: in ``fit`` (also on ``validation_data``) and at inference.

    The final step is fitted on the result, with the transformed ``item_features`` and
    ``validation_data``. Intermediate steps are cloned before they are fitted (a failed fit
    leaves the pipeline's steps as they were); read the fitted ones with ``named_steps``.

    Parameters
    ----------
    steps : list of (str, estimator) tuples
        The steps in order; the last one is the recommender. An intermediate step may be
        ``"passthrough"`` or None (skipped).
    memory : str or object with the joblib.Memory interface, default=None
        Caches the fitted intermediate steps, as in scikit-learn.
    verbose : bool, default=False
        Print the time each step took to fit.

    Attributes
    ----------
    named_steps : Bunch
        The steps by name.
    unseen_items_, item_ids_, user_ids_, n_items_, item_features_, history_, ...
        Any fitted attribute of the final step (a public name ending in ``_``) reads through.

    See Also
    --------
    make_pipeline : The same, with step names derived from the classes.
    resolve_final_step : The final step of a (plain or invrec) pipeline and the ``X`` it sees.

    Notes
    -----
    Metadata: ``fit(X, y, item_features=..., validation_data=...)`` passes both on to the final
    step whatever scikit-learn's ``enable_metadata_routing`` says (the pipeline requests them
    itself, so ``GridSearchCV(pipeline).fit(X, item_features=...)`` works either way). Other fit
    parameters of a step are given as ``step__param`` (routing off) or routed by their requests
    (routing on) to the intermediate steps; ``finalstep__item_features`` is read as
    ``item_features``.

    Examples
    --------
    >>> import pandas as pd
    >>> from invrec.baselines import PopularityRecommender
    >>> from invrec.pipeline import make_pipeline
    >>> from invrec.preprocessing import KCoreFilter
    >>> X = pd.DataFrame({"user": ["a", "a", "b", "b", "c"], "item": ["x", "y", "x", "z", "x"]})
    >>> pipe = make_pipeline(KCoreFilter(min_user_interactions=2, min_item_interactions=1),
    ...                      PopularityRecommender()).fit(X)
    >>> pipe.recommend(["a"], n=1)
      user item  score  rank
    0    a    z    1.0     1
    >>> pipe.set_params(kcorefilter__min_user_interactions=3).get_params()["kcorefilter"]
    KCoreFilter(min_item_interactions=1, min_user_interactions=3)
    """

    _parameter_constraints = {
        "steps": [list, tuple],
        "memory": "no_validation",
        "verbose": ["boolean"],
    }

    # The pipeline consumes these fit arguments itself (see Notes): requested by default.
    __metadata_request__fit = {name: True for name in FIT_ARGUMENTS}

    def __init__(self, steps, *, memory=None, verbose=False):
        self.steps = steps
        self.memory = memory
        self.verbose = verbose

    # ------------------------------------------------------------------ steps
    def _validate_steps(self):
        """Check the steps: unique names, samplers and content steps, transformers, a final fit."""
        if not isinstance(self.steps, (list, tuple)) or not self.steps:
            raise ValueError("RecommenderPipeline needs a non-empty list of (name, estimator) "
                             f"steps, the last one a recommender; got {self.steps!r}.")
        if not all(isinstance(s, tuple) and len(s) == 2 for s in self.steps):
            raise TypeError("each step must be a (name, estimator) tuple; use "
                            "invrec.pipeline.make_pipeline(...) to name them from their classes.")
        names, estimators = zip(*self.steps)
        self._validate_names(names)
        for name, step in self.steps[:-1]:
            if _is_passthrough(step):
                continue
            kind = _kind(step)
            ready = (kind != TRANSFORMER
                     or ((hasattr(step, "fit") or hasattr(step, "fit_transform")) and hasattr(step, "transform")))
            if not ready:
                raise TypeError(f"step {name!r} ({type(step).__name__}) is not a transformer (fit and "
                                "transform), a sampler (fit_resample) or an ItemFeaturesTransformer; "
                                "only the last step may be a recommender.")
        final = estimators[-1]
        if _is_passthrough(final) or not hasattr(final, "fit"):
            raise TypeError(f"the last step of a RecommenderPipeline is the recommender, with fit; "
                            f"got {final!r}.")

    def _intermediate(self, *kinds):
        """``(name, step)`` of the intermediate steps of the given kinds, passthrough left out."""
        return [(name, step) for name, step in self.steps[:-1]
                if not _is_passthrough(step) and _kind(step) in kinds]

    def _inference_steps(self):
        """The fitted intermediate steps that transform ``X`` at inference (not samplers)."""
        return [step for _, step in self._intermediate(TRANSFORMER)]

    def _transform_interactions(self, X):
        """``X`` as the final step sees it at inference: through the transformers of ``X`` only."""
        for step in self._inference_steps():
            X = step.transform(X)
        return X

    def _transform_item_features(self, item_features):
        """``item_features`` through the fitted item-content steps (None stays None)."""
        if item_features is None:
            return None
        for _, step in self._intermediate(CONTENT):
            item_features = step.transform(item_features)
        return item_features

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, item_features=None, validation_data=None, **params):
        """Fit the steps in order, then the recommender on what they give.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_interactions, 2)
            Training interactions.
        y : array-like of shape (n_interactions,), default=None
            Per-interaction weights or ratings, filtered along with ``X`` by the samplers.
        item_features : ItemFeatures or dict, default=None
            Item content: fitted on and transformed by the item-content steps, then given to
            the recommender's ``fit``.
        validation_data : DataFrame or array-like, default=None
            Held-out interactions for early stopping: transformed by the transformers of ``X``
            (not by the samplers), then given to the recommender's ``fit``.
        **params : dict
            Fit parameters of the steps, ``step__param`` (see the class Notes).

        Returns
        -------
        self : RecommenderPipeline
        """
        validate_parameters(self)
        self._validate_steps()
        item_features, validation_data, per_step = self._fit_parameters(item_features, validation_data, params)
        memory = check_memory(self.memory)
        fit_step = memory.cache(_fit_step)
        steps = list(self.steps)
        for index, (name, step) in enumerate(steps[:-1]):
            if _is_passthrough(step):
                continue
            kind = _kind(step)
            if kind == CONTENT and item_features is None:
                raise ValueError(f"step {name!r} ({type(step).__name__}) transforms the item content, "
                                 "but fit was given no item_features; pass fit(X, item_features=...) "
                                 "or remove the step.")
            started = time.perf_counter()
            fitted, X, y, item_features = fit_step(clone(step), kind, X, y, item_features, per_step.get(name, {}))
            if kind == TRANSFORMER and validation_data is not None:
                validation_data = fitted.transform(validation_data)
            steps[index] = (name, fitted)
            self._log(index, name, started)
        name, final = steps[-1]
        started = time.perf_counter()
        extra = {key: value for key, value in (("item_features", item_features),
                                               ("validation_data", validation_data)) if value is not None}
        final.fit(X, y, **extra, **per_step.get(name, {}))
        self._log(len(steps) - 1, name, started)
        self.steps = steps
        return self

    def _fit_parameters(self, item_features, validation_data, params):
        """Split ``params`` per step (routing off: ``step__param``; on: the steps' requests)."""
        final_name = self.steps[-1][0]
        given = {"item_features": item_features, "validation_data": validation_data}
        for argument in FIT_ARGUMENTS:          # final__item_features is item_features
            key = f"{final_name}__{argument}"
            if key in params:
                if given[argument] is not None:
                    raise ValueError(f"{argument} was given twice, as {argument}= and {key}=; "
                                     f"pass it once, as {argument}=.")
                given[argument] = params.pop(key)
        if get_config().get("enable_metadata_routing", False):
            if not params:
                return given["item_features"], given["validation_data"], {}
            routed = process_routing(self, "fit", **params)
            per_step = {name: dict(routed[name].fit) for name, _ in self._intermediate(SAMPLER, TRANSFORMER)}
            return given["item_features"], given["validation_data"], per_step
        names = {name for name, _ in self.steps}
        per_step = {}
        for key, value in params.items():
            name, sep, param = key.partition("__")
            if not sep or name not in names:
                raise ValueError(
                    f"RecommenderPipeline.fit does not accept the parameter {key!r}: it takes "
                    f"item_features= and validation_data=, and the fit parameters of a step as "
                    f"stepname__parameter (steps: {sorted(names)}).")
            per_step.setdefault(name, {})[param] = value
        return given["item_features"], given["validation_data"], per_step

    def _log(self, index, name, started):
        if self.verbose:
            print(f"[RecommenderPipeline] (step {index + 1} of {len(self.steps)}) {name} fitted in "
                  f"{time.perf_counter() - started:.1f}s")

    def get_metadata_routing(self):
        """Metadata routing: ``item_features`` and ``validation_data`` are the pipeline's own
        (requested by default); other fit metadata go to the intermediate steps that request it.

        Returns
        -------
        MetadataRouter
        """
        router = MetadataRouter(owner=self).add_self_request(self)
        for name, step in self._intermediate(SAMPLER, TRANSFORMER):   # not the content steps:
            mapping = MethodMapping()                                # the pipeline feeds them
            if _kind(step) == TRANSFORMER and hasattr(step, "fit_transform"):
                mapping.add(caller="fit", callee="fit_transform")
            else:
                mapping.add(caller="fit", callee="fit")
            router.add(method_mapping=mapping, **{name: step})
        return router

    # ------------------------------------------------------------------ inference
    @available_if(_final_has("recommend"))
    def recommend(self, users, n=10, *, exclude_seen=True, items=None, exclude=None, item_features=None):
        """Top-``n`` items for each user, from the final step.

        The arguments are the final step's ``recommend`` (see
        :meth:`invrec.base.BaseRecommender.recommend`); ``item_features`` (content of new items)
        is first transformed by the fitted item-content steps. Users, items and ``exclude`` are
        raw ids, passed as they are.

        Returns
        -------
        DataFrame
            Columns ``user``, ``item``, ``score``, ``rank``.
        """
        check_is_fitted(self)
        extra = {}
        if exclude is not None:
            extra["exclude"] = exclude
        if item_features is not None:
            extra["item_features"] = self._transform_item_features(item_features)
        return self._final_estimator.recommend(users, n, exclude_seen=exclude_seen, items=items, **extra)

    @available_if(_final_has("similar_items"))
    def similar_items(self, items, n=10):
        """The final step's :meth:`~invrec.base.BaseRecommender.similar_items` (raw item ids).

        Returns
        -------
        DataFrame
            Columns ``item``, ``similar_item``, ``score`` (cosine similarity), ``rank``.
        """
        check_is_fitted(self)
        return self._final_estimator.similar_items(items, n)

    @available_if(_final_has("similar_users"))
    def similar_users(self, users, n=10):
        """The final step's :meth:`~invrec.base.BaseRecommender.similar_users` (raw user ids).

        Returns
        -------
        DataFrame
            Columns ``user``, ``similar_user``, ``score`` (cosine similarity), ``rank``.
        """
        check_is_fitted(self)
        return self._final_estimator.similar_users(users, n)

    @available_if(_final_has("predict"))
    def predict(self, X, *, item_features=None):
        """Scores (or ratings) of the ``(user, item)`` rows of ``X``, from the final step.

        ``X`` goes through the transformers of ``X`` (not the samplers), ``item_features``
        through the item-content steps.

        Returns
        -------
        ndarray of shape (n,)
        """
        check_is_fitted(self)
        Xt = self._transform_interactions(X)
        if item_features is None:
            return self._final_estimator.predict(Xt)
        return self._final_estimator.predict(Xt, item_features=self._transform_item_features(item_features))

    @available_if(_final_has("score"))
    def score(self, X, y=None):
        """The final step's ``score`` of the held-out interactions ``X`` (every row of them).

        ``X`` goes through the transformers of ``X``, not through the samplers.

        Returns
        -------
        float
        """
        check_is_fitted(self)
        return self._final_estimator.score(self._transform_interactions(X), y)

    def __getattr__(self, name):
        # Fitted attributes of the final step read through (unseen_items_ for the scorers).
        if name.endswith("_") and not name.startswith("_"):
            steps = self.__dict__.get("steps")
            if steps:
                final = steps[-1][1]
                if not _is_passthrough(final) and hasattr(final, name):
                    return getattr(final, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:                            # X is the final recommender's (ids, strings, 2 columns)
            final = self.steps[-1][1]
            inner = None if _is_passthrough(final) else final.__sklearn_tags__()
        except (AttributeError, IndexError, TypeError, ValueError):
            return tags                 # steps not valid yet: fit will say why
        if inner is not None:
            tags.input_tags = copy.deepcopy(inner.input_tags)
            tags.target_tags.required = inner.target_tags.required
        return tags


def _step_names(estimators):
    """Lower-case class names, numbered (``-1``, ``-2``) where two steps share one."""
    names = [type(est).__name__.lower() if not isinstance(est, str) else est for est in estimators]
    counts = Counter(names)
    seen = Counter()
    named = []
    for name in names:
        if counts[name] > 1:
            seen[name] += 1
            name = f"{name}-{seen[name]}"
        named.append(name)
    return named


def make_pipeline(*steps, memory=None, verbose=False):
    """Build a :class:`RecommenderPipeline`, naming each step after its class (lower case).

    Parameters
    ----------
    *steps : estimators
        Transformers of ``X``, samplers, item-content steps, then the recommender.
    memory : str or object with the joblib.Memory interface, default=None
        Caches the fitted intermediate steps.
    verbose : bool, default=False
        Print the time each step took to fit.

    Returns
    -------
    RecommenderPipeline

    Examples
    --------
    >>> from invrec.baselines import UltraGCNRecommender
    >>> from invrec.pipeline import make_pipeline
    >>> from invrec.preprocessing import KCoreFilter, ModalityTransformer
    >>> pipe = make_pipeline(KCoreFilter(2, 2), ModalityTransformer(), UltraGCNRecommender())
    >>> [name for name, _ in pipe.steps]
    ['kcorefilter', 'modalitytransformer', 'ultragcnrecommender']
    """
    return RecommenderPipeline(list(zip(_step_names(steps), steps)), memory=memory, verbose=verbose)


def resolve_final_step(estimator, X):
    """The estimator that ranks or predicts, and ``X`` as it sees it at inference.

    A :class:`sklearn.pipeline.Pipeline` is resolved to its final step, ``X`` passed through
    its transform steps (for a :class:`RecommenderPipeline`, through its transformers of ``X``
    only: samplers act at fit time); nested pipelines are resolved in turn. Any other estimator
    is returned with ``X`` unchanged. This is how the scorers of :mod:`invrec.metrics` see
    through a pipeline.

    Parameters
    ----------
    estimator : estimator
        A fitted estimator or pipeline.
    X : object
        The held-out interactions given to a scorer.

    Returns
    -------
    final : estimator
    X : object

    Raises
    ------
    TypeError
        If a pipeline's last step is ``"passthrough"`` (there is nothing to score).
    """
    while isinstance(estimator, Pipeline):
        final = estimator.steps[-1][1]
        if _is_passthrough(final):
            raise TypeError("the pipeline's last step is 'passthrough': it has no estimator to score.")
        if isinstance(estimator, RecommenderPipeline):
            X = estimator._transform_interactions(X)
        else:
            for _, step in estimator.steps[:-1]:
                if not _is_passthrough(step):
                    X = step.transform(X)
        estimator = final
    return estimator, X
