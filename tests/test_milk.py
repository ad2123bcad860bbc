"""MILKRecommender: the loss of a batch by hand, missing modalities end to end, new items after
fit, diagnostics, ablation switches and a ground-truth check on the synthetic generator."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from invrec import ItemFeatures
from invrec.base import FitData
from invrec.datasets import make_multimodal_interactions
from invrec.multimodal.imputation import CrossModalImputer
from invrec.metrics import make_ranking_scorer
from invrec.milk import MILKRecommender
from invrec.multimodal import MultimodalContentModel, sample_cyclic_mixtures

TINY = dict(embedding_dim=8, batch_size=256, max_epochs=4, early_stopping=False, random_state=0)
#: The MILK paper's settings (the defaults before issue 16), for the tests of that path.
PAPER = dict(mixtures="cyclic", invariance_weight=50.0, missing_fill="mean", negative_pool="all")


@pytest.fixture(scope="module")
def synthetic(new_item_split):
    """Synthetic data with 20% new items (half validation, half test): conftest's ``new_item_split``."""
    return new_item_split


# ---------------------------------------------------------------------- the loss of a batch
def _fit_data(features, availability, slices, users, items, n_users, seed=0):
    n_items = features.shape[0]
    return FitData(users=users, items=items, targets=None, n_users=n_users, n_items=n_items,
                   user_degree=torch.bincount(users, minlength=n_users).float(),
                   item_degree=torch.bincount(items, minlength=n_items).float(),
                   features=features, feature_slices=slices, availability=availability,
                   generator=torch.Generator().manual_seed(seed))


def test_batch_loss_matches_the_formula_by_hand():
    g = torch.Generator().manual_seed(0)
    n_users, n_items = 5, 7
    features = torch.rand(n_items, 5, generator=g)
    slices = {"a": slice(0, 3), "b": slice(3, 5)}
    availability = torch.ones(n_items, 2, dtype=torch.bool)
    availability[2, 1] = False                       # item 2 misses modality b: never aligned
    users, items = torch.tensor([0, 1, 2, 3, 4, 0]), torch.tensor([2, 2, 3, 0, 5, 1])
    data = _fit_data(features, availability, slices, users, items, n_users)
    module = MultimodalContentModel(n_users, features, list(slices.values()), dim=4,
                                     generator=torch.Generator().manual_seed(1))
    est = MILKRecommender(n_negatives=2, alignment_weight=0.3, invariance_weight=7.0,
                          l2_embedding=0.01, dirichlet_alpha=0.5, mixtures="cyclic", negative_pool="all")
    objective = est._batch_objective(module, data)
    replay = torch.Generator().manual_seed(0)
    rows = torch.tensor([0, 1, 4, 5])
    loss, logs = objective(rows)

    # the same draws, in the same order: negatives, then the environments
    neg = torch.randint(0, n_items, (4, 2), generator=replay)
    env = sample_cyclic_mixtures(2, 0.5, generator=replay)
    u, pos = module.user_vectors(users[rows]), items[rows]
    c = module.modality_vectors()                                   # (n_items, 2, d)
    risks = []
    for theta in env:
        item = theta[0] * c[:, 0] + theta[1] * c[:, 1]
        s_pos = (u * item[pos]).sum(1, keepdim=True)
        s_neg = (u.unsqueeze(1) * item[neg]).sum(-1)
        risks.append(F.softplus(s_neg - s_pos).mean())
    risks = torch.stack(risks)
    aligned = torch.tensor([1, 5])                                  # distinct positives with both
    alignment = ((c[aligned, 0] - c[aligned, 1]) ** 2).mean()
    fused = c.mean(1)
    reg = (u.square().sum(1) + fused[pos].square().sum(1) + fused[neg].square().sum(-1).mean(1)).mean()
    expected = risks.sum() + 7.0 * risks.var() + 0.3 * alignment + 0.01 * reg
    assert torch.allclose(loss, expected, rtol=1e-5)
    # the batch's terms, as the training loop logs them
    assert torch.allclose(logs["mixture_risks"], risks, rtol=1e-5)
    assert torch.allclose(logs["risk_variance"], risks.var(), rtol=1e-5)
    assert torch.allclose(logs["alignment"], alignment, rtol=1e-5)


