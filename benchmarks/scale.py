"""Scale benchmark: invrec's UltraGCN beside implicit's BPR from 1e5 to 2e7 interactions.

Usage::

    python benchmarks/scale.py                          # 1e5 and 1e6 interactions
    python benchmarks/scale.py --large                  # also 5e6 and 2e7 (hours on one thread)
    python benchmarks/scale.py --sizes 1e5 3e5 1e6 --json scale.json

Data: synthetic Zipf interactions (``make_zipf_interactions``): ``n / 20`` users, ``n / 100``
items, each pair drawn with a user of Zipf exponent 0.5 and an item of Zipf exponent 1.0,
duplicates removed; two 64-d Gaussian modalities per item. A further ninth of ``n`` is drawn the
same way and held out per user (the carve of ``validation_fraction=0.1``) as validation data,
so both libraries train on about ``n`` rows and invrec's validation ranks the catalog for the
held-out users as its default early stopping does.

Models: ``UltraGCNRecommender(embedding_dim=32, content_dim=32)`` (the rest at its defaults,
batch 4096, 50 shared negatives), and ``implicit.cpu.bpr.BayesianPersonalizedRanking`` with 64
factors (one positive and one negative per step). One torch thread and one implicit thread.

Each (library, size) runs in a fresh subprocess, so that its peak resident memory
(``ru_maxrss``) is its own, after a tiny warm-up fit that pays the one-time import costs
(reported as ``warm_up_s``). Phases, in seconds:

``prep``
    invrec: ``fit`` wall time minus the epochs and the validation (input checks, id encoding,
    content preparation, model and optimiser set-up, best-state copies); implicit: building the
    user x item CSR matrix.
``epoch``
    One epoch of training, the mean over ``--epochs`` (invrec: ``history_[i]["fit_time"]``;
    implicit: ``fit`` wall time / iterations).
``validation``
    invrec: one validation pass (NDCG@20 of the held-out rows, the catalog ranked), timed
    around the estimator's validation hook. implicit has none.
``recommend``
    Top-20 lists, seen items excluded, for ``--recommend-users`` users drawn at random (5000 by
    default: the same number at every size from 1e5 up, so its growth is that of the catalog).

The growth exponent of a phase is the slope of ``log(seconds)`` against ``log(interactions)``
(least squares over the sizes run); ``ratio`` is invrec's epoch over implicit's. Timings on a
shared machine are indicative: the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: The sizes run by default, and those ``--large`` adds.
DEFAULT_SIZES = (100_000, 1_000_000)
LARGE_SIZES = (5_000_000, 20_000_000)
#: UltraGCN widths of the issue's table (id 32 + content 32: 64 in all, as BPR's factors).
INVREC_PARAMS = {"embedding_dim": 32, "content_dim": 32}
BPR_FACTORS = 64
LIBRARIES = ("invrec", "implicit")
PHASES = ("prep", "epoch", "validation", "recommend")
#: Marks the line of a child process's output that holds its result.
RESULT_MARK = "SCALE-RESULT "


# ---------------------------------------------------------------------------- data
def zipf_draws(rng, n_categories, exponent, size):
    """``size`` draws of ``0..n_categories-1`` with ``P(k)`` proportional to ``(k + 1) ** -exponent``."""
    weights = np.arange(1, n_categories + 1, dtype=np.float64) ** -float(exponent)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), n_categories - 1)


def make_zipf_interactions(n_interactions, *, users_per=20, items_per=100, user_exponent=0.5,
                           item_exponent=1.0, n_modalities=2, dim=64, random_state=0):
    """Synthetic long-tailed implicit feedback of the scale benchmarks.

    Parameters
    ----------
    n_interactions : int
        Distinct (user, item) pairs to draw; at the default shape, at least 4000 (below, the
        ``n / 20`` x ``n / 100`` matrix is more than half full).
    users_per, items_per : int, default=20, 100
        ``n_users = n_interactions // users_per``, ``n_items = n_interactions // items_per``.
    user_exponent, item_exponent : float, default=0.5, 1.0
        Zipf exponents of the user and item of a pair (ids in decreasing popularity).
    n_modalities, dim : int, default=2, 64
        Item content: that many Gaussian modalities of width ``dim``.
    random_state : int, default=0

    Returns
    -------
    interactions : DataFrame
        ``user`` and ``item`` columns (int64), ``n_interactions`` distinct pairs in random order.
    item_features : invrec.ItemFeatures
        Every item of the catalog (``0..n_items-1``), including those no pair drew.

    Raises
    ------
    ValueError
        If the matrix would be more than half full, or the draws cannot fill it.
    """
    import pandas as pd

    from invrec import ItemFeatures

    n = int(n_interactions)
    n_users, n_items = max(n // users_per, 1), max(n // items_per, 1)
    if n > 0.5 * n_users * n_items:
        raise ValueError(f"{n} distinct pairs do not fit a {n_users} x {n_items} matrix at half density; "
                         "lower users_per or items_per.")
    rng = np.random.default_rng(random_state)
    codes = np.empty(0, dtype=np.int64)
    for _ in range(50):                  # top-up rounds: each draws what duplicates took away
        missing = n - len(codes)
        if missing <= 0:
            break
        draw = int(missing * 1.2) + 16
        new = zipf_draws(rng, n_users, user_exponent, draw) * n_items + zipf_draws(rng, n_items, item_exponent, draw)
        codes = np.unique(np.concatenate([codes, new]))
    if len(codes) < n:
        raise ValueError(f"could draw only {len(codes)} distinct pairs of {n}; lower the Zipf exponents.")
    codes = rng.permutation(codes)[:n]
    interactions = pd.DataFrame({"user": codes // n_items, "item": codes % n_items})
    modalities = {f"m{k}": rng.standard_normal((n_items, dim), dtype=np.float32) for k in range(n_modalities)}
    return interactions, ItemFeatures(modalities)


def scale_problem(n_interactions, *, random_state=0):
    """About ``n_interactions`` training rows, per-user validation rows and the item content.

    ``n / 0.9`` pairs are drawn and a tenth of each user's rows held out with the carve of
    ``validation_fraction=0.1`` (:func:`invrec.model_selection.validation_holdout_mask`).

    Returns
    -------
    train, validation : DataFrame
    item_features : invrec.ItemFeatures
    """
    import pandas as pd

    from invrec.model_selection import validation_holdout_mask

    interactions, features = make_zipf_interactions(round(n_interactions / 0.9), random_state=random_state)
    mask = validation_holdout_mask(pd.factorize(interactions["user"])[0], 0.1,
                                   np.random.RandomState(random_state))
    train = interactions.loc[~mask].reset_index(drop=True)
    validation = interactions.loc[mask].reset_index(drop=True)
    return train, validation, features


# ---------------------------------------------------------------------------- helpers
def peak_rss_mib():
    """Peak resident memory of this process so far, in MiB (``ru_maxrss``: KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def growth_exponent(sizes, seconds):
    """Slope of ``log(seconds)`` on ``log(sizes)`` by least squares; None below two usable points."""
    pairs = [(s, t) for s, t in zip(sizes, seconds) if t is not None and t > 0]
    if len({s for s, _ in pairs}) < 2:
        return None
    x, y = np.log([s for s, _ in pairs]), np.log([t for _, t in pairs])
    return float(np.polyfit(x, y, 1)[0])


def markdown_table(header, rows):
    """A GitHub markdown table; None cells print as ``-``, floats with 3 significant figures."""
    def cell(value):
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_info():
    """Where and when a benchmark ran: the host, its cores and load, the library versions."""
    import torch

    info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "load_average": [round(v, 2) for v in os.getloadavg()]}
    if importlib.util.find_spec("implicit") is not None:
        import implicit

        info["implicit"] = implicit.__version__
    return info


