"""invrec.preprocessing: the k-core filter (a sampler of the training rows) and the per-modality
transformer of item content."""

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from invrec import ItemFeatures
from invrec.baselines import PopularityRecommender
from invrec.preprocessing import KCoreFilter, ModalityTransformer
from invrec.utils.params import InvalidParameterError

# users a, b, c; items x, y, z. With k = 2: z has one row, so (c, z) goes; then c has one row
# left, so (c, x) goes too (a second pass); a, b, x, y remain with two rows each.
CHAIN = pd.DataFrame({"user": ["a", "a", "b", "b", "c", "c"],
                      "item": ["x", "y", "x", "y", "x", "z"],
                      "rating": [5, 4, 3, 2, 1, 5]})


def _reference_core(table, k_user, k_item):
    """The k-core by peeling one kind of id at a time with pandas (slow, obviously right)."""
    table = table.copy()
    while True:
        users = table.groupby("user")["item"].transform("size")
        items = table.groupby("item")["user"].transform("size")
        keep = (users >= k_user) & (items >= k_item)
        if keep.all():
            return table
        table = table[keep]


# ---------------------------------------------------------------- KCoreFilter
def test_kcore_drops_iteratively_and_filters_y_along():
    y = np.arange(6.0)
    kept, y_kept = KCoreFilter(2, 2).fit_resample(CHAIN, y)
    assert kept.index.tolist() == [0, 1, 2, 3]            # the caller's labels, in order
    assert kept.to_dict("list") == {"user": ["a", "a", "b", "b"], "item": ["x", "y", "x", "y"],
                                    "rating": [5, 4, 3, 2]}
    np.testing.assert_array_equal(y_kept, [0.0, 1.0, 2.0, 3.0])
    core = KCoreFilter(2, 2).fit(CHAIN)
    assert core.user_ids_.tolist() == ["a", "b"] and core.item_ids_.tolist() == ["x", "y"]
    assert (core.n_iter_, core.n_rows_in_, core.n_rows_kept_) == (2, 6, 4)
    assert CHAIN.shape == (6, 3)                          # the caller's table is untouched


def test_kcore_thresholds_apply_to_users_and_items_separately():
    # Only items need 3 rows: x (3 rows) stays, y and z go; every user keeps its x row.
    kept, _ = KCoreFilter(min_user_interactions=1, min_item_interactions=3).fit_resample(CHAIN)
    assert kept["item"].tolist() == ["x", "x", "x"]
    # Only users need 2 rows: everybody has 2, nothing goes.
    kept, _ = KCoreFilter(min_user_interactions=2, min_item_interactions=1).fit_resample(CHAIN)
    assert len(kept) == 6


def test_kcore_of_one_keeps_everything_and_arrays_stay_arrays():
    X = CHAIN[["user", "item"]].to_numpy()
    kept, y = KCoreFilter(1, 1).fit_resample(X)
    assert isinstance(kept, np.ndarray) and y is None
    np.testing.assert_array_equal(kept, X)
    assert KCoreFilter(1, 1).fit(X).n_iter_ == 0


@pytest.mark.parametrize("seed", range(4))
def test_kcore_matches_a_reference_peeling(seed):
    rng = np.random.default_rng(seed)
    n = 400
    table = pd.DataFrame({"user": rng.integers(0, 60, n), "item": rng.zipf(1.6, n) % 50})
    kept, _ = KCoreFilter(3, 4).fit_resample(table)
    expected = _reference_core(table, 3, 4)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(kept, expected)
    # it is a core: every kept user has >= 3 rows and every kept item >= 4
    assert kept.groupby("user").size().min() >= 3 and kept.groupby("item").size().min() >= 4


def test_kcore_that_keeps_nothing_is_a_clear_error():
    with pytest.raises(ValueError, match="keeps none of the 6 rows.*Lower them"):
        KCoreFilter(3, 3).fit(CHAIN)


@pytest.mark.parametrize("value", [0, 2.5, True, "5"])
def test_kcore_bad_thresholds(value):
    with pytest.raises(InvalidParameterError, match="min_user_interactions"):
        KCoreFilter(min_user_interactions=value).fit(CHAIN)


def test_kcore_refuses_to_be_a_sklearn_pipeline_step():
    with pytest.raises(TypeError, match="invrec.pipeline.make_pipeline"):
        KCoreFilter(2, 2).fit(CHAIN).transform(CHAIN)
    plain = Pipeline([("core", KCoreFilter(2, 2)), ("model", PopularityRecommender())])
    with pytest.raises(TypeError, match="fit_resample"):
        plain.fit(CHAIN)


