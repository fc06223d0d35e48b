"""Tasks the queue integration tests run on real workers.

Each leaves markers in the queue's storage so a test can count what really happened:
``markers/started/<id>/<worker>-<n>`` when an attempt starts (the worker's name) and
``markers/effects/<id>/<uuid>`` when it completes, just before the result is stored.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from workstack.sdk.queue import current_task
from workstack.sdk.storage import open_storage


def _mark(root: str, kind: str, name: str) -> None:
    task = current_task()
    open_storage(root).write_text(f"markers/{kind}/{task.id}/{name}", str(task.attempt))


def record(root: str, value: int, seconds: float = 0.0) -> int:
    """Sleep, write ``value`` to the task's output folder and return its square.

    Also leaves ``markers/spans/<id>/<uuid>`` holding "<start> <end>" (Unix times) of this
    execution, so a test can tell whether two executions overlapped.
    """
    began = time.time()
    _mark(root, "started", f"{current_task().worker}-{uuid.uuid4().hex[:8]}")
    time.sleep(seconds)
    (current_task().output_dir / "value.txt").write_text(f"{value}\n")
    _mark(root, "effects", uuid.uuid4().hex)
    open_storage(root).write_text(
        f"markers/spans/{current_task().id}/{uuid.uuid4().hex}", f"{began} {time.time()}"
    )
    return value * value


def hold_gil(root: str, seconds: int) -> str:
    """Block in C for ``seconds`` without releasing the GIL (libc sleep through ctypes.PyDLL,
    which keeps the GIL during the call, unlike ctypes.CDLL)."""
    import ctypes

    _mark(root, "started", f"{current_task().worker}-{uuid.uuid4().hex[:8]}")
    ctypes.PyDLL(None).sleep(seconds)
    _mark(root, "effects", uuid.uuid4().hex)
    return "held"


def poison(root: str) -> None:
    """Fail every time."""
    _mark(root, "started", f"{current_task().worker}-{uuid.uuid4().hex[:8]}")
    raise ValueError("poison task: this input can never be processed")


def broker_url_seen() -> str | None:
    """What a task sees of the worker's broker URL (it should see nothing)."""
    return os.environ.get("WORKSTACK_BROKER_URL")


def main() -> None:
    """``python -m tests.integration.queue.tasks ROOT VALUE SECONDS``: ``record`` as a command."""
    root, value, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    task_id = os.environ["WORKSTACK_TASK_ID"]
    storage = open_storage(root)
    storage.write_text(f"markers/started/{task_id}/{os.getpid()}", "")
    time.sleep(seconds)
    with open(os.path.join(os.environ["WORKSTACK_OUTPUT_DIR"], "value.txt"), "w") as handle:
        handle.write(f"{value}\n")
    storage.write_text(f"markers/effects/{task_id}/{uuid.uuid4().hex}", "")


if __name__ == "__main__":
    main()


def crash(root: str) -> None:
    """Kill the process running the task, as a segfault or the OOM killer would."""
    _mark(root, "started", f"{current_task().worker}-{uuid.uuid4().hex[:8]}")
    os._exit(9)


def spin(root: str, seconds: float) -> None:
    """Run longer than the task's timeout."""
    _mark(root, "started", f"{current_task().worker}-{uuid.uuid4().hex[:8]}")
    time.sleep(seconds)
    _mark(root, "effects", uuid.uuid4().hex)
