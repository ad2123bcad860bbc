"""One runner per benchmarked model: fit on a :class:`~protocol.Split`, then rank test users.

A runner is a function ``runner(split, settings) -> Fitted``. It trains the model (selecting the
number of epochs on the validation split where the model allows it) and returns the training
statistics plus a ``recommend(users)`` closure; the worker times that closure on the test users.

* invrec models rank through their own ``recommend(users, n=20, exclude=validation)``;
* Cornac models are fitted on a Cornac ``Dataset`` whose user and item maps are fixed by the split
  (the item map covers the WHOLE catalog, so items without training interactions are ranked and
  sampled as negatives too), and ranked by :func:`protocol.rank` from their learned parameters in
  one matrix product per user chunk.

Both routes end in the same kernel (:func:`invrec.utils.ranking.chunked_top_k`) with the same
exclusions. Cornac is imported lazily, so the invrec workers never load it.
"""

from __future__ import annotations

import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
from invrec.metrics import evaluate_ranking

import protocol
from invariance import make_estimator  # beside this script: nested stage settings (mask__epochs)

K = max(protocol.KS)


@dataclass
class Fitted:
    """What a runner hands back to the worker.

    Attributes
    ----------
    recommend : callable
        ``recommend(users)`` -> long DataFrame of the top-20 lists of raw ``users`` (train and
        validation items excluded).
    fit_s : float
        Wall time of training, model selection on validation included.
    epochs : int or None
        Epochs run (None for models without epochs).
    train_s : float or None
        Time spent in gradient epochs only (``s/epoch = train_s / epochs``).
    best_epoch : int or None
        Epoch kept (chosen on validation NDCG@20), or the last one for a fixed cap.
    valid_ndcg : float or None
        Validation NDCG@20 of the kept model.
    settings : dict
        Effective hyperparameters.
    notes : list of str
        Anything a reader of the table must know.
    extra : dict
        Further row entries for ``results.json`` (for example the validation curve).
    """

    recommend: object
    fit_s: float
    epochs: int | None = None
    train_s: float | None = None
    best_epoch: int | None = None
    valid_ndcg: float | None = None
    settings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------- invrec
def _invrec_validation_ndcg(model, split):
    """Validation NDCG@20 of a fitted invrec model, training items excluded."""
    recs = model.recommend(split.eval_users(split.valid), n=K)
    table = evaluate_ranking(recs, split.valid, k=K, metrics="ndcg")
    return float(table.loc["all", f"ndcg@{K}"])


def _invrec_recommend(model, split):
    """Closure ranking raw users with ``model.recommend``, validation pairs excluded too."""
    def recommend(users):
        return model.recommend(users, n=K, exclude=split.valid)
    return recommend


def _public_params(model):
    skip = {"verbose", "handle_unknown", "device"}
    return {k: v for k, v in model.get_params().items() if k not in skip}


def run_ultragcn(split, settings):
    """invrec ``UltraGCNRecommender``, early-stopped on validation NDCG@20 (best epoch restored).

    ``settings`` are constructor arguments on top of invrec's defaults. With a ``"grid"`` entry
    (``{parameter: [values]}`` or a list of them, as ``sklearn.model_selection.ParameterGrid``),
    every combination is fitted and the one with the best validation
    NDCG@20 is kept (the test split is never looked at); ``fit_s`` is then the whole search and
    ``s_per_epoch`` that of the kept model, and each candidate is listed in the notes and in
    ``results.json`` (``grid``).
    """
    from sklearn.model_selection import ParameterGrid

    settings = dict(settings)
    grid = settings.pop("grid", None)
    if not grid:
        fitted, _ = _fit_ultragcn(split, settings)
        return fitted
    start, candidates, best = time.perf_counter(), [], None
    for point in ParameterGrid(grid):
        fitted, model = _fit_ultragcn(split, {**settings, **point})
        candidates.append({**point, "valid_ndcg@20": fitted.valid_ndcg, "best_epoch": fitted.best_epoch,
                           "s_per_epoch": fitted.train_s / fitted.epochs, "fit_s": fitted.fit_s})
        if best is None or fitted.valid_ndcg > best[0].valid_ndcg:
            best = (fitted, point)
        else:
            del model
    fitted, point = best
    fitted.notes = [f"kept {point} of {len(candidates)} grid points on validation NDCG@20 "
                    f"(fit_s is the whole search; the kept fit took {fitted.fit_s:.1f} s)",
                    *fitted.notes,
                    "grid: " + "; ".join(f"{_point_text(c, point)} -> {c['valid_ndcg@20']:.4f} "
                                          f"({c['s_per_epoch']:.2f} s/epoch)" for c in candidates)]
    fitted.fit_s = time.perf_counter() - start
    fitted.extra["grid"] = candidates
    return fitted


