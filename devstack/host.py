"""A local Azure Functions host for the Python v2 programming model, for machines without Core Tools.

    python -m devstack.host --app function_app:app --port 7071 [--no-timers]

It imports the app, reads what `app.get_functions()` declares and serves it with the real host's semantics:
HTTP routes with auth levels, blob triggers (once per blob version, persisted receipts, poison after 5
failures), queue triggers (host.json extensions.queues, Base64, `<queue>-poison`), timers (NCRONTAB in UTC,
run_on_startup, use_monitor), queue and blob output bindings, `%APP_SETTING%` binding expressions and the admin
endpoint that runs any non-HTTP function now. SIGINT/SIGTERM stop polling and let running invocations finish
(bounded); unfinished queue messages reappear after their lease. See docs/local-host.md for what it does not do.

In-process use (tests, benches):

    with LocalHost("function_app:app", port=0) as host:
        requests.get(f"{host.url}/api/health")
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from .host_blob import BlobTriggerListener
from .host_config import AppSettings, Connections, HostConfig, HostConfigError
from .host_http import Keys, Router, serve
from .host_invoke import FunctionSpec, InvocationFailed, Invoker, load_spec
from .host_queue import QueueListener
from .host_timer import TimerRunner, TimerStatusStore
from .host_workers import SETTING as WORKER_PROCESS_COUNT, WorkerProcesses, process_count

log = logging.getLogger("devstack.host")

SUPPORTED_TRIGGERS = ("httpTrigger", "blobTrigger", "queueTrigger", "timerTrigger")
_FUNCTIONS: dict[int, tuple[Any, list]] = {}


def app_functions(app: Any) -> list:
    """app.get_functions(), called once per app object (a second call raises in azure-functions 1.x)."""
    cached = _FUNCTIONS.get(id(app))
    if cached is None or cached[0] is not app:
        try:
            functions = app.get_functions()
        except ValueError:  # someone else called it already: reset the registry it keeps, as NOTES verified
            app.functions_bindings = None
            functions = app.get_functions()
        cached = _FUNCTIONS[id(app)] = (app, functions)
    return cached[1]


def load_app(app_ref: str, script_root: Path | None) -> tuple[Any, Path]:
    """Import `module:attribute`; the script root (host.json, local.settings.json) defaults to the module's folder."""
    module_name, _, attribute = app_ref.partition(":")
    for folder in filter(None, (str(script_root) if script_root else None, os.getcwd())):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    module = importlib.import_module(module_name)
    app = getattr(module, attribute or "app", None)
    if app is None or not hasattr(app, "get_functions"):
        raise HostConfigError(f"{app_ref}: no FunctionApp named '{attribute or 'app'}' in module {module_name}")
    return app, Path(script_root or Path(module.__file__).resolve().parent)


