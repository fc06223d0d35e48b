"""The job-per-file pattern: one Indexed Job, whatever the number of files."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from workstack.components._locations import check_reachable, comparable
from workstack.components._objects import create_object
from workstack.components.cluster import KubernetesCluster
from workstack.components.identity import WorkloadIdentity
from workstack.components.image import ImageInput, ImageRef
from workstack.components.manifests import SpecError
from workstack.components.manifests.jobs import (
    MANIFEST_FILE,
    MANIFEST_MOUNT,
    JobSettings,
    build_indexed_job,
    build_manifest_config_map,
    files_args,
    manifest_text,
)
from workstack.components.manifests.pods import ContainerSpec, PodStorage
from workstack.components.manifests.validation import require_dns1123_label
from workstack.sdk.files import JobError, check_locations

__all__ = ["JobPerFile", "JobPerFileArgs", "JobSettings"]

CONTAINER = "work"


@dataclass(kw_only=True, frozen=True)
class JobPerFileArgs:
    """Arguments for :class:`JobPerFile`.

    Attributes:
        cluster: Where the Job runs (its workload namespace and provider).
        image: The workload image: a ``WorkloadImage`` or an image reference.
        run_id: Names the run: the Job is ``<name>-<run_id>``. A new id makes a new run;
            anything else changed later (image, settings) leaves a created run alone.
        input_url: Inputs: a path under ``/data`` (NFS storage) or an ``s3://``/``gs://`` URL.
            Need not be visible from the machine running ``pulumi up``.
        output_url: Outputs; neither the input location nor inside it.
        function: The workload's ``module:function(input, output)``.
        command: Or a shell command template with ``{input}`` and ``{output}``.
        storage: Storages the pods mount (``NfsStorage.pod_storage``, ``BucketStorage...``).
        identity: Service account the pods run as (bucket access comes with it).
        files: A frozen input list known at deploy time (kept in a ConfigMap); None lets
            each pod list the inputs itself.
        manifest_url: Or a frozen list written to storage (``workstack files manifest``).
        glob: Only inputs matching this pattern, e.g. ``*.csv``.
        suffix: Output extension replacing the input's, e.g. ``.parquet``.
        settings: Split, retries, bounds and resources of the Job.
    """

    cluster: KubernetesCluster
    image: ImageInput
    run_id: str
    input_url: str
    output_url: str
    function: str | None = None
    command: str | None = None
    storage: tuple[PodStorage, ...] = ()
    identity: WorkloadIdentity | None = None
    files: tuple[str, ...] | None = None
    manifest_url: str | None = None
    glob: str | None = None
    suffix: str | None = None
    settings: JobSettings = field(default_factory=JobSettings)

    def __post_init__(self) -> None:
        ImageRef.of(self.image)
        require_dns1123_label("run_id", self.run_id, max_length=20)
        self.args()  # neither or both of function and command
        if self.files is not None and self.manifest_url is not None:
            raise SpecError("files", "(set)", "give files or manifest_url, not both")
        if self.files is not None:
            manifest_text(self.files)
        for name in ("input_url", "output_url"):
            check_reachable(name, getattr(self, name), self.storage)
        try:
            check_locations(comparable(self.input_url), comparable(self.output_url))
        except JobError as error:
            raise SpecError("output_url", self.output_url, str(error)) from None

    def args(self) -> tuple[str, ...]:
        """The pods' ``workstack files run`` arguments."""
        if self.files is not None:
            manifest: str | None = f"{MANIFEST_MOUNT}/{MANIFEST_FILE}"
        else:
            manifest = self.manifest_url
        return files_args(
            input_url=self.input_url,
            output_url=self.output_url,
            shards=self.settings.shards,
            function=self.function,
            command=self.command,
            manifest=manifest,
            glob=self.glob,
            suffix=self.suffix,
        )


class JobPerFile(pulumi.ComponentResource):
    """A run of a workload over every input file, as one Indexed Job, declared in Pulumi.

    The number of Kubernetes objects does not grow with the number of files: the Job (plus
    a ConfigMap when a frozen file list is given). Each pod takes every ``shards``-th input of
    the sorted listing, skips inputs whose output exists and writes outputs atomically, so
    retries and reruns do only what is missing. An input the workload reports as malformed
    fails its index without retries; node disruptions are not counted as failures.

    A run is keyed by ``run_id``: a later ``pulumi up`` with another image or other settings
    leaves it alone (``ignore_changes`` on the Job), and the finished Job is kept (no TTL),
    so ``pulumi up --refresh`` never finds it gone and creates it again. Give a new
    ``run_id`` to run again. Runs made with ``workstack submit`` are not Pulumi's at all.
    """

    job_name: str
    """Name of the Job in the workload namespace."""

    def __init__(
        self, name: str, args: JobPerFileArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:workload:JobPerFile", name, None, opts)
        cluster = args.cluster
        k8s = cluster.options_for(self, args.identity)
        self.job_name = f"{name}-{args.run_id}"
        image = ImageRef.of(args.image)
        config_map = None
        if args.files is not None:
            config_map = f"{self.job_name}-inputs"
            create_object(
                f"{name}-inputs",
                build_manifest_config_map(
                    name=config_map,
                    namespace=cluster.namespace_name,
                    instance=name,
                    keys=args.files,
                ),
                k8s,
            )
        job = build_indexed_job(
            name=self.job_name,
            namespace=cluster.namespace_name,
            instance=name,
            run_id=args.run_id,
            container=ContainerSpec(
                name=CONTAINER,
                image=image.ref,
                pull_policy=image.pull_policy,
                command=("workstack",),
                args=args.args(),
            ),
            settings=args.settings,
            storage=args.storage,
            service_account=args.identity.service_account if args.identity else None,
            manifest_config_map=config_map,
        )
        # A batch run may take hours: `pulumi up` creates the Job and returns instead of
        # waiting for it (`workstack status`); the Job's own deadline bounds it.
        job["metadata"]["annotations"] = {"pulumi.com/skipAwait": "true"}
        # Kept once finished: a Job its TTL deleted would be created again by the next
        # `pulumi up --refresh`, and rerun.
        job["spec"].pop("ttlSecondsAfterFinished")
        create_object(
            f"{name}-job",
            job,
            pulumi.ResourceOptions.merge(k8s, pulumi.ResourceOptions(ignore_changes=["spec"])),
        )
        self.register_outputs({"job_name": self.job_name})