def test_missing_environments_replace_a_modality_by_its_fill_by_hand():
    g = torch.Generator().manual_seed(0)
    n_users, n_items = 5, 7
    features = torch.rand(n_items, 5, generator=g)
    slices = {"a": slice(0, 3), "b": slice(3, 5)}
    users, items = torch.tensor([0, 1, 2, 3, 4, 0]), torch.tensor([2, 2, 3, 0, 5, 1])
    data = _fit_data(features, None, slices, users, items, n_users)
    module = MultimodalContentModel(n_users, features, list(slices.values()), dim=4,
                                     generator=torch.Generator().manual_seed(1))
    est = MILKRecommender(n_negatives=2, alignment_weight=0.0, invariance_weight=3.0,
                          l2_embedding=0.0, mixtures="missing", missing_rate=0.5, negative_pool="all")
    est.modalities_ = ("a", "b")
    est._fill_values = {"a": np.array([0.1, 0.2, 0.3]), "b": np.array([0.5, -0.5])}
    objective = est._batch_objective(module, data)
    rows = torch.tensor([0, 1, 4, 5])
    loss, _ = objective(rows)

    replay = torch.Generator().manual_seed(0)                       # negatives, then the masks
    neg = torch.randint(0, n_items, (4, 2), generator=replay)
    u, pos = module.user_vectors(users[rows]), items[rows]
    distinct = torch.unique(torch.cat([pos, neg.reshape(-1)]))
    masks = torch.rand((2, len(distinct)), generator=replay) < 0.5
    fill = module.extract(torch.tensor([[0.1, 0.2, 0.3, 0.5, -0.5]]))[0]     # (2, d)
    c = module.modality_vectors()
    risks = []
    for env in range(3):                                            # full, lose a, lose b
        item = c.clone()
        if env:
            lost = distinct[masks[env - 1]]
            item[lost, env - 1] = fill[env - 1]
        item = item.mean(1)
        s_pos = (u * item[pos]).sum(1, keepdim=True)
        s_neg = (u.unsqueeze(1) * item[neg]).sum(-1)
        risks.append(F.softplus(s_neg - s_pos).mean())
    risks = torch.stack(risks)
    assert 0 < masks.sum() < masks.numel()                          # both kinds of items occur
    assert torch.allclose(loss, risks.sum() + 3.0 * risks.var(), rtol=1e-5)


def test_missing_environments_at_rate_zero_all_equal_the_uniform_one(synthetic):
    data, train, _, _, _ = synthetic
    model = MILKRecommender(**TINY, mixtures="missing", missing_rate=0.0)
    model.fit(train, item_features=data.item_features)
    risks = model.mixture_risks_
    assert risks.shape == (4, 3)                                    # uniform + one per modality
    np.testing.assert_allclose(risks[:, 1:], risks[:, [0, 0]], rtol=1e-6)
    assert all(r["risk_variance"] < 1e-10 for r in model.history_)
    both = MILKRecommender(**TINY, mixtures="cyclic+missing").fit(
        train, item_features=data.item_features)
    assert both.mixture_risks_.shape == (4, 5)                  # uniform, 2 cyclic, 2 missing
    assert all(r["risk_variance"] > 0 for r in both.history_)


def test_no_environments_is_bpr_on_the_uniform_fusion():
    g = torch.Generator().manual_seed(0)
    features = torch.rand(4, 4, generator=g)
    data = _fit_data(features, None, {"a": slice(0, 2), "b": slice(2, 4)},
                     torch.tensor([0, 1]), torch.tensor([1, 2]), 2)
    module = MultimodalContentModel(2, features, [slice(0, 2), slice(2, 4)], dim=3,
                                     generator=torch.Generator().manual_seed(1))
    est = MILKRecommender(mixtures="none", alignment_weight=0.0, l2_embedding=0.0, negative_pool="all")
    objective = est._batch_objective(module, data)
    loss, logs = objective(torch.tensor([0, 1]))
    neg = torch.randint(0, 4, (2, 1), generator=torch.Generator().manual_seed(0))
    u, item = module.user_vectors(torch.tensor([0, 1])), module.item_vectors()
    expected = F.softplus((u * item[neg[:, 0]]).sum(1) - (u * item[torch.tensor([1, 2])]).sum(1)).mean()
    assert torch.allclose(loss, expected)
    assert logs["mixture_risks"].shape == (1,) and float(logs["risk_variance"]) == 0.0


def test_warm_negative_pool_never_draws_new_items():
    g = torch.Generator().manual_seed(0)
    features = torch.rand(10, 4, generator=g)
    items = torch.tensor([0, 1, 2, 0, 1])
    data = _fit_data(features, None, {"a": slice(0, 2), "b": slice(2, 4)},
                     torch.tensor([0, 1, 2, 3, 4]), items, 5)
    module = MultimodalContentModel(5, features, [slice(0, 2), slice(2, 4)], dim=3)
    seen = []
    original = module.batch_modality_vectors
    module.batch_modality_vectors = lambda idx: (seen.append(idx.clone()), original(idx))[1]
    objective = MILKRecommender(negative_pool="warm", n_negatives=50, mixtures="cyclic")._batch_objective(module, data)
    objective(torch.arange(5))
    assert set(seen[0].tolist()) <= {0, 1, 2}


