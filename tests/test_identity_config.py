"""The resolver's rules from config/identity.json (or UCP_IDENTITY_CONFIG): merge protection, survivorship,
candidate limits; an invalid file fails with every error located."""
from __future__ import annotations

import json

import pytest

from shared.api.errors import ApiError
from shared.api.profiles import lookup
from shared.identity import ResolverConfig, find_profile_id, get_profile, resolve_records
from shared.identity.config import DEFAULT_CONFIG_PATH, IdentityConfigError, load_identity_config
from shared.models import CustomerRecord
from shared.settings import Settings
from shared.identity.protection import ProtectionPolicy
from shared.store import MemoryStore


def test_shipped_file_holds_the_documented_defaults():
    assert load_identity_config() == ResolverConfig()
    assert json.loads(DEFAULT_CONFIG_PATH.read_text())["protection"]["limits"]["loyalty_id"] == 1


def cards(store, settings):
    return resolve_records(store, [
        CustomerRecord(source="loyalty", record_key="1", given_name="Claire", family_name="Moreau",
                       email="claire.m77@shopmail.net", loyalty_id="633700001", updated_at="2026-01-02T00:00:00Z"),
        CustomerRecord(source="pos", record_key="2", given_name="Claire", family_name="Moreau", phone="+33612345678",
                       email="claire.m77@shopmail.net", loyalty_id="633700002", updated_at="2026-03-02T00:00:00Z"),
    ], settings=settings)


def test_a_deployment_allows_two_cards_and_trusts_its_loyalty_system(store, tmp_path):
    """With the defaults a second loyalty card goes to review; a file allowing two cards per profile links it,
    and source priority makes the loyalty system's values win over the newer till record's."""
    default = cards(store, Settings())
    assert default[1].action == "review"
    path = tmp_path / "identity.json"
    path.write_text(json.dumps({"protection": {"limits": {"loyalty_id": 2}},
                                "survivorship": {"rules": {"loyalty_id": "source_priority"},
                                                 "source_priority": ["loyalty", "pos"]}}))
    fresh = MemoryStore()
    first, second = cards(fresh, Settings(identity_config=str(path)))
    assert second.action == "linked" and second.profile_id == first.profile_id
    profile = get_profile(fresh, first.profile_id)
    assert profile["attributes"]["loyalty_id"]["value"] == "633700001"  # the loyalty system's own card
    assert profile["attributes"]["loyalty_id"]["rule"] == "source_priority"
    assert profile["attributes"]["phone"]["source"] == "pos"


def test_a_deployment_can_leave_double_surnames_unprotected(store, tmp_path):
    """By default a father's and a son's double surnames (Molina Ruiz, Molina González) block the email rule that
    their family mailbox would apply; a file whose limit-1 attributes leave `surnames` out links them."""
    def family(store, settings):
        home = dict(given_name="Carlos", email="casamolina@hotmail.com", postcode="50004", country="ES")
        return resolve_records(store, [
            CustomerRecord(source="shop", record_key="1", family_name="Molina Ruiz", **home),
            CustomerRecord(source="shop", record_key="2", family_name="Molina González", **home)], settings=settings)
    assert family(store, Settings())[1].reason == "conflict:surnames"
    path = tmp_path / "identity.json"
    path.write_text(json.dumps({"protection": {"limit_one_attributes": ["birth_date", "generation"]}}))
    first, second = family(MemoryStore(), Settings(identity_config=str(path)))
    assert second.action == "linked" and second.profile_id == first.profile_id


