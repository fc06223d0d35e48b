"""The private RabbitMQ node local runs start: no guest, a generated user only (issue 14.7)."""

from __future__ import annotations

import stat

import pika
import pika.exceptions
import pytest

from workstack.sdk.queue.localbroker import LocalBroker

pytestmark = pytest.mark.integration


def test_the_node_refuses_guest_and_admits_its_generated_user(rabbitmq: LocalBroker) -> None:
    guest = f"amqp://guest:guest@127.0.0.1:{rabbitmq.port}/%2F"
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(guest))
    wrong = rabbitmq.url.replace(rabbitmq.password, "x" * len(rabbitmq.password))
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(wrong))
    pika.BlockingConnection(pika.URLParameters(rabbitmq.url)).close()
    assert "guest" not in rabbitmq.ctl("list_users")


def test_the_password_is_readable_by_this_user_only(rabbitmq: LocalBroker) -> None:
    assert len(rabbitmq.password) >= 32
    config = rabbitmq.root / "rabbitmq.conf"
    assert rabbitmq.password in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(rabbitmq.root.stat().st_mode) == 0o700


def test_two_nodes_do_not_share_a_password() -> None:
    first, second = LocalBroker(), LocalBroker()
    try:
        assert (first.user, first.password) != (second.user, second.password)
    finally:
        first.stop()
        second.stop()