# ---------------------------------------------------------------------- fitting
def test_fit_diagnostics_and_environment_count(synthetic):
    data, train, _, _, _ = synthetic
    model = MILKRecommender(**TINY).fit(train, item_features=data.item_features)
    assert model.modalities_ == ("visual", "acoustic")
    assert model.mixture_risks_.shape == (4, 3)                 # M + 1 environments
    assert len(model.history_) == 4
    for record in model.history_:
        assert len(record["mixture_risks"]) == 3 and record["risk_variance"] >= 0
        assert record["alignment"] > 0
    assert model.mixture_risks_[-1].mean() < model.mixture_risks_[0].mean()
    ablated = MILKRecommender(**TINY, mixtures="none", alignment_weight=0.0)
    ablated.fit(train, item_features=data.item_features)
    assert ablated.mixture_risks_.shape == (4, 1)
    assert all(r["alignment"] == 0 and r["risk_variance"] == 0 for r in ablated.history_)


def test_three_modalities_give_four_environments():
    data = make_multimodal_interactions(n_users=40, n_items=30, random_state=1,
                                        modalities={"v": (4, 4), "a": (3, 3), "t": (5, 2)})
    model = MILKRecommender(**TINY).fit(data.interactions, item_features=data.item_features)
    assert model.mixture_risks_.shape == (4, 4)


def test_alignment_pulls_modality_representations_together(synthetic):
    data, train, _, _, _ = synthetic

    def gap(weight):
        model = MILKRecommender(**{**TINY, "max_epochs": 15}, alignment_weight=weight)
        model.fit(train, item_features=data.item_features)
        c = model.module_.modality_vectors().detach()
        return float(((c[:, 0] - c[:, 1]) ** 2).mean())

    assert gap(5.0) < 0.5 * gap(0.0)


def test_invariance_penalty_lowers_the_variance_of_environment_risks(synthetic):
    data, train, _, _, _ = synthetic

    def final_variance(weight):
        model = MILKRecommender(**{**TINY, "max_epochs": 8}, invariance_weight=weight,
                                learning_rate=1e-2, dirichlet_alpha=0.05, mixtures="cyclic")
        model.fit(train, item_features=data.item_features)
        return np.mean([h["risk_variance"] for h in model.history_[-3:]])

    assert final_variance(100.0) < 0.5 * final_variance(0.0)


def test_validation_among_new_items_and_early_stopping(synthetic):
    data, train, valid, _, _ = synthetic
    model = MILKRecommender(**{**TINY, "max_epochs": 6, "early_stopping": True, "n_iter_no_change": 2},
                            validation_candidates="unseen")
    model.fit(train, item_features=data.item_features, validation_data=valid)
    curve = [h["valid_ndcg@20"] for h in model.history_]
    assert all(0 <= v <= 1 for v in curve)
    best = max(curve)
    scorer = make_ranking_scorer("ndcg", k=20, candidates="unseen")
    assert scorer(model, valid) == pytest.approx(best)              # the best epoch is restored
    with pytest.raises(ValueError, match="every catalog item has a training interaction"):
        MILKRecommender(**TINY, validation_candidates="unseen").fit(
            train, item_features=data.item_features.reindex(np.unique(train["item"])),
            validation_data=train.iloc[:5])


def test_ranks_new_items_better_than_chance(synthetic):
    """Ground truth: new items are ranked from content alone, well above a random order."""
    data, train, _, test, new = synthetic
    model = MILKRecommender(embedding_dim=16, batch_size=256, max_epochs=30, early_stopping=False,
                            learning_rate=1e-2, random_state=0)
    model.fit(train, item_features=data.item_features)
    assert set(model.unseen_items_) == set(new["validation"]) | set(new["test"])
    scorer = make_ranking_scorer("ndcg", k=3, candidates=new["test"])
    chance = np.mean([_random_ndcg(test, new["test"], 3, seed) for seed in range(50)])
    assert scorer(model, test) > 1.5 * chance


