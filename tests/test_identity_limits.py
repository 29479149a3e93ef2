"""Identity documents within Cosmos DB limits (from an independent review; each test failed first).
Every docstring says what goes wrong in production and why. The tests after them pin the fix (shared/identity/bounds.py,
docs.identifier_id, the records cap of merge protection).
"""
from __future__ import annotations

import json

import pytest

from shared.settings import Settings
from shared.store import MemoryStore

SETTINGS = Settings()

# Cosmos DB service limits (learn.microsoft.com/azure/cosmos-db/concepts-limits, "Per-item limits"): an item is at
# most 2 MB of JSON, an id at most 1,023 bytes.
MAX_ITEM_BYTES = 2 * 1024 * 1024
MAX_ID_BYTES = 1023


def _json_bytes(doc) -> int:
    return len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())


def _all_docs(store: MemoryStore):
    from shared.store.schema import CONTAINERS

    for name in CONTAINERS:
        for doc in store.container(name).query_items():
            yield name, doc


# =============================================================================================================
# 2. Documents that grow without bound toward the 2 MB item limit
# =============================================================================================================

def test_a_busy_profile_document_stays_under_the_cosmos_item_size_limit():
    """Production: once a profile collects a few hundred records, every further record that links to it fails
    with 413 RequestEntityTooLarge (surfaced as a bare StoreError, status 500), the resolve message is retried
    5 times and poisoned with every other record in it, and the customer can never be updated again.

    Why: the identity engine keeps every linked record inside the profile document - its raw values, match
    snapshot, blocking keys (engine.py _entry/_link, merge.py:157) - plus every distinct conflicting value
    ("conflicts"). Nothing caps records or bytes per profile: the only cap, max_identifiers=1000, allows ~1000
    records. A shared store/household email with ~1.5 KB of CRM notes per record (~3.6 KB per record in the
    document, with its conflict list) passes 2 MB at ~580 records.
    MemoryStore (and the emulator) accept any size, so no test sees the limit."""
    from shared.identity import resolve_records
    from shared.models import CustomerRecord

    store = MemoryStore()
    records = [CustomerRecord(source="pos", record_key=f"till-{i}", email="walkin@northwind-store.com",
                              given_name="Store", family_name="Walkin",
                              attributes={"crm_notes": f"visit {i}: " + "preferences and consent notes " * 50})
               for i in range(600)]
    resolve_records(store, records, settings=SETTINGS)

    too_big = {(name, doc["id"]): _json_bytes(doc) for name, doc in _all_docs(store)
               if _json_bytes(doc) > MAX_ITEM_BYTES}
    assert too_big == {}, f"documents Cosmos DB refuses (> 2 MB): {too_big}"


# =============================================================================================================
# 3. Ids Cosmos DB refuses
# =============================================================================================================

def test_identifier_ids_stay_within_the_cosmos_id_length_limit():
    """Production: one customer row whose loyalty id (or any custom identifier) is long - a mis-mapped column
    holding a card blob, a token - makes the identifier claim fail with 400 BadRequest (id > 1,023 bytes). The
    resolver does not catch it, so the whole queue message (up to 1,000 records) is retried and poisoned
    (shared/identity/lanes.py: one failure fails the message).

    Why: identifier ids are "<type>:<normalized value>" (docs.identifier_id) and the identifier container is
    partitioned by that id; normalize_loyalty_id / normalize_identifier keep values of any length (emails are
    capped at 254 by their validator, the rest are not), and CosmosContainer only escapes characters of the id, which
    makes it longer. MemoryStore and the emulator accept any id length, so no test sees it."""
    from shared.identity import resolve_records
    from shared.models import CustomerRecord
    from shared.store.cosmos import encode_id

    store = MemoryStore()
    card_blob = "LC-" + "9f3a" * 300  # 1,203 characters
    results = resolve_records(store, [
        CustomerRecord(source="pos", record_key="r1", given_name="Ann", family_name="Lee", loyalty_id=card_blob,
                       email="ann.lee@shopmail.net"),
        CustomerRecord(source="app", record_key="r2", given_name="Bob", family_name="Ray",  # a session JWT
                       identifiers={"app_user_token": "eyJhbGciOiJSUzI1NiJ9." + "eyJzdWIiOiJib2IifQ" * 60}),
    ], settings=SETTINGS)
    assert [r.action for r in results] == ["created", "created"]

    too_long = sorted(f"{name}: {doc['id'][:24]}... ({len(encode_id(doc['id']).encode())} bytes)"
                      for name, doc in _all_docs(store) if len(encode_id(doc["id"]).encode()) > MAX_ID_BYTES)
    assert too_long == [], f"ids Cosmos DB refuses (> {MAX_ID_BYTES} bytes): {too_long}"


