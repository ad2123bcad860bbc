"""The synthetic generator: shapes, reproducibility, ground truth, and that it poses the problem.

The decisive test is the oracle check: from the ground truth alone (no training), ranking by the
spurious attribute wins in distribution and collapses out of distribution, while ranking by the
true preference does the reverse. If that ever stops holding, the generator no longer tests what
the invariant methods claim.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

from invrec.datasets import make_multimodal_interactions
from invrec.metrics import ndcg_at_k
from invrec.utils.ranking import top_k


def _csr(frame, shape):
    return sp.csr_array((np.ones(len(frame)), (frame["user"], frame["item"])), shape=shape)


def _oracle_ndcg(data, scores, k=20):
    shape = scores.shape
    seen = _csr(data.interactions, shape)
    rankings, _ = top_k(scores, k, exclude=seen)
    return (ndcg_at_k(rankings, _csr(data.test, shape), k),
            ndcg_at_k(rankings, _csr(data.test_ood, shape), k))


def test_shapes_columns_and_ids():
    data = make_multimodal_interactions(n_users=40, n_items=60, random_state=0)
    inter = data.interactions
    assert list(inter.columns) == ["user", "item", "environment"]
    assert len(inter) == 40 * 4 * 3
    assert sorted(inter["environment"].unique()) == [0, 1, 2]
    assert inter.groupby("user").size().eq(12).all()
    assert len(data.test) == 40 * 2 * 3 and len(data.test_ood) == len(data.test)
    assert (data.test_ood["environment"] == 3).all()
    assert data.item_features.item_ids.tolist() == list(range(60))
    assert data.item_features.dims == {"visual": 24, "acoustic": 16}
    assert data.environment_strengths.tolist() == [3.0, 4.5, 6.0, -3.0]
    assert data.validation is None and "60 items" in data.DESCR


def test_no_duplicate_interactions_and_tests_disjoint_from_training():
    data = make_multimodal_interactions(n_users=50, n_items=40, random_state=1)
    key = lambda f: set(zip(f["user"], f["item"]))  # noqa: E731
    train = key(data.interactions)
    assert len(train) == len(data.interactions)
    assert not train & key(data.test)
    assert not train & key(data.test_ood)
    assert len(key(data.test)) == len(data.test)


def test_reproducible_with_seed_and_different_across_seeds():
    a = make_multimodal_interactions(n_users=30, n_items=50, random_state=7)
    b = make_multimodal_interactions(n_users=30, n_items=50, random_state=7)
    c = make_multimodal_interactions(n_users=30, n_items=50, random_state=8)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.test_ood, b.test_ood)
    np.testing.assert_array_equal(a.item_features["visual"], b.item_features["visual"])
    assert not a.interactions.equals(c.interactions)


def test_invariant_mask_is_the_truth_about_the_features():
    data = make_multimodal_interactions(n_users=30, n_items=400, feature_noise=0.05, random_state=2)
    q, s = data.item_factors, data.item_spurious
    for name, mask in data.invariant_mask.items():
        x = data.item_features[name].astype(float)
        assert mask.sum() == {"visual": 12, "acoustic": 8}[name]
        # R^2 of each dimension regressed on q (invariant) and on s (spurious).
        r2_q = _r2(q, x)
        r2_s = _r2(s, x)
        assert (r2_q[mask] > 0.5).all() and (r2_q[~mask] < 0.1).all()
        assert (r2_s[~mask] > 0.5).all() and (r2_s[mask] < 0.1).all()
        assert roc_auc_score(mask, r2_q) == 1.0


def _r2(latent, x):
    design = np.column_stack([latent, np.ones(len(latent))])
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    resid = x - design @ coef
    return 1 - resid.var(0) / x.var(0)


def test_oracles_show_the_shift_problem():
    """Spurious ranker: good IID, bad OOD. Invariant ranker: the reverse (mean over seeds)."""
    results = []
    for seed in range(3):
        data = make_multimodal_interactions(random_state=seed)
        invariant = data.user_factors @ data.item_factors.T
        spurious = data.user_spurious @ data.item_spurious.T
        results.append(_oracle_ndcg(data, invariant) + _oracle_ndcg(data, spurious))
    inv_iid, inv_ood, spu_iid, spu_ood = np.mean(results, axis=0)
    assert spu_iid > 1.25 * inv_iid
    assert inv_ood > 10 * spu_ood
    assert inv_ood > inv_iid
    assert spu_ood < 0.05


def test_environments_really_differ_in_spurious_exposure():
    data = make_multimodal_interactions(random_state=0)
    spurious = data.user_spurious @ data.item_spurious.T
    inter = data.interactions
    exposure = pd.Series(spurious[inter["user"], inter["item"]]).groupby(inter["environment"]).mean()
    assert exposure.is_monotonic_increasing  # stronger beta -> more spurious-aligned items
    ood = spurious[data.test_ood["user"], data.test_ood["item"]].mean()
    assert ood < 0 < exposure.iloc[0]


def test_missing_modalities_option():
    data = make_multimodal_interactions(n_users=20, n_items=100, missing_fraction=0.3, random_state=0)
    lost = (~data.item_features.availability).sum(1)
    assert lost.sum() == 30 and lost.max() == 1


def test_custom_modalities_and_environments():
    data = make_multimodal_interactions(
        n_users=10, n_items=80, modalities={"a": (3, 0), "b": (0, 2), "c": (1, 1)},
        spurious_strengths=(0.0, 1.0), random_state=0,
    )
    assert data.item_features.dims == {"a": 3, "b": 2, "c": 2}
    assert data.invariant_mask["a"].all() and not data.invariant_mask["b"].any()
    assert sorted(data.interactions["environment"].unique()) == [0, 1]
    assert (data.test_ood["environment"] == 2).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_users": 0}, "n_users"),
        ({"n_items": 10}, "distinct items"),
        ({"modalities": {}}, "non-empty dict"),
        ({"modalities": {"a": 3}}, "pair"),
        ({"modalities": {"a": (0, 0)}}, "not both 0"),
        ({"spurious_strengths": ()}, "spurious_strengths"),
        ({"test_strength": np.nan}, "finite"),
        ({"feature_noise": -1.0}, "feature_noise"),
        ({"missing_fraction": 2.0}, "missing_fraction"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_multimodal_interactions(**kwargs)
