"""``batch_size="auto"``: the rule, the L2 charge it implies, and the fitted ``batch_size_``."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from invrec import EIORRecommender, PaInvRLRecommender
from invrec.baselines import UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.invariance import EnvironmentInference, MaskLearning
from invrec.training import AUTO_BATCH_RANGE, AUTO_MIN_STEPS, L2_REFERENCE_BATCH, resolve_batch_size


@pytest.mark.parametrize("n_rows, expected", [
    (100, 256), (2559, 256), (5119, 256), (5120, 512), (10239, 512), (10240, 1024),
    (40959, 2048), (40960, 4096), (44327, 4096), (59541, 4096), (10**7, 4096)])
def test_auto_batch_hand_values(n_rows, expected):
    # 44,327 and 59,541: Last.fm's and TikTok's training rows, where the defaults were tuned.
    assert resolve_batch_size("auto", n_rows) == (expected, 1.0 / 4096)


@given(st.integers(1, 10**8))
def test_auto_batch_is_the_largest_power_of_two_giving_enough_steps(n_rows):
    batch, scale = resolve_batch_size("auto", n_rows)
    low, high = AUTO_BATCH_RANGE
    assert low <= batch <= high and batch & (batch - 1) == 0
    assert scale == 1.0 / L2_REFERENCE_BATCH
    if low < batch < high:
        assert n_rows // AUTO_MIN_STEPS >= batch > n_rows // AUTO_MIN_STEPS // 2


def test_an_int_batch_is_kept_and_divides_the_l2():
    assert resolve_batch_size(512, 3240) == (512, 1.0 / 512)
    with pytest.raises(ValueError, match='"auto"'):
        resolve_batch_size("big", 10)


@pytest.fixture(scope="module")
def data():
    return make_multimodal_interactions(n_users=120, n_items=80, random_state=0)


def _scores(model, data):
    return model.predict(data.test[["user", "item"]])


def test_auto_equals_its_batch_with_the_l2_charged_at_4096(data):
    # "auto" on ~1.4k training rows is 256 with the L2 of a 4096 batch: the same fit as batch 256
    # with both L2 weights divided by 4096 / 256 = 16.
    X = data.interactions[["user", "item"]]
    common = dict(embedding_dim=8, content_dim=8, max_epochs=3, early_stopping=False, random_state=0)
    auto = UltraGCNRecommender(**common, l2_embedding=1e-2).fit(X, item_features=data.item_features)
    assert auto.batch_size_ == 256
    same = UltraGCNRecommender(**common, batch_size=256, l2_embedding=1e-2 / 16, l2_content=1.0 / 16)
    same.fit(X, item_features=data.item_features)
    np.testing.assert_array_equal(_scores(auto, data), _scores(same, data))
    plain = UltraGCNRecommender(**common, batch_size=256, l2_embedding=1e-2).fit(X, item_features=data.item_features)
    assert plain.batch_size_ == 256
    assert not np.array_equal(_scores(auto, data), _scores(plain, data))


@pytest.mark.parametrize("cls", [PaInvRLRecommender, EIORRecommender])
def test_the_stages_train_at_the_resolved_batch(cls, data):
    # Every stage charges the L2 like the final model: auto equals batch 256 with L2 / 16, stages
    # included (a stage left at 1 / batch_size would break the equality).
    X = data.interactions[["user", "item"]]
    common = dict(embedding_dim=8, content_dim=8, max_epochs=2, early_stopping=False, random_state=0,
                  n_outer_iter=1, environments=EnvironmentInference(3, embedding_dim=8, max_rounds=1, epochs=1),
                  mask=MaskLearning(epochs=2, threshold="auto"))
    auto = cls(**common, l2_embedding=1e-2).fit(X, item_features=data.item_features)
    same = cls(**common, batch_size=256, l2_embedding=1e-2 / 16, l2_content=1.0 / 16)
    same.fit(X, item_features=data.item_features)
    assert auto.batch_size_ == same.batch_size_ == 256
    np.testing.assert_array_equal(_scores(auto, data), _scores(same, data))
    for mine, theirs in zip(auto.invariant_mask_.values(), same.invariant_mask_.values()):
        np.testing.assert_array_equal(mine, theirs)


def test_bad_batch_size_names_the_choices(data):
    with pytest.raises(ValueError, match="batch_size.*auto"):
        UltraGCNRecommender(batch_size="big").fit(data.interactions[["user", "item"]])


# ---------------------------------------------------------------------------- l2_embedding="auto"
def test_auto_l2_grows_with_the_mean_degree_hand_values():
    from invrec.training import resolve_l2_embedding

    # 6 rows over 2 users and 3 items: degree 2 * 6 / 5 = 2.4
    users, items = np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 2, 0, 1, 2])
    assert resolve_l2_embedding("auto", users, items) == pytest.approx(1e-2 * 2.4 / 7.66)
    # a repeated row counts twice (it is two interactions), and only ids with rows count
    assert resolve_l2_embedding("auto", np.array([5, 5]), np.array([9, 9])) == pytest.approx(1e-2 * 2 / 7.66)
    assert resolve_l2_embedding(3e-2, users, items) == 3e-2
    with pytest.raises(ValueError, match='"auto"'):
        resolve_l2_embedding("big", users, items)


@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 5))
def test_auto_l2_scales_with_density_not_size(n_users, n_items, copies):
    # the full n_users x n_items graph, each pair `copies` times: degree 2 c u i / (u + i)
    from invrec.training import resolve_l2_embedding

    u, i = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    users, items = np.tile(u.ravel(), copies), np.tile(i.ravel(), copies)
    expected = 1e-2 * 2 * copies * n_users * n_items / (n_users + n_items) / 7.66
    assert resolve_l2_embedding("auto", users, items) == pytest.approx(expected)


def test_auto_l2_is_what_the_fit_trains_with(data):
    from invrec.training import resolve_l2_embedding

    X = data.interactions[["user", "item"]]
    common = dict(embedding_dim=8, content_dim=8, max_epochs=3, early_stopping=False, random_state=0)
    auto = UltraGCNRecommender(**common, l2_embedding="auto").fit(X, item_features=data.item_features)
    expected = resolve_l2_embedding("auto", X["user"].to_numpy(), X["item"].to_numpy())
    assert auto.l2_embedding_ == pytest.approx(expected) and auto.l2_embedding == "auto"
    same = UltraGCNRecommender(**common, l2_embedding=expected).fit(X, item_features=data.item_features)
    np.testing.assert_allclose(_scores(auto, data), _scores(same, data), rtol=0, atol=0)