# =============================================================================================================
# The fix: a records cap per profile (merge protection), a size bound per record entry, ids that always fit
# =============================================================================================================

@pytest.fixture(params=["memory", "cosmos"])
def store(request):
    if request.param == "memory":
        return MemoryStore()
    return request.getfixturevalue("cosmos_store")


def _capped(tmp_path, max_records: int) -> Settings:
    """Settings whose identity configuration caps profiles at `max_records` records (as a deployment sets it)."""
    path = tmp_path / "identity.json"
    path.write_text(json.dumps({"protection": {"max_records": max_records}}))
    return SETTINGS.model_copy(update={"identity_config": str(path)})


def _walk_in(i: int, **extra):
    from shared.models import CustomerRecord

    return CustomerRecord(source="pos", record_key=f"till-{i}", email="walkin@northwind-store.com",
                          given_name="Store", family_name="Walkin", **extra)


def _profiles(store) -> list[dict]:
    return [p for p in store.container("profiles").query_items() if p.get("doc_type") == "profile"]


def test_a_full_profile_sends_the_next_record_to_a_profile_of_its_own_and_to_review(store, tmp_path):
    from shared.identity import resolve_records

    settings = _capped(tmp_path, 3)
    results = resolve_records(store, [_walk_in(i) for i in range(5)], settings=settings)
    assert [r.action for r in results[:3]] == ["created", "linked", "linked"]
    full = results[0].profile_id
    assert results[3].action == "review" and results[3].reason == "cap:records"
    assert results[3].profile_id != full
    assert results[4].profile_id != full and "review:cap:records" in results[4].reason
    assert sorted(len(p["records"]) for p in _profiles(store)) == [2, 3]
    reviews = list(store.container("review").query_items())
    assert {r["reason"] for r in reviews} == {"cap:records"} and {r["candidate_profile_id"] for r in reviews} == {full}
    # The full profile keeps its identifier; the overflow profile does not list it.
    overflow = store.container("profiles").read_item(results[3].profile_id, results[3].profile_id)
    assert "email:walkin@northwind-store.com" not in overflow["identifiers"]
    # Its records arriving again change nothing.
    again = resolve_records(store, [_walk_in(i) for i in range(5)], settings=settings)
    assert [r.action for r in again] == ["unchanged"] * 5


def test_a_profile_over_its_merges_cap_still_takes_plain_links(store, tmp_path):
    """A person may approve a merge past max_merges (or the cap may be lowered later): the profile's next records
    still link to it, since a link merges nothing; only a further merge is held for review."""
    from shared.identity import resolve_records
    from shared.models import CustomerRecord

    def ann(key, **ids):
        return CustomerRecord(source="crm", record_key=key, given_name="Ann", family_name="Lee", **ids)

    merged = resolve_records(store, [ann("1", email="ann1@lee-mail.net"), ann("2", phone="+14155550123"),
                                     ann("3", email="ann1@lee-mail.net", phone="+14155550123"),
                                     ann("7", email="ann7@lee-mail.net"),
                                     ann("8", email="ann7@lee-mail.net", phone="+14155550123")], settings=SETTINGS)
    assert [r.action for r in merged] == ["created", "created", "merged", "created", "merged"]
    path = tmp_path / "identity.json"
    path.write_text(json.dumps({"protection": {"max_merges": 1}}))  # two made already
    lowered = SETTINGS.model_copy(update={"identity_config": str(path)})
    later = [ann("4", email="ann1@lee-mail.net"), ann("5", email="ann5@lee-mail.net"),
             ann("6", email="ann5@lee-mail.net", phone="+14155550123")]
    link, apart, bridge = resolve_records(store, later, settings=lowered)
    assert (link.action, link.profile_id) == ("linked", merged[2].profile_id)
    assert apart.action == "created" and "review:cap:merges" in bridge.reason


