"""Command line: ``python -m invrec`` (or ``invrec``) runs the main job on the embedded default.

Commands: ``demo`` (the default), ``evaluate`` (a model on a dataset folder in the MMRec or
DiffMM layout with its official split), ``fit`` (save a fitted model with :func:`invrec.save`)
and ``recommend`` (top-n lists for given users from a saved model, as CSV).

Model files are read with :func:`invrec.load`, which runs no code from the file. A joblib or
pickle model file (as ``invrec fit`` wrote before :func:`invrec.save` existed) is read only with
``recommend --trusted``: unpickling runs code from the file, so pass it only for a file you trust.

``demo`` generates the synthetic shift problem, splits it, ranks with a popularity model and with
the two ground-truth oracles (true preference, spurious attribute), and prints in- and
out-of-distribution metrics: the gap the invariant estimators exist to close.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .datasets import make_multimodal_interactions
from .metrics import evaluate_ranking
from .model_selection import train_test_split
from .utils.discovery import estimator_aliases
from .utils.ranking import rankings_to_frame, top_k


def _seen_matrix(frame, n_users, n_items):
    return sp.csr_array((np.ones(len(frame)), (frame["user"], frame["item"])), shape=(n_users, n_items))


def run_demo(n_users=300, n_items=200, k=(10, 20), random_state=0):
    """Run the demo and return its results table (one row per model and test set)."""
    data = make_multimodal_interactions(n_users=n_users, n_items=n_items, random_state=random_state)
    train, valid = train_test_split(data.interactions, test_size=0.2, by="user", random_state=random_state)
    seen = _seen_matrix(train, n_users, n_items)
    popularity = np.bincount(train["item"], minlength=n_items).astype(float)
    models = {
        "popularity": np.broadcast_to(popularity, (n_users, n_items)),
        "oracle: true preference": data.user_factors @ data.item_factors.T,
        "oracle: spurious attribute": data.user_spurious @ data.item_spurious.T,
    }
    tests = {"validation (IID)": valid, "test (IID)": data.test, "test (OOD)": data.test_ood}
    rows = []
    for model, scores in models.items():
        items, values = top_k(scores, max(k), exclude=seen)
        recs = rankings_to_frame(np.arange(n_users), items, values)
        for split, held_out in tests.items():
            table = evaluate_ranking(recs, held_out, k=k, metrics=("recall", "ndcg"))
            rows.append({"model": model, "split": split, **table.loc["all"].to_dict()})
    return pd.DataFrame(rows)


def _demo(args):
    table = run_demo(args.n_users, args.n_items, tuple(args.k), args.seed)
    cols = [c for c in table.columns if "@" in c]
    wide = table.pivot(index="model", columns="split", values=cols[-1])
    print(f"invrec demo: synthetic shift problem, {args.n_users} users x {args.n_items} items, seed {args.seed}")
    print(f"Training split per user (80/20), ranking all unseen items; {cols[-1]} per split:\n")
    print(wide.round(4).to_string())
    print("\nA model that learns the spurious attribute wins in distribution and collapses out of it;")
    print("the true preference keeps its quality. invrec's invariant estimators aim for the latter.")
    return 0


# ------------------------------------------------------------------ models, datasets, files
#: Command-line model names -> the estimator class they build: every estimator of
#: :func:`invrec.utils.discovery.all_estimators` under its short name (``ultragcn``, ``eior``, ...).
MODELS = estimator_aliases()

#: Dataset layouts ``evaluate`` and ``fit`` read (``auto`` guesses from the folder's files).
LAYOUTS = ("auto", "mmrec", "diffmm", "lastfm-2k-mm")


def _parse_value(text):
    """A ``--param`` value: a Python literal when it parses as one, else the string itself."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def make_model(name, params=()):
    """Build the estimator called ``name`` with ``params`` (``"key=value"`` strings).

    The values are checked against the estimator's declared constraints at once, so a bad value
    (``random_state=foo``) stops before any data is read.

    Raises
    ------
    ValueError
        If the name is unknown, a parameter is not ``key=value``, the estimator has no such
        parameter, or a value is outside what the parameter accepts.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}.")
    cls = MODELS[name].__name__
    estimator = MODELS[name]()
    settings = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param expects key=value (for example learning_rate=3e-3); got {item!r}.")
        settings[key.strip().replace("-", "_")] = _parse_value(value.strip())
    valid = estimator.get_params()
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ValueError(f"{cls} has no parameter {unknown}; its parameters are {sorted(valid)}.")
    try:
        estimator.set_params(**settings)
        _validate(estimator)
    except (ValueError, TypeError) as exc:
        given = " ".join(f"--param {item}" for item in params)
        raise ValueError(f"{exc} (from {given})") from None
    return estimator


def _validate(estimator):
    """Check an estimator's parameters, and those of the parts it holds, as ``fit`` does first."""
    from .utils.params import validate_parameters

    validate_parameters(estimator)
    for value in estimator.get_params(deep=False).values():
        if hasattr(value, "get_params") and hasattr(type(value), "_parameter_constraints"):
            validate_parameters(value)


