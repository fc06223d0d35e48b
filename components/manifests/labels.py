"""The labels every object workstack creates carries.

Kubernetes' recommended ``app.kubernetes.io/*`` set plus workstack's own ``workstack.dev/*`` keys,
so ``kubectl get all -l workstack.dev/stack=<stack>`` finds everything a stack made.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["LABEL_PREFIX", "MANAGED_BY", "PART_OF", "RUN_LABEL", "run_labels", "standard_labels"]

LABEL_PREFIX = "workstack.dev/"
PART_OF = "workstack"
MANAGED_BY = "pulumi"
RUN_LABEL = LABEL_PREFIX + "run"
"""The run an object belongs to: ``workstack status``, ``logs`` and ``cancel`` select by it."""


def run_labels(run_id: str | None) -> dict[str, str]:
    """``{RUN_LABEL: run_id}``, or nothing for objects that belong to no run."""
    return {RUN_LABEL: run_id} if run_id else {}


def standard_labels(
    *,
    name: str,
    instance: str,
    component: str,
    stack: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build the label set for one object.

    Args:
        name: What the application is (``app.kubernetes.io/name``), e.g. ``rabbitmq``.
        instance: Which instance of it (``app.kubernetes.io/instance``): the component's name.
        component: Its role in the application (``app.kubernetes.io/component``), e.g. ``worker``.
        stack: The Pulumi stack that owns it (``workstack.dev/stack``), when known.
        extra: More labels; they may not override the standard keys.

    Returns:
        A new dict, sorted by key so rendered manifests are stable.
    """
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if stack is not None:
        labels[LABEL_PREFIX + "stack"] = stack
    for key, value in (extra or {}).items():
        if key in labels:
            raise ValueError(f"label {key!r} is set by workstack and cannot be overridden")
        labels[key] = value
    return dict(sorted(labels.items()))
