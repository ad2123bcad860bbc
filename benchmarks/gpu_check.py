"""GPU check: CUDA fits match CPU fits, CUDA models load on a CPU-only machine, GPU vs CPU epochs.

Usage::

    python benchmarks/gpu_check.py [--json PATH]        # on a CUDA machine: every part below
    python benchmarks/gpu_check.py --smoke              # seconds: tiny sizes (CI, no GPU needed)
    python benchmarks/gpu_check.py --sizes 1e6 2e7 --cpu-sizes 1e6 2e7   # CPU epochs at 2e7 too

Three parts, each printed as a table (and all written to ``--json PATH``):

1. **Portability.** Every estimator of ``invrec.all_estimators()``, in a tiny configuration, is
   fitted with ``device="cuda"``, scores a fixed set of pairs and top-5 lists, and is written with
   :func:`invrec.save`. A fresh Python process with ``CUDA_VISIBLE_DEVICES=""`` (so that torch
   sees no GPU, as on a CPU-only machine; the child checks ``torch.cuda.is_available()`` is
   False) loads each file with :func:`invrec.load` and scores the same pairs and lists. Pass:
   the loaded model's tensors are on the CPU and its scores equal the CUDA model's within
   ``1e-5`` (relative, for scores above 1; float32 kernels differ between devices).
2. **Quality.** ``UltraGCNRecommender`` and ``PaInvRLRecommender`` at the synthetic settings of
   ``invariance.py`` (``SYNTH_BACKBONE``, ``SYNTH_STAGES``) on
   ``make_multimodal_interactions(random_state=seed)``, each seed fitted once on the CPU and once
   on CUDA with the same ``random_state``; test NDCG@20 (``model.score``). The two devices draw
   different random streams from the same seed, so the fits differ as two seeds do: the check
   is statistical. Pass: ``|mean(cuda - cpu)| <= max(3 * se, 0.005)``, ``se`` the standard error
   of the paired differences over the seeds.
3. **Epoch time.** ``UltraGCNRecommender(embedding_dim=32, content_dim=32)`` on the Zipf data of
   ``scale.py`` (users = n/20, items = n/100, two 64-d modalities), no validation, ``--epochs``
   epochs on CUDA at each of ``--sizes`` and on the CPU at each of ``--cpu-sizes`` (all cores
   unless ``--cpu-threads``), after a warm-up fit on each device. The epoch time is
   ``history_[i]["fit_time"]`` (its end reads the loss, which synchronises the GPU), the mean of
   the epochs after the first when there are two or more; ``torch.cuda.synchronize()`` brackets
   the wall times; peak GPU memory is ``torch.cuda.max_memory_allocated``. A top-20
   ``recommend`` for 10,000 users is timed too.

Without CUDA the script says so, runs the CPU half (portability from CPU fits, the CPU quality
fits, CPU epochs) at ``--smoke`` sizes and exits 0 when those pass. Exit status 1 when a check
fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scale import INVREC_PARAMS, machine_info, make_zipf_interactions, markdown_table, parse_size  # noqa: E402

#: Settings that make any estimator tiny: applied to those of its parameters that exist.
TINY = {"max_epochs": 2, "batch_size": 64, "embedding_dim": 4, "content_dim": 4, "n_negatives": 4,
        "early_stopping": False, "random_state": 0, "n_outer_iter": 1,
        "environments__n_environments": 2, "environments__max_rounds": 1, "environments__epochs": 1,
        "mask__epochs": 1}
#: Largest score difference between a model on its training device and its reloaded CPU copy
#: (relative to the largest score when that exceeds 1: a regressor's ratings).
SCORE_TOLERANCE = 1e-5
#: Quality: floor of the tolerance on the mean NDCG@20 difference, and the standard errors allowed.
NDCG_FLOOR, NDCG_Z = 0.005, 3.0
LOAD_MARK = "GPU-CHECK-LOAD "


# ---------------------------------------------------------------------------- devices
def cuda_available():
    import torch

    return torch.cuda.is_available()


def synchronize(device):
    """Wait for the device's queued kernels (a no-op on the CPU), so that wall times are real."""
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------- 1. portability
def tiny_estimator(cls, device):
    """``cls()`` with the :data:`TINY` settings it has, on ``device``."""
    params = cls().get_params(deep=True)
    settings = {key: value for key, value in TINY.items() if key in params}
    plain = {k: v for k, v in settings.items() if "__" not in k}
    nested = {k: v for k, v in settings.items() if "__" in k}
    if "device" in params:
        plain["device"] = device
    return cls(**plain).set_params(**nested)


