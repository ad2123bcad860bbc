"""Plots of what a fitted invrec estimator learned and of how it scores (matplotlib).

Each function draws on one matplotlib Axes (``ax=``, or a new figure when None) and returns it,
as scikit-learn's ``Display.plot`` does, so plots compose into the caller's figures. Where a
function takes a fitted estimator, a scikit-learn Pipeline ending in one works too (its last step
is read):

* :func:`plot_iid_ood_front`: in- against out-of-distribution scores of several settings, with
  the trade-off front and optional popularity and oracle references;
* :func:`plot_mask`: the learned invariant mask of every content dimension, per modality,
  coloured by the true invariant dimensions when they are known;
* :func:`plot_attention`: the (invariant, variant) fusion weights of PaInvRL and EIOR, over the
  items or over the final model's epochs;
* :func:`plot_environment_sizes`: the sizes of the inferred environments and, with the true
  ones, what each inferred environment is made of;
* :func:`plot_training_history`: the training loss and the validation score of one stage, per
  epoch, from ``history_``.

matplotlib is the optional extra ``plot`` (``pip install "invrec[plot]"``); it is imported when a
function is called, so ``import invrec.plotting`` works without it.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .diagnostics import (ENVIRONMENT, _aligned_labels, _as_bool_truth, _flat_mask, _labels,
                          environment_recovery, mask_recovery)
from .utils.params import check_bool, check_choice, check_int

__all__ = ["plot_iid_ood_front", "pareto_front", "plot_mask", "plot_attention",
           "plot_environment_sizes", "plot_training_history"]

#: What to install when matplotlib is missing.
INSTALL_HINT = 'pip install "invrec[plot]"'

#: Colours of the invariant and spurious dimensions, and of the references (matplotlib's cycle).
_INVARIANT, _SPURIOUS, _NEUTRAL = "C0", "C3", "0.35"


# ----------------------------------------------------------------------------- shared
def _pyplot():
    """``matplotlib.pyplot``, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            f"invrec.plotting needs matplotlib, which is not installed. Install the plot extra: "
            f"{INSTALL_HINT} (or pip install matplotlib).") from error
    return plt


def _axes(ax, figsize=None):
    """``ax`` checked, or the Axes of a new figure when None."""
    plt = _pyplot()
    if ax is None:
        return plt.subplots(figsize=figsize, layout="constrained")[1]
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes (or None for a new figure); got "
                        f"{type(ax).__name__}. Pass for example plt.subplots()[1].")
    return ax


def _final_step(estimator):
    """The last step of a (nested) scikit-learn Pipeline; any other object as it is."""
    from sklearn.pipeline import Pipeline

    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return estimator


def _fitted_estimator(estimator, what, fix):
    """``estimator`` (a Pipeline's last step), or a clear error if it is not a fitted estimator."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    estimator = _final_step(estimator)
    name = type(estimator).__name__
    if not hasattr(estimator, "fit"):
        raise TypeError(f"{what} takes a fitted estimator or {fix}; got a {name}.")
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise NotFittedError(f"This {name} is not fitted yet: call fit before {what}.") from None
    return estimator


def _fitted(estimator, attribute, what, fix):
    """``estimator.<attribute>``; a clear error when it is unfitted or has no such attribute."""
    estimator = _fitted_estimator(estimator, what, fix)
    name = type(estimator).__name__
    if not hasattr(estimator, attribute):
        raise TypeError(f"{name} has no {attribute} (an attribute of PaInvRL and EIOR); {what} "
                        f"takes one of those estimators, or {fix}.")
    return getattr(estimator, attribute)


def _integer_ticks(ax):
    """Whole numbers only on the x axis (epochs)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _finite_score(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}. A NaN score is a failed "
                         "scoring: fix it (or leave the setting out) before plotting.")
    return float(value)


