"""Check rendered objects against real schemas, the way the API server would on apply.

Built-in kinds are checked with ``kubernetes-validate`` (strict: unknown fields are errors) for
the oldest Kubernetes version workstack supports and the newest the validator knows. Custom
resources are checked against the ``openAPIV3Schema`` of their CustomResourceDefinition, made
strict the same way (the API server's strict field validation rejects unknown fields). Argo
objects whose CRD is not at hand are checked against hera's models of the Argo API (types and
unknown fields), which need no CRD. Whatever is left is reported as unchecked: a user checks it
with the charts' CRDs (``workstack render --validate --crds DIR``) or against a cluster
(``kubectl apply --dry-run=server``).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CRD_DIRS_ENV",
    "KUBERNETES_VERSIONS",
    "CrdCatalog",
    "SchemaCheck",
    "default_crd_dirs",
    "validate_objects",
]

KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
"""Oldest Kubernetes minor workstack supports (GKE and EKS standard support), and newest known."""


@dataclass
class SchemaCheck:
    """Outcome of validating a set of objects.

    Attributes:
        errors: One message per invalid object and version, naming kind, name and field.
        unchecked: Custom resources whose CRD was not available (``kind/name``).
        checked: How many objects were checked against a schema.
        by_models: Those of the checked objects that were checked against hera's Argo models
            for want of a CRD (``kind/name``).
    """

    errors: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    checked: int = 0
    by_models: list[str] = field(default_factory=list)


def _strict(schema: Any) -> Any:
    """Forbid fields a structural schema does not declare, as strict field validation does."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


class CrdCatalog:
    """The schemas of the CustomResourceDefinitions found in some folders."""

    def __init__(self, folders: Iterable[Path]) -> None:
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}
        for folder in folders:
            for path in sorted(folder.glob("*.yaml")):
                # The Argo CRDs are megabytes of YAML: use libyaml's loader where it is built in.
                loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
                for document in yaml.load_all(path.read_text(), Loader=loader):
                    if (
                        isinstance(document, dict)
                        and document.get("kind") == "CustomResourceDefinition"
                    ):
                        self._add(document)

    def _add(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        for version in spec.get("versions", []):
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is not None:
                api_version = f"{spec['group']}/{version['name']}"
                schema = copy.deepcopy(schema)
                # Every object has these, whether or not its CRD's schema spells them out.
                properties = schema.setdefault("properties", {})
                properties.setdefault("apiVersion", {"type": "string"})
                properties.setdefault("kind", {"type": "string"})
                properties.setdefault("metadata", {"type": "object"})
                self._schemas[(api_version, spec["names"]["kind"])] = _strict(schema)

    def schema_for(self, api_version: str, kind: str) -> dict[str, Any] | None:
        """The strict schema for ``kind`` at ``api_version``, or None if no CRD declares it."""
        return self._schemas.get((api_version, kind))

    def __len__(self) -> int:
        return len(self._schemas)


CRD_DIRS_ENV = "WORKSTACK_CRD_DIRS"
"""Folders of upstream CRD YAML files to validate custom resources against, separated like
PATH (``os.pathsep``); the tests point it at their copy of the operators' published CRDs."""


def default_crd_dirs() -> list[Path]:
    """Folders of CRDs to check custom resources against, as far as they exist here.

    The folders named in ``$WORKSTACK_CRD_DIRS`` and the CRDs that ship inside the
    ``dask-kubernetes`` package when it is installed. Custom resources whose CRD is in none of
    them are reported as not checked (``render --validate --crds DIR`` adds one).
    """
    folders = [Path(part) for part in os.environ.get(CRD_DIRS_ENV, "").split(os.pathsep) if part]
    spec = importlib.util.find_spec("dask_kubernetes")
    if spec is not None and spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations)))
        # The operator chart's copies are fully resolved; the package's own are templates.
        folders.append(
            package / "operator" / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"
        )
    return [folder for folder in folders if folder.is_dir()]


