"""Real services for integration tests, started by the test run itself on 127.0.0.1."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from workstack.sdk.queue.localbroker import BrokerUnavailableError, LocalBroker


@dataclass(frozen=True)
class S3Server:
    """An S3-compatible server (moto) and the environment a client needs to reach it."""

    endpoint_url: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "moto-test",
            "AWS_SECRET_ACCESS_KEY": "moto-test",  # moto accepts any credentials
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def create_bucket(self, name: str) -> None:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint_url, **_client_env(self.env)).create_bucket(
            Bucket=name
        )


def _client_env(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's threaded S3 server on a free port of 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = S3Server(endpoint_url=f"http://{host}:{port}")
    saved = {key: os.environ.get(key) for key in s3.env}
    os.environ.update(s3.env)
    try:
        yield s3
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[LocalBroker]:
    # A run stopped with SIGTERM (a CI timeout) still stops the node: pytest tears fixtures
    # down on KeyboardInterrupt, but not when SIGTERM's default action kills it.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        broker = LocalBroker()
        broker.start()
    except BrokerUnavailableError as error:
        signal.signal(signal.SIGTERM, previous)
        pytest.fail(f"RabbitMQ is needed for the queue tests and did not start: {error}")
    try:
        yield broker
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the node stop completely
        try:
            broker.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