# ----------------------------------------------------------------------------- IID-OOD front
def _pair(value):
    """``value`` as a tuple of two, or None when it is not a pair."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        return None
    return tuple(value)


def _scores_table(results, iid, ood):
    """``results`` as a DataFrame of float columns ``iid`` and ``ood``, one row per setting."""
    if isinstance(results, Mapping):
        rows = {}
        for name, value in results.items():
            if isinstance(value, (Mapping, pd.Series)):
                missing = [key for key in (iid, ood) if key not in value]
                if missing:
                    raise ValueError(f"results[{name!r}] lacks {missing}; give {iid!r} and {ood!r} "
                                     "scores, or an (iid, ood) pair.")
                value = (value[iid], value[ood])
            pair = _pair(value)
            if pair is None:
                raise ValueError(f"results[{name!r}] must be an (iid, ood) pair or a mapping with "
                                 f"keys {iid!r} and {ood!r}; got {value!r}.")
            rows[name] = pair
        results = pd.DataFrame.from_dict(rows, orient="index", columns=[iid, ood])
    if not isinstance(results, pd.DataFrame):
        raise TypeError("results must be a DataFrame (one row per setting, with IID and OOD "
                        f"columns) or a dict of setting -> (iid, ood); got {type(results).__name__}.")
    missing = [key for key in (iid, ood) if key not in results.columns]
    if missing:
        raise ValueError(f"results lacks the column(s) {missing}; it has "
                         f"{list(map(str, results.columns))}. Name them with iid= and ood=.")
    if len(results) == 0:
        raise ValueError("results has no settings to plot.")
    return pd.DataFrame({key: [_finite_score(v, f"results[{name!r}][{key!r}]")
                               for name, v in results[key].items()]
                         for key in (iid, ood)}, index=results.index)


def _reference(value, name, iid, ood):
    """A reference's ``(iid or None, ood)``: from a float (OOD only), a pair or a mapping."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return None, _finite_score(value, name)
    if isinstance(value, (Mapping, pd.Series)):
        if ood not in value:
            raise ValueError(f"{name} lacks the key {ood!r}; give its ({iid!r}, {ood!r}) scores.")
        value = (value[iid] if iid in value else None, value[ood])
    pair = _pair(value)
    if pair is None:
        raise ValueError(f"{name} must be a float (its OOD score), an (iid, ood) pair or a "
                         f"mapping with keys {iid!r} and {ood!r}; got {value!r}.")
    first = None if pair[0] is None else _finite_score(pair[0], f"{name}'s {iid} score")
    return first, _finite_score(pair[1], f"{name}'s {ood} score")


def pareto_front(iid, ood):
    """Which settings no other setting beats on both scores (the trade-off front).

    Parameters
    ----------
    iid, ood : array-like of shape (n_settings,)
        Scores of every setting; greater is better for both.

    Returns
    -------
    on_front : ndarray of bool of shape (n_settings,)
        True where no other setting is at least as good on both scores and better on one.

    Examples
    --------
    >>> from invrec.plotting import pareto_front
    >>> pareto_front([0.3, 0.2, 0.1, 0.25], [0.1, 0.2, 0.3, 0.05]).tolist()
    [True, True, True, False]
    """
    iid, ood = np.asarray(iid, dtype=float), np.asarray(ood, dtype=float)
    if iid.shape != ood.shape or iid.ndim != 1:
        raise ValueError(f"iid and ood must be 1-D of the same length; got shapes {iid.shape} "
                         f"and {ood.shape}.")
    at_least = (iid[None, :] >= iid[:, None]) & (ood[None, :] >= ood[:, None])
    better = (iid[None, :] > iid[:, None]) | (ood[None, :] > ood[:, None])
    return ~(at_least & better).any(axis=1)


