"""A workload's image: built from its folder, tagged by content, pushed or loaded for a cluster."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build
import pulumi_gcp as gcp

from workstack.components.cluster import Registry
from workstack.components.manifests import SpecError
from workstack.images import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_PLATFORM,
    PLATFORMS,
    ContextError,
    SourceError,
    find_source,
    is_image_reference,
    is_rendering,
    plan_context,
)
from workstack.sdk.workload import WorkloadError, load_workload

__all__ = ["ImageInput", "ImageRef", "WorkloadImage", "WorkloadImageArgs"]

_DOCKER_HOST = re.compile(r"^(unix|tcp|ssh|npipe)://.+$")
_LOCAL_REPOSITORY = "workstack"
# Artifact Registry takes a short-lived OAuth access token as the password of this user.
_GOOGLE_TOKEN_USER = "oauth2accesstoken"


@dataclass(kw_only=True, frozen=True)
class WorkloadImageArgs:
    """Arguments for :class:`WorkloadImage`.

    Attributes:
        workload_dir: The workload folder (holding ``workload.yaml``), relative to where the
            program runs or absolute.
        registry: Where to push: a cluster component's ``registry``. None (minikube) loads the
            image into the Docker engine the build runs on instead; see ``docker_host``.
        base_image: Image the Dockerfile builds on.
        docker_host: Docker engine to build with, e.g. ``ssh://docker@127.0.0.1:32772`` for
            minikube's own engine (``minikube docker-env --ssh-host``). None uses the
            environment's (``DOCKER_HOST``, else the local engine).
        context_dir: Where the build context is generated. Keep it relative: it is recorded
            in the stack's state, and a path that differs between machines would rebuild.
            None means ``.workstack/images/<workload name>``.
        offline: Install dependencies from wheels fetched on this machine into the context;
            the build then needs no package index or network.
        wheelhouse: Folder that keeps wheels between builds (offline mode); None means
            ``~/.cache/workstack/wheelhouse``.
        repository: Image name within the registry (or locally); None means the workload name
            (locally ``workstack/<workload name>``).
        platform: Platform of the cluster's nodes (``linux/amd64`` or ``linux/arm64``); the
            image is built for it whatever machine deploys, and it is part of the tag.
        extras: workstack extras the stack requires on top of the workload's own
            ``extras``, e.g. ``("s3",)`` or ``("gcs",)`` when the stack's storage is a
            bucket; they go into the image and the tag.
    """

    workload_dir: str
    registry: Registry | None = None
    base_image: str = DEFAULT_BASE_IMAGE
    docker_host: str | None = None
    context_dir: str | None = None
    offline: bool = False
    wheelhouse: str | None = None
    repository: str | None = None
    platform: str = DEFAULT_PLATFORM
    extras: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            load_workload(self.workload_dir)
        except WorkloadError as error:
            raise SpecError("workload_dir", self.workload_dir, str(error)) from None
        if not is_image_reference(self.base_image):
            raise SpecError(
                "base_image",
                self.base_image,
                "expected an image reference such as python:3.11-slim-bookworm",
            )
        if self.docker_host is not None and not _DOCKER_HOST.match(self.docker_host):
            raise SpecError(
                "docker_host",
                self.docker_host,
                "expected unix://, tcp://, ssh:// or npipe:// followed by an address",
            )
        if self.context_dir is not None and not self.context_dir.strip():
            raise SpecError("context_dir", self.context_dir, "expected a folder path or None")
        if self.wheelhouse is not None and not self.offline:
            raise SpecError("wheelhouse", self.wheelhouse, "set offline=True to use a wheelhouse")
        if self.repository is not None and (
            ":" in self.repository or not is_image_reference(self.repository)
        ):
            raise SpecError(
                "repository",
                self.repository,
                "expected an image name without registry or tag, such as team/csv-clean",
            )
        if self.platform not in PLATFORMS:
            raise SpecError("platform", self.platform, f"one of {', '.join(PLATFORMS)}")
        given: object = self.extras  # the annotation is not enforced at runtime
        if isinstance(given, str) or not isinstance(given, tuple | list):
            raise SpecError("extras", self.extras, "expected a tuple of extras such as ('s3',)")
        try:
            allowed = find_source().image_extras()
        except SourceError as error:
            raise SpecError("workload_dir", self.workload_dir, str(error)) from None
        for extra in self.extras:
            if extra not in allowed:
                raise SpecError("extras", extra, f"one of {', '.join(allowed)}")
        object.__setattr__(self, "extras", tuple(dict.fromkeys(self.extras)))
        ecr = self.registry is not None and self.registry.kind == "ecr"
        if ecr and self.repository is not None and "/" in self.repository:
            raise SpecError(
                "repository",
                self.repository,
                "ECR holds every workload in the cluster's one repository and the name goes "
                "into the tag, so it must not contain '/'",
            )


class WorkloadImage(pulumi.ComponentResource):
    """A workload folder built into an image whose tag is the hash of its build context.

    The context is planned when the program runs (:func:`workstack.images.plan_context`:
    the tag, without writing anything), written only when the program runs to deploy, not
    inside :func:`workstack.images.rendering`, and built by ``pulumi_docker_build``
    (BuildKit) for ``platform``. The tag is a content hash, so an unchanged workload gives
    the same tag and the same context, and the build is skipped; after a code change the
    dependency layer is reused.

    With a ``registry`` (GKE's Artifact Registry, EKS's ECR) the image is pushed with a
    short-lived token the cloud provider issues to whoever runs ``pulumi up``; no credential
    is stored or asked for. Pods refer to it by digest. Without one (minikube) the image is
    loaded into the Docker engine the build runs on: point ``docker_host`` (or
    ``DOCKER_HOST``) at minikube's engine and the kubelet finds it there, nothing is pushed
    anywhere, and pods use pull policy ``Never``.
    """

    workload_name: str
    """The workload's name (from ``workload.yaml``)."""

    tag: str
    """Content hash of the build context: the image tag."""

    dependency_hash: str
    """Content hash of the dependency layer's inputs."""

    context_dir: str
    """Where the build context is written (nothing is written while rendering)."""

    platform: str
    """The platform the image is built for."""

    image_name: pulumi.Output[str]
    """``<repository>:<tag>`` as pushed or loaded."""

    digest: pulumi.Output[str]
    """``sha256:...`` of the image as exported (registry manifest or local image)."""

    ref: pulumi.Output[str]
    """What pods use: ``<repository>:<tag>@<digest>`` when pushed, else ``image_name``."""

    pull_policy: str
    """The ``imagePullPolicy`` pods need: ``IfNotPresent`` for pushed, ``Never`` for loaded."""

    def __init__(
        self, name: str, args: WorkloadImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # The context is planned before the component registers, so a workload that cannot
        # be built fails with nothing created; it is written only to be built, never while
        # rendering (workstack render writes nothing).
        workload = load_workload(args.workload_dir)
        context_dir = args.context_dir or str(Path(".workstack", "images", workload.spec.name))
        try:
            plan = plan_context(
                workload,
                base_image=args.base_image,
                platform=args.platform,
                extras=args.extras,
                offline=args.offline,
                wheelhouse=args.wheelhouse,
            )
            if not is_rendering():
                plan.write(context_dir)
        except (ContextError, SourceError) as error:
            raise SpecError("workload_dir", args.workload_dir, str(error)) from None
        super().__init__("workstack:image:WorkloadImage", name, None, opts)
        self.workload_name = workload.spec.name
        self.context_dir = context_dir
        self.tag = plan.tag
        self.dependency_hash = plan.dependency_hash
        self.platform = args.platform
        context_tag = plan.tag

        registry = args.registry
        if registry is None:
            repository = args.repository or f"{_LOCAL_REPOSITORY}/{workload.spec.name}"
            self.image_name = pulumi.Output.from_input(f"{repository}:{context_tag}")
            self.pull_policy = "Never"
        else:
            repository = args.repository or workload.spec.name
            self.image_name = registry.image_ref(repository, context_tag)
            self.pull_policy = "IfNotPresent"
        build = pulumi.ResourceOptions(parent=self)
        if args.docker_host is not None:
            engine = docker_build.Provider(
                f"{name}-docker", host=args.docker_host, opts=pulumi.ResourceOptions(parent=self)
            )
            build = pulumi.ResourceOptions(parent=self, provider=engine)

        image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(location=context_dir),
            dockerfile=docker_build.DockerfileArgs(location=str(Path(context_dir, "Dockerfile"))),
            build_args={"BASE_IMAGE": args.base_image},
            # The cluster's nodes' platform; docker-build defaults to the deploying machine's.
            platforms=[docker_build.Platform(args.platform)],
            tags=[self.image_name],
            push=registry is not None,
            registries=None if registry is None else [_registry_login(registry, self)],
            # Without a registry the image is loaded into the engine's own image store (a
            # `docker` export), where the kubelet of a cluster on that engine (minikube) finds it.
            load=registry is None,
            # Offline builds fetch nothing: a build step that tries to is a bug, so it fails.
            network=docker_build.NetworkMode.NONE if args.offline else None,
            opts=build,
        )
        self.digest = image.digest
        self.ref = image.ref if registry is not None else self.image_name
        self.register_outputs(
            {
                "workload_name": self.workload_name,
                "tag": self.tag,
                "dependency_hash": self.dependency_hash,
                "platform": self.platform,
                "image_name": self.image_name,
                "digest": self.digest,
                "ref": self.ref,
            }
        )