def _point_text(candidate, point):
    return ", ".join(f"{name}={candidate[name]}" for name in point)


def _fit_ultragcn(split, settings):
    """One validation-early-stopped ``UltraGCNRecommender`` fit: (Fitted, model)."""
    from invrec.baselines import UltraGCNRecommender

    return _fit_invrec(UltraGCNRecommender, split, settings)


def _fit_invrec(cls, split, settings):
    """Fit an invrec estimator with early stopping on the validation split: (Fitted, model).

    Epoch statistics come from the final model's records in ``history_`` (PaInvRL and EIOR also
    log their environment and mask stages there: those count in ``fit_s`` and in
    ``extra["stage_s"]``, not in the epochs).
    """
    model = make_estimator(cls, {"random_state": 0, "device": "cpu", **settings})
    start = time.perf_counter()
    model.fit(split.train, item_features=split.item_features, validation_data=split.valid)
    fit_s = time.perf_counter() - start
    history = [h for h in model.history_ if h.get("stage", "final") == "final"]
    best = [i + 1 for i, h in enumerate(history) if h.get("best")]
    best_epoch = best[-1] if best else len(history)
    curve = [h.get("valid_ndcg@20", float("nan")) for h in history]
    extra = {"valid_curve": curve}
    if getattr(model, "stage_times_", None):
        extra["stage_s"] = {name: float(value) for name, value in model.stage_times_.items()}
    if getattr(model, "attention_weights_mean_", None) is not None:
        extra["attention_weights_mean"] = [float(v) for v in model.attention_weights_mean_]
    fitted = Fitted(
        recommend=_invrec_recommend(model, split), fit_s=fit_s, epochs=len(history),
        train_s=float(sum(h["fit_time"] for h in history)),
        best_epoch=best_epoch,
        valid_ndcg=max(curve, default=None),
        settings=_public_params(model),
        notes=[_curve_note(curve), *_cap_note(best_epoch, len(history), model.max_epochs)],
        extra=extra,
    )
    return fitted, model


def run_painvrl(split, settings):
    """invrec ``PaInvRLRecommender``: stages, then the final model early-stopped on validation."""
    from invrec import PaInvRLRecommender

    return _fit_invrec(PaInvRLRecommender, split, settings)[0]


def run_eior(split, settings):
    """invrec ``EIORRecommender`` (implicit feedback), as :func:`run_painvrl`."""
    from invrec import EIORRecommender

    return _fit_invrec(EIORRecommender, split, settings)[0]


def run_milk(split, settings):
    """invrec ``MILKRecommender`` ranking the whole catalog from content (no item ids)."""
    from invrec import MILKRecommender

    return _fit_invrec(MILKRecommender, split, settings)[0]


def _curve_note(curve, every=10):
    """Validation NDCG@20 at every ``every``-th epoch and at the last one, as text."""
    epochs = sorted({*range(every, len(curve) + 1, every), len(curve)})
    return "validation NDCG@20 by epoch: " + ", ".join(f"{e}: {curve[e - 1]:.4f}" for e in epochs)


def _cap_note(best_epoch, epochs, cap):
    """A warning when the kept epoch is the last one allowed: the curve was still rising."""
    if epochs >= cap and best_epoch == epochs:
        return [f"best epoch is the cap ({cap}): validation NDCG@20 still rising"]
    return []


def run_popularity(split, settings):
    """invrec ``PopularityRecommender`` over the whole catalog."""
    from invrec.baselines import PopularityRecommender

    return _fit_invrec_once(PopularityRecommender, split, settings)


def _fit_invrec_once(cls, split, settings):
    """Fit an invrec estimator without epochs (nothing to select on validation) and score it."""
    model = make_estimator(cls, settings)
    start = time.perf_counter()
    model.fit(split.train, item_features=split.item_features)
    fit_s = time.perf_counter() - start
    return Fitted(recommend=_invrec_recommend(model, split), fit_s=fit_s,
                  valid_ndcg=_invrec_validation_ndcg(model, split), settings=_public_params(model))


