"""Profile API through the real blueprint functions (called as the host calls them) on the Cosmos emulator."""
from __future__ import annotations

import json
import os

import azure.functions as func
import pytest

from shared.models import CustomerRecord
from shared.settings import get_settings


@pytest.fixture
def http_functions(functions_by_name):
    return functions_by_name


@pytest.fixture
def api_env(app_env, cosmos_store):
    return cosmos_store


def call(fns, name, method="GET", route_params=None, params=None, body=b""):
    req = func.HttpRequest(method=method, url=f"http://127.0.0.1/api/{name}", params=params or {},
                           route_params=route_params or {}, body=body, headers={})
    resp = fns[name].get_user_function()(req)
    payload = json.loads(resp.get_body()) if resp.get_body() else None
    return resp, payload


def people():
    return [
        CustomerRecord(source="pos", record_key="1", given_name="Ann", family_name="Lee", email="Ann.Lee@Shopmail.net",
                       phone="020 7946 0018", phone_region="GB", birth_date="1980-02-03"),
        CustomerRecord(source="ecommerce", record_key="e-9", given_name="Ann", family_name="Lee",
                       email="ann.lee@shopmail.net", city="London"),
        CustomerRecord(source="pos", record_key="2", given_name="Bob", family_name="Ray", email="bob.ray@postbox.org"),
    ]


def test_lookup_by_any_identifier_normalized_like_ingestion(http_functions, api_env):
    from shared.identity import resolve_records

    resolve_records(api_env, people(), settings=get_settings())
    resp, by_email = call(http_functions, "lookup_profile", params={"email": "  ANN.LEE@shopmail.net "})
    assert resp.status_code == 200, by_email
    assert {r["key"] for r in by_email["source_records"]} == {"pos|1", "ecommerce|e-9"}
    links = {r["key"]: r["link"] for r in by_email["source_records"]}  # why each record is in the profile
    assert links["pos|1"] == {"reason": "new"} and links["ecommerce|e-9"] == {"reason": "rule", "rule": "email"}
    resp, by_phone = call(http_functions, "lookup_profile", params={"phone": "+44 20 7946 0018"})
    assert resp.status_code == 200 and by_phone["id"] == by_email["id"]
    resp, by_source = call(http_functions, "lookup_profile", params={"source": "pos", "source_id": "1"})
    assert by_source["id"] == by_email["id"]
    resp, other = call(http_functions, "lookup_profile", params={"email": "bob.ray@postbox.org"})
    assert other["id"] != by_email["id"]
    resp, padded = call(http_functions, "lookup_profile", params={"source": "pos ", "source_id": " 1"})
    assert resp.status_code == 200 and padded["id"] == by_email["id"]  # trimmed as ingestion trims the key


@pytest.mark.parametrize("params", [
    {"source": "pos", "source_id": "1", "email": "bob.ray@postbox.org"},
    {"id_type": "ecommerce_id", "id": "EC-1", "email": "bob.ray@postbox.org"},
    {"source": "pos", "source_id": "1", "id_type": "ecommerce_id", "id": "EC-1"},
    {"email": "ann.lee@shopmail.net", "loyalty_id": "633700012"},
])
def test_a_lookup_by_two_identifiers_is_refused(http_functions, api_env, params):
    """Two identifiers may name two people: the lookup says so rather than answer for one and ignore the other."""
    from shared.identity import resolve_records

    resolve_records(api_env, people(), settings=get_settings())
    for name, kwargs in (("lookup_profile", {"params": params}),
                         ("lookup_profile_by_body", {"method": "POST", "body": json.dumps(params).encode()})):
        resp, body = call(http_functions, name, **kwargs)
        assert resp.status_code == 400 and "exactly one" in body["detail"], (name, body)


def test_lookup_errors_are_problem_json(http_functions, api_env):
    resp, body = call(http_functions, "lookup_profile", params={"email": "not an email"})
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json" and body["status"] == 400
    resp, body = call(http_functions, "lookup_profile", params={"email": "zoe.quinn@shopmail.net"})
    assert resp.status_code == 404 and body["title"] == "Not Found"
    resp, body = call(http_functions, "lookup_profile", params={})
    assert resp.status_code == 400
    resp, body = call(http_functions, "get_profile", route_params={"profile_id": "p_missing"})
    assert resp.status_code == 404


