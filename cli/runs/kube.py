"""The Kubernetes API calls runs make, on the official ``kubernetes`` client.

Why that client: it is the Kubernetes project's own, kept in step with the API; it loads any
kubeconfig (contexts, certificates, the exec plugins GKE and EKS use for short-lived tokens);
and of the Python clients it is the one whose exec stream sends stdin in chunks, as binary,
and closes it (the ``v5.channel.k8s.io`` protocol), which a tar stream of any size needs
(``kr8s`` reads the whole stdin into memory first, ``lightkube`` has no exec). Objects go in
and come out as plain dicts, exactly what the builders make and the schemas check, through
the client's generic ``call_api``; its generated models would drop fields they do not know.

Failures become :mod:`workstack.runs.errors`: 403 is :class:`DeniedError` (exit 4), a refused
connection or a timeout :class:`UnreachableError` (exit 3), 404 :class:`NotFoundError` and
409 :class:`ConflictError`, each with the API server's own message.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workstack.runs.errors import (
    ConflictError,
    DeniedError,
    NotFoundError,
    RunsError,
    UnreachableError,
    UsageError,
)

__all__ = ["KINDS", "ExecChannel", "Kind", "Kube", "kind_of"]

_STDIN, _STDOUT, _STDERR, _ERROR = 0, 1, 2, 3


@dataclass(frozen=True)
class Kind:
    """Where the API serves a kind: its group/version, plural and scope."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def prefix(self) -> str:
        """``/api/v1`` or ``/apis/<group>/<version>``."""
        return (
            f"/api/{self.api_version}"
            if "/" not in self.api_version
            else (f"/apis/{self.api_version}")
        )


KINDS: dict[str, Kind] = {
    kind.kind: kind
    for kind in (
        Kind("v1", "Pod", "pods"),
        Kind("v1", "ConfigMap", "configmaps"),
        Kind("v1", "Event", "events"),
        Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        Kind("v1", "ResourceQuota", "resourcequotas"),
        Kind("v1", "Node", "nodes", namespaced=False),
        Kind("batch/v1", "Job", "jobs"),
        Kind("argoproj.io/v1alpha1", "Workflow", "workflows"),
    )
}
"""The kinds runs create or read."""


def kind_of(obj: Mapping[str, Any]) -> Kind:
    """The :class:`Kind` of an object.

    Raises:
        UsageError: Runs never create that kind.
    """
    kind = KINDS.get(str(obj.get("kind")))
    if kind is None or kind.api_version != obj.get("apiVersion"):
        raise UsageError(f"{obj.get('apiVersion')}/{obj.get('kind')} is not a kind runs create")
    return kind


def _status_message(body: Any) -> str:
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return str(body or "").strip()[:500]
    return str(data.get("message") or data) if isinstance(data, dict) else str(data)