def test_a_merge_past_the_records_cap_is_not_made_and_cannot_be_approved(store, tmp_path):
    from shared.identity import get_profile, resolve_records
    from shared.identity.review import ReviewDecisionError, approve_review, reject_review
    from shared.models import CustomerRecord

    settings = _capped(tmp_path, 3)
    by_email = [CustomerRecord(source="web", record_key=f"e{i}", email="ann.lee@shopmail.net", given_name="Ann",
                               family_name="Lee") for i in range(2)]
    by_phone = [CustomerRecord(source="pos", record_key=f"p{i}", phone="+447911123456", given_name="Ann",
                               family_name="Lee") for i in range(2)]
    a, _, b, _ = resolve_records(store, by_email + by_phone, settings=settings)
    assert a.profile_id != b.profile_id
    bridge, = resolve_records(store, [CustomerRecord(source="crm", record_key="x", email="ann.lee@shopmail.net",
                                                     phone="+447911123456", given_name="Ann", family_name="Lee")],
                              settings=settings)
    assert bridge.action == "linked" and "review:cap:records" in bridge.reason  # 2 + 2 + 1 > 3
    assert len(get_profile(store, a.profile_id)["records"]) + len(get_profile(store, b.profile_id)["records"]) == 5
    review, = [r for r in store.container("review").query_items() if r["reason"] == "cap:records"]
    with pytest.raises(ReviewDecisionError, match="more than 3 records"):
        approve_review(store, review["id"], settings=settings)
    assert store.container("review").read_item(review["id"], review["id"])["status"] == "open"
    assert reject_review(store, review["id"], settings=settings)["status"] == "rejected"


def test_a_profile_filled_by_another_worker_meanwhile_is_not_overfilled(tmp_path, monkeypatch):
    """The cap is decided on the profile as read; another worker may link records to it before this one writes.
    The write sees the profile changed (its ETag), and when it is full by then the record is decided again."""
    from shared.identity import resolve_records
    from shared.identity import engine

    settings = _capped(tmp_path, 2)
    store = MemoryStore()
    first, = resolve_records(store, [_walk_in(0)], settings=settings)
    link = engine._Work._link
    meanwhile = []

    def another_worker_first(work, target, claims, how):
        if work.key == "pos|till-2" and not meanwhile:
            meanwhile.append(resolve_records(store, [_walk_in(1)], settings=settings)[0])
        return link(work, target, claims, how)

    monkeypatch.setattr(engine._Work, "_link", another_worker_first)
    late, = resolve_records(store, [_walk_in(2)], settings=settings)
    assert meanwhile[0].profile_id == first.profile_id
    assert late.profile_id != first.profile_id and late.action == "review" and late.reason == "cap:records"
    assert sorted(len(p["records"]) for p in _profiles(store)) == [1, 2]


def test_the_records_cap_cannot_be_configured_past_what_keeps_a_profile_under_2_mb(tmp_path):
    from shared.identity import ProtectionPolicy
    from shared.identity.config import IdentityConfigError, load_identity_config
    from shared.identity.protection import MAX_RECORDS_LIMIT

    assert load_identity_config(None).protection.max_records == MAX_RECORDS_LIMIT == 100
    path = tmp_path / "identity.json"
    path.write_text(json.dumps({"protection": {"max_records": 101}}))
    with pytest.raises(IdentityConfigError, match="max_records"):
        load_identity_config(path)
    with pytest.raises(ValueError):
        ProtectionPolicy(max_records=0)


