"""Every error workstack reports to a user derives from WorkstackError (issue 13 item 6)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import workstack
from workstack.sdk.errors import WorkstackError

# Not reported to users as they are: ProgramError carries the program's own error.
NOT_USER_FACING = {"workstack.offline.ProgramError"}


def _modules() -> list[str]:
    packages = [workstack, importlib.import_module("workstack.components")]
    packages.append(importlib.import_module("workstack.sdk"))
    names = {
        info.name
        for package in packages
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}.")
    }
    return sorted(names)


@pytest.mark.parametrize("module", _modules())
def test_public_error_classes_are_workstack_errors(module: str) -> None:
    if module.endswith(".__main__"):
        pytest.skip("running it starts the command")
    loaded = importlib.import_module(module)
    for name, value in vars(loaded).items():
        if (
            inspect.isclass(value)
            and issubclass(value, Exception)
            and value.__module__ == module
            and name.endswith("Error")
            and not name.startswith("_")
            and f"{module}.{name}" not in NOT_USER_FACING
        ):
            assert issubclass(value, WorkstackError), f"{module}.{name}"
