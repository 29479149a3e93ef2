"""Values a deployment blocks (protection.blocked_values of config/identity.json): a store's walk-in email or its
own phone, typed at the till for customers who give none, are left out of every record as built-in placeholders
(test@test.com, 0000000000) are, so they neither link customers by rule nor count as evidence in scoring."""
from __future__ import annotations

import json
import re

import pytest

from shared.api.errors import ApiError
from shared.api.profiles import lookup
from shared.identity import get_profile, resolve_records
from shared.identity.config import IdentityConfigError, load_identity_config
from shared.identity.engine import NO_USABLE_FIELD
from shared.models import CustomerRecord
from shared.settings import Settings
from shared.store import MemoryStore

WALK_IN = "walkin@mystore.co.uk"
BLOCKED = {"email": ["  WalkIn@MyStore.co.uk "], "phone": ["+44 20 7946 0000"], "loyalty_id": ["l-999 001"],
           "Member_No": [" STORE 1 "]}


def configured(tmp_path, blocked=None) -> Settings:
    path = tmp_path / "identity.json"
    path.write_text(json.dumps({"protection": {"blocked_values": BLOCKED if blocked is None else blocked}}))
    return Settings(identity_config=str(path))


def walk_ins():
    """Two different customers called Ann Lee whom the cashier gave the store's walk-in email."""
    return [
        CustomerRecord(source="pos", record_key="1", given_name="Ann", family_name="Lee", email=WALK_IN,
                       postcode="SW1A 1AA", city="London"),
        CustomerRecord(source="pos", record_key="2", given_name="Ann", family_name="Lee", email="WALKIN@mystore.co.uk",
                       postcode="LS1 4AP", city="Leeds"),
    ]


# --- configuration --------------------------------------------------------------------------------------------

def test_blocked_values_are_normalized_at_load_as_records_are(tmp_path):
    policy = load_identity_config(configured(tmp_path).identity_config).protection
    assert policy.blocked_values == {"email": {WALK_IN}, "phone": {"+442079460000"}, "loyalty_id": {"L999001"},
                                     "member_no": {"STORE1"}}  # a custom identifier keeps its case
    assert load_identity_config().protection.blocked_values == {}  # the shipped file blocks nothing of its own


@pytest.mark.parametrize("blocked,where", [
    ({"phone": ["+44 20 7946 0001", "020 7946 0000"]}, "protection.blocked_values.phone[1]: '020 7946 0000' is not a "
                                                        "phone number in international form"),
    ({"email": [""]}, "protection.blocked_values.email[0]: '' normalizes to nothing"),
    ({"email": ["walk-in at the till"]}, "protection.blocked_values.email[0]: 'walk-in at the till' normalizes to "
                                         "nothing: not an email address"),
    ({"loyalty_id": ["--"]}, "protection.blocked_values.loyalty_id[0]: '--' normalizes to nothing"),
    ({"member_no": ["   "]}, "protection.blocked_values.member_no[0]: '   ' normalizes to nothing"),
    ({"birth_date": ["1985-01-01"]}, "protection.blocked_values.birth_date: not an identifier type"),
    ({"email": WALK_IN}, "protection.blocked_values.email: Input should be a valid list"),
])
def test_a_value_that_cannot_be_blocked_fails_the_config_with_its_place(tmp_path, blocked, where):
    with pytest.raises(IdentityConfigError, match=r"identity\.json: " + re.escape(where)):
        load_identity_config(configured(tmp_path, blocked).identity_config)


# --- resolution ---------------------------------------------------------------------------------------------

def test_customers_given_the_walk_in_email_stay_apart(store, tmp_path):
    default = resolve_records(MemoryStore(), walk_ins(), settings=Settings())
    assert [r.action for r in default] == ["created", "linked"]  # one profile by rule, without the config
    assert default[1].reason == "rule:email"
    first, second = resolve_records(store, walk_ins(), settings=configured(tmp_path))
    assert (first.action, second.action) == ("created", "created"), (first, second)
    assert first.profile_id != second.profile_id


def test_a_blocked_email_claims_nothing_and_keys_nothing(store, tmp_path):
    default_store = MemoryStore()
    resolve_records(default_store, walk_ins()[:1], settings=Settings())
    assert default_store.container("blocking").read_item_or_none("eu:walkin", "eu:walkin") is not None
    assert default_store.container("identifiers").read_item_or_none(f"email:{WALK_IN}", f"email:{WALK_IN}")

    (result,) = resolve_records(store, walk_ins()[:1], settings=configured(tmp_path))
    assert store.container("blocking").read_item_or_none("eu:walkin", "eu:walkin") is None
    assert store.container("identifiers").read_item_or_none(f"email:{WALK_IN}", f"email:{WALK_IN}") is None
    (entry,) = get_profile(store, result.profile_id)["records"]
    assert not any(key.startswith("eu:") for key in entry["blocking_keys"])
    assert not {"email", "email_user", "email_domain"} & entry["match"].keys()  # no evidence for scoring either
    assert entry["values"]["email"] == WALK_IN  # the record as the source sent it is kept


