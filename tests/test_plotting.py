"""invrec.plotting: what each plot draws is the estimator's attributes, and bad input raises."""

import importlib
import sys

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from invrec import EIORRecommender  # noqa: E402
from invrec import plotting  # noqa: E402
from invrec.baselines import PopularityRecommender, UltraGCNRecommender  # noqa: E402
from invrec.datasets import make_multimodal_interactions  # noqa: E402
from invrec.diagnostics import environment_recovery  # noqa: E402
from invrec.invariance import EnvironmentInference, MaskLearning  # noqa: E402
from invrec.plotting import (pareto_front, plot_attention, plot_environment_sizes,  # noqa: E402
                             plot_iid_ood_front, plot_mask, plot_training_history)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    return make_multimodal_interactions(n_users=40, n_items=30, random_state=0)


@pytest.fixture(scope="module")
def eior(data):
    """A tiny EIOR fit: every fitted attribute the plots read, in a few seconds."""
    model = EIORRecommender(
        embedding_dim=4, content_dim=4, batch_size=128, max_epochs=3, n_outer_iter=1,
        environments=EnvironmentInference(3, max_rounds=1, epochs=1), mask=MaskLearning(epochs=1),
        random_state=0)
    return model.fit(data.interactions[["user", "item"]], item_features=data.item_features)


@pytest.fixture(scope="module")
def ultragcn(data):
    model = UltraGCNRecommender(embedding_dim=4, content_dim=4, batch_size=128, max_epochs=3,
                                random_state=0)
    return model.fit(data.interactions[["user", "item"]], item_features=data.item_features)


def _heights(ax):
    return np.array([bar.get_height() for bar in ax.patches])


# ----------------------------------------------------------------------------- matplotlib missing
def test_every_function_names_the_plot_extra_when_matplotlib_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    reloaded = importlib.reload(plotting)         # the module itself imports without matplotlib
    history = [{"stage": "final", "epoch": 1, "train_loss": 1.0}]
    calls = [lambda: reloaded.plot_iid_ood_front({"a": (0.1, 0.2)}),
             lambda: reloaded.plot_mask({"visual": [0.5, 0.2]}),
             lambda: reloaded.plot_attention(np.array([[0.5, 0.5]])),
             lambda: reloaded.plot_environment_sizes([0, 1]),
             lambda: reloaded.plot_training_history(history)]
    for call in calls:
        with pytest.raises(ImportError, match=r'pip install "invrec\[plot\]"'):
            call()


# ----------------------------------------------------------------------------- IID-OOD front
RESULTS = pd.DataFrame({"IID": [0.30, 0.20, 0.10, 0.25], "OOD": [0.10, 0.20, 0.30, 0.05]},
                       index=["erm", "mid", "robust", "dominated"])


def test_pareto_front_by_hand():
    assert pareto_front(RESULTS["IID"], RESULTS["OOD"]).tolist() == [True, True, True, False]
    # a tie on both scores dominates neither; equal on one, better on the other dominates
    assert pareto_front([0.2, 0.2, 0.2], [0.1, 0.1, 0.05]).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="same length"):
        pareto_front([0.1, 0.2], [0.1])


def test_front_draws_one_point_per_setting_the_front_and_the_references():
    before = RESULTS.copy()
    ax = plot_iid_ood_front(RESULTS, popularity=(0.05, 0.02), oracle=(0.4, 0.5))
    pd.testing.assert_frame_equal(RESULTS, before)        # the caller's table is untouched
    assert len(ax.collections) == len(RESULTS)
    points = np.vstack([c.get_offsets() for c in ax.collections])
    np.testing.assert_allclose(points, RESULTS[["IID", "OOD"]].to_numpy())
    front, *references = ax.lines
    # the non-dominated settings, by increasing IID score
    np.testing.assert_allclose(front.get_xdata(), [0.10, 0.20, 0.30])
    np.testing.assert_allclose(front.get_ydata(), [0.30, 0.20, 0.10])
    horizontal = sorted(float(line.get_ydata()[0]) for line in references
                        if line.get_ydata()[0] == line.get_ydata()[1])
    vertical = sorted(float(line.get_xdata()[0]) for line in references
                      if line.get_xdata()[0] == line.get_xdata()[1])
    assert horizontal == [0.02, 0.5] and vertical == [0.05, 0.4]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("IID NDCG@20", "OOD NDCG@20")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(RESULTS.index) <= set(texts)
    assert "popularity: OOD 0.02, IID 0.05" in texts and "oracle: OOD 0.5, IID 0.4" in texts


