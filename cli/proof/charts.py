"""Charts and manifest bundles against the facts table: values keys, ``tpl``, CRDs.

Rules (sources in ``workstack.components.manifests.upstream`` and docs/deploying.md):

- Every chart and bundle a render installs is pinned in the facts table, and every values
  key a component sets exists in that chart version (an unknown key is silently ignored by
  Helm: the setting it was meant to make is simply not made).
- A value whose key the chart renders through ``tpl`` holds no raw ``{{``: Helm would parse
  it as its own template (Argo's ``{{workflow.namespace}}`` is a call to a function
  ``workflow`` that does not exist, and the chart fails to render). Literal braces must be
  written as a Go string literal action, ``{{ "{{workflow.namespace}}" }}``.
- Every custom resource (and every custom resource a bundle itself creates) has its CRD
  installed by something the stack applies and waits for: a CustomResourceDefinition
  object, a chart's templates or ``crds/`` folder (pulumi-kubernetes ``helm.v4.Chart``
  renders with ``IncludeCRDs = !skipCrds``), or a ConfigFile document; or the cluster
  already has it. CRDs a chart installs from a Helm hook do not count: ``helm.v4.Chart``
  renders with ``DisableHooks = true`` and never runs them (pulumi/pulumi-kubernetes
  ``provider/pkg/provider/helm/v4/chart.go``; issue #3284).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from workstack.components.manifests.upstream import BUNDLES, Bundle, Condition, lookup
from workstack.offline import Deployment, RegisteredResource, Secret
from workstack.proof.findings import Finding, StackContext
from workstack.proof.graph import ResourceGraph

__all__ = [
    "BundleUse",
    "bundle_uses",
    "crd_findings",
    "holds",
    "raw_template",
    "tpl_findings",
    "value_findings",
]

CHART = "kubernetes:helm.sh/v4:Chart"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"


@dataclass(frozen=True)
class BundleUse:
    """A chart or ConfigFile a render installs, matched with its facts.

    Attributes:
        resource: The registered Chart or ConfigFile.
        key: How the facts table would name it.
        bundle: Its facts, or None when it is not in the table.
        values: The values it was given (charts).
        release: The Helm release name.
    """

    resource: RegisteredResource
    key: str
    bundle: Bundle | None
    values: Mapping[str, Any]
    release: str

    @property
    def label(self) -> str:
        """``<resource name> (<bundle> <version>)`` for messages."""
        shown = self.key.split(":", 1)[1]
        return f"{self.resource.name} ({shown})"

    def value(self, path: str) -> Any:
        """The value at ``path``, the chart's default where the render sets none."""
        assert self.bundle is not None
        known = self.bundle.value_key(path)
        return lookup(self.values, path, known.default if known else None)


def _unwrap(value: Any) -> Any:
    return _unwrap(value.value) if isinstance(value, Secret) else value


def bundle_uses(deployment: Deployment) -> list[BundleUse]:
    """Every chart and ConfigFile in the deployment, with its facts when the table has them."""
    uses = []
    for resource in deployment.resources:
        inputs = {k: _unwrap(v) for k, v in resource.inputs.items()}
        if resource.type == CHART:
            repo = (inputs.get("repositoryOpts") or {}).get("repo", "")
            key = f"chart:{repo}/{inputs.get('chart')}@{inputs.get('version')}"
            values = inputs.get("values") or {}
            release = str(inputs.get("name") or resource.name)
        elif resource.type == CONFIG_FILE:
            key, values, release = f"manifest:{inputs.get('file')}", {}, resource.name
        else:
            continue
        uses.append(BundleUse(resource, key, BUNDLES.get(key), values, release))
    return uses


def holds(use: BundleUse, conditions: tuple[Condition, ...]) -> bool:
    """Whether every condition holds for the use's values (Helm's ``if`` truthiness)."""
    return all(bool(use.value(path)) is truthy for path, truthy in conditions)


def _leaves(values: Mapping[str, Any], bundle: Bundle, prefix: str = "") -> Iterator[str]:
    """Paths in ``values`` the facts table does not know, opaque maps not descended into."""
    for name, value in values.items():
        path = f"{prefix}{name}"
        known = bundle.value_key(path)
        if known is not None and (known.opaque or not isinstance(value, Mapping)):
            continue
        below = any(key.path.startswith(path + ".") for key in bundle.values)
        if isinstance(value, Mapping) and (below or known is not None):
            yield from _leaves(value, bundle, path + ".")
        else:
            yield path


def value_findings(uses: list[BundleUse]) -> list[Finding]:
    """Charts or bundles missing from the facts table, and values keys a chart lacks."""
    findings = []
    for use in uses:
        if use.bundle is None:
            findings.append(
                Finding(
                    "charts",
                    use.resource.name,
                    f"{use.key.split(':', 1)[1]} is not in the facts table "
                    "(workstack.components.manifests.upstream.BUNDLES); pinned: "
                    + ", ".join(b.key.split(":", 1)[1] for b in BUNDLES.values()),
                )
            )
            continue
        for path in _leaves(use.values, use.bundle):
            findings.append(
                Finding(
                    "charts",
                    use.label,
                    f"values key {path!r} does not exist in {use.bundle.name} "
                    f"{use.bundle.version}: Helm ignores it, so what it was meant to set is "
                    "not set",
                )
            )
    return findings


