"""New-item (cold-start) benchmark: MILK against content baselines under missing modalities.

Protocol (MILK's, through the invrec foundation):

* every interaction of the dataset (its train, validation and test files together) is split by
  ``invrec.model_selection.NewItemSplit(test_size=0.2, validation=True, random_state=SEED)``:
  20% of the items are new (first half validation, second half test) and all their interactions
  leave training;
* missing-modality settings through ``ItemFeatures.with_missing``: **full** (nothing missing),
  **FTMT** (50% of the test new items and, separately, 50% of the validation new items lose one
  random modality), **MTMT** (FTMT plus 30% of the training items losing one random modality);
  TikTok's extra setting **one-or-two** (10% of the new items complete, 45% lose one, 45% two);
* test users are the users of the test new items' interactions; two rankings per model:
  ``test-new`` ranks only the test new items (the peers' protocol), ``all-new`` ranks every new
  item, validation and test (the official MILK code's protocol); Recall and NDCG at 10 and 20
  from ``protocol.evaluate``.

Models: MILK (the paper's settings; with a 10x smaller invariance weight; with missing-modality
mixtures instead of the cyclic ones, ``mixtures="missing"``; the MILK paper calls its mixtures
environments, hence the row labels) and its ablations (no alignment, no mixtures
``mixtures="none"``, neither), the UltraGCN baseline
scoring new items from its content tower (fitted on the training items only, new items passed
after fitting with ``recommend(..., item_features=...)``), and a feature-kNN ranker (user profile =
mean of the prepared features of the user's training items, cosine; ``feature-knn-impute``: the
same with missing modalities imputed by ``CrossModalImputer`` instead of mean-filled). MILK
variants select their
epoch on the validation new items (ranked among all new items, as the official code does).

Usage, from the repository root::

    python benchmarks/new_items.py                       # Last.fm, full / FTMT / MTMT
    python benchmarks/new_items.py --datasets tiktok --settings full ftmt mtmt one-or-two
    python benchmarks/new_items.py --quick               # pipeline check, a few epochs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import protocol  # noqa: E402
from invrec.baselines import UltraGCNRecommender  # noqa: E402
from invrec.milk import MILKRecommender  # noqa: E402
from invrec.model_selection import NewItemSplit  # noqa: E402
from invrec.multimodal import CrossModalImputer  # noqa: E402

SETTINGS = ("full", "ftmt", "mtmt", "one-or-two")
MILK_VARIANTS = {
    "milk": {},
    "milk-inv5": {"invariance_weight": 5.0},
    "milk-missing": {"mixtures": "missing", "invariance_weight": 5.0},
    "milk-no-align": {"alignment_weight": 0.0},
    "milk-no-env": {"mixtures": "none"},
    "milk-neither": {"alignment_weight": 0.0, "mixtures": "none"},
}
MODELS = (*MILK_VARIANTS, "ultragcn-content", "feature-knn", "feature-knn-impute")
LABELS = {
    "milk": "MILK", "milk-inv5": "MILK, invariance weight 5",
    "milk-missing": "MILK, missing-modality environments, invariance 5", "milk-no-align": "MILK w/o alignment", "milk-no-env": "MILK w/o environments",
    "milk-neither": "MILK w/o both", "ultragcn-content": "UltraGCN, content score",
    "feature-knn": "feature-kNN", "feature-knn-impute": "feature-kNN, imputed features",
}
#: Settings of every MILK row on top of the estimator's (paper) defaults: a 3x learning rate and
#: a patience of 20 epochs keep a fit near a minute on 2 shared cores (at 1e-3 MILK needs ~250
#: epochs), and negatives from the training items only (the default "all" also draws the new
#: items, whose features are test data; "warm" was better for every variant in a trial run).
MILK_COMMON = {"learning_rate": 3e-3, "n_iter_no_change": 20, "negative_pool": "warm"}
#: Per-dataset MILK settings (the paper's TikTok alignment weight is 0.5).
MILK_DATASET = {"lastfm": {}, "tiktok": {"alignment_weight": 0.5}}
#: Known-good UltraGCN settings (common.md), passed explicitly.
ULTRAGCN = {
    "lastfm": dict(batch_size=4096, learning_rate=3e-3, l2_embedding=3e-2, l2_content=1.0,
                   embedding_dim=256, n_negatives=100),
    "tiktok": dict(batch_size=4096, learning_rate=1e-2, l2_embedding=1e-2, l2_content=1.0,
                   embedding_dim=128),
}


# ---------------------------------------------------------------------- data
def new_item_split(name, data_dir, seed):
    """All interactions of ``name``, split by NewItemSplit; returns a dict of frames and ids."""
    split = protocol.load_split(name, data_dir)
    table = pd.concat([split.train, split.valid, split.test], ignore_index=True)
    splitter = NewItemSplit(test_size=0.2, validation=True, random_state=seed)
    train, valid, test = next(splitter.split_validation(table))
    new = splitter.new_items(table)
    return {
        "train": table.iloc[train].reset_index(drop=True),
        "valid": table.iloc[valid].reset_index(drop=True),
        "test": table.iloc[test].reset_index(drop=True),
        "valid_items": np.asarray(new["validation"]), "test_items": np.asarray(new["test"]),
        "features": split.item_features,
    }


def setting_features(features, data, setting, seed):
    """The item features of one missing-modality setting (``ItemFeatures.with_missing``)."""
    if setting == "full":
        return features
    if setting == "one-or-two":
        new = np.concatenate([data["valid_items"], data["test_items"]])
        return features.with_missing(0.9, n_missing=(1, 2), items=new, random_state=seed)
    out = features.with_missing(0.5, items=data["test_items"], random_state=seed)
    out = out.with_missing(0.5, items=data["valid_items"], random_state=seed + 1)
    if setting == "mtmt":
        warm = np.setdiff1d(features.item_ids, np.concatenate([data["valid_items"], data["test_items"]]))
        warm = np.intersect1d(warm, data["train"]["item"].unique())
        out = out.with_missing(0.3, items=warm, random_state=seed + 2)
    return out


# ---------------------------------------------------------------------- models
def fit_milk(data, features, params, seed):
    model = MILKRecommender(random_state=seed, device="cpu", validation_candidates="unseen", **params)
    model.fit(data["train"], item_features=features, validation_data=data["valid"])
    history = model.history_
    best = [h["epoch"] for h in history if h.get("best")]
    info = {"epochs": len(history), "best_epoch": best[-1] if best else len(history),
            "s_per_epoch": float(np.mean([h["fit_time"] for h in history])),
            "valid_ndcg@20": max((h.get("valid_ndcg@20", np.nan) for h in history), default=None),
            "final_mixture_risks": history[-1].get("mixture_risks") if history else None}
    return (lambda users, candidates: model.recommend(users, n=20, items=candidates)), info


def fit_ultragcn(data, features, params, seed):
    warm_ids = np.asarray(sorted(data["train"]["item"].unique()))
    model = UltraGCNRecommender(random_state=seed, device="cpu", **params)
    model.fit(data["train"], item_features=features.reindex(warm_ids))
    history = model.history_
    best = [h["epoch"] for h in history if h.get("best")]
    info = {"epochs": len(history), "best_epoch": best[-1] if best else len(history),
            "s_per_epoch": float(np.mean([h["fit_time"] for h in history])),
            "note": "early-stopped on a per-user validation share of the training items"}
    return (lambda users, candidates: model.recommend(users, n=20, items=candidates,
                                                      item_features=features)), info


def prepared_content(features, warm_ids, impute=False):
    """Each modality L2-normalised, missing rows filled with the training mean (or imputed from
    the item's other modalities, ``CrossModalImputer`` fitted on the training items), concatenated."""
    normalised = features.normalize()
    if impute:
        filled = CrossModalImputer().fit(normalised, reference_items=warm_ids).transform(normalised)
    else:
        filled = normalised.fill_missing(values=normalised.fill_values("mean", reference_items=warm_ids))
    matrix, _ = filled.concat()
    return matrix.astype(np.float64)


def fit_knn(data, features, params, seed):
    del seed
    start = time.perf_counter()
    warm_ids = np.asarray(sorted(data["train"]["item"].unique()))
    content = prepared_content(features, warm_ids, impute=params.get("impute", False))
    content /= np.maximum(np.linalg.norm(content, axis=1, keepdims=True), 1e-12)
    index = pd.Index(features.item_ids)
    users, u_codes = np.unique(data["train"]["user"].to_numpy(), return_inverse=True)
    rows = index.get_indexer(data["train"]["item"])
    profile = np.zeros((len(users), content.shape[1]))
    np.add.at(profile, u_codes, content[rows])
    profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-12)
    user_index = pd.Index(users)
    info = {"fit_s": time.perf_counter() - start}

    def recommend(raw_users, candidates):
        cand = np.asarray(candidates)
        scores = torch.as_tensor(profile[user_index.get_indexer(raw_users)] @ content[index.get_indexer(cand)].T)
        values, top = torch.topk(scores, min(20, len(cand)), dim=1)
        return pd.DataFrame({"user": np.repeat(raw_users, top.shape[1]), "item": cand[top.numpy().ravel()],
                             "score": values.numpy().ravel(),
                             "rank": np.tile(np.arange(1, top.shape[1] + 1), len(raw_users))})

    return recommend, info


