"""Every public class and function documents its arguments and has an Example
(the examples themselves run as doctests)."""

import inspect

import pytest

import keras_unetpp
from keras_unetpp import datasets, evaluation, inference, layers, masks, models, postprocessing, visualization
from keras_unetpp.models import encoders


def public_objects():
    seen = {}
    for module in (keras_unetpp, datasets, evaluation, inference, layers, masks, models, encoders, postprocessing,
                   visualization):
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


def test_no_sphinx_roles_in_docstrings():
    """mkdocstrings renders Markdown cross-references (``[`name`][module.name]``);
    Sphinx roles such as ``:class:`` would appear as raw text on the site."""
    import pathlib
    import re

    role = re.compile(r":(class|meth|func|attr|mod|obj|data|exc):`")
    package = pathlib.Path(keras_unetpp.__file__).parent
    offenders = [f"{p.relative_to(package)}:{n}" for p in sorted(package.rglob("*.py"))
                 for n, line in enumerate(p.read_text().splitlines(), 1) if role.search(line)]
    assert not offenders, f"Sphinx roles render as raw text with mkdocstrings: {offenders}"


def test_multi_line_returns_entries_are_indented():
    """Google style: a continuation line at the entry's own indent starts a new
    entry, and the API reference shows one return value as two rows."""
    for name, obj in sorted(public_objects().items()):
        lines = (inspect.getdoc(obj) or "").splitlines()
        for i, line in enumerate(lines):
            if line.strip() != "Returns:":
                continue
            block = []
            for following in lines[i + 1:]:
                if not following.strip() or not following.startswith(" "):
                    break
                block.append(len(following) - len(following.lstrip()))
            assert block.count(block[0]) == 1 if block else True, f"{name}: Returns entry split into rows"