def test_front_takes_a_dict_and_a_float_reference_draws_the_ood_line_only():
    as_dict = {name: {"IID": row["IID"], "OOD": row["OOD"]} for name, row in RESULTS.iterrows()}
    ax = plot_iid_ood_front(as_dict, popularity=0.02, front=False, legend=False)
    np.testing.assert_allclose(np.vstack([c.get_offsets() for c in ax.collections]),
                               RESULTS.to_numpy())
    assert len(ax.lines) == 1 and list(ax.lines[0].get_ydata()) == [0.02, 0.02]
    assert ax.get_legend() is None
    pairs = plot_iid_ood_front({"a": (0.1, 0.2), "b": np.array([0.3, 0.1])}, iid="in", ood="out",
                               metric="recall@10")
    assert pairs.get_xlabel() == "in recall@10"
    np.testing.assert_allclose(pairs.collections[1].get_offsets(), [[0.3, 0.1]])


def test_front_draws_on_the_given_axes():
    _, ax = plt.subplots()
    assert plot_iid_ood_front(RESULTS, ax=ax) is ax


@pytest.mark.parametrize("results, error, match", [
    (pd.DataFrame({"IID": [0.1], "OOD": [np.nan]}, index=["a"]), ValueError, "finite"),
    (pd.DataFrame({"IID": [0.1], "ood": [0.2]}), ValueError, r"lacks the column\(s\) \['OOD'\]"),
    ({"a": (0.1, 0.2, 0.3)}, ValueError, r"\(iid, ood\) pair"),
    ({"a": {"IID": 0.1}}, ValueError, r"lacks \['OOD'\]"),
    ({}, ValueError, "no settings"),
    ([(0.1, 0.2)], TypeError, "DataFrame"),
])
def test_front_rejects_bad_results(results, error, match):
    with pytest.raises(error, match=match):
        plot_iid_ood_front(results)


def test_front_rejects_bad_references_and_axes():
    with pytest.raises(ValueError, match="oracle's OOD score must be a finite number"):
        plot_iid_ood_front(RESULTS, oracle=(0.3, float("nan")))
    with pytest.raises(ValueError, match="popularity must be a float"):
        plot_iid_ood_front(RESULTS, popularity="0.1")
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plot_iid_ood_front(RESULTS, ax=plt.figure())


# ----------------------------------------------------------------------------- mask
MASK = {"visual": np.array([0.9, 0.2, 0.1]), "text": np.array([0.3, 0.8])}
TRUTH = {"visual": np.array([True, False, True]), "text": np.array([False, True])}


def test_mask_bars_are_the_values_coloured_by_the_truth_with_the_auc_by_hand():
    ax = plot_mask(MASK, TRUTH)
    np.testing.assert_allclose(_heights(ax), [0.9, 0.2, 0.1, 0.3, 0.8])
    invariant, spurious = to_rgba("C0"), to_rgba("C3")
    assert [bar.get_facecolor() for bar in ax.patches] == [invariant, spurious, invariant,
                                                           spurious, invariant]
    # visual: 0.9 > 0.2 but 0.1 < 0.2 -> 0.5; text: 0.8 > 0.3 -> 1; overall: 4 of 6 pairs
    assert [t.get_text() for t in ax.get_xticklabels()] == ["visual\nAUC 0.50", "text\nAUC 1.00"]
    assert "AUC 0.67" in ax.get_title()
    assert [line.get_xdata()[0] for line in ax.lines] == [2.5]     # the modality separator
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["invariant dimension",
                                                                   "spurious dimension"]
    assert ax.get_ylabel() == "mask value"


def test_mask_sorted_within_each_modality_keeps_each_bar_its_truth():
    ax = plot_mask(MASK, TRUTH, sort=True)
    np.testing.assert_allclose(_heights(ax), [0.9, 0.2, 0.1, 0.8, 0.3])
    invariant, spurious = to_rgba("C0"), to_rgba("C3")
    assert [bar.get_facecolor() for bar in ax.patches] == [invariant, spurious, invariant,
                                                           invariant, spurious]
    assert "sorted" in ax.get_xlabel()


def test_mask_of_a_flat_array_is_split_by_the_truth_and_alone_it_is_one_block():
    flat = plot_mask(np.array([0.9, 0.2, 0.1, 0.3, 0.8]), TRUTH)
    np.testing.assert_allclose(_heights(flat), [0.9, 0.2, 0.1, 0.3, 0.8])
    assert [t.get_text() for t in flat.get_xticklabels()] == ["visual\nAUC 0.50", "text\nAUC 1.00"]
    alone = plot_mask([0.4, 0.6])
    np.testing.assert_allclose(_heights(alone), [0.4, 0.6])
    assert not alone.lines and alone.get_title() == ""


