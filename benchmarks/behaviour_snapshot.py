"""Seeded fits of every estimator, saved so that a refactor can show it changed no number.

Run it on the commit before a change and on the commit after, then compare::

    python benchmarks/behaviour_snapshot.py save /tmp/before     # on the old commit
    python benchmarks/behaviour_snapshot.py save /tmp/after      # on the new commit
    python benchmarks/behaviour_snapshot.py compare /tmp/before /tmp/after

Each configuration (the backbone with and without the item-item term, PaInvRL with attention and
with a hard mask and global fusion, MILK with cyclic and with missing-modality mixtures and
imputation, EIOR ranking and ratings with the default fusion and objective: ``Fusion()`` and
``FusedObjective()``, the settings of EIOR's former defaults) is fitted on the synthetic generator
(150 users x 120 items, 6 epochs, one thread) and its predictions on 500 pairs and top-10 lists for
20 users are saved. ``compare`` reports, per array, "equal" (bit for bit) or the largest difference.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def configurations():
    from invrec.baselines import UltraGCNRecommender
    from invrec.eior import EIORRecommender, EIORRegressor
    from invrec.invariance import EnvironmentInference, MaskLearning
    from invrec.milk import MILKRecommender
    from invrec.painvrl import PaInvRLRecommender

    small = dict(max_epochs=6, batch_size=256, embedding_dim=8, content_dim=8, random_state=0)

    def stages(weighting="mgda", threshold=None):
        return dict(environments=EnvironmentInference(3, max_rounds=2, epochs=2), n_outer_iter=2,
                    mask=MaskLearning(epochs=2, weighting=weighting, threshold=threshold))

    milk = dict(max_epochs=6, batch_size=256, embedding_dim=8, random_state=0)
    return {
        "ultragcn": UltraGCNRecommender(**small, n_negatives=8),
        "ultragcn_ii": UltraGCNRecommender(**small, n_negatives=8, item_item_weight=0.5),
        "painvrl": PaInvRLRecommender(**small, n_negatives=8, **stages()),
        "painvrl_global": PaInvRLRecommender(**small, n_negatives=8, **stages(threshold="auto"),
                                             fusion="global"),
        "milk": MILKRecommender(**milk),
        "milk_missing": MILKRecommender(**milk, mixtures="missing", missing_fill="impute"),
        "eior": EIORRecommender(**small, n_negatives=8, **stages(0.5)),
        "eior_explicit": EIORRegressor(**small, **stages(0.5)),
    }


def save(out):
    from invrec.datasets import make_multimodal_interactions

    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = make_multimodal_interactions(n_users=150, n_items=120, random_state=0)
    X = data.interactions[["user", "item"]]
    ratings = 1 + (X["user"] + X["item"]) % 5
    for name, model in configurations().items():
        y = ratings if name == "eior_explicit" else None
        model.fit(X, y, item_features=data.item_features)
        ranked = model.recommend(list(range(20)), n=10)
        np.save(out / f"{name}_pred.npy", model.predict(X.iloc[:500]))
        np.save(out / f"{name}_rec.npy", ranked["item"].to_numpy())
        np.save(out / f"{name}_score.npy", ranked["score"].to_numpy())
        print(f"saved {name}")


def compare(before, after):
    changed = 0
    for path in sorted(Path(before).glob("*.npy")):
        a, b = np.load(path), np.load(Path(after) / path.name)
        same = np.array_equal(a, b, equal_nan=True)
        changed += not same
        print(f"{path.stem:24s} {'equal' if same else f'max |diff| {np.nanmax(np.abs(a - b)):.3g}'}")
    return changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("save", help="fit and save").add_argument("out")
    cmp = sub.add_parser("compare", help="compare two saved folders")
    cmp.add_argument("before")
    cmp.add_argument("after")
    args = parser.parse_args(argv)
    if args.command == "save":
        save(args.out)
        return 0
    return 1 if compare(args.before, args.after) else 0


if __name__ == "__main__":
    raise SystemExit(main())
