"""EIORRecommender and EIORRegressor: their promises on tiny cases (attention weights, ablations,
implicit feedback and explicit ratings)."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from invrec import ItemFeatures
from invrec.datasets import make_multimodal_interactions
from invrec.eior import EIORRecommender, EIORRegressor
from invrec.invariance import EnvironmentInference, FusedItemModel, FusedObjective, Fusion, MaskLearning

STAGES = dict(environments=EnvironmentInference(2, max_rounds=1, epochs=1), n_outer_iter=1,
              mask=MaskLearning(epochs=2, learning_rate=1e-2, weighting=0.5))
TINY = dict(embedding_dim=8, content_dim=8, batch_size=128, learning_rate=1e-2, n_negatives=8,
            max_epochs=15, early_stopping=False, random_state=0, device="cpu", **STAGES)
#: The regressor has no negatives.
TINY_RATINGS = {k: v for k, v in TINY.items() if k != "n_negatives"}


@pytest.fixture(scope="module")
def synthetic():
    return make_multimodal_interactions(n_users=60, n_items=40, random_state=0)


@pytest.fixture(scope="module")
def fitted(synthetic):
    model = EIORRecommender(**TINY)
    return model.fit(synthetic.interactions[["user", "item"]], item_features=synthetic.item_features)


def test_attention_weights_are_a_distribution_for_every_item_and_move(fitted):
    w = fitted.attention_weights_
    assert w.shape == (fitted.n_items_, 2)
    assert (w >= 0).all() and np.allclose(w.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(fitted.attention_weights_mean_, w.mean(axis=0))
    # every learned mode starts at exactly (0.5, 0.5): training moves them, item by item
    assert np.abs(w[:, 0] - 0.5).max() > 1e-3
    assert w[:, 0].std() > 0
    final = [r for r in fitted.history_ if r["stage"] == "final"]
    assert len(final) == TINY["max_epochs"]
    assert {"loss_fuse", "loss_irm", "loss_erm", "attention_inv", "train_loss"} <= set(final[0])
    np.testing.assert_allclose(final[-1]["train_loss"],
                               final[-1]["loss_fuse"] + 0.5 * final[-1]["loss_irm"] + 0.5 * final[-1]["loss_erm"],
                               rtol=0.05)


def test_diagnostics_come_from_the_shared_stages(fitted, synthetic):
    assert set(fitted.invariant_mask_) == set(synthetic.item_features.modalities)
    for values in fitted.invariant_mask_.values():
        assert ((values >= 0) & (values <= 1)).all()
    env = fitted.environments_
    assert list(env.columns) == ["user", "item", "environment"]
    assert len(env) == len(synthetic.interactions) and set(env["environment"]) <= {0, 1}
    # no Pareto weighting: the mask stage's ERM share is the fixed MaskLearning(weighting=0.5)
    assert len(fitted.pareto_weights_) > 0 and np.allclose(fitted.pareto_weights_, 0.5)


@pytest.mark.parametrize("fusion, expected", [("invariant", (1.0, 0.0)), ("variant", (0.0, 1.0)),
                                              ("fixed", (0.5, 0.5))])
def test_ablations_have_their_constant_weights(synthetic, fusion, expected):
    model = EIORRecommender(**{**TINY, "max_epochs": 2}, fusion=fusion)
    model.fit(synthetic.interactions[["user", "item"]], item_features=synthetic.item_features)
    np.testing.assert_array_equal(model.attention_weights_, np.tile(expected, (model.n_items_, 1)))


def test_global_fusion_learns_one_pair(synthetic):
    model = EIORRecommender(**TINY, fusion="global")
    model.fit(synthetic.interactions[["user", "item"]], item_features=synthetic.item_features)
    w = model.attention_weights_
    assert np.allclose(w, w[0]) and abs(w[0, 0] - 0.5) > 1e-4


def test_fusion_only_enters_the_fused_score():
    """IRM and ERM scores bypass the fusion: only the fused score has gradient on its parameters."""
    g = torch.Generator().manual_seed(0)
    scorer = FusedItemModel(5, 6, torch.rand(6, 4), torch.tensor([1.0, 1.0, 0.0, 0.0]), id_dim=2,
                            content_dim=3, generator=g)
    users, items, negs = torch.tensor([0, 1, 4]), torch.tensor([2, 3, 5]), torch.tensor([0, 1])
    scored = scorer.part_scores(users, items, negs)
    fused_pos = scorer(users, items)
    torch.testing.assert_close(scored[0][0], fused_pos)
    torch.testing.assert_close(scored[0][1], scorer.score_users(users)[:, negs])
    inv_and_var = sum(pos.sum() + neg.sum() for pos, neg in scored[1:])
    grads = torch.autograd.grad(inv_and_var, list(scorer.fusion.parameters()), allow_unused=True)
    assert all(gr is None or torch.count_nonzero(gr) == 0 for gr in grads)
    grads = torch.autograd.grad(scored[0][0].sum(), [scorer.fusion.pool_vector])   # w starts at 0
    assert torch.count_nonzero(grads[0]) > 0


def test_default_fusion_is_a_gate_the_variant_projection_cannot_undo(fitted):
    """Default: no self-attention, gated. Scaling W_var up changes no score; without the gate it does."""
    module = fitted.module_
    assert module.fusion.gate and not module.fusion.self_attention and module.fusion.prior == 0.5
    assert fitted.fusion is None and fitted.get_params()["fusion__prior"] == 0.5
    users = torch.arange(5)
    with torch.no_grad():
        before = module.score_users(users).clone()
        module.variant.weight.mul_(100.0)
        module.variant.bias.mul_(100.0)
        after = module.score_users(users).clone()
        module.fusion.gate = False
        ungated = module.score_users(users).clone()
        module.fusion.gate = True
        module.variant.weight.div_(100.0)
        module.variant.bias.div_(100.0)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-6)
    assert (ungated - before).abs().max() > 10 * (before.abs().max())


def test_fusion_prior_sets_the_start_and_training_moves_it(synthetic):
    g = torch.Generator().manual_seed(0)
    scorer = FusedItemModel(3, 4, torch.rand(4, 5), torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0]), id_dim=2,
                            content_dim=3, fusion=Fusion(prior=0.9), generator=g)
    torch.testing.assert_close(scorer.attention_weights(), torch.tensor([[0.9, 0.1]]).expand(4, 2))
    model = EIORRecommender(**{**TINY, "max_epochs": 10}).set_params(fusion__prior=0.9)
    model.fit(synthetic.interactions[["user", "item"]],
                                        item_features=synthetic.item_features)
    assert np.abs(model.attention_weights_[:, 0] - 0.9).max() > 1e-3


def _block_ratings(seed=0, n_users=40, n_items=30):
    """Ratings that only a user x item interaction explains: 5 within a group, 1 across, plus noise.

    Each user and item belongs to one of two groups; the item's group is its one-hot content. A
    bias model (mu + b_u + b_i) cannot do better than about 2 RMSE here.
    """
    rng = np.random.default_rng(seed)
    user_group, item_group = np.arange(n_users) % 2, np.arange(n_items) % 2
    users = np.repeat(np.arange(n_users), n_items)
    items = np.tile(np.arange(n_items), n_users)
    ratings = np.where(user_group[users] == item_group[items], 5.0, 1.0) + rng.normal(0, 0.3, len(users))
    ratings = np.clip(np.round(ratings), 1, 5)
    order = rng.permutation(len(users))
    table = pd.DataFrame({"user": users[order], "item": items[order]})
    features = ItemFeatures({"group": np.eye(2)[item_group]})
    return table, ratings[order], features


def _bias_predictions(train, y, test):
    mu = y.mean()
    b_u = pd.Series(y - mu).groupby(train["user"].to_numpy()).mean()
    b_i = pd.Series(y - mu - b_u.reindex(train["user"]).to_numpy()).groupby(train["item"].to_numpy()).mean()
    return np.clip(mu + b_u.reindex(test["user"]).fillna(0).to_numpy()
                   + b_i.reindex(test["item"]).fillna(0).to_numpy(), 1, 5)


def test_explicit_mode_predicts_on_the_scale_and_beats_the_bias_baseline():
    table, ratings, features = _block_ratings()
    n_train = int(0.8 * len(table))
    train, test = table.iloc[:n_train], table.iloc[n_train:].reset_index(drop=True)
    y_train, y_test = ratings[:n_train], ratings[n_train:]
    model = EIORRegressor(**{**TINY_RATINGS, "max_epochs": 40, "learning_rate": 3e-2},
                          l2_embedding=1e-4, l2_content=1e-4)
    model.fit(train, y_train, item_features=features)
    pred = model.predict(test)
    assert model.rating_scale_.low == 1.0 and model.rating_scale_.high == 5.0
    assert pred.min() >= 1.0 and pred.max() <= 5.0
    model_rmse = float(np.sqrt(np.mean((pred - y_test) ** 2)))
    bias_rmse = float(np.sqrt(np.mean((_bias_predictions(train, y_train, test) - y_test) ** 2)))
    assert bias_rmse > 1.5
    assert model_rmse < 0.75 * bias_rmse
    assert model.score(test, y_test) == pytest.approx(-model_rmse)
    assert model.score(test.assign(rating=y_test)) == pytest.approx(-model_rmse)
    assert 0.0 <= model.score(test) <= 1.0                      # no ratings: NDCG@20
    recs = model.recommend([0], n=3, exclude_seen=False)
    top = model.predict(recs[["user", "item"]])
    assert (np.diff(recs["score"].to_numpy()) <= 0).all() and (top >= 4).all()


def test_explicit_mode_early_stops_on_validation_rmse():
    table, ratings, features = _block_ratings(n_users=20, n_items=20)
    model = EIORRegressor(**{**TINY_RATINGS, "max_epochs": 4, "early_stopping": True})
    model.fit(table, ratings, item_features=features)
    final = [r for r in model.history_ if r["stage"] == "final"]
    assert all("valid_rmse" in r and "valid_ndcg@20" not in r for r in final)
    assert all(0 <= r["valid_rmse"] <= 5 for r in final)
    best = min(r["valid_rmse"] for r in final)      # lower is better: the best epoch is the lowest
    assert [r["valid_rmse"] for r in final if r.get("best")][-1] == best
    valid = table.iloc[:50].assign(rating=ratings[:50])
    model.fit(table, ratings, item_features=features, validation_data=valid)
    assert "valid_rmse" in model.history_[-1]


def test_explicit_mode_errors_name_the_fix():
    table, ratings, features = _block_ratings(n_users=6, n_items=6)
    model = EIORRegressor(**TINY_RATINGS)
    with pytest.raises(ValueError, match="requires y to be passed"):
        model.fit(table, item_features=features)
    with pytest.raises(ValueError, match="'rating' column"):
        model.fit(table, ratings, item_features=features, validation_data=table)


@pytest.mark.parametrize("param, value", [("fusion", "mean"), ("fusion__mode", "mean"),
                                          ("objective__fuse", "sum"), ("objective__w_irm", -1.0),
                                          ("mask__weighting", 1.5), ("fusion__self_attention", "yes"),
                                          ("fusion__gate", "yes"), ("fusion__prior", 1.0),
                                          ("fusion__prior", 0.0), ("objective", "irm")])
def test_bad_parameters_are_named_before_any_training(synthetic, param, value, monkeypatch):
    model = clone(EIORRecommender(**TINY)).set_params(**{param: value})
    monkeypatch.setattr("invrec.invariance.stages.run_stages", None)       # a stage run would fail differently
    with pytest.raises(ValueError, match=param.split("__")[-1]):
        model.fit(synthetic.interactions[["user", "item"]])


@pytest.mark.parametrize("old, new", [("self_attention", "fusion=Fusion(self_attention="),
                                      ("fusion_gate", "fusion__gate"), ("fusion_prior", "fusion__prior"),
                                      ("fusion_objective", "objective=FusedObjective(fuse="),
                                      ("w_irm", "objective__w_irm"), ("w_erm", "objective__w_erm"),
                                      ("irm_weight", "objective__irm_weight")])
def test_former_flat_parameters_name_their_nested_spelling(old, new):
    with pytest.raises(TypeError, match=new.replace("(", r"\(")):
        EIORRecommender(**{old: 0.5})
    with pytest.raises(ValueError, match=new.replace("(", r"\(")):
        EIORRegressor().set_params(**{old: 0.5})


def test_objective_weights_shape_the_loss(synthetic):
    """w_erm = 0 drops the variant-only loss (no log, no term); the pooled fuse is the plain mean."""
    model = EIORRecommender(**{**TINY, "max_epochs": 2},
                            objective=FusedObjective("pooled", w_irm=0.25, w_erm=0.0))
    model.fit(synthetic.interactions[["user", "item"]], item_features=synthetic.item_features)
    final = [r for r in model.history_ if r["stage"] == "final"]
    assert "loss_erm" not in final[-1] and "loss_irm" in final[-1]
    np.testing.assert_allclose(final[-1]["train_loss"], final[-1]["loss_fuse"] + 0.25 * final[-1]["loss_irm"],
                               rtol=0.05)


def test_feedback_flag_names_the_two_estimators():
    with pytest.raises(TypeError, match="EIORRegressor"):
        EIORRecommender(feedback="explicit")
    assert EIORRecommender().get_params()["mask__weighting"] == 0.5
    assert "n_negatives" not in EIORRegressor().get_params()


def test_id_only_data_fits_and_ranks(synthetic):
    model = EIORRecommender(**{**TINY, "max_epochs": 2}).fit(synthetic.interactions[["user", "item"]])
    np.testing.assert_array_equal(model.attention_weights_, np.tile((1.0, 0.0), (model.n_items_, 1)))
    assert len(model.recommend([0, 1], n=5)) == 10


def test_eior_regressor_is_a_sklearn_regressor_and_the_recommender_is_not():
    from sklearn.base import is_classifier, is_regressor
    from sklearn.model_selection import KFold, check_cv

    assert is_regressor(EIORRegressor()) and not is_regressor(EIORRecommender())
    # so a search splits its ratings by plain K-fold, never stratified by rating value
    ratings = np.repeat([1, 2, 3, 4, 5], 4)
    assert type(check_cv(3, ratings, classifier=is_classifier(EIORRegressor()))) is KFold
    tags = EIORRegressor().__sklearn_tags__()
    assert tags.estimator_type == "regressor" and tags.target_tags.required