@functools.cache
def _builtin_validator(version: str, api_version: str, kind: str) -> Any:
    """A strict validator for a built-in kind, built once per version and kind.

    ``kubernetes_validate.validate`` re-reads the 1.5 MB definitions file and rebuilds its
    reference registry on every call; the schemas are the same, so they are loaded once here.

    Returns:
        A jsonschema validator, or None when the version has no schema for the kind.
    """
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    folder = f"kubernetes-json-schema/v{version}-local-strict"
    # "rbac.authorization.k8s.io/v1" -> "rbac-v1", as the schema files are named.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _is_builtin(api_version: str) -> bool:
    group = api_version.split("/")[0] if "/" in api_version else ""
    return "." not in group or group.endswith(".k8s.io")


def validate_objects(objects: Iterable[dict[str, Any]], catalog: CrdCatalog) -> SchemaCheck:
    """Validate every object against its schema.

    Built-in kinds are checked for each of :data:`KUBERNETES_VERSIONS`, custom resources
    against their CRD.

    Raises:
        ModuleNotFoundError: ``kubernetes-validate`` or ``jsonschema`` is not installed (they
            come with the ``[dev]`` extra).
    """
    import jsonschema

    from workstack.render import duplicate_names

    objects = list(objects)
    result = SchemaCheck()
    result.errors.extend(duplicate_names(objects))
    for obj in objects:
        kind = obj.get("kind", "")
        label = f"{kind}/{obj.get('metadata', {}).get('name')}"
        api_version = obj.get("apiVersion", "")
        if _is_builtin(api_version):
            result.checked += 1
            for version in KUBERNETES_VERSIONS:
                validator = _builtin_validator(version, api_version, kind)
                if validator is None:
                    result.errors.append(f"{label}: no schema for {api_version} in k8s {version}")
                    continue
                for failure in validator.iter_errors(obj):
                    path = ".".join(str(p) for p in failure.absolute_path)
                    result.errors.append(f"{label} (k8s {version}) at {path}: {failure.message}")
            continue
        schema = catalog.schema_for(api_version, kind)
        if schema is None:
            problems = _argo_model_problems(obj)
            if problems is None:
                result.unchecked.append(label)
            else:
                result.checked += 1
                result.by_models.append(label)
                result.errors.extend(f"{label} (Argo model) {problem}" for problem in problems)
            continue
        result.checked += 1
        for failure in jsonschema.Draft7Validator(schema).iter_errors(obj):
            path = ".".join(str(p) for p in failure.absolute_path)
            result.errors.append(f"{label} (CRD) at {path}: {failure.message}")
    return result


_ARGO_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")


def _argo_model_problems(obj: dict[str, Any]) -> list[str] | None:
    """Problems of an Argo object by hera's models; None when it is not one or hera is absent.

    The models check types and required fields; fields they drop are unknown to Argo too.
    """
    kind = obj.get("kind")
    if obj.get("apiVersion") != "argoproj.io/v1alpha1" or kind not in _ARGO_KINDS:
        return None
    try:
        import pydantic
        from hera.workflows import models
    except ModuleNotFoundError:
        return None
    model = getattr(models, str(kind))
    try:
        parsed = model.model_validate(obj)
    except pydantic.ValidationError as error:
        return [
            f"at {'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        ]
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [f"at {path}: unknown field" for path in _dropped(obj, kept, "")]


def _dropped(given: Any, kept: Any, where: str) -> list[str]:
    """Paths of ``given`` that a model left out of ``kept`` (the fields it does not know)."""
    if isinstance(given, dict) and isinstance(kept, dict):
        paths = []
        for key, value in given.items():
            path = f"{where}.{key}" if where else str(key)
            if key not in kept:
                paths.append(path)
            else:
                paths.extend(_dropped(value, kept[key], path))
        return paths
    if isinstance(given, list) and isinstance(kept, list):
        return [
            path
            for index, (item, model) in enumerate(zip(given, kept, strict=False))
            for path in _dropped(item, model, f"{where}[{index}]")
        ]
    return []
