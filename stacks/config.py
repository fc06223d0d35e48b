"""The stack's config, read once into typed settings models.

Every stack key is a field of one settings model (its alias): the stack-wide keys below, the
cluster args of each cloud, and the settings of each platform piece and pattern. Defaults,
types and checks live in those models only; ``Pulumi.yaml``'s ``config:`` block is generated
from them (``workstack config schema``). Every problem is reported at once, before any
resource is registered, naming the key the user wrote.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pulumi
from pydantic import BaseModel

from workstack.components import (
    BucketSettings,
    DaskSettings,
    EksClusterArgs,
    GkeClusterArgs,
    JobSettings,
    MinikubeClusterArgs,
    NfsSettings,
    QueueSettings,
    RabbitMqSettings,
    SettingsError,
)
from workstack.components.manifests.operators import OPERATOR_SCOPES
from workstack.components.manifests.settings import (
    Flag,
    Names,
    OneOf,
    OptionalText,
    Problem,
    Settings,
    StackKey,
    parse_config_value,
    setting,
    stack_keys,
)
from workstack.project import ConfigError
from workstack.sdk.describe import describe_pipeline
from workstack.sdk.pipeline import PipelineError
from workstack.sdk.workload import Workload, WorkloadError, load_workload

__all__ = [
    "CLOUDS",
    "PROJECT",
    "SETTINGS_MODELS",
    "STORAGE_MODES",
    "ClusterArgs",
    "StackConfig",
    "StackSettings",
    "default_cluster_name",
    "load_stack_config",
    "parse_stack_config",
    "project_keys",
]

PROJECT = "workstack"
"""The project's name in Pulumi.yaml, and so the namespace of its config keys."""
CLOUDS = ("minikube", "gke", "eks")
STORAGE_MODES = ("nfs", "bucket", "both")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKLOADS_DIR = PROJECT_ROOT / "workloads"

ClusterArgs = MinikubeClusterArgs | GkeClusterArgs | EksClusterArgs
_M = TypeVar("_M", bound=Settings)


class StackSettings(Settings):
    """What the stack is: its cloud, whether it is a preview, its storage and workloads."""

    cloud: Annotated[str, OneOf(*CLOUDS)] = setting("minikube", "cloud")
    """Where the cluster runs: `minikube` (an existing cluster reached through a kubeconfig;
    nothing is created in a cloud), `gke` (needs gcp:project and gcp:region or gcp:zone) or
    `eks` (needs aws:region)."""
    ephemeral: Flag = setting(False, "ephemeral")
    """A preview environment meant to be destroyed: no deletion protection, and image
    registries and buckets are deleted together with their contents on `pulumi destroy`."""
    storage: Annotated[str, OneOf(*STORAGE_MODES)] = setting("nfs", "storage")
    """Shared storage for workloads: `nfs` (a ReadWriteMany volume mounted at /data), `bucket`
    (S3 on EKS, GCS on GKE, an S3-compatible endpoint on minikube) or `both`."""
    workloads: Names = setting((), "workloads")
    """Workloads (folders under workloads/) the stack builds into images and deploys the
    platform of, each in its pattern: job-per-file and command (runs are Jobs made by
    `workstack submit`), queue-workers (RabbitMQ; runs are a tasker and workers), dask (a Dask
    cluster) or pipeline (Argo Workflows and a WorkflowTemplate)."""
    install_operators: Flag = setting(True, "installOperators")
    """Install what is cluster-wide: the operators workloads need (RabbitMQ, KEDA, Dask) and
    Argo's CRDs. Turn off when another stack on the same cluster installed them (a minikube
    preview does): destroying this stack then leaves them in place. The installing stack's
    `operatorScope` must then be `cluster` (docs/security.md)."""
    operator_scope: Annotated[str, OneOf(*OPERATOR_SCOPES)] = setting("namespace", "operatorScope")
    """Where the operators this stack installs serve: `namespace` (this stack's only; they
    hold rights there alone) or `cluster` (every namespace, with cluster-wide rights as
    released), for a cluster whose other stacks set installOperators false, such as minikube
    with previews."""
    docker_host: OptionalText = setting(None, "dockerHost", unset="")
    """minikube only. Docker engine images are built with (and loaded into), e.g. the ssh://
    address `minikube docker-env --ssh-host` prints. Empty uses DOCKER_HOST or the local one."""

    @property
    def nfs(self) -> bool:
        """Whether the stack has NFS storage."""
        return self.storage in ("nfs", "both")

    @property
    def bucket(self) -> bool:
        """Whether the stack has a bucket."""
        return self.storage in ("bucket", "both")


