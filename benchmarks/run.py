"""Benchmark invrec's baselines against Cornac peers on TikTok and Last.fm-2K-MM.

Usage::

    python benchmarks/run.py [--datasets tiktok lastfm] [--models ...] [--data-dir ../shared/data]
                             [--out benchmarks/results] [--quick]
                             [--ultragcn-params '{"learning_rate": 0.01}']

Every (dataset, model) pair runs in its own subprocess (this script with ``--worker``), so the
peak resident memory reported is that process's ``ru_maxrss`` alone. The parent collects one row
per pair and writes ``results.json`` (list of row dicts) and ``results.md`` (one table per
dataset) under ``--out`` after each row. See ``benchmarks/README.md`` for the protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from runners import INVREC_ESTIMATORS, RUNNERS  # beside this script, as protocol.py

HERE = Path(__file__).resolve().parent
#: Every row: each invrec estimator of ``all_estimators()`` (and its variant rows), then the peers.
MODELS = tuple(RUNNERS)
#: The rows of a plain run: every estimator and peer. The per-positive row is a sampling study
#: (``--models ultragcn-per-positive``; ``epoch_speed.py`` times it alone).
DEFAULT_MODELS = tuple(m for m in MODELS if m != "ultragcn-per-positive")
#: Row labels: "invrec <class name without Recommender>" unless named here.
LABELS = {
    **{name: "invrec " + cls.__name__.removesuffix("Recommender") for name, cls in INVREC_ESTIMATORS.items()},
    "ultragcn": "invrec UltraGCN, defaults",
    "ultragcn-tuned": "invrec UltraGCN, validation-selected grid",
    "ultragcn-per-positive": "invrec UltraGCN, per-positive negatives",
    "milk": "invrec MILK (content only, no item ids)",
    "cornac-mostpop": "Cornac MostPop",
    "cornac-bpr": "Cornac BPR",
    "cornac-vbpr": "Cornac VBPR",
}
#: Cumulative BPR epoch counts at which validation NDCG@20 is measured (full run, quick run).
BPR_CHECKPOINTS = ([10, 20, 50, 100, 200, 400, 700, 1000], [2, 5])
#: VBPR's single-fit epoch cap per dataset (TikTok: 10 as in peers.md, ~10 s/epoch there).
VBPR_EPOCHS = {"tiktok": 10, "lastfm": 30}
#: The validation-selected UltraGCN row's search (``--ultragcn-grid`` replaces it), 8 fits: the
#: step size, the id width paired with its L2 weight (wider tables need more), the negatives.
ULTRAGCN_GRID = [
    {"learning_rate": [3e-3, 1e-2], "embedding_dim": [128], "l2_embedding": [1e-2], "n_negatives": [50, 100]},
    {"learning_rate": [3e-3, 1e-2], "embedding_dim": [256], "l2_embedding": [3e-2], "n_negatives": [50, 100]},
]
#: Epoch caps of the quick smoke run.
QUICK_EPOCHS = {"ultragcn": 3, "ultragcn-tuned": 2, "ultragcn-per-positive": 1, "painvrl": 2, "eior": 2,
                "milk": 2, "cornac-vbpr": 1}
#: Stage budget of the quick smoke run (PaInvRL, EIOR).
QUICK_STAGES = {"n_outer_iter": 1, "environments__max_rounds": 1, "environments__epochs": 1,
                "mask__epochs": 1}


def method_settings(model, dataset):
    """Settings of the PaInvRL, EIOR and MILK rows: the ones their own benchmarks use.

    PaInvRL and EIOR: the dataset's known-good UltraGCN backbone (invrec's defaults on TikTok;
    ``LASTFM_BACKBONE`` on Last.fm, the grid's pick) with the laptop-sized stage budget of
    ``invariance.py`` (``TIKTOK_STAGES``). MILK: the rows of ``new_items.py`` (``MILK_COMMON``
    and ``MILK_DATASET``), here ranking every catalog item from content alone.
    """
    if model == "milk":
        from new_items import MILK_COMMON, MILK_DATASET

        return {**MILK_COMMON, **MILK_DATASET.get(dataset, {})}
    from invariance import LASTFM_BACKBONE, TIKTOK_STAGES

    backbone = LASTFM_BACKBONE if dataset == "lastfm" else {}
    return {**backbone, **TIKTOK_STAGES}


# ---------------------------------------------------------------------- settings
def model_settings(model, dataset, args):
    """Constructor settings of ``model`` on ``dataset`` for this run.

    UltraGCN rows start from invrec's defaults plus ``--ultragcn-params``; the per-positive row
    then switches to InvRL's sampling (``negative_sampling="per_positive"``, all else equal) under
    an epoch cap of ``--per-positive-epochs``: its speed and its validation curve set against the
    defaults row's show what sharing the negatives costs in time and in quality.
    """
    if model == "ultragcn":
        settings = dict(args.ultragcn_params)
    elif model == "ultragcn-tuned":
        settings = {**args.ultragcn_params, "grid": args.ultragcn_grid}
    elif model == "ultragcn-per-positive":
        settings = {**args.ultragcn_params, "negative_sampling": "per_positive",
                    "max_epochs": args.per_positive_epochs}
    elif model in ("painvrl", "eior", "milk"):
        settings = method_settings(model, dataset)
        if args.quick and model != "milk":
            settings.update(QUICK_STAGES)
    elif model == "cornac-bpr":
        settings = {"checkpoints": BPR_CHECKPOINTS[1] if args.quick else BPR_CHECKPOINTS[0]}
    elif model == "cornac-vbpr":
        settings = {"n_epochs": VBPR_EPOCHS[dataset], "features": args.vbpr_features}
    else:
        settings = {}
    if args.quick and model in QUICK_EPOCHS:
        settings["n_epochs" if model == "cornac-vbpr" else "max_epochs"] = QUICK_EPOCHS[model]
    elif args.quick and model in INVREC_ESTIMATORS and "max_epochs" in INVREC_ESTIMATORS[model]().get_params():
        settings["max_epochs"] = 2  # an estimator without a quick cap of its own yet
    return settings


# ---------------------------------------------------------------------- worker side
def peak_mib():
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def worker(args):
    """Fit one model on one dataset, rank the test users, write the row as JSON."""
    import torch

    import protocol

    if args.threads:
        torch.set_num_threads(args.threads)
    split = protocol.load_split(args.dataset, args.data_dir)
    before_fit = peak_mib()
    fitted = RUNNERS[args.worker](split, json.loads(args.settings))
    users = split.eval_users(split.test)
    start = time.perf_counter()
    recs = fitted.recommend(users)
    scoring_s = time.perf_counter() - start
    row = {
        "dataset": args.dataset,
        "model": args.worker,
        "label": LABELS[args.worker],
        **protocol.evaluate(recs, split.test),
        "valid_ndcg@20": fitted.valid_ndcg,
        "fit_s": fitted.fit_s,
        "epochs": fitted.epochs,
        "best_epoch": fitted.best_epoch,
        "s_per_epoch": None if not fitted.epochs else fitted.train_s / fitted.epochs,
        "scoring_s": scoring_s,
        "peak_mib": peak_mib(),
        "peak_mib_after_load": before_fit,
        "n_ranked_users": int(len(users)),
        "n_test_users": int(split.test["user"].nunique()),
        "torch_threads": torch.get_num_threads(),
        "settings": fitted.settings,
        "notes": fitted.notes,
        **fitted.extra,
    }
    Path(args.result_file).write_text(json.dumps(row, default=_jsonable, indent=1))


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


# ---------------------------------------------------------------------- parent side
def run_one(model, dataset, settings, args):
    """Run one (dataset, model) pair in a fresh subprocess; return its row (or an error row)."""
    logs = Path(args.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result = logs / f"{dataset}-{model}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", model, "--dataset", dataset,
           "--data-dir", str(args.data_dir), "--settings", json.dumps(settings), "--result-file", str(result)]
    env = dict(os.environ)
    cmd += ["--threads", str(args.threads)]
    if args.threads:
        env.update({name: str(args.threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    start = time.perf_counter()
    with open(logs / f"{dataset}-{model}.log", "w") as log:
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout,
                                  cwd=HERE, env=env)
            failure = None if proc.returncode == 0 else f"exit code {proc.returncode}"
        except subprocess.TimeoutExpired:
            failure = f"killed after {args.timeout} s"
    wall = time.perf_counter() - start
    if failure is None and result.exists():
        row = json.loads(result.read_text())
    else:
        row = {"dataset": dataset, "model": model, "label": LABELS[model], "settings": settings,
               "error": f"{failure or 'no result'}; see {logs / f'{dataset}-{model}.log'}"}
    row["process_wall_s"] = wall
    return row


def machine_info(args):
    """Platform, CPU count, torch threads and library versions of this machine."""
    import torch

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": args.threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "invrec": version("invrec"),
        "cornac": version("cornac"),
        "numpy": version("numpy"),
    }


def machine_line(machine):
    return (f"{machine['platform']}, {machine['cpu_count']} CPUs, torch {machine['torch']} with "
            f"{machine['torch_threads']} threads, invrec {machine['invrec']}, cornac {machine['cornac']}, "
            f"python {machine['python']}")


def _fmt(value, digits):
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def table_lines(rows):
    """Markdown table of one dataset's rows."""
    head = ["model", "R@10", "R@20", "N@10", "N@20", "fit s", "epochs (best)", "s/epoch", "scoring s", "peak MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['label']} | failed: {row['error']} |" + " |" * (len(head) - 2))
            continue
        epochs = "-" if row["epochs"] is None else f"{row['epochs']} ({row['best_epoch']})"
        cells = [row["label"], *(_fmt(row[m], 4) for m in ("recall@10", "recall@20", "ndcg@10", "ndcg@20")),
                 _fmt(row["fit_s"], 1), epochs, _fmt(row["s_per_epoch"], 2), _fmt(row["scoring_s"], 2),
                 _fmt(row["peak_mib"], 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def settings_lines(rows):
    """One bullet per row: its settings and notes."""
    lines = []
    for row in rows:
        settings = json.dumps(row.get("settings", {}), default=str, separators=(", ", ": "))
        extra = "".join(f" {note}." for note in row.get("notes", []))
        if "n_ranked_users" in row:
            extra += (f" Validation N@20 {_fmt(row['valid_ndcg@20'], 4)};"
                      f" {row['n_ranked_users']} of {row['n_test_users']} test users ranked;"
                      f" peak MiB after loading the data {row['peak_mib_after_load']:.0f}.")
        if row.get("stage_s"):
            extra += " Stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in row["stage_s"].items()) + "."
        if row.get("finished"):
            extra += f" Run {row['finished']}, commit {row.get('git_commit')}."
        lines.append(f"- **{row['label']}**: `{settings}`.{extra}")
    return lines


def summary_lines(rows):
    """One table, a row per model and a column group per dataset: R@20, N@20, fit s."""
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    labels = list(dict.fromkeys(row["label"] for row in rows))
    by_key = {(row["dataset"], row["label"]): row for row in rows}
    head = ["model", *(f"{d} {c}" for d in datasets for c in ("R@20", "N@20", "fit s"))]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in labels:
        cells = [label]
        for dataset in datasets:
            row = by_key.get((dataset, label))
            if row is None or "error" in row:
                cells += ["-" if row is None else "failed", "", ""]
            else:
                cells += [_fmt(row["recall@20"], 4), _fmt(row["ndcg@20"], 4), _fmt(row["fit_s"], 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(rows, args, machine, total_s=None):
    """Write ``results.json`` and ``results.md`` under ``args.out``."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1, default=str))
    lines = [
        "# invrec benchmark", "",
        f"Command: `{args.command}`", "",
        f"Machine: {machine_line(machine)}.", "",
        f"Date: {args.started}" + ("" if total_s is None else f"; total wall time {total_s / 60:.1f} min") + "."
        + (f" {reused} row(s) reused from earlier runs (--resume; their dates and commits are under"
           " Settings)." if (reused := sum(row.get("finished", "") < args.started for row in rows)) else ""), "",
        "Full ranking over all catalog items, each test user's training and validation items "
        "excluded; R = Recall, N = NDCG; fit s includes per-epoch validation; s/epoch is training "
        "only; scoring s ranks every test user once; peak MiB is the worker process's ru_maxrss.",
    ]
    lines += ["", "## Every model on every dataset", "", *summary_lines(rows)]
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        subset = [row for row in rows if row["dataset"] == dataset]
        lines += ["", f"## {dataset}", "", *table_lines(subset), "", "Settings:", "", *settings_lines(subset)]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def git_commit():
    """Short hash of the checkout's HEAD, with ``+dirty`` when tracked files differ; None outside git."""
    def git(*argv):
        return subprocess.run(["git", *argv], cwd=HERE, capture_output=True, text=True, check=True).stdout
    try:
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
        return git("rev-parse", "--short", "HEAD").strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def previous_rows(args):
    """Successful rows of ``OUT/results.json`` keyed by (dataset, model, requested settings)."""
    path = Path(args.out) / "results.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())
    return {(row["dataset"], row["model"], json.dumps(row["requested_settings"], sort_keys=True)): row
            for row in rows if "error" not in row and "requested_settings" in row}


def cornac_available():
    try:
        metadata.version("cornac")
        return True
    except metadata.PackageNotFoundError:
        return False


def main(args):
    import protocol

    machine = machine_info(args)
    print(f"Machine: {machine_line(machine)}", flush=True)
    rows, start = [], time.perf_counter()
    commit = git_commit()
    previous = previous_rows(args) if args.resume else {}
    models = [m for m in args.models if not m.startswith("cornac") or cornac_available()]
    for skipped in sorted(set(args.models) - set(models)):
        print(f"skip {skipped}: cornac is not installed (pip install -r benchmarks/requirements.txt)")
    for dataset in args.datasets:
        folder = protocol.dataset_folder(dataset, args.data_dir)
        if not folder.is_dir():
            print(f"skip {dataset}: {folder} does not exist", flush=True)
            continue
        for model in models:
            settings = model_settings(model, dataset, args)
            kept = previous.get((dataset, model, json.dumps(settings, sort_keys=True)))
            if kept is not None and model not in args.rerun:
                print(f"reuse {dataset} / {model} from {kept.get('finished', 'an earlier run')}", flush=True)
                rows.append(kept)
                continue
            print(f"[{time.perf_counter() - start:7.1f} s] {dataset} / {model} {json.dumps(settings)}", flush=True)
            row = run_one(model, dataset, settings, args)
            row.update(requested_settings=settings, git_commit=commit,
                       finished=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
            rows.append(row)
            print("    " + (row.get("error") or f"N@20 {row['ndcg@20']:.4f}, R@20 {row['recall@20']:.4f}, "
                                                  f"fit {row['fit_s']:.1f} s, peak {row['peak_mib']:.0f} MiB"), flush=True)
            write_report(rows, args, machine)
    total = time.perf_counter() - start
    write_report(rows, args, machine, total_s=total)
    print(f"Done in {total / 60:.1f} min; wrote {Path(args.out) / 'results.md'}")
    return 1 if any("error" in row for row in rows) else 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["tiktok", "lastfm"], choices=["tiktok", "lastfm"])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=MODELS,
                        help="rows to run (default: every estimator and peer; not ultragcn-per-positive)")
    parser.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"),
                        help="folder holding tiktok/ and lastfm-2k-mm/ (default: ../shared/data)")
    parser.add_argument("--out", default=str(HERE / "results"), help="where results.json/.md go")
    parser.add_argument("--quick", action="store_true", help="tiny epoch caps: a smoke test")
    parser.add_argument("--ultragcn-params", type=json.loads, default={},
                        help="JSON dict of UltraGCNRecommender arguments overriding its defaults")
    parser.add_argument("--ultragcn-grid", type=json.loads, default=ULTRAGCN_GRID,
                        help="JSON {parameter: [values]} (or a list of them, as sklearn's ParameterGrid) "
                             "searched on validation by the ultragcn-tuned row (default: ULTRAGCN_GRID)")
    parser.add_argument("--vbpr-features", choices=["l2", "raw"], default="l2",
                        help="VBPR input: each modality L2-normalised (default) or raw, concatenated")
    parser.add_argument("--per-positive-epochs", type=int, default=60,
                        help="epoch cap of the per-positive UltraGCN row (default 60)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/OpenMP threads per worker (default 1, steady on a shared machine; "
                             "0 leaves torch's own choice, one per core)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the successful rows of OUT/results.json whose dataset, model and "
                             "settings match this run's; run only the other pairs")
    parser.add_argument("--rerun", nargs="+", default=[], choices=MODELS, metavar="MODEL",
                        help="with --resume: run these models again even if a matching row exists")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per model run")
    # Internal: run one model in this process (used by the parent).
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not isinstance(args.ultragcn_params, dict):
        parser.error("--ultragcn-params must be a JSON object")
    grids = args.ultragcn_grid if isinstance(args.ultragcn_grid, list) else [args.ultragcn_grid]
    if not grids or not all(isinstance(g, dict) and all(isinstance(v, list) and v for v in g.values())
                            for g in grids):
        parser.error("--ultragcn-grid must be a JSON object of non-empty lists, or a list of them")
    args.data_dir = str(Path(args.data_dir).resolve())
    args.out = str(Path(args.out).resolve())
    args.command = shlex.join(["python", *sys.argv])
    args.started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.worker:
        worker(arguments)
    else:
        sys.exit(main(arguments))