def test_a_long_free_text_value_is_cut_in_the_profile_and_kept_whole_in_the_records_container():
    from shared.identity import get_profile, resolve_records
    from shared.identity.bounds import CUT_CHARS, ELLIPSIS, ENTRY_BYTES
    from shared.privacy import export_profile

    store = MemoryStore()
    notes = "called about the order; " * 4000  # 96 KB
    first, second = resolve_records(store, [_walk_in(1, attributes={"crm_notes": notes, "tier": "gold"}),
                                            _walk_in(2, attributes={"crm_notes": "short"})], settings=SETTINGS)
    assert (first.action, second.action) == ("created", "linked")
    profile = get_profile(store, first.profile_id)
    entry = next(r for r in profile["records"] if r["key"] == "pos|till-1")
    assert entry["cut"] is True and entry["values"]["tier"] == "gold"
    assert entry["values"]["crm_notes"] == notes[:CUT_CHARS - 1] + ELLIPSIS
    shown = [profile["attributes"]["crm_notes"]["value"], *(c["value"] for c in profile["conflicts"]["crm_notes"])]
    assert sorted(shown) == sorted([entry["values"]["crm_notes"], "short"])
    assert _json_bytes(profile) < 2 * ENTRY_BYTES
    assert "cut" not in next(r for r in profile["records"] if r["key"] == "pos|till-2")
    whole = store.container("records").read_item("pos|till-1", "pos|till-1")
    assert whole["record"]["attributes"]["crm_notes"] == notes
    exported = export_profile(store, profile)
    assert any(r["record"].get("attributes", {}).get("crm_notes") == notes for r in exported["source_records"])


def test_many_attributes_are_left_out_of_the_profile_copy_last_first():
    from shared.identity import resolve_records
    from shared.identity.bounds import ENTRY_BYTES, footprint

    store = MemoryStore()
    attributes = {f"survey_answer_{i:04d}": f"answer {i} " * 20 for i in range(400)}  # ~90 KB in 400 values
    result, = resolve_records(store, [_walk_in(1, attributes=attributes)], settings=SETTINGS)
    assert result.action == "created"
    entry, = store.container("profiles").read_item(result.profile_id, result.profile_id)["records"]
    kept = [name for name in attributes if name in entry["values"]]
    assert entry["cut"] is True and 0 < len(kept) < len(attributes)
    assert kept == list(attributes)[:len(kept)]  # the first ones, as the source sent them
    assert entry["values"]["email"] == "walkin@northwind-store.com"  # the record's own fields are never left out
    ids = ["source:pos|till-1", "email:walkin@northwind-store.com"]
    assert footprint(entry["values"], entry["match"], entry["blocking_keys"], ids, entry["key"],
                     entry["source"]) <= ENTRY_BYTES


def test_a_record_whose_matching_data_alone_passes_the_entry_bound_is_quarantined():
    from shared.identity import resolve_records
    from shared.identity.bounds import TOO_LARGE
    from shared.models import CustomerRecord

    store = MemoryStore()
    many = {f"partner_account_{i:03d}": f"acct-{i:03d}-" + "7" * 30 for i in range(400)}
    result, = resolve_records(store, [CustomerRecord(source="crm", record_key="r1", given_name="Ann",
                                                     family_name="Lee", identifiers=many)], settings=SETTINGS)
    assert (result.action, result.reason, result.profile_id) == ("quarantined", TOO_LARGE, None)
    assert list(store.container("profiles").query_items()) == []


