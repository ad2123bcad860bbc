"""invrec.diagnostics on hand-computed cases, and the properties the metrics must have."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings, strategies as st
from sklearn.utils import Bunch

from invrec.datasets import make_multimodal_interactions
from invrec.diagnostics import environment_recovery, gap_closed, mask_recovery, oracle_ndcg
from invrec.metrics import ndcg_at_k
from invrec.utils.ranking import top_k


# ----------------------------------------------------------------------------- environment_recovery
def test_relabelled_partition_is_recovered_perfectly():
    true = [0, 0, 1, 1, 1, 2]
    assert environment_recovery([7, 7, 3, 3, 3, 5], true) == {"ari": 1.0, "nmi": 1.0, "n_rows": 6}


def test_hand_computed_ari():
    # Contingency [[1, 1], [1, 1]]: index 0, expected 2/3, max 2 -> ARI = -2/3 / (4/3) = -0.5.
    out = environment_recovery([0, 1, 0, 1], [0, 0, 1, 1])
    assert out["ari"] == pytest.approx(-0.5) and out["nmi"] == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(labels=st.lists(st.integers(0, 4), min_size=2, max_size=40), data=st.data())
def test_scores_are_invariant_to_relabelling(labels, data):
    labels = np.array(labels)
    other = np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(labels), max_size=len(labels))))
    perm = np.array(data.draw(st.permutations(range(5))))
    base = environment_recovery(other, labels)
    relabelled = environment_recovery(other, perm[labels])
    assert relabelled["ari"] == pytest.approx(base["ari"], abs=1e-12)
    assert relabelled["nmi"] == pytest.approx(base["nmi"], abs=1e-12)
    assert environment_recovery(perm[labels], labels)["ari"] == pytest.approx(1.0)


def test_dataframes_are_aligned_on_user_item_pairs():
    true = pd.DataFrame({"user": [0, 0, 1, 1, 2], "item": [1, 2, 1, 3, 0], "environment": [0, 1, 0, 1, 1]})
    # Shuffled, relabelled, one row missing (a validation share): still a perfect recovery.
    inferred = true.iloc[[3, 0, 4, 1]].assign(environment=lambda f: 1 - f["environment"] + 10)
    assert environment_recovery(inferred, true) == {"ari": 1.0, "nmi": 1.0, "n_rows": 4}
    # Unaligned, the same labels would disagree.
    assert environment_recovery(inferred["environment"].to_numpy(), true["environment"].iloc[:4].to_numpy())["ari"] < 1


@pytest.mark.parametrize("inferred, true, match", [
    ([0, 1], [0, 1, 1], "labels"),
    ([], [], "at least one"),
    ([[0, 1]], [[0, 1]], "1-D"),
    ([0, np.nan], [0, 1], "missing"),
    (pd.DataFrame({"user": [0], "item": [0], "environment": [0]}), [0], "not one of each"),
    (pd.DataFrame({"user": [0], "item": [0], "environment": [0]}),
     pd.DataFrame({"user": [1], "item": [0], "environment": [0]}), "not in true"),
    (pd.DataFrame({"user": [0], "item": [0]}),
     pd.DataFrame({"user": [0], "item": [0], "environment": [0]}), "environment"),
    (pd.DataFrame({"user": [0, 0], "item": [0, 0], "environment": [0, 1]}),
     pd.DataFrame({"user": [0], "item": [0], "environment": [0]}), "duplicated"),
])
def test_environment_recovery_errors(inferred, true, match):
    with pytest.raises(ValueError, match=match):
        environment_recovery(inferred, true)


# ----------------------------------------------------------------------------- mask_recovery
TRUTH = {"visual": np.array([True, True, False, False]), "text": np.array([True, False, False])}


def test_mask_recovery_counts_kept_spurious_dimensions():
    learned = {"text": np.array([0.8, 0.55, 0.2]), "visual": np.array([0.9, 0.4, 0.6, 0.1])}
    out = mask_recovery(learned, TRUTH)
    # Pairs (invariant, spurious): 3 x 4 = 12, wrong order only for 0.4 < 0.6 and 0.4 < 0.55.
    assert out["auc"] == pytest.approx(10 / 12)
    assert out["n_spurious"] == 4
    assert out["n_spurious_kept"] == 2 and out["share_spurious_kept"] == 0.5      # 0.6 and 0.55
    assert out["n_invariant_kept"] == 2 and out["share_invariant_kept"] == pytest.approx(2 / 3)
    assert out["threshold"] == 0.5
    strict = mask_recovery(learned, TRUTH, threshold=0.58)
    assert strict["n_spurious_kept"] == 1 and strict["auc"] == out["auc"]
    assert mask_recovery(learned, TRUTH, threshold=0.0)["n_spurious_kept"] == 4


def test_final_mask_is_counted_and_may_be_a_tensor():
    learned = {"visual": np.array([0.9, 0.7, 0.6, 0.1]), "text": np.array([0.8, 0.2, 0.3])}
    # The final model read a binarised mask (visual then text, a module's flat buffer).
    final = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    out = mask_recovery(learned, TRUTH, final_mask=final)
    assert out["auc"] == 1.0
    assert out["n_spurious_kept"] == 2 and out["n_invariant_kept"] == 3
    flat = mask_recovery(np.array([0.9, 0.7, 0.6, 0.1, 0.8, 0.2, 0.3]), TRUTH)
    assert flat == mask_recovery(learned, TRUTH)


def test_mask_recovery_on_the_generators_truth():
    data = make_multimodal_interactions(n_users=10, n_items=50, random_state=0)
    perfect = {m: mask.astype(float) for m, mask in data.invariant_mask.items()}
    out = mask_recovery(perfect, data.invariant_mask)
    assert out["auc"] == 1.0 and out["n_spurious_kept"] == 0 and out["share_invariant_kept"] == 1.0
    everything = mask_recovery({m: np.ones_like(v) for m, v in perfect.items()}, data.invariant_mask)
    assert everything["n_spurious_kept"] == everything["n_spurious"] == 20
    assert everything["share_spurious_kept"] == 1.0 and everything["auc"] == 0.5


def test_single_class_truth_has_no_auc():
    out = mask_recovery([0.2, 0.9], [True, True])
    assert math.isnan(out["auc"]) and out["n_spurious"] == 0 and math.isnan(out["share_spurious_kept"])


@pytest.mark.parametrize("learned, truth, kwargs, match", [
    ({"visual": np.ones(4)}, TRUTH, {}, "modalities"),
    ({"visual": np.ones(3), "text": np.ones(3)}, TRUTH, {}, "visual"),
    (np.ones(6), TRUTH, {}, "6 values"),
    ({}, {}, {}, "empty"),
    ([0.1, np.nan], [True, False], {}, "NaN"),
    ([0.1, 0.2], [2, 0], {}, "boolean"),
    ([0.1, 0.2], [True, False], {"threshold": "auto"}, "threshold"),
    ([0.1, 0.2], [True, False], {"final_mask": [1.0]}, "final_mask"),
])
def test_mask_recovery_errors(learned, truth, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mask_recovery(learned, truth, **kwargs)


# ----------------------------------------------------------------------------- gap_closed
def test_gap_closed_exact_values():
    assert gap_closed(0.5, 0.25, 0.75) == 0.5
    assert gap_closed(0.25, 0.25, 0.75) == 0.0
    assert gap_closed(0.75, 0.25, 0.75) == 1.0
    assert gap_closed(0.125, 0.25, 0.75) == -0.25
    assert gap_closed(1.0, 0.25, 0.75) == 1.5
    assert gap_closed(0.5, 0.75, 0.25) == 0.5          # a signed ratio: the oracle may be lower


@settings(max_examples=50, deadline=None)
@given(erm=st.floats(0, 1), oracle=st.floats(0, 1))
def test_gap_closed_is_zero_at_erm_and_one_at_the_oracle(erm, oracle):
    if erm == oracle:
        with pytest.raises(ValueError, match="no ERM-to-oracle gap"):
            gap_closed(erm, erm, oracle)
        return
    assert gap_closed(erm, erm, oracle) == 0.0
    assert gap_closed(oracle, erm, oracle) == 1.0


@pytest.mark.parametrize("args, match", [
    ((0.3, 0.2, 0.2), "no ERM-to-oracle gap"),
    ((float("nan"), 0.2, 0.4), "model_ood"),
    ((0.3, None, 0.4), "erm_ood"),
    ((0.3, 0.2, float("inf")), "oracle_ood"),
])
def test_gap_closed_errors(args, match):
    with pytest.raises(ValueError, match=match):
        gap_closed(*args)


# ----------------------------------------------------------------------------- oracle_ndcg
def _tiny_bunch():
    """2 users, 4 items, 1-D factors: user 0 prefers items 0 > 1 > 2 > 3, user 1 the reverse."""
    return Bunch(
        user_factors=np.array([[1.0], [-1.0]]),
        item_factors=np.array([[4.0], [3.0], [2.0], [1.0]]),
        interactions=pd.DataFrame({"user": [0, 1], "item": [0, 3], "environment": [0, 0]}),
        test_ood=pd.DataFrame({"user": [0, 1], "item": [2, 0], "environment": [1, 1]}),
        test=pd.DataFrame({"user": [0], "item": [1]}),
    )


def test_oracle_ndcg_by_hand():
    data = _tiny_bunch()
    # Training items excluded: user 0 ranks [1, 2, 3], user 1 ranks [2, 1, 0].
    # k=2: user 0 hits item 2 at rank 2 (1 / log2(3)), user 1 misses item 0 (rank 3).
    assert oracle_ndcg(data, k=2) == pytest.approx((1 / np.log2(3) + 0) / 2)
    # k=3: user 1 now hits at rank 3 (1 / log2(4) = 0.5).
    assert oracle_ndcg(data, k=3) == pytest.approx((1 / np.log2(3) + 0.5) / 2)
    assert oracle_ndcg(data, "test", k=1) == 1.0   # user 0's best unseen item is item 1
    split = pd.DataFrame({"user": [1], "item": [2]})
    assert oracle_ndcg(data, split, k=20) == 1.0    # a DataFrame split; only its users count


def test_oracle_ndcg_matches_the_array_metric_on_generated_data():
    data = make_multimodal_interactions(n_users=60, n_items=50, random_state=2)
    shape = (60, 50)
    csr = lambda f: sp.csr_array((np.ones(len(f)), (f["user"], f["item"])), shape=shape)  # noqa: E731
    rankings, _ = top_k(data.user_factors @ data.item_factors.T, 20, exclude=csr(data.interactions))
    for split in ("test", "test_ood"):
        assert oracle_ndcg(data, split) == pytest.approx(ndcg_at_k(rankings, csr(data[split]), 20))
    # The scale of the preference does not change the oracle.
    scaled = Bunch(**{**data, "user_factors": 3.0 * data.user_factors})
    assert oracle_ndcg(scaled) == oracle_ndcg(data)


@pytest.mark.parametrize("split, k, match", [
    ("validation", 20, "no held-out rows"),
    ("missing", 20, "no held-out rows"),
    ("test_ood", 0, "positive int"),
    ("test_ood", 2.5, "positive int"),
    (pd.DataFrame({"user": [2], "item": [0]}), 20, "user ids outside"),
    (pd.DataFrame({"user": [0], "item": [9]}), 20, "item ids outside"),
])
def test_oracle_ndcg_errors(split, k, match):
    data = _tiny_bunch()
    data["validation"] = None
    with pytest.raises(ValueError, match=match):
        oracle_ndcg(data, split, k=k)
