"""The HTTP serving layer at its edges: field names with a trailing newline, formula-like cells in exports,
deeply nested bodies, dates at the edge of the calendar, merge logs of merges of merges, custom identifiers.

The real blueprint functions are called as the host calls them, on an in-memory store (open_store patched in
the blueprint modules), so no emulator is needed.
"""
from __future__ import annotations

import csv
import io
import json

import azure.functions as func
import pytest

from shared.models import CustomerRecord
from shared.settings import get_settings
from shared.store import MemoryStore

from .insights_data import profile_doc, put_profiles, seed_shop


@pytest.fixture
def mem(monkeypatch):
    import functions.events
    import functions.insights
    import functions.profiles
    import functions.reviews

    store = MemoryStore()
    for module in (functions.profiles, functions.insights, functions.reviews, functions.events):
        monkeypatch.setattr(module, "open_store", lambda *a, **k: store)
    return store


@pytest.fixture
def fns(functions_by_name):
    return functions_by_name


def call(fns, name, method="GET", route_params=None, params=None, body=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    req = func.HttpRequest(method=method, url=f"http://localhost/api/{name}", headers={}, params=params or {},
                           route_params=route_params or {}, body=raw)
    resp = fns[name].get_user_function()(req)
    data = resp.get_body()
    return resp, (json.loads(data) if data and "json" in (resp.mimetype or "") else data)


# --- 1. segment field paths with a trailing newline: 500 and a stored segment that breaks every refresh -------

def test_segment_field_with_trailing_newline_is_rejected_as_invalid_not_500(fns, mem):
    """A regex ending in `$` also matches before a final newline: "attributes.email\\n" must be refused as
    invalid (422) before the segment is stored, not fail later in the store (500)."""
    seed_shop(mem)
    for field in ("attributes.email\n", "enrichment.region\n", "measures.total_spend\n"):
        resp, body = call(fns, "create_segment", "POST",
                          body={"name": "bad", "rule": {"field": field, "op": "=", "value": "London"}})
        assert resp.status_code == 422, (field, resp.status_code, body)
    _, listed = call(fns, "list_segments")
    assert listed["segments"] == []


def test_one_bad_segment_does_not_break_insights_refresh_of_every_profile(fns, mem):
    """A bad segment is never stored, so the per-profile refresh and the scheduled refresh_all keep working."""
    from shared.insights.refresh import refresh_all

    seed_shop(mem)
    call(fns, "create_segment", "POST", body={"name": "bad", "rule": {"field": "attributes.email\n", "op": "exists"}})
    resp, body = call(fns, "refresh_profile_insights", "POST", route_params={"profile_id": "p_bob"})
    assert resp.status_code == 200, body
    assert refresh_all(mem)["failed"] == 0


# --- 2. CSV injection in the segment export -----------------------------------------------------------------

class _FakeBlob:
    def __init__(self):
        self.blocks: dict[str, bytes] = {}
        self.committed: list[str] = []

    def stage_block(self, block_id, data):
        self.blocks[block_id] = data

    def commit_block_list(self, blocks, **kwargs):
        self.committed = [b.id for b in blocks]

    def text(self) -> str:
        return b"".join(self.blocks[b] for b in self.committed).decode()


def test_segment_export_quotes_every_formula_like_cell(fns, mem, monkeypatch):
    """Every formula-like cell is quoted in a segment export ("-2+3+cmd|..." is a DDE payload), with the same rule
    as ingestion (escape_formula): phone numbers stay as they are."""
    import shared.storage
    from shared.ingest import escape_formula

    blob = _FakeBlob()

    class _Service:
        def get_blob_client(self, container, name):
            return blob

    monkeypatch.setattr(shared.storage, "blob_service", lambda settings=None: _Service())
    payload = "-2+3+cmd|' /C calc'!A0"
    doc = profile_doc("p_eve", sources=["pos|9"], given=payload, family="+1+HYPERLINK(\"http://x.shopmail.net\")",
                      email="eve@shopmail.net", enrichment={"region": "London"})
    put_profiles(mem, [doc])
    resp, seg = call(fns, "create_segment", "POST",
                     body={"name": "London", "rule": {"field": "enrichment.region", "op": "=", "value": "London"}})
    assert resp.status_code == 201, seg
    resp, out = call(fns, "export_segment", "POST", route_params={"segment_id": seg["id"]})
    assert resp.status_code == 201, out
    rows = list(csv.DictReader(io.StringIO(blob.text())))
    assert rows[0]["given_name"] == escape_formula(payload) == "'" + payload
    assert rows[0]["family_name"].startswith("'")


# --- 3. bodies nested deeply: 500 on every JSON route -----------------------------------------------------

@pytest.mark.parametrize("name,route_params", [
    ("create_segment", {}), ("create_journey", {}), ("create_report", {}),
    ("split_profile", {"profile_id": "p_ann"}), ("approve_review", {"review_id": "r_1"}), ("post_events", {}),
])
def test_deeply_nested_json_body_is_a_client_error(fns, mem, name, route_params):
    """~50k nested brackets (100 KB, under every size limit) make json.loads raise RecursionError: a 400."""
    deep = b"[" * 50_000 + b"]" * 50_000
    resp, body = call(fns, name, "POST", route_params=route_params, body=deep)
    assert 400 <= resp.status_code < 500, (resp.status_code, body)


# --- 4. dates at the edge of the calendar: 500 instead of 400 ---------------------------------------------

@pytest.mark.parametrize("route,params", [
    ("journey_funnel", {"to": "0001-01-02"}),                                    # start = to - 30 days
    ("revenue", {"to": "0001-01-02"}),                                           # start = to - 90 days
    ("analytics", {"from": "9999-12-30", "to": "9999-12-31T23:59:59"}),          # _days steps past 9999-12-31
    ("revenue", {"from": "9999-12-30", "to": "9999-12-31T23:00:00-05:00"}),      # iso_utc(to) is year 10000
    ("revenue", {"from": "0001-01-01T00:00:00+05:00", "to": "0001-01-05"}),      # iso_utc(from) is year 0
])
def test_out_of_range_dates_are_bad_requests(fns, mem, route, params):
    """Dates at the edge of the calendar (moved by a time zone or a default window) are a 400, not an
    OverflowError."""
    if route == "journey_funnel":
        _, journey = call(fns, "create_journey", "POST", body={"name": "j", "steps": [
            {"name": "Visit", "type": "page"}, {"name": "Buy", "event": "Order Completed"}]})
        resp, body = call(fns, "journey_funnel", route_params={"journey_id": journey["id"]}, params=params)
    else:
        resp, body = call(fns, "run_report", route_params={"report": route}, params=params)
    assert resp.status_code == 400, (resp.status_code, body)


# --- 5. the merge log of a survivor (and of its alias ids) misses merges made before it absorbed them ----

def _chain(store):
    """P1 {email}, P2 {loyalty}, P3 {phone}; a record with loyalty+phone merges P3 into P2; one with
    email+loyalty then merges P2 into P1."""
    from shared.identity import resolve_records

    def rec(key, **kw):
        return CustomerRecord(source="crm", record_key=key, given_name="Nora", family_name="Vance", **kw)

    first = resolve_records(store, [rec("1", email="nora.vance@shopmail.net"), rec("2", loyalty_id="LV-2002"),
                                    rec("3", phone="+442079460111")], settings=get_settings())
    resolve_records(store, [rec("4", loyalty_id="LV-2002", phone="+442079460111")], settings=get_settings())
    resolve_records(store, [rec("5", email="nora.vance@shopmail.net", loyalty_id="LV-2002")], settings=get_settings())
    return [r.profile_id for r in first]


def test_merge_log_explains_every_record_of_the_profile_also_through_an_alias(fns, mem):
    """P2's earlier merge of P3 (why crm|3 is here) is written under P2; the log of P1, and of P3 through its
    alias, shows it too."""
    p1, p2, p3 = _chain(mem)
    for asked in (p1, p3):
        resp, body = call(fns, "get_profile_merges", route_params={"profile_id": asked})
        assert resp.status_code == 200 and body["profile_id"] == p1
        absorbed = {m.get("absorbed_id") for m in body["merges"]}
        assert {p2, p3} <= absorbed, (asked, absorbed)


# --- 6. lookup by a custom identifier the resolver links on -----------------------------------------------

def test_lookup_by_a_custom_identifier(fns, mem):
    """Custom strong identifiers (mapping `identifiers`, e.g. ecommerce_id in crm.customers.json) are claimed and
    link profiles, so a lookup finds the person by one too: id_type names it, id gives the value."""
    from shared.identity import resolve_records

    [res] = resolve_records(mem, [CustomerRecord(source="crm", record_key="c1", given_name="Ida", family_name="Holm",
                                                 identifiers={"ecommerce_id": "EC-7781"})], settings=get_settings())
    assert mem.container("identifiers").read_item_or_none("ecommerce_id:EC-7781", "ecommerce_id:EC-7781")
    resp, body = call(fns, "lookup_profile", params={"id_type": "ecommerce_id", "id": " EC-7781"})
    assert resp.status_code == 200, body
    assert body["id"] == res.profile_id
    for params in ({"id_type": "ecommerce_id"}, {"id_type": "email", "id": "x@shopmail.net"},
                   {"id_type": "bad type!", "id": "1"}, {"id": "EC-7781"}):
        assert call(fns, "lookup_profile", params=params)[0].status_code == 400, params
    assert call(fns, "lookup_profile", params={"id_type": "ecommerce_id", "id": "EC-0000"})[0].status_code == 404


# --- 7. POST /profiles/lookup: the lookup with its parameters in a JSON body, none in the URL -------------------

def lookup_people():
    return [
        CustomerRecord(source="pos", record_key="1", given_name="Ann", family_name="Lee", email="Ann.Lee@Shopmail.net",
                       phone="020 7946 0018", phone_region="GB", loyalty_id="L-100 200",
                       identifiers={"ecommerce_id": "EC-7781"}),
        CustomerRecord(source="pos", record_key="2", given_name="Bob", family_name="Ray", email="bob.ray@postbox.org"),
    ]


def test_post_lookup_finds_a_profile_by_each_identifier_kind_as_get_does(fns, mem):
    from shared.identity import resolve_records

    ann, bob = resolve_records(mem, lookup_people(), settings=get_settings())
    for params in ({"email": "  ANN.LEE@shopmail.net "}, {"phone": "+44 20 7946 0018"},
                   {"phone": "020 7946 0018", "region": "GB"}, {"loyalty_id": "l100200"},
                   {"source": "pos", "source_id": "1"}, {"id_type": "ecommerce_id", "id": " EC-7781"},
                   {"email": "ann.lee@shopmail.net", "phone": None, "loyalty_id": ""}):
        resp, body = call(fns, "lookup_profile_by_body", "POST", body=params)
        assert resp.status_code == 200 and body["id"] == ann.profile_id, (params, body)
        get_params = {k: v for k, v in params.items() if v is not None}
        assert call(fns, "lookup_profile", params=get_params)[1] == body, params  # one code path, one answer
    resp, body = call(fns, "lookup_profile_by_body", "POST", body={"email": "bob.ray@postbox.org"})
    assert resp.status_code == 200 and body["id"] == bob.profile_id
    resp, body = call(fns, "lookup_profile_by_body", "POST", body={"email": "zoe.quinn@shopmail.net"})
    assert resp.status_code == 404 and resp.mimetype == "application/problem+json"
    assert body == call(fns, "lookup_profile", params={"email": "zoe.quinn@shopmail.net"})[1] | {
        "instance": body["instance"]}


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"[]", b'["email", "ann.lee@shopmail.net"]', b'"ann.lee@shopmail.net"', b"42", b"null",
    b"{}", b'{"email": 1}', b'{"email": ["ann.lee@shopmail.net"]}', b'{"email": {"value": "x"}}',
    b'{"email": true}', b'{"emial": "ann.lee@shopmail.net"}', b'{"email": "ann.lee@shopmail.net", "code": "k"}',
    b'{"email": "ann\\ud800@shopmail.net"}', b'{"email": "a@b.co", "phone": "+442079460018"}',
    b'{"source": "pos"}', b'{"id_type": "ecommerce_id"}',
])
def test_post_lookup_of_a_bad_body_is_400(fns, mem, raw):
    resp, body = call(fns, "lookup_profile_by_body", "POST", body=raw)
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json", (raw, body)
    assert "ann" not in body["detail"] and "shopmail" not in body["detail"]  # a value is never echoed