def run_one(name, data, features, model, seed, max_epochs, milk_params=None):
    milk_params = milk_params or {}
    if model in MILK_VARIANTS:
        params = {**MILK_COMMON, **MILK_DATASET.get(name, {}), **MILK_VARIANTS[model], **milk_params}
        if max_epochs:
            params["max_epochs"] = max_epochs
        fitter = fit_milk
    elif model == "ultragcn-content":
        params = dict(ULTRAGCN[name])
        if max_epochs:
            params["max_epochs"] = max_epochs
        fitter = fit_ultragcn
    else:
        params, fitter = {"impute": model == "feature-knn-impute"}, fit_knn
    start = time.perf_counter()
    recommend, info = fitter(data, features, params, seed)
    fit_s = time.perf_counter() - start
    users = pd.unique(data["test"]["user"].to_numpy())
    users = users[np.isin(users, data["train"]["user"].unique())]
    out = {"fit_s": fit_s, "params": params, **info}
    for protocol_name, candidates in (("test-new", data["test_items"]),
                                      ("all-new", np.concatenate([data["valid_items"], data["test_items"]]))):
        recs = recommend(users, candidates)
        out[protocol_name] = protocol.evaluate(recs, data["test"][["user", "item"]])
    return out


# ---------------------------------------------------------------------- report
def markdown(rows, header):
    lines = [header, ""]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        sub = [r for r in rows if r["dataset"] == dataset]
        settings = list(dict.fromkeys(r["setting"] for r in sub))
        for proto in ("test-new", "all-new"):
            lines += [f"### {dataset}: NDCG@20 / Recall@20, ranking among "
                      f"{'the test new items' if proto == 'test-new' else 'all new items (official MILK protocol)'}", ""]
            lines.append("| model | " + " | ".join(settings) + " | drop full->FTMT | s/epoch |")
            lines.append("|---|" + "---|" * (len(settings) + 2))
            for model in dict.fromkeys(r["model"] for r in sub):
                cells, by = [], {r["setting"]: r for r in sub if r["model"] == model}
                for s in settings:
                    r = by.get(s)
                    cells.append("-" if r is None else f"{r[proto]['ndcg@20']:.4f} / {r[proto]['recall@20']:.4f}")
                drop = "-"
                if "full" in by and "ftmt" in by:
                    f, m = by["full"][proto]["ndcg@20"], by["ftmt"][proto]["ndcg@20"]
                    drop = f"{100 * (f - m) / f:.1f}%"
                spe = [r.get("s_per_epoch") for r in by.values() if r.get("s_per_epoch")]
                lines.append(f"| {LABELS[model]} | " + " | ".join(cells) + f" | {drop} | "
                             + (f"{np.mean(spe):.3f}" if spe else "-") + " |")
            lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["lastfm"], choices=sorted(protocol.DATASETS))
    parser.add_argument("--settings", nargs="+", default=["full", "ftmt", "mtmt"], choices=SETTINGS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=None, help="cap on trained models' epochs")
    parser.add_argument("--quick", action="store_true", help="3 epochs per trained model")
    parser.add_argument("--milk-params", default="{}", help="JSON of MILKRecommender arguments for every MILK row")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    max_epochs = 3 if args.quick else args.max_epochs
    rows, start = [], time.perf_counter()
    for name in args.datasets:
        if not protocol.dataset_folder(name, args.data_dir).is_dir():
            print(f"skip {name}: {protocol.dataset_folder(name, args.data_dir)} is absent")
            continue
        data = new_item_split(name, args.data_dir, args.seed)
        print(f"{name}: {len(data['train'])} training rows, {len(data['valid_items'])} validation and "
              f"{len(data['test_items'])} test new items, {data['test']['user'].nunique()} test users",
              flush=True)
        for setting in args.settings:
            if setting == "one-or-two" and data["features"].n_modalities < 3:
                print(f"skip one-or-two on {name}: it needs 3 modalities (losing two must leave one); "
                      f"this copy has {data['features'].n_modalities}")
                continue
            features = setting_features(data["features"], data, setting, args.seed)
            for model in args.models:
                row = {"dataset": name, "setting": setting, "model": model,
                       **run_one(name, data, features, model, args.seed, max_epochs,
                                        json.loads(args.milk_params))}
                rows.append(row)
                print(f"  {setting:10s} {model:18s} N@20 test-new {row['test-new']['ndcg@20']:.4f} "
                      f"all-new {row['all-new']['ndcg@20']:.4f}  fit {row['fit_s']:.1f}s "
                      f"s/epoch {row.get('s_per_epoch', float('nan')):.3f} "
                      f"epochs {row.get('epochs', '-')} (best {row.get('best_epoch', '-')})", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/new_items.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (f"## New-item benchmark\n\n`{command}`: seed {args.seed}, {torch.get_num_threads()} torch "
              f"thread(s), {platform.machine()} with {os.cpu_count()} cores, torch {torch.__version__}, "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, total {time.perf_counter() - start:.0f} s.")
    (out / "new_items.json").write_text(json.dumps(rows, indent=1, default=str))
    (out / "new_items.md").write_text(markdown(rows, header) + "\n")
    print(markdown(rows, header))


if __name__ == "__main__":
    main()