def test_lookup_by_a_long_identifier_finds_what_the_resolver_stored(http_functions, api_env):
    """A loyalty card or custom identifier too long for an id of its own is stored under "<type>:#<digest>"
    (identity.docs.identifier_id): the lookup finds it by the value as given. Only a value longer than ingestion
    accepts for any field (settings.max_field_bytes), which nothing stored can hold, is refused, with 414."""
    from shared.identity import resolve_records

    card = "LC-" + "9f3a" * 300  # 1,203 characters
    token = "eyJhbGciOiJSUzI1NiJ9." + "eyJzdWIiOiJib2IifQ" * 60
    created, = resolve_records(api_env, [CustomerRecord(source="pos", record_key="long-1", given_name="Ann",
                                                        family_name="Lee", loyalty_id=card,
                                                        identifiers={"app_user_token": token})],
                               settings=get_settings())
    assert created.action == "created"
    resp, by_card = call(http_functions, "lookup_profile", params={"loyalty_id": card.lower()})
    assert resp.status_code == 200, by_card
    assert by_card["id"] == created.profile_id and "loyalty_id:#" in " ".join(by_card["identifiers"])
    resp, by_token = call(http_functions, "lookup_profile", params={"id_type": "app_user_token", "id": token})
    assert resp.status_code == 200 and by_token["id"] == created.profile_id
    limit = get_settings().max_field_bytes
    resp, body = call(http_functions, "lookup_profile", params={"loyalty_id": "7" + "0123456789" * (limit // 10)})
    assert resp.status_code == 404, body  # as long as ingestion accepts: looked up, nobody has it
    resp, body = call(http_functions, "lookup_profile", params={"loyalty_id": "€" * (limit // 3 + 1)})
    assert resp.status_code == 414 and resp.mimetype == "application/problem+json"
    assert f"{limit} bytes" in body["detail"] and "€" not in body["detail"]
    resp, body = call(http_functions, "lookup_profile", params={"id_type": "app_user_token", "id": "t" * (limit + 1)})
    assert resp.status_code == 414


def post_lookup(fns, body):
    return call(fns, "lookup_profile_by_body", "POST", body=json.dumps(body).encode())


def test_post_lookup_finds_a_value_longer_than_a_url_carries(http_functions, api_env):
    """POST /profiles/lookup takes what GET /profiles takes, in a JSON body: a value as long as ingestion accepts
    (settings.max_field_bytes), such as a 10 KB loyalty id a record was resolved with, which no URL carries through
    the platform; a longer one is answered 413 (the GET, whose URL holds it, answers 414)."""
    from shared.identity import resolve_records

    card = "LC-" + "7c1e" * 2560  # 10,243 characters
    token = "tok-" + "x9" * 6000
    created, = resolve_records(api_env, [CustomerRecord(source="pos", record_key="long-2", given_name="Ann",
                                                        family_name="Lee", email="ann.lee@shopmail.net",
                                                        phone="020 7946 0018", phone_region="GB", loyalty_id=card,
                                                        identifiers={"app_user_token": token})],
                               settings=get_settings())
    for body in ({"loyalty_id": card.lower()}, {"id_type": "app_user_token", "id": token},
                 {"email": "ANN.LEE@shopmail.net"}, {"phone": "020 7946 0018", "region": "GB"},
                 {"source": "pos", "source_id": "long-2"}):
        resp, view = post_lookup(http_functions, body)
        assert resp.status_code == 200 and view["id"] == created.profile_id, (list(body), view)
    limit = get_settings().max_field_bytes
    resp, body = post_lookup(http_functions, {"loyalty_id": "7" + "0123456789" * (limit // 10)})
    assert resp.status_code == 404, body  # as long as ingestion accepts: looked up, nobody has it
    for too_long in ({"loyalty_id": "€" * (limit // 3 + 1)}, {"id_type": "app_user_token", "id": "t" * (limit + 1)},
                     {"email": "a" * limit + "@shopmail.net"}):
        resp, body = post_lookup(http_functions, too_long)
        assert resp.status_code == 413 and resp.mimetype == "application/problem+json", list(too_long)
        assert f"{limit} bytes" in body["detail"] and "€" not in body["detail"]


def test_placeholder_lookups_answer_404_on_cosmos_and_malformed_400(http_functions, api_env):
    from shared.identity import resolve_records

    resolve_records(api_env, [CustomerRecord(source="pos", record_key="ph-1", given_name="Ann", family_name="Lee",
                                             email="test@test.com", phone="0000000000", loyalty_id="n/a",
                                             city="Leeds")], settings=get_settings())
    for params in ({"email": "test@test.com"}, {"phone": "0000000000"}, {"loyalty_id": "n/a"}):
        for resp, body in (call(http_functions, "lookup_profile", params=params), post_lookup(http_functions, params)):
            assert resp.status_code == 404 and "placeholder" in body["detail"], (params, body)
    for params in ({"email": "not an email"}, {"phone": "not a phone"}):
        for resp, body in (call(http_functions, "lookup_profile", params=params), post_lookup(http_functions, params)):
            assert resp.status_code == 400 and "malformed" in body["detail"], (params, body)


def test_post_lookup_over_real_http_through_the_local_host(app_env, api_env):
    """The local host (devstack, serving function_app.app.get_functions()) routes POST /api/profiles/lookup to the
    lookup, and GET /api/profiles/lookup still to the profile with id "lookup"; the identifier stays out of the
    URL."""
    import requests

    from devstack.host import LocalHost
    from shared.identity import resolve_records
    from tests.conftest import settings_env

    card = "LC-" + "5d2b" * 2560
    created, = resolve_records(api_env, [CustomerRecord(source="pos", record_key="http-1", given_name="Ann",
                                                        family_name="Lee", email="ann.lee@shopmail.net",
                                                        loyalty_id=card)], settings=get_settings())
    key = "lookup-test-key"
    env = {**settings_env(app_env), "UCP_HOST_FUNCTION_KEYS": key}
    with LocalHost("function_app:app", port=0, timers=False, blob_poll_interval=30, app_settings=env) as host:
        url, headers = f"{host.url}/api/profiles/lookup", {"x-functions-key": key}
        for body in ({"email": "ANN.LEE@shopmail.net"}, {"loyalty_id": card}):
            resp = requests.post(url, json=body, headers=headers, timeout=30)
            assert resp.status_code == 200 and resp.json()["id"] == created.profile_id, resp.text[:300]
        resp = requests.post(url, json={"email": "test@test.com"}, headers=headers, timeout=30)
        assert resp.status_code == 404 and "placeholder" in resp.json()["detail"]
        resp = requests.post(url, data=b"[1]", headers=headers, timeout=30)
        assert resp.status_code == 400 and resp.headers["content-type"].startswith("application/problem+json")
        assert requests.post(url, json={"email": "ann.lee@shopmail.net"}, timeout=30).status_code == 401
        resp = requests.get(url, headers=headers, timeout=30)  # GET: the profile with id "lookup"
        assert resp.status_code == 404 and resp.json()["detail"] == "no profile with this id"


def test_profile_view_measures_come_from_transactions(http_functions, api_env):
    from shared.activity import save_activity
    from shared.identity import resolve_records
    from shared.models import Transaction

    resolve_records(api_env, people(), settings=get_settings())
    save_activity(api_env, [
        Transaction(source="pos", order_id="o1", customer_key="1", timestamp="2026-01-05T10:00:00Z", amount="20.00"),
        Transaction(source="ecommerce", order_id="o2", customer_key="e-9", timestamp="2026-03-01T10:00:00Z", amount="30.00"),
    ])
    _, found = call(http_functions, "lookup_profile", params={"email": "ann.lee@shopmail.net"})
    resp, view = call(http_functions, "get_profile", route_params={"profile_id": found["id"]})
    assert resp.status_code == 200
    assert view["measures"]["orders"] == 2 and view["measures"]["total_spend"] == 50.0
    assert view["measures"]["last_purchase"].startswith("2026-03-01")
    assert view["attributes"]["given_name"]["value"] == "Ann"
    assert view["attributes"]["given_name"]["source"] in ("pos", "ecommerce")


def test_erase_cascades_and_answers_gone(http_functions, api_env):
    from shared.activity import save_activity
    from shared.identity import resolve_records
    from shared.models import Transaction

    resolve_records(api_env, people(), settings=get_settings())
    save_activity(api_env, [Transaction(source="pos", order_id="o1", customer_key="1",
                                        timestamp="2026-01-05T10:00:00Z", amount="20.00")])
    _, found = call(http_functions, "lookup_profile", params={"email": "ann.lee@shopmail.net"})
    pid = found["id"]
    resp, exported = call(http_functions, "export_profile_data", route_params={"profile_id": pid})
    assert resp.status_code == 200 and len(exported["source_records"]) == 2 and len(exported["activity"]) == 1
    resp, erased = call(http_functions, "erase_profile_data", method="DELETE", route_params={"profile_id": pid})
    assert resp.status_code == 200 and erased["deleted"]["source_records"] == 2
    for params in ({"email": "ann.lee@shopmail.net"}, {"phone": "+442079460018"}, {"source": "pos", "source_id": "1"}):
        resp, _ = call(http_functions, "lookup_profile", params=params)
        assert resp.status_code == 404, params
    resp, body = call(http_functions, "get_profile", route_params={"profile_id": pid})
    assert resp.status_code == 410
    assert list(api_env.container("activity").query_items(partition_key="pos|1")) == []
    marker = api_env.container("records").read_item("pos|1", "pos|1")  # kept empty, so it is not resolved again
    assert marker["erased_at"] and "record" not in marker and marker["profile_id"] is None
    assert not [d for d in api_env.container("blocking").query_items() if pid in d.get("profile_ids", [])]
    assert erased["deleted"]["blocking"] > 0
    log = list(api_env.container("state").query_items(("kind", "=", "erasure")))
    assert len(log) == 1 and "ann" not in json.dumps(log).lower()
    # The other person is untouched.
    resp, _ = call(http_functions, "lookup_profile", params={"email": "bob.ray@postbox.org"})
    assert resp.status_code == 200


def test_openapi_document_matches_the_routes(http_functions):
    from shared.api.openapi import document

    doc = document()
    declared = set()
    for fn in http_functions.values():
        trigger = fn.get_trigger()
        if trigger.type != "httpTrigger":
            continue
        for method in trigger.methods:
            declared.add(("/" + trigger.route, method.value.lower()))
    documented = {(path, m) for path, ops in doc["paths"].items() for m in ops}
    assert declared == documented
    assert doc["paths"]["/health"]["get"]["security"] == []
