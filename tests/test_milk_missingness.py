"""Structured missingness in ``ItemFeatures.with_missing`` (issue 16): modalities that go missing
together, one modality missing for every chosen item, and draws weighted per item (missingness
correlated with popularity)."""

import numpy as np
import pytest

from invrec import ItemFeatures


def _features(n=40, modalities=("a", "b", "c")):
    rng = np.random.default_rng(0)
    return ItemFeatures({m: rng.normal(size=(n, 2 + j)) for j, m in enumerate(modalities)},
                        item_ids=np.arange(100, 100 + n))


def test_one_modality_missing_for_every_chosen_item():
    feats = _features()
    items = np.arange(110, 130)
    out = feats.with_missing(1.0, items=items, modalities="b", random_state=0)
    avail = out.availability
    chosen = np.isin(out.item_ids, items)
    assert not avail[chosen, 1].any() and avail[~chosen].all() and avail[:, [0, 2]].all()
    # the lost rows are NaN, the others untouched
    assert np.isnan(out["b"][chosen]).all()
    np.testing.assert_array_equal(out["b"][~chosen], feats["b"][~chosen])


def test_modalities_missing_together():
    feats = _features()
    out = feats.with_missing(0.5, modalities=["a", "c"], n_missing=2, random_state=1)
    lost = ~out.availability
    assert lost.sum(1).tolist().count(2) == 20 and not lost[:, 1].any()
    np.testing.assert_array_equal(lost[:, 0], lost[:, 2])           # a and c always go together


def test_restricted_modalities_lose_only_among_them():
    feats = _features()
    out = feats.with_missing(1.0, modalities=["a", "b"], random_state=2)
    lost = ~out.availability
    assert (lost.sum(1) == 1).all() and not lost[:, 2].any() and lost[:, 0].any() and lost[:, 1].any()


def test_weights_steer_which_items_lose_modalities():
    feats = _features()
    items = feats.item_ids
    weights = np.where(items < 110, 1.0, 0.0)                        # only the first ten can be drawn
    out = feats.with_missing(0.25, items=items, weights=weights, random_state=0)
    hit = ~out.availability.all(1)
    assert hit.sum() == 10 and hit[:10].all()
    # correlated with a popularity: over many draws the share drawn grows with the weight
    pop = np.arange(1, 41, dtype=float)
    counts = np.zeros(40)
    for seed in range(200):
        counts += ~feats.with_missing(0.25, items=items, weights=pop, random_state=seed).availability.all(1)
    assert np.corrcoef(pop, counts)[0, 1] > 0.9
    # weights follow the order of items as given, not the sorted ids
    reversed_items = items[::-1]
    out = feats.with_missing(0.25, items=reversed_items, weights=weights[::-1], random_state=0)
    assert (~out.availability.all(1))[:10].all()


def test_weights_and_modalities_are_checked():
    feats = _features(modalities=("a", "b"))
    with pytest.raises(ValueError, match="modalities"):
        feats.with_missing(0.5, modalities="z")
    with pytest.raises(ValueError, match="keep one"):
        feats.with_missing(0.5, modalities=["a", "b"], n_missing=2)  # nothing left
    with pytest.raises(ValueError, match="keep one"):
        feats.with_missing(0.5, modalities="a", n_missing=2)
    with pytest.raises(ValueError, match="weights"):
        feats.with_missing(0.5, weights=np.ones(3))
    with pytest.raises(ValueError, match="weights"):
        feats.with_missing(0.5, weights=-np.ones(40))
    with pytest.raises(ValueError, match="positive weight"):
        feats.with_missing(0.5, weights=np.r_[np.ones(5), np.zeros(35)])
    with pytest.raises(ValueError, match="repeat"):
        feats.with_missing(0.5, items=[100, 100, 101], weights=np.ones(3))


def test_new_options_off_leave_the_draw_unchanged():
    """With neither option the draw is the one of the unstructured protocol (same seed, same
    result as restricting to every modality)."""
    feats = _features()
    plain = feats.with_missing(0.5, random_state=3)
    every = feats.with_missing(0.5, modalities=list(feats.modalities), random_state=3)
    np.testing.assert_array_equal(plain.availability, every.availability)
