"""How the Cosmos client is built: its transport ignores the environment only where that changes nothing."""
from __future__ import annotations

import pytest

from shared.store.cosmos import _CA_BUNDLE_ENV, _PROXY_ENV, _transport

REMOTE = "https://acct.documents.azure.com:443/"
LOCAL = "https://127.0.0.1:8081/"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    for name in _PROXY_ENV + _CA_BUNDLE_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


@pytest.mark.parametrize("endpoint", [REMOTE, LOCAL])
def test_nothing_in_the_environment_means_a_session_that_skips_it(clean_env, endpoint):
    transport = _transport(endpoint)
    transport.open()
    try:
        assert transport.session.trust_env is False
    finally:
        transport.close()


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "http_proxy", "NO_PROXY", "NETRC"])
@pytest.mark.parametrize("endpoint", [REMOTE, LOCAL])
def test_proxy_settings_are_honoured(clean_env, name, endpoint):
    clean_env.setenv(name, "http://proxy.example:3128")
    assert _transport(endpoint) is None  # the SDK's default transport, which reads them


def test_a_ca_bundle_is_honoured_where_tls_is_verified(clean_env):
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")
    assert _transport(REMOTE) is None
    assert _transport(LOCAL) is not None  # the SDK does not verify the local emulator's certificate


def test_a_netrc_file_is_honoured(clean_env, tmp_path):
    (tmp_path / ".netrc").write_text("machine example.org login a password b\n")
    assert _transport(REMOTE) is None