def plot_iid_ood_front(results, *, iid="IID", ood="OOD", popularity=None, oracle=None,
                       front=True, metric="NDCG@20", legend=True, ax=None):
    """In- against out-of-distribution scores of several settings, with their trade-off front.

    One point per setting (IID score across, OOD score up: up and right is better), the settings
    on the trade-off front (:func:`pareto_front`) joined by a line, and the scores of reference
    models as dashed (OOD) and dotted (IID) lines.

    Parameters
    ----------
    results : DataFrame or dict
        One row per setting, indexed by its name, with columns ``iid`` and ``ood`` (for example
        ``pd.DataFrame({name: {"IID": m.score(data.test), "OOD": m.score(data.test_ood)}}).T``);
        or a dict of name -> ``(iid, ood)`` pair or name -> mapping with those keys. Every score
        must be finite.
    iid, ood : str, default="IID", "OOD"
        Column (or key) names of the two scores.
    popularity, oracle : float, pair, mapping or None, default=None
        Scores of the reference models: an ``(iid, ood)`` pair (for example the oracle's
        ``(oracle_ndcg(data, "test"), oracle_ndcg(data, "test_ood"))``, from
        :func:`invrec.diagnostics.oracle_ndcg`), a mapping with the keys ``iid`` and ``ood``
        (a row of ``results``), or a float (the OOD score alone: no IID line). None draws none.
    front : bool, default=True
        Join the settings of the trade-off front.
    metric : str, default="NDCG@20"
        The metric's name, for the axis labels.
    legend : bool, default=True
        Draw a legend (below the Axes).
    ax : matplotlib Axes, default=None
        Where to draw; None makes a new figure.

    Returns
    -------
    ax : matplotlib Axes

    Raises
    ------
    ValueError
        If a score is missing or not finite, or ``results`` is empty.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> from invrec.plotting import plot_iid_ood_front
    >>> results = {"ERM": (0.30, 0.02), "invariant": (0.24, 0.09)}
    >>> ax = plot_iid_ood_front(results, popularity=(0.10, 0.01), oracle=(0.35, 0.40))
    >>> ax.get_xlabel(), len(ax.collections)
    ('IID NDCG@20', 2)
    """
    table = _scores_table(results, iid, ood)
    references = {"popularity": _reference(popularity, "popularity", iid, ood),
                  "oracle": _reference(oracle, "oracle", iid, ood)}
    front, legend = check_bool(front, "front"), check_bool(legend, "legend")
    ax = _axes(ax, figsize=(7, 4.5))
    x, y = table[iid].to_numpy(), table[ood].to_numpy()
    if front and len(table) > 1:
        on_front = pareto_front(x, y)
        order = np.argsort(x[on_front], kind="stable")
        ax.plot(x[on_front][order], y[on_front][order], color=_NEUTRAL, linewidth=1, alpha=0.6,
                zorder=1, label="trade-off front")
    for name, px, py in zip(table.index, x, y):
        ax.scatter(px, py, s=70, zorder=3, label=str(name))
    for (name, ref), color in zip(references.items(), ("0.55", "k")):
        if ref is None:
            continue
        ref_iid, ref_ood = ref
        shown = f"{name}: OOD {ref_ood:.3g}" + ("" if ref_iid is None else f", IID {ref_iid:.3g}")
        ax.axhline(ref_ood, color=color, linestyle="--", linewidth=1, label=shown, zorder=2)
        if ref_iid is not None:
            ax.axvline(ref_iid, color=color, linestyle=":", linewidth=1, zorder=2)
    ax.set_xlabel(f"{iid} {metric}")
    ax.set_ylabel(f"{ood} {metric}")
    if legend:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    return ax


# ----------------------------------------------------------------------------- masks
def _learned_mask(source):
    """The learned mask of an estimator (its ``invariant_mask_``), or the given mask."""
    if isinstance(source, Mapping) or isinstance(source, np.ndarray) or hasattr(source, "detach"):
        return dict(source) if isinstance(source, Mapping) else source
    if isinstance(source, (list, tuple)):
        return np.asarray(source)
    return _fitted(source, "invariant_mask_", "plot_mask",
                   "a mask (a dict modality -> values, or an array)")