def default_host_id(app_ref: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", app_ref.lower()).strip("-")[:32] or "local-host"


class LocalHost:
    def __init__(self, app_ref: str = "function_app:app", *, address: str = "127.0.0.1", port: int = 7071,
                 script_root: str | Path | None = None, timers: bool = True,
                 app_settings: Mapping[str, str] | None = None, host_id: str | None = None,
                 blob_poll_interval: float = 1.0, queue_lease: int = 30, drain_timeout: float = 10.0,
                 worker_processes: int | None = None) -> None:
        self.app_ref = app_ref
        self.address = address
        self.port = port
        self.script_root = Path(script_root) if script_root else None
        self.timers_enabled = timers
        self.app_settings = dict(app_settings or {})
        self.host_id = host_id or default_host_id(app_ref)
        self.blob_poll_interval = blob_poll_interval
        self.queue_lease = queue_lease
        self.drain_timeout = drain_timeout
        self.worker_processes = worker_processes  # None: the FUNCTIONS_WORKER_PROCESS_COUNT app setting
        self.workers: WorkerProcesses | None = None
        self.stopping = threading.Event()
        self.halted = threading.Event()  # set after the drain: queue leases are renewed until then
        self.functions: list[FunctionSpec] = []
        self.queue_listeners: list[QueueListener] = []
        self.timers: dict[str, TimerRunner] = {}
        self.blob_listener: BlobTriggerListener | None = None
        self._admin_runs: set[threading.Thread] = set()
        self._http_active = 0
        self._lock = threading.Lock()
        self._saved_env: dict[str, str | None] = {}
        self._started_at = 0.0
        self._server = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> "LocalHost":
        self._started_at = time.monotonic()
        self._export_settings()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _export_settings(self) -> None:
        for name, value in self.app_settings.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = str(value)

    def _start(self) -> None:
        app, root = load_app(self.app_ref, self.script_root)
        self.script_root = root
        self.settings = AppSettings(root)
        for name in self.settings.export_local_values():
            self._saved_env.setdefault(name, None)
        self.config = HostConfig.load(root)
        self.connections = Connections(self.settings)
        self.keys = Keys((self.settings.get("UCP_HOST_FUNCTION_KEYS") or "").split(","),
                         self.settings.get("UCP_HOST_MASTER_KEY"))
        self.invoker = Invoker(self.connections, self.config.queues.message_encoding)
        self.invoker.on_enqueue = self._wake_listeners
        self.functions = [load_spec(fn, self.settings, str(root)) for fn in app_functions(app)]
        for spec in self.functions:
            if spec.error is None:
                spec.error = self._check(spec)
        ok = [s for s in self.functions if s.error is None]
        self.router = Router([s for s in ok if s.trigger_type == "httpTrigger"], self.config.route_prefix)
        self._server, _ = serve(self, self.address, self.port)
        self.port = self._server.server_address[1]
        self._start_triggers(ok)

    def _check(self, spec: FunctionSpec) -> str | None:
        """Why this function cannot run here (it is then listed as in error, like the real host), or None."""
        kind = spec.trigger_type
        if kind not in SUPPORTED_TRIGGERS:
            return f"trigger type '{kind}' is not emulated by the local host"
        try:
            if kind in ("blobTrigger", "queueTrigger"):
                self.connections.get(spec.trigger.attrs.get("connection"))
            if kind == "blobTrigger" and "/" not in spec.trigger.attrs.get("path", "").strip("/"):
                return f"blob trigger path {spec.trigger.attrs.get('path')!r} must be 'container/pattern'"
            for b in spec.bindings:
                if b.type in ("queue", "blob"):
                    self.connections.get(b.attrs.get("connection"))
                elif b.type not in ("http", kind):
                    return f"binding '{b.name}' of type '{b.type}' is not emulated by the local host"
        except HostConfigError as err:
            return str(err)
        return None

    def _start_triggers(self, specs: list[FunctionSpec]) -> None:
        host_storage = None
        blob_specs = [s for s in specs if s.trigger_type == "blobTrigger"]
        timer_specs = [s for s in specs if s.trigger_type == "timerTrigger"]
        if blob_specs or timer_specs:
            host_storage = self.connections.get("AzureWebJobsStorage")
        if blob_specs:
            self.blob_listener = BlobTriggerListener(blob_specs, self.invoker, self.connections,
                                                     self.config.queues, self.host_id, self.blob_poll_interval,
                                                     self.stopping)
            self.blob_listener.start()
        queue_specs = [s for s in specs if s.trigger_type == "queueTrigger"]
        count = self.worker_processes or process_count(self.settings.get(WORKER_PROCESS_COUNT))
        if queue_specs and count > 1:
            self.workers = WorkerProcesses(count, self.app_ref, self.script_root, self.invoker, self._wake_listeners,
                                           self.drain_timeout)
            self.workers.wait_ready()
        for spec in queue_specs:
            listener = QueueListener(spec, self.connections.get(spec.trigger.attrs.get("connection")),
                                     self.workers or self.invoker, self.config.queues, self.queue_lease,
                                     self.stopping, self.halted)
            self.queue_listeners.append(listener)
            listener.start()
        status_store = TimerStatusStore(host_storage, self.host_id) if timer_specs else None
        for spec in timer_specs:
            try:
                runner = TimerRunner(spec, self.invoker, status_store, self.stopping)
            except HostConfigError as err:
                spec.error = str(err)
                continue
            self.timers[spec.name] = runner
            if self.timers_enabled:
                runner.start()

    def stop(self) -> int:
        """Stop polling and serving, wait (bounded) for running invocations. Returns how many did not finish."""
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        deadline = time.monotonic() + self.drain_timeout
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.05)
        unfinished = self.in_flight()
        self.halted.set()  # only now: a message still running then reappears after its lease
        for listener in self.queue_listeners:
            listener.join(max(0.0, deadline - time.monotonic()))
        if self.workers is not None:
            self.workers.stop(max(1.0, deadline - time.monotonic()))
        if getattr(self, "invoker", None) is not None:
            self.invoker.close()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if unfinished:
            log.warning("Host stopped with %d invocation(s) still running; their queue messages reappear after "
                        "the lease (%d s)", unfinished, self.queue_lease)
        else:
            log.info("Host stopped")
        return unfinished

    def in_flight(self) -> int:
        with self._lock:
            count = self._http_active + sum(1 for t in self._admin_runs if t.is_alive())
        count += sum(listener.in_flight() for listener in self.queue_listeners)
        count += len(self.blob_listener.in_flight()) if self.blob_listener else 0
        count += sum(1 for runner in self.timers.values() if runner.busy())
        return count

    def __enter__(self) -> "LocalHost":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- what the HTTP layer calls --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def http_started(self) -> None:
        with self._lock:
            self._http_active += 1

    def http_finished(self) -> None:
        with self._lock:
            self._http_active -= 1

    def _wake_listeners(self, connection: str, queue: str) -> None:
        for listener in self.queue_listeners:
            if listener.connection.name == connection and listener.queue_name == queue:
                listener.notify()

    def find(self, name: str) -> FunctionSpec | None:
        return next((s for s in self.functions if s.name.lower() == name.lower()), None)

    def status(self) -> dict[str, Any]:
        return {"id": self.host_id, "state": "Stopping" if self.stopping.is_set() else "Running",
                "version": "ucp-local-host", "processUptime": int((time.monotonic() - self._started_at) * 1000),
                "errors": [f"{s.name}: {s.error}" for s in self.functions if s.error]}

    def function_list(self) -> list[dict[str, Any]]:
        return [{"name": s.name, "trigger": s.trigger_type, "error": s.error, "isAsync": s.is_async,
                 "bindings": [{**b.attrs} for b in s.bindings]} for s in self.functions]

    def run_admin(self, name: str, value: Any) -> tuple[int, str]:
        """POST /admin/functions/<name>: run a non-HTTP function now, in the background (202 like the host)."""
        spec = self.find(name)
        if spec is None:
            return 404, f"no function named {name}"
        if spec.error:
            return 409, f"function {spec.name} is in error: {spec.error}"
        if spec.trigger_type == "httpTrigger":
            return 400, f"{spec.name} is an HTTP function: call its route instead"
        text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
        worker = threading.Thread(target=self._run_admin, args=(spec, text), name=f"admin-{spec.name}", daemon=True)
        with self._lock:
            self._admin_runs = {t for t in self._admin_runs if t.is_alive()} | {worker}
        worker.start()
        return 202, ""

    def _run_admin(self, spec: FunctionSpec, text: str) -> None:
        from azure.functions.queue import QueueMessage

        from .host_blob import blob_argument, path_regex

        reason = "This function was programmatically called via the host APIs."
        try:
            if spec.trigger_type == "timerTrigger":
                self.timers[spec.name].run_now(reason=reason)
            elif spec.trigger_type == "queueTrigger":
                now = datetime.now(timezone.utc)
                message = QueueMessage(id=f"admin-{time.time_ns()}", body=text.encode("utf-8"), dequeue_count=1,
                                       insertion_time=now, expiration_time=None, time_next_visible=now,
                                       pop_receipt=None)
                self.invoker.invoke(spec, message, {"QueueTrigger": text}, reason)
            elif spec.trigger_type == "blobTrigger":
                container, _, name = text.partition("/")
                client = self.connections.get(spec.trigger.attrs.get("connection")).blob_service \
                    .get_blob_client(container, name)
                props = client.get_blob_properties()
                pattern = spec.trigger.attrs["path"].partition("/")[2]
                match = path_regex(pattern).match(name)
                data = {**(match.groupdict() if match else {}), "BlobTrigger": text, "Uri": client.url}
                self.invoker.invoke(spec, blob_argument(client, props, spec.param_types.get(spec.trigger.name),
                                                        container), data, reason)
        except InvocationFailed:
            pass  # logged by the invoker
        except Exception as err:
            log.error("admin run of %s failed before invoking: %s", spec.name, type(err).__name__)

    def deliver_blob_events(self, name: str, events: list[dict]) -> int:
        """Event Grid BlobCreated events for a blob-triggered function (the webhook the real host exposes)."""
        spec = self.find(name)
        if spec is None or spec.trigger_type != "blobTrigger" or self.blob_listener is None:
            return 404
        for event in events:
            if event.get("eventType") != "Microsoft.Storage.BlobCreated":
                continue
            subject = str(event.get("subject") or "")
            m = re.match(r"^/blobServices/default/containers/([^/]+)/blobs/(.+)$", subject)
            if m:
                self.blob_listener.deliver(spec.name, m.group(1), m.group(2))
        return 202

    # -- description ----------------------------------------------------------------------------------------
    def describe(self) -> list[str]:
        lines = []
        for spec in self.functions:
            a = spec.trigger.attrs
            if spec.error:
                detail = f"[error] {spec.error}"
            elif spec.trigger_type == "httpTrigger":
                route = next(r for r in self.router.routes if r.spec is spec)
                methods = ",".join(sorted(route.methods)) or "ALL"
                prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
                detail = f"[{methods}] {self.url}{prefix}/{route.template} (auth: {route.auth_level})"
            elif spec.trigger_type == "blobTrigger":
                source = " from EventGrid (served by polling)" if a.get("source") == "EventGrid" else ""
                detail = f"blobTrigger on {a['path']}{source}"
            elif spec.trigger_type == "queueTrigger":
                detail = f"queueTrigger on {a['queueName']}"
            else:
                runner = self.timers.get(spec.name)
                detail = runner.describe() if runner else f"timerTrigger ({a.get('schedule')})"
                if not self.timers_enabled:
                    detail += " [schedule off: --no-timers]"
            outs = [f"{b.type} -> {b.attrs.get('queueName') or b.attrs.get('path')}" for b in spec.outputs]
            lines.append(f"        {spec.name}: {detail}" + (f"; outputs: {', '.join(outs)}" if outs else ""))
        return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.host", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--script-root", help="folder with host.json and local.settings.json "
                                              "(default: the app module's folder)")
    parser.add_argument("--no-timers", action="store_true", help="do not run timer schedules "
                                                                   "(the admin endpoint still runs them)")
    parser.add_argument("--host-id", help="names this host's blob receipts and timer status (default: from --app)")
    parser.add_argument("--blob-poll-interval", type=float, default=1.0, help="seconds between blob scans")
    parser.add_argument("--queue-lease", type=int, default=30,
                        help="seconds a running message stays invisible between renewals")
    parser.add_argument("--drain-timeout", type=float, default=10.0,
                        help="seconds to let running invocations finish on shutdown")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stdout,
                        format="[%(asctime)s] %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    host = LocalHost(args.app, address=args.address, port=args.port, script_root=args.script_root,
                     timers=not args.no_timers, host_id=args.host_id, blob_poll_interval=args.blob_poll_interval,
                     queue_lease=args.queue_lease, drain_timeout=args.drain_timeout)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        host.start()
    except (HostConfigError, ImportError, OSError) as err:
        print(f"error: the host could not start: {err}", file=sys.stderr)
        return 1
    print("\nFunctions:\n", flush=True)
    for line in host.describe():
        print(line)
    if not host.keys.configured:
        print("\nNo keys configured (UCP_HOST_FUNCTION_KEYS, UCP_HOST_MASTER_KEY): every auth level is allowed "
              "without a key, as under func start.")
    if host.workers is not None:
        print(f"\nQueue triggers run in {host.workers.count} processes ({WORKER_PROCESS_COUNT}): this one and "
              f"worker processes {', '.join(map(str, host.workers.pids))}")
    print(f"\nHost started on {host.url} (id {host.host_id})", flush=True)
    while not stop.wait(1.0):
        pass
    print("Stopping: no new work is taken; waiting for running invocations", flush=True)
    unfinished = host.stop()
    sys.stdout.flush()
    if unfinished:
        os._exit(0)  # stuck user code must not keep the process alive; its messages reappear after the lease
    return 0


if __name__ == "__main__":
    sys.exit(main())
