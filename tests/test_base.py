"""BaseRecommender plumbing: devices, validation and early stopping, history, Ctrl-C, weights,
new items from content, metadata routing and CPU portability."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from sklearn.model_selection import GridSearchCV

from invrec import ItemFeatures
from invrec.base import resolve_device
from invrec.baselines import PopularityRecommender, UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.metrics import make_ranking_scorer
from invrec.model_selection import PerUserHoldout, train_test_split

SMALL = dict(max_epochs=8, batch_size=128, embedding_dim=8, content_dim=8, n_negatives=8, random_state=0)


@pytest.fixture(scope="module")
def data():
    data = make_multimodal_interactions(n_users=60, n_items=50, random_state=1)
    train, valid = train_test_split(data.interactions, test_size=0.2, by="user", random_state=0)
    return data, train, valid


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu-ish")


def test_fit_on_missing_cuda_is_a_clear_error(monkeypatch, data):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    bunch, train, _ = data
    with pytest.raises(ValueError, match="CUDA is not available"):
        UltraGCNRecommender(**SMALL, device="cuda").fit(train, item_features=bunch.item_features)


def test_validation_data_history_and_best_epoch_restored(data):
    bunch, train, valid = data
    model = UltraGCNRecommender(**SMALL, n_iter_no_change=3)
    model.fit(train, item_features=bunch.item_features, validation_data=valid)
    history = pd.DataFrame(model.history_)
    assert {"epoch", "train_loss", "fit_time", "valid_ndcg@20"} <= set(history.columns)
    assert history["epoch"].tolist() == list(range(1, len(history) + 1))
    best = history["valid_ndcg@20"].max()
    # The restored model is the best epoch's: scoring the validation rows gives its value back.
    assert model.score(valid) == pytest.approx(best, abs=1e-12)
    stale = len(history) - history["valid_ndcg@20"].idxmax() - 1
    assert len(history) == SMALL["max_epochs"] or stale == 3


def test_carved_validation_and_too_small_data(data):
    bunch, train, _ = data
    model = UltraGCNRecommender(**SMALL).fit(train, item_features=bunch.item_features)
    assert "valid_ndcg@20" in model.history_[0]
    tiny = pd.DataFrame({"user": [0, 1, 2], "item": [0, 1, 2]})
    with pytest.raises(ValueError, match="early_stopping=True needs a validation share"):
        UltraGCNRecommender(**SMALL).fit(tiny)
    assert UltraGCNRecommender(**SMALL, early_stopping=False).fit(tiny).history_[0].keys() == {
        "stage", "epoch", "train_loss", "fit_time"}


def test_keyboard_interrupt_propagates_and_keeps_the_previous_model(data):
    bunch, train, valid = data

    class Interrupted(UltraGCNRecommender):
        def _batch_objective(self, module, data, mask=None):
            inner = super()._batch_objective(module, data, mask)
            calls = {"n": 0}

            def objective(rows):
                calls["n"] += 1
                if calls["n"] > 6 and self.max_epochs == 5:
                    raise KeyboardInterrupt
                return inner(rows)
            return objective

    model = Interrupted(**SMALL).fit(train, item_features=bunch.item_features, validation_data=valid)
    before = model.predict(valid), [dict(r) for r in model.history_], model.module_
    model.set_params(max_epochs=5)
    with pytest.raises(KeyboardInterrupt):
        model.fit(train, item_features=bunch.item_features, validation_data=valid)
    assert model.module_ is before[2] and model.history_ == before[1]
    np.testing.assert_array_equal(model.predict(valid), before[0])


def test_verbose_progress_bar(data, capsys):
    bunch, train, _ = data
    UltraGCNRecommender(**{**SMALL, "max_epochs": 2}, verbose=1).fit(train, item_features=bunch.item_features)
    assert "UltraGCNRecommender epochs" in capsys.readouterr().err


def test_weights_drop_non_positive_rows_and_weight_popularity():
    X = pd.DataFrame({"user": [0, 0, 1, 2], "item": ["a", "b", "a", "c"]})
    model = PopularityRecommender().fit(X, y=[2.0, 0.0, 1.0, 5.0])
    assert dict(zip(model.item_ids_, model.popularity_)) == {"a": 3.0, "b": 0.0, "c": 5.0}
    assert model.unseen_items_.tolist() == ["b"]  # its only row had y = 0
    with pytest.raises(ValueError, match="finite"):
        PopularityRecommender().fit(X, y=[1.0, np.nan, 1.0, 1.0])


def test_items_without_features_join_the_catalog(data):
    bunch, train, _ = data
    extra = pd.concat([train, pd.DataFrame({"user": [0], "item": [999], "environment": [0]})])
    model = UltraGCNRecommender(**SMALL, early_stopping=False).fit(extra, item_features=bunch.item_features)
    assert model.n_items_ == 51 and model.item_ids_[-1] == 999
    assert not model.item_features_.availability[-1].any()
    assert np.isfinite(model.predict(pd.DataFrame({"user": [1], "item": [999]}))).all()


def test_new_items_scored_from_content(data):
    bunch, train, _ = data
    model = UltraGCNRecommender(**SMALL, early_stopping=False).fit(train, item_features=bunch.item_features)
    rng = np.random.default_rng(0)
    new = ItemFeatures({m: rng.normal(size=(3, d)) for m, d in bunch.item_features.dims.items()},
                       item_ids=["n1", "n2", "n3"])
    recs = model.recommend([0, 1], n=3, items=["n1", "n2", "n3", 5], item_features=new)
    assert set(recs["item"]) <= {"n1", "n2", "n3", 5} and len(recs) == 6
    pairs = pd.DataFrame({"user": [0, 0, 0], "item": ["n1", "n2", "n3"]})
    scores = model.predict(pairs, item_features=new)
    from_recs = recs[recs["user"] == 0].set_index("item")["score"]
    for item, score in zip(pairs["item"], scores):
        if item in from_recs.index:
            assert from_recs[item] == pytest.approx(score, rel=1e-5)
    # Content-only score: the user's content part against the projected, normalised features.
    module = model.module_
    feats = new.normalize().concat()[0]
    content = module.projection(torch.as_tensor(feats, dtype=torch.float32))
    expected = module.user_embedding[0, module.id_dim:] @ content.T
    np.testing.assert_allclose(scores, expected.detach().numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="widths"):
        model.predict(pairs, item_features=ItemFeatures({m: np.ones((3, 2)) for m in new}, item_ids=new.item_ids))


def test_metadata_routing(data):
    bunch, train, _ = data
    with sklearn.config_context(enable_metadata_routing=True):
        est = PopularityRecommender().set_fit_request(item_features=True, validation_data=False)
        search = GridSearchCV(est, {"handle_unknown": ["error"]}, cv=PerUserHoldout(n_splits=2, random_state=0),
                              scoring=make_ranking_scorer("recall", k=5))
        search.fit(train, item_features=bunch.item_features)
    assert search.best_estimator_.n_items_ == 50


def test_model_trained_on_gpu_loads_on_cpu(data, monkeypatch):
    bunch, train, valid = data
    model = UltraGCNRecommender(**SMALL, device="cpu").fit(train, item_features=bunch.item_features)
    expected = model.predict(valid)
    model.device_ = "cuda:0"  # as if trained on a GPU: the pickled tensors are CPU tensors anyway
    model.device = "cuda"
    blob = pickle.dumps(model)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="runs on the CPU"):
        again = pickle.loads(blob)
    assert next(again.module_.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(again.predict(valid), expected)


def test_pickled_state_holds_cpu_tensors(data):
    bunch, train, _ = data
    model = UltraGCNRecommender(**SMALL, early_stopping=False).fit(train, item_features=bunch.item_features)
    state = model.__getstate__()
    assert all(t.device.type == "cpu" for t in state["module_"].state_dict().values())
    assert "_user_index" not in state


def test_parameter_validation(data):
    bunch, train, _ = data
    bad = [dict(max_epochs=0), dict(batch_size=1.5), dict(learning_rate=-1.0), dict(validation_fraction=1.0),
           dict(negative_sampling="hard"), dict(loss_weights=(1, 1)), dict(l2_embedding=-1.0),
           dict(embedding_dim=0), dict(n_negatives=True)]
    for params in bad:
        with pytest.raises(ValueError, match=next(iter(params))):
            UltraGCNRecommender(**params).fit(train)


def test_no_global_rng_side_effect(data):
    bunch, train, _ = data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    UltraGCNRecommender(**SMALL, early_stopping=False).fit(train, item_features=bunch.item_features)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(torch.rand(3), expected)