def test_post_lookup_of_a_placeholder_is_404_and_of_a_malformed_value_400(fns, mem):
    from shared.identity import resolve_records

    resolve_records(mem, lookup_people(), settings=get_settings())
    for params in ({"email": "test@test.com"}, {"phone": "0000000000"}, {"loyalty_id": "n/a"}):
        for resp, body in (call(fns, "lookup_profile_by_body", "POST", body=params),
                           call(fns, "lookup_profile", params=params)):
            assert resp.status_code == 404 and "placeholder" in body["detail"], (params, body)
    for params in ({"email": "not an email"}, {"phone": "020 7946 0018"}):
        for resp, body in (call(fns, "lookup_profile_by_body", "POST", body=params),
                           call(fns, "lookup_profile", params=params)):
            assert resp.status_code == 400 and "malformed" in body["detail"], (params, body)


def test_get_profiles_lookup_is_still_the_profile_with_id_lookup(fns, mem):
    """POST /profiles/lookup is a route of its own; GET (and DELETE) /profiles/lookup still name a profile id."""
    resp, body = call(fns, "get_profile", route_params={"profile_id": "lookup"})
    assert resp.status_code == 404 and body["detail"] == "no profile with this id"
    triggers = {name: fn.get_trigger() for name, fn in fns.items() if fn.get_trigger().type == "httpTrigger"}
    on_lookup = {m.value for name, t in triggers.items() if t.route == "profiles/lookup" for m in t.methods}
    on_profile_id = {m.value for name, t in triggers.items() if t.route == "profiles/{profile_id}" for m in t.methods}
    assert on_lookup == {"POST"} and "POST" not in on_profile_id  # no route order decides between them
