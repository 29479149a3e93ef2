"""How the Cosmos client is built: a lean http.client transport wherever the environment asks for nothing that only
requests honours (proxies, .netrc, a CA bundle where TLS is verified); that transport verifies TLS, times out,
and reports failures the way the SDK's retry policies expect."""
from __future__ import annotations

import socket
import threading
import time

import pytest
from azure.core.exceptions import (
    ServiceRequestError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import HttpRequest

from devstack.stack import free_port
from shared.store.cosmos import _CA_BUNDLE_ENV, _PROXY_ENV, _transport
from shared.store.cosmos_transport import HttpClientTransport

REMOTE = "https://acct.documents.azure.com:443/"
LOCAL = "https://127.0.0.1:8081/"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("UCP_COSMOS_TRANSPORT", raising=False)
    for name in _PROXY_ENV + _CA_BUNDLE_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


@pytest.mark.parametrize("endpoint", [REMOTE, LOCAL])
def test_nothing_in_the_environment_means_the_http_client_transport(clean_env, endpoint):
    assert isinstance(_transport(endpoint), HttpClientTransport)


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "http_proxy", "NO_PROXY", "NETRC"])
@pytest.mark.parametrize("endpoint", [REMOTE, LOCAL])
def test_proxy_settings_are_honoured(clean_env, name, endpoint):
    clean_env.setenv(name, "http://proxy.example:3128")
    assert _transport(endpoint) is None  # the SDK's default transport, which reads them


def test_a_ca_bundle_is_honoured_where_tls_is_verified(clean_env):
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")
    assert _transport(REMOTE) is None
    assert _transport(LOCAL) is not None  # the SDK does not verify the local emulator's certificate


def test_operators_can_fall_back_to_the_sdk_default_transport(clean_env):
    clean_env.setenv("UCP_COSMOS_TRANSPORT", "requests")
    assert _transport(REMOTE) is None and _transport(LOCAL) is None


def test_a_netrc_file_is_honoured(clean_env, tmp_path):
    (tmp_path / ".netrc").write_text("machine example.org login a password b\n")
    assert _transport(REMOTE) is None


class _Server:
    """A TCP server on a free local port that does one thing to each request it reads (the first request of
    every connection unless keep_alive), counting the connections it accepted."""

    def __init__(self, handle, keep_alive: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        self.keep_alive = keep_alive
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while conn.recv(65536):
                    self.handle(conn)
                    if not self.keep_alive:
                        break

    def close(self) -> None:
        self.sock.close()


def _send(port: int, **kwargs):
    with HttpClientTransport() as transport:
        return transport.send(HttpRequest("GET", f"http://127.0.0.1:{port}/dbs"), **kwargs)


def _ok(conn) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")


def test_a_response_keeps_status_headers_any_case_and_body():
    body = b'{"id": "x"}'
    server = _Server(lambda conn: conn.sendall(b"HTTP/1.1 429 Too Many Requests\r\nx-ms-retry-after-ms: 15\r\n"
                                               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                               % (len(body), body)))
    try:
        response = _send(server.port)
    finally:
        server.close()
    assert response.status_code == 429
    assert response.headers["X-MS-Retry-After-Ms"] == "15"  # the SDK's throttling retry reads it
    assert response.content_type == "application/json"
    assert response.body() == body and response.text() == '{"id": "x"}'


def test_a_refused_connection_is_a_request_never_sent():
    with pytest.raises(ServiceRequestError) as err:
        _send(free_port())  # nothing listens there
    assert not isinstance(err.value, ServiceResponseError)  # the SDK may retry even a write


def test_a_connection_closed_before_the_response_is_a_lost_response():
    server = _Server(lambda conn: None)  # reads the request, closes without answering
    try:
        with pytest.raises(ServiceResponseError):  # the SDK retries it only for reads
            _send(server.port)
    finally:
        server.close()


def test_a_silent_server_times_out_as_a_lost_response():
    server = _Server(lambda conn: threading.Event().wait(2))
    try:
        with pytest.raises(ServiceResponseTimeoutError):
            _send(server.port, read_timeout=0.2)
    finally:
        server.close()


def test_tls_is_verified_unless_the_client_turns_it_off(stack_settings):
    """The emulator's self-signed certificate: refused when verifying (as for a real account, whose chain
    verifies), accepted only when the SDK turns verification off (it does for a local emulator)."""
    url = stack_settings.cosmos_endpoint
    with HttpClientTransport() as transport:
        with pytest.raises(ServiceRequestError):
            transport.send(HttpRequest("GET", url), connection_verify=True)
        assert transport.send(HttpRequest("GET", url), connection_verify=False).status_code == 200


def test_connections_are_kept_alive_and_reused():
    server = _Server(_ok, keep_alive=True)
    transport = HttpClientTransport()
    try:
        for _ in range(3):
            request = HttpRequest("GET", f"http://127.0.0.1:{server.port}/dbs")
            assert transport.send(request).body() == b"{}"
    finally:
        transport.close()
        server.close()
    assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_not_reused():
    server = _Server(_ok)  # answers once, then closes the connection (as an idle timeout would)
    transport = HttpClientTransport()
    try:
        for _ in range(2):  # the second request would fail on the closed connection
            assert transport.send(HttpRequest("GET", f"http://127.0.0.1:{server.port}/dbs")).status_code == 200
            time.sleep(0.1)  # idle: the server's close arrives
    finally:
        transport.close()
        server.close()
    assert server.connections == 2
