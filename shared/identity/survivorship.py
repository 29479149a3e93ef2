"""Survivorship: which value of each attribute the unified profile shows, and which conflicting values it keeps.

Computed from the profile's own record entries (each keeps the raw values its source sent), so the result
does not depend on the order records arrived in, and a removed or split record is simply left out.
Rules per attribute: ``most_recent`` (the record's updated_at as a UTC time, then when ucp saw its content),
``source_priority`` (the first source in the configured list), ``most_complete`` (the longest value). Ties fall
through to the next rule, then to the record key, so the choice is deterministic.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from shared.models import CustomerRecord

RULES = ("most_recent", "source_priority", "most_complete")
# Fields of CustomerRecord that are not profile attributes (keys and parsing hints).
_NOT_ATTRIBUTES = frozenset({"source", "record_key", "identifiers", "attributes", "phone_region", "updated_at"})


@dataclass(frozen=True)
class SurvivorshipPolicy:
    default_rule: str = "most_recent"
    rules: dict[str, str] = field(default_factory=dict)  # attribute -> rule
    source_priority: tuple[str, ...] = ()  # most trusted first

    def __post_init__(self) -> None:
        for rule in (self.default_rule, *self.rules.values()):
            if rule not in RULES:
                raise ValueError(f"unknown survivorship rule {rule!r}; use one of {RULES}")


def record_values(record: CustomerRecord, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The raw attribute values a record contributes (JSON form), extra attributes included. `data` is the
    record's JSON dump when the caller has it already."""
    data = data if data is not None else record.model_dump(mode="json", exclude_none=True)
    values = {k: v for k, v in data.items() if k not in _NOT_ATTRIBUTES and v not in ("", None)}
    for name, value in (record.attributes or {}).items():
        if value not in ("", None) and name not in values:
            values[name] = value
    return values


def _comparable(value: Any) -> Any:
    """The form two values are compared in: text without case or extra spaces; a list or object (a mapping may
    keep one as an extra attribute) as its JSON, keys sorted, so it can be compared and kept in a set."""
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return value


def _length(value: Any) -> int:
    return len(str(value))


def survive(entries: list[dict[str, Any]], policy: SurvivorshipPolicy) -> tuple[dict[str, Any], dict[str, Any]]:
    """(attributes, conflicts) of a profile from its record entries (each with values, source, key, updated_at)."""
    if len(entries) == 1:  # a new profile: every value wins, nothing conflicts
        entry = entries[0]
        values = entry.get("values") or {}
        source, key, rules, default_rule = entry["source"], entry["key"], policy.rules, policy.default_rule
        return {name: {"value": values[name], "source": source, "record": key,
                       "rule": rules.get(name, default_rule)} for name in sorted(values)}, {}
    rules, default_rule = policy.rules, policy.default_rule
    ranks = _ranks(default_rule, entries, policy)
    # Options are gathered best record first under the default rule: when no two records tie on it (recency
    # and source priority; not for most_complete, which ranks values), they come out ranked already.
    by_record = sorted(entries, key=lambda entry: (ranks[entry["key"]], entry["key"]))
    presorted = default_rule != "most_complete" and len(set(ranks.values())) == len(entries)
    if presorted and all(rule == default_rule for rule in rules.values()):
        return _survive_ranked(by_record, default_rule)
    order_keys = {default_rule: _order_key(default_rule, ranks)}  # per rule: sort key of an option
    candidates: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for entry in by_record:
        for name, value in (entry.get("values") or {}).items():
            candidates.setdefault(name, []).append((value, entry))
    attributes: dict[str, Any] = {}
    conflicts: dict[str, Any] = {}
    for name in sorted(candidates):
        rule = rules.get(name, default_rule)
        options = candidates[name]
        if len(options) > 1 and not (presorted and rule == default_rule):
            if rule not in order_keys:
                order_keys[rule] = _order_key(rule, _ranks(rule, entries, policy))
            options = sorted(options, key=order_keys[rule])
        value, entry = options[0]
        attributes[name] = {"value": value, "source": entry["source"], "record": entry["key"], "rule": rule}
        if len(options) > 1:
            others = _conflicting(value, options)
            if others:
                conflicts[name] = others
    return attributes, conflicts


