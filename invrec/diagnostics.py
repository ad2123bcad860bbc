"""Diagnostics against a known ground truth: environments, masks, the oracle and the gap closed.

On data whose generative story is known (:func:`~invrec.datasets.make_multimodal_interactions`),
these functions say how much of the truth a fitted invariant recommender recovered:

* :func:`environment_recovery`: agreement of the inferred environment labels with the true
  ones (adjusted Rand index and normalised mutual information, both invariant to relabelling);
* :func:`mask_recovery`: ROC AUC of a learned invariant mask against the true invariant
  dimensions, and how many spurious dimensions a final (binarised) mask still lets through;
* :func:`oracle_ndcg`: NDCG@k of ranking by the true preference ``<p_u, q_i>``, with the
  training items excluded as every estimator's ``score`` does: the ceiling of a split;
* :func:`gap_closed`: the share of the ERM-to-oracle gap a model closes.

Masks may be flat arrays or dicts modality -> array, as estimators expose them
(``invariant_mask_``) and as the generator returns its truth (``invariant_mask``).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, roc_auc_score

from .metrics import evaluate_ranking
from .utils.ranking import rankings_to_frame, top_k
from .utils.validation import ITEM, USER, check_interactions

__all__ = ["environment_recovery", "mask_recovery", "gap_closed", "oracle_ndcg"]

ENVIRONMENT = "environment"


# ----------------------------------------------------------------------------- environments
def environment_recovery(inferred, true):
    """Agreement of inferred environment labels with the true ones.

    Parameters
    ----------
    inferred, true : array-like of shape (n_rows,) or DataFrame
        Environment label of every row. Two DataFrames with columns ``user``, ``item`` and
        ``environment`` (an estimator's ``environments_`` and the generator's
        ``interactions``) are aligned on ``(user, item)`` first: every row of ``inferred``
        must find its pair in ``true``, and ``true`` may have more rows (for example the
        validation share an estimator carved out of ``X``).

    Returns
    -------
    scores : dict
        ``"ari"``: :func:`sklearn.metrics.adjusted_rand_score` (1 for the same partition up to
        relabelling, about 0 for a random one); ``"nmi"``:
        :func:`sklearn.metrics.normalized_mutual_info_score` (in [0, 1]); ``"n_rows"``: the
        number of rows compared.

    Raises
    ------
    ValueError
        If the labels differ in length or are empty, if only one of the two is a DataFrame, or
        if a DataFrame lacks a column, has duplicated ``(user, item)`` pairs or an inferred pair
        that ``true`` lacks.

    Examples
    --------
    >>> from invrec.diagnostics import environment_recovery
    >>> environment_recovery([0, 0, 1, 1, 2], [5, 5, 3, 3, 9])
    {'ari': 1.0, 'nmi': 1.0, 'n_rows': 5}
    >>> round(environment_recovery([0, 1, 0, 1], [0, 0, 1, 1])["ari"], 3)
    -0.5
    """
    inferred, true = _aligned_labels(inferred, true)
    return {"ari": float(adjusted_rand_score(true, inferred)),
            "nmi": float(normalized_mutual_info_score(true, inferred)),
            "n_rows": int(len(true))}


def _aligned_labels(inferred, true):
    frames = isinstance(inferred, pd.DataFrame), isinstance(true, pd.DataFrame)
    if any(frames) and not all(frames):
        raise ValueError("environment_recovery takes two label arrays or two DataFrames with user, "
                         "item and environment columns, not one of each.")
    if all(frames):
        inferred, true = _join_on_pairs(inferred, true)
    inferred = _labels(inferred, "inferred")
    true = _labels(true, "true")
    if len(inferred) != len(true):
        raise ValueError(f"inferred has {len(inferred)} labels but true has {len(true)}; give one "
                         "label per row of the same rows (or two DataFrames to align).")
    if len(true) == 0:
        raise ValueError("environment_recovery needs at least one labelled row.")
    return inferred, true


def _labels(labels, name):
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name} labels must be 1-D; got shape {labels.shape}.")
    if pd.isna(labels).any():
        raise ValueError(f"{name} labels hold missing values.")
    return labels


def _join_on_pairs(inferred, true):
    for name, frame in (("inferred", inferred), ("true", true)):
        missing = [c for c in (USER, ITEM, ENVIRONMENT) if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks the column(s) {missing}; it has {list(map(str, frame.columns))}.")
        if frame.duplicated([USER, ITEM]).any():
            raise ValueError(f"{name} has duplicated (user, item) pairs; the rows cannot be aligned.")
    merged = inferred[[USER, ITEM, ENVIRONMENT]].merge(
        true[[USER, ITEM, ENVIRONMENT]], on=[USER, ITEM], how="left", suffixes=("_inferred", "_true"),
        indicator=True)
    lost = int((merged["_merge"] != "both").sum())
    if lost:
        raise ValueError(f"{lost} (user, item) pair(s) of inferred are not in true; align the same "
                         "interactions (for example model.environments_ and data.interactions).")
    return merged[f"{ENVIRONMENT}_inferred"].to_numpy(), merged[f"{ENVIRONMENT}_true"].to_numpy()


# ----------------------------------------------------------------------------- masks
def mask_recovery(learned_mask, invariant_mask, threshold=None, *, final_mask=None):
    """How well a learned mask finds the invariant dimensions, and which spurious ones it keeps.

    Parameters
    ----------
    learned_mask : array-like of shape (n_dims,) or dict of str to array-like
        Learned mask values (higher: more invariant), e.g. an estimator's ``invariant_mask_``.
    invariant_mask : array-like of bool of shape (n_dims,) or dict of str to array-like
        The truth, True at the invariant dimensions (the generator's ``invariant_mask``). A
        dict fixes the order: a dict mask must have the same modalities and widths, a flat one
        is read as the concatenation of the modalities in this dict's order.
    threshold : float, default=None
        A dimension is *kept* by the final mask when its value is ``> threshold``; None is 0.5.
    final_mask : array-like or dict, default=None
        The mask the final model read (PaInvRL's and EIOR's ``module_.mask``, binarised when the
        mask stage has a threshold); None counts on ``learned_mask``. Torch tensors are accepted.

    Returns
    -------
    scores : dict
        ``"auc"``: ROC AUC of ``learned_mask`` against the truth (NaN when the truth has a
        single class); ``"n_spurious"``: spurious dimensions in the truth;
        ``"n_spurious_kept"`` and ``"share_spurious_kept"``: those the final mask keeps (share
        NaN without spurious dimensions); ``"n_invariant_kept"`` and
        ``"share_invariant_kept"``: the same for the invariant dimensions; ``"threshold"``.

    Raises
    ------
    ValueError
        If the shapes or modalities disagree, if the masks are empty or hold NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from invrec.diagnostics import mask_recovery
    >>> truth = {"visual": np.array([True, True, False, False]), "text": np.array([True, False])}
    >>> learned = {"visual": np.array([0.9, 0.7, 0.6, 0.1]), "text": np.array([0.8, 0.2])}
    >>> out = mask_recovery(learned, truth)
    >>> out["auc"], out["n_spurious"], out["n_spurious_kept"], round(out["share_spurious_kept"], 3)
    (1.0, 3, 1, 0.333)
    >>> mask_recovery(learned, truth, threshold=0.65)["n_spurious_kept"]
    0
    """
    truth, order = _flat_mask(invariant_mask, None, "invariant_mask")
    truth = truth if truth.dtype == bool else _as_bool_truth(truth)
    learned, _ = _flat_mask(learned_mask, order, "learned_mask", size=truth.size)
    final = learned if final_mask is None else _flat_mask(final_mask, order, "final_mask", size=truth.size)[0]
    cut = 0.5 if threshold is None else threshold
    if isinstance(cut, bool) or not isinstance(cut, numbers.Real) or not math.isfinite(cut):
        raise ValueError(f"threshold must be None or a finite float; got {threshold!r}.")
    kept = final > cut
    spurious = ~truth
    n_spurious, n_invariant = int(spurious.sum()), int(truth.sum())
    auc = float(roc_auc_score(truth, learned)) if 0 < n_invariant < truth.size else math.nan
    n_sp_kept, n_inv_kept = int((kept & spurious).sum()), int((kept & truth).sum())
    return {"auc": auc, "n_spurious": n_spurious, "n_spurious_kept": n_sp_kept,
            "share_spurious_kept": n_sp_kept / n_spurious if n_spurious else math.nan,
            "n_invariant_kept": n_inv_kept,
            "share_invariant_kept": n_inv_kept / n_invariant if n_invariant else math.nan,
            "threshold": float(cut)}


def _as_bool_truth(values):
    if not np.isin(values, (0, 1)).all():
        raise ValueError("invariant_mask must be boolean (or 0/1): True at the invariant dimensions.")
    return values.astype(bool)


def _to_numpy(values):
    if hasattr(values, "detach"):           # a torch tensor (a module's mask buffer)
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _flat_mask(mask, order, name, size=None):
    """``(flat values, modality order and widths)``; ``order`` given: align a dict to it."""
    if isinstance(mask, dict):
        if order is not None:
            if set(mask) != {m for m, _ in order}:
                raise ValueError(f"{name} has the modalities {sorted(mask)} but the truth has "
                                 f"{sorted(m for m, _ in order)}.")
            parts = []
            for modality, width in order:
                part = _to_numpy(mask[modality]).ravel()
                if part.size != width:
                    raise ValueError(f"{name}[{modality!r}] has {part.size} values; the truth has {width}.")
                parts.append(part)
        else:
            parts = [_to_numpy(mask[m]).ravel() for m in mask]
            order = [(m, p.size) for m, p in zip(mask, parts)]
        flat = np.concatenate(parts) if parts else np.empty(0)
    else:
        flat = _to_numpy(mask).ravel()
    if flat.size == 0:
        raise ValueError(f"{name} is empty (a model fitted without item content has no mask).")
    if size is not None and flat.size != size:
        raise ValueError(f"{name} has {flat.size} values but the truth has {size}.")
    if flat.dtype != bool:
        flat = flat.astype(float)
        if np.isnan(flat).any():
            raise ValueError(f"{name} holds NaN values.")
    return flat, order


# ----------------------------------------------------------------------------- gap and oracle
def gap_closed(model_ood, erm_ood, oracle_ood):
    """Share of the gap between the ERM baseline and the oracle that a model closes.

    ``(model_ood - erm_ood) / (oracle_ood - erm_ood)``: 0 for the baseline's score, 1 for the
    oracle's, negative when the model is worse than the baseline, above 1 when it beats the
    oracle.

    Parameters
    ----------
    model_ood, erm_ood, oracle_ood : float
        The same metric (for example OOD NDCG@20) of the model, of the ERM baseline and of the
        oracle (:func:`oracle_ndcg`).

    Returns
    -------
    share : float

    Raises
    ------
    ValueError
        If a value is not a finite number, or if ``oracle_ood == erm_ood`` (there is no gap to
        close: the share is undefined).

    Examples
    --------
    >>> from invrec.diagnostics import gap_closed
    >>> gap_closed(0.5, 0.25, 0.75)
    0.5
    >>> gap_closed(0.125, 0.25, 0.75)
    -0.25
    """
    values = []
    for name, value in (("model_ood", model_ood), ("erm_ood", erm_ood), ("oracle_ood", oracle_ood)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value!r}.")
        values.append(float(value))
    model, erm, oracle = values
    if oracle == erm:
        raise ValueError(f"oracle_ood equals erm_ood ({oracle!r}): there is no ERM-to-oracle gap, "
                         "so the share of it closed is undefined.")
    return (model - erm) / (oracle - erm)


def oracle_ndcg(data, split="test_ood", k=20):
    """NDCG@k of ranking every item by the true preference ``<p_u, q_i>``.

    This is what a model that knew the users' and items' intrinsic factors would score on the
    held-out ``split``: the ceiling against which :func:`gap_closed` measures a model. The
    protocol is the estimators' ``score``: the users of the split are ranked against the whole
    catalog with their training items (``data.interactions``) excluded, and each user's rows
    of the split are the relevant items (:func:`invrec.metrics.evaluate_ranking`).

    Parameters
    ----------
    data : Bunch or dict
        ``user_factors`` (n_users, f) and ``item_factors`` (n_items, f): ``p`` and ``q``;
        ``interactions``: the training rows; and the split. User and item ids are the row
        indices of the factor matrices, as in
        :func:`~invrec.datasets.make_multimodal_interactions`.
    split : str or DataFrame, default="test_ood"
        The key of the held-out rows in ``data`` (``"test_ood"``, ``"test"``), or the rows.
    k : int, default=20
        Cut-off.

    Returns
    -------
    ndcg : float

    Raises
    ------
    ValueError
        If ``split`` is not in ``data``, ``k`` is not a positive int, or an id is out of range.

    Examples
    --------
    >>> from invrec.datasets import make_multimodal_interactions
    >>> from invrec.diagnostics import oracle_ndcg
    >>> data = make_multimodal_interactions(n_users=50, n_items=40, random_state=0)
    >>> 0 < oracle_ndcg(data, "test") < oracle_ndcg(data, "test_ood") <= 1
    True
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive int; got {k!r}.")
    k = int(k)
    if isinstance(split, str):
        if split not in data or data[split] is None:
            raise ValueError(f"data has no held-out rows {split!r}; pass 'test_ood', 'test' or a DataFrame.")
        split = data[split]
    held_out, _ = check_interactions(split, name="split")
    train, _ = check_interactions(data["interactions"], name="data.interactions")
    p = np.asarray(data["user_factors"], dtype=float)
    q = np.asarray(data["item_factors"], dtype=float)
    n_users, n_items = p.shape[0], q.shape[0]
    for name, table in (("split", held_out), ("data.interactions", train)):
        for column, n in ((USER, n_users), (ITEM, n_items)):
            ids = table[column].to_numpy()
            if not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= n:
                raise ValueError(f"{name} has {column} ids outside 0..{n - 1} (the rows of the factors).")
    users = pd.unique(held_out[USER].to_numpy())
    seen = sp.csr_array((np.ones(len(train)), (train[USER].to_numpy(), train[ITEM].to_numpy())),
                        shape=(n_users, n_items))
    top, values = top_k(p[users] @ q.T, k, exclude=seen[users])
    recs = rankings_to_frame(users, top, values)
    table = evaluate_ranking(recs, held_out[[USER, ITEM]], k=k, metrics="ndcg")
    return float(table.loc["all", f"ndcg@{k}"])