def plot_mask(estimator_or_mask, truth=None, *, sort=False, ax=None):
    """The learned invariant mask of every content dimension, per modality, against the truth.

    One bar per content dimension (its mask value: high keeps it in the invariant part), the
    modalities side by side and separated by a dotted line. With the truth, the bars of the
    invariant dimensions are blue and those of the spurious ones red, and the ROC AUC of the
    learned values against the truth (:func:`invrec.diagnostics.mask_recovery`) is given for
    every modality and overall: 1 when every invariant dimension is above every spurious one.

    Parameters
    ----------
    estimator_or_mask : estimator, dict or array-like
        A fitted :class:`~invrec.PaInvRLRecommender` or :class:`~invrec.EIORRecommender` (its
        ``invariant_mask_``), or a mask: a dict modality -> values, or a flat array (read as the
        modalities of a dict ``truth`` concatenated in its order).
    truth : dict or array-like of bool, default=None
        True at the invariant dimensions, as the generator's ``invariant_mask``
        (:func:`~invrec.datasets.make_multimodal_interactions`); its modalities and widths must be
        the mask's. None plots the mask alone.
    sort : bool, default=False
        Order the dimensions of each modality by decreasing mask value (the truth's colours then
        show at a glance whether the invariant ones come first); False keeps the column order.
    ax : matplotlib Axes, default=None
        Where to draw; None makes a new figure.

    Returns
    -------
    ax : matplotlib Axes
        Its bars (``ax.patches``), left to right, have the plotted mask values as heights.

    Raises
    ------
    ValueError
        If the mask is empty (a model fitted without content) or holds NaN, or if the truth is
        not boolean or disagrees with the mask on the modalities or their widths.
    TypeError, sklearn.exceptions.NotFittedError
        If the estimator has no mask, or is not fitted.

    Examples
    --------
    >>> from invrec.plotting import plot_mask
    >>> mask = {"visual": [0.9, 0.2, 0.7], "text": [0.1, 0.8]}
    >>> truth = {"visual": [True, False, True], "text": [False, True]}
    >>> ax = plot_mask(mask, truth)
    >>> [float(bar.get_height()) for bar in ax.patches]
    [0.9, 0.2, 0.7, 0.1, 0.8]
    """
    sort = check_bool(sort, "sort")
    learned = _learned_mask(estimator_or_mask)
    truth_values = None
    if truth is not None:
        truth_values, order = _flat_mask(truth, None, "truth")
        truth_values = truth_values if truth_values.dtype == bool else _as_bool_truth(truth_values)
        values, _ = _flat_mask(learned, order, "the mask", size=truth_values.size)
    else:
        values, order = _flat_mask(learned, None, "the mask")
    if order is None:                              # a flat mask and no dict truth: one block
        order = [(None, values.size)]
    names = [name for name, _ in order]
    widths = np.array([width for _, width in order])
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    if truth_values is not None:                   # the scores, in the column order
        overall = mask_recovery(values, truth_values)["auc"]
        names = [_block_label(name, values[s:s + w], truth_values[s:s + w])
                 for (name, w), s in zip(order, starts)]
    if sort:                                       # by block, then by decreasing value
        block = np.repeat(np.arange(len(order)), widths)
        permutation = np.lexsort((-values, block))
        values = values[permutation]
        truth_values = None if truth_values is None else truth_values[permutation]

    ax = _axes(ax, figsize=(8, 3.2))
    positions = np.arange(values.size)
    if truth_values is None:
        ax.bar(positions, values, width=0.85, color=_INVARIANT, label="learned mask")
    else:
        colors = np.where(truth_values, _INVARIANT, _SPURIOUS)
        bars = ax.bar(positions, values, width=0.85, color=colors)
        if truth_values.any():                     # legend entries: one bar of each kind
            bars[int(np.argmax(truth_values))].set_label("invariant dimension")
        if not truth_values.all():
            bars[int(np.argmax(~truth_values))].set_label("spurious dimension")
        auc = "n/a" if np.isnan(overall) else f"{overall:.2f}"
        ax.set_title(f"Learned mask against the true invariant dimensions (AUC {auc})")
    for start in starts[1:]:
        ax.axvline(start - 0.5, color=_NEUTRAL, linestyle=":", linewidth=1)
    if any(name is not None for name in names):
        ax.set_xticks(starts + (widths - 1) / 2, [str(name) for name in names])
    ax.set_xlim(-0.75, values.size - 0.25)
    ax.set_ylim(0, max(1.0, float(values.max())) * 1.2)     # room for the legend above the bars
    ax.set_xlabel("content dimension" + (" (sorted by mask value)" if sort else ""))
    ax.set_ylabel("mask value")
    handles, labels = ax.get_legend_handles_labels()
    if handles:                                    # invariant first, whichever bar came first
        first = sorted(range(len(labels)), key=lambda i: labels[i] != "invariant dimension")
        ax.legend([handles[i] for i in first], [labels[i] for i in first], fontsize=8,
                  loc="upper right", ncol=2)
    return ax