def _survive_ranked(by_record: list[dict[str, Any]], rule: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """survive's result where the entries are ranked already (by_record, best first) and every attribute follows
    their rule (the common case), in one pass: each attribute's first value wins, and the later ones that differ
    from it conflict, once per comparable form (as _conflicting keeps them)."""
    attributes: dict[str, Any] = {}
    conflicts: dict[str, list[dict[str, Any]]] = {}
    forms: dict[str, set] = {}  # per conflicting attribute: the comparable forms met
    for entry in by_record:
        source, key = entry["source"], entry["key"]
        for name, value in (entry.get("values") or {}).items():
            won = attributes.get(name)
            if won is None:
                attributes[name] = {"value": value, "source": source, "record": key, "rule": rule}
                continue
            if value == won["value"]:  # the same value again (the common case): nothing to compare
                continue
            seen = forms.get(name)
            if seen is None:
                seen = forms[name] = {_comparable(won["value"])}
            comparable = _comparable(value)
            if comparable not in seen:
                seen.add(comparable)
                conflicts.setdefault(name, []).append({"value": value, "source": source, "record": key})
    return ({name: attributes[name] for name in sorted(attributes)},
            {name: conflicts[name] for name in sorted(conflicts)})


def _conflicting(value: Any, options: list[tuple[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The values of the ranked options after the first (the winning `value`) that differ from it, best first,
    once per comparable form."""
    seen = None
    others = []
    for other, entry in options[1:]:
        if other == value:  # the same value again (the common case): nothing to compare
            continue
        if seen is None:
            seen = {_comparable(value)}
        comparable = _comparable(other)
        if comparable not in seen:
            seen.add(comparable)
            others.append({"value": other, "source": entry["source"], "record": entry["key"]})
    return others


_INVERT = bytes(range(255, -1, -1))  # byte b -> 255 - b


def _descending(iso: str | None) -> bytes:
    """Sort key that puts later ISO timestamps first (each byte mirrored, so ascending order flips; UTF-8 keeps
    the order of the characters). A missing time sorts last: no mirrored ISO timestamp starts with 0xff."""
    return iso.encode().translate(_INVERT) if iso else b"\xff"


def as_utc(moment: datetime) -> datetime:
    """The time in UTC. One without a zone is read as UTC (a file's mapping gives its source's zone to the times it
    reads; a record sent without one has none to go by)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # within a day of year 1 or 9999: the nearest time there is
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=timezone.utc)


def utc_text(moment: datetime) -> str:
    """A record's updated_at as its profile entry keeps it: in UTC with microseconds ("2024-06-01T07:00:00.000000Z",
    as ucp's own timestamps), so that the order of the text is the order of the times."""
    utc = as_utc(moment)
    text = utc.isoformat()[:-6]  # without its "+00:00" (the plain form formats fastest)
    return text + "Z" if utc.microsecond else text + ".000000Z"


def _time_key(text: str | None) -> str | None:
    """An entry's updated_at in utc_text's form. Entries written before it keep the form the source sent (an offset,
    no zone, no microseconds), converted here until their record changes."""
    if not text or (len(text) == 27 and text[-1] == "Z"):  # utc_text's form (the source's never ends in Z)
        return text
    return _legacy_time_key(text)


@lru_cache(maxsize=4096)
def _legacy_time_key(text: str) -> str:
    try:
        return utc_text(datetime.fromisoformat(text))
    except ValueError:
        return text  # not a time: compared as it is, as before


def _entry_rank(entry: dict[str, Any], policy: SurvivorshipPolicy) -> tuple:
    # Records that say when they changed outrank those that do not; then when ucp saw their content (seen_at, set
    # when a new version replaced it; else when the record was added).
    updated = _time_key(entry.get("updated_at"))
    recent = (0 if updated else 1, _descending(updated), _descending(entry.get("seen_at") or entry.get("added_at")))
    source = entry["source"]
    priority = policy.source_priority.index(source) if source in policy.source_priority else len(policy.source_priority)
    return recent, priority


def _ranks(rule: str, entries: list[dict[str, Any]], policy: SurvivorshipPolicy) -> dict[str, tuple]:
    """Each entry's rank under a rule by its record key, computed once: the rule's criteria, then the others
    (recency, source priority)."""
    ranks = {}
    for entry in entries:
        recent, priority = _entry_rank(entry, policy)
        ranks.setdefault(entry["key"], (priority, recent) if rule != "most_recent" else (recent, priority))
    return ranks


def _order_key(rule: str, ranks: dict[str, tuple]):
    """Sort key of a (value, entry) option under a rule, best first: the rule's criteria, then the others
    (recency, source priority, length), then the record key."""
    if rule == "most_complete":
        return lambda option: (-_length(option[0]), ranks[option[1]["key"]], option[1]["key"])
    return lambda option: (ranks[option[1]["key"]], -_length(option[0]), option[1]["key"])
