"""The one fused item model of PaInvRL and EIOR, its fusion setting and its objective; and the
former names that keep working or say what replaced them."""

import importlib
import math
import sys
import warnings

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from invrec import EIORRecommender, MILKRecommender, PaInvRLRecommender
from invrec.invariance import (FUSION_MODES, POOLED, FusedItemModel, FusedObjective, Fusion,
                               environment_risk)


def model(fusion="attention", mask=(1.0, 1.0, 0.0, 0.0, 0.5), **kwargs):
    g = torch.Generator().manual_seed(0)
    features = torch.rand(6, 5, generator=g)
    return FusedItemModel(3, 6, features, torch.tensor(mask), id_dim=2, content_dim=3, fusion=fusion,
                          init_std=0.5, generator=g, **kwargs)


# ---------------------------------------------------------------------- the model
@pytest.mark.parametrize("mode, expected", [("invariant", (1.0, 0.0)), ("variant", (0.0, 1.0)),
                                            ("fixed", (0.5, 0.5))])
def test_constant_fusions_weigh_the_masked_parts(mode, expected):
    m = model(mode)
    x = m.features
    z_inv = F.linear(x * m.mask, m.invariant.weight, m.invariant.bias)
    z_var = F.linear(x * (1 - m.mask), m.variant.weight, m.variant.bias)
    inv, var, fused, weights = m.content_parts(x)
    torch.testing.assert_close(inv, z_inv)
    torch.testing.assert_close(var, z_var)
    assert weights.tolist() == [list(expected)] * 6
    if mode == "invariant":
        torch.testing.assert_close(fused, z_inv)


def test_global_fusion_is_one_learned_pair():
    m = model(Fusion("global", gate=False))
    with torch.no_grad():
        m.fusion.logits.copy_(torch.tensor([math.log(3.0), 0.0]))
    inv, var, fused, weights = m.content_parts(m.features)
    torch.testing.assert_close(weights, torch.tensor([[0.75, 0.25]] * 6))
    torch.testing.assert_close(fused, 0.75 * inv + 0.25 * var)


def test_a_str_fusion_is_its_mode_with_the_default_settings():
    assert model("global").fusion.gate is False and model("global").fusion.mode == "global"
    # in an estimator a str is the method's default fusion in that mode: EIOR's is gated
    assert EIORRecommender(fusion="global")._part("fusion").get_params() == Fusion("global", gate=True).get_params()
    assert PaInvRLRecommender(fusion="global")._part("fusion").get_params() == Fusion("global").get_params()
    assert set(FUSION_MODES) == {"attention", "global", "fixed", "invariant", "variant"}


def test_invariant_part_ignores_masked_dimensions():
    m = model("invariant", mask=(1.0, 0.0, 1.0, 1.0, 1.0), item_id_weight=0.0)
    users = torch.tensor([0, 1])
    before = m.score_users(users)
    m.features[:, 1] += 5.0                      # a masked (spurious) dimension moves
    torch.testing.assert_close(m.score_users(users), before)
    m.features[:, 0] += 5.0                      # a kept one changes the scores
    assert not torch.allclose(m.score_users(users), before)


def test_item_id_weight_scales_the_id_part():
    m = model(item_id_weight=0.5)
    torch.testing.assert_close(m.item_vectors()[:, :2], 0.5 * m.item_embedding)


def test_part_scores_are_the_fused_invariant_and_variant_dot_products():
    m = model()
    users, items, negs = torch.tensor([0, 2, 1]), torch.tensor([1, 4, 5]), torch.tensor([0, 3])
    inv, var, fused, _ = m.content_parts(m.features)
    u = m.user_vectors(users)
    for (pos, neg), content in zip(m.part_scores(users, items, negs), (fused, inv, var)):
        vectors = torch.cat([m.item_embedding, content], 1)
        torch.testing.assert_close(pos, (u * vectors[items]).sum(1))
        torch.testing.assert_close(neg, u @ vectors[negs].T)
    # the fused part is the model's own score; parts come in the order asked
    torch.testing.assert_close(m.part_scores(users, items, parts=("fused",))[0][0], m(users, items))
    (only_var, none), = m.part_scores(users, items, parts=("variant",))
    assert none is None
    torch.testing.assert_close(only_var, (u * torch.cat([m.item_embedding, var], 1)[items]).sum(1))


def test_a_model_without_content_is_an_id_model():
    m = FusedItemModel(3, 4, torch.zeros(4, 0), torch.ones(0), id_dim=2, content_dim=3)
    assert m.content_dim == 0 and m.fusion is None
    torch.testing.assert_close(m.score_users(torch.arange(3)), m.user_embedding @ m.item_embedding.T)
    assert m.attention_weights().tolist() == [[1.0, 0.0]] * 4
    assert m.score_new_items(torch.tensor([0]), torch.zeros(2, 0)).shape == (1, 2)


def test_weight_decay_groups_free_the_fusion_and_a_head():
    m = model()
    m.head = torch.nn.Linear(1, 1)
    groups = m.l2_parameter_groups(0.5, 0.25, 3.0, scale=0.5)
    assert [g["weight_decay"] for g in groups] == [0.5, 1.5, 0.25, 0.0]
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in m.parameters())          # each once
    assert {id(p) for p in groups[3]["params"]} == {id(p) for p in [*m.fusion.parameters(), *m.head.parameters()]}


