"""Conservative checks of PaInvRL's default behaviour under shift, against the generator's truth.

Measured claims (``benchmarks/shift.py``, 5 seeds): in the ``disagree`` regime PaInvRL's
defaults (cut mask, invariant fusion) reach 1.18x the ERM baseline's OOD NDCG@20 at 0.98x its IID
level, and the final mask keeps 6.6 of the 20 spurious dimensions; the soft mask of the published
setting keeps 19-20. Single seeds vary (seed 0: 1.00x, seed 2: 1.28x), so the tests assert weaker
versions on the mean of three seeds, in seconds.
"""

import numpy as np
import pytest
import torch

from invrec import PaInvRLRecommender
from invrec.baselines import UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.diagnostics import mask_recovery
from invrec.invariance import EnvironmentInference, MaskLearning

#: The synthetic backbone of ``benchmarks/invariance.py``, with a shorter final model.
BACKBONE = dict(embedding_dim=32, content_dim=32, batch_size=256, learning_rate=1e-2, n_negatives=20,
                l2_embedding=1e-2, l2_content=1e-2, max_epochs=60, n_iter_no_change=10, device="cpu")


SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def disagree():
    torch.set_num_threads(1)
    runs = []
    for seed in SEEDS:
        data = make_multimodal_interactions(regime="disagree", random_state=seed)
        erm = UltraGCNRecommender(**BACKBONE, random_state=seed).fit(
            data.interactions[["user", "item"]], item_features=data.item_features)
        runs.append((data, erm))
    return runs


def _painvrl(**params):
    stages = dict(environments=EnvironmentInference(3), n_outer_iter=2)
    return PaInvRLRecommender(**{**BACKBONE, **stages, "random_state": 0, **params})


def _flat(model, truth):
    """The final model's mask and the spurious truth, flat in the content's modality order."""
    mask = model.module_.mask.detach().cpu().numpy().ravel()
    spurious = np.concatenate([~truth[name] for name in model.invariant_mask_])
    return mask, spurious


def test_defaults_cut_spurious_dimensions_and_gain_out_of_distribution(disagree):
    ood, erm_ood, iid, erm_iid, kept, kept_invariant, aucs = [], [], [], [], [], [], []
    for seed, (data, erm) in zip(SEEDS, disagree):
        model = _painvrl(mask=MaskLearning(l2=0.0, threshold="auto"), random_state=seed).fit(
            data.interactions[["user", "item"]], item_features=data.item_features)
        mask, spurious = _flat(model, data.invariant_mask)
        assert set(np.unique(mask)) <= {0.0, 1.0}                      # a hard mask
        kept.append(mask[spurious].sum() / spurious.sum())
        kept_invariant.append(mask[~spurious].sum() / (~spurious).sum())
        aucs.append(mask_recovery(model.invariant_mask_, data.invariant_mask)["auc"])
        ood.append(model.score(data.test_ood)), erm_ood.append(erm.score(data.test_ood))
        iid.append(model.score(data.test)), erm_iid.append(erm.score(data.test))
    assert np.mean(aucs) >= 0.8
    assert np.mean(kept) <= 0.5 and np.mean(kept_invariant) >= 0.8     # spurious cut, invariant kept
    # out of distribution above the ERM baseline, in distribution not below it by much
    assert np.mean(ood) >= 1.05 * np.mean(erm_ood)
    assert np.mean(iid) >= 0.9 * np.mean(erm_iid)


def test_published_soft_mask_keeps_the_spurious_dimensions(disagree):
    data, erm = disagree[0]
    model = _painvrl(mask=MaskLearning(l2=0.0, weighting="mgda"), fusion="attention", decorrelate="none").fit(
        data.interactions[["user", "item"]], item_features=data.item_features)
    mask, spurious = _flat(model, data.invariant_mask)
    assert (mask[spurious] > 0.5).sum() >= 0.75 * spurious.sum()       # soft: nothing is cut
    assert model.score(data.test_ood) < 1.1 * erm.score(data.test_ood)  # and no OOD gain


def _ids_explain_spurious(model, data):
    """R^2 of the generator's spurious attribute regressed on the item ids the scores read."""
    with torch.no_grad():
        ids = model.module_.item_ids().cpu().numpy().astype(float)
    target = data.item_spurious - data.item_spurious.mean(0)
    ids = ids - ids.mean(0)
    coef, *_ = np.linalg.lstsq(ids, target, rcond=None)
    return 1.0 - ((target - ids @ coef) ** 2).sum() / (target ** 2).sum()


def test_decorrelated_ids_stop_absorbing_the_shift():
    """agree regime: every environment pushes the spurious attribute one way; the test reverses it.

    Measured (``benchmarks/shift.py``, seeds 0-2): R^2 of the spurious attribute from the item ids
    0.70 without decorrelation and 0.16 with it; OOD NDCG@20 0.022 -> 0.225 (ERM 0.017, popularity
    0.094). Asserted on two seeds, with margins.
    """
    r2 = {"none": [], "both": []}
    ood = {"none": [], "both": []}
    erm_ood, popular = [], []
    for seed in (0, 1):
        data = make_multimodal_interactions(regime="agree", random_state=seed)
        X = data.interactions[["user", "item"]]
        erm_ood.append(UltraGCNRecommender(**BACKBONE, random_state=seed).fit(
            X, item_features=data.item_features).score(data.test_ood))
        for setting in r2:
            model = _painvrl(mask=MaskLearning(l2=0.0, threshold="auto"), decorrelate=setting,
                             random_state=seed).fit(X, item_features=data.item_features)
            assert (model.module_.id_basis.shape[1] > 0) == (setting == "both")
            r2[setting].append(_ids_explain_spurious(model, data))
            ood[setting].append(model.score(data.test_ood))
        from invrec.baselines import PopularityRecommender
        popular.append(PopularityRecommender().fit(X, item_features=data.item_features).score(data.test_ood))
    assert np.mean(r2["none"]) >= 0.4 and np.mean(r2["both"]) <= 0.3
    assert np.mean(ood["both"]) >= 3.0 * np.mean(erm_ood)
    assert np.mean(ood["both"]) >= 2.0 * np.mean(ood["none"])
    assert np.mean(ood["both"]) > np.mean(popular)