def test_a_record_with_only_a_blocked_email_and_a_name_is_quarantined(store, tmp_path):
    record = CustomerRecord(source="pos", record_key="3", given_name="Ann", family_name="Lee", email=WALK_IN)
    assert resolve_records(MemoryStore(), [record], settings=Settings())[0].action == "created"
    (result,) = resolve_records(store, [record], settings=configured(tmp_path))
    assert (result.action, result.profile_id) == ("quarantined", None)
    # why, by field name (never the value): the email is what the deployment blocks
    assert result.reason == f"{NO_USABLE_FIELD}; left out as a placeholder, blocked or not valid: email"


def test_the_store_phone_written_nationally_is_blocked(store, tmp_path):
    records = [CustomerRecord(source="pos", record_key=str(i), given_name="Sam", family_name="Okafor",
                              phone=" 020 7946 0000", phone_region="GB", city=city)
               for i, city in enumerate(("Leeds", "York"))]
    assert resolve_records(MemoryStore(), records, settings=Settings())[1].reason == "rule:phone"
    first, second = resolve_records(store, records, settings=configured(tmp_path))
    assert (first.action, second.action) == ("created", "created") and first.profile_id != second.profile_id
    assert get_profile(store, first.profile_id)["identifiers"] == ["source:pos|0"]


def test_a_blocked_custom_identifier_and_loyalty_id_link_nobody(store, tmp_path):
    records = [
        CustomerRecord(source="pos", record_key="1", given_name="Ann", family_name="Lee", city="Leeds",
                       identifiers={"member_no": "STORE 1"}, loyalty_id="L999001"),
        CustomerRecord(source="pos", record_key="2", given_name="Omar", family_name="Haddad", city="York",
                       identifiers={"member_no": "STORE1"}, loyalty_id="l 999 001"),
    ]
    assert resolve_records(MemoryStore(), records, settings=Settings())[1].action == "linked"
    first, second = resolve_records(store, records, settings=configured(tmp_path))
    assert (first.action, second.action) == ("created", "created") and first.profile_id != second.profile_id
    assert store.container("identifiers").read_item_or_none("member_no:STORE1", "member_no:STORE1") is None
    assert get_profile(store, second.profile_id)["identifiers"] == ["source:pos|2"]


def test_lanes_leave_blocked_values_out_too(tmp_path):
    from shared.identity.lanes import resolve_in_lanes

    results = resolve_in_lanes(MemoryStore(), walk_ins(), settings=configured(tmp_path), workers=2)
    assert [r.action for r in results] == ["created", "created"]


def test_with_email_provider_rules_off_a_blocked_email_is_matched_as_written(store, tmp_path):
    """Blocked emails are normalized as records are: with provider rules on, a tagged gmail blocks its mailbox in
    every form; with them off (normalization.email_provider_rules), only that address."""
    blocked = {"email": ["Ann.Lee+Work@gmail.com"]}
    assert load_identity_config(configured(tmp_path, blocked).identity_config).protection.blocked_values == {
        "email": {"annlee@gmail.com"}}
    path = tmp_path / "off.json"
    path.write_text(json.dumps({"normalization": {"email_provider_rules": False},
                                "protection": {"blocked_values": blocked}}))
    settings = Settings(identity_config=str(path))
    assert load_identity_config(path).protection.blocked_values == {"email": {"ann.lee+work@gmail.com"}}
    records = [
        CustomerRecord(source="pos", record_key="1", given_name="Ann", family_name="Lee",
                       email="ann.lee+work@gmail.com", postcode="LS1 4AP", city="Leeds"),
        CustomerRecord(source="web", record_key="2", given_name="Ann", family_name="Lee", email="annlee@gmail.com",
                       postcode="SW1A 1AA", city="London"),
    ]
    first, second = resolve_records(store, records, settings=settings)
    assert get_profile(store, first.profile_id)["identifiers"] == ["source:pos|1"]
    assert "email:annlee@gmail.com" in get_profile(store, second.profile_id)["identifiers"]
    with pytest.raises(ApiError) as err:
        lookup(store, {"email": "ann.lee+work@gmail.com"}, settings)
    assert err.value.status == 404 and "blocked" in err.value.detail
    assert lookup(store, {"email": "annlee@gmail.com"}, settings).body["id"] == second.profile_id

    on = resolve_records(MemoryStore(), records, settings=configured(tmp_path, blocked))  # the default: both blocked
    assert [r.action for r in on] == ["created", "created"] and on[0].profile_id != on[1].profile_id


