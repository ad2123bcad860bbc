"""PaInvRLRecommender: fitted diagnostics, user-given environments, the InvRL setting, parameter
validation and (conservative versions of) the synthetic ground-truth claims."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from invrec import PaInvRLRecommender
from invrec.baselines import UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.invariance import EnvironmentInference, MaskLearning
from invrec.painvrl import binarize_mask

TINY = dict(embedding_dim=4, content_dim=4, batch_size=64, n_negatives=4, max_epochs=2,
            environments=EnvironmentInference(3, max_rounds=2, epochs=1),
            mask=MaskLearning(epochs=2), n_outer_iter=2, random_state=0)


@pytest.fixture(scope="module")
def data():
    return make_multimodal_interactions(n_users=40, n_items=30, interactions_per_user=3,
                                        test_interactions_per_user=1, random_state=0)


def test_fitted_diagnostics(data):
    model = PaInvRLRecommender(**TINY, early_stopping=False).fit(data.interactions,
                                                                 item_features=data.item_features)
    env = model.environments_
    assert list(env.columns) == ["user", "item", "environment"]
    assert len(env) == len(data.interactions)                    # no validation carve here
    assert set(env["environment"]) <= {0, 1, 2}
    pd.testing.assert_frame_equal(
        env[["user", "item"]].sort_values(["user", "item"]).reset_index(drop=True),
        data.interactions[["user", "item"]].sort_values(["user", "item"]).reset_index(drop=True))
    assert {k: v.shape for k, v in model.invariant_mask_.items()} == {"visual": (24,), "acoustic": (16,)}
    values = np.concatenate(list(model.invariant_mask_.values()))
    assert values.min() >= 0 and values.max() <= 1
    n_batches = -(-len(data.interactions) // 64)
    assert model.pareto_weights_.shape == (2 * 2 * n_batches,)   # outer x mask epochs x batches
    assert ((model.pareto_weights_ >= 0) & (model.pareto_weights_ <= 1)).all()
    assert model.attention_weights_.shape == (30, 2)
    assert np.allclose(model.attention_weights_.sum(1), 1)
    stages = [h["stage"] for h in model.history_]
    assert stages.count("mask") == 4 and stages.count("final") == 2
    assert 2 <= stages.count("environments") <= 4
    assert all("fit_time" in h for h in model.history_)
    assert set(model.stage_times_) == {"environments", "mask", "final"}


def test_user_given_environments_skip_inference(data):
    X = data.interactions.assign(environment=data.interactions["environment"].map({0: "a", 1: "b", 2: "c"}))
    model = PaInvRLRecommender(**{**TINY, "environments": "environment"}, early_stopping=False)
    model.fit(X, item_features=data.item_features)
    assert not any(h["stage"] == "environments" for h in model.history_)
    merged = model.environments_.merge(X, on=["user", "item"], suffixes=("_fit", ""))
    assert (merged["environment_fit"] == merged["environment"]).all()
    with pytest.raises(ValueError, match="environments='env' names no column of X"):
        PaInvRLRecommender(**{**TINY, "environments": "env"}).fit(X, item_features=data.item_features)


def test_invrl_setting(data):
    model = PaInvRLRecommender(**{**TINY, "mask": MaskLearning(epochs=2, weighting=0.0)},
                               fusion="invariant", early_stopping=False).fit(data.interactions, item_features=data.item_features)
    assert (model.pareto_weights_ == 0.0).all()
    assert (model.attention_weights_ == [1.0, 0.0]).all()


def test_without_content_falls_back_to_ids(data):
    model = PaInvRLRecommender(**TINY, early_stopping=False).fit(data.interactions[["user", "item"]])
    assert model.invariant_mask_ == {} and len(model.pareto_weights_) == 0
    assert model.recommend([0], n=3).shape == (3, 4)


@pytest.mark.parametrize("params, message", [
    ({"mask__weighting": "nash"}, "'weighting' parameter of MaskLearning must be a str among {'mgda', 'normalized'} or a float in \\[0, 1\\]; got 'nash'"),
    ({"fusion": "concat"}, "'fusion' parameter of PaInvRLRecommender must be None, a str among"),
    ({"mask__penalty": "l1"}, "'penalty' parameter of MaskLearning must be a str among"),
    ({"mask__weighting": 1.5}, "'weighting' parameter of MaskLearning must be"),
    ({"environments__n_environments": 0}, "'n_environments' parameter of EnvironmentInference must be a positive int"),
    ({"mask__threshold": "otsu"}, "'threshold' parameter of MaskLearning must be None, a str among {'auto'} or a float"),
    ({"environments": 3}, "'environments' parameter of PaInvRLRecommender must be None, an instance of EnvironmentInference or an instance of str"),
    ({"n_outer_iter": 0}, "'n_outer_iter' parameter of PaInvRLRecommender must be a positive int"),
])
def test_bad_parameters(data, params, message):
    model = clone(PaInvRLRecommender(**TINY)).set_params(**params)   # the clone's own stages
    with pytest.raises(ValueError, match=message):
        model.fit(data.interactions, item_features=data.item_features)


@pytest.mark.parametrize("old, new", [
    ("n_environments", "EnvironmentInference"), ("environment_column", "environments='...'"),
    ("env_epochs", "EnvironmentInference"), ("mask_epochs", "MaskLearning"),
    ("pareto", "weighting"), ("erm_weight", "weighting"), ("mask_threshold", "MaskLearning"),
])
def test_former_stage_parameters_name_the_new_spelling(old, new):
    with pytest.raises(TypeError, match=f"no parameter '{old}' any more: .*{new}"):
        PaInvRLRecommender(**{old: 1})
    with pytest.raises(ValueError, match=f"no parameter '{old}' any more"):
        PaInvRLRecommender().set_params(**{old: 1})


def test_nested_stage_parameters_reach_grid_search(data):
    model = PaInvRLRecommender()
    params = model.get_params()
    assert params["environments"] is None and params["environments__n_environments"] == 10
    assert params["mask__weighting"] == "normalized"
    model.set_params(environments__n_environments=4, mask__penalty="vrex")
    assert model.environments.get_params() == EnvironmentInference(4).get_params()
    assert model.mask.penalty == "vrex"
    cloned = clone(model)
    assert cloned.environments is not model.environments
    assert cloned.get_params()["environments__n_environments"] == 4


def test_binarize_mask():
    mask = torch.tensor([0.70, 0.99, 0.72, 1.0, 0.98, 0.75])
    assert binarize_mask(mask, "auto").tolist() == [0, 1, 0, 1, 1, 0]
    assert binarize_mask(mask, None) is mask
    assert binarize_mask(torch.full((3,), 0.4), "auto").tolist() == [1, 1, 1]


# ---------------------------------------------------------------- ground truth (conservative)
SYNTH = dict(embedding_dim=32, content_dim=32, batch_size=256, learning_rate=1e-2, n_negatives=20,
             l2_embedding=1e-2, l2_content=1e-2, max_epochs=100, n_iter_no_change=10)
PAINVRL = dict(environments=EnvironmentInference(3, max_rounds=3, epochs=5), n_outer_iter=2,
               mask=MaskLearning(epochs=10, learning_rate=1e-2, l2=0.0, threshold="auto"),
               fusion="invariant", item_l2_ratio=20.0, decorrelate="none")


def test_synthetic_mask_ranks_invariant_dimensions_and_helps_out_of_distribution():
    torch.set_num_threads(1)
    data = make_multimodal_interactions(n_users=300, n_items=200, random_state=0)
    X = data.interactions[["user", "item"]]
    model = PaInvRLRecommender(**SYNTH, **PAINVRL, random_state=0).fit(X, item_features=data.item_features)
    mask = np.concatenate([model.invariant_mask_[m] for m in data.item_features.modalities])
    truth = np.concatenate([data.invariant_mask[m] for m in data.item_features.modalities])
    assert roc_auc_score(truth, mask) >= 0.9                   # measured 1.0
    base = UltraGCNRecommender(**SYNTH, random_state=0).fit(X, item_features=data.item_features)
    # measured: OOD 0.0344 vs 0.0159 (2.2x), IID 0.473 vs 0.428
    assert model.score(data.test_ood) >= 1.3 * base.score(data.test_ood)
    assert model.score(data.test) >= 0.9 * base.score(data.test)


def test_grid_search_over_a_nested_stage_parameter(data):
    from sklearn.model_selection import GridSearchCV

    from invrec.metrics import make_ranking_scorer
    from invrec.model_selection import PerUserHoldout

    base = PaInvRLRecommender(**{**TINY, "environments": None, "mask": None}, early_stopping=False)
    grid = {"environments__n_environments": [2, 3], "environments__max_rounds": [1],
            "environments__epochs": [1], "mask__epochs": [1]}
    search = GridSearchCV(base, grid,
                          cv=PerUserHoldout(n_splits=2, random_state=0),
                          scoring=make_ranking_scorer("ndcg", k=5), error_score="raise")
    search.fit(data.interactions[["user", "item"]], item_features=data.item_features)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_
    k = search.best_params_["environments__n_environments"]
    assert best.environments.n_environments == k and best.mask.epochs == 1
    assert set(best.environments_["environment"]) <= set(range(k))
    assert base.environments is None            # the search worked on clones