_CLUSTER_MODELS: dict[str, type[Settings]] = {
    "minikube": MinikubeClusterArgs,
    "gke": GkeClusterArgs,
    "eks": EksClusterArgs,
}
SETTINGS_MODELS: tuple[type[BaseModel], ...] = (
    StackSettings,
    MinikubeClusterArgs,
    GkeClusterArgs,
    EksClusterArgs,
    NfsSettings,
    BucketSettings,
    JobSettings,
    QueueSettings,
    RabbitMqSettings,
    DaskSettings,
)
"""Every model whose fields are stack keys, in the order Pulumi.yaml lists them."""


def project_keys() -> list[StackKey]:
    """Every stack key once, in the order of :data:`SETTINGS_MODELS` (first model wins).

    A key several models declare (``namespace``, ``clusterName``) comes from one base class,
    so its type, default and description are the same in each.
    """
    seen: dict[str, StackKey] = {}
    for model in SETTINGS_MODELS:
        for key in stack_keys(model):
            seen.setdefault(key.name, key)
    return list(seen.values())


@dataclass(kw_only=True, frozen=True)
class StackConfig:
    """Everything the stack program needs, typed and validated.

    Attributes:
        stack: Stack name.
        stack_settings: The stack-wide keys.
        cluster: Arguments of the cluster component of ``stack_settings.cloud``.
        nfs: NFS settings, checked for the cloud; None without NFS storage.
        bucket: Bucket settings, checked for the cloud; None without a bucket.
        job: job-per-file settings.
        queue: queue-workers settings.
        rabbitmq: The broker's settings.
        dask: Dask cluster settings.
        workloads: Each workload's checked folder, in the order given.
    """

    stack: str
    stack_settings: StackSettings
    cluster: ClusterArgs
    nfs: NfsSettings | None
    bucket: BucketSettings | None
    job: JobSettings
    queue: QueueSettings
    rabbitmq: RabbitMqSettings
    dask: DaskSettings
    workloads: tuple[Workload, ...] = ()

    @property
    def cloud(self) -> str:
        """``minikube``, ``gke`` or ``eks``."""
        return self.stack_settings.cloud

    @property
    def ephemeral(self) -> bool:
        """Whether the stack is a preview environment meant to be destroyed."""
        return self.stack_settings.ephemeral

    def of_pattern(self, pattern: str) -> list[Workload]:
        """The workloads of one pattern."""
        return [w for w in self.workloads if w.spec.pattern == pattern]


def load_stack_config() -> StackConfig:
    """Read this deployment's config from the Pulumi runtime and validate it.

    Raises:
        ConfigError: Naming every invalid, missing or unknown key.
    """
    # pulumi.Config can only look keys up; unknown keys are found by listing the full map the
    # engine handed the program (the PULUMI_CONFIG environment, or set_all_config).
    values: dict[str, str] = dict(pulumi.runtime.get_config_env())
    values.update(pulumi.runtime.config.CONFIG.get())
    secrets = {key for key in values if pulumi.runtime.is_config_secret(key)}
    secrets.update(pulumi.runtime.get_config_secret_keys_env())
    return parse_stack_config(pulumi.get_stack(), values, secret_keys=secrets)


def parse_stack_config(
    stack: str, values: Mapping[str, str], *, secret_keys: Iterable[str] = ()
) -> StackConfig:
    """Validate a stack's raw config (full key to string) into a :class:`StackConfig`.

    Raises:
        ConfigError: Naming every invalid, missing or unknown key.
    """
    secrets = set(secret_keys)
    problems = _unknown_keys(values)
    settings = _parse(StackSettings, stack, values, secrets, problems)
    if settings is None:
        raise ConfigError(stack, problems)
    problems += _keys_of_other_clouds(settings, values)
    problems += _missing_provider_keys(settings.cloud, values)
    fixed, sources = _cluster_fixed(settings, stack, values)
    cluster = _parse(
        _CLUSTER_MODELS[settings.cloud],
        stack,
        values,
        secrets,
        problems,
        fixed=fixed,
        sources=sources,
    )
    cloud = {"cloud": settings.cloud}
    nfs = bucket = None
    for model, used in ((NfsSettings, settings.nfs), (BucketSettings, settings.bucket)):
        if used:
            parsed = _parse(model, stack, values, secrets, problems, context=cloud)
            nfs, bucket = (parsed, bucket) if model is NfsSettings else (nfs, parsed)
        else:
            problems += _unused_keys(model, values, settings.storage)
    job = _parse(JobSettings, stack, values, secrets, problems)
    queue = _parse(QueueSettings, stack, values, secrets, problems)
    rabbitmq = _parse(RabbitMqSettings, stack, values, secrets, problems)
    dask = _parse(DaskSettings, stack, values, secrets, problems)
    workloads = _workloads(settings, problems)
    if settings.docker_host is not None and settings.cloud != "minikube":
        problems.append(
            Problem(
                f"{PROJECT}:dockerHost",
                settings.docker_host,
                "only minikube builds on a given engine; GKE and EKS push to their registry",
            )
        )
    if problems:
        raise ConfigError(stack, problems)
    assert cluster is not None
    assert job is not None
    assert queue is not None
    assert rabbitmq is not None
    assert dask is not None
    return StackConfig(
        stack=stack,
        stack_settings=settings,
        cluster=cluster,  # type: ignore[arg-type]
        nfs=nfs,  # type: ignore[arg-type]
        bucket=bucket,  # type: ignore[arg-type]
        job=job,
        queue=queue,
        rabbitmq=rabbitmq,
        dask=dask,
        workloads=workloads,
    )


