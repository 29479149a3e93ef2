"""Survivorship: which value of each attribute the unified profile shows, and which conflicting values it keeps.

Computed from the profile's own record entries (each keeps the raw values its source sent), so the result
does not depend on the order records arrived in, and a removed or split record is simply left out.
Rules per attribute: ``most_recent`` (the record's updated_at, then when ucp saw it), ``source_priority``
(the first source in the configured list), ``most_complete`` (the longest value). Ties fall through to the
next rule, then to the record key, so the choice is deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
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
    return " ".join(value.split()).casefold() if isinstance(value, str) else value


def _length(value: Any) -> int:
    return len(str(value))


def survive(entries: list[dict[str, Any]], policy: SurvivorshipPolicy) -> tuple[dict[str, Any], dict[str, Any]]:
    """(attributes, conflicts) of a profile from its record entries (each with values, source, key, updated_at)."""
    if len(entries) == 1:  # a new profile: every value wins, nothing conflicts
        entry = entries[0]
        values = entry.get("values") or {}
        return {name: {"value": values[name], "source": entry["source"], "record": entry["key"],
                       "rule": policy.rules.get(name, policy.default_rule)} for name in sorted(values)}, {}
    candidates: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for entry in entries:
        for name, value in (entry.get("values") or {}).items():
            candidates.setdefault(name, []).append((value, entry))
    ranks: dict[str, tuple] = {}  # per record: (recency key, source priority), computed once
    attributes: dict[str, Any] = {}
    conflicts: dict[str, Any] = {}
    for name in sorted(candidates):
        rule = policy.rules.get(name, policy.default_rule)
        options = candidates[name]
        if len(options) == 1:
            value, entry = options[0]
            attributes[name] = {"value": value, "source": entry["source"], "record": entry["key"], "rule": rule}
            continue
        ranked = sorted(options, key=lambda ve: _rank(ve, rule, policy, ranks))
        value, entry = ranked[0]
        attributes[name] = {"value": value, "source": entry["source"], "record": entry["key"], "rule": rule}
        seen = {_comparable(value)}
        others = []
        for other, other_entry in ranked[1:]:
            if _comparable(other) not in seen:
                seen.add(_comparable(other))
                others.append({"value": other, "source": other_entry["source"], "record": other_entry["key"]})
        if others:
            conflicts[name] = others
    return attributes, conflicts


_INVERT = {i: 0x2FF - i for i in range(0x100)}


def _descending(iso: str | None) -> str:
    """Sort key that puts later ISO timestamps first (each character mirrored, so ascending order flips)."""
    return iso.translate(_INVERT) if iso else "\uffff"


def _entry_rank(entry: dict[str, Any], policy: SurvivorshipPolicy) -> tuple:
    # Records that say when they changed outrank those that do not; then when ucp saw them.
    recent = (0 if entry.get("updated_at") else 1, _descending(entry.get("updated_at")),
              _descending(entry.get("added_at")))
    source = entry["source"]
    priority = policy.source_priority.index(source) if source in policy.source_priority else len(policy.source_priority)
    return recent, priority


def _rank(value_entry: tuple[Any, dict[str, Any]], rule: str, policy: SurvivorshipPolicy,
          cache: dict[str, tuple]) -> tuple:
    value, entry = value_entry
    if entry["key"] not in cache:
        cache[entry["key"]] = _entry_rank(entry, policy)
    recent, priority = cache[entry["key"]]
    length = -_length(value)
    if rule == "most_recent":
        order = (recent, priority, length)
    elif rule == "source_priority":
        order = (priority, recent, length)
    else:
        order = (length, priority, recent)
    return (*order, entry["key"])