def portability_problem():
    """A tiny generated problem, with 1-5 ratings for the estimators that require ``y``."""
    from invrec.datasets import make_multimodal_interactions

    data = make_multimodal_interactions(n_users=40, n_items=30, interactions_per_user=4, random_state=0)
    X = data.interactions[["user", "item"]]
    ratings = np.random.default_rng(0).integers(1, 6, len(X)).astype(float)
    pairs = X.drop_duplicates().iloc[:25].reset_index(drop=True)
    return X, ratings, data.item_features, pairs, np.unique(X["user"])[:5]


def _scores_of(model, pairs, users):
    """What a model says: its scores of ``pairs``, and its top-5 lists of ``users``."""
    lists = model.recommend(users, n=5)
    return {"predict": np.asarray(model.predict(pairs), dtype=float).tolist(),
            "items": lists["item"].tolist(), "scores": lists["score"].astype(float).tolist()}


def fit_and_save(device, folder):
    """Fit every estimator tiny on ``device``, save each to ``folder``; what each said, and where."""
    import invrec

    X, ratings, features, pairs, users = portability_problem()
    saved = []
    for name, cls in invrec.all_estimators():
        model = tiny_estimator(cls, device)
        y = ratings if model.__sklearn_tags__().target_tags.required else None
        model.fit(X, y, item_features=features)
        path = Path(folder) / f"{name}.invrec"
        invrec.save(model, path)
        saved.append({"name": name, "path": str(path), "device_": getattr(model, "device_", None),
                      **_scores_of(model, pairs, users)})
    return saved, pairs, users


def load_and_score(manifest):
    """In the CPU-only child: load every saved model, say where its tensors are and what it scores."""
    import pandas as pd
    import torch

    import invrec

    pairs = pd.DataFrame(manifest["pairs"])
    users = np.asarray(manifest["users"])
    out = {"cuda_available": torch.cuda.is_available(), "models": {}}
    for entry in manifest["models"]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = invrec.load(entry["path"])
            result = _scores_of(model, pairs, users)
        module = getattr(model, "module_", None)
        devices = sorted({str(t.device) for t in module.parameters()}) if module is not None else ["cpu"]
        out["models"][entry["name"]] = {**result, "tensor_devices": devices,
                                        "warnings": [str(w.message) for w in caught]}
    return out


def compare_loaded(saved, loaded):
    """One row per estimator: the reloaded CPU copy against the model as fitted."""
    rows = []
    for entry in saved:
        got = loaded["models"].get(entry["name"])
        if got is None:
            rows.append({"estimator": entry["name"], "ok": False, "error": "not loaded"})
            continue
        diff = max(float(np.max(np.abs(np.subtract(entry["predict"], got["predict"])), initial=0.0)),
                   float(np.max(np.abs(np.subtract(entry["scores"], got["scores"])), initial=0.0))
                   if len(entry["scores"]) == len(got["scores"]) else float("inf"))
        on_cpu = got["tensor_devices"] == ["cpu"]
        scale = max(1.0, float(np.max(np.abs(entry["predict"] + entry["scores"]), initial=0.0)))
        rows.append({"estimator": entry["name"], "fitted_on": entry["device_"], "loaded_on": got["tensor_devices"],
                     "max_score_diff": diff, "lists_identical": entry["items"] == got["items"],
                     "warnings": got["warnings"], "ok": bool(on_cpu and diff <= SCORE_TOLERANCE * scale)})
    return rows


