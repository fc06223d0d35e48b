"""Workload images: build contexts with content-hash tags, built with the local Docker engine.

:func:`generate_context` turns a workload folder into a Docker build context whose tag is the
hash of its content; :func:`build_image` builds it with the ``docker`` CLI unless the engine
already has that tag. ``workstack image`` is the command line, and
:class:`workstack.components.WorkloadImage` builds and pushes the same context with Pulumi.
Nothing here imports Pulumi. See docs/images.md.
"""

from workstack.images.context import (
    DEFAULT_BASE_IMAGE,
    BuildContext,
    ContextError,
    generate_context,
    is_image_reference,
)
from workstack.images.docker import BuildResult, Docker, DockerError, build_image
from workstack.images.hashing import HASH_LENGTH, hash_tree
from workstack.images.ignore import DEFAULT_EXCLUDES, IgnoreRules
from workstack.images.wheel import WheelError, build_workstack_wheel, runtime_requirements
from workstack.images.wheelhouse import WheelhouseError, default_wheelhouse

__all__ = [
    "DEFAULT_BASE_IMAGE",
    "DEFAULT_EXCLUDES",
    "HASH_LENGTH",
    "BuildContext",
    "BuildResult",
    "ContextError",
    "Docker",
    "DockerError",
    "IgnoreRules",
    "WheelError",
    "WheelhouseError",
    "build_image",
    "build_workstack_wheel",
    "default_wheelhouse",
    "generate_context",
    "hash_tree",
    "is_image_reference",
    "runtime_requirements",
]
