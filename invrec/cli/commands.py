"""The ``invrec`` commands (demo, evaluate, fit, recommend): the argument parser and what each runs."""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from .data import LAYOUTS, evaluate_model, fit_on_split, load_dataset
from .files import (DEFAULT_OUT, as_model_ids, input_path, load_model, output_path, prepare_output,
                    read_ids, read_pairs, write_json)
from .models import json_params, make_model, model_names, parse_params
from .text import plain_text


def _version():
    from .. import __version__

    return __version__


def _metrics(table):
    """The ``"all"`` row of a metrics table in JSON types (counts as ints, scores as floats)."""
    values = {}
    for column in table.columns:
        value = table.at["all", column]          # read per column: a row would cast counts to float
        if pd.isna(value):
            values[column] = None
        elif pd.api.types.is_integer_dtype(table[column]):
            values[column] = int(value)
        else:
            values[column] = float(value)
    return values


def _verbose(model, progress):
    if progress and "verbose" in model.get_params():
        model.set_params(verbose=1)


# ------------------------------------------------------------------ demo
def _demo_names(aliases):
    """CLI names of the demo's models (``ultragcn``, ...) -> their row names in the demo's table."""
    from .demo import DEMO_MODELS

    names = model_names()
    by_class = {cls: name for name, cls in DEMO_MODELS.items()}
    chosen = {}
    for alias in aliases:
        cls = names.get(alias)
        if cls not in by_class:
            demo = sorted(alias for alias, cls in names.items() if cls in by_class)
            raise ValueError(f"{alias!r} is not one of the demo's models; choose among {demo}.")
        chosen[alias] = by_class[cls]
    return list(chosen.values())


def _demo(args):
    from .demo import check_plotting, format_demo, plot_demo, run_demo

    plot = None
    if args.plot:
        check_plotting()
        plot = output_path(args.plot, args.out)
    models = None if args.models is None else _demo_names(args.models)
    start = time.perf_counter()
    table = run_demo(args.n_users, args.n_items, tuple(args.k), args.seed, models=models,
                     params=parse_params(args.param), n_threads=args.threads, progress=not args.no_progress)
    print(format_demo(table, args.n_users, args.n_items, args.seed, seconds=time.perf_counter() - start))
    if plot is not None:
        plot_demo(table, prepare_output(plot))
        print(f"figure written to {plot}")
    return 0


# ------------------------------------------------------------------ evaluate
def _evaluate(args):
    json_file = None if args.json is None else output_path(args.json, args.out)
    model = make_model(args.model, args.param)
    data = load_dataset(args.data, args.layout, args.name)
    _verbose(model, args.progress)
    start = time.perf_counter()
    table = evaluate_model(model, data, k=tuple(args.k))
    seconds = time.perf_counter() - start
    print(f"invrec evaluate: {args.model} on {args.data} (official test split), {seconds:.1f} s")
    print(table.round(4).to_string())
    if json_file is not None:
        write_json(json_file, {
            "invrec_version": _version(), "command": "evaluate", "model": args.model,
            "estimator": type(model).__name__, "data": str(args.data), "params": json_params(model),
            "metrics": _metrics(table), "seconds": seconds,
        })
        print(f"metrics written to {json_file}")
    return 0


# ------------------------------------------------------------------ fit
def _fit(args):
    from ..persistence import save

    out = output_path(args.output, args.out)
    model = make_model(args.model, args.param)
    if args.data is None:
        from ..datasets import make_multimodal_interactions

        data = make_multimodal_interactions(random_state=args.seed)
    else:
        data = load_dataset(args.data, args.layout, args.name)
    _verbose(model, args.progress)
    fit_on_split(model, data.interactions, data.validation, data.item_features)
    save(model, prepare_output(out))
    print(f"fitted {type(model).__name__} on {len(data.interactions)} interactions; saved to {out}")
    return 0


