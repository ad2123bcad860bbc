"""Declared parameter constraints and the package's one set of scalar checkers.

Every invrec estimator declares what each constructor parameter may be in a class attribute
``_parameter_constraints`` (a dict of name -> list of constraints, scikit-learn's idiom); the
dicts are merged down the class hierarchy and checked once, at the start of ``fit``, by
:func:`validate_parameters`. A value is valid when it satisfies *any* constraint of its list.
A constraint is

* an :class:`Interval` (``Interval(Integral, 1, None)``: an int >= 1; real intervals admit only
  finite values, so ``inf`` and ``nan`` never pass);
* a :class:`StrOptions` (a set of accepted strings) or :class:`Options` (any set of values);
* ``None`` (the value None), ``"boolean"`` (a bool or numpy bool), ``"random_state"`` (None, an
  int or a ``numpy.random.RandomState``), ``"device"`` (a string or a :class:`torch.device`);
* a :class:`RealTuple` (a tuple of finite reals of a given length and bounds);
* a class (an instance of it passes).

Errors are :class:`InvalidParameterError`, a subclass of both ``ValueError`` and ``TypeError``,
with one message shape: which parameter of which estimator, what it must be, what it got.
The functions :func:`check_int`, :func:`check_float`, :func:`check_fraction`, :func:`check_bool`
and :func:`check_choice` check one value against one constraint the same way, for the arguments of
functions and methods (``k`` of a metric, ``n`` of ``recommend``, ``n_splits`` of a splitter).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["InvalidParameterError", "Interval", "StrOptions", "Options", "RealTuple",
           "validate_parameters", "collect_constraints", "check_int", "check_float",
           "check_fraction", "check_choice", "check_bool"]


class InvalidParameterError(ValueError, TypeError):
    """A parameter or argument has a value outside its declared constraints.

    Subclasses both ``ValueError`` and ``TypeError`` (as scikit-learn's error of the same name),
    so code that catches either keeps working.
    """


def _is_real(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)))


def _is_integral(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


class Interval:
    """Numbers of a type within bounds.

    Parameters
    ----------
    type : numbers.Integral or numbers.Real
        ``Integral`` admits ints (numpy ints included, bools excluded); ``Real`` admits any
        finite real, ints included.
    left, right : number or None
        Bounds; None is unbounded.
    closed : {"both", "left", "right", "neither"}, default="both"
        Which bounds are included.

    Examples
    --------
    >>> from numbers import Real
    >>> Interval(Real, 0, 1, closed="neither").is_satisfied_by(0.5), str(Interval(Real, 0, 1))
    (True, 'a float in [0, 1]')
    >>> str(Interval(Real, 0, None, closed="neither")), str(Interval(numbers.Integral, 2, None))
    ('a positive float', 'an int >= 2')
    """

    def __init__(self, type, left, right, *, closed="both"):
        if type not in (numbers.Integral, numbers.Real):
            raise ValueError("Interval type must be numbers.Integral or numbers.Real.")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither'; got {closed!r}.")
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def is_satisfied_by(self, value):
        if self.type is numbers.Integral:
            if not _is_integral(value):
                return False
        elif not _is_real(value) or not math.isfinite(value):
            return False
        if self.left is not None:
            if value < self.left or (value == self.left and self.closed in ("right", "neither")):
                return False
        if self.right is not None:
            if value > self.right or (value == self.right and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self):
        kind = "an int" if self.type is numbers.Integral else "a float"
        if self.right is None and self.left == 0:
            sign = "positive" if self.closed in ("right", "neither") else "non-negative"
            return f"a {sign} {kind.split()[1]}"
        if self.right is None and self.left == 1 and self.type is numbers.Integral and self.closed in ("both", "left"):
            return "a positive int"
        if self.right is None and self.left is not None:
            return f"{kind} {'>=' if self.closed in ('both', 'left') else '>'} {self.left:g}"
        lo = "-inf" if self.left is None else f"{self.left:g}"
        hi = "inf" if self.right is None else f"{self.right:g}"
        lb = "[" if self.left is not None and self.closed in ("both", "left") else "("
        rb = "]" if self.right is not None and self.closed in ("both", "right") else ")"
        return f"{kind} in {lb}{lo}, {hi}{rb}"


class Options:
    """One of a set of values (compared with ``==``, bools never equal to ints)."""

    def __init__(self, values):
        self.values = tuple(values)

    def is_satisfied_by(self, value):
        # A bool never stands for an int option (True == 1), nor the reverse.
        return any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in self.values)

    def __str__(self):
        return "one of " + ", ".join(repr(v) for v in self.values)


class StrOptions(Options):
    """One of a set of strings.

    Examples
    --------
    >>> StrOptions({"error", "ignore"}).is_satisfied_by("ignore"), str(StrOptions(["a", "b"]))
    (True, "a str among {'a', 'b'}")
    """

    def __init__(self, values):
        super().__init__(sorted(values))

    def is_satisfied_by(self, value):
        return isinstance(value, str) and value in self.values

    def __str__(self):
        return "a str among {" + ", ".join(repr(v) for v in self.values) + "}"


class RealTuple:
    """A tuple (or list) of ``length`` finite reals, each at least ``minimum``."""

    def __init__(self, length, *, minimum=None):
        self.length, self.minimum = int(length), minimum

    def is_satisfied_by(self, value):
        if not isinstance(value, (tuple, list)) or len(value) != self.length:
            return False
        bound = Interval(numbers.Real, self.minimum, None)
        return all(bound.is_satisfied_by(v) for v in value)

    def __str__(self):
        floor = "" if self.minimum is None else f" >= {self.minimum:g}"
        return f"a tuple of {self.length} finite floats{floor}"


def _satisfies(value, constraint):
    if constraint is None:
        return value is None
    if isinstance(constraint, str):
        if constraint == "boolean":
            return isinstance(value, (bool, np.bool_))
        if constraint == "random_state":
            return value is None or _is_integral(value) or isinstance(value, np.random.RandomState)
        if constraint == "device":
            import torch

            return isinstance(value, (str, torch.device))
        raise ValueError(f"unknown constraint {constraint!r}")
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    return constraint.is_satisfied_by(value)


def _describe(constraint):
    if constraint is None:
        return "None"
    if isinstance(constraint, str):
        return {"boolean": "a bool", "random_state": "an int, a numpy RandomState or None",
                "device": "a device name ('auto', 'cpu', 'cuda', 'cuda:N') or a torch.device"}[constraint]
    if isinstance(constraint, type):
        return f"an instance of {constraint.__name__}"
    return str(constraint)


def _message(name, owner, constraints, value):
    described = [_describe(c) for c in constraints]
    allowed = described[0] if len(described) == 1 else ", ".join(described[:-1]) + " or " + described[-1]
    return f"The {name!r} parameter of {owner} must be {allowed}; got {value!r}.{_hint(constraints, value)}"


def _hint(constraints, value):
    """How to fix a value that is a near miss of a constraint (a Generator, a str for a bool)."""
    if "random_state" in constraints and isinstance(value, np.random.Generator):
        return (" A numpy Generator is not accepted (as in scikit-learn: its state would be "
                "shared between clones); pass an int seed drawn from it, e.g. "
                "random_state=int(rng.integers(2**31 - 1)).")
    if list(constraints) == ["boolean"] and isinstance(value, (str, numbers.Number)):
        return " Pass True or False (a string such as 'no' or a number is not read as a bool)."
    if list(constraints) == ["boolean"]:
        return " Pass True or False."
    return ""


def collect_constraints(cls):
    """``_parameter_constraints`` of ``cls`` merged over its bases (subclasses win)."""
    merged = {}
    for klass in reversed(cls.__mro__):
        merged.update(vars(klass).get("_parameter_constraints", {}))
    return merged


def validate_parameters(estimator):
    """Check every constructor parameter of ``estimator`` against its declared constraints.

    Raises
    ------
    InvalidParameterError
        For the first parameter whose value satisfies none of its constraints, and for a
        parameter that has no declared constraints (a developer error).
    """
    constraints = collect_constraints(type(estimator))
    owner = type(estimator).__name__
    for name, value in estimator.get_params(deep=False).items():
        if name not in constraints:
            raise InvalidParameterError(
                f"{owner} declares no constraint for its parameter {name!r}; add it to "
                "_parameter_constraints.")
        allowed = constraints[name]
        if allowed == "no_validation":
            continue
        if not any(_satisfies(value, c) for c in allowed):
            raise InvalidParameterError(_message(name, owner, allowed, value))


def _check(value, name, constraint):
    if not _satisfies(value, constraint):
        raise InvalidParameterError(
            f"{name} must be {_describe(constraint)}; got {value!r}.{_hint([constraint], value)}")
    return value


def check_bool(value, name):
    """``value`` as a bool, or an :class:`InvalidParameterError` unless it is a bool.

    Only ``True`` and ``False`` (numpy bools included) pass: a truthy string such as ``"no"``
    would otherwise mean True.

    Examples
    --------
    >>> check_bool(False, "exclude_seen")
    False
    """
    return bool(_check(value, name, "boolean"))


def check_int(value, name, minimum=1, maximum=None):
    """``value`` as an int, or an :class:`InvalidParameterError` unless it is an int in range.

    Booleans are rejected; numpy integers (as ``GridSearchCV`` passes them) are accepted.

    Examples
    --------
    >>> check_int(3, "n")
    3
    """
    return int(_check(value, name, Interval(numbers.Integral, minimum, maximum)))


def check_float(value, name, minimum=0.0, maximum=None, strict=False):
    """``value`` as a float, or an :class:`InvalidParameterError` unless it is finite and in range.

    ``strict`` makes the lower bound exclusive; ``maximum`` (inclusive) is optional.

    Examples
    --------
    >>> check_float(0.5, "w", maximum=1.0)
    0.5
    """
    closed = "right" if strict else "both"
    return float(_check(value, name, Interval(numbers.Real, minimum, maximum, closed=closed)))


def check_fraction(value, name, *, allow_zero=False, allow_one=False):
    """``value`` as a float in (0, 1), the bounds optionally included."""
    closed = {(False, False): "neither", (True, False): "left", (False, True): "right",
              (True, True): "both"}[(bool(allow_zero), bool(allow_one))]
    return float(_check(value, name, Interval(numbers.Real, 0, 1, closed=closed)))


def check_choice(value, name, choices):
    """``value`` unless it is not one of ``choices`` (an :class:`InvalidParameterError`)."""
    return _check(value, name, Options(choices))