# ---------------------------------------------------------------------- Cornac
def cornac_train_set(split, item_features=False):
    """Cornac ``Dataset`` of the training triples with the split's user map and FULL item map.

    Row ``i`` of the model's user parameters is ``split.user_ids[i]`` and column ``j`` of its item
    parameters is ``split.item_ids[j]``, so Cornac's parameters plug straight into
    :func:`protocol.rank`.

    Parameters
    ----------
    split : Split
    item_features : {False, "l2", "raw"}, default=False
        Attach the concatenated item features as the ``item_image`` modality, which VBPR reads:
        "l2" L2-normalises each modality's rows first (the input invrec's content tower sees),
        "raw" keeps the stored values.
    """
    from cornac.data import Dataset, ImageModality

    uid_map = OrderedDict((u, i) for i, u in enumerate(split.user_ids.tolist()))
    iid_map = OrderedDict((j, i) for i, j in enumerate(split.item_ids.tolist()))
    triples = list(zip(split.train["user"].tolist(), split.train["item"].tolist(),
                       np.ones(len(split.train)).tolist()))
    train_set = Dataset.build(triples, fmt="UIR", global_uid_map=uid_map, global_iid_map=iid_map, seed=0)
    assert train_set.num_items == len(split.item_ids) and train_set.num_users == len(split.user_ids)
    if item_features:
        features = split.item_features.normalize() if item_features == "l2" else split.item_features
        matrix, _ = features.concat()
        modality = ImageModality(features=matrix.astype(np.float32), ids=split.item_ids.tolist())
        train_set.add_modalities(item_image=modality.build(id_map=iid_map))
    return train_set


def _cornac_score_fn(model):
    """Full score matrix rows of a fitted Cornac model, vectorised over users.

    MostPop: its popularity vector broadcast to every user. BPR and VBPR: the dot product of the
    concatenated user and item vectors Cornac exposes for ANN search (``[U, 1] . [V, b_i]`` for BPR,
    ``[gamma_u, theta_u, 1, 1] . [gamma_i, E^T f_i, beta_i, beta'^T f_i]`` for VBPR), which is
    exactly ``model.score(user)``.
    """
    if hasattr(model, "get_user_vectors"):
        return protocol.dense_score_fn(model.get_user_vectors(), model.get_item_vectors())
    popularity = torch.as_tensor(np.asarray(model.score(0), dtype=np.float32))
    return lambda rows: popularity.expand(len(rows), -1)


def _check_cornac_scores(model, score_fn, n_users):
    """Guard: the vectorised scores equal Cornac's own ``score(user)`` on a few users."""
    rows = np.unique(np.linspace(0, n_users - 1, 3).astype(int))
    ours = score_fn(rows).numpy()
    for r, row in zip(rows, ours):
        theirs = np.asarray(model.score(int(r)), dtype=np.float64)
        if not np.allclose(row, theirs, rtol=1e-4, atol=1e-4):
            raise AssertionError(f"vectorised scores differ from {type(model).__name__}.score({r}).")


def _cornac_recommend(model, split):
    """Closure ranking raw users from ``model``'s parameters, train and validation excluded."""
    exclude = split.interaction_matrix(split.train, split.valid)

    def recommend(users):
        return protocol.rank(split, _cornac_score_fn(model), users, exclude)

    _check_cornac_scores(model, _cornac_score_fn(model), len(split.user_ids))
    return recommend


def _cornac_validation_ndcg(model, split, exclude_train):
    return protocol.validation_ndcg(split, _cornac_score_fn(model), exclude_train)


def run_cornac_mostpop(split, settings):
    """Cornac ``MostPop`` on the full-catalog training set."""
    from cornac.models import MostPop

    train_set = cornac_train_set(split)
    model = MostPop(**settings)
    start = time.perf_counter()
    model.fit(train_set)
    fit_s = time.perf_counter() - start
    valid = _cornac_validation_ndcg(model, split, split.interaction_matrix(split.train))
    return Fitted(recommend=_cornac_recommend(model, split), fit_s=fit_s, valid_ndcg=valid,
                  settings=dict(settings))


def run_cornac_bpr(split, settings):
    """Cornac ``BPR``; the number of epochs is picked on validation NDCG@20 at checkpoints.

    ``settings["checkpoints"]`` lists cumulative epoch counts. Training continues from one
    checkpoint to the next with further ``fit`` calls (Cornac keeps the factors it has; plain SGD
    has no optimiser state to lose), the validation metric is taken at each checkpoint, and the
    best checkpoint's parameters are kept. The remaining settings go to ``cornac.models.BPR``.
    """
    from cornac.models import BPR

    settings = dict(settings)
    checkpoints = sorted(settings.pop("checkpoints"))
    params = {"k": 64, "learning_rate": 0.01, "lambda_reg": 0.01, "seed": 0, "verbose": False, **settings}
    train_set = cornac_train_set(split)
    exclude_train = split.interaction_matrix(split.train)
    model = BPR(max_iter=checkpoints[0], **params)
    best, best_params, done, train_s, curve = -np.inf, None, 0, 0.0, {}
    start = time.perf_counter()
    for target in checkpoints:
        model.max_iter = target - done
        tick = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Model is already fitted": we continue on purpose
            model.fit(train_set)
        train_s += time.perf_counter() - tick
        done = target
        curve[target] = score = _cornac_validation_ndcg(model, split, exclude_train)
        if score > best:
            best, best_epoch = score, target
            best_params = (model.u_factors.copy(), model.i_factors.copy(), model.i_biases.copy())
    fit_s = time.perf_counter() - start
    model.u_factors, model.i_factors, model.i_biases = best_params
    return Fitted(
        recommend=_cornac_recommend(model, split), fit_s=fit_s, epochs=done, train_s=train_s,
        best_epoch=best_epoch, valid_ndcg=best,
        settings={**params, "checkpoints": checkpoints, "num_threads": model.num_threads},
        notes=[f"validation NDCG@20 by epoch: {', '.join(f'{e}: {v:.4f}' for e, v in curve.items())}",
               *_cap_note(best_epoch, done, checkpoints[-1])],
    )