def _block_label(name, values, truth):
    """A modality's tick label: its name and AUC (when its truth has both kinds)."""
    auc = mask_recovery(values, truth)["auc"]
    head = "" if name is None else f"{name}\n"
    return head + ("AUC n/a" if np.isnan(auc) else f"AUC {auc:.2f}")


# ----------------------------------------------------------------------------- attention
def _history(source, what):
    """``history_`` of an estimator, or the given list of records."""
    if isinstance(source, list):
        history = source
    else:
        source = _fitted_estimator(source, what, "its history_ (a list of dicts)")
        history = getattr(source, "history_", [])
    if not all(isinstance(record, Mapping) for record in history):
        raise TypeError(f"{what}: a history is a list of dicts (an estimator's history_).")
    return history


def plot_attention(estimator, *, over="items", bins=20, label=None, ax=None):
    """The fusion weight of the invariant part, over the items or over the training epochs.

    PaInvRL and EIOR fuse an invariant and a variant content representation with a pair of
    weights per item that sums to 1 (``attention_weights_``). ``over="items"`` draws the
    histogram of the invariant weight over the catalog at the end of training (the legend gives
    its mean); ``over="epochs"`` its mean over each final-model epoch (``history_`` key
    ``attention_inv``). Call it once per estimator on the same ``ax`` to compare them.

    Parameters
    ----------
    estimator : estimator, ndarray or list of dict
        A fitted :class:`~invrec.EIORRecommender` or :class:`~invrec.PaInvRLRecommender`; or,
        for ``over="items"``, an ``(n_items, 2)`` array of weights and, for ``over="epochs"``, a
        ``history_`` list.
    over : {"items", "epochs"}, default="items"
        What the weight is shown over.
    bins : int, default=20
        Histogram bins over [0, 1] (``over="items"``).
    label : str, default=None
        Legend entry of this estimator (the mean weight is appended for ``over="items"``).
    ax : matplotlib Axes, default=None
        Where to draw; None makes a new figure.

    Returns
    -------
    ax : matplotlib Axes

    Raises
    ------
    ValueError
        If the weights are not ``(n_items, 2)`` finite values in [0, 1], or the history has no
        ``attention_inv`` record.
    TypeError, sklearn.exceptions.NotFittedError
        If the estimator has no fusion weights, or is not fitted.

    Examples
    --------
    >>> import numpy as np
    >>> from invrec.plotting import plot_attention
    >>> weights = np.array([[0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    >>> ax = plot_attention(weights, bins=4)
    >>> [int(bar.get_height()) for bar in ax.patches]
    [1, 0, 2, 0]
    """
    over = check_choice(over, "over", ("items", "epochs"))
    if label is not None and not isinstance(label, str):
        raise TypeError(f"label must be a str or None; got {type(label).__name__}.")
    if over == "items":
        bins = check_int(bins, "bins")
        weights = estimator if isinstance(estimator, np.ndarray) else _fitted(
            estimator, "attention_weights_", "plot_attention", "an (n_items, 2) array of weights")
        weights = np.asarray(weights, dtype=float)
        if weights.ndim != 2 or weights.shape[1] != 2 or weights.shape[0] == 0:
            raise ValueError("attention weights must be an (n_items, 2) array of (invariant, "
                             f"variant) weights; got shape {weights.shape}.")
        if not np.isfinite(weights).all() or weights.min() < 0 or weights.max() > 1:
            raise ValueError("attention weights must be finite and in [0, 1].")
        invariant = weights[:, 0]
        shown = f"mean {invariant.mean():.2f}"
        ax = _axes(ax, figsize=(5, 3.5))
        ax.hist(invariant, bins=np.linspace(0.0, 1.0, bins + 1), alpha=0.6,
                label=shown if label is None else f"{label} ({shown})")
        ax.set_xlabel("invariant weight of an item")
        ax.set_ylabel("items")
    else:
        records = [r for r in _history(estimator, "plot_attention")
                   if r.get("stage") == "final" and "attention_inv" in r]
        if not records:
            raise ValueError("the history has no final-stage 'attention_inv' record: only PaInvRL "
                             "and EIOR record their mean fusion weight per epoch.")
        ax = _axes(ax, figsize=(5, 3.5))
        ax.plot(np.arange(1, len(records) + 1), [r["attention_inv"] for r in records],
                marker="." if len(records) < 30 else None, label=label)
        _integer_ticks(ax)
        ax.set_xlabel("final-model epoch")
        ax.set_ylabel("mean invariant weight")
        ax.set_ylim(0, 1)
    if label is not None or over == "items":
        ax.legend(fontsize=8)
    return ax