# ------------------------------------------------------------------ recommend
def _recommend(args):
    from tqdm.auto import tqdm

    model = load_model(input_path(args.model_file, args.out, "model file"), trusted=args.trusted)
    if args.handle_unknown is not None:
        model.set_params(handle_unknown=args.handle_unknown)
    users_file = None if args.users_file is None else input_path(args.users_file, args.out, "users file")
    users = read_ids(args.users, users_file, "users")
    if not users:
        raise ValueError("no users given: pass user ids after --users or a file with --users-file.")
    users = as_model_ids(users, model.user_ids_, "user")
    items = None
    if args.items is not None or args.items_file is not None:
        items_file = None if args.items_file is None else input_path(args.items_file, args.out, "items file")
        items = read_ids(args.items, items_file, "items")
        if not items:
            raise ValueError("--items or --items-file gave no item ids; pass the candidates, or neither to rank the catalog.")
        items = as_model_ids(items, model.item_ids_, "item")
    exclude = None if args.exclude is None else read_pairs(input_path(args.exclude, args.out, "exclude file"), model)
    chunks = [users[i:i + args.chunk] for i in range(0, len(users), args.chunk)]
    frames = [model.recommend(chunk, n=args.n, items=items, exclude=exclude)
              for chunk in tqdm(chunks, desc="recommend", unit="chunk", disable=not args.progress)]
    table = pd.concat(frames, ignore_index=True)
    if args.output:
        out = prepare_output(output_path(args.output, args.out))
        table.to_csv(out, index=False)
        print(f"{len(table)} recommendations written to {out}", file=sys.stderr)
    else:
        table.to_csv(sys.stdout, index=False)
    return 0


# ------------------------------------------------------------------ the parser
def _add_out_argument(parser):
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"folder for the files this command writes, created when needed (default: "
                             f"{DEFAULT_OUT}); a relative file name is taken inside it, an absolute path as given")


def _add_model_arguments(parser, models):
    parser.add_argument("--model", default="ultragcn", choices=sorted(models), metavar="NAME",
                        help="the estimator: " + ", ".join(f"{name} ({cls.__name__})" for name, cls
                                                           in sorted(models.items()))
                             + " (default: ultragcn)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="an estimator parameter, repeatable; the value is a Python literal or JSON "
                             "(e.g. --param learning_rate=3e-3 --param environments__n_environments=3)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar over epochs")


def _add_data_arguments(parser, required):
    parser.add_argument("data", nargs=None if required else "?", default=None,
                        help="dataset folder (MMRec or DiffMM layout)"
                             + ("" if required else "; without one, the embedded synthetic default"))
    parser.add_argument("--layout", default="auto", choices=LAYOUTS,
                        help="how the folder is stored (default: guessed from its files)")
    parser.add_argument("--name", default=None, help="MMRec: stem of the .inter file when there are several")