def run_cornac_vbpr(split, settings):
    """Cornac ``VBPR`` on the concatenated item features, ONE ``fit`` call of ``n_epochs``.

    VBPR builds a new Adam optimiser at every ``fit`` call, so it cannot be trained in chunks
    without restarting Adam: no per-epoch model selection, the cap is the setting.
    ``settings["features"]`` is "l2" (default: each modality L2-normalised, as invrec's models see
    them; Last.fm's VGGish rows have norms near 1,500 raw) or "raw"; the rest goes to
    ``cornac.models.VBPR``.
    """
    from cornac.models import VBPR

    settings = dict(settings)
    features = settings.pop("features", "l2")
    params = {"k": 64, "k2": 64, "learning_rate": 1e-3, "batch_size": 100, "lambda_w": 0.01,
              "lambda_b": 0.01, "lambda_e": 0.0, "use_gpu": False, "seed": 0, "verbose": False, **settings}
    train_set = cornac_train_set(split, item_features=features)
    model = VBPR(**params)
    start = time.perf_counter()
    model.fit(train_set)
    fit_s = time.perf_counter() - start
    valid = _cornac_validation_ndcg(model, split, split.interaction_matrix(split.train))
    return Fitted(
        recommend=_cornac_recommend(model, split), fit_s=fit_s, epochs=params["n_epochs"], train_s=fit_s,
        best_epoch=params["n_epochs"], valid_ndcg=valid, settings={**params, "features": features},
        notes=["fixed epoch cap in one fit call (no validation selection)"],
    )


# ---------------------------------------------------------------------- the rows
def _ranking_estimators():
    """invrec's estimators this benchmark ranks with, by their command-line name.

    Every class of :func:`invrec.utils.discovery.all_estimators` that fits on interactions alone
    (its tags do not require ``y``): the implicit-feedback table has no ratings to give the
    others.
    """
    from sklearn.utils import get_tags

    from invrec.utils.discovery import estimator_aliases

    return {name: cls for name, cls in estimator_aliases().items() if not get_tags(cls()).target_tags.required}


def _generic_runner(cls):
    """Runner of an invrec estimator without a dedicated one: early-stopped when it has epochs."""
    def run(split, settings):
        if "max_epochs" in cls().get_params():
            return _fit_invrec(cls, split, settings)[0]
        return _fit_invrec_once(cls, split, settings)
    run.__doc__ = f"invrec ``{cls.__name__}`` with the shared protocol of :func:`_fit_invrec`."
    return run


#: invrec estimator rows: command-line name -> class, from ``all_estimators()``.
INVREC_ESTIMATORS = _ranking_estimators()
#: Runners of the invrec estimators that need their own (a grid search, named settings).
_INVREC_RUNNERS = {"ultragcn": run_ultragcn, "painvrl": run_painvrl, "eior": run_eior, "milk": run_milk,
                   "popularity": run_popularity}
#: Further rows of one invrec estimator with other settings: variant -> the estimator's name.
INVREC_VARIANTS = {"ultragcn-tuned": "ultragcn", "ultragcn-per-positive": "ultragcn"}
#: The peers, run through Cornac.
PEER_RUNNERS = {
    "cornac-mostpop": run_cornac_mostpop,
    "cornac-bpr": run_cornac_bpr,
    "cornac-vbpr": run_cornac_vbpr,
}

#: Model name -> runner: every invrec estimator (each followed by its variant rows), then the peers.
RUNNERS = {}
for _name, _cls in INVREC_ESTIMATORS.items():
    RUNNERS[_name] = _INVREC_RUNNERS.get(_name) or _generic_runner(_cls)
    RUNNERS.update({variant: RUNNERS[_name] for variant, base in INVREC_VARIANTS.items() if base == _name})
RUNNERS.update(PEER_RUNNERS)
del _name, _cls
