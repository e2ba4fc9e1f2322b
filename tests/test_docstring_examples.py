"""The runnable example in every public docstring runs and prints what it says."""

import doctest

import pytest
import torch

import rnnkit

PUBLIC = [getattr(rnnkit, name) for name in rnnkit.__all__ if callable(getattr(rnnkit, name))]


@pytest.mark.parametrize("obj", PUBLIC, ids=lambda obj: obj.__name__)
def test_docstring_example_runs(obj):
    tests = doctest.DocTestFinder(recurse=False).find(obj, globs={"torch": torch,
                                                                   "rnnkit": rnnkit})
    examples = [test for test in tests if test.examples]
    assert examples, f"{obj.__name__} has no runnable example"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in examples:
        runner.run(test)
    assert runner.failures == 0
