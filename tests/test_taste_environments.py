"""The taste split: starting environments from the variant view, checked against the generator's
true environments."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from invrec.datasets import make_multimodal_interactions
from invrec.diagnostics import environment_recovery
from invrec.invariance import EnvironmentInference
from invrec.invariance.environments import infer_environments, random_environments, taste_environments


def _problem(regime, seed):
    data = make_multimodal_interactions(n_users=200, n_items=150, regime=regime, random_state=seed)
    frame = data.interactions
    matrix, slices = data.item_features.concat()       # item ids 0..n_items-1 in order
    assert np.array_equal(data.item_features.item_ids, np.arange(len(matrix)))
    invariant = np.zeros(matrix.shape[1], dtype=np.float32)
    for modality, columns in slices.items():
        invariant[columns] = data.invariant_mask[modality]
    users = torch.as_tensor(frame["user"].to_numpy().copy())
    items = torch.as_tensor(frame["item"].to_numpy().copy())
    data.n_users = len(data.user_factors)
    data.n_items = len(matrix)
    return data, users, items, torch.as_tensor(matrix, dtype=torch.float32), torch.as_tensor(1.0 - invariant)


def test_hand_case():
    # User 0 took item 0 (content 2) and item 1 (0): item 0 agrees with the user's mean (1) by
    # 2 - 0 = 1 more than the average; the same for user 1 with item 2 (-2) and item 3 (0).
    users, items = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2, 3])
    features = torch.tensor([[2.0], [0.0], [-2.0], [0.0]])
    assert taste_environments(users, items, 2, features, 2).tolist() == [1, 0, 1, 0]
    # The mask zeroes the content: every row's agreement is 0, one bin.
    assert taste_environments(users, items, 2, features, 2, feature_mask=torch.zeros(1)).tolist() == [0, 0, 0, 0]
    # No content, or one environment: all rows in environment 0.
    assert taste_environments(users, items, 2, torch.zeros(4, 0), 3).tolist() == [0, 0, 0, 0]
    assert taste_environments(users, items, 2, features, 1).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_environments_that_disagree_where_a_random_start_does_not(seed):
    data, users, items, features, variant = _problem("disagree", seed)
    truth = data.interactions["environment"].to_numpy()
    taste = taste_environments(users, items, data.n_users, features, 3, feature_mask=variant)
    random = random_environments(len(users), 3, generator=torch.Generator().manual_seed(seed))
    assert environment_recovery(taste.numpy(), truth)["ari"] > 0.12
    assert abs(environment_recovery(random.numpy(), truth)["ari"]) < 0.01
    # Through the invariant dimensions only, nothing environment-specific is left to split on.
    blind = taste_environments(users, items, data.n_users, features, 3, feature_mask=1.0 - variant)
    assert environment_recovery(blind.numpy(), truth)["ari"] < 0.05


def test_no_environment_signal_when_environments_agree():
    """Same-sign environments differ in strength only: row by row they look alike (the Bayes
    oracle's ARI is about 0 there), and so does the split."""
    data, users, items, features, variant = _problem("agree", 0)
    taste = taste_environments(users, items, data.n_users, features, 3, feature_mask=variant)
    assert abs(environment_recovery(taste.numpy(), data.interactions["environment"].to_numpy())["ari"]) < 0.03


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**16))
def test_bins_are_balanced_labels_in_range(n_envs, seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, per_user = 15, 12, 8           # distinct items, continuous content: no ties
    users = torch.arange(n_users).repeat_interleave(per_user)
    items = torch.as_tensor(np.concatenate([rng.permutation(n_items)[:per_user] for _ in range(n_users)]))
    features = torch.as_tensor(rng.normal(size=(n_items, 5)))
    labels = taste_environments(users, items, n_users, features, n_envs)
    assert labels.min() >= 0 and labels.max() < n_envs
    # Continuous agreements: quantile bins of n / K rows each, within one row per cut.
    counts = torch.bincount(labels, minlength=n_envs)
    assert int(counts.max() - counts.min()) <= 2


def test_infer_environments_starts_from_the_split():
    data, users, items, features, variant = _problem("disagree", 0)
    start = taste_environments(users, items, data.n_users, features, 3, feature_mask=variant)
    labels, _, history = infer_environments(users, items, data.n_users, data.n_items, features, n_envs=3,
                                            feature_mask=variant, init="taste", max_rounds=1, epochs=0,
                                            generator=torch.Generator().manual_seed(0))
    # No epoch: the models are their random start, so the round's reassignment moves labels;
    # the recorded share is measured from the taste split, not from a random draw.
    assert history[0]["changed"] == pytest.approx(float((labels != start).float().mean()))
    with pytest.raises(ValueError, match="init must be one of"):
        infer_environments(users, items, data.n_users, data.n_items, features, n_envs=3, init="kmeans")


def test_stage_parameter_is_validated():
    from invrec.utils.params import InvalidParameterError
    from invrec.utils.params import validate_parameters

    with pytest.raises(InvalidParameterError, match="init"):
        validate_parameters(EnvironmentInference(init="kmeans"))
