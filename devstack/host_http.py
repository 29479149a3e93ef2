"""HTTP for the local host: routes like the real host (ASP.NET-style templates), auth levels, admin endpoints.

- `http://<host>:<port>/<routePrefix>/<route>`; templates with `{id}`, `{id:int}`, `{id?}`, `{*rest}` and
  literal segments matched case-insensitively, literal routes before parameterised ones, catch-alls last.
- A known route called with a method it does not declare answers 404, as the real host does (not 405).
- Keys: function keys (`UCP_HOST_FUNCTION_KEYS`, comma separated) and the master key (`UCP_HOST_MASTER_KEY`),
  given as `?code=` or the `x-functions-key` header; 401 without a valid one. With no keys configured every
  level is open, as under `func start`.
- An unhandled exception answers 500 with an empty body; the failure is logged (type and place, no payload).
- Admin: `POST /admin/functions/<name>` {"input": "..."} runs a non-HTTP function now (202);
  `GET /admin/host/status`, `GET /admin/functions` (master key), `GET /admin/host/ping` (open), and the Event
  Grid blob webhook `POST /runtime/webhooks/blobs?functionName=Host.Functions.<name>`.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import azure.functions as func

from .host_invoke import FunctionSpec, InvocationFailed

if TYPE_CHECKING:
    from .host import LocalHost

log = logging.getLogger("devstack.host")

MAX_BODY = 100 * 1024 * 1024  # the real host's request size limit
_PARAM = re.compile(r"\{([^{}]+)\}")
_CONSTRAINTS = {
    "int": r"-?\d+", "long": r"-?\d+", "bool": r"(?:true|false)", "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
    "double": r"-?\d+(?:\.\d+)?", "float": r"-?\d+(?:\.\d+)?", "decimal": r"-?\d+(?:\.\d+)?",
}


@dataclass
class Route:
    spec: FunctionSpec
    template: str
    regex: re.Pattern
    methods: frozenset[str]
    auth_level: str
    checks: list[Callable[[dict[str, str]], bool]]
    precedence: tuple

    def allows(self, method: str) -> bool:
        return not self.methods or method in self.methods


def compile_route(spec: FunctionSpec) -> Route:
    attrs = spec.trigger.attrs
    template = (attrs.get("route") or spec.name).strip("/")
    regex, checks, precedence = [], [], []
    for i, segment in enumerate(template.split("/") if template else []):
        sep = "/" if i else ""
        catch_all = re.fullmatch(r"\{\*\*?([^{}:=?]+)(?::[^{}]*)?\}", segment)
        optional = re.fullmatch(r"\{([^{}:=?*]+)(?::([^{}]*))?(\?|=[^{}]*)\}", segment)
        if catch_all:
            regex.append(f"(?:{sep}(?P<{catch_all.group(1)}>.*))?")
            precedence.append(4)
        elif optional:
            regex.append(f"(?:{sep}{_segment_regex(segment, checks)})?")
            precedence.append(3)
        else:
            regex.append(sep + _segment_regex(segment, checks))
            params = _PARAM.findall(segment)
            precedence.append(0 if not params else 1 if all(":" in p for p in params) else 2)
    methods = frozenset(str(m).upper() for m in (attrs.get("methods") or []))
    return Route(spec, template, re.compile("^" + "".join(regex) + "$", re.IGNORECASE), methods,
                 str(attrs.get("authLevel") or "function").lower(), checks, (tuple(precedence), -len(precedence)))


def _segment_regex(segment: str, checks: list) -> str:
    out = []
    for part in re.split(r"(\{[^{}]+\})", segment):
        if not part.startswith("{"):
            out.append(re.escape(part))
            continue
        body = part[1:-1].rstrip("?")
        name, _, default = body.partition("=")
        name, *constraints = name.split(":")
        pattern = "[^/]+"
        for c in constraints:
            base = c.split("(")[0].lower()
            if base in _CONSTRAINTS:
                pattern = _CONSTRAINTS[base]
            elif base in ("min", "max", "range", "length", "minlength", "maxlength"):
                checks.append(_bound_check(name, base, c))
        out.append(f"(?P<{name}>{pattern})")
    return "".join(out)


def _bound_check(name: str, kind: str, constraint: str) -> Callable[[dict[str, str]], bool]:
    args = [int(a) for a in re.findall(r"-?\d+", constraint)]

    def check(params: dict[str, str]) -> bool:
        value = params.get(name)
        if value is None:
            return True
        try:
            if kind in ("min", "max", "range"):
                n = int(value)
                return {"min": n >= args[0], "max": n <= args[0], "range": args[0] <= n <= args[-1]}[kind]
            n = len(value)
            if kind == "length":
                return n == args[0] if len(args) == 1 else args[0] <= n <= args[1]
            return n >= args[0] if kind == "minlength" else n <= args[0]
        except (ValueError, IndexError):
            return False
    return check


class Router:
    def __init__(self, specs: list[FunctionSpec], route_prefix: str) -> None:
        self.prefix = f"/{route_prefix}" if route_prefix else ""
        self.routes = sorted((compile_route(s) for s in specs), key=lambda r: r.precedence)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for this method and path, with its route params; None is a 404 (also for a wrong method)."""
        if self.prefix:
            if path.lower() != self.prefix.lower() and not path.lower().startswith(self.prefix.lower() + "/"):
                return None
            path = path[len(self.prefix):]
        path = path.strip("/")
        for route in self.routes:
            m = route.regex.match(path)
            if not m or not route.allows(method):
                continue
            params = {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
            if all(check(params) for check in route.checks):
                return route, params
        return None


class Keys:
    def __init__(self, function_keys: list[str], master_key: str | None) -> None:
        self.function_keys = [k for k in function_keys if k]
        self.master_key = master_key or None

    @property
    def configured(self) -> bool:
        return bool(self.function_keys or self.master_key)

    def allows(self, level: str, key: str | None) -> bool:
        if level == "anonymous" or not self.configured:
            return True
        if not key:
            return False
        if self.master_key and hmac.compare_digest(key.encode(), self.master_key.encode()):
            return True
        return level == "function" and any(hmac.compare_digest(key.encode(), k.encode()) for k in self.function_keys)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    host: "LocalHost"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "ucp-local-host"
    wbufsize = 64 * 1024  # headers and body leave in one send
    timeout = 120  # an idle keep-alive connection is closed after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are logged by _dispatch without URLs (queries may hold PII)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = do_GET

    def __getattr__(self, name: str) -> Any:
        # Any other method (QUERY, PROPFIND, ...) is routed too: no route takes it, so it answers 404 like the
        # real host, instead of http.server's 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    # -- plumbing -------------------------------------------------------------------------------------------
    def _reply(self, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
               content_type: str | None = None) -> None:
        self.send_response(status)
        sent = set()
        for k, v in headers or []:
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(k, v)
                sent.add(k.lower())
        if content_type and "content-type" not in sent:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._reply(status, json.dumps(value).encode(), content_type="application/json; charset=utf-8")

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    return None
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _key(self, query: dict[str, list[str]]) -> str | None:
        return self.headers.get("x-functions-key") or (query.get("code") or [None])[0]

    def _dispatch(self) -> None:
        host = self.server.host
        started = time.perf_counter()
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        label, status = "(no route)", 500
        host.http_started()
        try:
            body = self._read_body()
            if body is None:
                self.close_connection = True
                status = 413
                self._reply(413)
                return
            if host.stopping.is_set():
                self.close_connection = True
                status = 503
                self._reply(503)
                return
            path = url.path
            if path.lower().startswith("/admin/") or path.lower().startswith("/runtime/webhooks/"):
                label = path.split("?")[0] if path.lower().startswith("/admin/host") else "admin"
                status = self._admin(path, query, body)
                return
            found = host.router.match(self.command, path)
            if found is None:
                status = 404
                self._reply(404)
                return
            route, params = found
            label = route.template
            if not host.keys.allows(route.auth_level, self._key(query)):
                status = 401
                self._reply(401)
                return
            status = self._invoke(route, params, query, body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as err:
            log.error("HTTP %s %s failed in the host: %s", self.command, label, type(err).__name__)
            status = 500
            self._reply(500)
        finally:
            host.http_finished()
            log.debug("HTTP %s %s -> %d (%.1f ms)", self.command, label, status,
                      (time.perf_counter() - started) * 1000)

    def _invoke(self, route: Route, params: dict[str, str], query: dict[str, list[str]], body: bytes) -> int:
        host_header = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        request = func.HttpRequest(
            method=self.command, url=f"http://{host_header}{self.path}",
            headers={k.lower(): v for k, v in self.headers.items()},
            params={k: ",".join(v) for k, v in query.items()}, route_params=params, body=body)
        try:
            result = self.server.host.invoker.invoke(route.spec, request, {**params, **request.params},
                                                     "This function was programmatically called via HTTP")
        except InvocationFailed:
            self._reply(500)  # no details to the client; the invoker logged where it failed
            return 500
        if result is None:
            self._reply(204)
            return 204
        if isinstance(result, (str, bytes)):
            result = func.HttpResponse(result, mimetype="text/plain" if isinstance(result, str)
                                       else "application/octet-stream")
        if not isinstance(result, func.HttpResponse):
            log.error("HTTP function %s returned %s, not an HttpResponse", route.spec.name, type(result).__name__)
            self._reply(500)
            return 500
        mimetype = result.mimetype or "text/plain"
        textual = mimetype.startswith("text/") or mimetype.endswith(("json", "xml", "javascript"))
        content_type = f"{mimetype}; charset={result.charset}" if textual and "charset" not in mimetype else mimetype
        self._reply(result.status_code, result.get_body(), list(result.headers.items()), content_type)
        return result.status_code

    # -- admin ----------------------------------------------------------------------------------------------
    def _admin(self, path: str, query: dict[str, list[str]], body: bytes) -> int:
        host = self.server.host
        lowered = path.lower().rstrip("/")
        if lowered == "/admin/host/ping":
            self._reply(200)
            return 200
        if not host.keys.allows("admin", self._key(query)):
            self._reply(401)
            return 401
        if lowered == "/admin/host/status" and self.command == "GET":
            self._json(200, host.status())
            return 200
        if lowered == "/admin/functions" and self.command == "GET":
            self._json(200, host.function_list())
            return 200
        if lowered.startswith("/admin/functions/") and self.command == "POST":
            name = unquote(path.rstrip("/").rsplit("/", 1)[1])
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                self._json(400, {"error": "the body must be JSON like {\"input\": \"...\"}"})
                return 400
            value = payload.get("input") if isinstance(payload, dict) else None
            status, message = host.run_admin(name, value)
            self._reply(status) if status == 202 else self._json(status, {"error": message})
            return status
        if lowered == "/runtime/webhooks/blobs" and self.command == "POST":
            return self._event_grid(query, body)
        self._reply(404)
        return 404

    def _event_grid(self, query: dict[str, list[str]], body: bytes) -> int:
        """Event Grid delivery to a blob trigger (BlobCreated events), with the subscription handshake."""
        try:
            events = json.loads(body or b"[]")
        except ValueError:
            self._json(400, {"error": "the body must be a JSON array of Event Grid events"})
            return 400
        events = events if isinstance(events, list) else [events]
        name = (query.get("functionName") or [""])[0].removeprefix("Host.Functions.")
        for event in events:
            data = event.get("data") or {}
            if event.get("eventType") == "Microsoft.EventGrid.SubscriptionValidationEvent":
                self._json(200, {"validationResponse": data.get("validationCode")})
                return 200
        status = self.server.host.deliver_blob_events(name, events)
        self._reply(status)
        return status


def serve(host: "LocalHost", address: str, port: int) -> tuple[_Server, threading.Thread]:
    server = _Server((address, port), _Handler)
    server.host = host
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http",
                              daemon=True)
    thread.start()
    return server, thread
