"""Executor processes: where a worker's tasks run, apart from the process that owns the connection.

A worker's main process only talks AMQP; each task runs in an executor, a child process that
runs one task at a time. A task that holds the GIL (a C call that never releases it) then
stops nothing but its executor: the main process keeps answering heartbeats. A task that
crashes its process (a segfault, ``os._exit``) costs an executor, not the worker.

The two talk over a pair of pipes in frames of ``<length:u32><kind:1 byte><payload>``:

- main -> executor: ``T`` a task (``<seq:u64><attempt:u32><final:u8>`` and the message body),
  ``C`` hand back every task received but not started (each is answered ``skipped``);
- executor -> main: ``O`` an outcome (``<seq:u64><status:u8>`` and a JSON object with
  ``error`` and ``exit``, or nothing).

While more tasks wait in its pipe, an executor sends outcomes in batches (one write, one
wake-up of the main process for several tasks), as the main process acknowledges them
together anyway.

An executor leads its own process group, and the commands it runs stay in it. It asks the
kernel for SIGTERM when the worker dies (``PR_SET_PDEATHSIG``); its handler then kills the
whole group, commands included, so no command outlives its worker (when the executor itself
is killed, the worker kills the group). The worker stops a running command (timeout, end of
the SIGTERM grace period) by signalling the group; the executor ignores that signal while
the worker is alive.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import struct
import subprocess
import sys
from collections import deque
from typing import Any

from workstack.sdk.queue.execution import Outcome, TaskRunner, task_environment
from workstack.sdk.storage import open_storage

__all__ = ["STATUSES", "Executor", "main"]

STATUSES = ("done", "cached", "failed", "interrupted", "skipped")
_CODE = {status: code for code, status in enumerate(STATUSES)}
_LENGTH = struct.Struct("<I")
_TASK = struct.Struct("<QIB")
_OUTCOME = struct.Struct("<QB")
_PR_SET_PDEATHSIG = 1


def _frame(kind: bytes, payload: bytes = b"") -> bytes:
    return _LENGTH.pack(len(payload) + 1) + kind + payload


class _Reader:
    """Splits the bytes of a non-blocking pipe into frames."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()
        self.closed = False

    def read(self) -> list[bytes]:
        """The complete frames available now (``closed`` is set at end of file)."""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            if not chunk:
                self.closed = True
                break
            self._buffer += chunk
            if len(chunk) < 1 << 16:
                break
        frames = []
        buffer = self._buffer
        offset = 0
        while len(buffer) - offset >= 4:
            (size,) = _LENGTH.unpack_from(buffer, offset)
            if len(buffer) - offset - 4 < size:
                break
            frames.append(bytes(buffer[offset + 4 : offset + 4 + size]))
            offset += 4 + size
        del buffer[:offset]
        return frames


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        except InterruptedError:
            continue
        view = view[written:]


# -- the main process's side -------------------------------------------------------------------


