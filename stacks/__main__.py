"""Entry point of ``pulumi up -s <stack>``: config in, components composed, outputs exported."""

import sys
from pathlib import Path

# Pulumi runs this folder as a script; make `stacks` importable as the package it is.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pulumi  # noqa: E402

from stacks.config import load_stack_config  # noqa: E402
from stacks.program import compose  # noqa: E402
from workstack.components import SpecError  # noqa: E402
from workstack.project import ConfigError  # noqa: E402

try:
    config = load_stack_config()
except (ConfigError, SpecError) as error:
    # RunError prints the message alone, without a traceback: the message says what to fix.
    raise pulumi.RunError(str(error)) from None

compose(config)