def check_portability(device):
    """Part 1: fit and save on ``device``, load and score in a process that sees no GPU."""
    with tempfile.TemporaryDirectory(prefix="invrec-gpu-check-") as folder:
        saved, pairs, users = fit_and_save(device, folder)
        manifest = {"models": [{"name": s["name"], "path": s["path"]} for s in saved],
                    "pairs": pairs.to_dict(orient="list"), "users": users.tolist()}
        spec = Path(folder) / "manifest.json"
        spec.write_text(json.dumps(manifest))
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--load-check", str(spec)],
                              capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith(LOAD_MARK)]
    if not lines:
        tail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        return {"ok": False, "error": f"the CPU-only process failed (exit {done.returncode}): {tail}", "rows": []}
    loaded = json.loads(lines[-1][len(LOAD_MARK):])
    rows = compare_loaded(saved, loaded)
    ok = not loaded["cuda_available"] and all(row["ok"] for row in rows)
    return {"ok": ok, "child_saw_cuda": loaded["cuda_available"], "rows": rows}


# ---------------------------------------------------------------------------- 2. quality
def within_noise(cpu, cuda, *, floor=NDCG_FLOOR, z=NDCG_Z):
    """Whether paired scores of two devices agree within seed noise.

    Parameters
    ----------
    cpu, cuda : sequence of float
        The same seeds' scores on each device.
    floor : float, default=0.005
        Smallest tolerance (for seeds that agree almost exactly).
    z : float, default=3.0
        Standard errors of the mean paired difference allowed.

    Returns
    -------
    dict
        ``mean_cpu``, ``mean_cuda``, ``mean_diff`` (cuda - cpu), ``se``, ``tolerance``, ``ok``.
    """
    cpu, cuda = np.asarray(cpu, dtype=float), np.asarray(cuda, dtype=float)
    if cpu.shape != cuda.shape or cpu.size == 0:
        raise ValueError(f"cpu and cuda need one score per seed each; got {cpu.size} and {cuda.size}.")
    diff = cuda - cpu
    se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else float("nan")
    tolerance = max(z * se, floor) if np.isfinite(se) else floor
    return {"mean_cpu": float(cpu.mean()), "mean_cuda": float(cuda.mean()), "mean_diff": float(diff.mean()),
            "se": se, "tolerance": tolerance, "ok": bool(abs(diff.mean()) <= tolerance)}


def quality_estimator(kind, seed, device, max_epochs=None):
    from invariance import SYNTH_BACKBONE, SYNTH_STAGES, make_estimator

    from invrec import PaInvRLRecommender, UltraGCNRecommender

    settings = {**SYNTH_BACKBONE, "random_state": seed, "device": device}
    if max_epochs is not None:
        settings["max_epochs"] = max_epochs
    if kind == "ultragcn":
        return UltraGCNRecommender(**settings)
    return make_estimator(PaInvRLRecommender, {**settings, **SYNTH_STAGES})


def check_quality(devices, seeds, kinds, *, n_users=300, n_items=200, max_epochs=None):
    """Part 2: test NDCG@20 of each kind, seed and device; the noise verdict when CUDA is among them."""
    from invrec.datasets import make_multimodal_interactions

    rows = []
    for seed in seeds:
        data = make_multimodal_interactions(n_users=n_users, n_items=n_items, random_state=seed)
        X = data.interactions[["user", "item"]]
        for kind in kinds:
            for device in devices:
                model = quality_estimator(kind, seed, device, max_epochs)
                start = time.perf_counter()
                model.fit(X, item_features=data.item_features)
                synchronize(device)
                rows.append({"model": kind, "seed": seed, "device": device, "fit_s": time.perf_counter() - start,
                             "epochs": len([r for r in model.history_ if r.get("stage", "final") == "final"]),
                             "test_ndcg@20": float(model.score(data.test))})
    verdicts = {}
    if "cuda" in devices and "cpu" in devices:
        for kind in kinds:
            score = {(r["seed"], r["device"]): r["test_ndcg@20"] for r in rows if r["model"] == kind}
            verdicts[kind] = within_noise([score[s, "cpu"] for s in seeds], [score[s, "cuda"] for s in seeds])
    return {"ok": all(v["ok"] for v in verdicts.values()), "rows": rows, "verdicts": verdicts}