def raw_template(text: str) -> str | None:
    """The first Helm action in ``text`` that is not a Go string literal, or None.

    ``{{ "{{x}}" }}`` and ``{{ `{{x}}` }}`` render the braces literally; anything else, like
    ``{{workflow.name}}``, is executed as a template by ``tpl``.
    """
    start = text.find("{{")
    while start != -1:
        end = _literal_action_end(text, start)
        if end is None:
            close = text.find("}}", start)
            return text[start : close + 2 if close != -1 else len(text)]
        start = text.find("{{", end)
    return None


def _literal_action_end(text: str, start: int) -> int | None:
    """Where a ``{{ "literal" }}`` action starting at ``start`` ends, or None if it is not one."""
    i = start + 2
    if text.startswith("- ", i):
        i += 2
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text) or text[i] not in '"`':
        return None
    quote, i = text[i], i + 1
    while i < len(text) and text[i] != quote:
        i += 2 if quote == '"' and text[i] == "\\" else 1
    i += 1
    while i < len(text) and text[i] == " ":
        i += 1
    if text.startswith("-}}", i):
        i += 1
    return i + 2 if text.startswith("}}", i) else None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def tpl_findings(uses: list[BundleUse]) -> list[Finding]:
    """Values under a ``tpl``-rendered key that hold a raw template action."""
    findings = []
    for use in uses:
        if use.bundle is None:
            continue
        for known in use.bundle.values:
            if not known.tpl:
                continue
            for path, text in _strings(lookup(use.values, known.path), known.path):
                action = raw_template(text)
                if action is not None:
                    findings.append(
                        Finding(
                            "tpl",
                            use.label,
                            f"{path} = {text!r} goes through Helm's tpl ({known.source}): "
                            f"{action} is executed as a Helm template and the chart fails to "
                            f'render; write literal braces as {{{{ "{action}" }}}}',
                        )
                    )
    return findings


_BUILTIN_SUFFIX = ".k8s.io"


def _group_kind(obj: Mapping[str, Any]) -> str | None:
    """``group/Kind`` of a custom resource, None for built-in kinds."""
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.rpartition("/")[0]
    if not group or "." not in group or group.endswith(_BUILTIN_SUFFIX):
        return None
    return f"{group}/{obj.get('kind')}"


@dataclass(frozen=True)
class _Installer:
    resource: RegisteredResource
    via: str


def _installers(
    deployment: Deployment, uses: list[BundleUse]
) -> tuple[dict[str, list[_Installer]], dict[str, list[str]]]:
    """Who installs each CRD (by ``group/Kind``), and CRDs only a Helm hook would install."""
    installed: dict[str, list[_Installer]] = {}
    hooks: dict[str, list[str]] = {}
    for resource in deployment.resources:
        if resource.is_kubernetes_object and resource.inputs.get("kind") == (
            "CustomResourceDefinition"
        ):
            spec = resource.inputs.get("spec") or {}
            kind = f"{spec.get('group')}/{(spec.get('names') or {}).get('kind')}"
            installed.setdefault(kind, []).append(_Installer(resource, "object"))
    for use in uses:
        if use.bundle is None:
            continue
        for source in use.bundle.crds:
            if not holds(use, source.when):
                continue
            if source.via == "crds-dir" and use.resource.inputs.get("skipCrds"):
                continue
            for kind in source.kinds:
                if source.via == "hook":
                    hooks.setdefault(kind, []).append(f"{use.label}: {source.source}")
                else:
                    installed.setdefault(kind, []).append(_Installer(use.resource, source.via))
    return installed, hooks


def crd_findings(
    deployment: Deployment, uses: list[BundleUse], context: StackContext
) -> list[Finding]:
    """Custom resources whose CRD nothing applied installs, or that do not wait for it."""
    graph = ResourceGraph.of(deployment)
    installed, hooks = _installers(deployment, uses)
    wanted: list[tuple[str, str, RegisteredResource]] = []
    for resource in deployment.resources:
        if resource.is_kubernetes_object:
            kind = _group_kind(resource.inputs)
            if kind is not None:
                name = (resource.inputs.get("metadata") or {}).get("name")
                wanted.append((kind, f"{resource.inputs.get('kind')}/{name}", resource))
    for use in uses:
        for kind in use.bundle.custom_resources if use.bundle else ():
            wanted.append((kind, f"{use.label} creates {kind}", use.resource))
    findings = []
    for kind, subject, resource in wanted:
        if kind in context.provided_crds:
            continue
        installers = installed.get(kind, [])
        if not installers:
            findings.append(Finding("crds", subject, _missing(kind, hooks.get(kind))))
            continue
        if any(i.resource is resource for i in installers):
            continue  # the same chart or file: pulumi-kubernetes orders CRDs first
        if not graph.waits_for_any(resource, [i.resource for i in installers]):
            names = ", ".join(i.resource.name for i in installers)
            findings.append(
                Finding(
                    "crds",
                    subject,
                    f"the CRD {kind} comes from {names}, which this resource does not wait "
                    "for: it can be created before its kind exists",
                )
            )
    return findings


def _missing(kind: str, hooks: list[str] | None) -> str:
    if hooks:
        return (
            f"the CRD {kind} is installed only by a Helm hook ({'; '.join(hooks)}); "
            "helm.v4.Chart renders with hooks disabled, so nothing installs it. Install the "
            "CRDs from templates (argo-workflows: crds.full=false) or apply them separately"
        )
    return (
        f"no CRD for {kind} is installed by anything the stack applies, and the cluster is "
        "not declared to have it (workstack:installOperators=false declares the operators' "
        "and Argo's)"
    )
