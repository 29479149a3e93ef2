"""The review list worked with the truth: approvals merge true matches, rejections keep others apart for good."""
from __future__ import annotations

from bench.identity import final_assignment
from bench.review_list import work_review_list
from shared.identity import resolve_records
from shared.identity.docs import Ctx
from shared.identity.merge import live_profile
from shared.models import CustomerRecord
from shared.store import MemoryStore


def _record(key: str, given: str, card: str, email: str) -> CustomerRecord:
    return CustomerRecord(source="loyalty", record_key=key, given_name=given, family_name="Jones",
                          loyalty_id=card, email=email)


def test_true_matches_are_approved_and_the_others_rejected():
    records = [
        # One person with two cards: protection keeps one card per profile, the second waits in review.
        _record("a1", "Alice", "LC100001", "alice.jones@shopmail.net"),
        _record("a2", "Alice", "LC100002", "alice.jones@shopmail.net"),
        # Two people of one household with one name and the family email: also a review, but not a match.
        _record("c1", "Carol", "LC100003", "the.joneses@shopmail.net"),
        _record("d1", "Carol", "LC100004", "the.joneses@shopmail.net"),
    ]
    truth = {"loyalty|a1": "alice", "loyalty|a2": "alice", "loyalty|c1": "carol", "loyalty|d1": "carol-mother"}
    store = MemoryStore()
    results = resolve_records(store, records)
    assert [r.action for r in results] == ["created", "review", "created", "review"]

    figures = work_review_list(store, truth, list(truth))

    assert figures["reviews"] == 2 and figures["true_match_share"] == 0.5
    assert figures["by_reason"] == {"limit": {"true_match": 1, "not_a_match": 1}}
    assert figures["decisions"] == {"approved": 1, "rejected": 1}
    assert figures["before"]["pairwise_recall"] == 0.0 and figures["after"]["pairwise_recall"] == 1.0
    assert figures["after"]["pairwise_precision"] == 1.0
    assignment = final_assignment(store, list(truth))
    assert assignment["loyalty|a1"] == assignment["loyalty|a2"]
    assert assignment["loyalty|c1"] != assignment["loyalty|d1"]
    ctx = Ctx(store)
    carol = live_profile(ctx, assignment["loyalty|c1"])
    assert assignment["loyalty|d1"] in carol["never_match"]  # rejected: not proposed again
    assert work_review_list(store, truth, list(truth))["reviews"] == 0  # every review was decided


def test_a_bulk_decision_first_then_the_rest_one_by_one():
    """The steward's filter approves the second cards scoring over it, household ones included if they pass it:
    the bench counts what it approved wrongly, then the rest is decided one by one."""
    records = [_record("a1", "Alice", "LC100001", "alice.jones@shopmail.net"),
               _record("a2", "Alice", "LC100002", "alice.jones@shopmail.net"),
               _record("c1", "Carol", "LC100003", "the.joneses@shopmail.net"),
               _record("d1", "Carol", "LC100004", "the.joneses@shopmail.net")]
    truth = {"loyalty|a1": "alice", "loyalty|a2": "alice", "loyalty|c1": "carol", "loyalty|d1": "carol-mother"}
    store = MemoryStore()
    resolve_records(store, records)
    figures = work_review_list(store, truth, list(truth), bulk={"reason": "limit:loyalty_id", "min_score": 0.5})
    bulk = figures["bulk_first"]
    # both score high (same name, same email): the filter approves both, one of them wrongly
    assert (bulk["approved"], bulk["wrong"], bulk["reviews_left"]) == (2, 1, 0)
    assert bulk["after"]["pairwise_recall"] == 1.0 and bulk["after"]["pairwise_precision"] == 0.5
    assert figures["reviews"] == 2 and figures["decisions"] == {}
