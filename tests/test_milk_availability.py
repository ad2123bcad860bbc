"""Availability-aware fusion of MILK (issue 16): the item representation knows which modalities
it has, through a learned reliability and fill token per modality; and the defaults never read
the new items' content during training."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from invrec.base import FitData
from invrec.milk import MILKRecommender
from invrec.multimodal import MultimodalContentModel

TINY = dict(embedding_dim=8, batch_size=256, max_epochs=4, early_stopping=False, random_state=0)
SLICES = [slice(0, 3), slice(3, 5)]


def _fit_data(users, items, n_users, n_items, features, availability):
    """The FitData of a hand-built batch over the two modalities of SLICES."""
    return FitData(users=users, items=items, targets=None, n_users=n_users, n_items=n_items,
                   user_degree=torch.bincount(users, minlength=n_users).float(),
                   item_degree=torch.bincount(items, minlength=n_items).float(), features=features,
                   feature_slices={"a": SLICES[0], "b": SLICES[1]}, availability=availability,
                   generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def synthetic(new_item_split):
    """conftest's new-item split: ``(bunch, train, new)``."""
    data, train, _, _, new = new_item_split
    return data, train, new


def _pair(avail):
    """A plain model and an availability-aware one with the same draws; the aware content has
    the availability columns appended."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 5, generator=g)
    plain = MultimodalContentModel(4, x, SLICES, dim=3, generator=torch.Generator().manual_seed(1))
    content = torch.cat([x, torch.as_tensor(avail, dtype=torch.float32)], 1)
    aware = MultimodalContentModel(4, content, SLICES, dim=3, generator=torch.Generator().manual_seed(1),
                                   availability_columns=True)
    return x, plain, aware


AVAIL = [[1, 1], [1, 0], [0, 1], [1, 1], [1, 0], [1, 1]]


def test_aware_model_starts_as_the_plain_one():
    _, plain, aware = _pair(AVAIL)
    assert torch.equal(aware.fill_scale, torch.ones(2)) and torch.equal(aware.fill_token, torch.zeros(2, 3))
    assert torch.equal(aware.modality_vectors(), plain.modality_vectors())
    assert torch.equal(aware.score_users(torch.tensor([0, 2])), plain.score_users(torch.tensor([0, 2])))
    assert plain.fill_scale is None and "availability_columns=True" in repr(aware)


def test_missing_modality_gets_scale_and_token_by_hand():
    x, plain, aware = _pair(AVAIL)
    with torch.no_grad():
        aware.fill_scale.copy_(torch.tensor([0.5, 2.0]))
        aware.fill_token.copy_(torch.tensor([[1.0, 0.0, -1.0], [0.0, 3.0, 0.0]]))
    c, got = plain.modality_vectors(), aware.modality_vectors()
    expected = c.clone()
    expected[1, 1] = 2.0 * c[1, 1] + torch.tensor([0.0, 3.0, 0.0])     # item 1 lacks modality 1
    expected[2, 0] = 0.5 * c[2, 0] + torch.tensor([1.0, 0.0, -1.0])    # item 2 lacks modality 0
    expected[4, 1] = 2.0 * c[4, 1] + torch.tensor([0.0, 3.0, 0.0])
    torch.testing.assert_close(got, expected)
    # lost_vectors: every modality as if filled; the availability columns are not needed
    lost = aware.lost_vectors(x[:2])
    torch.testing.assert_close(lost, c[:2] * torch.tensor([0.5, 2.0]).view(1, 2, 1) + aware.fill_token)
    torch.testing.assert_close(plain.lost_vectors(x[:2]), c[:2])
    for m in range(2):                                             # one modality at a time
        torch.testing.assert_close(aware.lost_vectors(x[:4], modality=m), aware.lost_vectors(x[:4])[:, m])
        torch.testing.assert_close(plain.lost_vectors(x[:4], modality=m), c[:4, m])
    # a new item passed by its content (with its availability columns) scores like the catalog one
    users = torch.tensor([0, 3])
    torch.testing.assert_close(aware.score_new_items(users, aware.features[[2, 1]]),
                               aware.score_users(users)[:, [2, 1]])


def test_aware_model_checks_its_columns():
    x, _, aware = _pair(AVAIL)
    with pytest.raises(ValueError, match="availability columns"):
        aware.extract(x)                                           # the indicators are missing
    with pytest.raises(ValueError, match="availability columns"):
        MultimodalContentModel(4, x, SLICES, availability_columns=True)
    with pytest.raises(ValueError, match="slices"):
        MultimodalContentModel(4, x, availability_columns=True)


def test_batch_loss_uses_the_fill_token_in_missing_mixtures_by_hand():
    g = torch.Generator().manual_seed(0)
    n_users, n_items = 5, 7
    x = torch.rand(n_items, 5, generator=g)
    avail = torch.ones(n_items, 2, dtype=torch.bool)
    avail[3, 0] = False                                            # a training item without modality a
    content = torch.cat([x, avail.float()], 1)
    users, items = torch.tensor([0, 1, 2, 3, 4, 0]), torch.tensor([2, 2, 3, 0, 5, 1])
    data = _fit_data(users, items, n_users, n_items, content, avail)
    module = MultimodalContentModel(n_users, content, SLICES, dim=4, availability_columns=True,
                                    generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        module.fill_scale.copy_(torch.tensor([0.7, 1.3]))
        module.fill_token.copy_(torch.randn(2, 4, generator=g))
    est = MILKRecommender(n_negatives=2, alignment_weight=0.0, invariance_weight=3.0, l2_embedding=0.0,
                          mixtures="missing", missing_rate=0.5, missing_fill="mean",
                          negative_pool="all", availability_aware=True)
    est.modalities_ = ("a", "b")
    est._fill_values = {"a": np.array([0.1, 0.2, 0.3]), "b": np.array([0.5, -0.5])}
    loss, _ = est._batch_objective(module, data)(torch.tensor([0, 1, 2, 4]))

    replay = torch.Generator().manual_seed(0)
    neg = torch.randint(0, n_items, (4, 2), generator=replay)
    u, pos = module.user_vectors(users[[0, 1, 2, 4]]), items[[0, 1, 2, 4]]
    distinct = torch.unique(torch.cat([pos, neg.reshape(-1)]))
    masks = torch.rand((2, len(distinct)), generator=replay) < 0.5
    fill = module.fill_scale.view(2, 1) * module._linear(torch.tensor([[0.1, 0.2, 0.3, 0.5, -0.5]]))[0] \
        + module.fill_token
    c = module._linear(x)
    c[3, 0] = 0.7 * c[3, 0] + module.fill_token[0]                 # the truly missing block
    risks = []
    for env in range(3):
        item = c.clone()
        if env:
            item[distinct[masks[env - 1]], env - 1] = fill[env - 1]
        item = item.mean(1)
        s_pos = (u * item[pos]).sum(1, keepdim=True)
        risks.append(F.softplus((u.unsqueeze(1) * item[neg]).sum(-1) - s_pos).mean())
    risks = torch.stack(risks)
    assert 3 in pos.tolist() and 0 < masks.sum() < masks.numel()
    torch.testing.assert_close(loss, risks.sum() + 3.0 * risks.var())


def test_aware_fit_learns_tokens_only_from_lost_modalities(synthetic):
    data, train, new = synthetic
    feats = data.item_features
    model = MILKRecommender(**TINY, availability_aware=True).fit(train, item_features=feats)
    d = sum(feats.dims.values())
    content = model.module_.features
    assert content.shape == (feats.n_items, d + 2)
    np.testing.assert_array_equal(content[:, d:].numpy(), feats.availability.astype(np.float32))
    assert model.module_.fill_token.detach().abs().max() > 0        # trained by the missing mixtures
    # no item lacks a modality and no mixture simulates a loss: nothing trains the token
    plain = MILKRecommender(**TINY, availability_aware=True, mixtures="none").fit(train, item_features=feats)
    assert torch.equal(plain.module_.fill_token.detach(), torch.zeros(2, 8))
    assert torch.equal(plain.module_.fill_scale.detach(), torch.ones(2))


def test_aware_new_items_after_fit_and_pickle(synthetic):
    data, train, new = synthetic
    warm = np.unique(train["item"])
    model = MILKRecommender(**TINY, availability_aware=True).fit(
        train, item_features=data.item_features.reindex(warm))
    ftmt = data.item_features.with_missing(0.5, items=new["test"], random_state=0)
    recs = model.recommend([0, 1], n=4, items=new["test"], item_features=ftmt)
    again = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(again.recommend([0, 1], n=4, items=new["test"], item_features=ftmt), recs)
    # an item scored after fit uses its own availability: losing a modality changes its score
    # exactly as the token and scale say
    lost = [i for i in new["test"] if not ftmt.availability[ftmt.index_of([i])[0]].all()][0]
    with torch.no_grad():
        model.module_.fill_token.add_(1.0)
    frame = pd.DataFrame({"user": [0], "item": [lost]})
    after = model.predict(frame, item_features=ftmt)
    with torch.no_grad():
        model.module_.fill_token.sub_(1.0)
    before = model.predict(frame, item_features=ftmt)
    u = model.module_.user_vectors(torch.tensor([model._user_index.get_indexer([0])[0]]))[0]
    n_lost = int((~ftmt.availability[ftmt.index_of([lost])[0]]).sum())
    np.testing.assert_allclose(after - before, n_lost * float(u.detach().sum()) / 2, rtol=1e-4)
    complete = [i for i in new["test"] if ftmt.availability[ftmt.index_of([i])[0]].all()][0]
    frame = pd.DataFrame({"user": [0], "item": [complete]})
    unchanged = model.predict(frame, item_features=ftmt)
    with torch.no_grad():
        model.module_.fill_token.add_(1.0)
    np.testing.assert_array_equal(model.predict(frame, item_features=ftmt), unchanged)


# ---------------------------------------------------------------------- defaults
def test_defaults_never_touch_new_items_in_training(synthetic, monkeypatch):
    """At its defaults, MILK's training steps only see the content of items with training
    interactions (negatives from the warm pool, imputation fitted on them)."""
    data, train, new = synthetic
    seen = []
    original = MultimodalContentModel.batch_modality_vectors

    def spy(self, items):
        seen.append(items.detach().clone())
        return original(self, items)

    monkeypatch.setattr(MultimodalContentModel, "batch_modality_vectors", spy)
    model = MILKRecommender(embedding_dim=8, max_epochs=3, early_stopping=False, random_state=0,
                            batch_size=128)
    model.fit(train, item_features=data.item_features)
    touched = model.item_ids_[torch.unique(torch.cat(seen)).numpy()]
    assert len(touched) and not set(touched) & (set(new["validation"]) | set(new["test"]))
    # the paper's pool would draw them
    seen.clear()
    MILKRecommender(embedding_dim=8, max_epochs=3, early_stopping=False, random_state=0, batch_size=128,
                    negative_pool="all").fit(train, item_features=data.item_features)
    assert set(model.item_ids_[torch.unique(torch.cat(seen)).numpy()]) & set(new["test"])


def test_missing_mixtures_with_per_item_imputation_by_hand():
    """Each masked item's lost modality is its own imputation (only masked pairs are extracted)."""
    from invrec import ItemFeatures
    from invrec.multimodal import CrossModalImputer

    rng = np.random.default_rng(0)
    n_users, n_items = 5, 30
    feats = ItemFeatures({"a": rng.normal(size=(n_items, 3)), "b": rng.normal(size=(n_items, 2))})
    imputer = CrossModalImputer().fit(feats.normalize())
    x = torch.as_tensor(feats.normalize().concat()[0], dtype=torch.float32)
    fill_x = torch.as_tensor(imputer.predict(feats.normalize()).concat()[0], dtype=torch.float32)
    users, items = torch.tensor([0, 1, 2, 3, 4, 0]), torch.tensor([2, 2, 3, 0, 5, 1])
    data = _fit_data(users, items, n_users, n_items, x, None)
    module = MultimodalContentModel(n_users, x, SLICES, dim=4, generator=torch.Generator().manual_seed(1))
    est = MILKRecommender(n_negatives=3, alignment_weight=0.0, invariance_weight=2.0, l2_embedding=0.0,
                          missing_rate=0.5, negative_pool="all")
    est.modalities_, est.imputer_, est.item_features_ = ("a", "b"), imputer, feats
    loss, _ = est._batch_objective(module, data)(torch.arange(6))

    replay = torch.Generator().manual_seed(0)
    neg = torch.randint(0, n_items, (6, 3), generator=replay)
    u = module.user_vectors(users)
    distinct = torch.unique(torch.cat([items, neg.reshape(-1)]))
    masks = torch.rand((2, len(distinct)), generator=replay) < 0.5
    c, lost = module.modality_vectors(), module.extract(fill_x)
    risks = []
    for env in range(3):
        item = c.clone()
        if env:
            hit = distinct[masks[env - 1]]
            item[hit, env - 1] = lost[hit, env - 1]
        item = item.mean(1)
        s_pos = (u * item[items]).sum(1, keepdim=True)
        risks.append(F.softplus((u.unsqueeze(1) * item[neg]).sum(-1) - s_pos).mean())
    risks = torch.stack(risks)
    assert 0 < masks.sum() < masks.numel()
    torch.testing.assert_close(loss, risks.sum() + 2.0 * risks.var())
