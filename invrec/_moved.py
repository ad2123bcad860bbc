"""Former import paths and names, kept working (with a DeprecationWarning) or failing with the
new spelling.

The package was reorganised by concern (``invrec.nn`` generic blocks, ``invrec.invariance``,
``invrec.multimodal``) and the torch models that were called "...Scorer" are "...Model" now
("scorer" is reserved for scikit-learn scorers). :data:`MOVED_MODULES` maps old module paths to
new ones; an import of an old path returns the new module under the old name.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__all__ = ["MOVED_MODULES", "moved_names"]

#: Former module -> its module now.
MOVED_MODULES = {
    "invrec.imputation": "invrec.multimodal.imputation",
    "invrec.nn.alignment": "invrec.multimodal.alignment",
    "invrec.nn.attention": "invrec.invariance.fusion",
    "invrec.nn.content_scorer": "invrec.multimodal.content_model",
    "invrec.nn.environments": "invrec.invariance.environments",
    "invrec.nn.fusion": "invrec.invariance.fused",
    "invrec.nn.invariant_mask": "invrec.invariance.invariant_mask",
    "invrec.nn.masks": "invrec.invariance.masks",
    "invrec.nn.mixup": "invrec.multimodal.mixup",
    "invrec.nn.pareto": "invrec.invariance.pareto",
    "invrec.nn.penalties": "invrec.invariance.penalties",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, old, new):
        self.old, self.new = old, new

    def create_module(self, spec):
        warnings.warn(f"{self.old} moved to {self.new}; import it from there.", DeprecationWarning,
                      stacklevel=4)
        return importlib.import_module(self.new)

    def exec_module(self, module):
        """The target module is already executed."""


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(fullname, new))


def install():
    """Put the finder of former module paths on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())


def moved_names(module, moved, removed=()):
    """A module ``__getattr__`` for former names.

    Parameters
    ----------
    module : str
        The module's name (for the messages).
    moved : dict of str to str
        Former name -> ``"package.module:NewName"``: returned, with a DeprecationWarning.
    removed : dict of str to str
        Former name -> what to use instead: an ImportError saying so.
    """
    removed = dict(removed)

    def __getattr__(name):
        if name in moved:
            path, new_name = moved[name].split(":")
            warnings.warn(f"{module}.{name} is now {path}.{new_name}; import it from there.",
                          DeprecationWarning, stacklevel=2)
            value = getattr(importlib.import_module(path), new_name)
            vars(sys.modules[module])[name] = value      # warned once: ``from ... import`` asks twice
            return value
        if name in removed:
            raise ImportError(f"{module}.{name} no longer exists: {removed[name]}.")
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
