"""The main job: every method at its defaults on the embedded shift problem, next to the oracles.

:func:`run_demo` fits popularity, the ERM baseline (UltraGCN) and the invariant methods on
:func:`invrec.datasets.make_multimodal_interactions` and scores them, and the two ground-truth
oracles, on the in-distribution and the out-of-distribution test rows; :func:`summarize_demo`
puts the largest cut-off's recall and NDCG side by side with each invariant method's OOD ratio to
the ERM baseline and to popularity; :func:`format_demo` is the screen ``invrec demo`` prints and
:func:`plot_demo` its optional figure. Every number is measured by the run; nothing is quoted.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..baselines import PopularityRecommender, UltraGCNRecommender
from ..datasets import make_multimodal_interactions
from ..eior import EIORRecommender
from ..metrics import evaluate_ranking
from ..milk import MILKRecommender
from ..painvrl import PaInvRLRecommender
from ..utils.params import check_int
from ..utils.ranking import rankings_to_frame, top_k
from .models import set_checked_params

#: The demo's fitted models, in the order of its table: name -> estimator class.
DEMO_MODELS = {
    "popularity": PopularityRecommender,
    "UltraGCN (ERM)": UltraGCNRecommender,
    "PaInvRL": PaInvRLRecommender,
    "EIOR": EIORRecommender,
    "MILK": MILKRecommender,
}
#: The references the invariant methods' out-of-distribution NDCG is divided by.
ERM, POPULARITY = "UltraGCN (ERM)", "popularity"
#: The methods built to hold out of distribution (their ratios are shown).
INVARIANT = ("PaInvRL", "EIOR", "MILK")
#: Ground-truth rankings: name -> (user matrix, item matrix) attributes of the generator's Bunch.
ORACLES = {
    "oracle: true preference": ("user_factors", "item_factors"),
    "oracle: spurious attribute": ("user_spurious", "item_spurious"),
}
#: Split label of the table -> held-out rows of the generator's Bunch.
SPLITS = {"IID": "test", "OOD": "test_ood"}


@contextmanager
def torch_threads(n):
    """Run the block with ``n`` torch threads (None: leave torch's setting), restored afterwards."""
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_k(k):
    values = (k,) if np.ndim(k) == 0 else tuple(k)
    if not values:
        raise ValueError("k must hold at least one cut-off, for example k=(10, 20).")
    return tuple(check_int(value, "k") for value in values)


def _build_models(names, params, random_state):
    """The chosen demo estimators, each with the ``params`` it has (checked before any fit)."""
    unknown = [name for name in names if name not in DEMO_MODELS]
    if unknown:
        raise ValueError(f"unknown demo model {unknown}; choose among {list(DEMO_MODELS)}.")
    params = dict(params or {})
    estimators, used = {}, set()
    for name in names:
        estimator = DEMO_MODELS[name]()
        accepted = estimator.get_params(deep=True)
        settings = {key: value for key, value in params.items() if key in accepted}
        if "random_state" in accepted and "random_state" not in settings:
            settings["random_state"] = random_state
        source = ", ".join(f"{key}={value!r}" for key, value in settings.items())
        set_checked_params(estimator, settings, source=f"the demo's {name}: {source}")
        used |= settings.keys()
        estimators[name] = estimator
    unused = sorted(set(params) - used)
    if unused:
        raise ValueError(f"no demo model has the parameter {unused}; the models run are {list(names)}.")
    return estimators


def _score(recommendations, data, k):
    rows = []
    for split, key in SPLITS.items():
        table = evaluate_ranking(recommendations, data[key][["user", "item"]], k=k, metrics=("recall", "ndcg"))
        rows.append({"split": split, **table.loc["all"].to_dict()})
    return rows


def run_demo(n_users=300, n_items=200, k=(10, 20), random_state=0, *, models=None, params=None,
             n_threads=1, progress=False, return_models=False):
    """Fit the demo's models on the embedded shift problem and score them with the oracles.

    The data is :func:`~invrec.datasets.make_multimodal_interactions` ``(n_users, n_items,
    random_state=random_state)``. Each model of :data:`DEMO_MODELS` is built at its defaults
    (its ``random_state`` set to ``random_state``), fitted with ``fit(data.interactions,
    item_features=data.item_features)``, and ranks the whole catalog for every user with the
    training items excluded; the two oracles rank by the generator's ground truth (the true
    preference ``<p_u, q_i>``, the spurious attribute ``<t_u, s_i>``) under the same exclusion.
    Each ranking is scored on the in-distribution (``data.test``) and out-of-distribution
    (``data.test_ood``) rows with :func:`invrec.metrics.evaluate_ranking`.

    Parameters
    ----------
    n_users, n_items : int, default=300, 200
        Size of the synthetic problem.
    k : int or sequence of int, default=(10, 20)
        Cut-offs of recall and NDCG.
    random_state : int, default=0
        Seed of the data and of every model.
    models : sequence of str, default=None
        Keys of :data:`DEMO_MODELS` to fit; None fits them all. The oracles are always scored.
    params : dict, default=None
        Parameter -> value, set on every chosen model that has the parameter (for example
        ``{"max_epochs": 5}`` for a quick look); None keeps every default. A parameter no chosen
        model has is an error.
    n_threads : int or None, default=1
        Torch threads while fitting and ranking, restored afterwards; None keeps torch's
        setting. The demo's problem is small: on an idle 2-core machine one thread is about as
        fast as two, and when other work shares the cores it is many times faster (two threads
        then spend most of a fit waiting for each other).
    progress : bool, default=False
        Show a progress bar over the models (tqdm, on stderr).
    return_models : bool, default=False
        Also return the fitted models.

    Returns
    -------
    table : DataFrame
        One row per model (the oracles first) and split: columns ``model``, ``split`` (``"IID"``
        or ``"OOD"``), ``recall@k`` and ``ndcg@k`` for each cut-off, ``n_users``, ``n_skipped``
        and ``fit_seconds`` (NaN for the oracles).
    models : dict of str -> estimator
        Only with ``return_models=True``: the fitted models by name.

    Raises
    ------
    ValueError
        If a size, cut-off, model name or parameter is invalid (nothing is fitted then).

    Examples
    --------
    >>> table = run_demo(40, 30, k=(5,), models=["popularity"])
    >>> sorted(set(table["model"]))
    ['oracle: spurious attribute', 'oracle: true preference', 'popularity']
    >>> list(table["split"][:2])
    ['IID', 'OOD']
    """
    from tqdm.auto import tqdm

    k = _check_k(k)
    if n_threads is not None:
        n_threads = check_int(n_threads, "n_threads")
    names = list(DEMO_MODELS) if models is None else list(models)
    estimators = _build_models(names, params, random_state)
    data = make_multimodal_interactions(n_users=n_users, n_items=n_items, random_state=random_state)
    train = data.interactions
    seen = sp.csr_array((np.ones(len(train)), (train["user"], train["item"])), shape=(n_users, n_items))
    rows = []
    for name, (users_attr, items_attr) in ORACLES.items():
        items, values = top_k(data[users_attr] @ data[items_attr].T, max(k), exclude=seen)
        recs = rankings_to_frame(np.arange(n_users), items, values)
        rows += [{"model": name, **row, "fit_seconds": np.nan} for row in _score(recs, data, k)]
    bar = tqdm(estimators.items(), total=len(estimators), desc="invrec demo", unit="model",
               disable=not progress, leave=False)
    with torch_threads(n_threads):
        for name, estimator in bar:
            bar.set_postfix_str(f"fitting {name}")
            start = time.perf_counter()
            estimator.fit(train, item_features=data.item_features)
            seconds = time.perf_counter() - start
            recs = estimator.recommend(estimator.user_ids_, n=max(k))
            rows += [{"model": name, **row, "fit_seconds": seconds} for row in _score(recs, data, k)]
    table = pd.DataFrame(rows)
    return (table, estimators) if return_models else table


def _largest_cutoff(table):
    cutoffs = [int(column.split("@")[1]) for column in table.columns if column.startswith("ndcg@")]
    if not cutoffs:
        raise ValueError("the table has no ndcg@k column; pass the table run_demo returns.")
    return max(cutoffs)


def summarize_demo(table, k=None):
    """The demo's one-screen table: IID and OOD recall and NDCG side by side, and the OOD ratios.

    Parameters
    ----------
    table : DataFrame
        As :func:`run_demo` returns.
    k : int, default=None
        Cut-off to show; None is the largest in ``table``.

    Returns
    -------
    summary : DataFrame
        One row per model (the order of ``table``); columns ``IID recall@k``, ``IID ndcg@k``,
        ``OOD recall@k``, ``OOD ndcg@k``, then ``OOD / ERM`` and ``OOD / popularity``: an
        invariant method's OOD ``ndcg@k`` divided by that of the ERM baseline and of popularity
        (``inf`` when that is 0; NaN on the other rows, or when the reference was not run).

    Examples
    --------
    >>> table = pd.DataFrame({"model": ["popularity", "popularity", "PaInvRL", "PaInvRL"],
    ...                       "split": ["IID", "OOD"] * 2, "recall@20": [.2, .1, .3, .4],
    ...                       "ndcg@20": [.1, .25, .2, .5]})
    >>> float(summarize_demo(table).loc["PaInvRL", "OOD / popularity"])
    2.0
    """
    k = _largest_cutoff(table) if k is None else check_int(k, "k")
    columns = [f"recall@{k}", f"ndcg@{k}"]
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"the table has no column {missing}; its cut-offs are {_largest_cutoff(table)} and below.")
    order = pd.unique(table["model"])
    wide = table.pivot(index="model", columns="split", values=columns).reindex(order)
    summary = pd.DataFrame(index=pd.Index(order, name="model"))
    for split in SPLITS:
        for column in columns:
            summary[f"{split} {column}"] = wide[(column, split)].to_numpy(dtype=float)
    ood = summary[f"OOD ndcg@{k}"]
    for reference, label in ((ERM, "OOD / ERM"), (POPULARITY, "OOD / popularity")):
        ratio = pd.Series(np.nan, index=summary.index)
        if reference in summary.index:
            methods = [name for name in INVARIANT if name in summary.index]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio.loc[methods] = ood.loc[methods].to_numpy() / ood.loc[reference]
        summary[label] = ratio
    return summary


