"""The review list API through the real blueprint functions on the Cosmos emulator: list, read, approve (merge),
reject (never-match), and the errors a client can make."""
from __future__ import annotations

import json
import zlib

import pytest

from shared.identity import find_profile_id, get_profile, list_merges, resolve_records
from shared.models import CustomerRecord
from shared.settings import get_settings
from tests.test_api_profiles import call


@pytest.fixture
def api_store(app_env, cosmos_store):
    return cosmos_store


def two_cards(store, name: str, email: str):
    """One person, two loyalty cards: merge protection (one card per profile) sends the second to review."""
    first = CustomerRecord(source="loyalty", record_key=f"{name}-1", given_name=name, family_name="Moreau",
                           email=email, loyalty_id=f"6337{zlib.crc32(name.encode()) % 10**8:08d}1")
    second = CustomerRecord(source="loyalty", record_key=f"{name}-2", given_name=name, family_name="Moreau",
                            email=email, loyalty_id=f"6337{zlib.crc32(name.encode()) % 10**8:08d}2")
    return resolve_records(store, [first, second], settings=get_settings())


def open_reviews(fns, **params):
    resp, body = call(fns, "list_reviews", params=params)
    assert resp.status_code == 200, body
    return body


def test_approving_a_review_merges_the_profiles_with_the_decision_logged(functions_by_name, api_store):
    a, b = two_cards(api_store, "Claire", "claire.moreau77@shopmail.net")
    assert b.action == "review" and b.profile_id != a.profile_id and b.reason.startswith("limit:loyalty_id")
    listed = open_reviews(functions_by_name)["reviews"]
    assert len(listed) == 1
    review = listed[0]
    assert review["record_key"] == "loyalty|Claire-2" and review["reason"] == "limit:loyalty_id"
    assert {review["profile_id"], review["candidate_profile_id"]} == {a.profile_id, b.profile_id}
    resp, one = call(functions_by_name, "get_review", route_params={"review_id": review["id"]})
    assert resp.status_code == 200 and {k: one[k] for k in review} == review
    # side by side: the second card's record, and the profile holding the first
    assert one["record"]["key"] == "loyalty|Claire-2" and one["record"]["values"]["loyalty_id"].endswith("2")
    assert one["candidate"]["records"] == ["loyalty|Claire-1"]
    assert one["candidate"]["attributes"]["given_name"] == "Claire"
    assert one["candidate"]["compared_record"]["values"]["loyalty_id"].endswith("1")
    # protection opened it, not a score; scored all the same, so a person sees how alike the two are
    assert one["score"] > 0.99 and one["compared_record"] == "loyalty|Claire-1"
    assert (one["levels"]["given_name"], one["levels"]["email"]) == ("exact", "exact")

    resp, done = call(functions_by_name, "approve_review", "POST", route_params={"review_id": review["id"]},
                      body=json.dumps({"by": "steward-7"}).encode())
    assert resp.status_code == 200, done
    assert done["status"] == "approved" and done["decided_by"] == "steward-7" and done["profile_id"] == a.profile_id
    merged = get_profile(api_store, b.profile_id)  # the absorbed id redirects
    assert merged["id"] == a.profile_id and {r["key"] for r in merged["records"]} == {"loyalty|Claire-1", "loyalty|Claire-2"}
    log = [m for m in list_merges(api_store, a.profile_id) if m.get("reason") == "review"]
    assert log and log[0]["review_id"] == review["id"] and log[0]["rule"] == "approved by a person"
    assert open_reviews(functions_by_name)["reviews"] == []
    assert [r["id"] for r in open_reviews(functions_by_name, status="approved")["reviews"]] == [review["id"]]
    resp, again = call(functions_by_name, "approve_review", "POST", route_params={"review_id": review["id"]})
    assert resp.status_code == 409 and "approved already" in again["detail"]