def set_threads(threads):
    """One thread count for torch and the BLAS/OpenMP pools of this process."""
    import torch

    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:     # pragma: no cover - scikit-learn depends on it
        return
    threadpool_limits(threads)


# ---------------------------------------------------------------------------- measurements
def _timed_ultragcn():
    """``UltraGCNRecommender`` whose validation passes are timed (the benchmark's instrument)."""
    from invrec import UltraGCNRecommender

    class TimedUltraGCN(UltraGCNRecommender):
        def _validation_score(self, data):
            start = time.perf_counter()
            try:
                return super()._validation_score(data)
            finally:
                self._validation_seconds.append(time.perf_counter() - start)

    return TimedUltraGCN


def _sample_users(train, n_users, random_state):
    users = np.unique(train["user"].to_numpy())
    rng = np.random.default_rng(random_state)
    return rng.choice(users, size=min(n_users, len(users)), replace=False)


def _warm_up(library):
    """A tiny fit, so that import and first-call costs stay out of the measured phases."""
    train, validation, features = scale_problem(10_000, random_state=1)
    start = time.perf_counter()
    if library == "invrec":
        model = _timed_ultragcn()(**INVREC_PARAMS, max_epochs=1, early_stopping=False, device="cpu")
        model._validation_seconds = []
        model.fit(train, item_features=features, validation_data=validation)
        model.recommend(train["user"].iloc[:5].unique(), n=20)
    else:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        matrix = _user_items(train)
        BayesianPersonalizedRanking(factors=BPR_FACTORS, iterations=1, num_threads=1,
                                    random_state=0).fit(matrix, show_progress=False)
    return time.perf_counter() - start


