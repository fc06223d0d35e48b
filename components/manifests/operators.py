"""Where the operators a stack installs (RabbitMQ, KEDA, Dask) serve.

``namespace``: the stack's own namespace only; each operator watches and holds rights there
alone. ``cluster``: every namespace, so other stacks on the same cluster that do not install
operators (``installOperators: false``, e.g. minikube previews, each in a namespace of its
own) are served too; the operators then hold their rights cluster-wide, as released.
"""

from __future__ import annotations

__all__ = ["OPERATOR_SCOPES"]

OPERATOR_SCOPES = ("namespace", "cluster")