def test_the_cheap_estimate_is_an_upper_bound_of_an_entrys_footprint():
    """Ordinary records are never measured: that is only safe if the estimate never undercounts, whatever the text
    (quotes, backslashes and control characters escaped in JSON, multi-byte UTF-8, compatibility characters that
    folding expands many times over, case mappings that lengthen a loyalty id)."""
    from shared.identity.bounds import estimate, footprint, record_hash
    from shared.identity.docs import record_identifiers, source_identifier
    from shared.identity.engine import _blocking_keys, normalize_for_resolution
    from shared.identity.survivorship import record_values
    from shared.models import CustomerRecord, content_hash_of

    texts = ['say "hi" \\ back\n', "tab\there\x01\x02\x1f", "Zoë Ðuković 王秀英 😀😀", "\ufdfa\ufdfa\u3300\u33ff" * 40,
             "x" * 300, "\u0130stanbul \u00df\u00df \ufb03" * 30, "ﬃ" * 200]
    checked = 0
    for i, text in enumerate(texts):
        for plain_key in (True, False):
            key = f"k{i}" if plain_key else f'{text[:40]}-{i}'
            record = CustomerRecord(
                source="src", record_key=key, given_name=text, family_name=text, full_name=text,
                email=f"{'ann.lee' * 30}{i}@shopmail.net", phone="+447911123456", address_line1=text,
                address_line2=text, street_number=text[:50], city=text, postcode=text[:200], country=text,
                state=text, loyalty_id=text, identifiers={text[:20]: text, "loyalty_id": text},
                attributes={text[:30]: text, "n": 12345678901234567890, "f": -1.5e-300, "b": True, "l": [text]})
            n = normalize_for_resolution(record)
            if not hasattr(n, "given_name"):
                continue
            data = record.model_dump(mode="json", exclude_none=True)
            digest, size = record_hash(data)
            assert digest == content_hash_of(data)  # bounds.record_hash measures the dump content_hash_of hashes
            values = record_values(record, data)
            count = len(data) - 4 + len(record.attributes)  # as the engine counts them, building none
            assert count >= len(values)
            upper = estimate(size, count, record.key, n.email, n.loyalty_id, n.identifiers)
            ids = [source_identifier(record.key), *record_identifiers(n)]
            exact = footprint(values, n.to_dict(), _blocking_keys(n), ids, record.key, record.source)
            assert upper >= exact, (text[:20], plain_key)
            checked += 1
    assert checked >= 12


def test_a_full_profile_of_the_largest_entries_stays_under_2_mb():
    """The bound by construction: a profile is at most the footprints of its entries (each at most ENTRY_BYTES)
    and a little more; here 100 entries (the cap) as large as they come uncut, their values all different (each a
    conflict) and escaped in JSON."""
    from shared.identity import resolve_records
    from shared.identity.bounds import ENTRY_BYTES, footprint
    from shared.identity.maintenance import entry_identifiers

    store = MemoryStore()
    note = ('"quoted\\" ' * 400)[:3300]  # 3,300 characters, 4,290 bytes in JSON
    records = [_walk_in(i, attributes={"crm_notes": f"{i:03d}{note}", "tier": f"t{i}"}) for i in range(101)]
    results = resolve_records(store, records, settings=SETTINGS)
    assert results[-1].action == "review" and results[-1].reason == "cap:records"
    big = max(_profiles(store), key=lambda p: len(p["records"]))
    assert len(big["records"]) == 100 and not any(r.get("cut") for r in big["records"])
    sizes = [footprint(r["values"], r["match"], r["blocking_keys"], sorted(entry_identifiers(r)), r["key"],
                       r["source"]) for r in big["records"]]
    assert ENTRY_BYTES - 1024 < max(sizes) <= ENTRY_BYTES
    assert _json_bytes(big) <= sum(sizes) + 4096 < MAX_ITEM_BYTES


def test_long_identifier_values_get_digest_ids_that_the_same_value_finds_again(store):
    from shared.identity import find_profile_id, normalized_identifier, remove_record, resolve_records, split_record
    from shared.identity.docs import identifier_id, record_identifiers
    from shared.models import CustomerRecord
    from shared.normalize import normalize_record

    card = "LC-" + "9f3a" * 300
    token = "eyJhbGciOiJSUzI1NiJ9." + "eyJzdWIiOiJib2IifQ" * 60
    first, again, other = resolve_records(store, [
        CustomerRecord(source="pos", record_key="r1", given_name="Ann", family_name="Lee", loyalty_id=card),
        CustomerRecord(source="web", record_key="r2", given_name="Ann", family_name="Lee", loyalty_id=card.lower(),
                       identifiers={"app_user_token": token}),
        CustomerRecord(source="app", record_key="r3", given_name="Bob", family_name="Ray",
                       identifiers={"app_user_token": token}),
    ], settings=SETTINGS)
    assert (first.action, again.action, other.action) == ("created", "linked", "linked")
    assert again.profile_id == first.profile_id == other.profile_id  # one card, one token
    iid = normalized_identifier("loyalty_id", card)
    assert iid.startswith("loyalty_id:#") and len(iid) == len("loyalty_id:#") + 40
    assert find_profile_id(store, "loyalty_id", card) == first.profile_id
    assert find_profile_id(store, "app_user_token", token) == first.profile_id
    assert identifier_id("email", "ann@lee.org") == "email:ann@lee.org"  # ids that fit never change
    profile = store.container("profiles").read_item(first.profile_id, first.profile_id)
    assert iid in profile["identifiers"]
    # Taking records out works from the entries (whose snapshots may hold the digest): the card stays claimed
    # while a record holding it remains, and is released with the last one.
    new_id = split_record(store, first.profile_id, "pos|r1", settings=SETTINGS)
    assert store.container("identifiers").read_item(iid, iid)["profile_id"] in {new_id, first.profile_id}
    for key in ("pos|r1", "web|r2", "app|r3"):
        remove_record(store, *key.split("|"), settings=SETTINGS)
    assert store.container("identifiers").read_item_or_none(iid, iid) is None
    assert record_identifiers(normalize_record(CustomerRecord(source="x", record_key="y", loyalty_id=card))) == [iid]


