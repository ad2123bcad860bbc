"""PaInvRL (and its InvRL setting) against the UltraGCN ERM baseline: synthetic shift and TikTok.

Two parts, each writing JSON + markdown (and, for the synthetic part, a PNG of the IID-OOD front)
under ``--out`` (default ``benchmarks/results/``):

* ``synthetic``: :func:`invrec.datasets.make_multimodal_interactions` (ground truth known: the
  invariant dimensions and an out-of-distribution test whose spurious correlation is reversed)
  over several seeds. For every PaInvRL setting and the baselines: in-distribution (IID) and
  out-of-distribution (OOD) NDCG@20, the ROC AUC of ``invariant_mask_`` against the true
  invariant dimensions, fit time; then the settings' mean IID-OOD points and which of them are on
  the Pareto front.
* ``tiktok`` / ``lastfm``: the official DiffMM split (``../shared/data/tiktok``), validation-selected, the
  UltraGCN baseline at its known-good settings, the InvRL setting and PaInvRL on top of the same
  backbone settings, with the time of every stage.

Usage (from the repository root)::

    python benchmarks/invariance.py synthetic --seeds 0 1 2 3 4
    python benchmarks/invariance.py tiktok
    python benchmarks/invariance.py lastfm
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

# ----------------------------------------------------------------------------- synthetic settings
#: Backbone settings shared by every model on the synthetic data (fast: seconds per fit).
SYNTH_BACKBONE = dict(embedding_dim=32, content_dim=32, batch_size=256, learning_rate=1e-2,
                      n_negatives=20, l2_embedding=1e-2, l2_content=1e-2, max_epochs=100,
                      n_iter_no_change=10)
#: PaInvRL's stages on the synthetic data, in the nested spelling of ``set_params`` (JSON-friendly;
#: :func:`make_estimator` builds the stage objects from it).
SYNTH_STAGES = {"n_outer_iter": 2, "environments__n_environments": 3, "environments__max_rounds": 3,
                "environments__epochs": 5, "mask__epochs": 10, "mask__learning_rate": 1e-2,
                "mask__l2": 0.0}
#: name -> (estimator, extra parameters). The PaInvRL settings walk the IID-OOD trade-off.
SYNTH_MODELS = {
    "UltraGCN (ERM baseline)": ("ultragcn", {}),
    "UltraGCN, item id L2 x20": ("ultragcn", {"item_l2_ratio": 20.0}),
    "InvRL setting (fixed, invariant, soft mask)": ("painvrl", {"mask__weighting": 0.0, "fusion": "invariant", "mask__l2": 0.1}),
    "PaInvRL default (MGDA, attention, soft mask)": ("painvrl", {}),
    "PaInvRL invariant, soft mask, id L2 x20": ("painvrl", {"fusion": "invariant", "item_l2_ratio": 20.0}),
    "PaInvRL invariant, hard mask": ("painvrl", {"fusion": "invariant", "mask__threshold": "auto"}),
    "PaInvRL invariant, hard mask, id L2 x20": ("painvrl", {"fusion": "invariant", "mask__threshold": "auto", "item_l2_ratio": 20.0}),
    "PaInvRL invariant, hard mask, id weight 0.5, id L2 x20": ("painvrl", {"fusion": "invariant", "mask__threshold": "auto", "item_l2_ratio": 20.0, "item_id_weight": 0.5}),
    "PaInvRL invariant, hard mask, no item ids": ("painvrl", {"fusion": "invariant", "mask__threshold": "auto", "item_id_weight": 0.0}),
    "PaInvRL attention, hard mask, id L2 x20": ("painvrl", {"mask__threshold": "auto", "item_l2_ratio": 20.0}),
    "PaInvRL with true environments, invariant, hard mask, id L2 x20": ("painvrl", {"fusion": "invariant", "mask__threshold": "auto", "item_l2_ratio": 20.0, "environments": "environment"}),
}


#: Former flat spellings of settings that are now inside a part object or renamed -> the current
#: spelling: EIOR's fusion and objective settings (``fusion=Fusion(...)``,
#: ``objective=FusedObjective(...)``) and MILK's ``environments`` (now ``mixtures``). A settings
#: table, a ``--variants`` JSON or an earlier results file may still use them.
FORMER_SPELLINGS = {
    "self_attention": "fusion__self_attention",
    "fusion_gate": "fusion__gate",
    "fusion_prior": "fusion__prior",
    "fusion_objective": "objective__fuse",
    "w_irm": "objective__w_irm",
    "w_erm": "objective__w_erm",
    "irm_weight": "objective__irm_weight",
    "environments": "mixtures",
}


def current_spelling(cls, settings):
    """``settings`` with the former spellings of ``cls``'s parameters (``FORMER_SPELLINGS``) in
    the current one: ``{"fusion_gate": False}`` is ``{"fusion__gate": False}`` for EIOR.

    A key is renamed only when ``cls`` has no parameter of that name and has the one its new
    spelling starts with (PaInvRL's and EIOR's ``environments`` stay; MILK's becomes ``mixtures``).
    """
    names = set(cls._get_param_names())
    out = {}
    for key, value in settings.items():
        new = FORMER_SPELLINGS.get(key)
        if new is not None and key not in names and new.split("__")[0] in names:
            key = new
        if key in out:
            raise ValueError(f"{cls.__name__} setting {key!r} is given twice (once in a former "
                             f"spelling); keep one.")
        out[key] = value
    return out


def make_estimator(cls, settings):
    """``cls`` from flat settings where a part setting has the nested spelling (``mask__epochs``,
    ``fusion__gate``, ``objective__w_erm``).

    Former flat spellings are read in the current one first (:func:`current_spelling`:
    ``fusion_gate`` is ``fusion__gate``, ``w_erm`` is ``objective__w_erm``). The plain keys go to
    the constructor, the nested ones to ``set_params`` (which turns a None part into the
    estimator's own default part first, and a str fusion into the ``Fusion`` of that mode: EIOR's
    mask keeps ``weighting=0.5``, ``{"fusion": "global", "fusion__prior": 0.9}`` is
    ``Fusion("global", prior=0.9)``). With ``environments`` naming a column of ``X`` (given
    labels) the ``environments__*`` inference settings do not apply and are dropped.
    """
    settings = current_spelling(cls, settings)
    plain = {k: v for k, v in settings.items() if "__" not in k}
    nested = {k: v for k, v in settings.items() if "__" in k}
    if isinstance(plain.get("environments"), str):
        nested = {k: v for k, v in nested.items() if not k.startswith("environments__")}
    return cls(**plain).set_params(**nested)


def given_environments(params):
    """Whether ``params`` name a column of ``X`` with the environment labels."""
    return isinstance(params.get("environments"), str)


def _estimator(kind, params, seed):
    from invrec import PaInvRLRecommender
    from invrec.baselines import UltraGCNRecommender

    if kind == "ultragcn":
        return UltraGCNRecommender(**{**SYNTH_BACKBONE, **params}, random_state=seed, device="cpu")
    return make_estimator(PaInvRLRecommender, {**SYNTH_BACKBONE, **SYNTH_STAGES, **params,
                                               "random_state": seed, "device": "cpu"})


def run_synthetic(args):
    from sklearn.metrics import roc_auc_score

    from invrec.datasets import make_multimodal_interactions

    rows = []
    names = args.models or list(SYNTH_MODELS)
    for seed in args.seeds:
        data = make_multimodal_interactions(n_users=args.n_users, n_items=args.n_items, random_state=seed)
        truth = np.concatenate([data.invariant_mask[m] for m in data.item_features.modalities])
        for name in names:
            kind, params = SYNTH_MODELS[name]
            model = _estimator(kind, params, seed)
            X = data.interactions if given_environments(params) else data.interactions[["user", "item"]]
            start = time.perf_counter()
            model.fit(X, item_features=data.item_features)
            fit_s = time.perf_counter() - start
            row = {"model": name, "seed": seed, "iid_ndcg@20": model.score(data.test),
                   "ood_ndcg@20": model.score(data.test_ood), "fit_s": fit_s, "params": params}
            if kind == "painvrl":
                mask = np.concatenate([model.invariant_mask_[m] for m in data.item_features.modalities])
                row["mask_auc"] = float(roc_auc_score(truth, mask))
                row["mean_gamma"] = float(model.pareto_weights_.mean()) if len(model.pareto_weights_) else None
                row["stage_s"] = dict(model.stage_times_)
            rows.append(row)
            print(f"seed {seed} {name}: IID {row['iid_ndcg@20']:.4f} OOD {row['ood_ndcg@20']:.4f} "
                  f"AUC {row.get('mask_auc', float('nan')):.3f} {fit_s:.1f}s", flush=True)
    summary = _summarise(rows, names)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "invariance_synthetic.json").write_text(json.dumps(
        {"command": " ".join(sys.argv), "machine": _machine(), "rows": rows, "summary": summary},
        indent=1, default=float))
    (out / "invariance_synthetic.md").write_text(_synthetic_markdown(summary, args))
    _plot_front(summary, out / "invariance_synthetic_front.png")
    print((out / "invariance_synthetic.md").read_text())


def _summarise(rows, names):
    summary = []
    base = [r for r in rows if r["model"] == "UltraGCN (ERM baseline)"]
    base_iid = np.mean([r["iid_ndcg@20"] for r in base]) if base else np.nan
    base_ood = np.mean([r["ood_ndcg@20"] for r in base]) if base else np.nan
    for name in names:
        mine = [r for r in rows if r["model"] == name]
        iid = float(np.mean([r["iid_ndcg@20"] for r in mine]))
        ood = float(np.mean([r["ood_ndcg@20"] for r in mine]))
        aucs = [r["mask_auc"] for r in mine if "mask_auc" in r]
        summary.append({"model": name, "iid": iid, "ood": ood,
                        "iid_sd": float(np.std([r["iid_ndcg@20"] for r in mine])),
                        "ood_sd": float(np.std([r["ood_ndcg@20"] for r in mine])),
                        "iid_vs_base": iid / base_iid, "ood_vs_base": ood / base_ood,
                        "mask_auc": float(np.mean(aucs)) if aucs else None,
                        "fit_s": float(np.mean([r["fit_s"] for r in mine])), "n_seeds": len(mine)})
    for s in summary:   # on the front: no other setting is at least as good on both, better on one
        s["front"] = not any(o["iid"] >= s["iid"] and o["ood"] >= s["ood"] and
                             (o["iid"] > s["iid"] or o["ood"] > s["ood"]) for o in summary)
    return summary


def _synthetic_markdown(summary, args):
    lines = ["# PaInvRL on the synthetic shift benchmark", "",
             f"`python benchmarks/invariance.py synthetic --seeds {' '.join(map(str, args.seeds))}` "
             f"(n_users={args.n_users}, n_items={args.n_items}); {_machine()}", "",
             "Mean over seeds (sd in brackets). Ratios are to the UltraGCN ERM baseline. "
             "Front: on the IID-OOD Pareto front of all rows.", "",
             "| model | IID N@20 | OOD N@20 | IID / base | OOD / base | mask AUC | fit s | front |",
             "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        auc = "-" if s["mask_auc"] is None else f"{s['mask_auc']:.3f}"
        lines.append(f"| {s['model']} | {s['iid']:.4f} ({s['iid_sd']:.4f}) | {s['ood']:.4f} ({s['ood_sd']:.4f}) | "
                     f"{s['iid_vs_base']:.2f} | {s['ood_vs_base']:.2f} | {auc} | {s['fit_s']:.1f} | "
                     f"{'yes' if s['front'] else ''} |")
    return "\n".join(lines) + "\n"


def _plot_front(summary, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:             # the plot is optional
        return
    fig, ax = plt.subplots(figsize=(10, 6))
    for s in summary:
        marker = "s" if s["model"].startswith("UltraGCN") else "o"
        ax.scatter(s["iid"], s["ood"], marker=marker, color="C1" if s["front"] else "C0")
        ax.annotate(s["model"], (s["iid"], s["ood"]), fontsize=6)
    ax.margins(x=0.35, y=0.1)                     # room for the labels
    ax.set_xlabel("in-distribution NDCG@20")
    ax.set_ylabel("out-of-distribution NDCG@20")
    ax.set_title("PaInvRL settings vs UltraGCN (orange: Pareto front)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# ----------------------------------------------------------------------------- TikTok
#: Known-good UltraGCN settings on TikTok (measured: test NDCG@20 0.0427 with validation stopping).
TIKTOK_BACKBONE = dict(batch_size=4096, learning_rate=1e-2, l2_embedding=1e-2, l2_content=1.0,
                       embedding_dim=128, content_dim=128, max_epochs=200, n_iter_no_change=30)
#: Known-good UltraGCN settings on Last.fm-2K-MM (measured: test NDCG@20 0.3195).
LASTFM_BACKBONE = dict(batch_size=4096, learning_rate=3e-3, l2_embedding=3e-2, l2_content=1.0,
                       embedding_dim=256, n_negatives=100, max_epochs=200, n_iter_no_change=30)
BACKBONES = {"tiktok": TIKTOK_BACKBONE, "lastfm": LASTFM_BACKBONE}
TITLES = {"tiktok": "TikTok (DiffMM split, visual + acoustic, validation-selected)",
          "lastfm": "Last.fm-2K-MM (x_label split, validation-selected)"}
#: InvRL's reduced budget on these machines (2 outer iterations, 2 environment rounds), with
#: fewer epochs per stage: the batched environment models converge in a few epochs.
#: Nested spelling, as ``SYNTH_STAGES`` (build with :func:`make_estimator`).
TIKTOK_STAGES = {"n_outer_iter": 2, "environments__n_environments": 10, "environments__max_rounds": 2,
                 "environments__epochs": 5, "environments__embedding_dim": 32, "mask__epochs": 3,
                 "mask__learning_rate": 1e-2}
TIKTOK_MODELS = {
    "UltraGCN (ERM baseline)": ("ultragcn", {}),
    "InvRL setting": ("painvrl", {"mask__weighting": 0.0, "fusion": "invariant"}),
    "PaInvRL": ("painvrl", {}),
    "PaInvRL, invariant fusion": ("painvrl", {"fusion": "invariant"}),
    "PaInvRL, invariant fusion, hard mask": ("painvrl", {"fusion": "invariant", "mask__threshold": "auto"}),
    "PaInvRL, 10 mask epochs": ("painvrl", {"mask__epochs": 10}),
}
DEFAULT_TIKTOK = ["UltraGCN (ERM baseline)", "InvRL setting", "PaInvRL"]


def run_dataset(args):
    import protocol
    import torch

    from invrec import PaInvRLRecommender
    from invrec.baselines import UltraGCNRecommender

    split = protocol.load_split(args.part, args.data_dir)
    backbone = {**BACKBONES[args.part], **json.loads(args.backbone)}
    test_users = split.eval_users(split.test)
    rows = []
    for name in args.models or DEFAULT_TIKTOK:
        kind, params = TIKTOK_MODELS[name]
        cls = UltraGCNRecommender if kind == "ultragcn" else PaInvRLRecommender
        extra = {} if kind == "ultragcn" else TIKTOK_STAGES
        model = make_estimator(cls, {**backbone, **extra, **params, "random_state": 0, "device": "cpu"})
        start = time.perf_counter()
        model.fit(split.train, item_features=split.item_features, validation_data=split.valid)
        fit_s = time.perf_counter() - start
        recs = model.recommend(test_users, n=20, exclude=split.valid)
        row = {"model": name, **protocol.evaluate(recs, split.test), "fit_s": fit_s,
               "params": {**backbone, **extra, **params}}
        final = [h for h in model.history_ if h.get("stage") == "final"]
        row["final_epochs"] = len(final)
        row["best_epoch"] = max([i + 1 for i, h in enumerate(final) if h.get("best")], default=None)
        row["valid_ndcg@20"] = max([h.get("valid_ndcg@20", 0.0) for h in final], default=None)
        if kind == "painvrl":
            row["stage_s"] = dict(model.stage_times_)
            rounds = [h for h in model.history_ if h.get("stage") == "environments"]
            row["env_rounds"] = len(rounds)
            row["env_sizes_last_round"] = rounds[-1]["sizes"] if rounds else None
            row["env_changed"] = [h["changed"] for h in rounds]
            row["env_round_train_s"] = float(np.mean([h["train_time"] for h in rounds])) if rounds else None
            row["env_epoch_s"] = row["env_round_train_s"] / TIKTOK_STAGES["environments__epochs"] if rounds else None
            row["env_assign_s"] = float(np.mean([h["assign_time"] for h in rounds])) if rounds else None
            row["final_epoch_s"] = float(np.mean([h["fit_time"] for h in final]))
            row["mask_epoch_s"] = float(np.mean([h["fit_time"] for h in model.history_ if h.get("stage") == "mask"]))
            row["mean_gamma"] = float(model.pareto_weights_.mean()) if len(model.pareto_weights_) else None
            row["attention_mean"] = model.attention_weights_.mean(0).tolist()
            row["mask_mean"] = {k: float(v.mean()) for k, v in model.invariant_mask_.items()}
        else:
            row["final_epoch_s"] = float(np.mean([h["fit_time"] for h in final]))
        rows.append(row)
        print(json.dumps(row, default=float), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"invariance_{args.part}.json").write_text(json.dumps(
        {"command": " ".join(sys.argv), "machine": _machine(), "threads": torch.get_num_threads(),
         "rows": rows}, indent=1, default=float))
    lines = [f"# PaInvRL on {TITLES[args.part]}", "",
             f"`{' '.join(['python', 'benchmarks/invariance.py', *sys.argv[1:]])}`; {_machine()}, "
             f"{torch.get_num_threads()} torch thread(s)", "",
             "| model | R@20 | N@20 | fit s | environments s | mask s | final s | final epochs (best) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        st = r.get("stage_s", {})
        lines.append(f"| {r['model']} | {r['recall@20']:.4f} | {r['ndcg@20']:.4f} | {r['fit_s']:.1f} | "
                     f"{st.get('environments', 0):.1f} | {st.get('mask', 0):.1f} | "
                     f"{st.get('final', r['fit_s']):.1f} | {r['final_epochs']} ({r['best_epoch']}) |")
    lines += ["", "Official InvRL code, reduced budget, same split and machines (peers.md): N@20 0.0316, "
              "R@20 0.069, about 25 minutes. DiffMM (published, 3 modalities, test-selected): "
              "N@20 0.0456, R@20 0.1129."]
    if args.part != "tiktok":
        lines = lines[:-2]
    (out / f"invariance_{args.part}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _machine():
    import torch
    return f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["synthetic", "tiktok", "lastfm"])
    parser.add_argument("--backbone", default="{}",
                        help="JSON overrides of the real-data backbone settings, e.g. '{\"content_dim\": 64}'")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--n-users", type=int, default=300)
    parser.add_argument("--n-items", type=int, default=200)
    parser.add_argument("--models", nargs="+", default=None, help="subset of the model names")
    parser.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.part == "synthetic":
        run_synthetic(args)
    else:
        import protocol
        if not protocol.dataset_folder(args.part, args.data_dir).is_dir():
            print(f"no {args.part} data under {args.data_dir}: skipped")
            return
        run_dataset(args)


if __name__ == "__main__":
    main()