def _guess_layout(folder):
    if (folder / "trnMat.pkl").exists():
        return "diffmm"
    if (folder / "lfm2k.inter").exists():
        return "lastfm-2k-mm"
    if any(folder.glob("*.inter")):
        return "mmrec"
    raise ValueError(
        f"{folder} is in no known dataset layout: expected trnMat.pkl/valMat.pkl/tstMat.pkl "
        "(DiffMM) or a <name>.inter file (MMRec). Pass --layout to say which."
    )


def load_dataset(path, layout="auto", name=None):
    """Read a dataset folder with its official split.

    Parameters
    ----------
    path : str or Path
        The dataset folder.
    layout : {"auto", "mmrec", "diffmm", "lastfm-2k-mm"}, default="auto"
        How the folder is stored; ``"auto"`` looks at its files.
    name : str, default=None
        MMRec layout only: stem of the ``.inter`` file when the folder has several.

    Returns
    -------
    Bunch
        As :func:`invrec.datasets.load_mmrec`: ``interactions``, ``validation``, ``test``,
        ``item_features``.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    ValueError
        If the layout is unknown or the files do not match it.
    """
    from pathlib import Path

    from .datasets import load_diffmm, load_lastfm_2k_mm, load_mmrec

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {str(folder)!r} does not exist (or is not a folder).")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {list(LAYOUTS)}.")
    if layout == "auto":
        layout = _guess_layout(folder)
    if layout == "diffmm":
        return load_diffmm(folder)
    if layout == "lastfm-2k-mm":
        return load_lastfm_2k_mm(folder)
    return load_mmrec(folder, name=name)


def _user_item(frame):
    return None if frame is None else frame[["user", "item"]].reset_index(drop=True)


def evaluate_model(model, data, k=(10, 20), metrics=("recall", "ndcg")):
    """Fit ``model`` on a dataset's official split and score its test split.

    The protocol of ``benchmarks/``: fit on the training rows with the validation rows for early
    stopping (when the split has them), rank the whole catalog for every test user known in
    training with their training and validation items excluded, and average over every test user
    (users unknown in training count as 0).

    Returns
    -------
    table : DataFrame
        :func:`invrec.metrics.evaluate_ranking`'s table (row ``"all"``).
    """
    train, valid, test = (_user_item(f) for f in (data.interactions, data.validation, data.test))
    if test is None or not len(test):
        raise ValueError("the dataset has no test split to evaluate on.")
    fit_kwargs = {"item_features": data.item_features}
    if valid is not None and "validation_data" in _fit_parameters(model):
        fit_kwargs["validation_data"] = valid
    model.fit(train, **fit_kwargs)
    users = pd.unique(test["user"])
    users = users[np.isin(users, train["user"].to_numpy())]
    recs = model.recommend(users, n=max(k), exclude=valid)
    return evaluate_ranking(recs, test, k=k, metrics=metrics)