def _parse(
    model: type[_M],
    stack: str,
    values: Mapping[str, str],
    secrets: set[str],
    problems: list[Problem],
    *,
    fixed: Mapping[str, Any] | None = None,
    sources: Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
) -> _M | None:
    try:
        return model.from_stack(
            values,
            namespace=PROJECT,
            secret_keys=secrets,
            fixed=fixed,
            sources=sources,
            context=context,
        )
    except SettingsError as error:
        problems.extend(error.problems)
        return None


_PROVIDERS = {"gcp": "pulumi_gcp", "aws": "pulumi_aws"}
"""Provider config namespaces the stacks use, and the package whose schema lists their keys."""
_NAMESPACES = (PROJECT, *_PROVIDERS, "kubernetes", "pulumi")


@cache
def provider_keys(namespace: str) -> frozenset[str]:
    """The config keys a provider reads (its generated ``config/vars.py``, from its schema)."""
    spec = importlib.util.find_spec(f"{_PROVIDERS[namespace]}.config.vars")
    if spec is None or spec.origin is None:  # pragma: no cover - the deploy extra has them
        return frozenset()
    with open(spec.origin, encoding="utf-8") as source:
        return frozenset(re.findall(r"__config__\.get\w*\('([A-Za-z0-9]+)'", source.read()))


RETIRED_KEYS = {
    "queueConsumerTimeout": (
        "removed: RabbitMQ 4.2 ignores a per-consumer ack timeout on quorum queues "
        "(sdk/queue/broker.py, QUORUM_CONSUMER_ARGUMENTS); set "
        f"{PROJECT}:rabbitmqConsumerTimeoutMinutes above the longest task instead"
    ),
}
"""Keys workstack once read, and what to set now: named, not just unknown."""


def _suggest(namespace: str, name: str, choices: Iterable[str]) -> str:
    """``did you mean <namespace>:<closest>? `` when a known key is close (by name alone)."""
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.75)
    return f"did you mean {namespace}:{close[0]}? " if close else ""


def _unknown_keys(values: Mapping[str, str]) -> list[Problem]:
    """Keys no one reads: a typo in a key or in its namespace would be silently ignored.

    The engine passes every key on (docs/deploying.md): ``gcp:zon`` would make a regional
    cluster and ``workstak:nodeMax`` nothing at all.
    """
    known = {key.name for key in project_keys()}
    problems = []
    for key in sorted(values):
        namespace, _, name = key.partition(":")
        if namespace == PROJECT and name in RETIRED_KEYS:
            problems.append(Problem(key, values[key], RETIRED_KEYS[name]))
        elif namespace == PROJECT and name not in known:
            hint = _suggest(PROJECT, name, known)
            problems.append(
                Problem(key, values[key], f"unknown key; {hint}known: " + ", ".join(sorted(known)))
            )
        elif namespace in _PROVIDERS and name not in provider_keys(namespace):
            hint = _suggest(namespace, name, provider_keys(namespace))
            problems.append(
                Problem(
                    key,
                    values[key],
                    f"unknown {namespace} provider key; {hint}the provider would ignore it",
                )
            )
        elif namespace not in _NAMESPACES:
            close = difflib.get_close_matches(namespace, _NAMESPACES, n=1, cutoff=0.6)
            if close:
                problems.append(
                    Problem(
                        key,
                        values[key],
                        f"unknown namespace {namespace!r}; did you mean {close[0]}:{name}?",
                    )
                )
    return problems


def _changed(key: StackKey, values: Mapping[str, str]) -> bool:
    """Whether the stack sets ``key`` to something other than its default.

    The CLI hands the program every declared key, defaults included (Pulumi
    ``pkg/workspace/config.go``, ``mergeConfig``), so a key at its default may not have been
    set by the user at all.
    """
    full = f"{PROJECT}:{key.name}"
    if full not in values:
        return False
    return bool(parse_config_value(key.type, values[full]) != _engine_form(key))


def _engine_form(key: StackKey) -> Any:
    default = key.default
    return tuple(default) if isinstance(default, list) else default


