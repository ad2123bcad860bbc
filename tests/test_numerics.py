"""Reliability of the numbers (issue 17, defects 1, 4, 5 and 8): no silent NaN models, interaction
weights honoured, ``predict`` in bounded chunks, and Ctrl-C handled alike in every stage."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

import invrec.base
import invrec.invariance.environments
import invrec.invariance.invariant_mask
import invrec.training
from invrec import ItemFeatures
from invrec.baselines import PopularityRecommender, UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.eior import EIORRecommender, EIORRegressor
from invrec.invariance import EnvironmentInference, MaskLearning
from invrec.milk import MILKRecommender
from invrec.nn import item_item_loss, ultragcn_loss
from invrec.painvrl import PaInvRLRecommender
from invrec.training import TrainingDivergedError, train_epochs

BACKBONE = dict(max_epochs=2, batch_size=64, embedding_dim=4, content_dim=4, random_state=0,
                early_stopping=False, device="cpu")
STAGES = dict(environments=EnvironmentInference(2, max_rounds=1, epochs=1), n_outer_iter=1)
MILK = dict(max_epochs=2, batch_size=64, embedding_dim=4, random_state=0, early_stopping=False,
            device="cpu")

#: The trained ranking estimators, by name.
RANKERS = {
    "UltraGCN": lambda: UltraGCNRecommender(**BACKBONE, n_negatives=4),
    "UltraGCN-item-item": lambda: UltraGCNRecommender(**BACKBONE, n_negatives=4, item_item_weight=0.5),
    "PaInvRL": lambda: PaInvRLRecommender(**BACKBONE, n_negatives=4, **STAGES, mask=MaskLearning(epochs=1)),
    "EIOR": lambda: EIORRecommender(**BACKBONE, n_negatives=4, **STAGES,
                                    mask=MaskLearning(epochs=1, weighting=0.5)),
    "MILK": lambda: MILKRecommender(**MILK),
    "MILK-missing-impute": lambda: MILKRecommender(**MILK, mixtures="cyclic+missing", missing_fill="impute"),
}


@pytest.fixture(scope="module")
def data():
    bunch = make_multimodal_interactions(n_users=40, n_items=30, interactions_per_user=4, random_state=0)
    return bunch, bunch.interactions[["user", "item"]]


def _weights(X, seed=0):
    return np.random.default_rng(seed).uniform(0.1, 5.0, len(X))


# ---------------------------------------------------------------------- 1. no silent NaN models
def test_normalize_does_not_overflow_or_underflow_float32():
    values = np.array([[1e30, 2e30, -2e30], [3e38, 3e38, 3e38], [1e-30, 0.0, -1e-30],
                       [np.nan] * 3, [0.0] * 3, [1.0, 2.0, 2.0]], dtype=np.float32)
    out = ItemFeatures({"v": values}).normalize()["v"]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [1 / 3, 2 / 3, -2 / 3], rtol=1e-6)
    np.testing.assert_allclose(out[1], [3 ** -0.5] * 3, rtol=1e-6)
    np.testing.assert_allclose(out[2], [2 ** -0.5, 0.0, -(2 ** -0.5)], rtol=1e-6)
    assert np.isnan(out[3]).all()                                   # a missing row stays missing
    assert (out[4] == 0).all()                                      # a zero row stays zero
    np.testing.assert_allclose(out[5], [1 / 3, 2 / 3, 2 / 3], rtol=1e-6)


def test_normalize_of_ordinary_content_is_unchanged_bit_for_bit(data):
    bunch, _ = data
    features = bunch.item_features.with_missing(0.3, random_state=0)
    out = features.normalize()
    for name in features.modalities:
        m = features[name]
        norms = np.linalg.norm(m, axis=1, keepdims=True)            # the plain float32 recipe
        expected = m / np.where((norms > 0) & np.isfinite(norms), norms, 1.0)
        np.testing.assert_array_equal(out[name], expected)


@pytest.mark.parametrize("name", ["UltraGCN", "PaInvRL", "EIOR", "MILK"])
def test_huge_finite_content_gives_finite_predictions(data, name):
    bunch, X = data
    f = bunch.item_features
    huge = ItemFeatures({m: np.asarray(f[m], dtype=np.float64) * 1e30 for m in f.modalities},
                        item_ids=f.item_ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)               # no overflow on the way
        model = RANKERS[name]().fit(X, item_features=huge)
    assert np.isfinite(model.predict(X)).all()
    assert np.isfinite(model.recommend(X["user"].unique(), n=5)["score"]).all()


class _NaNAfter(UltraGCNRecommender):
    """UltraGCN whose batch loss turns NaN from the ``nan_from``-th batch on."""

    nan_from = 3

    def _batch_objective(self, module, data, mask=None):
        inner, calls = super()._batch_objective(module, data, mask), {"n": 0}

        def objective(rows):
            calls["n"] += 1
            loss = inner(rows)
            return loss * float("nan") if calls["n"] >= self.nan_from else loss
        return objective


def test_non_finite_loss_raises_and_leaves_no_fitted_model(data):
    bunch, X = data
    model = _NaNAfter(**{**BACKBONE, "max_epochs": 4}, n_negatives=4)
    with pytest.raises(TrainingDivergedError, match=r"stage 'final', epoch 1: the training loss is nan"
                                                    r".*Lower learning_rate") as info:
        model.fit(X, item_features=bunch.item_features)
    assert isinstance(info.value, FloatingPointError) and isinstance(info.value, ValueError)
    assert (info.value.stage, info.value.epoch) == ("final", 1)
    with pytest.raises(NotFittedError):
        model.predict(X.iloc[:3])


def test_non_finite_loss_in_a_refit_keeps_the_previous_model(data):
    bunch, X = data
    model = _NaNAfter(**BACKBONE, n_negatives=4)
    model.nan_from = 10 ** 9
    model.fit(X, item_features=bunch.item_features)
    before, state = model.predict(X), dict(vars(model))
    model.nan_from = state["nan_from"] = 1
    with pytest.raises(TrainingDivergedError):
        model.fit(X, item_features=bunch.item_features)
    assert vars(model).keys() == state.keys() and all(vars(model)[k] is v for k, v in state.items())
    np.testing.assert_array_equal(model.predict(X), before)


def _tiny_loop(batch_loss, stage, module, max_epochs=2, batch_size=4):
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    return train_epochs(module, optimizer, batch_loss, n_rows=8, max_epochs=max_epochs, batch_size=batch_size,
                        generator=torch.Generator().manual_seed(0), device="cpu", history=[],
                        stage=stage)


@pytest.mark.parametrize("stage, hint", [("mask", r"MaskLearning\(learning_rate=...\)"),
                                         ("environments", "learning_rate"), ("final", "learning_rate")])
def test_every_stage_names_itself_and_its_step_size(stage, hint):
    module = torch.nn.Linear(2, 1)
    x = torch.ones(8, 2)

    def batch_loss(rows):
        return module(x[rows]).sum() + (torch.inf if stage == "mask" else torch.nan)

    with pytest.raises(TrainingDivergedError, match=rf"stage {stage!r}, epoch 1.*Lower .*{hint}"):
        _tiny_loop(batch_loss, stage, module)


def test_non_finite_parameters_after_a_finite_loss_raise():
    module = torch.nn.Linear(2, 1)
    module.weight.register_hook(lambda grad: grad * float("nan"))   # finite loss, NaN gradient
    x = torch.ones(8, 2)
    with pytest.raises(TrainingDivergedError, match=r"parameters \['weight'\] hold NaN or inf"):
        _tiny_loop(lambda rows: module(x[rows]).mean() * 0.0 + 1.0, "final", module, max_epochs=1,
                   batch_size=8)                                    # one step: its loss is finite


# ---------------------------------------------------------------------- 4. weights are honoured
def test_sample_weight_counts_a_positive_as_if_repeated():
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(3, generator=g), torch.randn(3, 5, generator=g)
    bu, bp, bn = torch.rand(3, generator=g), torch.rand(3, generator=g), torch.rand(5, generator=g)
    weighted = ultragcn_loss(pos, neg, bu, bp, bn, sample_weight=torch.tensor([2.0, 1.0, 0.5]), reduction="sum")
    per_row = ultragcn_loss(pos, neg, bu, bp, bn, reduction="none")
    torch.testing.assert_close(weighted, 2 * per_row[0] + per_row[1] + 0.5 * per_row[2])
    ones = torch.ones(3)
    assert torch.equal(ultragcn_loss(pos, neg, bu, bp, bn, sample_weight=ones), ultragcn_loss(pos, neg, bu, bp, bn))
    u, h, w = torch.randn(3, 4, generator=g), torch.randn(3, 2, 4, generator=g), torch.rand(3, 2, generator=g)
    torch.testing.assert_close(item_item_loss(u, h, w, sample_weight=torch.tensor([0.0, 3.0, 0.0])),
                               item_item_loss(u, h, w, reduction="none")[1])
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        ultragcn_loss(pos, neg, bu, bp, bn, sample_weight=torch.ones(2))


@pytest.mark.parametrize("name", RANKERS)
def test_constant_weights_give_the_unweighted_model_bit_for_bit(data, name):
    bunch, X = data
    unweighted = RANKERS[name]().fit(X, item_features=bunch.item_features).predict(X)
    for y in (np.ones(len(X)), np.full(len(X), 3.5)):
        model = RANKERS[name]().fit(X, y, item_features=bunch.item_features)
        np.testing.assert_array_equal(model.predict(X), unweighted)


@pytest.mark.parametrize("name", RANKERS)
def test_weights_change_the_model_and_only_their_ratios_matter(data, name):
    bunch, X = data
    ones = RANKERS[name]().fit(X, np.ones(len(X)), item_features=bunch.item_features).predict(X)
    w = _weights(X)
    weighted = RANKERS[name]().fit(X, w, item_features=bunch.item_features).predict(X)
    assert not np.allclose(weighted, ones)
    rescaled = RANKERS[name]().fit(X, 1000 * w, item_features=bunch.item_features).predict(X)
    np.testing.assert_allclose(rescaled, weighted, rtol=1e-4, atol=1e-6)


def test_a_heavy_weight_pulls_its_interaction_up(data):
    # Weighing one interaction 50 times the others raises its score more than that of (almost)
    # every other interaction, against the unweighted fit.
    bunch, X = data
    X = X.reset_index(drop=True)
    heavy = np.ones(len(X))
    target = X.index[X["user"] == X["user"].iloc[0]][:1]
    heavy[target] = 50.0
    make = RANKERS["UltraGCN"]
    plain = make().set_params(max_epochs=20).fit(X, item_features=bunch.item_features)
    weighted = make().set_params(max_epochs=20).fit(X, heavy, item_features=bunch.item_features)
    gain = weighted.predict(X.loc[target]) - plain.predict(X.loc[target])
    others = weighted.predict(X.drop(target)) - plain.predict(X.drop(target))
    assert gain[0] > np.percentile(others, 95)


@pytest.mark.parametrize("y, message", [
    (-1.0, r"y holds 1 negative value\(s\), first at row 3 \(-1\).*must be >= 0"),
    (np.nan, "NaN or inf"),
    (1e39, "beyond float32's range"),
])
def test_bad_weights_are_refused_before_any_work(data, y, message):
    bunch, X = data
    model = UltraGCNRecommender(**BACKBONE, n_negatives=4).fit(X, item_features=bunch.item_features)
    before, state = model.predict(X), dict(vars(model))
    weights = np.ones(len(X))
    weights[3] = y
    for estimator in (model, PopularityRecommender()):
        with pytest.raises(ValueError, match=message):
            estimator.fit(X, weights, item_features=bunch.item_features)
    assert all(vars(model)[k] is v for k, v in state.items())
    np.testing.assert_array_equal(model.predict(X), before)


def test_zero_weights_drop_rows_and_are_left_out_of_the_normalisation(data):
    bunch, X = data
    y = np.ones(len(X))
    y[: len(X) // 2] = 0.0                       # dropped; the rest is constant: unweighted
    models = [UltraGCNRecommender(**BACKBONE, n_negatives=4).fit(X, scale * y, item_features=bunch.item_features)
              for scale in (1.0, 7.0)]
    assert models[0]._seen.nnz == len(X) - len(X) // 2
    np.testing.assert_array_equal(models[0].predict(X), models[1].predict(X))


# ---------------------------------------------------------------------- 5. predict in chunks
def _fit_without_some_items(make, bunch, X):
    warm = X[X["item"] < 25]
    model = make()
    y = 1.0 + (warm["user"] + warm["item"]) % 5 if isinstance(model, EIORRegressor) else None
    return model.fit(warm, y, item_features=bunch.item_features.reindex(range(25)))


CHUNKED = {
    "Popularity": PopularityRecommender,
    "UltraGCN": RANKERS["UltraGCN"],
    "EIOR": RANKERS["EIOR"],
    "EIORRegressor": lambda: EIORRegressor(**BACKBONE, **STAGES, mask=MaskLearning(epochs=1, weighting=0.5)),
    "MILK": RANKERS["MILK"],
}


@pytest.mark.parametrize("name", CHUNKED)
def test_predict_in_small_chunks_equals_one_chunk(data, monkeypatch, name):
    bunch, X = data
    model = _fit_without_some_items(CHUNKED[name], bunch, X)
    rows = X.sample(frac=1.0, random_state=0)                     # items 25-29 are new: content only
    whole = model.predict(rows, item_features=bunch.item_features)
    assert len(rows) > invrec.base.PREDICT_CHUNK_SIZE // 1000 and not np.isnan(whole).any()
    monkeypatch.setattr(invrec.base, "PREDICT_CHUNK_SIZE", 7)
    monkeypatch.setattr(invrec.base, "PREDICT_CHUNK_SCORES", 12)  # 12 // 5 new items: 2 rows
    np.testing.assert_array_equal(model.predict(rows, item_features=bunch.item_features), whole)


def test_predict_memory_is_bounded_by_the_chunk_size(data, monkeypatch):
    bunch, X = data
    model = _fit_without_some_items(RANKERS["UltraGCN"], bunch, X)
    rows = X.sample(frac=1.0, random_state=0)
    n_new_rows = int((rows["item"] >= 25).sum())
    sizes = {"pairs": [], "new": []}
    pairs, new = model._score_pairs, model._score_new_items

    def score_pairs(users, items):
        sizes["pairs"].append(len(users))
        return pairs(users, items)

    def score_new_items(users, features):
        sizes["new"].append(len(users) * len(features))             # scores held at once
        return new(users, features)

    monkeypatch.setattr(model, "_score_pairs", score_pairs)
    monkeypatch.setattr(model, "_score_new_items", score_new_items)
    monkeypatch.setattr(invrec.base, "PREDICT_CHUNK_SIZE", 16)
    monkeypatch.setattr(invrec.base, "PREDICT_CHUNK_SCORES", 20)
    model.predict(rows, item_features=bunch.item_features)
    assert max(sizes["pairs"]) <= 16 and sum(sizes["pairs"]) == len(rows) - n_new_rows
    assert len(sizes["pairs"]) == -(-(len(rows) - n_new_rows) // 16)
    assert max(sizes["new"]) <= 20 and sum(sizes["new"]) == n_new_rows * 5


# ---------------------------------------------------------------------- 8. Ctrl-C
#: Every stage that trains, per estimator (the final loop of each, and PaInvRL's and EIOR's stages).
INTERRUPTED = [("UltraGCN", "final"), ("MILK", "final"),
               *[(name, stage) for name in ("PaInvRL", "EIOR") for stage in ("environments", "mask", "final")]]


def _interrupt_mid_stage(monkeypatch, stage):
    """Make the second batch of ``stage`` raise KeyboardInterrupt (after a real optimizer step)."""
    original = invrec.training.train_epochs

    def loop(module, optimizer, batch_loss, **kwargs):
        calls = {"n": 0}

        def interrupted(rows):
            calls["n"] += 1
            if kwargs.get("stage", "final") == stage and calls["n"] == 2:
                raise KeyboardInterrupt
            return batch_loss(rows)
        return original(module, optimizer, interrupted, **kwargs)

    for module in (invrec.base, invrec.invariance.environments, invrec.invariance.invariant_mask):
        monkeypatch.setattr(module, "train_epochs", loop)


@pytest.mark.parametrize("name, stage", INTERRUPTED, ids=[f"{n}-{s}" for n, s in INTERRUPTED])
def test_ctrl_c_mid_stage_propagates_silently_and_keeps_the_previous_model(data, monkeypatch, name, stage):
    bunch, X = data
    model = RANKERS[name]().fit(X, item_features=bunch.item_features)
    before, state = model.predict(X), dict(vars(model))
    _interrupt_mid_stage(monkeypatch, stage)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(KeyboardInterrupt):
            model.fit(X.assign(user=X["user"] + 1000), item_features=bunch.item_features)
    assert not [w for w in caught if "interrupt" in str(w.message).lower() or "best" in str(w.message)]
    monkeypatch.undo()
    assert vars(model).keys() == state.keys() and all(vars(model)[k] is v for k, v in state.items())
    np.testing.assert_array_equal(model.predict(X), before)
