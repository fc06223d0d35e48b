"""Workload images: build contexts with content-hash tags, built with the local Docker engine.

:func:`plan_context` computes a workload's build context and its tag (the hash of what goes
into the image) without writing anything; :meth:`ContextPlan.write` (or
:func:`generate_context`) writes it, and :func:`build_image` builds it with the ``docker`` CLI
unless the engine already has that tag. :func:`rendering` marks a program run that renders
and must write nothing. ``workstack image`` is the command line, and
:class:`workstack.components.WorkloadImage` builds and pushes the same context with Pulumi.
Nothing here imports Pulumi. See docs/images.md.
"""

from workstack.images.context import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_PLATFORM,
    PLATFORMS,
    BuildContext,
    ContextError,
    ContextFile,
    ContextPlan,
    Exclusion,
    generate_context,
    host_platform,
    is_image_reference,
    plan_context,
)
from workstack.images.docker import BuildResult, Docker, DockerError, build_image
from workstack.images.hashing import HASH_LENGTH, hash_tree
from workstack.images.ignore import DEFAULT_EXCLUDES, SECRET_EXCLUDES, IgnoreRules
from workstack.images.rendering import is_rendering, rendering
from workstack.images.source import SourceError, WorkstackSource, find_source
from workstack.images.wheelhouse import WheelhouseError, default_wheelhouse

__all__ = [
    "DEFAULT_BASE_IMAGE",
    "DEFAULT_EXCLUDES",
    "DEFAULT_PLATFORM",
    "HASH_LENGTH",
    "PLATFORMS",
    "SECRET_EXCLUDES",
    "BuildContext",
    "BuildResult",
    "ContextError",
    "ContextFile",
    "ContextPlan",
    "Docker",
    "DockerError",
    "Exclusion",
    "IgnoreRules",
    "SourceError",
    "WheelhouseError",
    "WorkstackSource",
    "build_image",
    "default_wheelhouse",
    "find_source",
    "generate_context",
    "hash_tree",
    "host_platform",
    "is_image_reference",
    "is_rendering",
    "plan_context",
    "rendering",
]
