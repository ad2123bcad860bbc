"""CrossModalImputer: exact recovery of a linear relation, shrinkage to the mean without one, the
by-hand combination of several sources, and what it leaves untouched."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invrec import ItemFeatures
from invrec.multimodal.imputation import CrossModalImputer


def _linear_pair(seed, n=80, d_a=4, d_t=6):
    rng = np.random.default_rng(seed)
    audio = rng.normal(size=(n, d_a))
    text = audio @ rng.normal(size=(d_a, d_t)) + rng.normal(size=d_t)
    return ItemFeatures({"audio": audio, "text": text})


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), d_a=st.integers(1, 5))
def test_a_linear_relation_is_recovered_on_items_outside_the_reference(seed, d_a):
    feats = _linear_pair(seed, d_a=d_a)
    reference = feats.item_ids[:60]
    imputer = CrossModalImputer().fit(feats, reference_items=reference)
    later = feats.reindex(feats.item_ids[60:])
    lost = ItemFeatures({"audio": later["audio"], "text": np.full_like(later["text"], np.nan)},
                        item_ids=later.item_ids)
    np.testing.assert_allclose(imputer.transform(lost)["text"], later["text"], atol=2e-3 * np.abs(later["text"]).max())
    assert imputer.alphas_["audio", "text"] == min(imputer.alphas)


def test_an_unrelated_source_imputes_little_more_than_the_mean():
    rng = np.random.default_rng(0)
    feats = ItemFeatures({"audio": rng.normal(size=(300, 5)), "text": rng.normal(size=(300, 8)) + 3.0})
    imputer = CrossModalImputer().fit(feats)
    predicted = imputer.predict(feats)["text"]
    spread_imputed = np.abs(predicted - imputer.means_["text"]).mean()
    spread_data = np.abs(feats["text"] - imputer.means_["text"]).mean()
    assert spread_imputed < 0.15 * spread_data
    np.testing.assert_allclose(imputer.means_["text"], feats["text"].mean(0), rtol=1e-6)


def test_available_rows_untouched_missing_rows_filled_and_no_source_means_the_mean():
    feats = _linear_pair(1).with_missing(0.5, random_state=0)
    both_lost = ItemFeatures({m: np.full((1, feats.dims[m]), np.nan) for m in feats.modalities},
                             item_ids=["empty"])
    imputer = CrossModalImputer().fit(feats)
    out = imputer.transform(feats)
    avail = feats.availability
    for j, name in enumerate(feats.modalities):
        assert not np.isnan(out[name]).any()
        np.testing.assert_array_equal(out[name][avail[:, j]], feats[name][avail[:, j]])
    empty = imputer.transform(both_lost)
    for name in feats.modalities:
        np.testing.assert_allclose(empty[name][0], imputer.means_[name], rtol=1e-6)
    # the means are over the available rows only
    np.testing.assert_allclose(imputer.means_["text"], np.nanmean(feats["text"], axis=0), rtol=1e-5)
    # a modality the imputer was not fitted on passes through unchanged, NaN rows included
    extra = ItemFeatures({**{m: feats[m] for m in feats.modalities}, "tags": feats["audio"][:, :2]},
                         item_ids=feats.item_ids)
    kept = imputer.transform(extra)
    assert kept.modalities == extra.modalities
    np.testing.assert_array_equal(kept["tags"], extra["tags"])


def test_three_modalities_average_the_predictions_of_the_available_sources():
    rng = np.random.default_rng(2)
    feats = ItemFeatures({name: rng.normal(size=(40, d)) for name, d in (("a", 3), ("b", 2), ("c", 4))})
    imputer = CrossModalImputer(alphas=(0.5, 5.0)).fit(feats)
    assert set(imputer.coefs_) == {(s, t) for s in "abc" for t in "abc" if s != t}
    # item x has a and b, item y only a; neither has c
    query = ItemFeatures({"a": rng.normal(size=(2, 3)), "b": np.vstack([rng.normal(size=2), np.full(2, np.nan)]),
                          "c": np.full((2, 4), np.nan)}, item_ids=["x", "y"])

    def pred(source, target, row):
        coef, intercept = imputer.coefs_[source, target]
        return query[source][row] @ coef.T + intercept

    out = imputer.transform(query)
    np.testing.assert_allclose(out["c"][0], (pred("a", "c", 0) + pred("b", "c", 0)) / 2, rtol=1e-5)
    np.testing.assert_allclose(out["c"][1], pred("a", "c", 1), rtol=1e-5)       # b is lost too
    np.testing.assert_allclose(out["b"][1], pred("a", "b", 1), rtol=1e-5)
    np.testing.assert_array_equal(out["a"], query["a"])


def test_pairs_with_too_few_rows_are_skipped_and_bad_input_is_refused():
    feats = _linear_pair(3, n=12)
    assert CrossModalImputer(min_rows=20).fit(feats).coefs_ == {}
    with pytest.raises(ValueError, match="not fitted"):
        CrossModalImputer().transform(feats)
    with pytest.raises(ValueError, match="alphas must be positive"):
        CrossModalImputer(alphas=(0.0, 1.0)).fit(feats)
    fitted = CrossModalImputer().fit(feats)
    with pytest.raises(ValueError, match="lack the fitted modalities"):
        fitted.transform(feats.select_modalities(["audio"]))
