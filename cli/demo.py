"""``workstack demo``: every example workload end to end on this machine, then the stack offline.

The demo needs no cloud account and no cluster. It runs each of workstack's example workloads
under ``workloads/`` (:data:`EXAMPLES`; a user's own workloads there are listed and left alone,
or run too with ``--all``) with ``workstack run --local`` (the same entrypoints as the pods), on
a RabbitMQ it finds on 127.0.0.1:5672 or starts for the run
(``workstack.sdk.queue.localbroker``), and then renders the ``minikube`` stack offline and
checks every object against the Kubernetes schemas and CRDs: what ``pulumi up`` would create to
run the same workloads on a cluster.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from workstack.project import PulumiProject
from workstack.sdk.local import LocalRun, run_workload
from workstack.sdk.workload import Workload, WorkloadError, load_workload

if TYPE_CHECKING:
    from workstack.proof import Finding

__all__ = ["EXAMPLES", "DemoStep", "local_broker", "render_check", "run_examples"]

_BROKER_HOST, _BROKER_PORT = "127.0.0.1", 5672

EXAMPLES = (
    "clc-preprocess",
    "csv-clean",
    "dask-bench",
    "experiment",
    "ml-basic",
    "ml-ploomber",
    "simulations",
)
"""The example workloads workstack ships, one or more per seed (see docs/migrating.md)."""


@dataclass(frozen=True)
class DemoStep:
    """One line of the demo's report.

    ``skipped`` marks a folder that is not one of the examples (and was not run).
    """

    name: str
    pattern: str
    ok: bool
    summary: str
    output: str
    seconds: float
    skipped: bool = False


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
    everything: bool = False,
) -> list[DemoStep]:
    """Run the example workloads under ``workloads_dir`` locally, outputs under ``out``.

    Folders that are not examples (a user's own workloads) are reported as skipped, or run
    too when ``everything``. A workload that fails is reported with why, and the others
    still run; the broker is started only when a queue-workers workload runs.
    """
    folders = sorted(p.parent for p in workloads_dir.glob("*/workload.yaml"))
    steps: list[DemoStep] = []
    with contextlib.ExitStack() as stack:
        for folder in folders:
            if folder.name not in EXAMPLES and not everything:
                step = DemoStep(
                    folder.name,
                    "?",
                    True,
                    "not one of workstack's examples: run it with `workstack run "
                    f"workloads/{folder.name} --local`, or `workstack demo --all`",
                    "",
                    0.0,
                    skipped=True,
                )
                steps.append(step)
                on_step(step)
                continue
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
    """The offline rendering of a stack: how many objects, the schema check, the proof.

    Attributes:
        stack: The stack.
        objects: How many Kubernetes objects it renders.
        kinds: How many of each kind.
        errors: Schema errors (or the Pulumi CLI's refusal of the stack's config).
        proof: Findings of the offline proof (workstack.proof), errors and warnings.
    """

    stack: str
    objects: int
    kinds: dict[str, int]
    errors: list[str]
    unchecked: list[str]
    proof: list[Finding] = field(default_factory=list)

    @property
    def proof_errors(self) -> list[Finding]:
        """The proof's findings that would fail ``pulumi up`` or the workloads."""
        return [finding for finding in self.proof if finding.severity == "error"]


def render_check(project: PulumiProject, stack: str) -> RenderCheck:
    """Run ``stack``'s program under Pulumi's mocks and check every object it renders."""
    from workstack.offline import run_program
    from workstack.project import StackConfigError
    from workstack.proof import StackContext, check_deployment
    from workstack.render import rendered_objects
    from workstack.schemas import CrdCatalog, default_crd_dirs, validate_objects

    try:
        settings = project.read_stack(stack)
    except StackConfigError as error:  # `pulumi up` stops here, before the program runs
        return RenderCheck(stack, 0, {}, [str(error)], [])
    deployment = run_program(project, stack, settings)
    objects = rendered_objects(deployment)
    check = validate_objects(objects, CrdCatalog(default_crd_dirs()))
    kinds: dict[str, int] = {}
    for obj in objects:
        kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
    proof = check_deployment(deployment, StackContext.of(stack, deployment, settings.values))
    return RenderCheck(
        stack,
        len(objects),
        dict(sorted(kinds.items())),
        list(check.errors),
        check.unchecked,
        proof,
    )
