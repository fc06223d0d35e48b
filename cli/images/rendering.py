"""Whether the program runs to be rendered (nothing is built) or deployed.

Rendering a stack (``workstack render``, the offline checks) runs the same Pulumi program as
``pulumi up``, but must write nothing: :class:`workstack.components.WorkloadImage` then
computes each image's tag and context without writing the context. The offline engine runs
the program inside :func:`rendering`::

    from workstack.images import rendering

    with rendering():
        run_the_program()

The flag is a context variable: it holds in the thread (and the asyncio tasks) that entered
it, and in a ``contextvars.Context`` copied from there, but not in a fresh
``contextvars.Context()`` or another thread, so enter it where the program actually runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["is_rendering", "rendering"]

_RENDERING: ContextVar[bool] = ContextVar("workstack_images_rendering", default=False)


@contextmanager
def rendering() -> Iterator[None]:
    """Within this block, image components compute tags and write no build context."""
    token = _RENDERING.set(True)
    try:
        yield
    finally:
        _RENDERING.reset(token)


def is_rendering() -> bool:
    """Whether the caller runs inside :func:`rendering`."""
    return _RENDERING.get()
