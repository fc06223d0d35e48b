"""``workstack demo``: every example workload end to end on this machine, then the stack offline.

The demo needs no cloud account and no cluster. It runs each folder under ``workloads/`` with
``workstack run --local`` (the same entrypoints as the pods), on a RabbitMQ it finds on
127.0.0.1:5672 or starts for the run (``workstack.sdk.queue.localbroker``), and then renders
the ``minikube`` stack offline and checks every object against the Kubernetes schemas and CRDs:
what ``pulumi up`` would create to run the same workloads on a cluster.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from workstack.project import PulumiProject
from workstack.sdk.local import LocalRun, run_workload
from workstack.sdk.workload import Workload, WorkloadError, load_workload

__all__ = ["DemoStep", "local_broker", "render_check", "run_examples"]

_BROKER_HOST, _BROKER_PORT = "127.0.0.1", 5672


@dataclass(frozen=True)
class DemoStep:
    """One line of the demo's report."""

    name: str
    pattern: str
    ok: bool
    summary: str
    output: str
    seconds: float


def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


@contextlib.contextmanager
def local_broker(url: str | None, announce: Callable[[str], None]) -> Iterator[str]:
    """Yield the broker URL the queue example uses.

    ``url`` when given; else a RabbitMQ listening on 127.0.0.1:5672; else a private node
    started for the demo and removed after it.

    Raises:
        workstack.sdk.queue.localbroker.BrokerUnavailableError: None was given or found and
            rabbitmq-server is not installed (``scripts/deps/rabbitmq.sh``) or did not start.
    """
    if url:
        yield url
        return
    if _listening(_BROKER_HOST, _BROKER_PORT):
        announce(f"using the RabbitMQ on {_BROKER_HOST}:{_BROKER_PORT}")
        yield f"amqp://{_BROKER_HOST}:{_BROKER_PORT}"
        return
    from workstack.sdk.queue.localbroker import LocalBroker

    announce("starting a private RabbitMQ node on 127.0.0.1 for the demo")
    broker = LocalBroker()
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()


def run_examples(
    workloads_dir: Path,
    out: Path,
    *,
    workers: int,
    broker_url: Callable[[], contextlib.AbstractContextManager[str]],
    on_step: Callable[[DemoStep], None],
) -> list[DemoStep]:
    """Run every workload folder under ``workloads_dir`` locally, outputs under ``out``.

    A workload that fails is reported and the others still run; the broker is started only
    when a queue-workers workload is there.
    """
    folders = sorted(p.parent for p in workloads_dir.glob("*/workload.yaml"))
    steps: list[DemoStep] = []
    with contextlib.ExitStack() as stack:
        for folder in folders:
            started = time.monotonic()
            try:
                workload = load_workload(folder)
            except WorkloadError as error:
                step = DemoStep(folder.name, "?", False, str(error), "", 0.0)
            else:
                name, pattern = workload.spec.name, workload.spec.pattern
                missing = _missing(workload)
                if missing:
                    # An example with an environment of its own (asreview-makita needs
                    # pandas < 3): skipped here, said so, not counted as a failure.
                    step = DemoStep(
                        name, pattern, True,
                        f"skipped: needs {', '.join(missing)} (make examples installs them)",
                        "", 0.0,
                    )  # fmt: skip
                    steps.append(step)
                    on_step(step)
                    continue
                try:
                    url = stack.enter_context(broker_url()) if pattern == "queue-workers" else None
                    result = run_workload(
                        workload,
                        LocalRun(out=out / name, workers=workers, broker_url=url, progress=False),
                    )
                    step = DemoStep(
                        name,
                        pattern,
                        result.exit_code == 0,
                        result.summary,
                        result.output,
                        time.monotonic() - started,
                    )
                except Exception as error:  # one example failing must not hide the others
                    step = DemoStep(
                        name, pattern, False, f"{type(error).__name__}: {error}", "", 0.0
                    )
            steps.append(step)
            on_step(step)
    return steps


def _missing(workload: Workload) -> list[str]:
    from workstack.sdk.queue.local import missing_requirements

    return missing_requirements(workload)


@dataclass(frozen=True)
class RenderCheck:
    """The offline rendering of a stack: how many objects, and what the schema check says."""

    stack: str
    objects: int
    kinds: dict[str, int]
    errors: list[str]


def render_check(project: PulumiProject, stack: str) -> RenderCheck:
    """Run ``stack``'s program under Pulumi's mocks and check every object it renders."""
    from workstack.offline import run_program
    from workstack.render import rendered_objects
    from workstack.schemas import CrdCatalog, default_crd_dirs, validate_objects

    objects = rendered_objects(run_program(project, stack))
    check = validate_objects(objects, CrdCatalog(default_crd_dirs(project.root)))
    kinds: dict[str, int] = {}
    for obj in objects:
        kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
    return RenderCheck(stack, len(objects), dict(sorted(kinds.items())), list(check.errors))
