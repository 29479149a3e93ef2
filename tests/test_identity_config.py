"""The resolver's rules from config/identity.json (or UCP_IDENTITY_CONFIG): merge protection, survivorship,
candidate limits; an invalid file fails with every error located."""
from __future__ import annotations

import json

import pytest

from shared.identity import ResolverConfig, get_profile, resolve_records
from shared.identity.config import DEFAULT_CONFIG_PATH, IdentityConfigError, load_identity_config
from shared.models import CustomerRecord
from shared.settings import Settings
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