def _user_items(train):
    import scipy.sparse as sp

    users, items = train["user"].to_numpy(), train["item"].to_numpy()
    return sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)))


def measure_invrec(train, validation, features, *, epochs, recommend_users, device="cpu", random_state=0):
    """Phase times of one UltraGCN fit (``epochs`` epochs, validated after each) and a recommend call."""
    model = _timed_ultragcn()(**INVREC_PARAMS, max_epochs=epochs, n_iter_no_change=epochs + 1,
                              device=device, random_state=random_state)
    model._validation_seconds = []
    start = time.perf_counter()
    model.fit(train, item_features=features, validation_data=validation)
    wall = time.perf_counter() - start
    epoch_times = [record["fit_time"] for record in model.history_]
    valid_times = model._validation_seconds
    users = _sample_users(train, recommend_users, random_state)
    start = time.perf_counter()
    lists = model.recommend(users, n=20)
    recommend = time.perf_counter() - start
    return {"prep": wall - sum(epoch_times) - sum(valid_times), "epoch": float(np.mean(epoch_times)),
            "validation": float(np.mean(valid_times)), "recommend": recommend,
            "epoch_times": epoch_times, "fit_wall": wall, "recommend_users": len(users),
            "recommend_rows": len(lists), "n_users": model.n_users_, "n_items": model.n_items_,
            "valid_ndcg@20": model.history_[-1].get("valid_ndcg@20")}