def test_mask_of_a_fitted_estimator_plots_its_invariant_mask(eior, data):
    ax = plot_mask(eior, data.invariant_mask)
    expected = np.concatenate([eior.invariant_mask_[m] for m in data.invariant_mask])
    assert len(ax.patches) == sum(v.size for v in data.invariant_mask.values())
    np.testing.assert_allclose(_heights(ax), expected)
    ticks = [t.get_text().split("\n")[0] for t in ax.get_xticklabels()]
    assert ticks == list(data.invariant_mask)


@pytest.mark.parametrize("mask, truth, error, match", [
    ({"visual": [0.5, 0.2]}, {"visual": [True, False, True]}, ValueError, "has 2 values"),
    ({"visual": [0.5, 0.2]}, {"text": [True, False]}, ValueError, "modalities"),
    ({"visual": [0.5, 0.2]}, {"visual": [0.5, 1.0]}, ValueError, "boolean"),
    ({"visual": [0.5, np.nan]}, None, ValueError, "NaN"),
    ({}, None, ValueError, "empty"),
])
def test_mask_rejects_bad_input(mask, truth, error, match):
    with pytest.raises(error, match=match):
        plot_mask(mask, truth)


def test_mask_needs_a_fitted_estimator_with_a_mask(ultragcn):
    with pytest.raises(NotFittedError, match="not fitted"):
        plot_mask(EIORRecommender())
    with pytest.raises(TypeError, match="UltraGCNRecommender has no invariant_mask_"):
        plot_mask(ultragcn)
    with pytest.raises(TypeError, match="plot_mask takes a fitted estimator"):
        plot_mask("visual")


# ----------------------------------------------------------------------------- attention
def test_attention_over_items_is_the_histogram_of_the_invariant_weight(eior):
    ax = plot_attention(eior, bins=10, label="EIOR")
    weights = eior.attention_weights_[:, 0]
    counts, _ = np.histogram(weights, bins=np.linspace(0, 1, 11))
    np.testing.assert_array_equal(_heights(ax), counts)
    assert len(ax.patches) == 10 and _heights(ax).sum() == eior.n_items_
    assert ax.get_legend().get_texts()[0].get_text() == f"EIOR (mean {weights.mean():.2f})"
    assert ax.get_xlabel() == "invariant weight of an item"


