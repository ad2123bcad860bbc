"""The generator's named shift regimes: their ground truth, the conflict error, and that the
default draw (``regime=None``) is the same data as before regimes existed."""

import numpy as np
import pandas as pd
import pytest

from invrec.datasets import REGIMES, make_multimodal_interactions, spurious_scores

SMALL = dict(n_users=120, n_items=100)


def _assert_same_data(a, b, skip=("regime", "DESCR")):
    assert set(a) == set(b)
    for key in a:
        if key in skip:
            continue
        va, vb = a[key], b[key]
        if isinstance(va, pd.DataFrame):
            pd.testing.assert_frame_equal(va, vb)
        elif key == "item_features":
            assert va.modalities == vb.modalities
            for m in va.modalities:
                np.testing.assert_array_equal(va[m], vb[m])
        elif isinstance(va, dict):
            assert va.keys() == vb.keys()
            for m in va:
                np.testing.assert_array_equal(va[m], vb[m])
        elif isinstance(va, np.ndarray):
            np.testing.assert_array_equal(va, vb)
        else:
            assert va == vb, key


def _exposure_correlation(data, frame, environment):
    """Correlation, over all (user, item) pairs, of 'met in this environment' with x_ui."""
    x = spurious_scores(data)
    met = np.zeros(x.shape, dtype=bool)
    rows = frame[frame["environment"] == environment]
    met[rows["user"], rows["item"]] = True
    return np.corrcoef(met.ravel().astype(float), x.ravel())[0, 1]


# ----------------------------------------------------------------------------- the default draw
def test_default_is_the_historical_draw():
    """Golden values computed with the generator before ``regime`` existed."""
    data = make_multimodal_interactions(n_users=20, n_items=60, random_state=0)
    assert data.interactions["item"].to_numpy()[:12].tolist() == [6, 59, 35, 13, 27, 41, 9, 54, 17, 47, 58, 53]
    assert data.test_ood["item"].to_numpy()[:6].tolist() == [34, 21, 22, 10, 55, 57]
    assert data.interactions.groupby("environment")["item"].sum().tolist() == [2564, 2634, 2275]
    assert int(data.test["item"].sum()) == 3344 and int(data.test_ood["item"].sum()) == 3539
    assert data.regime is None and data.exposure == "user"
    assert "regime" not in data.DESCR


def test_default_equals_the_explicit_historical_arguments():
    implicit = make_multimodal_interactions(**SMALL, random_state=3)
    explicit = make_multimodal_interactions(**SMALL, spurious_strengths=(3.0, 4.5, 6.0), test_strength=-3.0,
                                            random_state=3)
    _assert_same_data(implicit, explicit, skip=())


def test_agree_is_the_default_story():
    default = make_multimodal_interactions(**SMALL, random_state=4)
    agree = make_multimodal_interactions(**SMALL, regime="agree", random_state=4)
    _assert_same_data(default, agree)
    assert agree.regime == "agree" and "'agree'" in agree.DESCR


@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_regime_sets_its_strengths_and_keeps_the_latents(regime):
    data = make_multimodal_interactions(**SMALL, regime=regime, random_state=5)
    spec = REGIMES[regime]
    assert data.environment_strengths.tolist() == [*spec["spurious_strengths"], spec["test_strength"]]
    assert data.exposure == spec["exposure"] and data.regime == regime
    assert sorted(data.interactions["environment"].unique()) == [0, 1, 2]
    # Same latent variables and features for the same seed, whatever the regime.
    base = make_multimodal_interactions(**SMALL, random_state=5)
    for key in ("user_factors", "item_factors", "user_spurious", "item_spurious"):
        np.testing.assert_array_equal(data[key], base[key])
    np.testing.assert_array_equal(data.item_features["visual"], base.item_features["visual"])
    for m, mask in data.invariant_mask.items():
        np.testing.assert_array_equal(data.spurious_mask[m], ~mask)


# ----------------------------------------------------------------------------- ground truth
def test_agree_environments_push_the_same_way_and_test_reverses():
    data = make_multimodal_interactions(**SMALL, regime="agree", random_state=0)
    corr = [_exposure_correlation(data, data.interactions, e) for e in range(3)]
    assert all(c > 0 for c in corr)
    assert _exposure_correlation(data, data.test_ood, 3) < 0