def measure_implicit(train, *, epochs, recommend_users, random_state=0):
    """Phase times of implicit's CPU BPR: the CSR matrix, ``epochs`` iterations, a recommend call."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    start = time.perf_counter()
    matrix = _user_items(train)
    prep = time.perf_counter() - start
    model = BayesianPersonalizedRanking(factors=BPR_FACTORS, iterations=epochs, num_threads=1,
                                        random_state=random_state)
    start = time.perf_counter()
    model.fit(matrix, show_progress=False)
    fit = time.perf_counter() - start
    users = _sample_users(train, recommend_users, random_state)
    start = time.perf_counter()
    ids, _ = model.recommend(users, matrix[users], N=20, filter_already_liked_items=True)
    recommend = time.perf_counter() - start
    return {"prep": prep, "epoch": fit / epochs, "validation": None, "recommend": recommend,
            "fit_wall": fit, "recommend_users": len(users), "recommend_rows": int(ids.size),
            "n_users": matrix.shape[0], "n_items": matrix.shape[1]}


def measure(library, n_interactions, *, epochs=1, recommend_users=5_000, threads=1, warm_up=True,
            random_state=0):
    """Every phase of one library at one size, in this process; the row the table prints.

    Parameters
    ----------
    library : {"invrec", "implicit"}
    n_interactions : int
        Training rows wanted (see :func:`scale_problem`).
    epochs : int, default=1
    recommend_users : int, default=5000
    threads : int, default=1
    warm_up : bool, default=True
        Run a tiny fit first (its wall time is ``warm_up_s``).
    random_state : int, default=0

    Returns
    -------
    row : dict
        ``library``, ``n_interactions``, ``n_train``, the phase seconds, ``peak_mib``,
        ``peak_mib_after_data`` and the details of the fit.
    """
    if library not in LIBRARIES:
        raise ValueError(f"library must be one of {LIBRARIES}; got {library!r}.")
    set_threads(threads)
    row = {"library": library, "n_interactions": int(n_interactions), "threads": threads, "epochs": epochs,
           "load_average": round(os.getloadavg()[0], 2)}
    row["warm_up_s"] = _warm_up(library) if warm_up else None
    start = time.perf_counter()
    train, validation, features = scale_problem(n_interactions, random_state=random_state)
    row.update(data_s=time.perf_counter() - start, n_train=len(train), n_validation=len(validation),
               peak_mib_after_data=peak_rss_mib())
    if library == "invrec":
        row.update(measure_invrec(train, validation, features, epochs=epochs,
                                  recommend_users=recommend_users, random_state=random_state))
    else:
        row.update(measure_implicit(train, epochs=epochs, recommend_users=recommend_users,
                                    random_state=random_state))
    row["peak_mib"] = peak_rss_mib()
    return row


def run_child(library, n_interactions, *, epochs, recommend_users, threads, timeout=None):
    """:func:`measure` in a fresh Python process (its own peak memory); the row, or an error row."""
    spec = {"library": library, "n_interactions": int(n_interactions), "epochs": epochs,
            "recommend_users": recommend_users, "threads": threads}
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                              capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    return {**spec, "error": f"exit status {done.returncode}: " + " / ".join(tail)}


# ---------------------------------------------------------------------------- report
def summarize(rows):
    """Growth exponents per (library, phase) and invrec/implicit epoch ratios per size."""
    exponents = {}
    for library in LIBRARIES:
        ok = sorted((r for r in rows if r["library"] == library and "error" not in r),
                    key=lambda r: r["n_interactions"])
        for phase in PHASES + ("peak_mib",):
            value = growth_exponent([r["n_train"] for r in ok], [r.get(phase) for r in ok])
            if value is not None:
                exponents[f"{library}/{phase}"] = round(value, 3)
    by_key = {(r["library"], r["n_interactions"]): r for r in rows if "error" not in r}
    ratios = {}
    for (library, n), row in by_key.items():
        other = by_key.get(("implicit", n))
        if library == "invrec" and other is not None and other["epoch"] > 0:
            ratios[n] = round(row["epoch"] / other["epoch"], 2)
    return exponents, ratios


def report(rows, exponents, ratios):
    """The printed tables: one row per (size, library), then the growth exponents."""
    header = ["interactions", "library", "rows trained", "users", "items", "prep s", "epoch s",
              "validation s", "recommend s (users)", "peak MiB (after data)", "epoch ratio"]
    body = []
    for row in sorted(rows, key=lambda r: (r["n_interactions"], LIBRARIES.index(r["library"]))):
        if "error" in row:
            body.append([f"{row['n_interactions']:.0e}", row["library"], "error: " + row["error"]]
                        + [None] * (len(header) - 3))
            continue
        ratio = ratios.get(row["n_interactions"]) if row["library"] == "invrec" else None
        body.append([f"{row['n_interactions']:.0e}", row["library"], row["n_train"], row["n_users"],
                     row["n_items"], row["prep"], row["epoch"], row["validation"],
                     f"{row['recommend']:.3g} ({row['recommend_users']})",
                     f"{row['peak_mib']:.0f} ({row['peak_mib_after_data']:.0f})",
                     None if ratio is None else f"{ratio:.1f}x"])
    text = markdown_table(header, body)
    if exponents:
        grid = [[library] + [exponents.get(f"{library}/{phase}") for phase in PHASES + ("peak_mib",)]
                for library in LIBRARIES]
        text += "\n\nGrowth exponents (seconds or MiB ~ rows trained ** exponent):\n\n"
        text += markdown_table(["library", *PHASES, "peak MiB"], grid)
    return text


def parse_size(text):
    """``"1e6"``, ``"1000000"`` or ``"2e7"`` -> an int of at least 10,000 (smaller catalogs are too dense)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is a number of interactions such as 1e6; got {text!r}") from None
    if not np.isfinite(value) or value < 10_000 or value != int(value):
        raise argparse.ArgumentTypeError(f"a size is a whole number of interactions >= 1e4; got {text!r}")
    return int(value)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=None,
                        help="training interactions per run (default: 1e5 1e6)")
    parser.add_argument("--large", action="store_true", help="add 5e6 and 2e7 to the sizes (hours)")
    parser.add_argument("--libraries", nargs="+", choices=LIBRARIES, default=list(LIBRARIES))
    parser.add_argument("--epochs", type=int, default=1, help="epochs per fit (default 1)")
    parser.add_argument("--recommend-users", type=int, default=5_000,
                        help="users given top-20 lists in the recommend phase (default 5000: as many at "
                             "every size from 1e5 up, so that its growth is the catalog's)")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS/implicit threads (default 1)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per (library, size)")
    parser.add_argument("--json", metavar="PATH", help="write the rows, exponents and machine here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        row = measure(spec["library"], spec["n_interactions"], epochs=spec["epochs"],
                      recommend_users=spec["recommend_users"], threads=spec["threads"])
        print(RESULT_MARK + json.dumps(row), flush=True)
        return 0
    if args.epochs < 1 or args.recommend_users < 1 or args.threads < 1:
        parser.error("--epochs, --recommend-users and --threads must be at least 1")
    sizes = sorted(set(args.sizes or DEFAULT_SIZES) | (set(LARGE_SIZES) if args.large else set()))
    libraries = list(dict.fromkeys(args.libraries))
    skipped = {}
    if "implicit" in libraries and importlib.util.find_spec("implicit") is None:
        libraries.remove("implicit")
        skipped["implicit"] = "not installed (pip install -r benchmarks/requirements.txt)"
        print("implicit is not installed: its rows are skipped (pip install -r benchmarks/requirements.txt)")
    machine = machine_info()
    rows = []
    for n in sizes:
        for library in libraries:
            row = run_child(library, n, epochs=args.epochs, recommend_users=args.recommend_users,
                            threads=args.threads, timeout=args.timeout)
            rows.append(row)
            status = row.get("error") or f"epoch {row['epoch']:.3g} s, peak {row['peak_mib']} MiB"
            print(f"{library} at {n:.0e}: {status}", flush=True)
    machine["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    exponents, ratios = summarize(rows)
    print()
    print(report(rows, exponents, ratios))
    if args.json:
        result = {"settings": {"sizes": sizes, "libraries": libraries, "epochs": args.epochs,
                               "recommend_users": args.recommend_users, "threads": args.threads,
                               "invrec_params": INVREC_PARAMS, "bpr_factors": BPR_FACTORS},
                  "skipped": skipped, "machine": machine, "rows": rows, "exponents": exponents,
                  "epoch_ratios": {str(k): v for k, v in ratios.items()}}
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