# ---------------------------------------------------------------- ModalityTransformer
VISUAL = np.array([[1.0, 10.0], [3.0, 30.0], [np.nan, np.nan], [5.0, 20.0]])
TEXT = np.array([[0.0], [2.0], [4.0], [np.nan]])


@pytest.fixture
def features():
    return ItemFeatures({"visual": VISUAL, "text": TEXT}, item_ids=["i0", "i1", "i2", "i3"])


def test_standardises_each_modality_on_its_available_rows(features):
    out = ModalityTransformer().fit_transform(features)
    # visual: rows 0, 1, 3 -> means (3, 20), population stds (sqrt(8/3), sqrt(200/3))
    expected = (VISUAL - [3.0, 20.0]) / np.sqrt([8 / 3, 200 / 3])
    np.testing.assert_allclose(out["visual"], expected, rtol=1e-6)
    # text: rows 0..2 -> mean 2, std sqrt(8/3); row 3 stays missing
    np.testing.assert_allclose(out["text"], (TEXT - 2.0) / np.sqrt(8 / 3), rtol=1e-6)
    assert out.item_ids.tolist() == features.item_ids.tolist()
    np.testing.assert_array_equal(out.availability, features.availability)


def test_new_items_use_the_fitted_statistics_and_other_modalities_pass_through(features):
    step = ModalityTransformer(modalities="visual").fit(features)
    assert set(step.transformers_) == {"visual"} and step.n_features_in_ == {"visual": 2}
    new = ItemFeatures({"visual": [[3.0, 20.0], [7.0, 20.0]], "text": [[9.0], [1.0]]},
                       item_ids=["n0", "n1"])
    out = step.transform(new)
    np.testing.assert_allclose(out["visual"], [[0.0, 0.0], [4.0 / np.sqrt(8 / 3), 0.0]], atol=1e-6)
    np.testing.assert_array_equal(out["text"], new["text"])


def test_pca_changes_the_width_and_keeps_missing_rows(features):
    step = ModalityTransformer(PCA(n_components=1), modalities=["visual"])
    out = step.fit_transform(features)
    assert out.dims == {"visual": 1, "text": 1}
    assert np.isnan(out["visual"][2]).all() and np.isfinite(out["visual"][[0, 1, 3]]).all()
    pca = PCA(n_components=1).fit(VISUAL[[0, 1, 3]])
    np.testing.assert_allclose(out["visual"][[0, 1, 3]], pca.transform(VISUAL[[0, 1, 3]]), rtol=1e-5)
    # new items all missing in the modality: missing rows at the output width
    none = ItemFeatures({"visual": np.full((2, 2), np.nan), "text": [[1.0], [2.0]]})
    assert step.transform(none).dims["visual"] == 1
    assert (~step.transform(none).availability[:, 0]).all()


def test_the_given_transformer_is_cloned_and_its_parameters_are_nested(features):
    scaler = StandardScaler(with_std=False)
    step = ModalityTransformer(scaler).fit(features)
    assert not hasattr(scaler, "mean_")
    assert step.get_params()["transformer__with_std"] is False
    np.testing.assert_allclose(step.transform(features)["text"], TEXT - 2.0)


def test_modality_transformer_errors(features):
    with pytest.raises(NotFittedError):
        ModalityTransformer().transform(features)
    with pytest.raises(TypeError, match="invrec.pipeline.make_pipeline"):
        ModalityTransformer().fit(pd.DataFrame({"user": [1], "item": [2]}))
    with pytest.raises(ValueError, match="modalities='audio'.*has \\['visual', 'text'\\]"):
        ModalityTransformer(modalities="audio").fit(features)
    with pytest.raises(ValueError, match="modality 'visual': .*n_components"):
        ModalityTransformer(PCA(n_components=5)).fit(features)
    with pytest.raises(TypeError, match="fit and transform"):
        ModalityTransformer(PopularityRecommender()).fit(features)
    empty = ItemFeatures({"visual": np.full((2, 2), np.nan)})
    with pytest.raises(ValueError, match="missing for every item"):
        ModalityTransformer().fit(empty)
    step = ModalityTransformer().fit(features)
    with pytest.raises(ValueError, match="widths"):
        step.transform(ItemFeatures({"visual": np.ones((2, 3)), "text": np.ones((2, 1))}))
    with pytest.raises(ValueError, match="lacks the modalities \\['text'\\]"):
        step.transform(features.select_modalities(["visual"]))
    with pytest.raises(TypeError, match="invrec.pipeline.make_pipeline"):
        Pipeline([("content", ModalityTransformer()), ("model", PopularityRecommender())]).fit(CHAIN)


def test_a_dict_is_read_as_item_features():
    out = ModalityTransformer().fit_transform({"text": np.array([[1.0], [3.0]])})
    np.testing.assert_allclose(out["text"], [[-1.0], [1.0]])
