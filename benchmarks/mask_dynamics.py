"""What the default mask's ranking comes from: training dynamics, not invariance (issue 15).

PaInvRL at its defaults (cut mask, invariant fusion, finishing budget) on the generator's
``agree`` and ``disagree`` regimes, with the mask stage's budget varied: epochs of mask learning
at the estimator's batch size, and the backbone batch size (the mask stage trains with it), so
the number of mask steps goes from a handful to a few hundred. Two backbones: the library's
defaults (``batch_size=4096``: one step per epoch on the generator's 3,600 interactions) and the
synthetic backbone of ``invariance.py`` (``SYNTH_BACKBONE``, batch 256: 14 steps per epoch).
Reported per setting, mean over seeds: mask steps per outer iteration, the learned mask's ROC AUC
against the truth, spurious and invariant dimensions the cut mask keeps, OOD NDCG@20 over the ERM
baseline of the same backbone.

With the mask's penalty invisible (InvRL's, ``penalty_probe.py``) and the environments random
(ARI ~0, ``environment_probe.py``), the mask objective is ERM on gated content: which gates
open first depends on the steps taken, and the AUC moves with them.

Usage (from the repository root; about 4 minutes on one thread)::

    python benchmarks/mask_dynamics.py [--seeds 0 1 2] [--regimes agree disagree]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from invariance import SYNTH_BACKBONE  # noqa: E402
from shift import final_mask  # noqa: E402

#: (backbone name, backbone settings, mask epochs) rows.
ROWS = [("defaults", {}, epochs) for epochs in (3, 10, 40)] + \
       [("defaults, batch 512", {"batch_size": 512}, 10)] + \
       [("SYNTH_BACKBONE", SYNTH_BACKBONE, epochs) for epochs in (3, 10, 20)]


def main(argv=None):
    from invrec import PaInvRLRecommender
    from invrec.baselines import UltraGCNRecommender
    from invrec.datasets import make_multimodal_interactions
    from invrec.diagnostics import mask_recovery
    from invrec.invariance import MaskLearning

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--regimes", nargs="+", default=["agree", "disagree"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("| regime | backbone | mask epochs | mask steps / outer | mask AUC | spurious kept | "
          "invariant kept | OOD / ERM |")
    print("|---|---|---|---|---|---|---|---|")
    for regime in args.regimes:
        datasets = [make_multimodal_interactions(regime=regime, random_state=s) for s in args.seeds]
        erm = {}
        for name, backbone, epochs in ROWS:
            rows = []
            for seed, data in zip(args.seeds, datasets):
                X = data.interactions[["user", "item"]]
                common = {**backbone, "random_state": seed, "device": "cpu"}
                if (name, seed) not in erm:
                    base = UltraGCNRecommender(**common).fit(X, item_features=data.item_features)
                    erm[name, seed] = base.score(data.test_ood)
                model = PaInvRLRecommender(**common, mask=MaskLearning(epochs=epochs, threshold="auto"))
                model.fit(X, item_features=data.item_features)
                rec = mask_recovery(model.invariant_mask_, data.invariant_mask, final_mask=final_mask(model))
                batch = common.get("batch_size", model.batch_size)
                rows.append({"steps": epochs * math.ceil(0.9 * len(X) / batch), "auc": rec["auc"],
                             "kept": rec["n_spurious_kept"], "inv": rec["n_invariant_kept"],
                             "ratio": model.score(data.test_ood) / erm[name, seed]})
            mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            print(f"| {regime} | {name} | {epochs} | {mean['steps']:.0f} | {mean['auc']:.3f} | "
                  f"{mean['kept']:.1f} / 20 | {mean['inv']:.1f} / 20 | {mean['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
