"""Find invrec's estimators: the one list the command line, the tests and the benchmarks share.

Nothing here names an estimator. The estimator modules of :mod:`invrec` are found by walking the
package, and every public concrete subclass of :class:`invrec.base.BaseRecommender` in them is an
estimator, so a class added to one of those modules (or a new module beside them) is picked up
without touching this file.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

#: Subpackages and modules of ``invrec`` that hold no estimator: not imported by the walk.
_NOT_ESTIMATOR_MODULES = frozenset({"invrec.datasets", "invrec.nn", "invrec.utils", "invrec.__main__",
                                    "invrec.cli"})

#: Class name suffix -> what it becomes in the short name (``EIORRecommender`` -> ``eior``,
#: ``EIORRegressor`` -> ``eior-regressor``).
_ALIAS_SUFFIXES = (("Recommender", ""), ("Regressor", "-regressor"))


def _skipped(name):
    """Whether the dotted module name ``name`` is left out of the walk."""
    parts = name.split(".")
    if any(name == skip or name.startswith(skip + ".") for skip in _NOT_ESTIMATOR_MODULES):
        return True
    return any(part.startswith("_") or part in ("tests", "conftest") or part.startswith("test_")
               for part in parts[1:])


def _estimator_modules():
    """Import and yield every module of ``invrec`` that may define estimators."""
    import invrec

    pending = [(invrec.__path__, "invrec.")]
    while pending:
        path, prefix = pending.pop()
        for info in sorted(pkgutil.iter_modules(path, prefix), key=lambda info: info.name):
            if _skipped(info.name):
                continue
            module = importlib.import_module(info.name)
            yield module
            if info.ispkg:
                pending.append((module.__path__, info.name + "."))


def all_estimators():
    """Every public estimator of invrec, found by inspecting its modules.

    The modules of the :mod:`invrec` package are walked (``invrec.datasets``, ``invrec.nn``,
    ``invrec.utils``, ``invrec.__main__``, test modules and private modules whose name starts
    with ``_`` are skipped) and imported; every class found in them that subclasses
    :class:`~invrec.base.BaseRecommender`, is not the base class itself, is not abstract and has
    a public name is collected, once each.

    Returns
    -------
    estimators : list of (str, type)
        ``(class name, class)`` pairs sorted by class name.

    See Also
    --------
    estimator_aliases : The short names the command line uses for these classes.

    Examples
    --------
    >>> from invrec.utils.discovery import all_estimators
    >>> estimators = all_estimators()
    >>> names = [name for name, _ in estimators]
    >>> {"PaInvRLRecommender", "EIORRecommender", "MILKRecommender"} <= set(names)
    True
    >>> names == sorted(names)
    True
    >>> dict(estimators)["MILKRecommender"]
    <class 'invrec.milk.MILKRecommender'>
    >>> model = dict(estimators)["PopularityRecommender"]()  # build one by name
    """
    from invrec.base import BaseRecommender

    found = {}
    for module in _estimator_modules():
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (cls is BaseRecommender or not issubclass(cls, BaseRecommender) or inspect.isabstract(cls)
                    or name.startswith("_") or cls.__name__.startswith("_")):
                continue
            if found.setdefault(cls.__name__, cls) is not cls:
                raise RuntimeError(f"two invrec estimators are called {cls.__name__}: "
                                   f"{found[cls.__name__].__module__} and {cls.__module__}.")
    return sorted(found.items())


def _alias(class_name):
    for suffix, replacement in _ALIAS_SUFFIXES:
        if class_name.endswith(suffix) and class_name != suffix:
            return class_name[: -len(suffix)].lower() + replacement
    return class_name.lower()


def estimator_aliases():
    """Short, lower-case names of invrec's estimators, as the command line's ``--model`` takes.

    Each class of :func:`all_estimators` gets its name in lower case with the suffix
    ``Recommender`` dropped (``UltraGCNRecommender`` -> ``"ultragcn"``); a ``Regressor`` keeps
    it as ``-regressor`` (``EIORRegressor`` -> ``"eior-regressor"``), so that it never takes the
    name of the recommender it sits beside. Classes whose short names would still coincide fall
    back to their whole class name in lower case.

    Returns
    -------
    aliases : dict of str -> type
        Short name -> estimator class, in the order of :func:`all_estimators`.

    Raises
    ------
    RuntimeError
        If two classes cannot be told apart even by their whole names.

    See Also
    --------
    all_estimators : The classes, under their own names.

    Examples
    --------
    >>> from invrec.utils.discovery import estimator_aliases
    >>> aliases = estimator_aliases()
    >>> {"popularity", "ultragcn", "painvrl", "eior", "milk"} <= set(aliases)
    True
    >>> aliases["ultragcn"].__name__
    'UltraGCNRecommender'
    """
    estimators = all_estimators()
    short = [_alias(name) for name, _ in estimators]
    aliases = {}
    for (name, cls), alias in zip(estimators, short):
        if short.count(alias) > 1:
            alias = name.lower()
        if alias in aliases:
            raise RuntimeError(f"invrec estimators {aliases[alias].__name__} and {name} share the "
                               f"short name {alias!r}.")
        aliases[alias] = cls
    return aliases