def test_a_scored_review_reads_side_by_side(functions_by_name, api_store):
    """Same name at one address, a family mailbox against a personal one: a score in the review band. GET shows
    each comparison's level and the two records' values as their sources sent them."""
    first, second = _family_mailbox_review(api_store)
    assert (first.action, second.action, second.reason) == ("created", "review", "score")
    (review,) = open_reviews(functions_by_name)["reviews"]
    resp, one = call(functions_by_name, "get_review", route_params={"review_id": review["id"]})
    assert resp.status_code == 200, one
    assert one["compared_record"] == "pos|A-1" and one["model_version"] and 0 < one["score"] < 1
    assert one["levels"]["given_name"] == "exact" and one["levels"]["email"] == "different"
    assert set(one["levels"]) - {"explained_against"} <= set(one["contributions"])  # against related or unrelated
    assert (one["record"]["key"], one["record"]["profile_id"]) == ("web|A-2", second.profile_id)
    assert one["record"]["values"]["email"] == "ann.lee88@post.net"
    compared = one["candidate"]["compared_record"]
    assert (compared["key"], compared["profile_id"]) == ("pos|A-1", first.profile_id)
    assert compared["values"]["address_line1"] == "1 High Street"
    assert one["candidate"]["profile_id"] == first.profile_id


def test_an_approved_score_keeps_the_model_version_it_was_scored_with_in_the_merge_log(functions_by_name, api_store):
    """The merge log outlives the review (an erasure deletes reviews): it names the model whose weights it shows."""
    first, _ = _family_mailbox_review(api_store)
    (review,) = open_reviews(functions_by_name)["reviews"]
    resp, _ = call(functions_by_name, "approve_review", "POST", route_params={"review_id": review["id"]})
    assert resp.status_code == 200
    logged, = [m for m in list_merges(api_store, first.profile_id) if m.get("reason") == "review"]
    assert logged["model_version"] == review["model_version"] and logged["contributions"] == review["contributions"]


def test_rejecting_a_review_keeps_the_two_apart_for_good(functions_by_name, api_store):
    a, b = two_cards(api_store, "Louis", "louis.moreau12@shopmail.net")
    review = open_reviews(functions_by_name)["reviews"][0]
    resp, done = call(functions_by_name, "reject_review", "POST", route_params={"review_id": review["id"]})
    assert resp.status_code == 200 and done["status"] == "rejected" and done["decided_by"] is None
    # The same person's next record, carrying both cards' profiles' email, no longer proposes the join.
    third, = resolve_records(api_store, [CustomerRecord(source="pos", record_key="L-3", given_name="Louis",
                                                        family_name="Moreau", email="louis.moreau12@shopmail.net")],
                             settings=get_settings())
    assert third.action == "linked" and third.profile_id == a.profile_id
    assert get_profile(api_store, b.profile_id)["id"] == b.profile_id  # still apart
    assert open_reviews(functions_by_name)["reviews"] == []
    assert find_profile_id(api_store, "email", "louis.moreau12@shopmail.net") == a.profile_id


