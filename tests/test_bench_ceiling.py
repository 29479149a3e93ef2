"""The recall ceiling under merge protection, on hand-made people whose reachable pairs are counted by hand."""
from __future__ import annotations

from datetime import date

import pytest

from bench import ceiling as ceiling_module
from bench.ceiling import allowed_groups, protection_ceiling, record_side
from bench.identity_accuracy import ceiling_figures
from shared.identity.config import load_identity_config
from shared.identity.protection import ProtectionPolicy
from shared.models import CustomerRecord
from shared.normalize import normalize_record

POLICY = load_identity_config().protection  # the shipped config/identity.json: one loyalty id per profile


def _record(key: str, **fields) -> CustomerRecord:
    return CustomerRecord(source="crm", record_key=key, given_name="Ann", family_name="Lee", **fields)


def _people() -> tuple[list, list[str]]:
    """(normalized records, person of each) for four people, 8 true pairs in all."""
    rows = [
        # Two loyalty cards over three records: the card-less one joins one card; 1 of 3 pairs reachable.
        ("cards", _record("c1", loyalty_id="LC100001", email="ann.lee@shopmail.net")),
        ("cards", _record("c2", loyalty_id="LC100002", email="ann.lee@shopmail.net")),
        ("cards", _record("c3", email="ann.lee@shopmail.net")),
        # A birth-date typo: two dates in conflict, the one pair is forbidden.
        ("typo", _record("t1", birth_date=date(1980, 3, 14), email="bo.kim@shopmail.net")),
        ("typo", _record("t2", birth_date=date(1980, 3, 15), email="bo.kim@shopmail.net")),
        # Day and month swapped: the same date for protection, the pair stays reachable.
        ("swap", _record("s1", birth_date=date(1980, 3, 4), email="cy.ng@shopmail.net")),
        ("swap", _record("s2", birth_date=date(1980, 4, 3), email="cy.ng@shopmail.net")),
        # A record with a given name only is quarantined: its two pairs are lost, the other pair is reachable.
        ("quarantine", _record("q1", email="di.ho@shopmail.net")),
        ("quarantine", _record("q2", email="di.ho@shopmail.net")),
        ("quarantine", CustomerRecord(source="crm", record_key="q3", given_name="Di")),
    ]
    return [normalize_record(r) for _, r in rows], [person for person, _ in rows]


def test_reachable_and_lost_pairs_by_rule():
    normalized, persons = _people()
    assert normalized[-1].is_empty
    c = protection_ceiling(normalized, persons, POLICY)
    assert (c.true_pairs, c.reachable_pairs, c.quarantined_records) == (8, 3, 1)
    assert dict(c.lost_pairs) == {"limit:loyalty_id": 2, "conflict:birth_date": 1, "quarantine": 2}
    assert c.recall == pytest.approx(3 / 8)
    assert c.f1_at(1.0) == pytest.approx(2 * 0.375 / 1.375)


def test_ceiling_follows_the_policy():
    normalized, persons = _people()
    two_cards = ProtectionPolicy(limits={**POLICY.limits, "loyalty_id": 2})
    no_birth_date_rule = ProtectionPolicy(limits=dict(POLICY.limits), limit_one_attributes=())
    assert protection_ceiling(normalized, persons, two_cards).reachable_pairs == 5
    assert protection_ceiling(normalized, persons, no_birth_date_rule).reachable_pairs == 4


def _four_records_where_arrival_order_misleads() -> list:
    """a has card 1; b, c, d share a birth date and c, d have card 2. Joining b to a first (as arrival order
    would) leaves {a, b} {c, d}: 2 pairs; the best is {a} {b, c, d}: 3 pairs."""
    return [record_side(normalize_record(r)) for r in (
        _record("a", loyalty_id="LC100001"),
        _record("b", birth_date=date(1975, 1, 20)),
        _record("c", loyalty_id="LC100002", birth_date=date(1975, 1, 20)),
        _record("d", loyalty_id="LC100002", birth_date=date(1975, 1, 20)),
    )]


