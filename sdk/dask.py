"""Run a function on a Dask cluster and save the DataFrame it returns.

The config keeps the shape of the DeepEcho benchmark's ``run_dask_function`` config::

    run:
      function: bench:run_benchmark      # module:function (or dotted)
      args: {datasets: 4}                # keyword arguments
    dask_cluster:
      workers: 2                         # or {minimum: 1, maximum: 4}: adaptive
      address: tcp://scheduler:8786      # optional: an existing scheduler
      worker_config:
        resources: {cpu: 1, memory: 2G}  # per worker, for a local cluster
    output:
      path: s3://bucket/results.csv      # local, NFS, s3:// or gs://; .csv or .parquet
      bucket: my-bucket                  # optional: then path is a key in s3://my-bucket

What it drops is on purpose: credentials (``output.key``, ``output.secret_key``) are refused,
since pods reach buckets through their workload identity; ``worker_config.setup`` (installing
packages at run time) is refused, since images carry their dependencies.

Everything that can be checked is checked before a cluster starts: the config's keys, the
function (imported) and its arguments (bound to its signature), and the output's storage. If
writing the result fails after the run (no credentials, a full disk), the DataFrame is kept in a
local file and :class:`OutputError` says where. If the function ran no task on the cluster, a
warning says so: it computed in the client, and the workers were started for nothing.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from workstack.sdk import env
from workstack.sdk.callables import load_callable
from workstack.sdk.errors import WorkstackError
from workstack.sdk.storage import open_storage

if TYPE_CHECKING:
    import pandas

__all__ = [
    "EXIT_OUTPUT_KEPT",
    "DaskConfigError",
    "DaskRunConfig",
    "OutputError",
    "check_run",
    "parse_config",
    "run_function",
    "write_frame",
]

log = logging.getLogger("workstack.dask")

_SECTIONS = {"run", "dask_cluster", "output"}
_RUN_KEYS = {"function", "args"}
_CLUSTER_KEYS = {"workers", "worker_config", "address"}
_WORKER_KEYS = {"resources", "image", "setup"}
_RESOURCE_KEYS = {"cpu", "memory"}
_OUTPUT_KEYS = {"path", "bucket", "key", "secret_key"}
_CREDENTIAL_KEYS = {"key", "secret_key"}
_FORMATS = (".csv", ".parquet")


class DaskConfigError(WorkstackError, ValueError):
    """The run config is invalid; the message names the key and what is allowed."""


EXIT_OUTPUT_KEPT = 74
"""Exit status when the result could not be written and was kept locally (``EX_IOERR``): the
computation succeeded, so a Job should not simply run it again."""


class OutputError(WorkstackError, RuntimeError):
    """The DataFrame could not be written to ``output.path``; it was kept in a local file.

    Attributes:
        kept: Where the DataFrame is.
    """

    def __init__(self, message: str, kept: str) -> None:
        super().__init__(message)
        self.kept = kept


@dataclass(kw_only=True, frozen=True)
class DaskRunConfig:
    """A validated run config.

    Attributes:
        function: ``module:function`` to call.
        args: Its keyword arguments.
        minimum: Fewest workers (equal to ``maximum`` for a fixed size).
        maximum: Most workers; more than ``minimum`` means adaptive scaling.
        address: Scheduler to use; None starts a local cluster (or uses
            ``DASK_SCHEDULER_ADDRESS``).
        threads: Threads per worker (``resources.cpu``).
        memory: Memory limit per worker (``resources.memory``), e.g. ``2G``.
        output: Where the DataFrame goes (a URL or path ending in .csv or .parquet).
    """

    function: str
    args: Mapping[str, Any] = field(default_factory=dict)
    minimum: int = 1
    maximum: int = 1
    address: str | None = None
    threads: int = 1
    memory: str | None = None
    output: str | None = None
    workers_given: bool = False
    """Whether the config asked for workers (``dask_cluster.workers``)."""


def _unknown(where: str, given: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(given) - allowed)
    if extra:
        raise DaskConfigError(
            f"{where}{extra[0]}: unknown key; allowed: {', '.join(sorted(allowed))}"
        )


def _mapping(where: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DaskConfigError(f"{where}: {value!r} is not allowed; expected a mapping")
    return value


def _positive(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DaskConfigError(f"{where}: {value!r} is not allowed; expected an integer >= 1")
    return value


def parse_config(config: Mapping[str, Any]) -> DaskRunConfig:
    """Validate a config dict (the seed's shape) into a :class:`DaskRunConfig`.

    Raises:
        DaskConfigError: An unknown key, a credential, a run-time install, a bad worker range,
            a missing function or an output format other than CSV or Parquet.
    """
    config = _mapping("config", config)
    _unknown("", config, _SECTIONS)
    run = _mapping("run", config.get("run"))
    cluster = _mapping("dask_cluster", config.get("dask_cluster"))
    output = _mapping("output", config.get("output"))
    _unknown("run.", run, _RUN_KEYS)
    _unknown("dask_cluster.", cluster, _CLUSTER_KEYS)
    _unknown("output.", output, _OUTPUT_KEYS)

    given = sorted(_CREDENTIAL_KEYS & set(output))
    if given:
        raise DaskConfigError(
            f"output.{given[0]}: credentials are refused; pods reach buckets through their "
            "workload identity (GKE Workload Identity, EKS Pod Identity or IRSA), and local "
            "runs through the standard AWS/Google credential chain. Remove the key."
        )
    function = run.get("function")
    if not isinstance(function, str) or not function:
        raise DaskConfigError("run.function: missing; expected module:function")
    args = _mapping("run.args", run.get("args"))

    workers = cluster.get("workers", 1)
    if isinstance(workers, Mapping):
        _unknown("dask_cluster.workers.", workers, {"minimum", "maximum"})
        minimum = _positive("dask_cluster.workers.minimum", workers.get("minimum"))
        maximum = _positive("dask_cluster.workers.maximum", workers.get("maximum"))
        if minimum > maximum:
            raise DaskConfigError(
                f"dask_cluster.workers.minimum: {minimum} is not allowed; it must not exceed "
                f"maximum ({maximum})"
            )
    else:
        minimum = maximum = _positive("dask_cluster.workers", workers)

    worker = _mapping("dask_cluster.worker_config", cluster.get("worker_config"))
    _unknown("dask_cluster.worker_config.", worker, _WORKER_KEYS)
    if "setup" in worker:
        raise DaskConfigError(
            "dask_cluster.worker_config.setup: installing at run time is not supported; add "
            "the packages to the workload's requirements.txt so they are baked into its image"
        )
    resources = _mapping("dask_cluster.worker_config.resources", worker.get("resources"))
    _unknown("dask_cluster.worker_config.resources.", resources, _RESOURCE_KEYS)
    threads = _positive("dask_cluster.worker_config.resources.cpu", resources.get("cpu", 1))
    memory = resources.get("memory")
    if memory is not None and not isinstance(memory, str | int):
        raise DaskConfigError(
            f"dask_cluster.worker_config.resources.memory: {memory!r} is not allowed; "
            "expected a size such as 2G"
        )

    target = output.get("path")
    if target is not None:
        if not isinstance(target, str) or not target:
            raise DaskConfigError(f"output.path: {target!r} is not allowed; expected a path or URL")
        if PurePosixPath(target).suffix not in _FORMATS:
            raise DaskConfigError(
                f"output.path: {target!r} is not allowed; expected a name ending in "
                + " or ".join(_FORMATS)
            )
        bucket = output.get("bucket")
        if bucket is not None:
            target = f"s3://{bucket}/{target.lstrip('/')}"
    elif "bucket" in output:
        raise DaskConfigError("output.bucket: given without output.path")

    address = cluster.get("address")
    if address is not None and not isinstance(address, str):
        raise DaskConfigError(
            f"dask_cluster.address: {address!r} is not allowed; expected tcp://host:port"
        )
    return DaskRunConfig(
        function=function,
        args=dict(args),
        minimum=minimum,
        maximum=maximum,
        address=address,
        threads=threads,
        memory=None if memory is None else str(memory),
        output=target,
        workers_given="workers" in cluster,
    )


@contextlib.contextmanager
def _client(config: DaskRunConfig) -> Iterator[Any]:
    """A client for the configured scheduler, or for a local cluster of worker processes."""
    from distributed import Client, LocalCluster

    address = config.address or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address:
        with Client(address) as client:
            yield client
        return
    with LocalCluster(
        n_workers=config.minimum,
        threads_per_worker=config.threads,
        memory_limit=config.memory or "auto",
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        if config.maximum > config.minimum:
            cluster.adapt(minimum=config.minimum, maximum=config.maximum)
        with Client(cluster) as client:
            yield client


def write_frame(frame: pandas.DataFrame, target: str) -> None:
    """Write ``frame`` to ``target`` (CSV or Parquet by extension), atomically."""
    folder, _, name = target.rstrip("/").rpartition("/")
    storage = open_storage(folder or ".")
    with storage.staged(name) as path:
        if name.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)


def check_run(config: DaskRunConfig) -> Callable[..., Any]:
    """Everything that can fail before a cluster starts: returns the function to call.

    Raises:
        CallableError: The function cannot be imported.
        DaskConfigError: ``run.args`` do not fit its signature.
        StorageError: The output's storage is not usable (bad URL, its package missing).
    """
    function = load_callable(config.function)
    _check_args(config, function)
    if config.output is not None:
        folder = config.output.rstrip("/").rpartition("/")[0]
        open_storage(folder or ".")
    return function


def _check_args(config: DaskRunConfig, function: Callable[..., Any]) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(**config.args)
    except TypeError as error:
        parameters = signature.parameters.values()
        accepted = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        unknown = [name for name in config.args if name not in accepted]
        where = f"run.args.{unknown[0]}" if unknown else "run.args"
        value = config.args[unknown[0]] if unknown else dict(config.args)
        raise DaskConfigError(
            f"{where}: {value!r} is not allowed; {config.function}{signature} takes: "
            f"{', '.join(accepted) or 'no arguments'} ({error})"
        ) from None


def _transitions(client: Any) -> int:
    """How many task transitions the scheduler has made: it grows when tasks run there."""
    return int(client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter))


def _rescue(frame: pandas.DataFrame, target: str) -> str:
    """Write ``frame`` somewhere local and lasting: the NFS mount, else here, else /tmp."""
    name = target.rstrip("/").rpartition("/")[2]
    stem, _, suffix = name.rpartition(".")
    kept = f"{stem or name}-{time.strftime('%Y%m%d-%H%M%S')}.{suffix or 'csv'}"
    folders = [os.environ.get(env.NFS_PATH), os.getcwd(), tempfile.gettempdir()]
    for folder in folders:
        if not folder:
            continue
        try:
            path = os.path.join(folder, "workstack-rescued", kept)
            write_frame(frame, path)
        except Exception:  # try the next place; the last one is /tmp
            continue
        return path
    raise OutputError("the DataFrame could not be written anywhere local either", "")


def run_function(config: Mapping[str, Any] | DaskRunConfig) -> pandas.DataFrame:
    """Run the configured function on a Dask cluster and write the DataFrame it returns.

    The function runs in this process with a Dask client set as the default, so whatever it
    computes with Dask (delayed, futures, dataframes) runs on the cluster.

    Raises:
        DaskConfigError: The config is invalid, or its args do not fit the function (raised
            before any cluster starts).
        CallableError: The function cannot be imported.
        StorageError: The output location is not usable (before any cluster starts).
        TypeError: The function did not return a pandas DataFrame.
        OutputError: Writing the result failed; the DataFrame was kept locally (``kept``).
    """
    import pandas

    parsed = config if isinstance(config, DaskRunConfig) else parse_config(config)
    function = check_run(parsed)
    with _client(parsed) as client, client.as_current():
        if parsed.address or os.environ.get("DASK_SCHEDULER_ADDRESS"):
            present = len(client.scheduler_info().get("workers", {}))
            if parsed.workers_given and present < parsed.minimum:
                log.warning(
                    "dask_cluster.workers asks for %d workers; the scheduler has %d. Scale the "
                    "cluster (on a stack: its workers or maximum settings) or ask for fewer.",
                    parsed.minimum,
                    present,
                )
        before = _transitions(client)
        result = function(**parsed.args)
        used = _transitions(client) > before
    if parsed.workers_given and not used:
        log.warning(
            "dask_cluster.workers asked for a cluster, but %s ran no task on it: it computed "
            "in the client process. Compute with Dask in the function (dask.delayed, "
            "client.map, dask.dataframe), or drop dask_cluster.",
            parsed.function,
        )
    if not isinstance(result, pandas.DataFrame):
        raise TypeError(
            f"{parsed.function} returned {type(result).__name__}; expected a pandas.DataFrame"
        )
    if parsed.output is not None:
        try:
            write_frame(result, parsed.output)
        except Exception as error:  # keep the hour of work whatever went wrong
            kept = _rescue(result, parsed.output)
            raise OutputError(
                f"writing {parsed.output} failed ({type(error).__name__}: {error}); the "
                f"DataFrame ({len(result)} rows) is kept at {kept}",
                kept,
            ) from error
    return result
