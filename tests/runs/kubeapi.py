"""A Kubernetes API for the run commands to talk to over real HTTP on 127.0.0.1.

kmock's ``KubernetesEmulator`` (aiohttp) stores objects and serves create, get, list, watch
and delete. It does not filter by label selector, run pods, serve logs or exec, so
:class:`FakeCluster` adds, minimally and as the API server does:

- label selectors (``a=b``, ``a``) on lists and watches, and ``fieldSelector`` on events;
- a kubelet: a pod created is Running shortly after (``pod_status`` changes what it becomes);
- pod logs, plain, ``tailLines`` and ``follow`` (streamed lines, ended when the container is),
  refused without ``container`` for a pod of several containers, as the API server does;
- exec over a websocket speaking ``v5.channel.k8s.io`` (and ``v4``): channel 0 stdin, 1 stdout,
  2 stderr, 3 the Status with the exit code, 255 close; the command runs as a local process
  with the pod's ``/data`` mapped to a local folder (the NFS mount), which kmock cannot do.

The server runs on its own event loop in a thread, so the synchronous client under test
calls it as it would a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import kmock
import yaml

NAMESPACE = "workstack"
BUILTIN = (
    "v1/pods",
    "v1/configmaps",
    "v1/events",
    "v1/persistentvolumeclaims",
    "v1/resourcequotas",
    "batch/v1/jobs",
    "argoproj.io/v1alpha1/workflows",
)
"""Kinds the fake API serves, as a cluster with Argo's CRDs does."""


def matches(selector: str | None, labels: dict[str, str]) -> bool:
    """Equality-based label selectors, as ``kubectl -l`` takes them."""
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


def _field_match(selector: str | None, obj: dict[str, Any]) -> bool:
    for term in filter(None, (selector or "").split(",")):
        path, value = term.split("=", 1)
        node: Any = obj
        for part in path.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if node != value:
            return False
    return True


def running_status(pod: dict[str, Any]) -> dict[str, Any]:
    """What the kubelet reports for a pod whose containers all started."""
    containers = pod.get("spec", {}).get("containers", [])
    return {
        "phase": "Running",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image"),
                "ready": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": "2026-11-30T10:00:00Z"}},
            }
            for c in containers
        ],
    }


@dataclass
class FakeCluster:
    """What the test sets up and reads back; the handler below serves it."""

    volume_root: Path
    pod_status: Callable[[dict[str, Any]], dict[str, Any] | None] = running_status
    logs: dict[str, list[str]] = field(default_factory=dict)
    exec_breaks_after: int | None = None  # bytes of stdin after which the connection drops
    denied: set[tuple[str, str]] = field(default_factory=set)  # (method, path suffix) -> 403
    slow: set[str] = field(default_factory=set)  # path suffixes answered after 5 s
    exec_commands: list[list[str]] = field(default_factory=list)