def _fit_parameters(model):
    import inspect

    return inspect.signature(model.fit).parameters


def _write_json(path, payload):
    import json
    from pathlib import Path

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist.")
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")


def _evaluate(args):
    import time

    data = load_dataset(args.data, args.layout, args.name)
    model = make_model(args.model, args.param)
    if args.progress and "verbose" in model.get_params():
        model.set_params(verbose=1)
    start = time.perf_counter()
    table = evaluate_model(model, data, k=tuple(args.k))
    seconds = time.perf_counter() - start
    print(f"invrec evaluate: {args.model} on {args.data} (official test split), {seconds:.1f} s")
    print(table.round(4).to_string())
    if args.json:
        row = table.loc["all"]
        _write_json(args.json, {
            "model": args.model, "estimator": type(model).__name__, "data": str(args.data),
            "params": {key: repr(value) for key, value in model.get_params().items()},
            "metrics": {col: float(row[col]) for col in table.columns}, "seconds": seconds,
        })
        print(f"metrics written to {args.json}")
    return 0


def _fit(args):
    from pathlib import Path

    from .persistence import save

    out = Path(args.output)
    if not out.parent.exists():
        raise FileNotFoundError(f"cannot write {str(out)!r}: folder {str(out.parent)!r} does not exist.")
    if args.data is None:
        data = make_multimodal_interactions(random_state=args.seed)
        train, valid, features = data.interactions, None, data.item_features
    else:
        data = load_dataset(args.data, args.layout, args.name)
        train, valid, features = _user_item(data.interactions), _user_item(data.validation), data.item_features
    model = make_model(args.model, args.param)
    if args.progress and "verbose" in model.get_params():
        model.set_params(verbose=1)
    kwargs = {"item_features": features}
    if valid is not None and len(valid) and "validation_data" in _fit_parameters(model):
        kwargs["validation_data"] = valid
    model.fit(train, **kwargs)
    save(model, out)
    print(f"fitted {type(model).__name__} on {len(train)} interactions; saved to {out}")
    return 0


def load_model(path, trusted=False):
    """Load a model saved by ``invrec fit`` (or :func:`invrec.save`), checking what it is.

    Parameters
    ----------
    path : str or Path
        The model file.
    trusted : bool, default=False
        False reads only files of :func:`invrec.save`, with :func:`invrec.load`, which runs no code
        from the file. True also reads joblib/pickle files (``recommend --trusted``); **unpickling
        runs code from the file: only for a file you trust.**

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not an intact model file (:class:`invrec.persistence.ModelFileError`), names
        a type the safe reader refuses (:class:`invrec.persistence.UnsafeModelFileError`), or does
        not hold a fitted invrec estimator.
    """
    from pathlib import Path

    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from .persistence import load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist; make one with `invrec fit`.")
    model = load(path, trusted=trusted)
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ValueError(f"{str(path)!r} holds an unfitted {type(model).__name__}; fit it before saving.") from None
    return model


def _read_users(args, model):
    users = list(args.users or [])
    if args.users_file:
        from pathlib import Path

        file = Path(args.users_file)
        if not file.is_file():
            raise FileNotFoundError(f"users file {str(file)!r} does not exist.")
        users += [line.strip() for line in file.read_text().splitlines() if line.strip()]
    if not users:
        raise ValueError("no users given: pass user ids after --users or a file with --users-file.")
    known = model.user_ids_ if hasattr(model, "user_ids_") else None
    if known is not None and np.issubdtype(np.asarray(known).dtype, np.integer):
        try:
            return [int(u) for u in users]
        except ValueError:
            raise ValueError(f"the model's user ids are integers; got {users!r}.") from None
    return users


