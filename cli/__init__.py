"""workstack: data-science workloads on Kubernetes from Python, on Pulumi.

The distribution holds three packages: :mod:`workstack.components` (Pulumi components),
:mod:`workstack.sdk` (the runtime inside workload images) and this one, the ``workstack``
command and its deploy-side helpers.
"""

__version__ = "0.1.0"
