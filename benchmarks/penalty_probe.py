"""Do the mask objectives point the right way? Their gradients on the gates, against the truth.

For each shift regime of the generator and seed, an ERM reference model (UltraGCN at the
``SYNTH_BACKBONE`` settings of ``invariance.py``) is fitted, the stochastic gates are put half
open (``mu = 0``, PaInvRL's start) and, over all training rows with the generator's TRUE
environments, the probe computes what the mask stage's batch objectives would send to the gates
(:class:`invrec.invariance.MaskObjectives`):

* the ERM risk and each penalty's value (``invrl``: InvRL's gradient variance; ``irmv1``;
  ``vrex``) and the gradient norm of each on ``mu``;
* the cosine between the ERM gradient and the penalty gradient (1: the two objectives are the
  same function to the gates, and the MGDA weight between them is arbitrary);
* the AUC of each descent direction ``-grad`` against the true invariant dimensions (1: a step
  opens the invariant gates and closes the spurious ones; 0.5: blind; 0: the wrong way).

Usage (from the repository root; about a minute)::

    python benchmarks/penalty_probe.py --regimes agree disagree --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from invariance import SYNTH_BACKBONE  # noqa: E402

PENALTIES = ("invrl", "irmv1", "vrex")


def probe(regime, seed, n_negatives=20):
    from invrec.baselines import UltraGCNRecommender
    from invrec.datasets import make_multimodal_interactions
    from invrec.invariance import MaskObjectives, StochasticGateMask
    from invrec.nn import interaction_degree_weights

    data = make_multimodal_interactions(regime=regime, random_state=seed)
    est = UltraGCNRecommender(**SYNTH_BACKBONE, random_state=seed, device="cpu")
    est.fit(data.interactions[["user", "item"]], item_features=data.item_features)
    model = est.module_
    table = data.interactions
    users = torch.as_tensor(pd.Index(est.user_ids_).get_indexer(table["user"]), dtype=torch.long)
    items = torch.as_tensor(pd.Index(est.item_ids_).get_indexer(table["item"]), dtype=torch.long)
    env = torch.as_tensor(pd.factorize(table["environment"], sort=True)[0], dtype=torch.long)
    n_envs = int(env.max()) + 1
    truth = np.concatenate([data.invariant_mask[m] for m in est.item_features_.modalities])
    beta_u, beta_i = interaction_degree_weights(users, items, est.n_users_, est.n_items_)
    g = torch.Generator().manual_seed(seed)
    negatives = torch.randint(0, est.n_items_, (n_envs, n_negatives), generator=g)
    gate = StochasticGateMask(model.n_features, sigma=0.0).eval()
    row = {"regime": regime, "seed": seed}
    grads = {}
    for penalty in PENALTIES:
        objectives = MaskObjectives(penalty, n_envs)
        erm, _, value = objectives(model, gate, users, items, env, negatives, beta_u, beta_i,
                                   penalty_weight=1.0, mask_l2=0.0)
        (g_erm,) = torch.autograd.grad(erm, gate.mu, retain_graph=True)
        (g_pen,) = torch.autograd.grad(value, gate.mu, allow_unused=True)
        g_pen = torch.zeros_like(gate.mu) if g_pen is None else g_pen
        grads["erm"] = g_erm
        grads[penalty] = g_pen
        row[f"{penalty}_value"] = float(value.detach())
        row[f"{penalty}_grad_norm"] = float(g_pen.norm())
        cos = torch.nn.functional.cosine_similarity(g_erm, g_pen, dim=0)
        row[f"{penalty}_cos_erm"] = float(cos)
    row["erm_value"] = float(erm.detach())
    row["erm_grad_norm"] = float(grads["erm"].norm())
    for name, grad in grads.items():
        direction = -grad.detach().numpy()
        row[f"{name}_auc"] = float(roc_auc_score(truth, direction)) if np.ptp(direction) > 0 else 0.5
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--regimes", nargs="+", default=["agree", "disagree", "none", "item"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [probe(regime, seed) for regime in args.regimes for seed in args.seeds]
    frame = pd.DataFrame(rows)
    print("| regime | ERM grad norm | ERM dir. AUC | " + " | ".join(
        f"{p} value | {p} grad / ERM grad | {p} cos(ERM) | {p} dir. AUC" for p in PENALTIES) + " |")
    print("|---" * (3 + 4 * len(PENALTIES)) + "|")
    for regime, part in frame.groupby("regime", sort=False):
        m = part.mean(numeric_only=True)
        cells = [f"{m['erm_grad_norm']:.2e}", f"{m['erm_auc']:.2f}"]
        for p in PENALTIES:
            cells += [f"{m[f'{p}_value']:.2e}", f"{m[f'{p}_grad_norm'] / m['erm_grad_norm']:.2e}",
                      f"{m[f'{p}_cos_erm']:.2f}", f"{m[f'{p}_auc']:.2f}"]
        print(f"| {regime} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