def _command(sub, name, summary, details=""):
    """A subcommand whose description is ``summary`` and ``details``, plain text."""
    text = summary[0].upper() + summary[1:] + "." + (f"\n\n{details}" if details else "")
    return sub.add_parser(name, help=summary, description=plain_text(text),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser():
    """The ``invrec`` argument parser: the commands ``demo``, ``evaluate``, ``fit`` and ``recommend``.

    Returns
    -------
    argparse.ArgumentParser
    """
    from . import __doc__ as description
    from .demo import DEMO_MODELS

    models = model_names()
    parser = argparse.ArgumentParser(prog="invrec", description=plain_text(description),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", "-V", action="version", version=f"invrec {_version()}",
                        help="print invrec's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = _command(sub, "demo", "the main job on the embedded synthetic default (the default command)",
                    "Fits popularity, the ERM baseline and the invariant methods at their defaults on "
                    "the synthetic shift problem and prints their in- and out-of-distribution recall "
                    "and NDCG next to the two ground-truth oracles, with each invariant method's "
                    "out-of-distribution ratio to the ERM baseline and to popularity, as measured.")
    demo.add_argument("--n-users", type=int, default=300, metavar="N", help="users of the synthetic problem (default: 300)")
    demo.add_argument("--n-items", type=int, default=200, metavar="N", help="items of the synthetic problem (default: 200)")
    demo.add_argument("--k", type=int, nargs="+", default=[10, 20], metavar="K",
                      help="cut-offs of recall and NDCG; the largest is shown (default: 10 20)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the data and of every model (default: 0)")
    demo_models = sorted(alias for alias, cls in models.items() if cls in set(DEMO_MODELS.values()))
    demo.add_argument("--models", nargs="+", default=None, choices=demo_models, metavar="NAME",
                      help="fit only these models, among " + ", ".join(demo_models) + " (default: all)")
    demo.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                      help="a parameter set on every model that has it, repeatable (e.g. --param max_epochs=20 "
                           "for a quicker, shorter-trained look; default: every model at its defaults)")
    demo.add_argument("--threads", type=int, default=1, metavar="N",
                      help="torch threads while fitting (default: 1; on a problem this small about as fast as "
                           "more on idle cores, and much faster when other work shares them)")
    demo.add_argument("--plot", default=None, metavar="FILE",
                      help="also draw the IID-OOD front of the models, popularity and the oracle "
                           "(.png, .svg, .pdf; needs matplotlib, pip install 'invrec[plot]')")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar over the models")
    _add_out_argument(demo)
    demo.set_defaults(func=_demo)

    evaluate = _command(sub, "evaluate", "fit a model on a dataset's official split; print and save its test metrics",
                        "The validation rows serve early stopping; every test user known in training ranks "
                        "the whole catalog with training and validation items excluded. A rating "
                        "regressor (eior-regressor) is scored by RMSE and MAE on the test ratings.")
    _add_data_arguments(evaluate, required=True)
    _add_model_arguments(evaluate, models)
    evaluate.add_argument("--k", type=int, nargs="+", default=[10, 20], metavar="K", help="cut-offs (default: 10 20)")
    evaluate.add_argument("--json", default=None, metavar="FILE",
                          help="also write the metrics and the model's parameters (typed JSON) to FILE")
    _add_out_argument(evaluate)
    evaluate.set_defaults(func=_evaluate)

    fit = _command(sub, "fit", "fit a model and save it to a file (invrec.save: no code runs when it is read)")
    _add_data_arguments(fit, required=False)
    _add_model_arguments(fit, models)
    fit.add_argument("--output", "-o", required=True, metavar="FILE",
                     help="where to save the model (for example model.invrec)")
    fit.add_argument("--seed", type=int, default=0, help="synthetic default's seed when no folder is given (default: 0)")
    _add_out_argument(fit)
    fit.set_defaults(func=_fit)

    recommend = _command(sub, "recommend", "top-n items for given users from a saved model, as CSV")
    recommend.add_argument("model_file", help="a model saved by 'invrec fit' (or invrec.save); looked for as given, "
                                              "then inside --out")
    recommend.add_argument("--trusted", action="store_true",
                           help="also read a joblib/pickle model file (as older 'invrec fit' wrote), or one "
                                "holding types the safe reader refuses. Unpickling RUNS CODE from the file: "
                                "use only for a file you made yourself or otherwise trust")
    recommend.add_argument("--users", nargs="+", default=None, metavar="ID", help="user ids")
    recommend.add_argument("--users-file", default=None, metavar="FILE", help="a file with one user id per line")
    recommend.add_argument("--items", nargs="+", default=None, metavar="ID",
                           help="rank only these candidate items (default: the whole catalog)")
    recommend.add_argument("--items-file", default=None, metavar="FILE", help="a file with one candidate item id per line")
    recommend.add_argument("--exclude", default=None, metavar="FILE",
                           help="a CSV file of (user, item) pairs to leave out, with a header naming user and "
                                "item (a recommend output file works); the pairs the model was fitted on are "
                                "always left out")
    recommend.add_argument("--handle-unknown", default=None, choices=("error", "ignore"),
                           help="unknown user or item ids: error, or ignore them (no rows for such a user); "
                                "default: the model's own setting")
    recommend.add_argument("--n", type=int, default=10, help="list length (default: 10)")
    recommend.add_argument("--output", "-o", default=None, metavar="FILE", help="CSV file (default: stdout)")
    recommend.add_argument("--chunk", type=int, default=1024, help=argparse.SUPPRESS)
    recommend.add_argument("--progress", action="store_true", help="show a progress bar over user chunks")
    _add_out_argument(recommend)
    recommend.set_defaults(func=_recommend)
    return parser


def main(argv=None):
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); ``demo`` when no command is named.

    Returns
    -------
    int
        The exit status (0). Bad input exits with status 2 and one line on stderr, no traceback.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "-V", "--version"):
        argv = ["demo", *argv]
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError) as exc:   # bad input: one line, no traceback
        parser.exit(2, "invrec: error: " + " ".join(str(exc).splitlines()) + "\n")
