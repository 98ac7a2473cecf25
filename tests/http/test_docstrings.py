"""Tests that the docstring examples of ``prefactor_http`` run as written."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import prefactor_http

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(prefactor_http.__path__, prefix="prefactor_http.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name: str) -> None:
    """Every runnable example in the module's docstrings gives the output it shows."""
    module = importlib.import_module(name)
    globs = {**vars(prefactor_http), **vars(module)}
    result = doctest.testmod(module, globs=globs, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
