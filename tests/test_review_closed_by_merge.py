"""A merge that puts a review's record and candidate in one profile answers the review: it is closed as obsolete,
so the review list holds only open questions. On both stores, by point reads and by the query big profiles use."""
from __future__ import annotations

import json

import pytest

from shared.identity import resolve_records
from shared.identity.config import load_identity_config
from shared.identity.merge import review_id
from shared.identity.review import approve_review, get_review, list_reviews
from shared.models import CustomerRecord
from shared.settings import Settings


@pytest.fixture(params=["point reads", "query"])
def lookup(request, monkeypatch):
    if request.param == "query":  # as for profiles with more (record, id) pairs than MAX_REVIEW_PROBES
        monkeypatch.setattr("shared.identity.merge.MAX_REVIEW_PROBES", 0)
    return request.param


def _ann(source: str, key: str, email: str, phone: str) -> CustomerRecord:
    return CustomerRecord(source=source, record_key=key, given_name="Ann", family_name="Lee", email=email,
                          phone=phone, phone_region="GB")


def _three_reviews(store, tmp_path) -> tuple[Settings, dict[str, str]]:
    """One phone, three emails under a limit of one email per profile: each record its own profile, and three
    reviews (W1 and C1 against P1, C1 against W1)."""
    rules = tmp_path / "identity.json"
    rules.write_text(json.dumps({"protection": {"limits": {"email": 1}}}))
    settings = Settings(identity_config=str(rules))
    results = resolve_records(store, [_ann("pos", "P1", "ann@lee-mail.net", "07911 123456"),
                                      _ann("web", "W1", "ann.lee@work-mail.net", "+44 7911 123456"),
                                      _ann("crm", "C1", "ann.lee@home-mail.net", "+44 7911 123456")],
                              settings=settings, config=load_identity_config(str(rules)))
    profiles = {r.record_key.split("|")[1]: r.profile_id for r in results}
    assert [r.action for r in results] == ["created", "review", "review"] and len(set(profiles.values())) == 3
    return settings, profiles


def _status(store, record: str, candidate_profile: str) -> dict:
    return get_review(store, review_id(record, candidate_profile))


def test_a_merge_closes_the_reviews_it_answered(store, tmp_path, lookup):
    settings, profiles = _three_reviews(store, tmp_path)
    assert len(list_reviews(store)[0]) == 3

    approve_review(store, review_id("crm|C1", profiles["W1"]), by="ops", settings=settings)  # C1 joins W1
    open_ids = {r["id"] for r in list_reviews(store)[0]}
    # W1 and C1 are each still apart from P1: both questions stay open
    assert open_ids == {review_id("web|W1", profiles["P1"]), review_id("crm|C1", profiles["P1"])}

    approve_review(store, review_id("web|W1", profiles["P1"]), by="ops", settings=settings)  # W1 (and C1) join P1
    answered = _status(store, "crm|C1", profiles["P1"])
    assert (answered["status"], answered["obsolete_reason"], answered["decided_by"]) == ("obsolete", "merged", None)
    assert answered["merge_id"].startswith("m_") and answered["profile_id"] == profiles["P1"]  # P1's is the oldest
    assert list_reviews(store)[0] == []
    assert [r["id"] for r in list_reviews(store, status="obsolete")[0]] == [review_id("crm|C1", profiles["P1"])]
    assert _status(store, "web|W1", profiles["P1"])["status"] == "approved"  # the decisions themselves stand


def test_a_review_a_person_is_deciding_is_left_to_them(store, tmp_path, lookup):
    settings, profiles = _three_reviews(store, tmp_path)
    deciding = store.container("review").read_item(*(2 * [review_id("crm|C1", profiles["P1"])]))
    store.container("review").replace_item({**deciding, "status": "deciding", "decision": "rejected"},
                                           etag=deciding["_etag"])
    approve_review(store, review_id("crm|C1", profiles["W1"]), by="ops", settings=settings)
    approve_review(store, review_id("web|W1", profiles["P1"]), by="ops", settings=settings)
    assert _status(store, "crm|C1", profiles["P1"])["status"] == "deciding"


def test_a_bulk_approval_moves_past_the_reviews_it_cannot_approve(store, tmp_path):
    """Under a cap of one record per profile no second card can be approved: each review is listed with why and
    stays open, and the continuation moves on, so a caller looping until it is None ends."""
    from shared.identity.review import approve_reviews

    rules = tmp_path / "identity.json"
    rules.write_text(json.dumps({"protection": {"max_records": 1}}))
    settings = Settings(identity_config=str(rules))
    records = [CustomerRecord(source="loyalty", record_key=f"{name}-{n}", given_name=name, family_name="Moreau",
                              email=f"{name.lower()}.moreau@shopmail.net", loyalty_id=f"6337000{len(name)}{n}")
               for name in ("Lea", "Hugo") for n in (1, 2)]
    resolve_records(store, records, settings=settings, config=load_identity_config(str(rules)))
    calls, token, refused = 0, None, []
    while True:
        done = approve_reviews(store, by="steward-7", reason="cap", limit=1, continuation=token, settings=settings)
        calls, refused, token = calls + 1, refused + done["not_approved"], done["continuation"]
        assert done["approved"] == []
        if token is None:
            break
    assert calls == 2 and len(refused) == 2 and all("more than 1 records" in r["why"] for r in refused)
    assert len(list_reviews(store)[0]) == 2  # still open, for a person to reject or split
