"""How the Cosmos client is built: the transport ignores the environment only when it says nothing to requests."""
from __future__ import annotations

import pytest

from shared.store.cosmos import _REQUESTS_ENV, _transport


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    for name in _REQUESTS_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_no_proxy_settings_means_a_session_that_skips_the_environment(clean_env):
    transport = _transport()
    transport.open()
    try:
        assert transport.session.trust_env is False
    finally:
        transport.close()


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "http_proxy", "NO_PROXY", "REQUESTS_CA_BUNDLE"])
def test_proxy_or_ca_settings_are_honoured(clean_env, name):
    clean_env.setenv(name, "http://proxy.example:3128")
    assert _transport() is None  # the SDK's default transport, which reads them


def test_a_netrc_file_is_honoured(clean_env, tmp_path):
    (tmp_path / ".netrc").write_text("machine example.org login a password b\n")
    assert _transport() is None
