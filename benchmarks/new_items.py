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

SETTINGS = ("full", "ftmt", "mtmt", "one-or-two", "ftmt-head", "ftmt-tail", "ftmt-together",
            "lose-<modality>")
#: MILK rows: changes to the estimator's defaults (issue 16: missing-modality mixtures,
#: invariance 5, cross-modal imputation, negatives from the training items).
MILK_VARIANTS = {
    "milk": {},
    "milk-avail": {"availability_aware": True},
    "milk-cyclic": {"mixtures": "cyclic"},
    "milk-inv50": {"invariance_weight": 50.0},
    "milk-mean": {"missing_fill": "mean"},
    "milk-all-negatives": {"negative_pool": "all"},
    "milk-paper": {"mixtures": "cyclic", "invariance_weight": 50.0, "missing_fill": "mean",
                   "negative_pool": "all"},
    "milk-no-align": {"alignment_weight": 0.0},
    "milk-no-env": {"mixtures": "none"},
    "milk-neither": {"alignment_weight": 0.0, "mixtures": "none"},
}
MODELS = (*MILK_VARIANTS, "ultragcn-content", "feature-knn", "feature-knn-impute")
LABELS = {
    "milk": "MILK (defaults)", "milk-avail": "MILK, availability-aware fusion",
    "milk-cyclic": "MILK, cyclic mixtures", "milk-inv50": "MILK, invariance 50",
    "milk-mean": "MILK, mean fill", "milk-all-negatives": "MILK, negatives from all items",
    "milk-paper": "MILK, paper settings (cyclic, inv 50, mean fill, all negatives)",
    "milk-no-align": "MILK w/o alignment", "milk-no-env": "MILK w/o mixtures",
    "milk-neither": "MILK w/o both", "ultragcn-content": "UltraGCN, content score",
    "feature-knn": "feature-kNN", "feature-knn-impute": "feature-kNN, imputed features",
}
#: Settings of every MILK row on top of the estimator's defaults: a 3x learning rate and a
#: patience of 20 epochs keep a fit near a minute on 2 shared cores (at 1e-3 MILK needs ~250
#: epochs).
MILK_COMMON = {"learning_rate": 3e-3, "n_iter_no_change": 20}
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
def with_whisper(features, data_dir):
    """Last.fm's features plus its Whisper audio embedding as a third modality ``"whisper"``."""
    from invrec.datasets import load_lastfm_2k_mm
    whisper = load_lastfm_2k_mm(protocol.dataset_folder("lastfm", data_dir), audio="whisper").item_features
    if not np.array_equal(np.asarray(whisper.item_ids), np.asarray(features.item_ids)):
        raise ValueError("the Whisper features do not list the items in the catalog's order")
    blocks = {m: features[m] for m in features.modalities}
    blocks["whisper"] = whisper["audio"]
    return type(features)(blocks, item_ids=features.item_ids)


def new_item_split(name, data_dir, seed, whisper=False):
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
        "features": with_whisper(split.item_features, data_dir) if whisper and name == "lastfm"
                    else split.item_features,
    }


