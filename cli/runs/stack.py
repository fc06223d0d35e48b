"""Reading a deployed stack: its outputs, its contract, and a Kubernetes client for it.

The outputs come through Pulumi's Automation API (what ``pulumi stack output --json
--show-secrets`` prints) or from a file holding that JSON (``--outputs FILE``), for users
without the Pulumi CLI at hand and for tests. The contract says what runs need; the cluster
is reached with the stack's ``kubeconfig`` output (GKE, EKS) or, for minikube, your own
kubeconfig and the context the contract names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from workstack.components.manifests.contract import StackContract, load_contract
from workstack.components.manifests.validation import SpecError
from workstack.runs.errors import UsageError
from workstack.runs.kube import Kube

__all__ = ["OutputsReader", "Stack", "load_stack", "read_outputs_file", "read_outputs_pulumi"]


class OutputsReader(Protocol):
    """What reads a stack's outputs (the Automation API backend of ``workstack env``)."""

    def stacks(self) -> list[str]:
        """The project's stacks."""
        ...

    def outputs(self, stack: str) -> dict[str, Any]:
        """The stack's outputs, secrets shown."""
        ...


@dataclass(frozen=True)
class Stack:
    """A deployed stack as runs see it.

    Attributes:
        name: The stack's name.
        contract: What runs need to know about it.
        outputs: All its outputs.
    """

    name: str
    contract: StackContract
    outputs: Mapping[str, Any]

    def kube(
        self, *, kubeconfig: Path | None = None, context: str | None = None, timeout: float = 30.0
    ) -> Kube:
        """A client for the stack's cluster, in its namespace.

        ``kubeconfig``/``context`` override what the stack says (any cluster you reach).

        Raises:
            UsageError: The kubeconfig cannot be used.
        """
        namespace = self.contract.namespace
        if kubeconfig is not None or context is not None:
            return Kube.connect(
                namespace,
                kubeconfig=kubeconfig,
                context=context or self.contract.kube_context,
                timeout=timeout,
            )
        if self.contract.kube_context is not None:
            # minikube and other existing clusters: your kubeconfig, the stack's context.
            return Kube.connect(namespace, context=self.contract.kube_context, timeout=timeout)
        config = self.outputs.get("kubeconfig")
        if not config:
            raise UsageError(
                f"stack {self.name!r} has no kubeconfig output; pass --kubeconfig FILE "
                "(and --context NAME) for its cluster"
            )
        parsed = yaml.safe_load(config) if isinstance(config, str) else config
        if not isinstance(parsed, Mapping):
            raise UsageError(f"stack {self.name!r}'s kubeconfig output is not a kubeconfig")
        return Kube.connect(namespace, kubeconfig=parsed, timeout=timeout)


def read_outputs_file(path: Path) -> dict[str, Any]:
    """The outputs in ``path``: the JSON ``pulumi stack output --json --show-secrets`` prints.

    Raises:
        UsageError: No such file, or not a JSON object.
    """
    if not path.is_file():
        raise UsageError(
            f"--outputs {str(path)!r}: no such file; write it with `pulumi stack output --json "
            "--show-secrets -s STACK > FILE`"
        )
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise UsageError(f"--outputs {str(path)!r} is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--outputs {str(path)!r} holds {type(data).__name__}; expected an object")
    return data


def read_outputs_pulumi(reader: OutputsReader, stack: str) -> dict[str, Any]:
    """The outputs of ``stack`` through the Automation API.

    Raises:
        UsageError: No such stack (the message lists those there are).
    """
    known = reader.stacks()
    if stack not in known:
        raise UsageError(
            f"stack {stack!r} does not exist in this backend; stacks: "
            f"{', '.join(sorted(known)) or 'none'} (create it with `pulumi up -s {stack}`)"
        )
    return reader.outputs(stack)


def load_stack(outputs: Mapping[str, Any], *, name: str, source: str) -> Stack:
    """The stack whose outputs are ``outputs``.

    Raises:
        UsageError: No contract (a stack deployed before runs existed: run ``pulumi up``), or
            one this workstack cannot read.
    """
    try:
        contract = load_contract(outputs.get("contract"), source=source)
    except SpecError as error:
        raise UsageError(f"{error}; run `pulumi up -s {name}` with this workstack") from None
    return Stack(name=name or contract.stack, contract=contract, outputs=dict(outputs))