def _random_ndcg(test, candidates, k, seed):
    rng = np.random.default_rng(seed)
    gains = []
    for _, rows in test.groupby("user"):
        order = rng.permutation(candidates)[:k]
        hits = np.isin(order, rows["item"].to_numpy())
        dcg = (hits / np.log2(np.arange(2, len(order) + 2))).sum()
        idcg = (1 / np.log2(np.arange(2, min(k, len(rows)) + 2))).sum()
        gains.append(dcg / idcg)
    return float(np.mean(gains))


# ---------------------------------------------------------------------- missing modalities
def test_missing_modalities_end_to_end(synthetic):
    data, train, _, _, new = synthetic
    warm = np.unique(train["item"])
    mtmt = (data.item_features.with_missing(0.5, items=new["test"], random_state=0)
            .with_missing(0.3, items=warm, random_state=1))
    assert not mtmt.availability.all()
    model = MILKRecommender(**TINY, missing_fill="mean").fit(train, item_features=mtmt)
    # the fill is the training mean of the L2-normalised available rows
    normalised = mtmt.normalize()
    for j, name in enumerate(mtmt.modalities):
        rows = normalised.reindex(warm)[name][mtmt.reindex(warm).availability[:, j]]
        np.testing.assert_allclose(model._fill_values[name], rows.mean(0), rtol=1e-5, atol=1e-6)
    scores = model.predict(pd.DataFrame({"user": [0] * 100, "item": range(100)}))
    assert np.isfinite(scores).all()
    # the model's content of an item missing a modality holds the fill vector in that block
    item = int(np.flatnonzero(~mtmt.availability.all(1))[0])
    row = model._item_index.get_indexer([item])[0]
    content = model.module_.features[row].numpy()
    _, slices = mtmt.concat()
    for j, name in enumerate(mtmt.modalities):
        expected = normalised.reindex([item])[name][0] if mtmt.availability[item, j] else model._fill_values[name]
        np.testing.assert_allclose(content[slices[name]], expected, rtol=1e-6)
    # the same item passed after fitting, NaN row included, gets the same fill and score
    again = ItemFeatures({m: mtmt.reindex([item])[m] for m in mtmt.modalities}, item_ids=["copy"])
    got = model.predict(pd.DataFrame({"user": [0], "item": ["copy"]}), item_features=again)
    np.testing.assert_allclose(got, scores[item], rtol=1e-5)


def test_zero_fill_option(synthetic):
    data, train, _, _, new = synthetic
    ftmt = data.item_features.with_missing(1.0, items=new["test"], random_state=0)
    model = MILKRecommender(**TINY, missing_fill="zero").fit(train, item_features=ftmt)
    assert all(not v.any() for v in model._fill_values.values())
    assert np.isfinite(model.predict(pd.DataFrame({"user": [0] * 100, "item": range(100)}))).all()


def test_impute_fill_uses_the_items_other_modality(synthetic):
    data, train, _, _, new = synthetic
    warm = np.unique(train["item"])
    ftmt = data.item_features.with_missing(0.5, items=new["test"], random_state=0)
    model = MILKRecommender(**TINY, missing_fill="impute").fit(train, item_features=ftmt)
    assert isinstance(model.imputer_, CrossModalImputer) and MILKRecommender(**TINY, missing_fill="mean").fit(
        train, item_features=ftmt).imputer_ is None
    # the imputer is fitted on the training items' normalised rows only
    reference = CrossModalImputer().fit(ftmt.normalize(), reference_items=warm)
    for pair, (coef, _) in reference.coefs_.items():
        np.testing.assert_allclose(model.imputer_.coefs_[pair][0], coef, rtol=1e-6)
    # a test item without a modality holds its imputation, which differs between items
    _, slices = ftmt.concat()
    lost = np.flatnonzero(~ftmt.availability[:, 0])
    rows = model._item_index.get_indexer(lost)
    imputed = reference.transform(ftmt.normalize().reindex(lost))
    name = ftmt.modalities[0]
    np.testing.assert_allclose(model.module_.features[rows][:, slices[name]].numpy(), imputed[name], rtol=1e-5,
                               atol=1e-7)
    assert np.ptp(imputed[name], axis=0).max() > 1e-3
    # and the same content passed after fitting gets the same scores
    renamed = ItemFeatures({m: ftmt.reindex(lost)[m] for m in ftmt.modalities}, item_ids=[f"n{i}" for i in lost])
    after = model.predict(pd.DataFrame({"user": [0] * len(lost), "item": renamed.item_ids}), item_features=renamed)
    np.testing.assert_allclose(after, model.predict(pd.DataFrame({"user": [0] * len(lost), "item": lost})),
                               rtol=1e-5)


