"""Evaluate a Pulumi program offline, under Pulumi's mock runtime, and record what it registers.

No Pulumi CLI, no cloud account and no cluster are involved: the program runs exactly as
``pulumi up`` would run it, but every resource registration lands in memory and cloud-computed
outputs (endpoints, ARNs, repository URLs) are stand-ins. This is what ``workstack render`` and
the stack tests are built on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import hashlib
import json
import runpy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from workstack.images import rendering
from workstack.project import PulumiProject, StackSettings

__all__ = [
    "Deployment",
    "ProgramError",
    "RegisteredResource",
    "Secret",
    "run_function",
    "run_program",
]

OFFLINE_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class Secret:
    """A value the program marked secret. Rendered as ``[secret]``; ``value`` keeps it for tests."""

    value: Any


@dataclass(frozen=True)
class RegisteredResource:
    """One resource the program registered.

    Attributes:
        type: Pulumi type token, e.g. ``kubernetes:batch/v1:Job``.
        name: Logical name.
        custom: True for provider-managed resources, False for components.
        inputs: Inputs as sent to the engine; secret values are wrapped in :class:`Secret`.
        provider: Reference of the explicit provider, if any.
        parent: URN of the parent resource (empty for children of the stack).
        protect: Whether ``pulumi destroy`` would refuse to delete it.
        retain_on_delete: Whether deleting it would leave the cloud resource behind.
        depends_on: URNs of the resources it waits for (``depends_on`` and its inputs').
        ignore_changes: Input paths a later ``pulumi up`` leaves as they are.
    """

    type: str
    name: str
    custom: bool
    inputs: dict[str, Any]
    provider: str | None = None
    parent: str = ""
    protect: bool = False
    retain_on_delete: bool = False
    depends_on: tuple[str, ...] = ()
    ignore_changes: tuple[str, ...] = ()

    def waits_for(self, name: str) -> bool:
        """Whether it depends on a resource whose logical name is ``name``."""
        return any(urn.rsplit("::", 1)[-1] == name for urn in self.depends_on)

    @property
    def is_kubernetes_object(self) -> bool:
        """Whether this is a Kubernetes API object (not a provider, chart or config group)."""
        return (
            self.custom
            and self.type.startswith("kubernetes:")
            and not self.type.startswith("kubernetes:helm.sh/")
        )


@dataclass
class Deployment:
    """What a program registered, in registration order, and the stack outputs it exported."""

    resources: list[RegisteredResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[RegisteredResource]:
        """Resources whose type token equals ``type_token``."""
        return [r for r in self.resources if r.type == type_token]

    def kubernetes_objects(self) -> list[dict[str, Any]]:
        """Every Kubernetes object, as ``kubectl`` would take it; secrets stay wrapped."""
        return [r.inputs for r in self.resources if r.is_kubernetes_object]


class ProgramError(Exception):
    """The program raised. Carries what it had registered by then (nothing, for bad config).

    Attributes:
        error: What the program raised.
        deployment: Resources registered before the failure.
    """

    def __init__(self, error: BaseException, deployment: Deployment) -> None:
        self.error = error
        self.deployment = deployment
        super().__init__(str(error))


def _unwrap(value: Any) -> Any:
    """Turn the engine's wire form into plain Python: secrets wrapped, whole floats as ints."""
    if rpc.is_rpc_secret(value):
        return Secret(_unwrap(rpc.unwrap_rpc_secret(value)))
    if isinstance(value, dict):
        return {key: _unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwrap(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class _Options:
    parent: str
    protect: bool
    retain_on_delete: bool
    depends_on: tuple[str, ...] = ()
    ignore_changes: tuple[str, ...] = ()


class _OfflineCloud(pulumi.runtime.Mocks):
    """Records registrations and stands in for what clouds would compute."""

    def __init__(self, deployment: Deployment, config: Mapping[str, str]) -> None:
        self._deployment = deployment
        self._region = config.get("aws:region", "us-east-1")
        # Resource options the mock API leaves out, handed over by _OptionsMonitor.
        self.options: dict[tuple[str, str], _Options] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        options = self.options.pop((args.typ, args.name), _Options("", False, False))
        self._deployment.resources.append(
            RegisteredResource(
                type=args.typ,
                name=args.name,
                custom=bool(args.custom),
                inputs=_unwrap(args.inputs),
                provider=args.provider or None,
                parent=options.parent,
                protect=options.protect,
                retain_on_delete=options.retain_on_delete,
                depends_on=options.depends_on,
                ignore_changes=options.ignore_changes,
            )
        )
        state = dict(args.inputs)
        state.update(self._computed(args.typ, args.name, args.inputs))
        return f"{args.name}-id", state

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        results: dict[str, dict[str, Any]] = {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": OFFLINE_ACCOUNT,
                "arn": f"arn:aws:iam::{OFFLINE_ACCOUNT}:user/offline",
            },
            "aws:index/getRegion:getRegion": {"name": self._region, "region": self._region},
            "aws:ec2/getVpc:getVpc": {"id": "vpc-offline", "cidrBlock": "172.31.0.0/16"},
            "aws:ec2/getSubnets:getSubnets": {"ids": ["subnet-offline-a", "subnet-offline-b"]},
            "aws:ecr/getAuthorizationToken:getAuthorizationToken": {
                "userName": "AWS",
                "password": "offline-ecr-token",
                "proxyEndpoint": f"https://{OFFLINE_ACCOUNT}.dkr.ecr.{self._region}.amazonaws.com",
            },
            "gcp:organizations/getClientConfig:getClientConfig": {
                "accessToken": "offline-google-token"
            },
        }
        if args.token == "aws:ec2/getSubnet:getSubnet":
            # Offline subnets are named after their zone: subnet-offline-a is in <region>a.
            return {
                "id": args.args["id"],
                "availabilityZone": self._region + args.args["id"][-1],
            }, []
        return results.get(args.token, {}), []

    def _computed(self, type_token: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Outputs the cloud would fill in, for the resource types workstack creates."""
        physical = inputs.get("name") or f"{name}-offline"
        if type_token == "kubernetes:core/v1:Service":
            # TEST-NET-1 (RFC 5737): an address that is never routed anywhere.
            return {"spec": {**inputs.get("spec", {}), "clusterIP": "192.0.2.10"}}
        if type_token == "random:index/randomPassword:RandomPassword":
            return {"result": f"offline-{name}"}
        if type_token == "aws:iam/role:Role":
            return {"name": physical, "arn": f"arn:aws:iam::{OFFLINE_ACCOUNT}:role/{physical}"}
        if type_token == "gcp:container/cluster:Cluster":
            ca = base64.b64encode(b"offline-cluster-ca").decode()
            return {"endpoint": "203.0.113.10", "masterAuth": {"clusterCaCertificate": ca}}
        if type_token == "gcp:serviceaccount/account:Account":
            return {
                "email": f"{inputs['accountId']}@{inputs.get('project')}.iam.gserviceaccount.com"
            }
        if type_token == "aws:ecr/repository:Repository":
            host = f"{OFFLINE_ACCOUNT}.dkr.ecr.{self._region}.amazonaws.com"
            return {"repositoryUrl": f"{host}/{physical}", "registryId": OFFLINE_ACCOUNT}
        if type_token == "eks:index:Cluster":
            return {
                "kubeconfigJson": json.dumps(_eks_kubeconfig(str(physical), self._region)),
                "oidcProviderArn": f"arn:aws:iam::{OFFLINE_ACCOUNT}:oidc-provider/offline",
                "oidcIssuer": f"oidc.eks.{self._region}.amazonaws.com/id/OFFLINE",
            }
        if type_token == "docker-build:index:Image":
            # A registry gives a manifest digest and a tag@digest reference; a local export
            # gives the image's digest and the tag itself.
            tags = list(inputs.get("tags") or [])
            digest = "sha256:" + hashlib.sha256("\n".join(tags).encode()).hexdigest()
            ref = tags[0] if tags else ""
            pushed = bool(inputs.get("push")) and bool(tags)
            return {"digest": digest, "ref": f"{ref}@{digest}" if pushed else ref}
        if type_token.startswith("aws:"):
            return {
                "name": physical,
                "arn": f"arn:aws:offline:{self._region}:{OFFLINE_ACCOUNT}:{physical}",
            }
        if type_token.startswith("gcp:"):
            return {"name": physical}
        return {}


class _OfflineMonitor(MockMonitor):
    """The mock monitor, without resource references, passing lifecycle options on.

    Without references the SDK sends a resource's ID (or a component's URN) where a resource
    is an input (pulumi_eks passes the cluster to its node group). With them, the monitor
    would rebuild the resource on a worker thread whose event loop runs only while that thread
    serves another call, and a program could fail with "attached to a different loop".

    Each registration's parent and lifecycle options (protect, retainOnDelete), which the
    mock API leaves out, are handed to :class:`_OfflineCloud`.
    """

    _WITHOUT = resource_pb2.RESOURCE_MONITOR_FEATURE_RESOURCE_REFERENCES

    def __init__(self, cloud: _OfflineCloud) -> None:
        super().__init__(cloud)
        self._cloud = cloud

    def GetDeploymentInfo(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        info = super().GetDeploymentInfo(request)  # type: ignore[no-untyped-call]
        features = [f for f in info.supportedFeatures if f != self._WITHOUT]
        return resource_pb2.DeploymentInfo(supportedFeatures=features)

    def SupportsFeature(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        if request.id == "resourceReferences":
            return type("SupportsFeatureResponse", (object,), {"hasSupport": False})
        return super().SupportsFeature(request)  # type: ignore[no-untyped-call]

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        self._cloud.options[(request.type, request.name)] = _Options(
            parent=request.parent,
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            depends_on=tuple(request.dependencies),
            ignore_changes=tuple(request.ignoreChanges),
        )
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]


def _eks_kubeconfig(cluster: str, region: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": "https://offline.eks.invalid"}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
        "current-context": cluster,
        "users": [
            {
                "name": cluster,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": ["eks", "get-token", "--cluster-name", cluster, "--region", region],
                    }
                },
            }
        ],
    }


def _resolve(value: Any) -> Any:
    """Await an exported value and wrap it in :class:`Secret` if it is secret."""
    output = pulumi.Output.from_input(value)
    resolved = _sync_await(output.future())
    is_secret = _sync_await(output.is_secret())
    return Secret(resolved) if is_secret else resolved


def _execute(
    program: Callable[[], None],
    *,
    project: str,
    stack: str,
    settings: StackSettings,
    write_contexts: bool = False,
) -> Deployment:
    deployment = Deployment()
    cloud = _OfflineCloud(deployment, settings.values)
    pulumi.runtime.set_mocks(
        cloud, project=project, stack=stack, preview=False, monitor=_OfflineMonitor(cloud)
    )
    pulumi.runtime.set_all_config(settings.values, settings.secret_keys)
    try:
        # Rendering computes image tags but writes no build context (workstack.images).
        with contextlib.nullcontext() if write_contexts else rendering():
            _sync_await(run_pulumi_func(program))
    except Exception as error:
        raise ProgramError(error, deployment) from error
    root = pulumi.runtime.get_root_resource()
    exported = getattr(root, "outputs", {})
    deployment.outputs = {key: _resolve(value) for key, value in exported.items()}
    return deployment


def _isolated(
    program: Callable[[], None],
    *,
    project: str,
    stack: str,
    settings: StackSettings,
    write_contexts: bool = False,
) -> Deployment:
    """Run ``program`` on a thread of its own, with a fresh event loop and Pulumi context.

    Pulumi's runtime keeps state in context variables and in the event loops of the threads
    it hands engine calls to; a fresh thread and loop per run keep runs in one process from
    seeing each other's leftovers.
    """
    outcome: list[Deployment | BaseException] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            outcome.append(
                contextvars.Context().run(
                    _execute,
                    program,
                    project=project,
                    stack=stack,
                    settings=settings,
                    write_contexts=write_contexts,
                )
            )
        except BaseException as error:  # handed to the calling thread
            outcome.append(error)
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    thread = threading.Thread(target=run, name=f"offline-{project}-{stack}")
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def run_function(
    program: Callable[[], None],
    *,
    project: str = "workstack",
    stack: str = "offline",
    config: Mapping[str, str] | None = None,
    write_contexts: bool = False,
) -> Deployment:
    """Run ``program`` (code that creates resources) offline and return what it registered.

    Each call runs in a fresh context, so calls are independent of each other. Like a
    render, it writes no image build context unless ``write_contexts`` (tests of
    ``WorkloadImage`` that read the context).

    Raises:
        ProgramError: The program raised; pending registrations have settled.
    """
    settings = StackSettings(values=dict(config or {}))
    return _isolated(
        program, project=project, stack=stack, settings=settings, write_contexts=write_contexts
    )


def run_program(
    project: PulumiProject, stack: str, settings: StackSettings | None = None
) -> Deployment:
    """Run a project's program for ``stack`` offline, the way ``pulumi up`` would run it.

    Args:
        project: The Pulumi project.
        stack: Stack name; its config file supplies the config unless ``settings`` is given.
        settings: Config to use instead of the stack's file (tests pass variations).

    Raises:
        FileNotFoundError: The stack has no config file.
        ProgramError: The program raised (an invalid config first of all).
    """
    settings = settings or project.read_stack(stack)

    def program() -> None:
        runpy.run_path(str(project.main), run_name="__main__")

    return _isolated(program, project=project.name, stack=stack, settings=settings)
