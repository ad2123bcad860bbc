"""Probe for the EIOR assembly: where does a fused loss put the attention, given the true mask?

Usage::

    python benchmarks/fusion_probe.py [--seeds 0 1 2] [--epochs 60] [--threads 1]

On the synthetic generator (``invrec.datasets.make_multimodal_interactions``) the *oracle*
invariant mask stands in for PaInvRL's learned one. An implicit-feedback fused model, the
library's :class:`invrec.invariance.FusedItemModel` (ids, invariant and variant towers, fused by an
``AttentionFusion``; the same model as ``benchmarks/ratings.py``, there with a rating head), is
trained with ``ultragcn_loss`` on its three scores (:meth:`~invrec.invariance.FusedItemModel.part_scores`)
as ``L_fuse + 0.5 L_inv + 0.5 L_var``, all pooled over environments (no IRM penalty: that part
comes with PaInvRL), with one Adam weight decay (1e-4) on every parameter. The fusion is
``Fusion(mode, self_attention=True, gate=False)``: the settings this probe has always used (it
built ``AttentionFusion(dim, mode=mode)``, whose defaults those are), not ``Fusion``'s defaults,
so that its numbers stay comparable with the earlier runs. Two training regimes with
the same mean spurious strength: environments that agree (3, 4.5, 6: the generator's default) and
environments that disagree (-1.5, 4.5, 10.5). Printed per regime and fusion mode: the mean
invariant weight over items and the IID / OOD test NDCG@20 (training items excluded).

It answers one design question of ``docs/eior_plan.md``: can the attention, learning from a
*pooled* fused loss only, favour the invariant part when environments disagree (a claim of the
issue), or does it need an environment-aware fused loss?
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from invrec.datasets import make_multimodal_interactions
from invrec.invariance import PARTS, FusedItemModel, Fusion
from invrec.metrics import evaluate_ranking
from invrec.nn import degree_weights, make_adam, sample_negatives, ultragcn_loss
from invrec.utils.ranking import chunked_top_k, rankings_to_frame
import scipy.sparse as sp

REGIMES = {"agree": (3.0, 4.5, 6.0), "disagree": (-1.5, 4.5, 10.5)}
MODES = ("attention", "global", "invariant", "variant", "fixed")
CFG = dict(id_dim=32, content_dim=32, batch_size=512, lr=1e-2, n_negatives=50, weight_decay=1e-4,
           w_inv=0.5, w_var=0.5)


def fusion(mode):
    """The probe's fusion of ``mode``: self-attention, no gate (``AttentionFusion``'s own defaults,
    which the probe used before ``Fusion`` existed), not the estimators' ``Fusion()`` defaults."""
    return Fusion(mode, self_attention=True, gate=False)


def build_model(n_users, n_items, features, mask, mode, generator):
    """The fused item model of ``CFG``'s widths over ``features`` read through ``mask``."""
    return FusedItemModel(n_users, n_items, torch.as_tensor(features, dtype=torch.float32),
                          torch.as_tensor(mask, dtype=torch.float32), id_dim=CFG["id_dim"],
                          content_dim=CFG["content_dim"], fusion=fusion(mode), init_std=0.01,
                          generator=generator)


def run(seed, regime, mode, epochs):
    data = make_multimodal_interactions(spurious_strengths=REGIMES[regime], random_state=seed)
    feats = data.item_features.normalize()
    item_ids = np.asarray(feats.item_ids)
    x = feats.concat()[0]
    mask = np.concatenate([data.invariant_mask[m] for m in feats.dims]).astype(np.float32)
    train = data.interactions
    users = pd.Index(np.sort(pd.unique(train["user"])))
    items = pd.Index(item_ids)
    u = torch.as_tensor(users.get_indexer(train["user"]))
    i = torch.as_tensor(items.get_indexer(train["item"]))
    g = torch.Generator().manual_seed(seed)
    model = build_model(len(users), len(items), x, mask, mode, g)
    beta_u, beta_i = degree_weights(np.bincount(u, minlength=len(users)),
                                    np.bincount(i, minlength=len(items)))
    opt = make_adam(model.parameters(), CFG["lr"], weight_decay=CFG["weight_decay"])
    for _ in range(epochs):
        order = torch.randperm(len(u), generator=g)
        for start in range(0, len(u), CFG["batch_size"]):
            b = order[start:start + CFG["batch_size"]]
            neg = sample_negatives(len(items), len(b), CFG["n_negatives"], generator=g)
            losses = [ultragcn_loss(pos, negs, beta_u[u[b]], beta_i[i[b]], beta_i[neg])
                      for pos, negs in model.part_scores(u[b], i[b], neg, PARTS)]
            loss = losses[0] + CFG["w_inv"] * losses[1] + CFG["w_var"] * losses[2]   # PARTS' order
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        fused, weights = model.item_vectors(), model.attention_weights()
        user_vecs = model.user_vectors()
    seen = sp.csr_array((np.ones(len(u)), (u.numpy(), i.numpy())), shape=(len(users), len(items)))
    result = {"seed": seed, "regime": regime, "mode": mode,
              "invariant_weight": float(weights[:, 0].mean()),
              "invariant_weight_std": float(weights[:, 0].std())}
    for name, test in (("iid", data.test), ("ood", data.test_ood)):
        test_users = pd.unique(test["user"])
        top, vals = chunked_top_k(lambda rows: user_vecs[torch.as_tensor(rows)] @ fused.T,
                                  users.get_indexer(test_users), 20, exclude=seen)
        recs = rankings_to_frame(test_users, top, vals, item_ids=item_ids)
        result[f"ndcg20_{name}"] = float(
            evaluate_ranking(recs, test[["user", "item"]], k=20, metrics="ndcg").loc["all", "ndcg@20"])
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = [run(s, r, m, args.epochs) for r in REGIMES for m in MODES for s in args.seeds]
    frame = pd.DataFrame(rows)
    table = frame.groupby(["regime", "mode"], sort=False)[
        ["invariant_weight", "invariant_weight_std", "ndcg20_iid", "ndcg20_ood"]].mean()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fusion_probe.json").write_text(json.dumps(rows, indent=1))
    lines = ["| regime | mode | invariant weight (mean over items) | its std over items "
             "| NDCG@20 IID | NDCG@20 OOD |", "|---|---|---|---|---|---|"]
    lines += [f"| {r} | {m} | " + " | ".join(f"{v:.4f}" for v in vals) + " |"
              for (r, m), vals in zip(table.index, table.to_numpy())]
    text = "\n".join(lines) + (f"\n\n{len(rows)} fits, {time.perf_counter() - t0:.0f} s, seeds "
                               f"{args.seeds}, epochs {args.epochs}, means over seeds\n")
    (out / "fusion_probe.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
