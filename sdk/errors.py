"""The one base class of every error workstack reports to a user.

A :class:`WorkstackError` carries a message written for the person who made the input: it names
what is wrong (the key, option, file or field), the value, and what is allowed. Commands print
it without a traceback and exit 2; anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["WorkstackError"]


class WorkstackError(Exception):
    """A problem with the user's input or environment, explained in the user's terms."""
