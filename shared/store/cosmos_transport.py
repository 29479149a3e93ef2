"""An azure-core HTTP transport straight over urllib3 for the Cosmos DB client.

azure-core's RequestsTransport runs every request through requests (session merging, request preparation,
cookie jars, header validation, adapter) before urllib3 sends it: measured, about a third of the Python CPU of a
Cosmos point read, for nothing the Cosmos client uses (no cookies, redirects, proxies or netrc). This transport
keeps what the pipeline relies on: TLS verification as the client asks (the SDK turns it off only for a local
emulator), connect/read timeouts, no transport-level retries (the SDK's retry policies decide), and errors mapped
the way RequestsTransport maps them, so the SDK retries a request that was never sent and retries reads only
when the response was lost.
"""
from __future__ import annotations

import os
import threading
from typing import Any

import urllib3
from azure.core.exceptions import (
    IncompleteReadError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import HttpRequest, HttpResponse, HttpTransport
from azure.core.utils import CaseInsensitiveDict
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

# Connections kept per host: a resolve lane or a read-many thread each holds one while it waits, so the pool is
# sized for them rather than requests' 10, beyond which every extra connection costs a new TLS handshake.
POOL_SIZE = 32


def _ca_bundle() -> str | None:
    try:
        import certifi  # what requests verifies with; the system store otherwise
    except ImportError:
        return None
    return certifi.where()


class Urllib3Response(HttpResponse):
    def __init__(self, request: HttpRequest, response: urllib3.BaseHTTPResponse) -> None:
        super().__init__(request, response)
        self.status_code = response.status
        self.headers = CaseInsensitiveDict(response.headers.items())
        self.reason = response.reason
        self.content_type = self.headers.get("content-type")
        self._body = response.data

    def body(self) -> bytes:
        return self._body


class Urllib3Transport(HttpTransport):
    """Thread-safe: one urllib3 pool manager per TLS setting (verify, client certificate), shared by threads."""

    def __init__(self, *, connection_timeout: float = 300, read_timeout: float = 300) -> None:
        self._timeouts = (connection_timeout, read_timeout)
        self._managers: dict[tuple, urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> "Urllib3Transport":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> None:
        pass  # pools open their connections on first use

    def close(self) -> None:
        with self._lock:
            managers, self._managers = list(self._managers.values()), {}
        for manager in managers:
            manager.clear()

    def _manager(self, verify: Any, cert: Any) -> urllib3.PoolManager:
        key = (verify, cert)
        manager = self._managers.get(key)
        if manager is None:
            with self._lock:
                manager = self._managers.get(key)
                if manager is None:
                    manager = self._managers[key] = urllib3.PoolManager(
                        num_pools=8, maxsize=POOL_SIZE, block=False, retries=False, **_tls_options(verify, cert))
        return manager

    def send(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        if kwargs.get("proxies"):
            raise ValueError("Urllib3Transport does not support proxies; use RequestsTransport")
        if request.files:
            raise ValueError("Urllib3Transport does not send multipart bodies")
        connect = kwargs.get("connection_timeout") or self._timeouts[0]
        read = kwargs.get("read_timeout") or self._timeouts[1]
        manager = self._manager(kwargs.get("connection_verify", True), _cert_key(kwargs.get("connection_cert")))
        body = request.data
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            response = manager.urlopen(request.method, request.url, body=body, headers=dict(request.headers),
                                       timeout=urllib3.Timeout(connect=connect, read=read), redirect=False,
                                       retries=False, preload_content=True)
        except (NewConnectionError, ConnectTimeoutError) as err:  # never sent: safe for the SDK to retry
            raise (ServiceRequestTimeoutError if isinstance(err, ConnectTimeoutError) else ServiceRequestError)(
                err, error=err) from err
        except SSLError as err:
            raise ServiceRequestError(err, error=err) from err
        except ReadTimeoutError as err:
            raise ServiceResponseTimeoutError(err, error=err) from err
        except ProtocolError as err:  # sent, response lost: the SDK retries reads only
            if "IncompleteRead" in str(err):
                raise IncompleteReadError(err, error=err) from err
            raise ServiceResponseError(err, error=err) from err
        except HTTPError as err:
            raise ServiceRequestError(err, error=err) from err
        return Urllib3Response(request, response)


def _cert_key(cert: Any) -> Any:
    if isinstance(cert, (list, tuple)):
        return tuple(cert) if any(cert) else None
    return cert or None


def _tls_options(verify: Any, cert: Any) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if verify is False:
        options.update(cert_reqs="CERT_NONE", assert_hostname=False)
    else:
        options["cert_reqs"] = "CERT_REQUIRED"
        ca = verify if isinstance(verify, str) else _ca_bundle()
        if ca:
            options["ca_cert_dir" if os.path.isdir(ca) else "ca_certs"] = ca
    if isinstance(cert, tuple):
        options["cert_file"], options["key_file"] = cert[0], cert[1] if len(cert) > 1 else None
    elif isinstance(cert, str):
        options["cert_file"] = cert
    return options