def _registry_login(registry: Registry, parent: pulumi.Resource) -> docker_build.RegistryArgs:
    """Push credentials issued by the cloud provider to whoever runs the program.

    The tokens expire within hours and change on every run; the docker-build provider ignores
    password changes when diffing, so a new token alone never causes a rebuild.
    """
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    if registry.kind == "ecr":
        token = aws.ecr.get_authorization_token_output(
            registry_id=registry.registry_id, opts=invoke
        )
        username, password = token.user_name, token.password
    else:
        client = gcp.organizations.get_client_config_output(opts=invoke)
        username, password = pulumi.Output.from_input(_GOOGLE_TOKEN_USER), client.access_token
    return docker_build.RegistryArgs(
        address=registry.server, username=username, password=pulumi.Output.secret(password)
    )


ImageInput: TypeAlias = WorkloadImage | str
"""What workload components take as their image: a :class:`WorkloadImage` or a reference."""


@dataclass(frozen=True)
class ImageRef:
    """An image as a pod spec needs it: the reference and the pull policy that goes with it.

    Attributes:
        ref: The image reference.
        pull_policy: ``Never`` (loaded into the cluster), ``IfNotPresent`` (a fixed tag or a
            digest) or ``Always`` (no tag, or ``latest``), as Kubernetes would default it.
    """

    ref: pulumi.Output[str]
    pull_policy: str

    @classmethod
    def of(cls, image: ImageInput, *, field: str = "image") -> ImageRef:
        """The reference and pull policy of a :class:`WorkloadImage` or a reference string.

        Raises:
            SpecError: Naming ``field``, if ``image`` is a string that is not a reference.
        """
        if isinstance(image, WorkloadImage):
            return cls(ref=image.ref, pull_policy=image.pull_policy)
        if not isinstance(image, str) or not is_image_reference(image):
            raise SpecError(
                field,
                image,
                "expected a WorkloadImage or an image reference such as "
                "europe-west1-docker.pkg.dev/project/repo/app:1.0",
            )
        last = image.split("@", 1)[0].rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else None
        pinned = "@" in image or (tag is not None and tag != "latest")
        return cls(
            ref=pulumi.Output.from_input(image),
            pull_policy="IfNotPresent" if pinned else "Always",
        )
