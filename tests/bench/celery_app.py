"""The Celery side of bench_queue: a no-op task with the same guarantees as the workers.

``celery -A tests.bench.celery_app worker`` reads the broker and queue from the environment
(``WORKSTACK_BROKER_URL``, ``WORKSTACK_BENCH_CELERY_QUEUE``).
"""

from __future__ import annotations

import os

from celery import Celery

NOOP = "tests.bench.celery_app.noop"


def make_app(broker_url: str, queue: str, prefetch: int = 1, *, worker: bool = True) -> Celery:
    """A Celery app: late acks, a prefetch multiplier, persistent messages, a quorum queue.

    The no-op task is registered on the worker side only (the producer sends it by name).
    """
    app = Celery("tests.bench.celery_app", broker=broker_url)
    app.conf.update(
        task_acks_late=True,
        worker_prefetch_multiplier=prefetch,
        task_default_delivery_mode="persistent",
        task_default_queue=queue,
        task_default_queue_type="quorum",
        worker_detect_quorum_queues=True,
        broker_transport_options={"confirm_publish": True},
        task_ignore_result=True,
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )

    if worker:

        @app.task(name=NOOP)
        def noop() -> None:
            return None

    return app


app = make_app(
    os.environ.get("WORKSTACK_BROKER_URL", "amqp://127.0.0.1:5672"),
    os.environ.get("WORKSTACK_BENCH_CELERY_QUEUE", "bench-celery"),
    int(os.environ.get("WORKSTACK_BENCH_CELERY_PREFETCH", "1")),
)
