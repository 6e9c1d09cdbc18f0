"""Every public class and function documents its arguments and has an Example
(the examples themselves run as doctests)."""

import inspect

import pytest

import keras_unetpp
from keras_unetpp import datasets, evaluation, inference, layers, masks, models, postprocessing, visualization


def public_objects():
    seen = {}
    for module in (keras_unetpp, datasets, evaluation, inference, layers, masks, models, postprocessing, visualization):
        names = getattr(module, "__all__", [n for n in dir(module) if not n.startswith("_")])
        for name in names:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__.startswith("keras_unetpp"):
                seen[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return seen


@pytest.mark.parametrize("name, obj", sorted(public_objects().items()))
def test_docstring_has_args_and_example(name, obj):
    doc = inspect.getdoc(obj) or ""
    required = ("Args:", "Examples:") + (("Returns:",) if inspect.isfunction(obj) else ())
    missing = [section for section in required if section not in doc]
    assert not missing, f"{name} lacks {missing}"