@pytest.mark.parametrize("side", ["record", "compared_record"])
@pytest.mark.parametrize("decision", ["approve_review", "reject_review"])
def test_a_review_follows_its_records_split_out_since(functions_by_name, api_store, decision, side):
    """The review names the profiles its record and the record it was compared with were in when it opened.
    Another person's record joined one of them since (the same card typed at a till), and a steward split the
    reviewed record out: the decision is about the two records, so it is taken for the profiles holding them now,
    and the other person is left alone."""
    a, b = two_cards(api_store, f"Maud{side[0]}", f"maud.moreau31{side[0]}@shopmail.net")
    key, left = (f"loyalty|Maud{side[0]}-2", b.profile_id) if side == "record" else (f"loyalty|Maud{side[0]}-1",
                                                                                    a.profile_id)
    card = get_profile(api_store, left)["records"][0]["values"]["loyalty_id"]
    zoe = CustomerRecord(source="pos", record_key="Z-9", given_name="Zoe", family_name="Quinn", loyalty_id=card)
    stranger, = resolve_records(api_store, [zoe], settings=get_settings())
    assert (stranger.action, stranger.profile_id) == ("linked", left)
    resp, split = call(functions_by_name, "split_profile", "POST", route_params={"profile_id": left},
                       body=json.dumps({"record_key": key}).encode())
    assert resp.status_code == 201, split
    moved_to = split["new_profile_id"]
    stays = a.profile_id if side == "record" else b.profile_id
    (review,) = open_reviews(functions_by_name)["reviews"]
    resp, one = call(functions_by_name, "get_review", route_params={"review_id": review["id"]})
    shown = one["record"] if side == "record" else one["candidate"]["compared_record"]
    assert (shown["key"], shown["profile_id"]) == (key, moved_to)

    resp, done = call(functions_by_name, decision, "POST", route_params={"review_id": review["id"]})
    assert resp.status_code == 200, done
    assert [r["key"] for r in get_profile(api_store, left)["records"]] == ["pos|Z-9"]
    if decision == "approve_review":
        merged = get_profile(api_store, moved_to)
        assert sorted(r["key"] for r in merged["records"]) == [f"loyalty|Maud{side[0]}-1", f"loyalty|Maud{side[0]}-2"]
        assert get_profile(api_store, stays)["id"] == merged["id"]
    else:
        assert stays in get_profile(api_store, moved_to)["never_match"]
        assert moved_to in get_profile(api_store, stays)["never_match"]
        assert left not in get_profile(api_store, stays)["never_match"]


def test_review_api_errors(functions_by_name, api_store):
    resp, body = call(functions_by_name, "get_review", route_params={"review_id": "r_nosuch"})
    assert resp.status_code == 404 and resp.mimetype == "application/problem+json"
    resp, body = call(functions_by_name, "approve_review", "POST", route_params={"review_id": "r_nosuch"})
    assert resp.status_code == 404
    resp, body = call(functions_by_name, "list_reviews", params={"status": "maybe"})
    assert resp.status_code == 400 and "status" in body["detail"]
    resp, body = call(functions_by_name, "list_reviews", params={"continuation": "bm90IGEgdG9rZW4"})
    assert resp.status_code == 400
    resp, body = call(functions_by_name, "list_reviews", params={"page_size": "0"})
    assert resp.status_code == 400
    two_cards(api_store, "Ines", "ines.moreau5@shopmail.net")
    review = open_reviews(functions_by_name)["reviews"][0]
    for bad in (b"not json", json.dumps({"by": "x" * 65}).encode(), json.dumps(["by"]).encode()):
        resp, body = call(functions_by_name, "reject_review", "POST", route_params={"review_id": review["id"]}, body=bad)
        assert resp.status_code == 400, body
    assert open_reviews(functions_by_name)["reviews"][0]["status"] == "open"


def test_reviews_are_paged(functions_by_name, api_store):
    for name in ("Anne", "Paul", "Remi"):
        two_cards(api_store, name, f"{name.lower()}.moreau9@shopmail.net")
    seen, token = [], None
    while True:
        page = open_reviews(functions_by_name, page_size="2", **({"continuation": token} if token else {}))
        assert len(page["reviews"]) <= 2
        seen += [r["record_key"] for r in page["reviews"]]
        token = page["continuation"]
        if not token:
            break
    assert sorted(seen) == ["loyalty|Anne-2", "loyalty|Paul-2", "loyalty|Remi-2"]


def _family_mailbox_review(store):
    """Same name at one address, a family mailbox against a personal one: a review by score."""
    home = dict(given_name="Ann", family_name="Lee", postcode="LS1 4AB", city="Leeds")
    return resolve_records(store, [
        CustomerRecord(source="pos", record_key="A-1", address_line1="1 High Street", email="thelees4300@mail.net",
                       **home),
        CustomerRecord(source="web", record_key="A-2", address_line1="1 High St", email="ann.lee88@post.net", **home)],
        settings=get_settings())