@pytest.mark.parametrize("body,where", [
    ({"protection": {"limitz": {}}}, "protection.limitz"),
    ({"survivorship": {"default_rule": "newest"}}, "survivorship.default_rule"),
    ({"protection": {"limits": {"email": 0}}}, "a limit is at least 1"),
    ({"max_candidates": 0}, "max_candidates"),
    # inconsistent values that once loaded and then were silently ignored, or changed every decision
    ({"protection": {"limit_one_attributes": ["birthdate"]}}, "birthdate is not an attribute protection compares"),
    ({"protection": {"limit_one_attributes": ["address_line1"]}}, "address_line1 is not an attribute"),
    ({"protection": {"priority": ["email", "EMAIL"]}}, "protection.priority: a type is listed twice"),
    ({"protection": {"limits": {"source": 1}}}, "source has no limit"),
    ({"protection": {"limits": {"loyalty_id": True}}}, "protection.limits.loyalty_id"),
    ({"protection": {"max_merges": "5"}}, "protection.max_merges"),
    ({"normalization": {"email_provider_rules": "no"}}, "normalization.email_provider_rules"),
    ({"normalization": {"gmail_dots": False}}, "normalization.gmail_dots"),
])
def test_invalid_file_fails_with_the_error_located(tmp_path, body, where):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(body))
    with pytest.raises(IdentityConfigError, match=where.replace(".", r"\.")):
        load_identity_config(path)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(IdentityConfigError, match="does not exist"):
        load_identity_config(tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(IdentityConfigError, match="not valid JSON"):
        load_identity_config(broken)


# --- normalization.email_provider_rules ----------------------------------------------------------------------

def provider_rules_off(tmp_path, **protection) -> Settings:
    path = tmp_path / "identity.json"
    path.write_text(json.dumps({"normalization": {"email_provider_rules": False}, "protection": protection}))
    return Settings(identity_config=str(path))


# One Ann Lee with a work +tag at gmail, another without it and its dot: one mailbox to gmail, two to a deployment
# that turns provider rules off.
ANNS = [
    CustomerRecord(source="web", record_key="1", given_name="Ann", family_name="Lee", email="ann.lee+work@gmail.com",
                   postcode="LS1 4AP", city="Leeds"),
    CustomerRecord(source="pos", record_key="2", given_name="Ann", family_name="Lee", email="annlee@gmail.com",
                   postcode="SW1A 1AA", city="London"),
]


def test_email_provider_rules_are_on_unless_the_file_turns_them_off(tmp_path):
    assert json.loads(DEFAULT_CONFIG_PATH.read_text())["normalization"] == {"email_provider_rules": True}
    assert load_identity_config().email_provider_rules is True
    config = load_identity_config(provider_rules_off(tmp_path).identity_config)
    assert config.email_provider_rules is False and config.protection.email_provider_rules is False
    assert config == ResolverConfig(email_provider_rules=False)  # its protection follows it


def test_a_resolver_config_refuses_blocked_emails_normalized_the_other_way():
    """Blocked emails are normalized when the policy is made: with provider rules off, the policy must be made so."""
    blocked = {"email": ["ann.lee+work@gmail.com"]}
    with pytest.raises(ValueError, match="email_provider_rules"):
        ResolverConfig(protection=ProtectionPolicy(blocked_values=blocked), email_provider_rules=False)
    config = ResolverConfig(protection=ProtectionPolicy(blocked_values=blocked, email_provider_rules=False),
                            email_provider_rules=False)
    assert config.protection.blocked_values == {"email": {"ann.lee+work@gmail.com"}}
    assert ResolverConfig(protection=ProtectionPolicy(blocked_values={"phone": ["+442079460000"]}),
                          email_provider_rules=False).protection.email_provider_rules is False


def test_with_email_provider_rules_off_a_tagged_gmail_is_another_persons(store, tmp_path):
    """Two identifiers, two profiles; a lookup by either (the API's, find_profile_id) finds its own profile."""
    default = resolve_records(MemoryStore(), ANNS, settings=Settings())
    assert (default[1].action, default[1].reason) == ("linked", "rule:email")
    assert default[1].profile_id == default[0].profile_id
    settings = provider_rules_off(tmp_path)
    first, second = resolve_records(store, ANNS, settings=settings)
    assert (first.action, second.action) == ("created", "created") and first.profile_id != second.profile_id
    assert "email:ann.lee+work@gmail.com" in get_profile(store, first.profile_id)["identifiers"]
    assert "email:annlee@gmail.com" in get_profile(store, second.profile_id)["identifiers"]
    assert lookup(store, {"email": " Ann.Lee+Work@Gmail.com"}, settings).body["id"] == first.profile_id
    assert lookup(store, {"email": "annlee@gmail.com"}, settings).body["id"] == second.profile_id
    assert find_profile_id(store, "email", "ann.lee+work@gmail.com", settings=settings) == first.profile_id
    assert find_profile_id(store, "email", "AnnLee@gmail.com", settings=settings) == second.profile_id
    with pytest.raises(ApiError) as err:  # another mailbox again: nobody has it
        lookup(store, {"email": "ann.lee@googlemail.com"}, settings)
    assert err.value.status == 404 and "no profile has this email" in err.value.detail


def test_with_email_provider_rules_on_lookups_fold_as_before(store):
    first, second = resolve_records(store, ANNS, settings=Settings())
    assert second.profile_id == first.profile_id
    for email in ("ann.lee+work@gmail.com", "annlee@gmail.com", "a.n.n.l.e.e+promo@googlemail.com"):
        assert lookup(store, {"email": email}, Settings()).body["id"] == first.profile_id
        assert find_profile_id(store, "email", email, settings=Settings()) == first.profile_id


def test_lanes_and_the_queue_worker_honour_email_provider_rules_off(tmp_path):
    from shared.identity.lanes import resolve_in_lanes

    results = resolve_in_lanes(MemoryStore(), ANNS, settings=provider_rules_off(tmp_path), workers=2)
    assert [r.action for r in results] == ["created", "created"]
    assert results[0].profile_id != results[1].profile_id
