"""The dependency graph of a deployment, as the engine would order it.

A resource is created only after everything it waits for: the URNs the SDK sent as its
dependencies (explicit ``depends_on`` and the resources its inputs come from, components
already expanded to their children) and its explicit provider, which must exist before
the resource can be created with it. Waiting is transitive: a dependency was itself created
only after its own dependencies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from workstack.offline import Deployment, RegisteredResource

__all__ = ["ResourceGraph", "urn_key"]

Key = tuple[str, str]
"""A resource's type token and logical name."""


def urn_key(urn: str) -> Key:
    """The type and name a URN names: ``urn:pulumi:s::p::parent$type::name`` -> (type, name).

    A provider reference (``<urn>::<id>``) gives its provider's key.
    """
    parts = urn.split("::")
    if len(parts) >= 5:  # a provider reference: urn:pulumi:stack::project::type::name::id
        parts = parts[:4]
    return parts[2].rsplit("$", 1)[-1], parts[3]


@dataclass
class ResourceGraph:
    """Who waits for whom among a deployment's resources."""

    resources: list[RegisteredResource]
    _by_key: dict[Key, RegisteredResource] = field(init=False, default_factory=dict)
    _closure: dict[Key, frozenset[Key]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._by_key = {(r.type, r.name): r for r in self.resources}

    @classmethod
    def of(cls, deployment: Deployment) -> ResourceGraph:
        """The graph of ``deployment``."""
        return cls(list(deployment.resources))

    def direct(self, resource: RegisteredResource) -> set[Key]:
        """What ``resource`` waits for directly: its dependencies and its provider."""
        keys = {urn_key(urn) for urn in resource.depends_on}
        if resource.provider:
            keys.add(urn_key(resource.provider))
        return keys

    def waits_for(self, resource: RegisteredResource) -> frozenset[Key]:
        """Everything ``resource`` waits for, directly or through what it waits for."""
        start = (resource.type, resource.name)
        if start in self._closure:
            return self._closure[start]
        seen: set[Key] = set()
        stack = list(self.direct(resource))
        while stack:
            key = stack.pop()
            if key in seen:
                continue
            seen.add(key)
            if key in self._closure:
                seen |= self._closure[key]
                continue
            found = self._by_key.get(key)
            if found is not None:
                stack.extend(self.direct(found))
        self._closure[start] = frozenset(seen)
        return self._closure[start]

    def deleted_before(self, resource: RegisteredResource) -> frozenset[Key]:
        """Everything ``pulumi destroy`` deletes only after ``resource`` is gone.

        The engine deletes a resource after everything that depends on it, its children
        included (pkg/resource/graph/dependency_graph.go, ``DependingOn``: parent, dependencies,
        property dependencies, deletedWith): the closure of dependencies, providers and parents.
        """
        seen: set[Key] = set()
        stack = [resource]
        while stack:
            current = stack.pop()
            keys = self.direct(current)
            if current.parent:
                keys.add(urn_key(current.parent))
            for key in keys - seen:
                seen.add(key)
                found = self._by_key.get(key)
                if found is not None:
                    stack.append(found)
        return frozenset(seen)

    def waits_for_any(
        self, resource: RegisteredResource, targets: Iterable[RegisteredResource]
    ) -> bool:
        """Whether ``resource`` waits for at least one of ``targets``."""
        closure = self.waits_for(resource)
        return any((t.type, t.name) in closure for t in targets)

    def provider_of(self, resource: RegisteredResource) -> RegisteredResource | None:
        """The explicit provider ``resource`` uses, if it is in the deployment."""
        if not resource.provider:
            return None
        return self._by_key.get(urn_key(resource.provider))

    def of_type(self, *types: str) -> list[RegisteredResource]:
        """Resources of the given type tokens, in registration order."""
        return [r for r in self.resources if r.type in types]
