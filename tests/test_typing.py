"""The package is typed (PEP 561): ``py.typed`` ships, and the public methods carry annotations."""

import inspect
from importlib import resources

import pytest

from invrec.base import BaseRecommender


def test_py_typed_ships_with_the_package():
    assert resources.files("invrec").joinpath("py.typed").is_file()


@pytest.mark.parametrize("name", ["fit", "predict", "recommend", "score", "similar_items", "similar_users"])
def test_public_methods_are_annotated(name):
    signature = inspect.signature(getattr(BaseRecommender, name))
    parameters = [p for p in signature.parameters.values() if p.name != "self"]
    assert all(p.annotation is not inspect.Parameter.empty for p in parameters), name
    assert signature.return_annotation is not inspect.Signature.empty