# --- lookup -------------------------------------------------------------------------------------------------

def test_lookup_of_a_blocked_value_answers_404_saying_it_is_blocked(store, tmp_path):
    """Claimed before it was blocked, the walk-in email stays in its profile, but names nobody any more."""
    from shared.identity import is_blocked_identifier

    (before,) = resolve_records(store, walk_ins()[:1], settings=Settings())
    assert lookup(store, {"email": WALK_IN}, Settings()).body["id"] == before.profile_id
    settings = configured(tmp_path)
    assert is_blocked_identifier(f"email:{WALK_IN}", settings)
    with pytest.raises(ApiError) as err:
        lookup(store, {"email": " WalkIn@MyStore.co.uk"}, settings)
    assert err.value.status == 404 and "blocked" in err.value.detail and "protection.blocked_values" in err.value.detail
    with pytest.raises(ApiError) as err:
        lookup(store, {"id_type": "member_no", "id": "STORE 1"}, settings)
    assert err.value.status == 404 and "blocked" in err.value.detail
    assert lookup(store, {"email": WALK_IN}, Settings()).body["id"] == before.profile_id  # the claim is kept


# Built-in placeholders, well formed for their type: normalization leaves each out of every record.
PLACEHOLDERS = [
    {"email": "test@test.com"}, {"email": " TEST@Test.com "}, {"email": "noreply@example.com"}, {"email": "N/A"},
    {"phone": "0000000000"}, {"phone": "000-000-0000", "region": "GB"}, {"phone": "+34 666 666 666"},
    {"phone": "1234567890"}, {"phone": "n/a"},
    {"loyalty_id": "n/a"}, {"loyalty_id": "0000"}, {"loyalty_id": "--"},
    {"id_type": "member_no", "id": "unknown"},
]
# Malformed: not an email, a phone number with letters or that cannot be parsed (national without a region).
MALFORMED = [
    ({"email": "not an email"}, ""), ({"email": "ann.lee@"}, ""), ({"phone": "call me"}, ""),
    ({"phone": "020 7946 0018"}, "region"),
]


def test_lookup_of_a_built_in_placeholder_answers_404_like_a_blocked_value(store):
    """test@test.com, 0000000000, n/a identify nobody, as a value the deployment blocks does: 404 saying so, not
    400. A record given one keeps it as received, claims nothing by it, and the lookup finds nobody by it."""
    (ann,) = resolve_records(store, [CustomerRecord(source="pos", record_key="1", given_name="Ann", family_name="Lee",
                                                    email="test@test.com", phone="0000000000", loyalty_id="0000",
                                                    identifiers={"member_no": "unknown"}, city="Leeds")],
                             settings=Settings())
    assert ann.action == "created" and get_profile(store, ann.profile_id)["identifiers"] == ["source:pos|1"]
    for params in PLACEHOLDERS:
        with pytest.raises(ApiError) as err:
            lookup(store, params, Settings())
        detail = err.value.detail
        assert err.value.status == 404 and "placeholder" in detail and "identifies nobody" in detail, params
        assert "malformed" not in detail, params


@pytest.mark.parametrize("params,hint", MALFORMED)
def test_lookup_of_a_malformed_value_still_answers_400(store, params, hint):
    with pytest.raises(ApiError) as err:
        lookup(store, params, Settings())
    assert err.value.status == 400 and "malformed" in err.value.detail and "placeholder" not in err.value.detail
    assert hint in err.value.detail


def test_a_placeholder_is_what_normalization_leaves_out_and_nothing_else():
    """One decision: every value the lookup calls a placeholder is left out of a record by normalization (so no
    profile can hold it), a usable value is not one, and neither is a malformed one."""
    from shared.identity import is_placeholder_identifier, normalized_identifier

    for params in PLACEHOLDERS:
        id_type = params.get("id_type") or next(k for k in params if k != "region")
        value = params.get("id") or params[id_type]
        assert normalized_identifier(id_type, value, region=params.get("region")) is None, params
        assert is_placeholder_identifier(id_type, value, region=params.get("region")), params
    for params, _ in MALFORMED:
        (id_type, value), = ((k, v) for k, v in params.items() if k != "region")
        assert not is_placeholder_identifier(id_type, value), params
    for id_type, value in (("email", "ann.lee@shopmail.net"), ("phone", "+44 20 7946 0018"),
                           ("loyalty_id", "L-100"), ("member_no", "M-7781"), ("source", "pos|1")):
        assert normalized_identifier(id_type, value) is not None
        assert not is_placeholder_identifier(id_type, value), (id_type, value)
