"""Merge protection: the rules that stop two people from being joined into one profile.

Checked on the union of the sides about to be joined (a record and the profiles it would link or merge):
- never_match pairs (from splits) are never joined;
- per identifier type, a profile holds at most `limit` distinct values (email 5, phone 5, loyalty_id 1);
- a limit-1 attribute in conflict (two birth dates, two loyalty ids, a parent's and a child's double surnames)
  blocks the automatic join;
- caps on merges, identifiers and records per profile (a giant profile is a bug, not a customer; the records cap
  also keeps the profile document under Cosmos DB's item size limit, see bounds.py).

Blocked placeholder values are removed earlier, by normalization, so they never reach an identifier claim; so
are the values a deployment blocks (`blocked_values`: a store's walk-in email or its own phone, typed for
customers who give none), by `without_blocked` before the resolver computes anything from a record.
A device or anonymous id alone never joins two known customers: see `is_weak_type` and the engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from shared.identity.matching import surnames_of_kin
from shared.models import CustomerRecord
from shared.normalize import NormalizedRecord, normalize_identifier, normalize_loyalty_id, normalize_phone

# Record entries a profile may hold at most, whatever the configuration: 100 entries of at most 16 KB each keep
# the profile document under Cosmos DB's 2 MB item limit (bounds.py).
MAX_RECORDS_LIMIT = 100
# The limit-1 attribute of double surnames (Gil Torres): not a record field, two of them conflict only as a parent's
# and a child's do (_surnames_conflict), not when they differ by a typo or one gives a single surname.
SURNAMES = "surnames"
WEAK_TYPE_MARKERS = ("device", "anonymous", "anon_id", "cookie", "session", "ga_client", "idfa", "gaid", "ip_address")


@dataclass(frozen=True)
class ProtectionPolicy:
    limits: dict[str, int | None] = field(default_factory=lambda: {
        "email": 5, "phone": 5, "loyalty_id": 1, "source": None})
    default_limit: int = 5  # custom identifier types from mappings
    weak_limit: int = 25  # device / anonymous ids: a person has many devices
    # Linking priority: a profile found through a higher-priority identifier wins when two cannot be merged.
    priority: tuple[str, ...] = ("loyalty_id", "email", "phone")
    limit_one_attributes: tuple[str, ...] = ("birth_date", "generation", SURNAMES)
    max_merges: int = 100
    max_identifiers: int = 1000
    max_records: int = MAX_RECORDS_LIMIT  # record entries per profile
    # Values the deployment blocks, per identifier type (email, phone, loyalty_id or a custom identifier), given in
    # any form and held normalized as records are: {"email": frozenset({"walkin@mystore.co.uk"})}. Empty: none.
    blocked_values: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Whether blocked emails are normalized with provider rules (gmail dots, +tags): as the resolver normalizes
    # records (ResolverConfig.email_provider_rules, which holds this policy to the same value).
    email_provider_rules: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_records <= MAX_RECORDS_LIMIT:
            raise ValueError(f"max_records must be 1 to {MAX_RECORDS_LIMIT} (a profile document's size depends on it)")
        object.__setattr__(self, "blocked_values", normalize_blocked_values(
            self.blocked_values, email_provider_rules=self.email_provider_rules))

    def limit(self, id_type: str) -> int | None:
        if id_type in self.limits:
            return self.limits[id_type]
        return self.weak_limit if is_weak_type(id_type) else self.default_limit

    def rank(self, id_type: str) -> int:
        if id_type in self.priority:
            return self.priority.index(id_type)
        return len(self.priority) + (1 if is_weak_type(id_type) else 0)


# Record fields that are not identifiers: a value blocked under one of these names would block nothing.
_NOT_IDENTIFIERS = frozenset(CustomerRecord.model_fields) - {"email", "phone", "loyalty_id"}


def normalize_blocked_values(blocked: Mapping[str, Iterable[str]], *, email_provider_rules: bool = True
                             ) -> dict[str, frozenset[str]]:
    """Blocked values per identifier type, normalized exactly as a record's are (a phone in international form:
    a blocked value has no country of its own; an email with provider rules or without, as the resolver's records
    are). Raises ValueError naming the type and value that cannot be."""
    out: dict[str, set[str]] = {}
    for raw_type, values in blocked.items():
        id_type = str(raw_type).strip().lower()  # as normalize_record keys custom identifiers
        where = f"protection.blocked_values.{raw_type}"
        if not id_type or id_type in _NOT_IDENTIFIERS:
            raise ValueError(f"{where}: not an identifier type (email, phone, loyalty_id or a custom identifier)")
        if isinstance(values, str):
            raise ValueError(f"{where}: a list of values expected")
        for index, value in enumerate(values):
            normalized = _normalized_blocked(id_type, value, email_provider_rules)
            if normalized is None:
                raise ValueError(f"{where}[{index}]: {value!r} {_refusal(id_type)}")
            out.setdefault(id_type, set()).add(normalized)
    return {id_type: frozenset(values) for id_type, values in sorted(out.items())}


def _normalized_blocked(id_type: str, value: Any, email_provider_rules: bool = True) -> str | None:
    if not isinstance(value, str):
        return None
    if id_type == "email":  # as a record's email (and a custom one typed email) is normalized
        return normalize_identifier("email", value, email_provider_rules=email_provider_rules)
    if id_type == "phone":
        return normalize_phone(value)
    if id_type == "loyalty_id":
        return normalize_loyalty_id(value)
    return normalize_identifier(id_type, value)


def _refusal(id_type: str) -> str:
    if id_type == "phone":
        return ("is not a phone number in international form (E.164: + and the country code, such as "
                "+442079460000), or is a placeholder blocked already")
    what = {"email": "an email address", "loyalty_id": "a loyalty id"}.get(id_type, f"a {id_type} value")
    return f"normalizes to nothing: not {what}, or a placeholder blocked already"


def without_blocked(n: NormalizedRecord, blocked: Mapping[str, frozenset[str]]) -> NormalizedRecord:
    """The record without its values the deployment blocks, as normalization leaves out a built-in placeholder
    (an email with its user and domain); the same record when it has none. Called only when some are blocked."""
    changes: dict[str, Any] = {}
    if n.email is not None and n.email in blocked.get("email", ()):
        changes.update(email=None, email_user=None, email_domain=None)
    if n.phone is not None and n.phone in blocked.get("phone", ()):
        changes["phone"] = None
    if n.loyalty_id is not None and n.loyalty_id in blocked.get("loyalty_id", ()):
        changes["loyalty_id"] = None
    if n.identifiers and not blocked.keys().isdisjoint(n.identifiers):
        kept = {t: v for t, v in n.identifiers.items() if not _blocked_custom(t, v, blocked)}
        if len(kept) < len(n.identifiers):
            changes["identifiers"] = kept
    return replace(n, **changes) if changes else n


def _blocked_custom(id_type: str, value: str, blocked: Mapping[str, frozenset[str]]) -> bool:
    values = blocked.get(id_type)
    if not values:
        return False
    # A custom identifier named loyalty_id claims the loyalty id it folds to (docs.record_identifiers).
    return value in values or (id_type == "loyalty_id" and normalize_loyalty_id(value) in values)


def is_weak_type(id_type: str) -> bool:
    """Device, cookie and anonymous ids: shared by everyone on one browser or phone."""
    return any(marker in id_type for marker in WEAK_TYPE_MARKERS)


def id_type_of(identifier: str) -> str:
    return identifier.split(":", 1)[0]


@dataclass
class Side:
    """A record or a profile, as merge protection sees it."""

    ids: set[str]
    snapshots: list[dict[str, Any]]
    names: set[str]  # what never_match lists may name: profile ids (own and absorbed) and record keys
    never_match: set[str] = field(default_factory=set)
    merge_count: int = 0
    is_profile: bool = False
    records: int = 1  # record entries it brings

    @classmethod
    def of_profile(cls, profile: dict[str, Any], *, without_record: str | None = None) -> "Side":
        records = [r for r in profile.get("records", []) if r["key"] != without_record]
        return cls(
            ids=set(profile.get("identifiers", [])),
            snapshots=[r.get("match", {}) for r in records],
            names={profile["id"], *profile.get("merged_from", []), *(r["key"] for r in records)},
            never_match=set(profile.get("never_match", [])),
            merge_count=int(profile.get("merge_count", 0)),
            is_profile=True,
            records=len(records),
        )

    @classmethod
    def of_record(cls, key: str, identifiers: Iterable[str], snapshot: dict[str, Any]) -> "Side":
        return cls(ids=set(identifiers), snapshots=[snapshot], names={key})

    def is_known(self) -> bool:
        """Has an identifier that names a person (not only device/anonymous ids or source keys)."""
        return any(not is_weak_type(t) and t != "source" for t in map(id_type_of, self.ids))


def _distinct(values: Iterable[Any], attr: str = "") -> set[Any]:
    return {_comparable(attr, v) for v in values if v not in (None, "")}


def _comparable(attr: str, value: Any) -> Any:
    """Birth dates with day and month swapped (a common keying error) are the same date for conflicts."""
    if attr == "birth_date" and isinstance(value, str) and len(value) == 10:
        return value[:4] + "".join(sorted((value[5:7], value[8:10])))
    return value


def join_conflict(policy: ProtectionPolicy, sides: list[Side]) -> str | None:
    """Why these sides must not be joined automatically, or None when they may be."""
    records = 0
    for i, a in enumerate(sides):
        records += a.records
        for b in sides[i + 1:]:
            # Most never_match lists are empty (only splits fill them): no set is built for those.
            if (a.never_match and a.never_match & b.names) or (b.never_match and b.never_match & a.names):
                return "never_match"
    union_ids = set().union(*(s.ids for s in sides))
    # A profile already over a cap or limit (a person approved it past one) does not block a join that adds
    # nothing to what it is over: identifiers it holds already (_largest_side for limits), or no merge at all.
    widest = max((s.ids for s in sides), key=len, default=set())
    if len(union_ids) > policy.max_identifiers and len(union_ids) > len(widest):
        return "cap:identifiers"
    if records > policy.max_records:
        return "cap:records"
    profiles = [s for s in sides if s.is_profile]
    if len(profiles) > 1 and sum(s.merge_count for s in profiles) + len(profiles) - 1 > policy.max_merges:
        return "cap:merges"
    # Only the types of the identifiers the widest side lacks are counted against their limits.
    for id_type in sorted({id_type_of(ident) for ident in union_ids - widest}):
        limit = policy.limit(id_type)
        if limit is None:
            continue
        values = sum(1 for ident in union_ids if id_type_of(ident) == id_type)
        if values > limit and values > _largest_side(sides, id_type):
            return f"limit:{id_type}"
    for attr in policy.limit_one_attributes:
        if attr == SURNAMES:
            if _surnames_conflict(sides):
                return f"conflict:{attr}"
            continue
        per_side = [_distinct((snap.get(attr) for snap in s.snapshots), attr) for s in sides]
        union = set().union(*per_side)
        if len(union) > 1 and len(union) > max(len(p) for p in per_side):
            return f"conflict:{attr}"
    return None


def _surnames_conflict(sides: list[Side]) -> bool:
    """True when the join would put a parent's and a child's double surnames in one profile (Gil Torres and Gil
    Blanco: matching.surnames_of_kin) that no side holds together already (a person joined them)."""
    per_side = [{family for snap in s.snapshots if " " in (family := snap.get("family_name") or "")} for s in sides]
    if sum(map(bool, per_side)) < 2:  # most records give one surname: nothing to compare
        return False
    names = sorted(set().union(*per_side))
    return any(surnames_of_kin(a, b) and not any(a in held and b in held for held in per_side)
               for i, a in enumerate(names) for b in names[i + 1:])


def _largest_side(sides: list[Side], id_type: str) -> int:
    """A profile already over a limit (e.g. an updated record) does not block every later join."""
    return max(sum(1 for i in s.ids if id_type_of(i) == id_type) for s in sides)