class Executor:
    """A handle on one executor process, kept by the worker's main process.

    Args:
        storage_url: The queue set's storage.
        work_dir: The folder commands run in.
        worker: The worker's name (in result records).
        batch: Outcomes an executor may hold back while it has more tasks waiting.
    """

    def __init__(self, storage_url: str, work_dir: str, worker: str, batch: int) -> None:
        task_read, task_write = os.pipe()
        reply_read, reply_write = os.pipe()
        command = [
            sys.executable,
            "-m",
            "workstack.sdk.queue.executor",
            str(task_read),
            str(reply_write),
            str(os.getpid()),
            storage_url,
            work_dir,
            worker,
            str(batch),
        ]
        try:
            self.process = subprocess.Popen(
                command,
                pass_fds=(task_read, reply_write),
                start_new_session=True,
                env=task_environment(),  # calls run here: no broker password for them
            )
        finally:
            os.close(task_read)
            os.close(reply_write)
        self._task_fd = task_write
        os.set_blocking(reply_read, False)
        self._reader = _Reader(reply_read)
        self.pid = self.process.pid

    def fileno(self) -> int:
        """The pipe its outcomes come from."""
        return self._reader.fd

    def send(self, seq: int, attempt: int, final: bool, body: bytes) -> None:
        """Queue a task for it."""
        _write_all(self._task_fd, _frame(b"T", _TASK.pack(seq, attempt, final) + body))

    def send_many(self, tasks: list[tuple[int, int, bool, bytes]]) -> None:
        """Queue several tasks with one write."""
        _write_all(
            self._task_fd,
            b"".join(
                _frame(b"T", _TASK.pack(seq, attempt, final) + body)
                for seq, attempt, final, body in tasks
            ),
        )

    def cancel_pending(self) -> None:
        """Have it hand back (as ``skipped``) every task it has not started."""
        with contextlib.suppress(OSError):
            _write_all(self._task_fd, _frame(b"C"))

    def outcomes(self) -> list[tuple[int, Outcome]]:
        """The outcomes it has sent; ``closed`` is true once it is gone."""
        found = []
        for frame in self._reader.read():
            if frame[:1] != b"O":
                continue
            seq, code = _OUTCOME.unpack_from(frame, 1)
            extra = json.loads(frame[1 + _OUTCOME.size :] or b"{}")
            found.append(
                (
                    seq,
                    Outcome(STATUSES[code], extra.get("error", ""), extra.get("exit", 0)),  # type: ignore[arg-type]
                )
            )
        return found

    @property
    def closed(self) -> bool:
        """Its outcome pipe reached end of file: the process is gone."""
        return self._reader.closed

    def signal_group(self, signum: int) -> None:
        """Signal the executor and everything it started (its process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def close(self, *, kill: bool = False) -> None:
        """End it: close its task pipe (it exits when idle) or kill its whole group."""
        with contextlib.suppress(OSError):
            os.close(self._task_fd)
        if kill:
            self.signal_group(signal.SIGKILL)
        try:
            self.process.wait(timeout=None if kill else 10)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.process.wait()
        # Commands it left (killed executor): they die with their group.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.close(self._reader.fd)

    def exit_description(self) -> str:
        """How the process ended, for an error message (its pipe closing comes first)."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            return "is still running"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with status {code}"


# -- the executor process ------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    def on_term(_signum: int, _frame: Any) -> None:
        if os.getppid() != parent:
            # The worker is gone: take every command of this group along (and this process).
            os.killpg(0, signal.SIGKILL)
        # Otherwise the worker is stopping a command of this group; the command reacts.

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request took effect
        os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> None:
    """Run tasks from the worker until its pipe closes (see the module docstring)."""
    task_fd, reply_fd, parent = int(argv[0]), int(argv[1]), int(argv[2])
    storage_url, work_dir, worker, batch = argv[3], argv[4], argv[5], int(argv[6])
    _die_with_parent(parent)
    runner = TaskRunner(open_storage(storage_url), worker, work_dir)
    os.set_blocking(task_fd, False)
    reader = _Reader(task_fd)
    pending: deque[bytes] = deque()
    replies: list[bytes] = []

    def take() -> None:
        for frame in reader.read():
            if frame[:1] == b"C":
                while pending:
                    (seq,) = struct.unpack_from("<Q", pending.popleft(), 1)
                    replies.append(_frame(b"O", _OUTCOME.pack(seq, _CODE["skipped"])))
            else:
                pending.append(frame)

    while True:
        take()
        if not pending:
            if replies:
                _write_all(reply_fd, b"".join(replies))
                replies.clear()
            if reader.closed:
                return
            select.select([task_fd], [], [])
            continue
        frame = pending.popleft()
        seq, attempt, final = _TASK.unpack_from(frame, 1)
        try:
            message = json.loads(frame[1 + _TASK.size :])
            outcome = runner.run(message, attempt=attempt, final=bool(final))
        except Exception as error:  # the storage is unreachable, say
            outcome = Outcome("failed", f"worker error: {type(error).__name__}: {error}")
        extra = b""
        if outcome.error or outcome.exit:
            extra = json.dumps({"error": outcome.error, "exit": outcome.exit}).encode()
        replies.append(_frame(b"O", _OUTCOME.pack(seq, _CODE[outcome.status]) + extra))
        # Hold outcomes back while more work is at hand, up to the batch size: the worker
        # acknowledges them together.
        if len(replies) >= batch or not pending:
            take()
            if len(replies) >= batch or not pending:
                _write_all(reply_fd, b"".join(replies))
                replies.clear()


if __name__ == "__main__":
    main(sys.argv[1:])
