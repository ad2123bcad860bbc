"""all_estimators and estimator_aliases: the one list of invrec's estimators."""

import inspect
import sys

import pytest

import invrec
from invrec.base import BaseRecommender
from invrec.baselines import PopularityRecommender, UltraGCNRecommender
from invrec.eior import EIORRecommender
from invrec.milk import MILKRecommender
from invrec.painvrl import PaInvRLRecommender
from invrec.utils import discovery
from invrec.utils.discovery import all_estimators, estimator_aliases

KNOWN = {
    "PopularityRecommender": PopularityRecommender, "UltraGCNRecommender": UltraGCNRecommender,
    "PaInvRLRecommender": PaInvRLRecommender, "EIORRecommender": EIORRecommender,
    "MILKRecommender": MILKRecommender,
}


def test_known_estimators_are_found():
    found = dict(all_estimators())
    for name, cls in KNOWN.items():
        assert found[name] is cls


def test_every_entry_is_a_public_concrete_recommender_sorted_once():
    estimators = all_estimators()
    names = [name for name, _ in estimators]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert len({cls for _, cls in estimators}) == len(estimators)
    for name, cls in estimators:
        assert inspect.isclass(cls) and issubclass(cls, BaseRecommender), name
        assert cls is not BaseRecommender and not inspect.isabstract(cls), name
        assert not name.startswith("_") and cls.__name__ == name
        assert cls.__module__.startswith("invrec.")
        assert isinstance(cls(), BaseRecommender)  # default-constructible, as sklearn expects


def test_walk_skips_the_non_estimator_packages():
    modules = {module.__name__ for module in discovery._estimator_modules()}
    assert {"invrec.baselines", "invrec.painvrl", "invrec.eior", "invrec.milk"} <= modules
    assert not any(name.split(".")[1] in ("datasets", "nn", "utils", "__main__") for name in modules)
    assert not any(part.startswith("_") for name in modules for part in name.split(".")[1:])


def test_new_estimator_module_is_picked_up(tmp_path, monkeypatch):
    """A class in a module that did not exist before is found without any list to edit."""
    (tmp_path / "zz_extra_estimators.py").write_text(
        "from invrec.baselines import PopularityRecommender\n"
        "class ExtraRegressor(PopularityRecommender):\n    pass\n"
        "class _HiddenRecommender(PopularityRecommender):\n    pass\n"
    )
    monkeypatch.setattr(invrec, "__path__", [*invrec.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "invrec.zz_extra_estimators", raising=False)
    try:
        found = dict(all_estimators())
        assert "ExtraRegressor" in found and "_HiddenRecommender" not in found
        assert set(KNOWN) <= set(found)
        aliases = estimator_aliases()
        assert aliases["extra-regressor"] is found["ExtraRegressor"]
    finally:
        sys.modules.pop("invrec.zz_extra_estimators", None)
        if hasattr(invrec, "zz_extra_estimators"):
            delattr(invrec, "zz_extra_estimators")


def test_aliases_are_short_unique_and_map_back():
    aliases = estimator_aliases()
    assert {"popularity": PopularityRecommender, "ultragcn": UltraGCNRecommender,
            "painvrl": PaInvRLRecommender, "eior": EIORRecommender,
            "milk": MILKRecommender}.items() <= aliases.items()
    assert set(aliases.values()) == {cls for _, cls in all_estimators()}
    assert len(aliases) == len(all_estimators())  # one name per class, no collisions
    for alias, cls in aliases.items():
        assert alias == alias.lower() and " " not in alias
        assert alias.replace("-", "") in cls.__name__.lower()


@pytest.mark.parametrize("name, alias", [
    ("EIORRecommender", "eior"), ("EIORRegressor", "eior-regressor"), ("Thing", "thing"),
    ("Recommender", "recommender"),
])
def test_alias_rule(name, alias):
    assert discovery._alias(name) == alias


def test_exported_from_the_package():
    assert invrec.all_estimators is all_estimators
    for name in ("PopularityRecommender", "UltraGCNRecommender", "all_estimators"):
        assert name in invrec.__all__ and hasattr(invrec, name)
    assert invrec.PopularityRecommender is PopularityRecommender
    assert invrec.UltraGCNRecommender is UltraGCNRecommender