def test_a_steward_approves_the_reviews_a_filter_names(functions_by_name, api_store):
    """Second loyalty cards of one name and email, all scoring over 0.99: one decision approves them, a page at
    a time; the review a score opened is left for its own decision."""
    pairs = [two_cards(api_store, name, f"{name.lower()}.moreau3@shopmail.net") for name in ("Lea", "Hugo", "Zoe")]
    _family_mailbox_review(api_store)
    assert len(open_reviews(functions_by_name)["reviews"]) == 4
    cards = open_reviews(functions_by_name, reason="limit", min_score="0.99")["reviews"]
    assert sorted(r["record_key"] for r in cards) == ["loyalty|Hugo-2", "loyalty|Lea-2", "loyalty|Zoe-2"]
    assert [r["reason"] for r in open_reviews(functions_by_name, reason="score")["reviews"]] == ["score"]
    assert open_reviews(functions_by_name, reason="limit:email")["reviews"] == []

    def bulk(**body):
        return call(functions_by_name, "approve_reviews", "POST", body=json.dumps(body).encode())

    resp, preview = bulk(by="steward-7", reason="limit:loyalty_id", dry_run=True)
    assert resp.status_code == 200 and sorted(preview["approved"]) == sorted(r["id"] for r in cards)
    assert len(open_reviews(functions_by_name)["reviews"]) == 4  # a dry run changes nothing

    resp, first = bulk(by="steward-7", reason="limit:loyalty_id", min_score=0.99, limit=2)
    assert resp.status_code == 200 and len(first["approved"]) == 2 and first["continuation"]
    resp, second = bulk(by="steward-7", reason="limit:loyalty_id", min_score=0.99, limit=2,
                        continuation=first["continuation"])
    assert len(second["approved"]) == 1 and second["continuation"] is None and second["not_approved"] == []
    resp, other = bulk(by="steward-7", reason="score", continuation=first["continuation"])
    assert resp.status_code == 400  # a token of another filter
    for (a, b) in pairs:  # each person's two cards are one profile now, the decision logged as the steward's
        assert get_profile(api_store, b.profile_id)["id"] == a.profile_id
    approved = open_reviews(functions_by_name, status="approved")["reviews"]
    assert {r["decided_by"] for r in approved} == {"steward-7"}
    bulk_filter = {"reason": "limit:loyalty_id", "min_score": 0.99}  # the decision's filter, for the audit trail
    assert [r["bulk_filter"] for r in approved] == [bulk_filter] * 3
    logged = [m for a, _ in pairs for m in list_merges(api_store, a.profile_id) if m.get("reason") == "review"]
    assert [m["bulk_filter"] for m in logged] == [bulk_filter] * 3
    assert [r["reason"] for r in open_reviews(functions_by_name)["reviews"]] == ["score"]


@pytest.mark.parametrize("body", [
    {"reason": "limit"},  # who decides is required
    {"by": "steward-7"},  # no filter: not a decision
    {"by": "steward-7", "reason": "limit", "limit": 0},
    {"by": "steward-7", "reason": "limit", "limit": 101},
    {"by": "steward-7", "min_score": 2},
    {"by": "steward-7", "min_score": "high"},
    {"by": "steward-7", "reason": ""},
    {"by": "steward-7", "reason": "limit", "dry_run": "yes"},
    {"by": "steward-7", "reason": "limit", "everything": True},
    {"by": "steward-7", "reason": "limit", "continuation": 7},
    {"by": "steward-7", "reason": "limit", "continuation": "bm90IGEgdG9rZW4"},
    ["by"],
])
def test_bulk_approval_refuses_what_is_not_a_decision(functions_by_name, api_store, body):
    two_cards(api_store, "Ines", "ines.moreau8@shopmail.net")
    resp, problem = call(functions_by_name, "approve_reviews", "POST", body=json.dumps(body).encode())
    assert resp.status_code == 400 and problem["detail"], problem
    assert [r["status"] for r in open_reviews(functions_by_name)["reviews"]] == ["open"]
    resp, _ = call(functions_by_name, "list_reviews", params={"min_score": "1.5"})
    assert resp.status_code == 400
