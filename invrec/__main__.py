"""Entry point of ``python -m invrec`` and of the ``invrec`` script; the commands are in :mod:`invrec.cli`.

``demo`` (the default) fits popularity, the ERM baseline and the invariant methods at their
defaults on the embedded synthetic shift problem and prints their in- and out-of-distribution
metrics next to the two ground-truth oracles; ``evaluate``, ``fit`` and ``recommend`` work on
dataset folders and saved models. ``invrec --help`` lists the options. The functions below are
the commands' building blocks, importable from here as before.
"""

from __future__ import annotations

import sys

from .cli.commands import build_parser, main
from .cli.data import LAYOUTS, evaluate_model, load_dataset
from .cli.demo import format_demo, plot_demo, run_demo, summarize_demo
from .cli.files import load_model
from .cli.models import json_params, make_model
from .utils.discovery import estimator_aliases

__all__ = ["LAYOUTS", "MODELS", "build_parser", "evaluate_model", "format_demo", "json_params",
           "load_dataset", "load_model", "main", "make_model", "plot_demo", "run_demo", "summarize_demo"]

#: Command-line model names -> the estimator class they build: every estimator of
#: :func:`invrec.utils.discovery.all_estimators` under its short name (``ultragcn``, ``eior``, ...).
MODELS = estimator_aliases()


if __name__ == "__main__":
    sys.exit(main())
