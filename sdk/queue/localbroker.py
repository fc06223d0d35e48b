"""A private RabbitMQ node on 127.0.0.1 for local runs, the demo, tests and benchmarks.

It runs Debian's ``rabbitmq-server`` (scripts/deps/rabbitmq.sh installs it) as the current
user with its own node name, data folder, Erlang cookie and free ports (AMQP, distribution,
epmd), so it never meets the system service or another test run.

Workers run the commands their messages name, so publishing to the node must take a password:
the node has no ``guest`` user, only one made for it with a random password (RabbitMQ's
``default_user``/``default_pass``, created when the node first boots). The password is in the
config file and the URL only, both readable by this user alone (the folder is 0700).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from workstack.sdk.errors import WorkstackError

__all__ = ["BrokerUnavailableError", "LocalBroker", "private_broker"]

_DEFAULT_HOST, _DEFAULT_PORT = "127.0.0.1", 5672

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
# consumer_timeout above the longest test task: a task is never cut off by the broker.
# default_user/default_pass replace guest/guest (https://www.rabbitmq.com/docs/access-control).
_CONFIG = """\
default_user = {user}
default_pass = {password}
consumer_timeout = 600000
log.console = false
log.file.level = warning
"""


class BrokerUnavailableError(WorkstackError, RuntimeError):
    """rabbitmq-server is not installed or did not start; the message says which."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalBroker:
    """One RabbitMQ node, started by :meth:`start` and removed by :meth:`stop`."""

    def __init__(self, root: Path | None = None) -> None:
        if not (RABBITMQ_BIN / "rabbitmq-server").exists():
            raise BrokerUnavailableError(
                f"{RABBITMQ_BIN / 'rabbitmq-server'} not found; install it with "
                "scripts/deps/rabbitmq.sh (make system-deps)"
            )
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="workstack-rabbitmq-")) if root is None else root
        self.port = _free_port()
        self.node = f"ws{uuid.uuid4().hex[:8]}@localhost"
        self.user = f"workstack-{uuid.uuid4().hex[:8]}"
        self.password = secrets.token_hex(24)
        self.env = self._environment()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """OS process id of the running node (the Erlang VM)."""
        return int((self.root / "rabbitmq.pid").read_text().strip())

    @property
    def url(self) -> str:
        """AMQP URL of the node, with its generated user and password."""
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}/%2F"

    def _environment(self) -> dict[str, str]:
        config = self.root / "rabbitmq.conf"
        config.touch(mode=0o600)
        config.write_text(_CONFIG.format(user=self.user, password=self.password))
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq-env.conf").write_text("")
        env = {key: value for key, value in os.environ.items() if not key.startswith("RABBITMQ_")}
        env.update(
            HOME=str(self.root),  # the Erlang cookie lives here, shared by server and CLI
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(_free_port()),
            ERL_EPMD_PORT=str(_free_port()),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_CONF_ENV_FILE=str(self.root / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(self.root / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.root / "log"),
            RABBITMQ_PID_FILE=str(self.root / "rabbitmq.pid"),
            RABBITMQ_PLUGINS_EXPAND_DIR=str(self.root / "plugins-expand"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def start(self, timeout: float = 90.0) -> None:
        """Start the node and wait until it accepts AMQP connections."""
        log = (self.root / "server.out").open("wb")
        self._process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,
        )
        try:
            self.ctl("wait", "--timeout", str(int(timeout)), str(self.root / "rabbitmq.pid"))
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def ctl(self, *args: str, timeout: float = 120.0) -> str:
        """Run ``rabbitmqctl`` against this node; raise with its output if it fails."""
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            tail = (self.root / "server.out").read_text(errors="replace")[-2000:]
            raise BrokerUnavailableError(
                f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): {done.stdout}"
                f"{done.stderr}\nserver output:\n{tail}"
            )
        return done.stdout

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until an AMQP connection opens."""
        import pika

        deadline = time.monotonic() + timeout
        while True:
            try:
                pika.BlockingConnection(pika.URLParameters(self.url)).close()
                return
            except Exception as error:
                if time.monotonic() > deadline:
                    raise BrokerUnavailableError(
                        f"broker not ready after {timeout} s: {error}"
                    ) from None
                time.sleep(0.2)

    def stop_app(self) -> None:
        """Stop RabbitMQ inside the running node: every connection drops, queues stay."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        """Start RabbitMQ again after :meth:`stop_app` and wait until it is ready."""
        self.ctl("start_app")
        self.wait_ready()

    def stop(self) -> None:
        """Stop the node and its epmd, and remove its data (if the folder was ours)."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(Exception):
                self.ctl("stop", timeout=60)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, 9)
                self._process.wait()
        self._process = None
        # rabbitmq-server started an epmd of its own on our port; it outlives the node.
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        with contextlib.suppress(Exception):
            subprocess.run(
                [epmd, "-port", self.env["ERL_EPMD_PORT"], "-kill"],
                env=self.env,
                capture_output=True,
                timeout=10,
                check=False,
            )
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


@contextlib.contextmanager
def private_broker(announce: Callable[[str], None]) -> Iterator[str]:
    """Yield a broker URL for a local run.

    A RabbitMQ listening on 127.0.0.1:5672 if there is one, else a private node started now
    and removed afterwards (as ``workstack demo`` does).

    Raises:
        BrokerUnavailableError: Nothing listens on 5672 and rabbitmq-server is not installed
            (``scripts/deps/rabbitmq.sh``) or did not start.
    """
    if _listening(_DEFAULT_HOST, _DEFAULT_PORT):
        announce(f"using the RabbitMQ on {_DEFAULT_HOST}:{_DEFAULT_PORT}")
        yield f"amqp://{_DEFAULT_HOST}:{_DEFAULT_PORT}"
        return
    announce("starting a private RabbitMQ node on 127.0.0.1 for this run")
    broker = LocalBroker()
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()
