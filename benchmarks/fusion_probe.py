"""Probe for the EIOR assembly: where does a fused loss put the attention, given the true mask?

Usage::

    python benchmarks/fusion_probe.py [--seeds 0 1 2] [--epochs 60] [--threads 1]

On the synthetic generator (``invrec.datasets.make_multimodal_interactions``) the *oracle*
invariant mask stands in for PaInvRL's learned one. An implicit-feedback fused model (the same
parts as ``benchmarks/ratings.py``: ``UltraGCNScorer`` ids and invariant tower, a variant tower,
``AttentionFusion``) is trained with ``ultragcn_loss`` as ``L_fuse + 0.5 L_inv + 0.5 L_var``, all
pooled over environments (no IRM penalty: that part comes with PaInvRL). Two training regimes with
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
from torch import nn

from invrec.datasets import make_multimodal_interactions
from invrec.metrics import evaluate_ranking
from invrec.nn import (AttentionFusion, UltraGCNScorer, degree_weights, make_adam,
                       sample_negatives, ultragcn_loss)
from invrec.utils.ranking import chunked_top_k, rankings_to_frame
import scipy.sparse as sp

REGIMES = {"agree": (3.0, 4.5, 6.0), "disagree": (-1.5, 4.5, 10.5)}
MODES = ("attention", "global", "invariant", "variant", "fixed")
CFG = dict(id_dim=32, content_dim=32, batch_size=512, lr=1e-2, n_negatives=50, weight_decay=1e-4,
           w_inv=0.5, w_var=0.5)


class FusedModel(nn.Module):
    def __init__(self, n_users, n_items, features, mask, mode, generator):
        super().__init__()
        self.backbone = UltraGCNScorer(n_users, n_items, features, id_dim=CFG["id_dim"],
                                       content_dim=CFG["content_dim"], generator=generator)
        self.variant = nn.Linear(features.shape[1], CFG["content_dim"])
        with torch.no_grad():
            self.variant.weight.copy_(torch.randn(self.variant.weight.shape, generator=generator) * 0.01)
            self.variant.bias.zero_()
        self.fusion = AttentionFusion(CFG["content_dim"], mode=mode, generator=generator)
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.float32))

    def item_parts(self, items=None):
        ids = self.backbone.item_embedding if items is None else self.backbone.item_embedding[items]
        x = self.backbone.features if items is None else self.backbone.features[items]
        z_inv = self.backbone.content_vectors(items, self.mask)
        z_var = self.variant(x * (1 - self.mask))
        out = self.fusion(z_inv, z_var)
        cat = lambda z: torch.cat([ids, z], -1)
        return cat(out.fused), cat(z_inv), cat(z_var), out.weights


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
    model = FusedModel(len(users), len(items), x, mask, mode, g)
    beta_u, beta_i = degree_weights(np.bincount(u, minlength=len(users)),
                                    np.bincount(i, minlength=len(items)))
    opt = make_adam(model.parameters(), CFG["lr"], weight_decay=CFG["weight_decay"])
    for _ in range(epochs):
        order = torch.randperm(len(u), generator=g)
        for start in range(0, len(u), CFG["batch_size"]):
            b = order[start:start + CFG["batch_size"]]
            neg = sample_negatives(len(items), len(b), CFG["n_negatives"], generator=g)
            cand = torch.cat([i[b], neg])
            fused, inv, var, _ = model.item_parts(cand)
            uv = model.backbone.user_vectors(u[b])
            losses = []
            for vec in (fused, inv, var):
                pos = (uv * vec[:len(b)]).sum(-1)
                negs = uv @ vec[len(b):].T
                losses.append(ultragcn_loss(pos, negs, beta_u[u[b]], beta_i[i[b]], beta_i[neg]))
            loss = losses[0] + CFG["w_inv"] * losses[1] + CFG["w_var"] * losses[2]
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        fused, _, _, weights = model.item_parts()
        user_vecs = model.backbone.user_vectors()
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
