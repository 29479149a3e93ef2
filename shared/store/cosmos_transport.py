"""An azure-core HTTP transport for the Cosmos DB client straight over the standard library's http.client.

azure-core's RequestsTransport runs every request through requests (session merging, request preparation, cookie
jars, header validation, adapter) and urllib3 (pool manager, URL parsing, its own header checks) before
http.client sends it. Measured against the emulator: the Cosmos SDK spends ~0.34 ms of Python CPU per request of
its own, requests + urllib3 ~0.45 ms and http.client ~0.15 ms; none of what requests and urllib3 add is used by
the Cosmos client (no cookies, redirects, proxies, netrc, retries at that level). This transport keeps what the
pipeline relies on: TLS verification as the client asks (the SDK turns it off only for a local emulator), connect
and read timeouts, keep-alive connections shared by threads, no transport-level retries (the SDK's policies
decide), and errors mapped as RequestsTransport maps them, so the SDK retries a request that was never sent
and retries reads only when the response was lost.
"""
from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import (
    IncompleteReadError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import HttpRequest, HttpResponse, HttpTransport
from azure.core.utils import CaseInsensitiveDict

# Idle connections kept per origin: every resolve lane or read-many thread may hold one while it waits; more
# than this are closed when returned rather than kept.
POOL_SIZE = 32
DEFAULT_TIMEOUT = 300.0  # seconds; the SDK passes its own per request


class HttpClientResponse(HttpResponse):
    def __init__(self, request: HttpRequest, response: http.client.HTTPResponse, body: bytes) -> None:
        super().__init__(request, response)
        self.status_code = response.status
        self.headers = CaseInsensitiveDict(response.getheaders())
        self.reason = response.reason
        self.content_type = self.headers.get("content-type")
        self._body = body

    def body(self) -> bytes:
        return self._body


class HttpClientTransport(HttpTransport):
    """Thread-safe: connections are pooled per origin and TLS setting; each is used by one request at a time."""

    def __init__(self, *, pool_size: int = POOL_SIZE) -> None:
        self._pool_size = pool_size
        self._idle: dict[tuple, list[http.client.HTTPConnection]] = {}
        self._contexts: dict[tuple, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> "HttpClientTransport":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> None:
        pass  # connections open on first use

    def close(self) -> None:
        with self._lock:
            idle, self._idle = [c for conns in self._idle.values() for c in conns], {}
        for conn in idle:
            conn.close()

    def send(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        if kwargs.get("proxies"):
            raise ValueError("HttpClientTransport does not go through proxies; use RequestsTransport")
        if request.files:
            raise ValueError("HttpClientTransport does not send multipart bodies")
        url = urlsplit(request.url)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        tls = (kwargs.get("connection_verify", True), _cert_key(kwargs.get("connection_cert"))) \
            if url.scheme == "https" else None
        origin = (url.scheme, url.hostname, url.port, tls)
        body = request.data.encode("utf-8") if isinstance(request.data, str) else request.data
        conn = self._connection(origin, kwargs.get("connection_timeout") or DEFAULT_TIMEOUT)
        try:
            conn.sock.settimeout(kwargs.get("read_timeout") or DEFAULT_TIMEOUT)
            conn.request(request.method, path, body=body, headers=request.headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException as err:
            conn.close()
            _raise_response_error(err)
            raise
        if response.will_close:
            conn.close()
        else:
            self._release(origin, conn)
        return HttpClientResponse(request, response, data)

    def _connection(self, origin: tuple, connect_timeout: float) -> http.client.HTTPConnection:
        """An idle connection the server has not closed, or a new one (connected here, so a failure means the
        request was never sent)."""
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                conn = idle.pop()
                if conn.sock is not None and not _readable(conn.sock):  # readable when idle = closed by the server
                    return conn
                conn.close()
        scheme, host, port, tls = origin
        if scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=self._context(tls))
        else:
            conn = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        try:
            conn.connect()
        except socket.timeout as err:
            conn.close()
            raise ServiceRequestTimeoutError(err, error=err) from err
        except OSError as err:  # refused, unreachable, DNS, TLS handshake or certificate
            conn.close()
            raise ServiceRequestError(err, error=err) from err
        return conn

    def _release(self, origin: tuple, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self._pool_size:
                idle.append(conn)
                return
        conn.close()

    def _context(self, tls: tuple) -> ssl.SSLContext:
        with self._lock:
            context = self._contexts.get(tls)
            if context is None:
                context = self._contexts[tls] = _ssl_context(*tls)
            return context


def _raise_response_error(err: BaseException) -> None:
    """The request may have reached the server: the SDK retries such a failure for reads only."""
    if isinstance(err, socket.timeout):
        raise ServiceResponseTimeoutError(err, error=err) from err
    if isinstance(err, http.client.IncompleteRead):
        raise IncompleteReadError(err, error=err) from err
    if isinstance(err, (http.client.HTTPException, OSError)):
        raise ServiceResponseError(err, error=err) from err


def _readable(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _cert_key(cert: Any) -> Any:
    if isinstance(cert, (list, tuple)):
        return tuple(cert) if any(cert) else None
    return cert or None


def _ssl_context(verify: Any, cert: Any) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        context = ssl.create_default_context(**{"capath" if os.path.isdir(verify) else "cafile": verify})
    else:
        context = ssl.create_default_context(cafile=_ca_bundle())
    if isinstance(cert, tuple):
        context.load_cert_chain(cert[0], cert[1] if len(cert) > 1 else None)
    elif isinstance(cert, str):
        context.load_cert_chain(cert)
    return context


def _ca_bundle() -> str | None:
    try:
        import certifi  # what requests verifies with; the system store otherwise
    except ImportError:
        return None
    return certifi.where()
