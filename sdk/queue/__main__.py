"""``python -m workstack.sdk.queue tasker|worker``: the queue commands without the full CLI."""

from workstack.sdk.queue.cli import queue_app

queue_app(prog_name="python -m workstack.sdk.queue")
