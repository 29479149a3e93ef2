"""devstack.apphost.AppHost, the host the end-to-end tests and the chaos run start: its port, across restarts."""
from __future__ import annotations

import urllib.request

from devstack.apphost import AppHost, isolated_settings
from shared.bootstrap import bootstrap
from tests.conftest import unique_suffix


def _ping(url: str) -> int:
    with urllib.request.urlopen(f"{url}/admin/host/ping", timeout=10) as response:
        return response.status


def test_the_first_start_binds_a_port_the_host_names_and_a_restart_after_a_crash_keeps_it(local_stack, tmp_path):
    """No port is chosen before the host binds it (one chosen free can be taken meanwhile: CI lost a start to
    that); a crashed host comes back on the same port, so its URL stays valid for the caller."""
    settings = isolated_settings(local_stack.env, f"ah{unique_suffix()}")
    bootstrap(settings)
    host = AppHost(settings, tmp_path, name="ah", verbose=False)
    assert host.port == 0
    try:
        host.start()
        url = host.url
        assert host.port != 0 and _ping(url) == 200
        assert f"Host started on {url} " in host.log_tail()
        host.kill()
        host.start()
        assert host.url == url and _ping(url) == 200 and host.starts == 2
    finally:
        host.stop()