def _pair_count(groups) -> int:
    return sum(len(g) * (len(g) - 1) // 2 for g in groups)


def test_exact_search_beats_arrival_order_greedy(monkeypatch):
    sides = _four_records_where_arrival_order_misleads()
    exact = allowed_groups(POLICY, sides)
    assert _pair_count(exact) == 3
    assert sorted(len(g) for g in exact) == [1, 3]
    monkeypatch.setattr(ceiling_module, "EXACT_UP_TO", 0)  # force the greedy search for large groups
    assert _pair_count(allowed_groups(POLICY, sides)) == 2


def _scores(precision: float, true_pairs: int, true_positive_pairs: int) -> dict:
    return {"pairwise_precision": precision, "pairwise_recall": true_positive_pairs / true_pairs,
            "true_pairs": true_pairs, "true_positive_pairs": true_positive_pairs}


def test_ceiling_figures_next_to_measured_precision_and_recall():
    normalized, persons = _people()
    figures = ceiling_figures(protection_ceiling(normalized, persons, POLICY), _scores(1.0, 8, 2))
    assert figures["recall_ceiling_under_protection"] == 0.375
    assert figures["f1_ceiling_at_measured_precision"] == pytest.approx(0.54545, abs=1e-5)
    assert figures["recoverable_recall_gap"] == 0.125 and figures["recoverable_pairs"] == 1
    assert figures["pairs_lost_to_mandated_rules"] == {"limit:loyalty_id": 2, "quarantine": 2,
                                                       "conflict:birth_date": 1}
    assert figures["protection_ceiling"] == {"true_pairs": 8, "reachable_pairs": 3, "evidence_pairs": 3,
                                             "quarantined_records": 1}


def test_pairs_beyond_names_follow_chains_of_shared_evidence():
    """Inside one allowed group: a1-a2 share an email, a2-a3 a birth date (a chain: all three pairs count), a4
    shares only the name (Ann Lee), a5 only the city: their pairs need a link on the name alone."""
    rows = [
        _record("a1", email="ann.lee@shopmail.net"),
        _record("a2", email="ann.lee@shopmail.net", birth_date=date(1980, 3, 14)),
        _record("a3", birth_date=date(1980, 3, 14), phone="+442079460000"),
        _record("a4", phone="+442079461111"),
        _record("a5", city="Leeds"),
        _record("a6", city="Leeds"),
    ]
    normalized = [normalize_record(r) for r in rows]
    c = protection_ceiling(normalized, ["ann"] * len(rows), POLICY)
    assert (c.true_pairs, c.reachable_pairs, c.evidence_pairs) == (15, 15, 3)
    assert c.evidence_recall == pytest.approx(3 / 15)
    figures = ceiling_figures(c, _scores(1.0, 15, 1))
    assert figures["recall_ceiling_beyond_names"] == 0.2
    assert figures["f1_ceiling_beyond_names_at_measured_precision"] == pytest.approx(2 * 0.2 / 1.2, abs=1e-5)


def test_a_recall_over_other_true_pairs_than_the_ceilings_is_refused():
    """The quarantined record's 2 pairs are in the ceiling's 8: a recall over the placed records' 6 pairs (as
    missing="ignore" counts them) cannot be set against it."""
    normalized, persons = _people()
    with pytest.raises(ValueError, match="true pairs"):
        ceiling_figures(protection_ceiling(normalized, persons, POLICY), _scores(1.0, 6, 2))


def _resolved_people():
    """Three people: Ann with a quarantined record (given name only), Bo with two records one email apart, Cy
    alone. 4 true pairs: Ann's 3 (2 through the quarantined record), Bo's 1."""
    rows = [
        ("ann", _record("a1", email="ann.lee@shopmail.net", phone="+447700900101", birth_date=date(1980, 3, 14))),
        ("ann", _record("a2", email="ann.lee@shopmail.net", phone="+447700900101", birth_date=date(1980, 3, 14))),
        ("ann", CustomerRecord(source="crm", record_key="a3", given_name="Ann")),
        ("bo", CustomerRecord(source="pos", record_key="b1", given_name="Bo", family_name="Kim",
                              email="bo.kim@shopmail.net", birth_date=date(1975, 1, 20))),
        ("bo", CustomerRecord(source="pos", record_key="b2", given_name="Bo", family_name="Kim",
                              email="bo.kim@shopmail.net", birth_date=date(1975, 1, 20))),
        ("cy", CustomerRecord(source="pos", record_key="c1", given_name="Cy", family_name="Ng",
                              email="cy.ng@shopmail.net")),
    ]
    return [r for _, r in rows], [p for p, _ in rows]


def test_headline_ceiling_and_causes_count_the_same_true_pairs():
    """A quarantined record's pairs are misses of the headline recall, pairs lost by rule in the ceiling, and
    "quarantined record" in the causes: one denominator, and the causes add up to the pairs the recall misses."""
    from bench.identity_accuracy import resolve_once, split_causes
    from shared.identity.matching import MatchModel
    from shared.settings import get_settings

    settings = get_settings()
    records, persons = _resolved_people()
    truth = {r.key: p for r, p in zip(records, persons)}
    normalized = [normalize_record(r) for r in records]
    run, assignment, results, _ = resolve_once(records, truth, 1, settings)
    assert results["crm|a3"].action == "quarantined" and "crm|a3" not in assignment
    assert (run["records"], run["records_missing"], run["true_pairs"], run["true_positive_pairs"]) == (6, 1, 4, 2)
    assert run["pairwise_recall"] == 0.5 and run["pairwise_precision"] == 1.0
    assert run["resolved_records_only"]["true_pairs"] == 2 and run["resolved_records_only"]["pairwise_recall"] == 1.0

    ceiling = protection_ceiling(normalized, persons, POLICY)
    assert ceiling.true_pairs == run["true_pairs"] and ceiling.lost_pairs == {"quarantine": 2}
    figures = ceiling_figures(ceiling, run)
    assert figures["recall_ceiling_under_protection"] == 0.5
    assert figures["recoverable_recall_gap"] == 0.0 and figures["recoverable_pairs"] == 0

    _, lost, _ = split_causes(MatchModel.default(), normalized, persons, assignment, results, settings)
    assert lost == {"quarantined record": 2}
    assert sum(lost.values()) == run["true_pairs"] - run["true_positive_pairs"]
