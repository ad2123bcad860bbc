"""The variant-view decorrelation of the fused model: exact maps on hand-built content."""

import numpy as np
import pytest
import torch

from invrec.invariance import FusedItemModel
from invrec.invariance.decorrelation import MIN_SHARE, variant_item_basis, variant_residual


def _content(n=60, seed=0):
    """Kept dims: one invariant (unrelated), one spurious copy of the variant dims' signal."""
    g = np.random.default_rng(seed)
    s = g.standard_normal(n)
    inv = g.standard_normal(n)
    x = np.stack([inv, 2.0 * s + 0.01 * g.standard_normal(n),                  # kept: invariant, spurious
                  s + 0.01 * g.standard_normal(n), -s + 0.01 * g.standard_normal(n)], axis=1)
    return torch.tensor(x), torch.tensor([1.0, 1.0, 0.0, 0.0])


def test_basis_is_the_leading_variant_direction_over_training_items():
    x, mask = _content()
    train = torch.arange(50)
    basis = variant_item_basis(x, mask, train)
    assert basis.shape == (60, 1)                      # s is the one direction above MIN_SHARE
    assert torch.allclose(basis.T @ basis, torch.ones(1, 1, dtype=basis.dtype), atol=1e-10)
    assert torch.count_nonzero(basis[50:]) == 0        # items without training rows: no loading
    centred = x[train, 2] - x[train, 2].mean()
    cosine = (basis[:50, 0] @ centred) / centred.norm()
    assert abs(float(cosine)) > 0.999


@pytest.mark.parametrize("mask", [[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
def test_no_variant_view_or_nothing_kept_gives_empty_maps(mask):
    x, _ = _content()
    mask = torch.tensor(mask)
    assert variant_item_basis(x, mask, torch.arange(60)).shape == (60, 0)
    mean, coef = variant_residual(x, mask, torch.arange(60))
    assert mean.numel() == 0 and coef.numel() == 0


def test_min_share_counts_components():
    x, mask = _content()
    x = x.clone()
    x[:, 3] = torch.tensor(np.random.default_rng(1).standard_normal(60))      # a second variant direction
    assert variant_item_basis(x, mask, torch.arange(60)).shape[1] == 2
    assert variant_item_basis(x, mask, torch.arange(60), min_share=0.9).shape[1] == 0
    assert 0 < MIN_SHARE < 0.5


def test_residual_removes_the_spurious_kept_dimension_and_keeps_the_invariant_one():
    x, mask = _content()
    model = FusedItemModel(3, 60, x, mask, id_dim=2, content_dim=2,
                           generator=torch.Generator().manual_seed(0)).decorrelate(torch.arange(60))
    read = model.residual_content(x)
    assert read[:, 1].std() < 0.05 * x[:, 1].std()          # the kept spurious dim: noise left
    # the invariant dim loses only its chance correlation with the variant view
    assert np.corrcoef(read[:, 0].numpy(), x[:, 0].numpy())[0, 1] > 0.98
    assert torch.equal(read[:, 2:], x[:, 2:])                 # the variant view as it was
    # hand check of the map: ridge regression of each kept dim on the centred variant view
    mean, coef = variant_residual(x, mask, torch.arange(60))
    xv = x[:, 2:] - x[:, 2:].mean(0)
    xk = x[:, :2] - x[:, :2].mean(0)
    expected = torch.linalg.solve(xv.T @ xv + 1e-3 * 60 * torch.eye(2, dtype=x.dtype), xv.T @ xk)
    assert torch.allclose(coef, expected) and torch.allclose(mean, x[:, 2:].mean(0))


def test_ids_read_by_the_scores_are_orthogonal_to_the_basis():
    x, mask = _content()
    model = FusedItemModel(4, 60, x, mask, id_dim=3, content_dim=2,
                           generator=torch.Generator().manual_seed(0))
    before = model.item_vectors().detach().clone()
    with torch.no_grad():
        model.item_embedding.add_(model.item_embedding.new_tensor(x[:, 2:3].numpy()).expand(60, 3))
    model.decorrelate(torch.arange(60), content=False)
    ids = model.item_ids()
    assert torch.allclose(model.id_basis.T @ ids, torch.zeros(1, 3, dtype=ids.dtype), atol=1e-10)
    # the scores read the projected ids, in every path
    users, items = torch.tensor([0, 1, 3]), torch.tensor([5, 7, 9])
    (pos, _), = model.part_scores(users, items, None, parts=("fused",))
    assert torch.allclose(pos, model(users, items))
    assert torch.allclose(model.score_users(users)[torch.arange(3), items], pos)
    assert torch.allclose(model.item_vectors(items)[:, :3], ids[items])
    assert not torch.allclose(before, model.item_vectors())


def test_content_free_model_ignores_decorrelate():
    model = FusedItemModel(2, 3, torch.zeros(3, 0), torch.ones(0), id_dim=2, content_dim=4)
    assert model.decorrelate(torch.arange(3)) is model
    assert model.id_basis.shape == (3, 0)