class Kube:
    """The calls runs make, in one namespace, as plain dicts.

    Args:
        api_client: A ``kubernetes.client.ApiClient`` set up for the cluster.
        namespace: Where the run's objects live.
        timeout: Seconds a call may take (watches and followed logs excepted).
    """

    def __init__(self, api_client: Any, namespace: str, *, timeout: float = 30.0) -> None:
        self._client = api_client
        self.namespace = namespace
        self.timeout = timeout

    @classmethod
    def connect(
        cls,
        namespace: str,
        *,
        kubeconfig: Mapping[str, Any] | Path | None = None,
        context: str | None = None,
        timeout: float = 30.0,
    ) -> Kube:
        """A client from a kubeconfig (a mapping, a file, else the user's own) and context.

        Raises:
            UsageError: No kubeconfig, or no such context in it.
        """
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            if isinstance(kubeconfig, Mapping):
                config.load_kube_config_from_dict(
                    dict(kubeconfig), context=context, client_configuration=configuration
                )
            else:
                config.load_kube_config(
                    config_file=str(kubeconfig) if kubeconfig else None,
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except config.ConfigException as error:
            where = kubeconfig if isinstance(kubeconfig, Path) else "the kubeconfig"
            raise UsageError(
                f"cannot use {where} (context {context or 'current'}): {error}"
            ) from None
        # One try per call: a refused connection or a timeout is reported, not repeated.
        configuration.retries = 0
        return cls(client.ApiClient(configuration), namespace, timeout=timeout)

    @property
    def host(self) -> str:
        """The API server's URL."""
        return str(self._client.configuration.host)

    # -- plumbing ---------------------------------------------------------------------------

    def _path(self, kind: Kind, name: str | None = None, sub: str | None = None) -> str:
        path = kind.prefix()
        if kind.namespaced:
            path += f"/namespaces/{self.namespace}"
        path += f"/{kind.plural}"
        if name:
            path += f"/{name}"
        if sub:
            path += f"/{sub}"
        return path

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        stream: bool = False,
        timeout: float | None = None,
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            response = self._client.call_api(
                path,
                method,
                query_params=list(query),
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout if timeout is not None else self.timeout,
            )
        except ApiException as error:
            raise self._api_error(method, path, error.status, error.body) from None
        except Exception as error:
            raise self._transport_error(error, timeout) from None
        if stream:
            return response
        try:
            return json.loads(response.data) if response.data else {}
        except Exception as error:
            raise self._transport_error(error, timeout) from None

    def _api_error(self, method: str, path: str, status: int, body: Any) -> RunsError:
        message = _status_message(body)
        if status == 403:
            return DeniedError(
                f"permission denied: {message} (your kubeconfig's user needs the right to "
                f"{method} {path} in namespace {self.namespace})"
            )
        if status == 404:
            return NotFoundError(f"not found: {message}")
        if status == 409:
            return ConflictError(f"already exists: {message}")
        if status in (401,):
            return DeniedError(f"the API server did not accept your credentials: {message}")
        return RunsError(f"the API server refused {method} {path} ({status}): {message}")

    def _transport_error(self, error: Exception, timeout: float | None) -> RunsError:
        import urllib3

        reason = error.reason if isinstance(error, urllib3.exceptions.MaxRetryError) else error
        seconds = timeout if timeout is not None else self.timeout
        refused = isinstance(reason, urllib3.exceptions.NewConnectionError | ConnectionError)
        # urllib3's NewConnectionError is a ConnectTimeoutError too, for history's sake.
        if not refused and isinstance(reason, urllib3.exceptions.TimeoutError | TimeoutError):
            return UnreachableError(
                f"the Kubernetes API at {self.host} did not answer within {seconds:g} s; is the "
                "cluster up (`minikube status`, your cloud console)?"
            )
        return UnreachableError(
            f"cannot reach the Kubernetes API at {self.host}: {reason}; is the cluster up and "
            "your kubeconfig pointing at it?"
        )

    # -- objects ----------------------------------------------------------------------------

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``obj`` in the namespace; returns what the server stored."""
        kind = kind_of(obj)
        created: dict[str, Any] = self._call("POST", self._path(kind), body=dict(obj))
        return created

    def get(self, kind: str, name: str) -> dict[str, Any]:
        """The object ``kind/name``."""
        found: dict[str, Any] = self._call("GET", self._path(KINDS[kind], name))
        return found

    def list(
        self, kind: str, *, selector: str | None = None, field_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects of ``kind`` matching the label (and field) selector."""
        query = [("labelSelector", selector)] if selector else []
        if field_selector:
            query.append(("fieldSelector", field_selector))
        found = self._call("GET", self._path(KINDS[kind]), query=query)
        items: list[dict[str, Any]] = found.get("items") or []
        return items

    def delete(self, kind: str, name: str, *, propagation: str = "Foreground") -> bool:
        """Delete ``kind/name`` and (foreground) what it owns; False if it was gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        try:
            self._call("DELETE", self._path(KINDS[kind], name), body=body)
        except NotFoundError:
            return False
        return True

    def watch(
        self, kind: str, *, selector: str | None = None, timeout_seconds: int = 60
    ) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type": ..., "object": ...}``) until the server ends the watch.

        Raises:
            RunsError: An ERROR event (a watch too old to resume, 410) or a failed call.
        """
        from kubernetes.watch.watch import iter_resp_lines

        query: list[tuple[str, Any]] = [("watch", "true"), ("timeoutSeconds", timeout_seconds)]
        if selector:
            query.append(("labelSelector", selector))
        response = self._call(
            "GET", self._path(KINDS[kind]), query=query, stream=True, timeout=timeout_seconds + 30
        )
        try:
            for line in iter_resp_lines(response):
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    raise RunsError(
                        f"the watch of {kind} ended: {_status_message(json.dumps(event['object']))}"
                    )
                yield event
        except RunsError:
            raise
        except Exception as error:
            raise self._transport_error(error, timeout_seconds + 30) from None
        finally:
            response.release_conn()

    def logs(
        self,
        pod: str,
        *,
        container: str | None = None,
        follow: bool = False,
        tail_lines: int | None = None,
        previous: bool = False,
    ) -> Iterator[str]:
        """The pod's log lines (followed until the container ends, with ``follow``)."""
        from kubernetes.watch.watch import iter_resp_lines

        query: list[tuple[str, Any]] = []
        if container:
            query.append(("container", container))
        if follow:
            query.append(("follow", "true"))
        if tail_lines is not None:
            query.append(("tailLines", tail_lines))
        if previous:
            query.append(("previous", "true"))
        path = self._path(KINDS["Pod"], pod, "log")
        # A followed log may stay quiet for hours: only the connection has a timeout.
        timeout = (self.timeout, None) if follow else self.timeout
        response = self._call("GET", path, query=query, stream=True, timeout=timeout)  # type: ignore[arg-type]
        try:
            yield from iter_resp_lines(response)
        except Exception as error:
            raise self._transport_error(error, self.timeout) from None
        finally:
            response.release_conn()

    def exec(
        self, pod: str, command: Sequence[str], *, container: str | None = None
    ) -> ExecChannel:
        """Run ``command`` in ``pod`` with stdin, stdout and stderr streamed (binary).

        Raises:
            DeniedError: Exec is not allowed to this user (403).
            NotFoundError: No such pod.
            UnreachableError: The API server did not answer.
        """
        from kubernetes import client
        from kubernetes.stream import ws_client

        configuration = self._client.configuration

        def open_socket(_configuration: Any, _method: str, url: str, **kwargs: Any) -> Any:
            # As kubernetes.stream.stream does, but without capturing all of stdout in memory.
            url = ws_client.get_websocket_url(url, kwargs.get("query_params"))
            return ws_client.WSClient(
                configuration, url, kwargs.get("headers"), capture_all=False, binary=True
            )

        api = client.CoreV1Api(self._client)
        previous = self._client.request
        self._client.request = functools.partial(open_socket, configuration)
        try:
            socket = api.connect_get_namespaced_pod_exec(
                pod,
                self.namespace,
                command=list(command),
                container=container,
                stdin=True,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
            )
        except Exception as error:
            raise self._exec_error(pod, error) from None
        finally:
            self._client.request = previous
        return ExecChannel(socket)

    def _exec_error(self, pod: str, error: Exception) -> RunsError:
        status = getattr(error, "status_code", None) or getattr(error, "status", None)
        if status in (401, 403, 404, 409):
            body = getattr(error, "resp_body", None) or getattr(error, "body", None)
            path = self._path(KINDS["Pod"], pod, "exec")
            return self._api_error("exec", path, int(status), body)
        return self._transport_error(error, self.timeout)


class ExecChannel:
    """A command running in a pod: write its stdin, read its stdout, then its exit status."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._stderr = bytearray()

    def write(self, data: bytes) -> None:
        """Send ``data`` to the command's stdin.

        Raises:
            UnreachableError: The connection broke.
        """
        try:
            self._socket.write_channel(_STDIN, bytes(data))
        except Exception as error:
            raise UnreachableError(f"the exec stream broke while sending: {error}") from None

    def close_stdin(self) -> None:
        """Tell the command its stdin ended (v5 protocol; a no-op on v4)."""
        try:
            self._socket.close_channel(_STDIN)
        except Exception as error:
            raise UnreachableError(f"the exec stream broke while sending: {error}") from None

    def read(self, timeout: float = 1.0) -> bytes | None:
        """Some stdout: bytes, b"" once the command has ended, None if nothing came yet."""
        socket = self._socket
        try:
            self._stderr += socket.read_channel(_STDERR)
            data: bytes = socket.read_channel(_STDOUT)
            if data:
                return data
            if not socket.is_open():
                self._stderr += socket.read_channel(_STDERR)
                return b""
            socket.update(timeout=timeout)
        except (OSError, ValueError) as error:
            raise UnreachableError(f"the exec stream broke while receiving: {error}") from None
        except Exception as error:
            raise UnreachableError(f"the exec stream broke while receiving: {error}") from None
        return None

    def wait(self, timeout: float = 60.0) -> tuple[int | None, str]:
        """The exit status (None if the stream ended without one) and the command's stderr."""
        import time

        deadline = time.monotonic() + timeout
        while self._socket.is_open() and time.monotonic() < deadline:
            self._stderr += self._socket.read_channel(_STDERR)
            self._socket.update(timeout=0.5)
        self._stderr += self._socket.read_channel(_STDERR)
        status: int | None
        try:
            raw = self._socket.read_channel(_ERROR)
            status = _exit_status(raw) if raw else None
        except (ValueError, KeyError, IndexError, TypeError):
            status = None
        self._socket.close()
        return status, self._stderr.decode("utf-8", "replace")

    def close(self) -> None:
        """Drop the connection."""
        self._socket.close()


def _exit_status(raw: bytes) -> int:
    """The exit status in the error channel's Status object (Success, or NonZeroExitCode)."""
    status = json.loads(raw)
    if status.get("status") == "Success":
        return 0
    for cause in status.get("details", {}).get("causes", []):
        if cause.get("reason") == "ExitCode":
            return int(cause["message"])
    raise ValueError(f"no exit code in {status}")