# ---------------------------------------------------------------------------- 3. epoch time
def epoch_run(train, features, device, epochs, recommend_users=10_000):
    """One UltraGCN fit of ``epochs`` epochs on ``device`` and a top-20 recommend: the times."""
    import torch

    from invrec import UltraGCNRecommender

    model = UltraGCNRecommender(**INVREC_PARAMS, max_epochs=epochs, early_stopping=False,
                                device=device, random_state=0)
    cuda = str(device).startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    synchronize(device)
    start = time.perf_counter()
    model.fit(train, item_features=features)
    synchronize(device)
    wall = time.perf_counter() - start
    times = [record["fit_time"] for record in model.history_]
    users = np.unique(train["user"].to_numpy())[:recommend_users]
    synchronize(device)
    start = time.perf_counter()
    model.recommend(users, n=20)
    synchronize(device)
    recommend = time.perf_counter() - start
    return {"device": str(device), "epoch_s": float(np.mean(times[1:] if len(times) > 1 else times)),
            "first_epoch_s": times[0], "fit_wall_s": wall, "recommend_s": recommend,
            "recommend_users": len(users), "torch_threads": torch.get_num_threads(),
            "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None}


def check_epochs(sizes, cpu_sizes, epochs, cuda):
    """Part 3: epoch times per size, on CUDA (when there) and on the CPU, and their ratio."""
    rows = []
    devices = (["cuda"] if cuda else []) + ["cpu"]
    small, small_features = make_zipf_interactions(10_000, random_state=1)
    for device in devices:
        epoch_run(small, small_features, device, 1, recommend_users=10)     # warm-up
    for n in sorted(set(sizes) | set(cpu_sizes)):
        train, features = make_zipf_interactions(n, random_state=0)
        row = {"n_interactions": n}
        if cuda and n in sizes:
            row["cuda"] = epoch_run(train, features, "cuda", epochs)
        if n in cpu_sizes or not cuda:
            row["cpu"] = epoch_run(train, features, "cpu", epochs)
        if "cuda" in row and "cpu" in row:
            row["cpu_over_cuda"] = row["cpu"]["epoch_s"] / row["cuda"]["epoch_s"]
        rows.append(row)
        print(f"epochs at {n:.0e}: " + ", ".join(f"{d} {row[d]['epoch_s']:.3g} s" for d in ("cuda", "cpu") if d in row),
              flush=True)
    return {"ok": True, "rows": rows}


# ---------------------------------------------------------------------------- report
def report(result):
    parts = []
    port = result["portability"]
    if port.get("error"):
        parts.append(f"Portability: FAILED, {port['error']}")
    else:
        rows = [[r["estimator"], r.get("fitted_on"), ",".join(r.get("loaded_on", [])), r.get("max_score_diff"),
                 r.get("lists_identical"), len(r.get("warnings", [])), "ok" if r["ok"] else "FAILED"] for r in port["rows"]]
        parts.append("Portability (fitted, saved, loaded where torch sees no GPU):\n\n" + markdown_table(
            ["estimator", "fitted on", "loaded on", "max score diff", "same lists", "warnings", "result"], rows))
    quality = result["quality"]
    rows = [[r["model"], r["seed"], r["device"], r["epochs"], r["test_ndcg@20"], r["fit_s"]] for r in quality["rows"]]
    parts.append("Quality (synthetic, test NDCG@20):\n\n" + markdown_table(
        ["model", "seed", "device", "epochs", "NDCG@20", "fit s"], rows))
    if quality["verdicts"]:
        rows = [[kind, v["mean_cpu"], v["mean_cuda"], v["mean_diff"], v["tolerance"], "ok" if v["ok"] else "FAILED"]
                for kind, v in quality["verdicts"].items()]
        parts.append(markdown_table(["model", "mean CPU", "mean CUDA", "CUDA - CPU", "tolerance", "result"], rows))
    rows = []
    for row in result["epochs"]["rows"]:
        cuda, cpu = row.get("cuda", {}), row.get("cpu", {})
        rows.append([f"{row['n_interactions']:.0e}", cuda.get("epoch_s"), cpu.get("epoch_s"),
                     cpu.get("torch_threads"), row.get("cpu_over_cuda"), cuda.get("recommend_s"),
                     cpu.get("recommend_s"), cuda.get("peak_gpu_mib")])
    parts.append("Epoch time (UltraGCN 32 + 32, Zipf data):\n\n" + markdown_table(
        ["interactions", "CUDA epoch s", "CPU epoch s", "CPU threads", "CPU / CUDA", "CUDA recommend s",
         "CPU recommend s", "peak GPU MiB"], rows))
    return "\n\n".join(parts)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one quality model, two seeds: seconds (what the tests run)")
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[1_000_000, 20_000_000],
                        help="interactions of the CUDA epoch runs (default 1e6 2e7)")
    parser.add_argument("--cpu-sizes", type=parse_size, nargs="+", default=[1_000_000],
                        help="interactions of the CPU epoch runs (default 1e6; 2e7 takes about 15 min an epoch "
                             "on one thread)")
    parser.add_argument("--cpu-threads", type=int, default=None, help="torch threads on the CPU (default: torch's)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timing fit (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--quality-models", nargs="+", choices=["ultragcn", "painvrl"],
                        default=["ultragcn", "painvrl"])
    parser.add_argument("--json", metavar="PATH", help="write every part's rows here")
    parser.add_argument("--load-check", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.load_check:
        print(LOAD_MARK + json.dumps(load_and_score(json.loads(Path(args.load_check).read_text()))), flush=True)
        return 0
    if args.epochs < 1 or (args.cpu_threads is not None and args.cpu_threads < 1):
        parser.error("--epochs and --cpu-threads must be at least 1")
    import torch

    if args.cpu_threads is not None:
        torch.set_num_threads(args.cpu_threads)
    cuda = cuda_available()
    if cuda:
        print(f"CUDA is available: {torch.cuda.get_device_name(0)} (torch {torch.__version__}, "
              f"CUDA {torch.version.cuda}); running every part.", flush=True)
    else:
        print("CUDA is not available on this machine (torch.cuda.is_available() is False): running the "
              "CPU half at a small size; the CUDA comparisons need a GPU.", flush=True)
    smoke = args.smoke or not cuda
    sizes, cpu_sizes = ([10_000], [10_000]) if smoke else (args.sizes, args.cpu_sizes)
    seeds = args.seeds[:2] if args.smoke or not cuda else args.seeds
    kinds = ["ultragcn"] if smoke else args.quality_models
    device = "cuda" if cuda else "cpu"
    result = {"cuda": cuda, "smoke": smoke, "machine": machine_info(),
              "settings": {"sizes": sizes, "cpu_sizes": cpu_sizes, "epochs": args.epochs, "seeds": seeds,
                           "quality_models": kinds}}
    if cuda:
        result["machine"]["gpu"] = torch.cuda.get_device_name(0)
    result["portability"] = check_portability(device)
    result["quality"] = check_quality((["cuda"] if cuda else []) + ["cpu"], seeds, kinds,
                                      **({"n_users": 60, "n_items": 40, "max_epochs": 5} if smoke else {}))
    result["epochs"] = check_epochs(sizes, cpu_sizes, args.epochs, cuda)
    result["ok"] = all(result[part]["ok"] for part in ("portability", "quality", "epochs"))
    print()
    print(report(result))
    print(f"\n{'all checks passed' if result['ok'] else 'SOME CHECKS FAILED'}"
          f"{'' if cuda else ' (CPU half only: no CUDA here)'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