@pytest.mark.parametrize("value", ["/" * 400, "#?\\%" * 100, "é" * 300, "😀" * 300, "a " * 130 + " ", "x" * 249],
                         ids=["escaped", "mixed-escapes", "2-byte", "4-byte", "trailing-space", "just-fits"])
def test_every_id_fits_after_the_cosmos_encoding(value):
    from shared.identity.docs import MAX_ID_BYTES, identifier_id, is_digest, stored_id_bytes
    from shared.store.cosmos import encode_id

    iid = identifier_id("crm_guid", value)
    assert len(encode_id(iid).encode()) <= MAX_ID_BYTES
    assert stored_id_bytes(iid) == len(encode_id(iid).encode())
    if iid != f"crm_guid:{value}":
        digest = iid.split(":", 1)[1]
        assert is_digest(digest) and identifier_id("crm_guid", digest) == iid  # a digest stays as it is
    long_type = identifier_id("t" * 1100, value)
    assert len(encode_id(long_type).encode()) <= MAX_ID_BYTES


def test_long_blocking_keys_and_record_keys():
    """Blocking keys are the ids of their documents: normalization cuts a postcode (and names, address, city) to
    128 characters, and an email is at most 254, so no key outgrows an id. A record key of 4-byte characters may
    pass 1,023 bytes: that record cannot be stored under its key anywhere, so it is quarantined (an ASCII key
    always fits: source <= 64, record key <= 256 characters)."""
    from shared.identity import resolve_records
    from shared.identity.engine import KEY_TOO_LONG
    from shared.models import CustomerRecord
    from shared.normalize import MAX_TEXT_CHARS, normalize_record
    from shared.store.cosmos import encode_id

    store = MemoryStore()
    long_postcode = "SW1A" * 300
    user = "%/?#" * 60 + "12"  # characters Cosmos DB ids escape, and digits: an "eu:" and an "ed:" key
    results = resolve_records(store, [
        CustomerRecord(source="crm", record_key="r1", given_name="Ann", family_name="Lee", birth_date="1980-02-03",
                       postcode=long_postcode, email=f"{user}@lee.org"),
        CustomerRecord(source="web", record_key="r2", given_name="Ann", family_name="Lee", birth_date="1980-02-03",
                       postcode=long_postcode, city="London"),
        CustomerRecord(source="crm", record_key="😀" * 256, email="ann@lee.org"),
        CustomerRecord(source="crm", record_key="k" * 256, email="bob@ray.org"),
    ], settings=SETTINGS)
    assert [r.action for r in results] == ["created", "linked", "quarantined", "created"]
    assert results[2].reason == KEY_TOO_LONG
    for name, doc in _all_docs(store):
        assert len(encode_id(doc["id"]).encode()) <= MAX_ID_BYTES, name
    assert len(normalize_record(CustomerRecord(source="s", record_key="k", postcode=long_postcode,
                                               given_name="x" * 400)).postcode) == MAX_TEXT_CHARS
    keys = {doc["id"] for doc in store.container("blocking").query_items()}
    assert f"pc:{long_postcode[:MAX_TEXT_CHARS]}|n:A500" in keys and any(k.startswith("eu:%/?#") for k in keys)
