"""The Dask cluster's mutual TLS, for real: scheduler, worker and clients as local processes.

The scheduler and worker run with the arguments and environment the stack's builders put in
their pods (certificate paths moved from the Secret's mount to a temporary folder holding
certificates made like the stack makes them: one CA, one certificate per role). A client with
the client certificate computes; a plain TCP client, a TLS client without a certificate and
one whose certificate another CA signed are all refused.
"""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workstack.components.manifests.dask import (
    TLS_MOUNT,
    DaskSettings,
    DaskTarget,
    build_plain_dask,
    tls_storage,
)

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _write_pki(folder: Path, roles: tuple[str, ...] = ("scheduler", "worker", "client")) -> None:
    """A CA and a certificate per role, ECDSA P-256 like pulumi-tls makes them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def pem_key(key: Any) -> bytes:
        return bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test dask CA"))
        .issuer_name(name("test dask CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for role in roles:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(f"test-{role}"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        (folder / f"{role}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{role}.key").write_bytes(pem_key(key))


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return container


def _env(container: dict[str, Any], pki: Path) -> dict[str, str]:
    """The container's plain environment, the Secret's mount moved to ``pki``."""
    env = {**os.environ}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"]).replace(TLS_MOUNT, str(pki))
    return env


def _args(container: dict[str, Any], port: int) -> list[str]:
    """The container's arguments, made to listen on 127.0.0.1 and a free port."""
    args = [str(a) for a in container["args"]]
    args[args.index("--port") + 1] = str(port)
    args[args.index("--dashboard-address") + 1] = f"127.0.0.1:{_free_port()}"
    return [*args, "--host", "127.0.0.1"]


_CLIENT = """
import sys
from distributed import Client
with Client(sys.argv[1], timeout=15) as client:
    print(client.submit(sum, [1, 2, 3]).result(timeout=30))
"""


def _client(address: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CLIENT, address],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tls_cluster(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The stack's scheduler and one worker, as built, with TLS, on 127.0.0.1."""
    pki = tmp_path / "pki"
    _write_pki(pki)
    target = DaskTarget(
        name="tls", namespace="ns", instance="tls", image="image", tls_secret="tls-dask-tls"
    )
    scheduler_obj, _, worker_obj = build_plain_dask(target, DaskSettings(workers=1))
    port = _free_port()
    scheduler = subprocess.Popen(
        [str(BIN / "dask"), *_args(_container(scheduler_obj), port)],
        env=_env(_container(scheduler_obj), pki),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"tls://127.0.0.1:{port}"
    worker_container = _container(worker_obj)
    worker_args = [str(a) for a in worker_container["args"]]
    assert worker_args[1].startswith("tls://"), worker_args
    worker_args[1] = address
    worker_args[worker_args.index("--local-directory") + 1] = str(tmp_path / "worker")
    worker_args[worker_args.index("--dashboard-address") + 1] = f"127.0.0.1:{_free_port()}"
    worker = subprocess.Popen(
        [str(BIN / "dask"), *worker_args, "--host", "127.0.0.1"],
        env=_env(worker_container, pki),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield address, pki
    finally:
        for process in (worker, scheduler):
            process.terminate()
        for process in (worker, scheduler):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _client_env(pki: Path) -> dict[str, str]:
    storage = tls_storage("tls-dask-tls", "client")
    env = {**os.environ}
    env.update({k: str(v).replace(TLS_MOUNT, str(pki)) for k, v in storage.env.items()})
    return env


@pytest.mark.timeout(240)
def test_a_client_with_the_stacks_certificate_computes(tls_cluster: tuple[str, Path]) -> None:
    address, pki = tls_cluster
    result = _client(address, _client_env(pki))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("6")


@pytest.mark.timeout(240)
def test_clients_without_the_stacks_certificate_are_refused(
    tls_cluster: tuple[str, Path], tmp_path: Path
) -> None:
    address, pki = tls_cluster
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    plain = _client(address.replace("tls://", "tcp://"), clean)
    assert plain.returncode != 0
    no_cert = _client(
        address,
        {**clean, "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(pki / "ca.crt")},
    )
    assert no_cert.returncode != 0
    other = tmp_path / "other"
    _write_pki(other, roles=("client",))
    env = _client_env(other)
    env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"] = str(pki / "ca.crt")  # trusts the server
    foreign = _client(address, env)
    assert foreign.returncode != 0
    # The cluster still serves its own client afterwards.
    assert _client(address, _client_env(pki)).returncode == 0