def test_attention_over_epochs_is_the_history_and_overlays(eior):
    _, ax = plt.subplots()
    expected = [r["attention_inv"] for r in eior.history_ if r["stage"] == "final"]
    assert plot_attention(eior, over="epochs", label="a", ax=ax) is ax
    plot_attention(eior.history_, over="epochs", label="b", ax=ax)
    assert len(ax.lines) == 2
    for line in ax.lines:
        np.testing.assert_allclose(line.get_ydata(), expected)
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(expected) + 1))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_attention_by_hand_and_bad_input(ultragcn):
    ax = plot_attention(np.array([[0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]), bins=4)
    np.testing.assert_array_equal(_heights(ax), [1, 0, 2, 0])
    with pytest.raises(ValueError, match=r"\(n_items, 2\)"):
        plot_attention(np.ones((3, 3)) / 3)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        plot_attention(np.array([[1.5, -0.5]]))
    with pytest.raises(ValueError, match="over"):
        plot_attention(np.array([[0.5, 0.5]]), over="users")
    with pytest.raises(ValueError, match="bins"):
        plot_attention(np.array([[0.5, 0.5]]), bins=0)
    with pytest.raises(TypeError, match="UltraGCNRecommender has no attention_weights_"):
        plot_attention(ultragcn)
    with pytest.raises(ValueError, match="attention_inv"):
        plot_attention(ultragcn, over="epochs")


# ----------------------------------------------------------------------------- environments
def test_environment_sizes_by_hand_stack_the_true_environments():
    inferred, truth = [0, 0, 1, 1, 1], ["a", "b", "b", "b", "b"]
    ax = plot_environment_sizes(inferred, truth)
    # layer "a" then layer "b"; inferred 0 holds one of each, inferred 1 three b
    np.testing.assert_array_equal(_heights(ax), [1, 0, 1, 3])
    np.testing.assert_array_equal([bar.get_y() for bar in ax.patches], [0, 0, 1, 0])
    ari = environment_recovery(inferred, truth)["ari"]
    assert f"ARI {ari:.2f}" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_environment_sizes_of_a_fitted_estimator(eior, data):
    sizes = eior.environments_["environment"].value_counts().sort_index()
    ax = plot_environment_sizes(eior)
    np.testing.assert_array_equal(_heights(ax), sizes.to_numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(e) for e in sizes.index]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("inferred environment", "training interactions")

    truth = data.interactions                      # holds the validation share too: aligned
    stacked = plot_environment_sizes(eior.environments_, truth)
    n_true = data.interactions["environment"].nunique()
    assert len(stacked.patches) == len(sizes) * n_true
    per_inferred = _heights(stacked).reshape(n_true, len(sizes)).sum(axis=0)
    np.testing.assert_array_equal(per_inferred, sizes.to_numpy())
    ari = environment_recovery(eior.environments_, truth)["ari"]
    assert f"ARI {ari:.2f}" in stacked.get_title()


def test_environment_sizes_reject_bad_input(eior, ultragcn):
    with pytest.raises(ValueError, match="3 labels but true has 2"):
        plot_environment_sizes([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="lacks the column 'environment'"):
        plot_environment_sizes(pd.DataFrame({"user": [0], "item": [1]}))
    with pytest.raises(ValueError, match="not in true"):
        plot_environment_sizes(eior.environments_,
                               pd.DataFrame({"user": [0], "item": [1], "environment": [0]}))
    with pytest.raises(ValueError, match="missing values"):
        plot_environment_sizes([0, None])
    with pytest.raises(ValueError, match="empty"):
        plot_environment_sizes([])
    with pytest.raises(TypeError, match="UltraGCNRecommender has no environments_"):
        plot_environment_sizes(ultragcn)


# ----------------------------------------------------------------------------- history
def test_history_draws_the_loss_and_the_monitored_score_on_a_twin_axis(ultragcn):
    ax = plot_training_history(ultragcn)
    records = [r for r in ultragcn.history_ if r["stage"] == "final"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [r["train_loss"] for r in records])
    twin = [other for other in ax.figure.axes if other is not ax]
    assert len(twin) == 1
    np.testing.assert_allclose(twin[0].lines[0].get_ydata(), [r["valid_ndcg@20"] for r in records])
    assert (ax.get_ylabel(), twin[0].get_ylabel()) == ("train_loss", "valid_ndcg@20")
    best = max(i for i, r in enumerate(records, start=1) if r.get("best"))
    assert ax.lines[1].get_xdata()[0] == best
    assert f"kept (epoch {best})" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_title() == "UltraGCNRecommender: final stage"


def test_history_of_chosen_keys_and_of_the_mask_stage(eior):
    ax = plot_training_history(eior, keys=["loss_irm", "loss_erm"])
    final = [r for r in eior.history_ if r["stage"] == "final"]
    assert len(ax.figure.axes) == 1 and len(ax.lines) == 3          # two keys, the kept epoch
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [r["loss_erm"] for r in final])
    best = max(i for i, r in enumerate(final, start=1) if r.get("best"))
    assert list(ax.lines[2].get_xdata()) == [best, best]
    mask = plot_training_history(eior, stage="mask")
    np.testing.assert_allclose(mask.lines[0].get_ydata(),
                               [r["train_loss"] for r in eior.history_ if r["stage"] == "mask"])


def test_history_separates_outer_iterations_by_hand():
    history = [{"stage": "mask", "outer_iter": o, "epoch": e, "train_loss": v}
               for o, e, v in ((1, 1, 3.0), (1, 2, 2.0), (2, 1, 2.5), (2, 2, 1.5))]
    history.append({"stage": "final", "epoch": 1, "train_loss": 9.0})
    ax = plot_training_history(history, stage="mask")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [3.0, 2.0, 2.5, 1.5])
    assert [line.get_xdata()[0] for line in ax.lines[1:]] == [2.5]
    assert len(ax.figure.axes) == 1                 # no validation key: no twin axis


def test_a_pipeline_is_read_through_its_last_step(eior):
    from sklearn.pipeline import Pipeline

    pipeline = Pipeline([("model", eior)])
    np.testing.assert_allclose(_heights(plot_mask(pipeline)),
                               np.concatenate(list(eior.invariant_mask_.values())))
    ax = plot_training_history(Pipeline([("inner", pipeline)]))
    assert ax.get_title() == "EIORRecommender: final stage"


def test_history_rejects_bad_input(ultragcn):
    with pytest.raises(ValueError, match="not trained by epochs"):
        plot_training_history(PopularityRecommender().fit(pd.DataFrame({"user": [0], "item": [1]})))
    with pytest.raises(ValueError, match=r"no 'mask' training records; its stages are \['final'\]"):
        plot_training_history(ultragcn, stage="mask")
    with pytest.raises(ValueError, match=r"no key \['loss_irm'\]"):
        plot_training_history(ultragcn, keys=["loss_irm"])
    with pytest.raises(ValueError, match="'mixture_risks' holds list values"):
        plot_training_history([{"stage": "final", "train_loss": 1.0, "mixture_risks": [0.1, 0.2]}],
                              keys=["mixture_risks"])
    with pytest.raises(TypeError, match="keys must be"):
        plot_training_history(ultragcn, keys="train_loss")
    with pytest.raises(NotFittedError):
        plot_training_history(UltraGCNRecommender())
    with pytest.raises(TypeError, match="history_"):
        plot_training_history({"stage": "final"})