def format_demo(table, n_users, n_items, random_state, seconds=None):
    """The text ``invrec demo`` prints: a heading, :func:`summarize_demo`'s table and its legend.

    Parameters
    ----------
    table : DataFrame
        As :func:`run_demo` returns.
    n_users, n_items, random_state : int
        The problem the table was measured on, for the heading.
    seconds : float, default=None
        Wall time of the run, printed when given.

    Returns
    -------
    str
    """
    summary = summarize_demo(table).dropna(axis=1, how="all")   # no ratio columns without a method
    k = _largest_cutoff(table)
    legend = ["IID: held-out rows of the training environments. OOD: a test environment where the spurious",
              "correlation that drove exposure in training is reversed."]
    if "OOD / ERM" in summary or "OOD / popularity" in summary:
        legend[-1] += " OOD / ERM, OOD / popularity: an"
        legend.append(f"invariant method's OOD ndcg@{k} over that of {ERM} and of popularity, measured in this run.")
    lines = [
        f"invrec demo: the embedded synthetic shift problem, {n_users} users x {n_items} items, seed {random_state}.",
        "Each model fitted at its defaults on the training environments, ranking every item a user has not seen.",
        "",
        summary.rename_axis(None).to_string(float_format=lambda value: f"{value:.4f}", na_rep=""),
        "",
        *legend,
    ]
    if seconds is not None:
        lines.append(f"Run time: {seconds:.1f} s.")
    return "\n".join(lines)


