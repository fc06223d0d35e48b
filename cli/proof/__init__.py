"""The offline proof: checks that model the real engine, charts and clouds on a render.

Each check reads a :class:`~workstack.offline.Deployment` (what the program registered under
Pulumi's mocks) and the facts table (``workstack.components.manifests.upstream``), and
returns findings; none imports Pulumi beyond what ``workstack.offline`` already does. The
rules and their sources are in each module and in docs/deploying.md, "What the offline
proof checks". The Pulumi CLI's config rules are applied before the program runs, by
``workstack.project``.
"""

from __future__ import annotations

from workstack.offline import Deployment
from workstack.proof.capacity import capacity_findings
from workstack.proof.charts import bundle_uses, crd_findings, tpl_findings, value_findings
from workstack.proof.findings import Finding, StackContext
from workstack.proof.images import image_findings, platform_findings
from workstack.proof.names import collisions, name_findings
from workstack.proof.ordering import ordering_findings

__all__ = [
    "CHECKS",
    "Finding",
    "StackContext",
    "check_deployment",
    "collisions",
]

CHECKS = ("charts", "tpl", "crds", "ordering", "capacity", "names", "images")
"""The checks one render runs, in the order they report."""


def check_deployment(deployment: Deployment, context: StackContext) -> list[Finding]:
    """Every check that needs one render only (collisions between stacks need several)."""
    uses = bundle_uses(deployment)
    return [
        *value_findings(uses),
        *tpl_findings(uses),
        *crd_findings(deployment, uses, context),
        *ordering_findings(deployment, context),
        *capacity_findings(deployment, context),
        *name_findings(deployment),
        *image_findings(deployment),
        *platform_findings(deployment, context),
    ]
