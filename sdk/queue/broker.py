"""Connecting to RabbitMQ and declaring a queue set's topology.

Topology of a queue set named ``N`` (declared, idempotently, by the tasker and every worker):

- ``N.tasks``: quorum queue of tasks and stop messages. ``x-delivery-limit`` is
  ``max_attempts - 1`` (RabbitMQ dead-letters a message returned more often than that), its
  dead-letter exchange is ``N.dlx``, and dead-lettering is ``at-least-once`` (which needs
  ``x-overflow: reject-publish``), so a dead letter is never dropped in transit.
- ``N.dlx``: fanout exchange; bound to ``N.dead`` and to ``N.results``.
- ``N.dead``: quorum queue keeping dead letters (with their error headers) for inspection.
- ``N.results``: quorum queue of completion notes; dead letters arrive there too, so the
  tasker learns about tasks that failed for good.
"""

from __future__ import annotations

import random
from typing import Any

import pika
import pika.exceptions

from workstack.sdk.queue.config import BrokerError, QueueError, QueueNames, redact_url

__all__ = [
    "FATAL_ERRORS",
    "RETRYABLE_ERRORS",
    "Backoff",
    "connection_parameters",
    "declare",
    "declare_topology",
    "describe_error",
    "fatal_error",
    "topology_arguments",
]

# Worth reconnecting for: the broker restarting, the network, a channel the broker closed.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    ConnectionError,
    OSError,
)
# Not worth it: wrong credentials or permissions, a protocol mismatch.
FATAL_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.AuthenticationError,
    pika.exceptions.ProbableAccessDeniedError,
    pika.exceptions.IncompatibleProtocolError,
)


def fatal_error(error: BaseException, url: str) -> BrokerError | None:
    """A :class:`BrokerError` explaining ``error`` if retrying cannot help, else ``None``."""
    if isinstance(error, FATAL_ERRORS):
        return BrokerError(
            f"broker {redact_url(url)} refused the connection ({type(error).__name__}); check the "
            "user, password and vhost in the broker URL"
        )
    return None


def describe_error(error: BaseException) -> str:
    """A one-line description of a connection error (pika's often have no message)."""
    text = str(error).strip()
    if isinstance(error, pika.exceptions.AMQPConnectionError) and not text:
        text = "connection refused, reset or timed out"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def connection_parameters(url: str, *, heartbeat: int, name: str) -> pika.URLParameters:
    """Parameters for one connection attempt; retrying is the caller's (see :class:`Backoff`)."""
    try:
        parameters = pika.URLParameters(url)
    except Exception as error:
        raise QueueError(
            f"broker_url: {redact_url(url)!r} is not allowed; expected "
            f"amqp://[user:password@]host[:port][/vhost] ({type(error).__name__})"
        ) from None
    parameters.heartbeat = heartbeat
    parameters.connection_attempts = 1
    parameters.socket_timeout = 10
    parameters.blocked_connection_timeout = max(60, 4 * heartbeat)
    parameters.client_properties = {"connection_name": name, "product": "workstack"}
    return parameters


class Backoff:
    """Capped exponential backoff with jitter, for reconnecting.

    The n-th wait is drawn uniformly from ``[d/2, d]`` with ``d = min(cap, first * 2**n)``:
    never zero (no hammering a restarting broker), and spread out so that many workers that
    lost the broker at the same moment do not come back in lockstep.
    """

    def __init__(self, first: float, cap: float, *, rng: random.Random | None = None) -> None:
        self._first = first
        self._cap = cap
        self._attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The wait before the next attempt."""
        ceiling = min(self._cap, self._first * 2 ** min(self._attempt, 32))
        self._attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from the first delay (after a successful connection)."""
        self._attempt = 0


QUORUM_QUEUE_ARGUMENTS = frozenset(
    {
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-dead-letter-strategy",
        "x-expires",
        "x-max-length",
        "x-max-length-bytes",
        "x-max-in-memory-length",
        "x-max-in-memory-bytes",
        "x-overflow",
        "x-single-active-consumer",
        "x-queue-type",
        "x-quorum-initial-group-size",
        "x-delivery-limit",
        "x-message-ttl",
        "x-queue-leader-locator",
    }
)
"""Queue arguments a quorum queue takes (rabbitmq-server v4.2.6, the image the stacks run:
deps/rabbit/src/rabbit_quorum_queue.erl:529-535, ``capabilities()``)."""

QUORUM_CONSUMER_ARGUMENTS = frozenset({"x-priority"})
"""Consumer arguments a quorum queue takes (the same file, line 536). The ack timeout is not
one: rabbit_channel.erl (v4.2.6:2822-2833) reads it from the queue's ``consumer-timeout``
policy or argument, else the broker's ``consumer_timeout`` (rabbitmqConsumerTimeoutMinutes)."""


def topology_arguments(names: QueueNames, max_attempts: int) -> dict[str, dict[str, Any]]:
    """Arguments of each queue of the set, by queue name."""
    quorum = {"x-queue-type": "quorum"}
    return {
        names.tasks: {
            **quorum,
            "x-delivery-limit": max_attempts - 1,
            "x-dead-letter-exchange": names.dead_letter_exchange,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
        names.results: dict(quorum),
        names.dead: dict(quorum),
    }


def declare_topology(channel: Any, names: QueueNames, max_attempts: int) -> None:
    """Declare the queue set on a blocking channel; a no-op if it exists as declared.

    Raises:
        QueueError: A queue exists with other arguments (e.g. another ``max_attempts``);
            the broker closes the channel and nothing is changed.
    """
    channel.exchange_declare(names.dead_letter_exchange, exchange_type="fanout", durable=True)
    for queue, arguments in topology_arguments(names, max_attempts).items():
        try:
            channel.queue_declare(queue, durable=True, arguments=arguments)
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code != 406:
                raise
            raise QueueError(
                f"queue {queue!r} already exists with other settings ({error.reply_text}); the "
                f"tasker and every worker must use the same max_attempts (here {max_attempts}), "
                f"or delete the old queue first (rabbitmqctl delete_queue {queue})"
            ) from None
    channel.queue_bind(names.dead, names.dead_letter_exchange)
    channel.queue_bind(names.results, names.dead_letter_exchange)


def declare(url: str, names: QueueNames, max_attempts: int, *, heartbeat: int, name: str) -> None:
    """Open a short connection, declare the queue set and close it."""
    connection = pika.BlockingConnection(connection_parameters(url, heartbeat=heartbeat, name=name))
    try:
        declare_topology(connection.channel(), names, max_attempts)
    finally:
        if connection.is_open:
            connection.close()