class _Handler(kmock.KubernetesEmulator):  # type: ignore[misc]
    cluster: FakeCluster

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        path = raw.path
        for method, suffix in self.cluster.denied:
            if raw.method == method and path.endswith(suffix):
                return _status(403, "Forbidden", f'{suffix} is forbidden: User "dev" cannot')
        for suffix in self.cluster.slow:
            if path.endswith(suffix):
                await asyncio.sleep(5)
        if path.endswith("/exec") and raw.headers.get("Upgrade", "").lower() == "websocket":
            return await self._exec(raw)
        if path.endswith("/log"):
            return await self._log(raw)
        response: aiohttp.web.StreamResponse = await super().__call__(raw)
        if raw.method == "POST" and path.endswith("/pods") and response.status == 201:
            pass
        return response

    # -- selectors --------------------------------------------------------------------------

    async def _serve_list(self, request: Any) -> Any:
        found = await super()._serve_list(request)
        labels = request.params.get("labelSelector")
        fields = request.params.get("fieldSelector")
        found["items"] = [
            item
            for item in found["items"]
            if matches(labels, item.get("metadata", {}).get("labels") or {})
            and _field_match(fields, item)
        ]
        kind = (request.resource.plural or "").capitalize()
        found.setdefault("kind", f"{kind}List")
        return found

    async def _serve_watch(self, request: Any) -> Any:
        labels = request.params.get("labelSelector")
        timeout = float(request.params.get("timeoutSeconds") or 3600)
        stream = super()._serve_watch(request)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return  # the server ends the watch at timeoutSeconds, as the API server does
            try:
                event = await asyncio.wait_for(stream.__anext__(), remaining)
            except (TimeoutError, StopAsyncIteration):
                return
            if isinstance(event, dict):
                meta = event.get("object", {}).get("metadata", {})
                if not matches(labels, meta.get("labels") or {}):
                    continue
            yield event

    async def _serve_create(self, request: Any) -> Any:
        created = await super()._serve_create(request)
        if request.resource is not None and request.resource.plural == "pods":
            asyncio.get_running_loop().call_later(0.05, self._start_pod, dict(created))
        return created

    def _start_pod(self, pod: dict[str, Any]) -> None:
        status = self.cluster.pod_status(pod)
        if status is not None:
            name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
            self._pending = asyncio.ensure_future(
                self.patch("pods", name, {"status": status}, namespace)
            )

    async def patch(
        self, plural: str, name: str, change: dict[str, Any], namespace: str = NAMESPACE
    ) -> None:
        """Change an object as a controller would, with a MODIFIED event to watchers."""
        version = "batch/v1" if plural == "jobs" else "v1"
        if plural == "workflows":
            version = "argoproj.io/v1alpha1"
        key = (f"{version}/{plural}", namespace, name)
        async with self._lock:
            obj = self.objects[key]
            obj.patch(change)
            resource = next(r for (r, ns, n) in self.objects if n == name and r.plural == plural)
            await self._buses[resource].put({"type": "MODIFIED", "object": obj.raw})

    # -- logs ---------------------------------------------------------------------------------

    async def _log(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        name = raw.path.split("/")[-2]
        lines = self.cluster.logs.get(name)
        if lines is None:
            return _status(404, "NotFound", f'pods "{name}" not found')
        # The API server picks the container only when the pod has one (it ignores kubectl's
        # default-container annotation): pkg/registry/core/pod/strategy.go, LogLocation.
        pods = [
            obj.raw
            for (resource, _, stored), obj in self.objects.items()
            if resource.plural == "pods" and stored == name and not obj.deleted
        ]
        containers = [c["name"] for p in pods for c in p.get("spec", {}).get("containers", [])]
        chosen = raw.query.get("container")
        if chosen is None and len(containers) > 1:
            message = (
                f"a container name must be specified for pod {name}, "
                f"choose one of: [{' '.join(containers)}]"
            )
            return _status(400, "BadRequest", message)
        if chosen is not None and containers and chosen not in containers:
            return _status(400, "BadRequest", f"container {chosen} is not valid for pod {name}")
        tail = raw.query.get("tailLines")
        if tail is not None:
            lines = lines[-int(tail) :] if int(tail) else []
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(raw)
        for line in lines:
            await response.write(f"{line}\n".encode())
            if raw.query.get("follow") == "true":
                await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    # -- exec ---------------------------------------------------------------------------------

    async def _exec(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        command = raw.query.getall("command")
        self.cluster.exec_commands.append(command)
        socket = aiohttp.web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        await socket.prepare(raw)
        argv = [self._local(arg) for arg in command]
        if argv[0] == "workstack":
            argv = [sys.executable, "-m", "workstack", *argv[1:]]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout
        assert process.stderr
        assert process.stdin

        async def pump(stream: asyncio.StreamReader, channel: int) -> None:
            while chunk := await stream.read(65536):
                await socket.send_bytes(bytes([channel]) + chunk)

        outputs = asyncio.gather(pump(process.stdout, 1), pump(process.stderr, 2))
        dropped = asyncio.Event()

        async def feed() -> None:
            received = 0
            async for message in socket:
                if message.type != aiohttp.WSMsgType.BINARY:
                    break
                data: bytes = message.data
                if data[:2] == b"\xff\x00":
                    process.stdin.close()
                    continue
                if data[:1] != b"\x00":
                    continue
                chunk = data[1:]
                breaks = self.cluster.exec_breaks_after
                if breaks is not None and received + len(chunk) > breaks:
                    # The connection drops mid-stream: the process sees its stdin end.
                    process.stdin.write(chunk[: breaks - received])
                    process.stdin.close()
                    dropped.set()
                    return
                received += len(chunk)
                process.stdin.write(chunk)
                with contextlib.suppress(ConnectionError):
                    await process.stdin.drain()

        feeding = asyncio.ensure_future(feed())
        await outputs
        code = await process.wait()
        feeding.cancel()
        if dropped.is_set():
            await socket.close()
            return socket
        status: dict[str, Any] = {"metadata": {}, "status": "Success"}
        if code != 0:
            status = {
                "metadata": {},
                "status": "Failure",
                "message": f"command terminated with non-zero exit code: exit status {code}",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
            }
        await socket.send_bytes(b"\x03" + json.dumps(status).encode())
        await socket.close()
        return socket

    def _local(self, arg: str) -> str:
        if arg == "/data" or arg.startswith("/data/"):
            return str(self.cluster.volume_root) + arg[len("/data") :]
        return arg


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return aiohttp.web.json_response(body, status=code)


@dataclass
class ApiServer:
    """A running fake API server: its URL, what it holds, and a kubeconfig that points at it."""

    url: str
    cluster: FakeCluster
    handler: _Handler
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def patch(
        self, plural: str, name: str, change: dict[str, Any], namespace: str = NAMESPACE
    ) -> None:
        """Change an object as its controller would (watchers get MODIFIED)."""
        self.run(self.handler.patch(plural, name, change, namespace))

    def put(self, obj: dict[str, Any]) -> None:
        """Store an object as if another client had created it."""
        api = obj["apiVersion"]
        plural = {
            "Pod": "pods",
            "Event": "events",
            "Job": "jobs",
            "PersistentVolumeClaim": "persistentvolumeclaims",
            "ResourceQuota": "resourcequotas",
            "ConfigMap": "configmaps",
            "Workflow": "workflows",
        }[obj["kind"]]
        key = (
            f"{api}/{plural}",
            obj["metadata"].get("namespace", NAMESPACE),
            obj["metadata"]["name"],
        )
        self.handler.objects[key] = obj

    def stored(self, kind: str) -> list[dict[str, Any]]:
        """Objects of ``kind`` (plural) the server holds now."""
        return [
            obj.raw
            for (resource, _, _), obj in self.handler.objects.items()
            if resource.plural == kind and not obj.deleted
        ]

    def requests(self, method: str, suffix: str = "") -> list[Any]:
        """Requests received with ``method`` whose path ends with ``suffix``."""
        return [
            r for r in list(self.handler) if r.method == method and str(r.url.path).endswith(suffix)
        ]

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig whose context ``minikube`` points at this server."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "dev", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "minikube", "context": {"cluster": "fake", "user": "dev"}}],
            "current-context": "minikube",
        }
        path.write_text(yaml.safe_dump(config))
        return path


@contextlib.contextmanager
def api_server(volume_root: Path) -> Iterator[ApiServer]:
    """Start the fake API server on 127.0.0.1 in a thread; stop it afterwards."""
    ready: list[ApiServer] = []
    started = threading.Event()
    stop: list[asyncio.Event] = []
    cluster = FakeCluster(volume_root=volume_root)

    async def serve() -> None:
        stopping = asyncio.Event()
        stop.append(stopping)
        handler = _Handler()
        handler.cluster = cluster
        for resource in BUILTIN:
            handler.resources[resource] = {}
        async with handler, kmock.Server(handler, host="127.0.0.1") as server:
            ready.append(
                ApiServer(
                    url=str(server.url).rstrip("/"),
                    cluster=cluster,
                    handler=handler,
                    loop=asyncio.get_running_loop(),
                )
            )
            started.set()
            await stopping.wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    if not started.wait(timeout=30):
        raise RuntimeError("the fake API server did not start")
    server = ready[0]
    try:
        yield server
    finally:
        server.loop.call_soon_threadsafe(stop[0].set)
        thread.join(timeout=10)
