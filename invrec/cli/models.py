"""Estimators by their command-line names: building one from ``--param`` strings, its parameters as JSON."""

from __future__ import annotations

import ast
import json
import numbers

import numpy as np

from ..utils.discovery import estimator_aliases


def model_names():
    """Command-line model name -> estimator class: :func:`~invrec.utils.discovery.estimator_aliases`.

    Returns
    -------
    dict of str -> type
        Every estimator of :func:`~invrec.utils.discovery.all_estimators` under its short name
        (``"ultragcn"``, ``"eior"``, ``"eior-regressor"``, ...).
    """
    return estimator_aliases()


def parse_value(text):
    """A ``--param`` value: a Python literal, else a JSON value, else the string itself.

    ``3e-3``, ``(1, 0, 1, 1)``, ``None`` and ``'error'`` read as Python literals, ``null``, ``true``
    and ``[1, 0]`` as JSON (so the ``params`` a JSON report holds can be passed back), and
    anything else (``cpu``) as the string.

    Examples
    --------
    >>> parse_value("3e-3"), parse_value("null"), parse_value("true"), parse_value("cpu")
    (0.003, None, True, 'cpu')
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(params):
    """``"key=value"`` strings as a dict, keys with ``-`` spelled ``_``, values by :func:`parse_value`.

    Raises
    ------
    ValueError
        If an item is not ``key=value``.
    """
    settings = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param expects key=value (for example learning_rate=3e-3); got {item!r}.")
        settings[key.strip().replace("-", "_")] = parse_value(value.strip())
    return settings


def make_model(name, params=()):
    """Build the estimator called ``name`` with ``params`` (``"key=value"`` strings).

    The values are checked against the estimator's declared constraints at once, so a bad value
    (``random_state=foo``) stops before any data is read.

    Parameters
    ----------
    name : str
        A key of :func:`model_names` (``"ultragcn"``, ``"painvrl"``, ...).
    params : sequence of str, default=()
        ``key=value`` items, values read by :func:`parse_value`; nested part parameters use the
        estimator's spelling (``environments__n_environments=3``).

    Returns
    -------
    estimator
        A new, unfitted estimator.

    Raises
    ------
    ValueError
        If the name is unknown, a parameter is not ``key=value``, the estimator has no such
        parameter, or a value is outside what the parameter accepts.
    """
    models = model_names()
    if name not in models:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(models)}.")
    estimator = models[name]()
    settings = parse_params(params)
    set_checked_params(estimator, settings, source=" ".join(f"--param {item}" for item in params))
    return estimator


def set_checked_params(estimator, settings, source):
    """``estimator.set_params(**settings)`` and the declared checks ``fit`` runs first.

    Parameters
    ----------
    estimator : estimator
        Changed in place (it is the caller's own new estimator).
    settings : dict
        Parameter -> value.
    source : str
        Where the settings came from, appended to the error (``--param max_epochs=-1``).

    Raises
    ------
    ValueError
        If the estimator has no such parameter or a value is outside what it accepts.
    """
    valid = estimator.get_params()
    unknown = sorted(set(settings) - set(valid))
    name = type(estimator).__name__
    if unknown:
        raise ValueError(f"{name} has no parameter {unknown}; its parameters are {sorted(valid)}.")
    try:
        estimator.set_params(**settings)
        validate(estimator)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{exc} (from {source})") from None


def validate(estimator):
    """Check an estimator's parameters, and those of the parts it holds, as ``fit`` does first."""
    from ..utils.params import validate_parameters

    validate_parameters(estimator)
    for value in estimator.get_params(deep=False).values():
        if hasattr(value, "get_params") and hasattr(type(value), "_parameter_constraints"):
            validate_parameters(value)


def _json_value(value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (numbers.Integral, np.bool_)):
        return bool(value) if isinstance(value, np.bool_) else int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _json_value(v) for key, v in value.items()}
    return {"repr": repr(value)}


def json_params(estimator):
    """An estimator's parameters in JSON types, in the ``--param`` spelling.

    Every parameter of ``get_params(deep=True)`` but the part objects themselves (whose own
    parameters are listed under ``part__name``): numbers, strings, booleans and None as such,
    tuples and arrays as lists. A value JSON cannot hold becomes ``{"repr": "..."}``.

    Parameters
    ----------
    estimator : estimator

    Returns
    -------
    dict of str -> JSON value
        Sorted by name; passing each back as ``--param name=<json>`` builds an estimator with the
        same parameters.

    Examples
    --------
    >>> from invrec import UltraGCNRecommender
    >>> params = json_params(UltraGCNRecommender(loss_weights=(1, 0, 1, 1)))
    >>> params["handle_unknown"], params["loss_weights"], params["random_state"]
    ('error', [1, 0, 1, 1], None)
    """
    params = estimator.get_params(deep=True)
    return {key: _json_value(value) for key, value in sorted(params.items())
            if not hasattr(value, "get_params")}
