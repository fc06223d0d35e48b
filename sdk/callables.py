"""Find a workload's function from its path, such as ``csv_clean:process`` or ``pkg.mod.fn``."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from workstack.sdk.errors import WorkstackError

__all__ = ["CallableError", "check_callable_path", "import_workload_module", "load_callable"]

_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*([:.][A-Za-z_][\w]*)$")


class CallableError(WorkstackError, ValueError):
    """A function path does not name an importable callable; the message says why."""


def check_callable_path(key: str, path: object) -> str:
    """``path`` has the form of a function path (``module:function``), or CallableError."""
    if not isinstance(path, str) or not _PATH.match(path):
        raise CallableError(
            f"{key}: {path!r} is not allowed; expected module:function such as "
            "'csv_clean:process' (or dotted, 'pkg.module.function')"
        )
    return path


def import_workload_module(name: str) -> Any:
    """Import a workload's module; one that exits while being imported is bad input.

    A module that calls ``sys.exit()`` at import would end the process with its own status
    and no message; here it raises :class:`CallableError` naming the module and the status.

    Raises:
        CallableError: The module called ``sys.exit`` (or raised ``SystemExit``) at import.
        ModuleNotFoundError: It does not exist.
    """
    try:
        return importlib.import_module(name)
    except SystemExit as exit_:
        raise CallableError(
            f"module {name!r} exits while being imported "
            f"(sys.exit({exit_.code!r})): a workload module must only define functions "
            'when imported (put the script part under `if __name__ == "__main__":`)'
        ) from None


def load_callable(path: str) -> Callable[..., Any]:
    """Import and return the callable ``path`` names.

    Args:
        path: ``module:attribute`` (preferred) or ``package.module.attribute``.

    Raises:
        CallableError: The path is malformed, the module cannot be imported, the attribute is
            missing, or it is not callable.
    """
    if not isinstance(path, str) or not _PATH.match(path):
        raise CallableError(
            f"function {path!r} is not allowed; expected module:function such as "
            "'csv_clean:process' (or dotted, 'pkg.module.function')"
        )
    module_name, _, attribute = path.rpartition(":") if ":" in path else path.rpartition(".")
    try:
        module = import_workload_module(module_name)
    except CallableError as error:
        raise CallableError(f"function {path!r} is not allowed; {error}") from None
    except ModuleNotFoundError as error:
        raise CallableError(
            f"function {path!r}: module {module_name!r} cannot be imported ({error})"
        ) from None
    target = getattr(module, attribute, None)
    if target is None:
        raise CallableError(f"function {path!r}: module {module_name!r} has no {attribute!r}")
    if not callable(target):
        raise CallableError(f"function {path!r}: {attribute!r} is not callable")
    return target  # type: ignore[no-any-return]