# ----------------------------------------------------------------------------- environments
def _environment_labels(source):
    """``environments_`` of an estimator, or the given frame or labels."""
    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, (np.ndarray, pd.Series, list, tuple)):
        return np.asarray(source)
    return _fitted(source, "environments_", "plot_environment_sizes",
                   "its environments_ (a DataFrame with user, item and environment)")


def _label_column(labels, name):
    """The ``environment`` column of a frame (labels pass through)."""
    if not isinstance(labels, pd.DataFrame):
        return labels
    if ENVIRONMENT not in labels.columns:
        raise ValueError(f"{name} lacks the column {ENVIRONMENT!r}; it has "
                         f"{list(map(str, labels.columns))}.")
    return labels[ENVIRONMENT].to_numpy()


def plot_environment_sizes(estimator, truth=None, *, ax=None):
    """The number of training interactions of every inferred environment, split by the truth.

    One bar per inferred environment (``environments_``), its height the environment's number of
    training interactions. With the true environments, each bar is stacked by the true
    environment of its interactions (the confusion between the two partitions), and the title
    gives their agreement (:func:`invrec.diagnostics.environment_recovery`): environments
    inferred from the data need not match the generator's, and labels are arbitrary (only the
    partition counts).

    Parameters
    ----------
    estimator : estimator, DataFrame or array-like
        A fitted :class:`~invrec.PaInvRLRecommender` or :class:`~invrec.EIORRecommender`; or its
        ``environments_`` (a DataFrame with ``user``, ``item`` and ``environment``); or the
        label of every interaction.
    truth : DataFrame or array-like, default=None
        The true environments: a DataFrame with ``user``, ``item`` and ``environment`` (the
        generator's ``interactions``; aligned on the pairs, so it may hold more rows, such as the
        validation share the estimator held out), or one label per row of the inferred labels.
    ax : matplotlib Axes, default=None
        Where to draw; None makes a new figure.

    Returns
    -------
    ax : matplotlib Axes
        ``ax.patches`` holds one bar per inferred environment, or one per (true, inferred)
        pair with the truth, the true environments in turn.

    Raises
    ------
    ValueError
        If the labels are empty or hold missing values, or cannot be aligned with the truth.
    TypeError, sklearn.exceptions.NotFittedError
        If the estimator has no environments, or is not fitted.

    Examples
    --------
    >>> from invrec.plotting import plot_environment_sizes
    >>> ax = plot_environment_sizes([0, 0, 1, 1, 1], truth=["a", "b", "b", "b", "b"])
    >>> [int(bar.get_height()) for bar in ax.patches]
    [1, 0, 1, 3]
    """
    inferred = _environment_labels(estimator)
    true = None
    if truth is None:
        labels = _labels(_label_column(inferred, "the environments"), "inferred")
        if labels.size == 0:
            raise ValueError("the inferred environments are empty: there is nothing to plot.")
    else:
        if isinstance(inferred, pd.DataFrame) != isinstance(truth, pd.DataFrame):
            # one frame and one label array: compare the labels row by row
            inferred = _label_column(inferred, "the environments")
            truth = _label_column(truth, "truth")
        labels, true = _aligned_labels(inferred, truth)
    names, codes = np.unique(labels, return_inverse=True)
    positions = np.arange(names.size)
    ax = _axes(ax, figsize=(6, 3.5))
    if true is None:
        ax.bar(positions, np.bincount(codes, minlength=names.size), color=_INVARIANT)
    else:
        true_names, true_codes = np.unique(true, return_inverse=True)
        counts = np.zeros((names.size, true_names.size), dtype=np.int64)
        np.add.at(counts, (codes, true_codes), 1)
        bottom = np.zeros(names.size)
        for j, name in enumerate(true_names):      # one stacked layer per true environment
            ax.bar(positions, counts[:, j], bottom=bottom, label=str(name), color=f"C{j % 10}")
            bottom += counts[:, j]
        scores = environment_recovery(labels, true)
        ax.set_title(f"Inferred against true environments (ARI {scores['ari']:.2f}, "
                     f"NMI {scores['nmi']:.2f})")
        ax.legend(title="true environment", fontsize=8)
    ax.set_xticks(positions, [str(name) for name in names])
    ax.set_xlabel("inferred environment")
    ax.set_ylabel("training interactions")
    return ax


