"""EIOR against the UltraGCN ERM baseline on the synthetic generator, and its ablations.

Usage (from the repository root)::

    python benchmarks/eior.py synthetic [--seeds 0 1 2] [--models NAME ...] [--threads 1]
    python benchmarks/eior.py regimes   [--seeds 0 1 2]      # attention vs environment disagreement
    python benchmarks/eior.py movielens [--seeds 0 1 2] [--fusions attention invariant fixed]
    python benchmarks/eior.py tiktok --seeds 0 1 2 3 4 [--backbone JSON] [--variants JSON] [--resume JSON]

``synthetic``: :func:`invrec.datasets.make_multimodal_interactions` (300 users x 200 items, training
environments with spurious strength 3 / 4.5 / 6, OOD test at -3), the backbone and stage settings
of ``benchmarks/invariance.py`` (``SYNTH_BACKBONE``, ``SYNTH_STAGES``: the same as the PaInvRL
rows of ``benchmarks/README.md``), in-distribution (IID) and out-of-distribution (OOD) NDCG@20,
the mean invariant attention weight, the mask's ROC AUC against the true invariant dimensions.

``regimes``: the EIOR settings trained on environments that agree (3, 4.5, 6) and on
environments that disagree (-1.5, 4.5, 10.5; same mean), the mean invariant weight of each.

``movielens``: EIOR for explicit ratings (:class:`~invrec.eior.EIORRegressor`, genre modality)
on the GroupLens ``u1`` split with the protocol of ``benchmarks/ratings.py`` (10% of each user's
training ratings for validation, predictions clipped to [1, 5]) against that script's
validation-tuned user/item bias baseline.

Each part writes ``eior_<part>.json`` and ``eior_<part>.md`` under ``--out``
(default ``benchmarks/results/``).
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from invariance import SYNTH_BACKBONE, SYNTH_STAGES, current_spelling, make_estimator  # noqa: E402

#: Settings are flat dicts; a setting of a part (stage, fusion, objective) has the nested spelling
#: of ``set_params`` (``mask__threshold``, ``fusion__gate``, ``objective__fuse``), see
#: ``invariance.make_estimator`` (which also reads the former flat spellings, ``fusion_gate``...).
HARD = {"mask__threshold": "auto", "item_l2_ratio": 20.0}
#: The fusion of the previous default (self-attention, no gate), for the ablation rows.
OLD = {"fusion__self_attention": True, "fusion__gate": False}
#: name -> (estimator, extra parameters).
SYNTH_MODELS = {
    "UltraGCN (ERM baseline)": ("ultragcn", {}),
    "UltraGCN, item id L2 x20": ("ultragcn", {"item_l2_ratio": 20.0}),
    "EIOR default (gated attention, soft mask)": ("eior", {}),
    "EIOR gated attention, hard mask, id L2 x20": ("eior", HARD),
    "EIOR gated attention, hard mask, id L2 x20, id weight 0.5": ("eior", {**HARD, "item_id_weight": 0.5}),
    "EIOR gated attention, hard mask, id L2 x20, id weight 0.25": ("eior", {**HARD, "item_id_weight": 0.25}),
    "EIOR gated global, hard mask, id L2 x20, id weight 0.5": ("eior", {**HARD, "fusion": "global", "item_id_weight": 0.5}),
    "EIOR invariant only (InvRL), hard mask, id L2 x20, id weight 0.5": (
        "eior", {**HARD, "fusion": "invariant", "item_id_weight": 0.5}),
    "EIOR gated attention, prior 0.9, hard mask, id L2 x20": ("eior", {**HARD, "fusion__prior": 0.9}),
    "EIOR gated attention, prior 0.9, hard mask, id L2 x20, id weight 0.5": (
        "eior", {**HARD, "fusion__prior": 0.9, "item_id_weight": 0.5}),
    "EIOR gated global, prior 0.9, hard mask, id L2 x20": ("eior", {**HARD, "fusion": "global", "fusion__prior": 0.9}),
    "EIOR gated attention, pooled objective, hard mask, id L2 x20": ("eior", {**HARD, "objective__fuse": "pooled"}),
    "EIOR gated self-attention, hard mask, id L2 x20": ("eior", {**HARD, "fusion__self_attention": True}),
    "EIOR attention without gate, hard mask, id L2 x20": ("eior", {**HARD, "fusion__gate": False}),
    "EIOR self-attention without gate (old default), hard mask, id L2 x20": ("eior", {**HARD, **OLD}),
    "EIOR gated global, hard mask, id L2 x20": ("eior", {**HARD, "fusion": "global"}),
    "EIOR gated fixed 0.5/0.5, hard mask, id L2 x20": ("eior", {**HARD, "fusion": "fixed"}),
    "EIOR invariant only (InvRL), hard mask, id L2 x20": ("eior", {**HARD, "fusion": "invariant"}),
    "EIOR variant only (ERM), hard mask, id L2 x20": ("eior", {**HARD, "fusion": "variant"}),
}
REGIMES = {"agree": (3.0, 4.5, 6.0), "disagree": (-1.5, 4.5, 10.5)}
REGIME_MODELS = ["EIOR default (gated attention, soft mask)",
                 "EIOR gated attention, hard mask, id L2 x20",
                 "EIOR gated attention, hard mask, id L2 x20, id weight 0.25",
                 "EIOR attention without gate, hard mask, id L2 x20",
                 "EIOR self-attention without gate (old default), hard mask, id L2 x20",
                 "EIOR gated global, hard mask, id L2 x20"]


def _estimator(kind, params, seed):
    from invrec.baselines import UltraGCNRecommender
    from invrec.eior import EIORRecommender

    if kind == "ultragcn":
        return UltraGCNRecommender(**{**SYNTH_BACKBONE, **params}, random_state=seed, device="cpu")
    return make_estimator(EIORRecommender, {**SYNTH_BACKBONE, **SYNTH_STAGES, **params,
                                            "random_state": seed, "device": "cpu"})


def _fit_one(name, data, seed):
    from sklearn.metrics import roc_auc_score

    kind, params = SYNTH_MODELS[name]
    model = _estimator(kind, params, seed)
    start = time.perf_counter()
    model.fit(data.interactions[["user", "item"]], item_features=data.item_features)
    row = {"model": name, "seed": seed, "iid_ndcg@20": model.score(data.test),
           "ood_ndcg@20": model.score(data.test_ood), "fit_s": time.perf_counter() - start,
           "params": params}
    if kind == "eior":
        truth = np.concatenate([data.invariant_mask[m] for m in data.item_features.modalities])
        mask = np.concatenate([model.invariant_mask_[m] for m in data.item_features.modalities])
        row["mask_auc"] = float(roc_auc_score(truth, mask))
        row["attention_inv"] = float(model.attention_weights_mean_[0])
        row["attention_inv_sd_items"] = float(model.attention_weights_[:, 0].std())
    return row


def _summary(rows, names, base_name):
    out = []
    base = [r for r in rows if r["model"] == base_name]
    b_iid = np.mean([r["iid_ndcg@20"] for r in base]) if base else np.nan
    b_ood = np.mean([r["ood_ndcg@20"] for r in base]) if base else np.nan
    for name in names:
        rs = [r for r in rows if r["model"] == name]
        if not rs:
            continue
        s = {"model": name, "n": len(rs)}
        for key in ("iid_ndcg@20", "ood_ndcg@20", "fit_s", "mask_auc", "attention_inv"):
            vals = [r[key] for r in rs if r.get(key) is not None]
            s[key] = float(np.mean(vals)) if vals else None
            s[key + "_sd"] = float(np.std(vals)) if vals else None
        s["iid_ratio"], s["ood_ratio"] = s["iid_ndcg@20"] / b_iid, s["ood_ndcg@20"] / b_ood
        out.append(s)
    return out


def _fmt(v, spec=".4f"):
    return "-" if v is None else format(v, spec)


def run_synthetic(args):
    from invrec.datasets import make_multimodal_interactions

    names = args.models or list(SYNTH_MODELS)
    rows = []
    for seed in args.seeds:
        data = make_multimodal_interactions(n_users=300, n_items=200, random_state=seed)
        for name in names:
            row = _fit_one(name, data, seed)
            rows.append(row)
            print(f"seed {seed} {name}: IID {row['iid_ndcg@20']:.4f} OOD {row['ood_ndcg@20']:.4f} "
                  f"a_inv {row.get('attention_inv', float('nan')):.3f} {row['fit_s']:.1f}s", flush=True)
    summary = _summary(rows, names, "UltraGCN (ERM baseline)")
    lines = [f"Mean over seeds {args.seeds}; ratios to the UltraGCN ERM baseline of the same run.", "",
             "| model | IID N@20 (sd) | OOD N@20 (sd) | IID / base | OOD / base | mask AUC | mean a_inv | fit s |",
             "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['model']} | {_fmt(s['iid_ndcg@20'])} ({_fmt(s['iid_ndcg@20_sd'])}) | "
                     f"{_fmt(s['ood_ndcg@20'])} ({_fmt(s['ood_ndcg@20_sd'])}) | {s['iid_ratio']:.2f} | "
                     f"{s['ood_ratio']:.2f} | {_fmt(s['mask_auc'], '.3f')} | {_fmt(s['attention_inv'], '.3f')} | "
                     f"{s['fit_s']:.1f} |")
    _write(args, "synthetic", rows, summary, "\n".join(lines) + "\n")


def run_regimes(args):
    from invrec.datasets import make_multimodal_interactions

    rows = []
    for regime, strengths in REGIMES.items():
        for seed in args.seeds:
            data = make_multimodal_interactions(n_users=300, n_items=200, spurious_strengths=strengths,
                                                random_state=seed)
            for name in args.models or REGIME_MODELS:
                row = {**_fit_one(name, data, seed), "regime": regime}
                rows.append(row)
                print(f"{regime} seed {seed} {name}: a_inv {row['attention_inv']:.3f} "
                      f"OOD {row['ood_ndcg@20']:.4f}", flush=True)
    lines = [f"Mean invariant attention weight over items (mean over seeds {args.seeds}; sd over seeds).",
             "", "| model | agree: a_inv | disagree: a_inv | agree: OOD N@20 | disagree: OOD N@20 |",
             "|---|---|---|---|---|"]
    summary = []
    for name in args.models or REGIME_MODELS:
        cells, rec = [], {"model": name}
        for key in ("attention_inv", "ood_ndcg@20"):
            for regime in REGIMES:
                vals = [r[key] for r in rows if r["model"] == name and r["regime"] == regime]
                rec[f"{regime}_{key}"] = float(np.mean(vals))
                cells.append(f"{np.mean(vals):.3f} ({np.std(vals):.3f})")
        summary.append(rec)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    _write(args, "regimes", rows, summary, "\n".join(lines) + "\n")


#: EIORRegressor settings on MovieLens-100K ratings (943 users, 1,682 items, 72k training ratings).
ML_SETTINGS = {"embedding_dim": 32, "content_dim": 32, "batch_size": 1024, "learning_rate": 3e-3,
               "max_epochs": 80, "n_iter_no_change": 8, "n_outer_iter": 1,
               "environments__n_environments": 4, "environments__max_rounds": 2,
               "environments__epochs": 3, "environments__embedding_dim": 16, "mask__epochs": 3,
               "mask__learning_rate": 1e-2}
#: L2 weight of the id embeddings, chosen on validation RMSE (first seed).
ML_L2_GRID = (1e-2, 1e-1, 1.0)


def run_movielens(args):
    """EIOR (explicit ratings, genre modality) against the validation-tuned bias baseline, u1 split."""
    import pandas as pd

    from invrec.datasets import load_movielens_100k
    from invrec.eior import EIORRegressor
    from invrec.metrics import rmse
    from invrec.model_selection import train_test_split
    from ratings import run_bias, load as load_codes
    from invrec.nn import RatingScale

    data_dir = Path(args.data_dir)
    if not (data_dir / "ml-100k").is_dir():
        print(f"{data_dir}/ml-100k is absent; nothing to benchmark.")
        return
    codes = load_codes(data_dir, "u1")                        # the protocol of benchmarks/ratings.py
    scale = RatingScale.from_ratings(codes["train"][2])
    bias = run_bias(codes, scale)
    rows = [{"model": "bias (validation-tuned)", "seed": None, "test_rmse": bias["test_rmse"],
             "valid_rmse": bias["valid_rmse"], "fit_s": bias["fit_s"]}]
    print(f"bias: test RMSE {bias['test_rmse']:.4f}", flush=True)
    data = load_movielens_100k(data_dir / "ml-100k", split="u1")
    train, valid = train_test_split(data.interactions, test_size=0.1, by="user", random_state=0)
    test = data.test

    def fit(seed, fusion, l2):
        model = make_estimator(EIORRegressor, {**ML_SETTINGS, "fusion": fusion, "l2_embedding": l2,
                                               "random_state": seed, "device": "cpu"})
        start = time.perf_counter()
        model.fit(train[["user", "item"]], train["rating"].to_numpy(), item_features=data.item_features,
                  validation_data=valid[["user", "item", "rating"]])
        pred = model.predict(test[["user", "item"]])
        known = np.isfinite(pred)
        pred = np.where(known, pred, scale.mean)
        final = [r for r in model.history_ if r.get("stage") == "final"]
        return {"model": f"EIOR {fusion}", "seed": seed, "l2_embedding": l2,
                "test_rmse": rmse(test["rating"].to_numpy(np.float64), scale.clip(pred)),
                "valid_rmse": min(r["valid_rmse"] for r in final), "epochs": len(final),
                "attention_inv": float(model.attention_weights_mean_[0]),
                "attention_inv_sd_items": float(model.attention_weights_[:, 0].std()),
                "fit_s": time.perf_counter() - start}

    curve = {}
    for l2 in ML_L2_GRID:
        curve[l2] = fit(args.seeds[0], "attention", l2)
        print(f"EIOR attention l2={l2}: valid {curve[l2]['valid_rmse']:.4f} test {curve[l2]['test_rmse']:.4f}",
              flush=True)
    l2 = min(curve, key=lambda k: curve[k]["valid_rmse"])
    for fusion in args.fusions:
        for seed in args.seeds:
            row = curve[l2] if (fusion == "attention" and seed == args.seeds[0]) else fit(seed, fusion, l2)
            rows.append(row)
            print(f"{row['model']} seed {seed}: test RMSE {row['test_rmse']:.4f}", flush=True)
    frame = pd.DataFrame(rows)
    lines = [f"MovieLens-100K u1, explicit ratings, genre modality; L2 {l2} chosen on validation "
             f"(grid {ML_L2_GRID}); seeds {args.seeds}.", "",
             "| model | test RMSE (sd over seeds) | valid RMSE | mean a_inv | fit s |", "|---|---|---|---|---|"]
    for name, group in frame.groupby("model", sort=False):
        att = group["attention_inv"].mean() if "attention_inv" in group else np.nan
        lines.append(f"| {name} | {group['test_rmse'].mean():.4f} ({group['test_rmse'].std(ddof=0):.4f}) | "
                     f"{group['valid_rmse'].mean():.4f} | {att:.3f} | {group['fit_s'].mean():.1f} |")
    _write(args, "movielens", rows, {"l2_curve": {str(k): v for k, v in curve.items()}}, "\n".join(lines) + "\n")


def run_tiktok(args):
    """EIOR against UltraGCN at its known-good settings, TikTok DiffMM split, one run per seed.

    Each seed fits the baseline and every variant with that seed; the summary gives each model's
    mean NDCG@20, its mean ratio to the same seed's baseline and the seeds where it is at least
    the baseline's. ``--resume FILE`` reuses the rows of an earlier ``eior_tiktok.json`` (same
    seed, model name and parameters) instead of refitting them.
    """
    import protocol
    from invariance import TIKTOK_BACKBONE, TIKTOK_STAGES

    from invrec.baselines import UltraGCNRecommender
    from invrec.eior import EIORRecommender

    if not (Path(args.data_dir) / "tiktok").is_dir():
        print(f"{args.data_dir}/tiktok is absent; nothing to benchmark.")
        return
    split = protocol.load_split("tiktok", args.data_dir)
    test_users = split.eval_users(split.test)
    backbone = {**TIKTOK_BACKBONE, **json.loads(args.backbone)}
    variants = json.loads(args.variants) if args.variants else {
        f"EIOR {fusion}": {"fusion": fusion} for fusion in args.fusions}
    models = {"UltraGCN (ERM baseline)": (UltraGCNRecommender, {}),
              **{name: (EIORRecommender, {**TIKTOK_STAGES, **params}) for name, params in variants.items()}}
    done = []
    if args.resume:
        done = json.loads(Path(args.resume).read_text())["rows"]
    rows = []
    for seed in args.seeds:
        for name, (cls, extra) in models.items():
            params = {**backbone, **extra}
            old = [r for r in done if r["seed"] == seed and r["model"] == name
                   and current_spelling(cls, r.get("all_params") or {}) == current_spelling(cls, params)]
            if old:
                rows.append(old[0])
                continue
            model = make_estimator(cls, {**params, "random_state": seed, "device": "cpu"})
            start = time.perf_counter()
            model.fit(split.train, item_features=split.item_features, validation_data=split.valid)
            row = {"model": name, "seed": seed, "params": extra if cls is EIORRecommender else {},
                   "all_params": params,
                   **protocol.evaluate(model.recommend(test_users, n=20, exclude=split.valid), split.test),
                   "fit_s": time.perf_counter() - start}
            if cls is EIORRecommender:
                row["attention_inv"] = float(model.attention_weights_mean_[0])
                row["attention_inv_sd_items"] = float(model.attention_weights_[:, 0].std())
                row["stage_s"] = dict(model.stage_times_)
            rows.append(row)
            print(json.dumps(row, default=float), flush=True)
    base = {r["seed"]: r["ndcg@20"] for r in rows if r["model"] == "UltraGCN (ERM baseline)"}
    lines = [f"TikTok (DiffMM split, validation-selected), seeds {args.seeds}, backbone {backbone}.", "",
             "| seed | model | R@20 | N@20 | N@20 / base | mean a_inv | fit s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['model']} | {r['recall@20']:.4f} | {r['ndcg@20']:.4f} | "
                     f"{r['ndcg@20'] / base[r['seed']]:.3f} | {_fmt(r.get('attention_inv'), '.3f')} | "
                     f"{r['fit_s']:.0f} |")
    summary = []
    for name in models:
        rs = [r for r in rows if r["model"] == name]
        ratios = [r["ndcg@20"] / base[r["seed"]] for r in rs]
        summary.append({"model": name, "n": len(rs), "ndcg@20": float(np.mean([r["ndcg@20"] for r in rs])),
                        "ndcg@20_sd": float(np.std([r["ndcg@20"] for r in rs])),
                        "ratio": float(np.mean(ratios)),
                        "seeds_at_least_base": [r["seed"] for r, q in zip(rs, ratios) if q >= 1.0]})
    lines += ["", "| model | seeds | mean N@20 (sd) | mean N@20 / base | seeds >= base |", "|---|---|---|---|---|"]
    for s_ in summary:
        lines.append(f"| {s_['model']} | {s_['n']} | {s_['ndcg@20']:.4f} ({s_['ndcg@20_sd']:.4f}) | "
                     f"{s_['ratio']:.3f} | {s_['seeds_at_least_base']} |")
    _write(args, "tiktok", rows, summary, "\n".join(lines) + "\n")


def _write(args, part, rows, summary, markdown):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "platform": platform.platform(),
               "threads": args.threads}
    (out / f"eior_{part}.json").write_text(json.dumps(
        {"command": " ".join(sys.argv), "machine": machine, "rows": rows, "summary": summary},
        indent=1, default=float))
    (out / f"eior_{part}.md").write_text(markdown)
    print(markdown)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("synthetic", "regimes", "movielens", "tiktok"))
    parser.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--fusions", nargs="+", default=["attention", "invariant", "fixed"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--backbone", default="{}",
                        help="tiktok: JSON overrides of TIKTOK_BACKBONE for every row")
    parser.add_argument("--variants", default=None,
                        help='tiktok: JSON {"row name": {EIOR parameters}} instead of --fusions; '
                             'settings of a stage, the fusion or the objective in the nested '
                             'spelling, e.g. {"mask__threshold": "auto", "fusion__gate": false}')
    parser.add_argument("--resume", default=None,
                        help="tiktok: an earlier eior_tiktok.json whose matching rows are reused")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    {"synthetic": run_synthetic, "regimes": run_regimes, "movielens": run_movielens,
     "tiktok": run_tiktok}[args.part](args)


if __name__ == "__main__":
    main()
