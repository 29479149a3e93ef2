"""The best pairwise recall any resolver could reach while obeying the mandated merge-protection rules.

Issue #5 asks for recall and also forbids some true links: a record with no usable field is quarantined, and a
profile may not hold two values of a limit-1 attribute or more identifiers of a type than its limit (a person
with two loyalty cards, a birth-date typo). The ceiling asks the resolver's own rules (`join_conflict` on
`Side`s built as the engine builds them, with the deployment's ProtectionPolicy), so it follows the config.

Per person, the records are split into groups that protection allows to be one profile, with as many true pairs
inside groups as possible: an exact search over all partitions for people with up to EXACT_UP_TO records, a greedy
one above (each record joins the largest group it may join; a lower bound of the best for those few people).

Inside those groups, a second figure counts the pairs that a chain of records sharing more than a name connects
(an identifier, a birth date, an address or postcode, a phone, an email user name): what is left needs a link on
the name alone, which no resolver can make at this precision (Bayes: thousands of people share a name).

The true pairs are every record's, a quarantined record's included (lost by rule): the measured recall set against
this ceiling must count the same pairs (bench.metrics.cluster_scores with missing="singleton"), or the gap between
them mixes two denominators.
"""
from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Sequence

from shared.identity.docs import record_identifiers, source_identifier
from shared.identity.matching import COMPARISONS, compare
from shared.identity.protection import ProtectionPolicy, Side, join_conflict
from shared.normalize import NormalizedRecord

EXACT_UP_TO = 12  # records of one person: 3^12 subset steps at most; generated people have at most 7
QUARANTINE = "quarantine"


@dataclass
class ProtectionCeiling:
    true_pairs: int = 0
    reachable_pairs: int = 0
    quarantined_records: int = 0
    evidence_pairs: int = 0  # reachable pairs joined by a chain of records sharing more than a name
    lost_pairs: Counter = field(default_factory=Counter)  # by rule: quarantine, limit:loyalty_id, conflict:...

    @property
    def recall(self) -> float:
        return self.reachable_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def evidence_recall(self) -> float:
        return self.evidence_pairs / self.true_pairs if self.true_pairs else 1.0

    def f1_at(self, precision: float, recall: float | None = None) -> float:
        """The F1 a resolver with this precision would have at the recall ceiling (or at `recall`)."""
        recall = self.recall if recall is None else recall
        return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def protection_ceiling(normalized: Sequence[NormalizedRecord], persons: Sequence, policy: ProtectionPolicy
                       ) -> ProtectionCeiling:
    """Reachable true pairs, and the true pairs lost by the rule that forbids them (the first rule
    `join_conflict` reports for the two groups they fall in)."""
    ceiling = ProtectionCeiling()
    records_per_person = Counter(persons)
    sides_of: dict = defaultdict(list)
    record_of: dict[int, NormalizedRecord] = {}  # id(side) -> its record
    for n, person in zip(normalized, persons):
        if n.is_empty:
            ceiling.quarantined_records += 1
        elif records_per_person[person] > 1:  # a lone record has no pair to reach
            side = record_side(n)
            sides_of[person].append(side)
            record_of[id(side)] = n
    for person, count in records_per_person.items():
        sides = sides_of.get(person, [])
        ceiling.true_pairs += _pairs(count)
        ceiling.lost_pairs[QUARANTINE] += _pairs(count) - _pairs(len(sides))
        groups = allowed_groups(policy, sides)
        ceiling.reachable_pairs += sum(_pairs(len(g)) for g in groups)
        ceiling.evidence_pairs += sum(_pairs(size) for g in groups
                                      for size in _evidence_components([record_of[id(s)] for s in g]))
        for a, b in itertools.combinations(groups, 2):
            ceiling.lost_pairs[join_conflict(policy, [joined(a), joined(b)]) or "unexplained"] += len(a) * len(b)
    ceiling.lost_pairs = +ceiling.lost_pairs  # drop causes with no pair
    return ceiling


def record_side(n: NormalizedRecord) -> Side:
    """The record as the engine shows it to merge protection."""
    return Side.of_record(n.key, [source_identifier(n.key), *record_identifiers(n)], n.to_dict())


def joined(sides: Sequence[Side]) -> Side:
    """One profile holding these records."""
    return Side(ids=set().union(*(s.ids for s in sides)), snapshots=[x for s in sides for x in s.snapshots],
                names=set().union(*(s.names for s in sides)), is_profile=True)


def allowed_groups(policy: ProtectionPolicy, sides: list[Side]) -> list[list[Side]]:
    """One person's records split into groups protection lets be one profile, most pairs inside groups."""
    if join_conflict(policy, sides) is None:
        return [sides] if sides else []
    if len(sides) <= EXACT_UP_TO:
        return _best_partition(policy, sides)
    return _greedy_partition(policy, sides)


def _best_partition(policy: ProtectionPolicy, sides: list[Side]) -> list[list[Side]]:
    """Exact: over subsets (bit masks), the best split of each set of records is an allowed group holding its
    lowest record plus the best split of the rest. A set is allowed when `join_conflict` finds nothing on it,
    which is also when some order of joins could build it (the rules only look at the union of the sides)."""
    size = len(sides)
    allowed = [mask == 0 or join_conflict(policy, [s for i, s in enumerate(sides) if mask >> i & 1]) is None
               for mask in range(1 << size)]
    best = [0] * (1 << size)
    choice = [0] * (1 << size)
    for mask in range(1, 1 << size):
        lowest = mask & -mask
        sub = mask
        best[mask] = -1
        while sub:
            if sub & lowest and allowed[sub]:
                value = _pairs(sub.bit_count()) + best[mask ^ sub]
                if value > best[mask]:
                    best[mask], choice[mask] = value, sub
            sub = (sub - 1) & mask
    groups, mask = [], (1 << size) - 1
    while mask:
        groups.append([s for i, s in enumerate(sides) if choice[mask] >> i & 1])
        mask ^= choice[mask]
    return groups


def _greedy_partition(policy: ProtectionPolicy, sides: list[Side]) -> list[list[Side]]:
    groups: list[list[Side]] = []
    for side in sides:
        fits = [g for g in groups if join_conflict(policy, [*g, side]) is None]
        if fits:
            max(fits, key=len).append(side)
        else:
            groups.append([side])
    return groups


# Comparison levels that are evidence beyond the name (matching.COMPARISONS); a city is not.
_EVIDENCE_LEVELS = {
    "birth_date": {"exact", "day_month_swapped", "two_of_three"},
    "location": {"address_exact", "address_fuzzy", "postcode"},
    "phone": {"exact", "last_7_digits"},
    "email": {"exact", "same_user", "user_fuzzy"},
}
_EVIDENCE = [(position, {COMPARISONS[name].index(level) for level in levels})
             for position, name in enumerate(COMPARISONS) if (levels := _EVIDENCE_LEVELS.get(name))]


def shares_more_than_a_name(a: NormalizedRecord, b: NormalizedRecord) -> bool:
    if set(record_identifiers(a)) & set(record_identifiers(b)):
        return True
    levels = compare(a, b)
    return any(levels[position] in wanted for position, wanted in _EVIDENCE)


def _evidence_components(records: list[NormalizedRecord]) -> list[int]:
    """Sizes of the groups of records connected by pairs that share more than a name (union-find)."""
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(len(records)), 2):
        if root(i) != root(j) and shares_more_than_a_name(records[i], records[j]):
            parent[root(i)] = root(j)
    return list(Counter(root(i) for i in range(len(records))).values())


def _pairs(count: int) -> int:
    return count * (count - 1) // 2