# ----------------------------------------------------------------------------- history
def _numeric(records, key):
    """The values of ``key`` over ``records`` (NaN where absent), checked to be numbers."""
    values = [record.get(key, np.nan) for record in records]
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Real)]
    if bad:
        raise ValueError(f"history key {key!r} holds {type(bad[0]).__name__} values, not numbers; "
                         "plot only scalar keys.")
    return np.asarray(values, dtype=float)


def plot_training_history(estimator, *, stage="final", keys=None, ax=None):
    """The training loss and the validation score of one training stage, epoch by epoch.

    Reads the estimator's ``history_`` (one record per epoch, :mod:`invrec.training`): by default
    the training loss on ``ax`` and the validation score the estimator monitored for early
    stopping (``valid_ndcg@20``, or ``valid_rmse`` for a rating regressor) on a twin axis at the
    right, with a dotted line at the epoch whose parameters were kept (the last ``best`` record).
    For a stage repeated over outer iterations (PaInvRL's and EIOR's ``mask`` and
    ``environments``), the epochs of the iterations follow each other, separated by dotted lines.

    Parameters
    ----------
    estimator : estimator or list of dict
        A fitted estimator trained by epochs (every invrec estimator but popularity), or its
        ``history_``.
    stage : str, default="final"
        The stage whose records are drawn: ``"final"`` (the model that predicts), or PaInvRL's
        and EIOR's ``"mask"`` and ``"environments"``.
    keys : sequence of str, default=None
        History keys drawn on ``ax`` instead of the default (for example
        ``["loss_fuse", "loss_irm", "loss_erm"]`` for EIOR); no twin axis then.
    ax : matplotlib Axes, default=None
        Where to draw; None makes a new figure.

    Returns
    -------
    ax : matplotlib Axes
        The training loss's Axes (the twin axis is in ``ax.figure.axes``).

    Raises
    ------
    ValueError
        If the history has no record of ``stage`` (the stages it has are named), or a key is
        absent or not a number.
    TypeError, sklearn.exceptions.NotFittedError
        If the input is not an estimator or a history, or the estimator is not fitted.

    Examples
    --------
    >>> from invrec.plotting import plot_training_history
    >>> history = [{"stage": "final", "epoch": 1, "train_loss": 1.0, "valid_ndcg@20": 0.2, "best": True},
    ...            {"stage": "final", "epoch": 2, "train_loss": 0.8, "valid_ndcg@20": 0.1}]
    >>> ax = plot_training_history(history)
    >>> ax.lines[0].get_ydata().tolist(), ax.get_ylabel()
    ([1.0, 0.8], 'train_loss')
    """
    estimator = _final_step(estimator)
    history = _history(estimator, "plot_training_history")
    if not isinstance(stage, str):
        raise TypeError(f"stage must be a str; got {type(stage).__name__}.")
    records = [record for record in history if record.get("stage") == stage]
    if not records:
        stages = sorted({str(record.get("stage")) for record in history})
        what = type(estimator).__name__ if not isinstance(estimator, list) else "the history"
        raise ValueError(f"{what} has no {stage!r} training records"
                         + (f"; its stages are {stages}." if stages else
                            ": it was not trained by epochs (popularity is counted)."))
    if keys is None:
        left = ["train_loss"]
        right = sorted({key for record in records for key in record if key.startswith("valid_")})
    else:
        if isinstance(keys, str) or not all(isinstance(key, str) for key in keys) or not keys:
            raise TypeError(f"keys must be a non-empty list of history keys (str); got {keys!r}.")
        left, right = list(keys), []
    present = {key for record in records for key in record}
    missing = [key for key in left if key not in present]
    if missing:
        raise ValueError(f"the {stage!r} records have no key {missing}; they have "
                         f"{sorted(present)}.")

    ax = _axes(ax, figsize=(6, 3.5))
    epochs = np.arange(1, len(records) + 1)
    for key in left:
        ax.plot(epochs, _numeric(records, key), label=key)
    ax.set_xlabel("epoch" if stage == "final" else f"{stage} epoch (outer iterations in turn)")
    ax.set_ylabel(left[0] if len(left) == 1 else "value")
    handles, labels = ax.get_legend_handles_labels()
    if right:
        twin = ax.twinx()
        for offset, key in enumerate(right, start=1):
            twin.plot(epochs, _numeric(records, key), color=f"C{offset}", label=key)
        twin.set_ylabel(right[0] if len(right) == 1 else "validation")
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    best = np.flatnonzero([bool(record.get("best", False)) for record in records])
    if best.size:
        kept = ax.axvline(epochs[best[-1]], color=_NEUTRAL, linestyle=":", linewidth=1)
        handles, labels = handles + [kept], labels + [f"kept (epoch {epochs[best[-1]]})"]
    outer = np.array([record.get("outer_iter", 0) for record in records])
    for start in np.flatnonzero(np.diff(outer)) + 1:
        ax.axvline(start + 0.5, color=_NEUTRAL, linestyle="--", linewidth=0.8)
    if not isinstance(estimator, list):
        ax.set_title(f"{type(estimator).__name__}: {stage} stage")
    _integer_ticks(ax)
    # below the Axes: inside, the twin axis would draw its lines over the legend
    ax.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18),
              ncol=min(len(handles), 3))
    return ax