def test_disagree_correlation_changes_sign_between_environments():
    data = make_multimodal_interactions(**SMALL, regime="disagree", random_state=0)
    corr = [_exposure_correlation(data, data.interactions, e) for e in range(3)]
    assert corr[0] > 0.05 and corr[1] < -0.05 and corr[2] > 0.02
    assert corr[0] > corr[2]                        # |beta| 6 vs 1.5
    beta = data.environment_strengths
    assert beta[-1] not in beta[:-1]                # the test is at a new value
    assert _exposure_correlation(data, data.test_ood, 3) < 0
    # Pooled over the training environments the spurious correlation still points one way.
    x = spurious_scores(data)
    assert x[data.interactions["user"], data.interactions["item"]].mean() > 0


def test_none_has_no_shift():
    data = make_multimodal_interactions(**SMALL, regime="none", random_state=0)
    assert (data.environment_strengths == 0).all()  # one law for every environment and the test
    x = spurious_scores(data)
    pref = data.user_factors @ data.item_factors.T
    means = {name: (x[f["user"], f["item"]].mean(), pref[f["user"], f["item"]].mean())
             for name, f in (("train", data.interactions), ("iid", data.test), ("ood", data.test_ood))}
    for spurious_mean, _ in means.values():
        assert abs(spurious_mean) < 0.1             # the spurious attribute never drives exposure
    # IID and OOD held-out items are alike (unlike the reversal of the default story).
    assert abs(means["ood"][1] - means["iid"][1]) < 0.5
    agree = make_multimodal_interactions(**SMALL, random_state=0)
    xa = spurious_scores(agree)
    gap = xa[agree.test["user"], agree.test["item"]].mean() - xa[agree.test_ood["user"], agree.test_ood["item"]].mean()
    assert gap > 1.5 and abs(means["iid"][0] - means["ood"][0]) < 0.1


def test_item_exposure_ignores_the_users_taste():
    data = make_multimodal_interactions(**SMALL, regime="item", random_state=0)
    x = spurious_scores(data)
    assert (x == x[0]).all()                        # the same exposure term for every user
    expected = data.item_spurious.sum(axis=1) / np.sqrt(data.item_spurious.shape[1])
    np.testing.assert_allclose(x[0], expected)
    inter = data.interactions
    # Exposure follows the item-level term in training, reversed at test ...
    assert x[inter["user"], inter["item"]].mean() > 0.8
    assert x[data.test_ood["user"], data.test_ood["item"]].mean() < -0.8
    # ... while the users' personal taste for the attribute plays no part.
    taste = (data.user_spurious @ data.item_spurious.T) / np.sqrt(data.item_spurious.shape[1])
    assert abs(taste[inter["user"], inter["item"]].mean()) < 0.2
    agree = make_multimodal_interactions(**SMALL, random_state=0)
    assert taste[agree.interactions["user"], agree.interactions["item"]].mean() > 0.8


def test_spurious_scores_of_the_user_level_regimes():
    data = make_multimodal_interactions(n_users=10, n_items=50, regime="disagree", random_state=1)
    expected = data.user_spurious @ data.item_spurious.T / np.sqrt(2)
    np.testing.assert_allclose(spurious_scores(data), expected)
    assert spurious_scores(data).flags.writeable


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, named", [
    ({"spurious_strengths": (1.0, 2.0)}, "spurious_strengths"),
    ({"test_strength": 1.0}, "test_strength"),
    ({"spurious_strengths": (3.0, 4.5, 6.0), "test_strength": -3.0}, "spurious_strengths"),
])
def test_regime_conflicts_with_explicit_strengths(kwargs, named):
    with pytest.raises(ValueError, match=rf"regime='disagree'.*{named}.*conflict"):
        make_multimodal_interactions(n_users=10, n_items=50, regime="disagree", **kwargs)


@pytest.mark.parametrize("regime", ["reverse", "", 3, "AGREE"])
def test_unknown_regime(regime):
    with pytest.raises(ValueError, match="regime must be None or one of"):
        make_multimodal_interactions(n_users=10, n_items=50, regime=regime)


def test_regimes_table_is_read_only():
    with pytest.raises(TypeError):
        REGIMES["agree"] = {}
    with pytest.raises(TypeError):
        REGIMES["agree"]["test_strength"] = 1.0
