"""The Dask pattern: a scheduler and workers on Kubernetes, fixed or adaptive."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from workstack.components._objects import create_object
from workstack.components.cluster import KubernetesCluster
from workstack.components.identity import WorkloadIdentity
from workstack.components.image import ImageInput, ImageRef
from workstack.components.manifests import require_dns1123_label
from workstack.components.manifests.dask import (
    DASHBOARD_PORT,
    DASK_OPERATOR_CHART,
    DASK_OPERATOR_REPO,
    DASK_OPERATOR_VERSION,
    DaskSettings,
    DaskTarget,
    build_dask_network_policies,
    build_dask_operator_policies,
    build_dask_operator_rbac,
    build_dask_operator_resources,
    build_plain_dask,
    client_labels,
    dask_operator_values,
    operator_peer,
    scheduler_address,
)
from workstack.components.manifests.labels import standard_labels
from workstack.components.manifests.operators import OPERATOR_SCOPES
from workstack.components.manifests.pods import PodStorage
from workstack.components.manifests.validation import require_choice

__all__ = ["DaskCluster", "DaskClusterArgs", "DaskSettings"]


@dataclass(kw_only=True, frozen=True)
class DaskClusterArgs:
    """Arguments for :class:`DaskCluster`.

    Attributes:
        cluster: Where it runs (the workload namespace and provider).
        image: The workload image (with the ``dask`` extra): a ``WorkloadImage`` or a reference.
        storage: Storages the pods mount.
        identity: Service account of the pods (bucket access comes with it).
        install_operator: Operator mode: install the operator chart (pinned to
            ``DASK_OPERATOR_VERSION``) in the namespace. Turn off for a second cluster in a
            namespace that has one.
        settings: Mode, size, threads and resources.
        operator_here: Operator mode without ``install_operator``: the operator runs in this
            namespace all the same (another cluster of the stack installed it), so the
            scheduler admits it from here only; False admits it from any namespace (an
            operator another stack installed).
        operator_scope: ``namespace``: the operator installed here serves this namespace
            only; ``cluster``: every namespace, for other stacks on the cluster that do not
            install operators.
    """

    cluster: KubernetesCluster
    image: ImageInput
    storage: tuple[PodStorage, ...] = ()
    identity: WorkloadIdentity | None = None
    install_operator: bool = True
    settings: DaskSettings = field(default_factory=DaskSettings)
    operator_here: bool = False
    operator_scope: str = "namespace"

    def __post_init__(self) -> None:
        ImageRef.of(self.image)
        require_choice("operator_scope", self.operator_scope, OPERATOR_SCOPES)


class DaskCluster(pulumi.ComponentResource):
    """A Dask scheduler and workers running the workload image, with namespaced rights only.

    Plain mode creates the scheduler Deployment and Service (8786, dashboard on 8787) and a
    worker Deployment. Operator mode installs the dask-kubernetes operator chart, limited to
    this namespace (a namespaced Role, ``--namespace``), and creates a ``DaskCluster``, plus
    a ``DaskAutoscaler`` for an adaptive ``minimum``..``maximum`` range. Either way, run work on
    it from a pod with ``workstack dask run CONFIG --address <scheduler_address>``.
    """

    scheduler_address: pulumi.Output[str]
    """The scheduler inside the cluster: ``tls://<name>-scheduler.<ns>.svc.cluster.local:8786``
    (``tcp://`` with TLS off)."""

    client_labels: dict[str, str]
    """Labels a client pod needs to be let through to the scheduler."""

    tls_secret: str | None
    """The Secret with the CA and the client certificate a client pod mounts (``tls_storage``);
    None with TLS off."""

    dashboard_command: pulumi.Output[str]
    """The ``kubectl port-forward`` command that opens the dashboard on localhost:8787."""

    def __init__(
        self, name: str, args: DaskClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workstack:workload:DaskCluster", name, None, opts)
        require_dns1123_label("name", name, max_length=40)
        cluster = args.cluster
        namespace = cluster.namespace_name
        k8s_opts = cluster.options_for(self, args.identity)
        image = ImageRef.of(args.image)
        settings = args.settings
        self.tls_secret = f"{name}-dask-tls" if settings.tls else None
        if self.tls_secret is not None:
            create_object(
                f"{name}-tls", _tls_secret(name, namespace, self.tls_secret, self), k8s_opts
            )
        target = DaskTarget(
            name=name,
            namespace=namespace,
            instance=name,
            image=image.ref,
            pull_policy=image.pull_policy,
            storage=args.storage,
            service_account=args.identity.service_account if args.identity else None,
            tls_secret=self.tls_secret,
        )
        operator = None
        if settings.mode == "operator":
            operator = operator_peer(same_namespace=args.install_operator or args.operator_here)
        for policy in build_dask_network_policies(target, operator=operator):
            create_object(f"{name}-{policy['metadata']['name']}-policy", policy, k8s_opts)
        if settings.mode == "plain":
            for obj in build_plain_dask(target, settings):
                create_object(
                    f"{name}-{obj['kind'].lower()}-{obj['metadata']['name']}", obj, k8s_opts
                )
        else:
            depends: list[pulumi.Resource] = []
            if args.install_operator:
                release = f"{name}-operator"
                everywhere = args.operator_scope == "cluster"
                for obj in [
                    *build_dask_operator_rbac(
                        namespace=namespace, release=release, all_namespaces=everywhere
                    ),
                    *build_dask_operator_policies(
                        namespace=namespace, instance=release, all_namespaces=everywhere
                    ),
                ]:
                    depends.append(
                        create_object(
                            f"{release}-{obj['kind'].lower()}-{obj['metadata']['name']}",
                            obj,
                            k8s_opts,
                        )
                    )
                depends.append(
                    k8s.helm.v4.Chart(
                        release,
                        name=release,
                        chart=DASK_OPERATOR_CHART,
                        version=DASK_OPERATOR_VERSION,
                        repository_opts={"repo": DASK_OPERATOR_REPO},
                        namespace=namespace,
                        values=dask_operator_values(namespace, release, all_namespaces=everywhere),
                        opts=k8s_opts,
                    )
                )
            custom = pulumi.ResourceOptions.merge(
                k8s_opts, pulumi.ResourceOptions(depends_on=depends)
            )
            for obj in build_dask_operator_resources(target, settings):
                create_object(f"{name}-{obj['kind'].lower()}", obj, custom)

        self.client_labels = client_labels(name)
        self.scheduler_address = pulumi.Output.from_input(
            scheduler_address(name, namespace, tls=settings.tls)
        )
        ports = f"{DASHBOARD_PORT}:{DASHBOARD_PORT}"
        self.dashboard_command = pulumi.Output.from_input(
            f"kubectl port-forward -n {namespace} svc/{name}-scheduler {ports}"
        )
        self.register_outputs(
            {
                "scheduler_address": self.scheduler_address,
                "dashboard_command": self.dashboard_command,
                "tls_secret": self.tls_secret,
            }
        )


# Certificates last ten years and are renewed by `pulumi up` in their last thirty days; a
# renewal changes the Secret, and the scheduler and workers read it when they restart.
_VALIDITY_HOURS = 10 * 365 * 24
_RENEW_HOURS = 30 * 24


def _tls_secret(
    name: str, namespace: str, secret: str, parent: pulumi.Resource
) -> dict[str, object]:
    """The cluster's own CA, a certificate per role signed by it, and the Secret holding them.

    pulumi-tls keeps the keys in the stack's state (encrypted as secrets), so every ``pulumi
    up`` keeps the same certificates; nothing outside the stack can sign one.
    """
    child = pulumi.ResourceOptions(parent=parent)
    ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
    ca = tls.SelfSignedCert(
        f"{name}-ca",
        private_key_pem=ca_key.private_key_pem,
        is_ca_certificate=True,
        subject={"common_name": f"{name} dask CA", "organization": "workstack"},
        allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
        validity_period_hours=_VALIDITY_HOURS,
        early_renewal_hours=_RENEW_HOURS,
        opts=child,
    )
    data: dict[str, pulumi.Output[str]] = {"ca.crt": ca.cert_pem}
    for role in ("scheduler", "worker", "client"):
        key = tls.PrivateKey(
            f"{name}-{role}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child
        )
        request = tls.CertRequest(
            f"{name}-{role}-csr",
            private_key_pem=key.private_key_pem,
            subject={"common_name": f"{name}-{role}", "organization": "workstack"},
            dns_names=[f"{name}-scheduler.{namespace}.svc.cluster.local"],
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-{role}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth", "client_auth"],
            validity_period_hours=_VALIDITY_HOURS,
            early_renewal_hours=_RENEW_HOURS,
            opts=child,
        )
        data[f"{role}.crt"] = cert.cert_pem
        data[f"{role}.key"] = key.private_key_pem
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret,
            "namespace": namespace,
            "labels": standard_labels(name="dask", instance=name, component="dask-tls"),
        },
        "type": "Opaque",
        "stringData": pulumi.Output.secret(pulumi.Output.all(**data)),  # type: ignore[arg-type]
    }
