"""FUNCTIONS_WORKER_PROCESS_COUNT for the local host: queue-trigger invocations spread over N processes.

The real host keeps one listener per queue function and hands each invocation to one of its N Python worker
processes, so CPU-bound functions use more than one core. Here the host process is worker 1 and starts N-1
worker processes (`python -m devstack.host_worker`). The host's queue listener still receives, leases, renews,
deletes, retries and poisons every message exactly as with one process; only the function call itself runs in
the least busy process. HTTP, blob triggers and timers stay in the host process.

Protocol: one JSON line per invocation on the worker's stdin, one JSON line per result on its stdout. A worker
exits when its stdin closes, so it stops with the host, even one killed with SIGKILL. A worker that dies fails
its running invocations (their messages are retried like any failure) and is not restarted.
"""
from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from azure.functions.queue import QueueMessage

from .host_config import HostConfigError
from .host_invoke import FunctionSpec, InvocationFailed, Invoker

log = logging.getLogger("devstack.host")

SETTING = "FUNCTIONS_WORKER_PROCESS_COUNT"
MAX_PROCESSES = 10  # the real host's limit
HOST_PROCESS_HANDICAP = 1


class WorkerExited(Exception):
    """A worker process died (or was stopped) while an invocation ran in it."""


class RemoteFailure(Exception):
    """The function failed in a worker process; the message is the exception's type name only (no PII)."""


def process_count(value: str | None) -> int:
    """FUNCTIONS_WORKER_PROCESS_COUNT as the host reads it: 1 when unset or invalid, at most 10."""
    try:
        return max(1, min(MAX_PROCESSES, int(value or 1)))
    except ValueError:
        log.warning("%s=%r is not a number; using 1", SETTING, value)
        return 1


def suggested_process_count() -> int:
    """One worker process per core (what `make run` and the e2e bench use): resolution is Python CPU."""
    return max(1, min(MAX_PROCESSES, os.cpu_count() or 1))


# -- the message over the pipe ----------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def message_to_json(msg: QueueMessage) -> dict[str, Any]:
    return {"id": msg.id, "body": base64.b64encode(msg.get_body()).decode(), "dequeue_count": msg.dequeue_count,
            "pop_receipt": msg.pop_receipt, "inserted": _iso(msg.insertion_time),
            "expires": _iso(msg.expiration_time), "next_visible": _iso(msg.time_next_visible)}


def message_from_json(m: dict[str, Any]) -> QueueMessage:
    return QueueMessage(id=m["id"], body=base64.b64decode(m["body"]), dequeue_count=m["dequeue_count"],
                        pop_receipt=m["pop_receipt"], insertion_time=_time(m["inserted"]),
                        expiration_time=_time(m["expires"]), time_next_visible=_time(m["next_visible"]))


# -- the host side ----------------------------------------------------------------------------------------------
class _Worker:
    """One worker process and the invocations running in it."""

    def __init__(self, number: int, args: list[str], on_enqueue: Callable[[str, str], None]) -> None:
        self.number = number
        self.on_enqueue = on_enqueue
        # stderr is the host's: the worker's log lines land in the host's log
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                     cwd=os.getcwd(), env=dict(os.environ))
        self.pending: dict[int, Future] = {}
        self.alive = True
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"host-worker-{number}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout) and self.alive

    def busy(self) -> int:
        with self._lock:
            return len(self.pending)

    def submit(self, request_id: int, request: dict[str, Any]) -> Future:
        future: Future = Future()
        with self._lock:
            if not self.alive:
                raise WorkerExited(f"worker process {self.number} is not running")
            self.pending[request_id] = future
            try:
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                self.pending.pop(request_id, None)
                raise WorkerExited(f"worker process {self.number} is not running") from None
        return future

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                reply = json.loads(line)
            except ValueError:
                continue  # not ours (a stray print from user code)
            if reply.get("ready"):
                self._ready.set()
                continue
            for connection, queue in reply.get("enqueued", []):
                self.on_enqueue(connection, queue)
            with self._lock:
                future = self.pending.pop(reply.get("id"), None)
            if future is not None:
                future.set_result(reply)
        with self._lock:
            self.alive = False
            pending, self.pending = self.pending, {}
        self._ready.set()
        for future in pending.values():
            future.set_exception(WorkerExited(f"worker process {self.number} exited"))

    def close(self) -> None:
        """Close its stdin: the worker finishes what it runs (bounded by its drain timeout) and exits."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def wait(self, timeout: float) -> bool:
        try:
            self.proc.wait(max(0.0, timeout))
            return True
        except subprocess.TimeoutExpired:
            return False


class WorkerProcesses:
    """The host process plus count-1 worker processes; each queue invocation runs in the least busy one."""

    def __init__(self, count: int, app_ref: str, script_root: Path, local: Invoker,
                 on_enqueue: Callable[[str, str], None], drain_timeout: float) -> None:
        self.count = count
        self.local = local
        self._local_busy = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        args = [sys.executable, "-m", "devstack.host_worker", "--app", app_ref, "--script-root", str(script_root),
                "--drain-timeout", str(drain_timeout)]
        self.workers = [_Worker(n, [*args, "--number", str(n)], on_enqueue) for n in range(2, count + 1)]
        self._turn = itertools.cycle(range(count))

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            if not worker.wait_ready(max(0.0, deadline - time.monotonic())):
                raise HostConfigError(f"worker process {worker.number} did not start (see the host's log)")

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def _choose(self) -> _Worker | None:
        """The least busy process (None = this one); ties go round, so an idle host spreads a burst."""
        with self._lock:
            start = next(self._turn)
            # The host process also serves HTTP, blob triggers and timers, which the real host spreads over its
            # workers: it counts as one invocation busier.
            candidates: list[tuple[int, int, _Worker | None]] = [(self._local_busy + HOST_PROCESS_HANDICAP, 0, None)]
            candidates += [(w.busy(), w.number - 1, w) for w in self.workers if w.alive]
            best = min(candidates, key=lambda c: (c[0], (c[1] - start) % self.count))[2]
            if best is None:
                self._local_busy += 1
            return best

    def invoke(self, spec: FunctionSpec, msg: QueueMessage, data: dict[str, Any], reason: str,
               retry: tuple[int, int] = (0, 0)) -> None:
        """Invoker.invoke for a queue function, in whichever process is least busy. Raises InvocationFailed."""
        worker = self._choose()
        if worker is None:
            try:
                self.local.invoke(spec, msg, data, reason, retry)
            finally:
                with self._lock:
                    self._local_busy -= 1
            return
        request_id = next(self._ids)
        request = {"id": request_id, "function": spec.name, "message": message_to_json(msg), "data": data,
                   "reason": reason, "retry": list(retry)}
        try:
            reply = worker.submit(request_id, request).result()
        except WorkerExited as err:
            log.error("'Functions.%s' failed: worker process %d exited", spec.name, worker.number)
            raise InvocationFailed(f"{spec.name} failed: WorkerExited") from err
        if not reply.get("ok"):
            raise InvocationFailed(f"{spec.name} failed: {reply.get('error')}") from RemoteFailure(reply.get("error"))

    def stop(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            worker.close()
        for worker in self.workers:
            if not worker.wait(deadline - time.monotonic()):
                log.warning("worker process %d did not stop in time: killed", worker.number)
                worker.proc.kill()
                worker.wait(5)
