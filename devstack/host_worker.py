"""A worker process of the local host (FUNCTIONS_WORKER_PROCESS_COUNT > 1); started by the host, not by hand.

    python -m devstack.host_worker --app function_app:app --script-root . --number 2

Loads the app, then runs the queue-trigger invocations the host sends on stdin (one JSON line each, see
devstack/host_workers.py), each on its own thread, and answers on stdout. Output bindings are written here,
as the real worker does. Ctrl-C is left to the host: the worker stops when its stdin closes, after letting
running invocations finish (bounded by --drain-timeout).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from .host import app_functions, load_app
from .host_config import AppSettings, Connections, HostConfig
from .host_invoke import FunctionSpec, InvocationFailed, Invoker, load_spec
from .host_workers import message_from_json

log = logging.getLogger("devstack.host")


class Worker:
    def __init__(self, app_ref: str, script_root: Path, channel: TextIO) -> None:
        app, root = load_app(app_ref, script_root)
        settings = AppSettings(root)
        settings.export_local_values()
        config = HostConfig.load(root)
        self.invoker = Invoker(Connections(settings), config.queues.message_encoding)
        self._enqueued = threading.local()
        self.invoker.on_enqueue = self._note_enqueue
        specs = [load_spec(fn, settings, str(root)) for fn in app_functions(app)]
        self.functions: dict[str, FunctionSpec] = {s.name: s for s in specs
                                                   if s.error is None and s.trigger_type == "queueTrigger"}
        self.channel = channel
        self._write_lock = threading.Lock()
        self.running: set[threading.Thread] = set()

    def _note_enqueue(self, connection: str, queue: str) -> None:
        self._enqueued.items.append((connection, queue))

    def send(self, reply: dict[str, Any]) -> None:
        with self._write_lock:
            self.channel.write(json.dumps(reply) + "\n")
            self.channel.flush()

    def serve(self, requests: TextIO) -> None:
        self.send({"ready": True, "pid": os.getpid()})
        for line in requests:
            try:
                request = json.loads(line)
            except ValueError:
                log.error("worker: unreadable request ignored")
                continue
            thread = threading.Thread(target=self._run, args=(request,), name="worker-invoke", daemon=True)
            self.running = {t for t in self.running if t.is_alive()} | {thread}
            thread.start()

    def _run(self, request: dict[str, Any]) -> None:
        self._enqueued.items = []
        reply: dict[str, Any] = {"id": request.get("id"), "ok": False}
        try:
            spec = self.functions[request["function"]]
            self.invoker.invoke(spec, message_from_json(request["message"]), request["data"], request["reason"],
                                tuple(request["retry"]))
            reply["ok"] = True
        except InvocationFailed as err:  # logged by the invoker
            reply["error"] = type(err.__cause__).__name__
        except Exception as err:  # a bad request: fail it, keep serving
            log.error("worker: request failed before invoking: %s", type(err).__name__)
            reply["error"] = type(err).__name__
        reply["enqueued"] = self._enqueued.items
        self.send(reply)

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self.running):
            thread.join(max(0.0, deadline - time.monotonic()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.host_worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default="function_app:app")
    parser.add_argument("--script-root", required=True)
    parser.add_argument("--number", type=int, default=2)
    parser.add_argument("--drain-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the host decides when we stop
    # stdout carries the protocol: keep it for that, and send anything user code prints to stderr (the log)
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"[%(asctime)s] [worker {args.number}] %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    worker = Worker(args.app, Path(args.script_root), channel)
    worker.serve(sys.stdin)  # returns when the host closes our stdin (or dies)
    worker.drain(args.drain_timeout)
    channel.flush()
    os._exit(0)  # stuck user code must not keep the process alive; its messages reappear after the lease


if __name__ == "__main__":
    sys.exit(main())