def _matplotlib_figure():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("--plot needs matplotlib, invrec's optional extra 'plot': "
                          "pip install 'invrec[plot]' (or pip install matplotlib).") from None
    return Figure


def check_plotting():
    """Raise the clear ImportError :func:`plot_demo` would, before a run that ends in a plot."""
    _matplotlib_figure()


def plot_demo(table, path, k=None):
    """The demo's IID-OOD front (:func:`invrec.plotting.plot_iid_ood_front`), saved to ``path``.

    One point per fitted model (IID ``ndcg@k`` across, OOD up), the trade-off front joined, and
    popularity and the true-preference oracle as reference lines (popularity is a point when it
    is the only model).

    Parameters
    ----------
    table : DataFrame
        As :func:`run_demo` returns.
    path : str or Path
        Image file; the format follows its suffix (``.png``, ``.svg``, ``.pdf``).
    k : int, default=None
        Cut-off; None is the largest in ``table``.

    Returns
    -------
    figure : matplotlib Figure
        The figure written.

    Raises
    ------
    ImportError
        If matplotlib (the optional extra ``plot``) is not installed.
    """
    from ..plotting import plot_iid_ood_front

    figure_class = _matplotlib_figure()
    summary = summarize_demo(table, k)
    k = _largest_cutoff(table) if k is None else k
    scores = summary[[f"IID ndcg@{k}", f"OOD ndcg@{k}"]].set_axis(["IID", "OOD"], axis=1)
    oracle = "oracle: true preference"
    models = [name for name in scores.index if name not in ORACLES and name != POPULARITY]
    popularity = tuple(scores.loc[POPULARITY]) if POPULARITY in scores.index else None
    if not models and popularity is not None:
        models, popularity = [POPULARITY], None
    figure = figure_class(figsize=(7, 5), layout="constrained")
    axes = figure.subplots()
    plot_iid_ood_front(scores.loc[models], popularity=popularity,
                       oracle=tuple(scores.loc[oracle]) if oracle in scores.index else None,
                       metric=f"NDCG@{k}", ax=axes)
    axes.set_title("invrec demo: in and out of distribution")
    figure.savefig(path)
    return figure