def _keys_of_other_clouds(settings: StackSettings, values: Mapping[str, str]) -> list[Problem]:
    """Cluster keys set for a cloud the stack does not use (``eksVersion`` on GKE, say)."""
    ours = {key.name for key in stack_keys(_CLUSTER_MODELS[settings.cloud])}
    problems = []
    for cloud, model in _CLUSTER_MODELS.items():
        for key in stack_keys(model):
            if key.name not in ours and _changed(key, values):
                full = f"{PROJECT}:{key.name}"
                problems.append(
                    Problem(full, values[full], f"applies only when {PROJECT}:cloud is {cloud}")
                )
    return problems


def _unused_keys(model: type[Settings], values: Mapping[str, str], storage: str) -> list[Problem]:
    """Keys of a storage the stack does not have (``bucketName`` with storage ``nfs``)."""
    kind = "nfs" if model is NfsSettings else "bucket"
    return [
        Problem(
            f"{PROJECT}:{key.name}",
            "(set)" if key.secret else values[f"{PROJECT}:{key.name}"],
            f"applies only when {PROJECT}:storage is {kind} or both (it is {storage})",
        )
        for key in stack_keys(model)
        if _changed(key, values)
    ]


def _cluster_fixed(
    settings: StackSettings, stack: str, values: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Cluster fields the program sets, and the config keys they come from.

    The project and location come from the provider's config; protections from ``ephemeral``.
    """
    ephemeral = settings.ephemeral
    if settings.cloud == "minikube":
        return {"delete_unreachable": ephemeral}, {}
    fixed: dict[str, Any] = {"deletion_protection": not ephemeral}
    sources = {"deletion_protection": f"{PROJECT}:ephemeral"}
    if not values.get(f"{PROJECT}:clusterName"):
        fixed["cluster_name"] = default_cluster_name(stack)
        sources["cluster_name"] = f"{PROJECT}:clusterName (from the stack name {stack!r})"
    if settings.cloud == "gke":
        location = "gcp:zone" if values.get("gcp:zone") else "gcp:region"
        fixed["project"] = values.get("gcp:project", "")
        fixed["location"] = values.get(location, "")
        sources |= {"project": "gcp:project", "location": location}
    else:
        fixed["force_delete_images"] = ephemeral
        sources["force_delete_images"] = f"{PROJECT}:ephemeral"
    return fixed, sources


def _missing_provider_keys(cloud: str, values: Mapping[str, str]) -> list[Problem]:
    required: dict[str, list[tuple[str, ...]]] = {
        "gke": [("gcp:project",), ("gcp:region", "gcp:zone")],
        "eks": [("aws:region",)],
    }
    problems = []
    for alternatives in required.get(cloud, []):
        if not any(values.get(key) for key in alternatives):
            problems.append(
                Problem(
                    " or ".join(alternatives),
                    None,
                    f"required when {PROJECT}:cloud is {cloud}; "
                    f"set it with `pulumi config set {alternatives[0]} <value>`",
                )
            )
    return problems


def _workloads(settings: StackSettings, problems: list[Problem]) -> tuple[Workload, ...]:
    key = f"{PROJECT}:workloads"
    known = sorted(p.parent.name for p in WORKLOADS_DIR.glob("*/workload.yaml"))
    loaded = []
    listed: set[str] = set()
    for name in settings.workloads:
        if name in listed:
            problems.append(Problem(key, name, "it is listed twice; list each workload once"))
            continue
        listed.add(name)
        folder = WORKLOADS_DIR / name
        if "/" in name or name.startswith(".") or not (folder / "workload.yaml").is_file():
            problems.append(Problem(key, name, "known workloads: " + ", ".join(known)))
            continue
        try:
            workload = load_workload(folder)
            if workload.spec.pattern == "pipeline":
                # Its steps come from its code: a broken pipeline stops the stack here, before
                # any resource is registered, not when its template is made.
                describe_pipeline(workload.folder, workload.spec.entrypoint)
            loaded.append(workload)
        except (WorkloadError, PipelineError) as error:
            problems.append(Problem(key, name, str(error)))
    folders: dict[str, list[str]] = {}
    for workload in loaded:
        folders.setdefault(workload.spec.name, []).append(workload.folder.name)
    for name, sharing in folders.items():
        if len(sharing) > 1:
            problems.append(
                Problem(
                    key,
                    sharing,
                    f"these folders all declare `name: {name}` in workload.yaml; each workload "
                    "needs a name of its own (its objects and image are named after it)",
                )
            )
    return tuple(loaded)


def default_cluster_name(stack: str) -> str:
    """``workstack-<stack>``, made a valid cluster name on every cloud (at most 40 chars)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", stack.lower()).strip("-")
    return f"workstack-{slug}"[:40].rstrip("-")