def _recommend(args):
    from tqdm.auto import tqdm

    model = load_model(args.model_file, trusted=args.trusted)
    users = _read_users(args, model)
    chunks = [users[i:i + args.chunk] for i in range(0, len(users), args.chunk)]
    frames = [model.recommend(chunk, n=args.n)
              for chunk in tqdm(chunks, desc="recommend", unit="chunk", disable=not args.progress)]
    table = pd.concat(frames, ignore_index=True)
    if args.output:
        from pathlib import Path

        out = Path(args.output)
        if not out.parent.exists():
            raise FileNotFoundError(f"cannot write {str(out)!r}: folder {str(out.parent)!r} does not exist.")
        table.to_csv(out, index=False)
    else:
        table.to_csv(sys.stdout, index=False)
    return 0


def _add_model_arguments(parser):
    parser.add_argument("--model", default="ultragcn", choices=sorted(MODELS), metavar="NAME",
                        help="the estimator: " + ", ".join(f"{name} ({cls.__name__})" for name, cls
                                                           in sorted(MODELS.items()))
                             + " (default: ultragcn)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="an estimator parameter, repeatable (e.g. --param learning_rate=3e-3)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar over epochs")


def _add_data_arguments(parser, required):
    parser.add_argument("data", nargs=None if required else "?", default=None,
                        help="dataset folder (MMRec or DiffMM layout)")
    parser.add_argument("--layout", default="auto", choices=LAYOUTS,
                        help="how the folder is stored (default: guessed from its files)")
    parser.add_argument("--name", default=None, help="MMRec: stem of the .inter file when there are several")


def build_parser():
    parser = argparse.ArgumentParser(prog="invrec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="the embedded synthetic default end to end (the default command)")
    demo.add_argument("--n-users", type=int, default=300)
    demo.add_argument("--n-items", type=int, default=200)
    demo.add_argument("--k", type=int, nargs="+", default=[10, 20])
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    evaluate = sub.add_parser("evaluate", help="fit a model on a dataset's official split; print and save its test metrics")
    _add_data_arguments(evaluate, required=True)
    _add_model_arguments(evaluate)
    evaluate.add_argument("--k", type=int, nargs="+", default=[10, 20], help="cut-offs (default: 10 20)")
    evaluate.add_argument("--json", default=None, metavar="FILE", help="also write the metrics as JSON")
    evaluate.set_defaults(func=_evaluate)

    fit = sub.add_parser("fit", help="fit a model and save it to a file (invrec.save: no code runs when it is read)")
    _add_data_arguments(fit, required=False)
    _add_model_arguments(fit)
    fit.add_argument("--output", "-o", required=True, metavar="FILE",
                     help="where to save the model (for example model.invrec)")
    fit.add_argument("--seed", type=int, default=0, help="synthetic default's seed when no folder is given")
    fit.set_defaults(func=_fit)

    recommend = sub.add_parser("recommend", help="top-n items for given users from a saved model, as CSV")
    recommend.add_argument("model_file", help="a model saved by `invrec fit` (or invrec.save)")
    recommend.add_argument("--trusted", action="store_true",
                           help="also read a joblib/pickle model file (as older `invrec fit` wrote), or one "
                                "holding types the safe reader refuses. Unpickling RUNS CODE from the file: "
                                "use only for a file you made yourself or otherwise trust")
    recommend.add_argument("--users", nargs="+", default=None, help="user ids")
    recommend.add_argument("--users-file", default=None, help="a file with one user id per line")
    recommend.add_argument("--n", type=int, default=10, help="list length (default: 10)")
    recommend.add_argument("--output", "-o", default=None, metavar="FILE", help="CSV file (default: stdout)")
    recommend.add_argument("--chunk", type=int, default=1024, help=argparse.SUPPRESS)
    recommend.add_argument("--progress", action="store_true", help="show a progress bar over user chunks")
    recommend.set_defaults(func=_recommend)
    return parser


def main(argv=None):
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["demo", *argv]
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:   # bad input: one line, no traceback
        parser.exit(2, f"invrec: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