def setting_features(features, data, setting, seed):
    """The item features of one missing-modality setting (``ItemFeatures.with_missing``).

    Structured settings (issue 16): ``lose-<modality>`` takes that modality from every new item
    (validation and test); ``ftmt-together`` is FTMT where the chosen new items lose every
    modality but the first at once (three or more modalities: Last.fm with ``--whisper`` loses
    both audio encoders, i.e. the audio); ``ftmt-head`` / ``ftmt-tail`` are FTMT with the new items that lose a
    modality drawn with probability proportional to their number of interactions (popular items
    miss content more) or to its inverse ``1 / (1 + n)`` (long-tail items miss content more).
    """
    new = np.concatenate([data["valid_items"], data["test_items"]])
    if setting == "full":
        return features
    if setting == "one-or-two":
        return features.with_missing(0.9, n_missing=(1, 2), items=new, random_state=seed)
    if setting.startswith("lose-"):
        return features.with_missing(1.0, items=new, modalities=setting[len("lose-"):])
    if setting == "ftmt-together":            # all modalities but the first go missing together
        rest = list(features.modalities[1:])
        out = features.with_missing(0.5, items=data["test_items"], modalities=rest, n_missing=len(rest),
                                    random_state=seed)
        return out.with_missing(0.5, items=data["valid_items"], modalities=rest, n_missing=len(rest),
                                random_state=seed + 1)
    if setting in ("ftmt-head", "ftmt-tail"):
        counts = pd.concat([data["valid"], data["test"]])["item"].value_counts()
        out = features
        for offset, items in enumerate((data["test_items"], data["valid_items"])):
            n = counts.reindex(items).fillna(0).to_numpy(dtype=float)
            weights = n if setting == "ftmt-head" else 1.0 / (1.0 + n)
            out = out.with_missing(0.5, items=items, weights=weights, random_state=seed + offset)
        return out
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


def mean_markdown(rows, header):
    """Mean NDCG@20 over the splits per model and setting, the drop from full and the wins."""
    lines = [header, ""]
    frame = pd.DataFrame([{"dataset": r["dataset"], "setting": r["setting"], "model": r["model"],
                           "seed": r["seed"], "test-new": r["test-new"]["ndcg@20"],
                           "all-new": r["all-new"]["ndcg@20"], "s_per_epoch": r.get("s_per_epoch")}
                          for r in rows])
    for dataset, sub in frame.groupby("dataset", sort=False):
        settings = list(dict.fromkeys(sub["setting"]))
        n_seeds = sub["seed"].nunique()
        for proto in ("test-new", "all-new"):
            lines += [f"### {dataset}: mean NDCG@20 over {n_seeds} splits (seeds "
                      f"{sorted(sub['seed'].unique().tolist())}), ranking among "
                      f"{'the test new items' if proto == 'test-new' else 'all new items'}", ""]
            table = sub.pivot_table(index="model", columns="setting", values=proto, aggfunc="mean", sort=False)
            lines.append("| model | " + " | ".join(settings)
                         + (" | drop full->" + " | drop full->".join(s for s in settings if s != "full")
                            if "full" in settings else "") + " | s/epoch |")
            lines.append("|---|" + "---|" * (2 * len(settings) - ("full" in settings) + 1))
            for model in dict.fromkeys(sub["model"]):
                cells = [f"{table.loc[model, s]:.4f}" if s in table.columns and pd.notna(table.loc[model, s])
                         else "-" for s in settings]
                if "full" in settings:
                    full = table.loc[model, "full"]
                    cells += [f"{100 * (full - table.loc[model, s]) / full:.1f}%" for s in settings if s != "full"]
                spe = sub.loc[sub["model"] == model, "s_per_epoch"].dropna()
                lines.append(f"| {LABELS[model]} | " + " | ".join(cells) + " | "
                             + (f"{spe.mean():.3f}" if len(spe) else "-") + " |")
            lines.append("")
    return "\n".join(lines)


