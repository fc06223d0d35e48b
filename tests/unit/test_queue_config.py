"""Queue settings: defaults pinned in one place, bad values named with what is allowed."""

from __future__ import annotations

import dataclasses
import random

import pytest

from workstack.sdk.queue import QueueError, QueueNames, TaskerSpec, WorkerSpec, redact_url
from workstack.sdk.queue.broker import QUORUM_QUEUE_ARGUMENTS, Backoff, topology_arguments
from workstack.sdk.queue.config import DEFAULT_BROKER_URL, resolve_broker_url


def _defaults(spec: type) -> dict[str, object]:
    return {
        f.name: f.default for f in dataclasses.fields(spec) if f.default is not dataclasses.MISSING
    }


def test_defaults_are_pinned() -> None:
    common = {
        "queue": "workstack",
        "broker_url": None,
        "max_attempts": 3,
        "heartbeat": 30,
        "reconnect_delay": 0.5,
        "reconnect_max_delay": 30.0,
        "give_up_after": 600.0,
        "work_dir": None,
        "run_id": None,
    }
    assert _defaults(TaskerSpec) == {
        **common,
        "workers": 1,
        "window": 1024,
        "reconcile_interval": 10.0,
        "no_worker_timeout": 300.0,
    }
    assert TaskerSpec(storage_url="/s").env == {}
    assert _defaults(WorkerSpec) == {
        **common,
        "prefetch": 1,
        "concurrency": 1,
        "idle_timeout": 900.0,
        "grace": 20.0,
        "notify_interval": 0.05,
        "worker_id": None,
    }
    assert DEFAULT_BROKER_URL == "amqp://127.0.0.1:5672"


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("queue", "Bad Name", "expected 1-100 of a-z"),
        ("queue", "", "expected 1-100 of a-z"),
        ("storage_url", " ", "expected a storage URL"),
        ("broker_url", "http://host", "expected amqp://"),
        ("broker_url", "amqp://host:port", "expected amqp://"),
        ("max_attempts", 0, "integer from 1 to 1000"),
        ("max_attempts", True, "integer from 1 to 1000"),
        ("heartbeat", 0, "integer from 1 to 3600"),
        ("reconnect_delay", 0, "above 0"),
        ("give_up_after", -1, "above 0"),
        ("prefetch", 0, "integer from 1 to 65535"),
        ("idle_timeout", 0, "above 0"),
        ("grace", -1, "0 or more"),
        ("worker_id", "a b", "letters, digits"),
    ],
)
def test_worker_spec_names_the_bad_field(field: str, value: object, allowed: str) -> None:
    settings: dict[str, object] = {"storage_url": "/tmp/x", field: value}
    with pytest.raises(QueueError) as caught:
        WorkerSpec(**settings)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(f"{field}: "), message
    assert "is not allowed" in message
    assert allowed in message


def test_concurrency_cannot_exceed_prefetch() -> None:
    with pytest.raises(
        QueueError, match=r"concurrency: 4 is not allowed; expected at most prefetch \(2\)"
    ):
        WorkerSpec(storage_url="/tmp/x", prefetch=2, concurrency=4)
    assert WorkerSpec(storage_url="/tmp/x", prefetch=4, concurrency=4).concurrency == 4


def test_tasker_spec_checks_its_own_fields() -> None:
    with pytest.raises(QueueError, match="workers: -1 is not allowed"):
        TaskerSpec(storage_url="/tmp/x", workers=-1)
    with pytest.raises(QueueError, match="window: 0 is not allowed"):
        TaskerSpec(storage_url="/tmp/x", window=0)
    assert TaskerSpec(storage_url="/tmp/x", workers=0).workers == 0


def test_broker_url_comes_from_argument_then_environment_then_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WORKSTACK_BROKER_URL", raising=False)
    assert resolve_broker_url(None) == "amqp://127.0.0.1:5672"
    monkeypatch.setenv("WORKSTACK_BROKER_URL", "amqp://u:p@rabbit:5672/%2F")
    assert TaskerSpec(storage_url="/x").broker == "amqp://u:p@rabbit:5672/%2F"
    assert TaskerSpec(storage_url="/x", broker_url="amqp://h").broker == "amqp://h"


def test_bad_broker_url_error_never_shows_the_password() -> None:
    with pytest.raises(QueueError) as caught:
        TaskerSpec(storage_url="/x", broker_url="http://user:s3cret@host")
    assert "s3cret" not in str(caught.value)
    assert "user:***@host" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://user:s3cret@rabbit:5672/vh", "amqp://user:***@rabbit:5672/vh"),
        ("amqps://user:s3cret@rabbit/", "amqps://user:***@rabbit/"),
        ("amqp://127.0.0.1:5672", "amqp://127.0.0.1:5672"),
        ("amqp://user@host", "amqp://user@host"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_names_derive_from_the_queue_set() -> None:
    names = QueueNames("sims")
    assert (names.tasks, names.results, names.dead, names.dead_letter_exchange) == (
        "sims.tasks",
        "sims.results",
        "sims.dead",
        "sims.dlx",
    )


def test_topology_bounds_deliveries_and_dead_letters_at_least_once() -> None:
    arguments = topology_arguments(QueueNames("sims"), max_attempts=3)
    assert arguments["sims.tasks"] == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 2,  # dead-lettered when returned a third time: 3 deliveries
        "x-dead-letter-exchange": "sims.dlx",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert arguments["sims.results"] == {"x-queue-type": "quorum"}
    assert arguments["sims.dead"] == {"x-queue-type": "quorum"}


def test_backoff_grows_is_capped_jittered_and_resets() -> None:
    backoff = Backoff(0.5, 8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(10)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 8.0
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_every_queue_argument_is_one_the_pinned_rabbitmq_takes() -> None:
    """A quorum queue refuses or ignores what is not in its capabilities (facts in broker.py)."""
    for arguments in topology_arguments(QueueNames("sims"), max_attempts=3).values():
        assert set(arguments) <= QUORUM_QUEUE_ARGUMENTS
