"""Who may fetch what of the dashboard (docs/insights.md): every route but /api/health needs a function key, the
dashboard's static assets included; the page hands the key it was opened with on to its asset URLs. Checked on
the app's declared functions and the served page (the browser run is tests/test_dashboard.py)."""
from __future__ import annotations

import re

from shared.api.openapi import document
from shared.dashboard import asset, page

from .conftest import app_functions


def auth_levels() -> dict[str, str]:
    levels = {}
    for name, f in app_functions().items():
        for binding in f.get_bindings():
            spec = binding.get_dict_repr()
            if spec["type"] == "httpTrigger":
                levels[name] = str(getattr(spec["authLevel"], "value", spec["authLevel"])).lower()
    return levels


def test_only_health_is_anonymous_and_the_assets_need_a_key():
    levels = auth_levels()
    assert levels["dashboard"] == levels["dashboard_asset"] == "function"
    assert [n for n, level in levels.items() if level == "anonymous"] == ["health"]
    spec = document()["paths"]["/dashboard/assets/{name}"]["get"]
    assert "security" not in spec and "401" in spec["responses"]  # the OpenAPI spec says the same


def test_the_page_hands_its_key_on_to_every_asset_url():
    html = page("k3y/+&")[0].decode()
    urls = re.findall(r'(?:src|href)="(dashboard/assets/[^"]+)"', html)
    assert urls and all(u.endswith("?code=k3y%2F%2B%26") for u in urls), urls
    for url in urls:
        asset(url.split("/")[-1].split("?")[0])  # each is an asset the route serves
    assert "?code=" not in page()[0].decode()  # no key, nothing added