def test_missing_environments_with_exact_imputation_equal_the_uniform_one(synthetic):
    """When each modality is an exact linear function of the other, losing one costs nothing."""
    data, train, _, _, _ = synthetic
    rng = np.random.default_rng(0)
    a = rng.normal(size=(data.item_features.n_items, 3))
    a /= np.linalg.norm(a, axis=1, keepdims=True)                      # unit rows: normalising keeps
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))                        # b = a q exactly linear
    feats = ItemFeatures({"a": a, "b": a @ q}, item_ids=data.item_features.item_ids)
    params = dict(TINY, mixtures="missing", missing_rate=0.5, max_epochs=15, learning_rate=0.05)
    exact = MILKRecommender(**params, missing_fill="impute").fit(train, item_features=feats)
    np.testing.assert_allclose(exact.mixture_risks_[:, 1:], exact.mixture_risks_[:, [0, 0]], atol=1e-5)
    mean = MILKRecommender(**params, missing_fill="mean").fit(train, item_features=feats)
    assert np.abs(mean.mixture_risks_[:, 1:] - mean.mixture_risks_[:, [0]]).max() > 1e-3   # the mean fill costs


def test_new_items_after_fit_match_in_catalog_scores(synthetic):
    """Scoring an item from content passed after fitting gives its in-catalog score."""
    data, train, _, test, new = synthetic
    ftmt = data.item_features.with_missing(0.5, items=new["test"], random_state=0)
    model = MILKRecommender(**TINY).fit(train, item_features=ftmt)
    in_catalog = model.recommend([0, 1, 2], n=5, items=new["test"])
    # the same items under fresh ids, unknown to the model, with their (partly missing) content
    renamed = ItemFeatures({m: ftmt.reindex(new["test"])[m] for m in ftmt.modalities},
                           item_ids=[f"new{i}" for i in new["test"]])
    after = model.recommend([0, 1, 2], n=5, items=renamed.item_ids, item_features=renamed)
    assert (after["item"].str[3:].astype(int).to_numpy() == in_catalog["item"].to_numpy()).all()
    np.testing.assert_allclose(after["score"], in_catalog["score"], rtol=1e-5)
    fresh = MILKRecommender(**TINY).fit(train, item_features=data.item_features.reindex(np.unique(train["item"])))
    recs = fresh.recommend([0], n=3, items=renamed.item_ids, item_features=renamed)
    assert len(recs) == 3 and recs["item"].str.startswith("new").all()


def test_single_modality_and_no_features(synthetic):
    data, train, _, _, _ = synthetic
    one = data.item_features.select_modalities(["visual"])
    model = MILKRecommender(**TINY).fit(train, item_features=one)
    assert model.mixture_risks_.shape == (4, 1)
    mf = MILKRecommender(**TINY).fit(train)
    assert mf.modalities_ == () and np.isfinite(mf.predict(train.iloc[:10])).all()
    with pytest.raises(ValueError, match="cannot score"):
        mf.recommend([0], items=["x"], item_features=ItemFeatures({"visual": np.ones((1, 3))}, item_ids=["x"]))


@pytest.mark.parametrize("fill", ["mean", "impute"])
def test_pickled_model_scores_new_items(synthetic, fill):
    import pickle

    data, train, _, _, new = synthetic
    model = MILKRecommender(**TINY, missing_fill=fill).fit(
        train, item_features=data.item_features.reindex(np.unique(train["item"])))
    again = pickle.loads(pickle.dumps(model))
    ftmt = data.item_features.with_missing(0.5, items=new["test"], random_state=0)
    pd.testing.assert_frame_equal(
        again.recommend([0, 1], n=4, items=new["test"], item_features=ftmt),
        model.recommend([0, 1], n=4, items=new["test"], item_features=ftmt))


@pytest.mark.parametrize("params, message", [
    ({"mixtures": "random"}, "mixtures"),
    ({"missing_rate": 1.5}, "missing_rate"),
    ({"negative_pool": "cold"}, "negative_pool"),
    ({"missing_fill": "median"}, "missing_fill"),
    ({"validation_candidates": "new"}, "validation_candidates"),
    ({"dirichlet_alpha": 0.0}, "dirichlet_alpha"),
    ({"alignment_weight": -1.0}, "alignment_weight"),
    ({"invariance_weight": "big"}, "invariance_weight"),
    ({"n_negatives": 0}, "n_negatives"),
    ({"embedding_dim": 2.5}, "embedding_dim"),
])
def test_parameter_validation(synthetic, params, message):
    data, train, _, _, _ = synthetic
    with pytest.raises(ValueError, match=message):
        MILKRecommender(**params).fit(train, item_features=data.item_features)