def cost(data_dir, seed, epochs, milk_params):
    """Seconds per MILK epoch (defaults, no validation) on Last.fm new items with 2, 3 and 6 modalities.

    2: text + VGGish; 3: + Whisper; 6: the text split in two halves and Whisper in three thirds
    (each part its own modality), so the 6-modality content has as many columns as the 3 one.
    """
    data = new_item_split("lastfm", data_dir, seed, whisper=True)
    full = data["features"]
    variants = {2: {m: full[m] for m in ("text", "audio")},
                3: {m: full[m] for m in ("text", "audio", "whisper")},
                6: {"text0": full["text"][:, :192], "text1": full["text"][:, 192:], "audio": full["audio"],
                    **{f"whisper{k}": full["whisper"][:, 170 * k: 170 * (k + 1) + (2 if k == 2 else 0)]
                       for k in range(3)}}}
    lines = ["| modalities | columns | s/epoch (mean over epochs 2..) |", "|---|---|---|"]
    for m, blocks in variants.items():
        features = type(full)(blocks, item_ids=full.item_ids)
        params = {**MILK_COMMON, **milk_params, "max_epochs": epochs, "early_stopping": False}
        model = MILKRecommender(random_state=seed, device="cpu", **params)
        model.fit(data["train"], item_features=features)
        times = [h["fit_time"] for h in model.history_][1:]
        lines.append(f"| {m} | {sum(features.dims.values())} | {np.mean(times):.3f} |")
        print(lines[-1], flush=True)
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["lastfm"], choices=sorted(protocol.DATASETS))
    parser.add_argument("--settings", nargs="+", default=["full", "ftmt", "mtmt"],
                        help=f"any of {', '.join(SETTINGS)}")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--whisper", action="store_true",
                        help="Last.fm with its Whisper audio embedding as a third modality")
    parser.add_argument("--cost", action="store_true",
                        help="only time MILK epochs with 2, 3 and 6 modalities on Last.fm (see cost())")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="several splits in one run (overrides --seed); adds mean tables")
    parser.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=None, help="cap on trained models' epochs")
    parser.add_argument("--quick", action="store_true", help="3 epochs per trained model")
    parser.add_argument("--milk-params", default="{}", help="JSON of MILKRecommender arguments for every MILK row")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bad = [s for s in args.settings if s not in SETTINGS and not s.startswith("lose-")]
    if bad:
        parser.error(f"unknown settings {bad}; choose from {SETTINGS}")
    max_epochs = 3 if args.quick else args.max_epochs
    if args.cost:
        return cost(args.data_dir, args.seed, max_epochs or 10, json.loads(args.milk_params))
    seeds = args.seeds if args.seeds else [args.seed]
    rows, start = [], time.perf_counter()
    for name, seed in ((n, s) for n in args.datasets for s in seeds):
        if not protocol.dataset_folder(name, args.data_dir).is_dir():
            print(f"skip {name}: {protocol.dataset_folder(name, args.data_dir)} is absent")
            continue
        data = new_item_split(name, args.data_dir, seed, whisper=args.whisper)
        print(f"{name}, seed {seed}: {len(data['train'])} training rows, {len(data['valid_items'])} validation and "
              f"{len(data['test_items'])} test new items, {data['test']['user'].nunique()} test users",
              flush=True)
        for setting in args.settings:
            if setting in ("one-or-two", "ftmt-together") and data["features"].n_modalities < 3:
                print(f"skip one-or-two on {name}: it needs 3 modalities (losing two must leave one); "
                      f"this copy has {data['features'].n_modalities}")
                continue
            if setting.startswith("lose-") and setting[5:] not in data["features"].modalities:
                print(f"skip {setting} on {name}: its modalities are {data['features'].modalities}")
                continue
            features = setting_features(data["features"], data, setting, seed)
            for model in args.models:
                row = {"dataset": name, "setting": setting, "model": model, "seed": seed,
                       **run_one(name, data, features, model, seed, max_epochs,
                                        json.loads(args.milk_params))}
                rows.append(row)
                print(f"  {setting:10s} {model:18s} N@20 test-new {row['test-new']['ndcg@20']:.4f} "
                      f"all-new {row['all-new']['ndcg@20']:.4f}  fit {row['fit_s']:.1f}s "
                      f"s/epoch {row.get('s_per_epoch', float('nan')):.3f} "
                      f"epochs {row.get('epochs', '-')} (best {row.get('best_epoch', '-')})", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/new_items.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (f"## New-item benchmark\n\n`{command}`: seeds {seeds}, {torch.get_num_threads()} torch "
              f"thread(s), {platform.machine()} with {os.cpu_count()} cores, torch {torch.__version__}, "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, total {time.perf_counter() - start:.0f} s.")
    (out / "new_items.json").write_text(json.dumps(rows, indent=1, default=str))
    text = markdown(rows, header) if len(seeds) == 1 else mean_markdown(rows, header)
    (out / "new_items.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