# ---------------------------------------------------------------------- the objective
def test_environment_risk_by_hand():
    losses, env = torch.tensor([1.0, 3.0, 5.0, 7.0]), torch.tensor([0, 0, 2, 2])
    # risks (2, 6) of the two environments with rows: mean 4, variance (V-REx, population) 4
    assert environment_risk(losses, env, 4, 0.0).item() == 4.0
    assert environment_risk(losses, env, 4, 0.5).item() == pytest.approx(4.0 + 0.5 * 4.0)


def test_fused_objective_by_hand():
    m = model()
    per_part = {"fused": torch.tensor([1.0, 3.0, 5.0, 7.0]), "invariant": torch.tensor([2.0, 2.0, 4.0, 4.0]),
                "variant": torch.tensor([1.0, 1.0, 1.0, 5.0])}
    asked = []

    def part_losses(rows, parts):
        asked.append(tuple(parts))
        return [per_part[p][rows] for p in parts]

    env, items, rows = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2, 3]), torch.arange(4)
    loss, logs = FusedObjective(w_irm=0.5, w_erm=0.25, irm_weight=1.0).build(m, items, part_losses, env, 2)(rows)
    # fuse: risks (2, 6) -> 4 + 4; irm: risks (2, 4) -> 3 + 1; erm: pooled mean 2
    assert logs["loss_fuse"].item() == pytest.approx(8.0) and logs["loss_irm"].item() == pytest.approx(4.0)
    assert loss.item() == pytest.approx(8.0 + 0.5 * 4.0 + 0.25 * 2.0)
    loss, logs = POOLED.build(m, items, part_losses, env, 2)(rows)
    assert asked[-1] == ("fused",) and loss.item() == pytest.approx(4.0) and set(logs) == {"loss_fuse", "attention_inv"}
    torch.testing.assert_close(logs["attention_inv"], m.attention_weights()[:4, 0].mean())


# ---------------------------------------------------------------------- the estimators hold them
def test_painvrl_and_eior_share_the_fusion_setting_and_its_search_names():
    for estimator, default in ((PaInvRLRecommender(), Fusion("invariant")), (EIORRecommender(), Fusion(gate=True))):
        params = estimator.get_params()
        assert {k: v for k, v in params.items() if k.startswith("fusion__")} == {
            f"fusion__{k}": v for k, v in default.get_params().items()}
    # a str fusion becomes its Fusion when a nested setting is searched
    spelled = PaInvRLRecommender(fusion="global").set_params(fusion__gate=False).fusion
    assert spelled.get_params() == Fusion("global", gate=False).get_params()
    assert EIORRecommender().set_params(objective__w_erm=0.0).objective.get_params()["w_erm"] == 0.0
    # a round trip of get_params keeps None parts None; a changed nested value makes the part
    params = PaInvRLRecommender().get_params()
    assert PaInvRLRecommender().set_params(**params).fusion is None
    changed = PaInvRLRecommender().set_params(**{**params, "fusion__prior": 0.25}).fusion
    assert changed.get_params() == Fusion("invariant", prior=0.25).get_params()


# ---------------------------------------------------------------------- former names
@pytest.mark.parametrize("old, new", [("invrec.nn.attention", "invrec.invariance.fusion"),
                                      ("invrec.nn.environments", "invrec.invariance.environments"),
                                      ("invrec.imputation", "invrec.multimodal.imputation"),
                                      ("invrec.nn.mixup", "invrec.multimodal.mixup")])
def test_former_module_paths_import_the_new_modules_with_a_warning(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


@pytest.mark.parametrize("old, new", [("UltraGCNScorer", "UltraGCNModel"), ("AttentionFusion", "AttentionFusion"),
                                      ("MultimodalContentScorer", "MultimodalContentModel"),
                                      ("sample_cyclic_environments", "sample_cyclic_mixtures")])
def test_former_names_in_nn_still_resolve_with_a_warning(old, new):
    import invrec.nn

    with pytest.warns(DeprecationWarning, match=new):
        value = getattr(invrec.nn, old)
    assert value.__name__ == new


@pytest.mark.parametrize("name", ["ConvertScorer", "ConvertModule", "RegularizationTerms"])
def test_merged_names_fail_naming_what_replaced_them(name):
    with pytest.raises(ImportError, match="FusedItemModel|l2_parameter_groups"):
        exec(f"from invrec.nn import {name}", {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ImportError, match="FusedItemModel"):
            exec("from invrec.nn.fusion import ConvertScorer", {})


def test_milk_mixtures_former_spelling():
    with pytest.raises(TypeError, match="mixtures="):
        MILKRecommender(environments="missing")
    assert MILKRecommender(mixtures="missing").mixtures == "missing"
    model = MILKRecommender()
    model.mixture_risks_ = np.zeros((2, 3))
    with pytest.warns(FutureWarning, match="mixture_risks_"):
        assert model.environment_risks_.shape == (2, 3)
