"""The segment rule language: small, declarative JSON, validated before anything is stored.

A rule is one of

    {"all": [rule, ...]}                        every sub-rule holds
    {"any": [rule, ...]}                        at least one holds
    {"not": rule}                               the sub-rule does not hold
    {"field": PATH, "op": OP, "value": V}       a comparison on the profile document
    {"behaviour": {"event": "Product Viewed",   did this event (or "type": "page"), with these properties,
                   "properties": {...}, "channel": "web",
                   "min_count": 3, "max_count": null, "within_days": 30}}   at least/at most N times in the last D days

PATH is one of ``attributes.<name>`` (the unified value; ``attributes.<name>.source`` for its source),
``measures.<name>`` (orders, total_spend, last_purchase, ...; the money ones are null for a customer who bought in
several currencies), ``measures.by_currency.<currency>.<name>`` (one currency's figures), ``churn.score``,
``churn.risk``, ``enrichment.<name>`` (region, lifecycle_stage, ...), ``needs.top_categories``,
``needs.next_categories``, ``segments`` (membership of other segments). OP is one of ``= != < <= > >= in
contains startswith exists missing``. A value ``{"days_ago": N}`` means the UTC timestamp N days before
evaluation (for dates such as ``measures.last_purchase``).

A comparison with a missing field is false (so ``not`` of it is true), the same on both stores. ``exists`` and
``missing`` treat a null value as absent (a never-buyer's ``measures.last_purchase`` is null: it is missing).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Union

from ..activity import iso_utc
from ..store.query import matches

OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "contains", "startswith", "exists", "missing")
# Operators whose store filter gives exactly the Python result (type mismatches are "no match" in both);
# "!=" is left to Python because Cosmos and Python disagree on comparing different types.
PUSHABLE_OPS = {"=", "<", "<=", ">", ">=", "in", "contains", "startswith", "exists", "missing"}
FIELD_ROOTS = ("attributes", "measures", "churn", "enrichment", "needs", "segments")
EVENT_TYPES = ("identify", "track", "page", "screen")
MAX_DEPTH = 8
MAX_CONDITIONS = 50
MAX_WINDOW_DAYS = 3650
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # fullmatch: "$" would let a trailing newline in
_FIXED_FIELDS = {"churn": ("score", "risk", "model_version", "scored_at"),
                 "needs": ("top_categories", "next_categories", "computed_at")}


class RuleError(ValueError):
    """An invalid rule; the message names where (e.g. ``rule.all[1].op``) and what is allowed."""


@dataclass(frozen=True)
class Comparison:
    path: str  # a store path, e.g. "attributes.email.value"
    op: str
    value: Any = None

    def resolved_value(self, now: datetime) -> Any:
        if isinstance(self.value, dict) and "days_ago" in self.value:
            return iso_utc(now - timedelta(days=self.value["days_ago"]))
        return self.value

    def store_filter(self, now: datetime) -> tuple:
        # exists/missing treat null as absent (measures of a never-buyer are null). "in [null]" is two-valued
        # (ARRAY_CONTAINS is false, not undefined, for other types), so it stays exact under NOT on both stores.
        is_null = (self.path, "in", [None])
        if self.op == "exists":
            return ("and", [(self.path, "defined", None), ("not", is_null)])
        if self.op == "missing":
            return ("or", [(self.path, "undefined", None), is_null])
        return (self.path, self.op, self.resolved_value(now))


@dataclass(frozen=True)
class Behaviour:
    event: str | None = None
    type: str | None = None
    channel: str | None = None
    properties: tuple[tuple[str, Any], ...] = ()  # (name, value) pairs, so a condition is hashable
    min_count: int = 1
    max_count: int | None = None
    within_days: int = 30

    def matches_event(self, ev: dict[str, Any]) -> bool:
        if self.event is not None and ev.get("event") != self.event:
            return False
        if self.type is not None and ev.get("type") != self.type:
            return False
        if self.channel is not None and ev.get("channel") != self.channel:
            return False
        props = ev.get("properties") or {}
        return all(props.get(k) == v for k, v in self.properties)

    def holds(self, count: int) -> bool:
        return count >= self.min_count and (self.max_count is None or count <= self.max_count)


@dataclass(frozen=True)
class Combination:
    kind: str  # all | any | not
    parts: tuple["Rule", ...]


Rule = Union[Comparison, Behaviour, Combination]


def parse_rule(raw: Any, where: str = "rule") -> Rule:
    """Turn JSON into a rule, or raise RuleError saying where and why."""
    counter = [0]
    return _parse(raw, where, 0, counter)


def _parse(raw: Any, where: str, depth: int, counter: list[int]) -> Rule:
    if depth > MAX_DEPTH:
        raise RuleError(f"{where}: rules nest at most {MAX_DEPTH} levels deep")
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: a rule is a JSON object, got {type(raw).__name__}")
    keys = set(raw)
    if keys & {"all", "any"}:
        kind = "all" if "all" in raw else "any"
        _only(raw, {kind}, where)
        parts = raw[kind]
        if not isinstance(parts, list) or not parts:
            raise RuleError(f"{where}.{kind}: a non-empty list of rules")
        return Combination(kind, tuple(_parse(p, f"{where}.{kind}[{i}]", depth + 1, counter) for i, p in enumerate(parts)))
    if "not" in raw:
        _only(raw, {"not"}, where)
        return Combination("not", (_parse(raw["not"], f"{where}.not", depth + 1, counter),))
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise RuleError(f"{where}: a rule has at most {MAX_CONDITIONS} conditions")
    if "behaviour" in raw:
        _only(raw, {"behaviour"}, where)
        return _parse_behaviour(raw["behaviour"], f"{where}.behaviour")
    if "field" in raw:
        _only(raw, {"field", "op", "value"}, where)
        return _parse_comparison(raw, where)
    raise RuleError(f"{where}: expected one of the keys all, any, not, field, behaviour; got {sorted(keys) or 'none'}")


def _only(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise RuleError(f"{where}: unexpected key(s) {', '.join(extra)} (allowed: {', '.join(sorted(allowed))})")


def field_path(name: Any, where: str = "field") -> str:
    """The store path of a rule field (``attributes.email`` -> ``attributes.email.value``)."""
    if not isinstance(name, str) or not name:
        raise RuleError(f"{where}: a field name is a non-empty string")
    parts = name.split(".")
    root = parts[0]
    if root not in FIELD_ROOTS:
        raise RuleError(f"{where}: unknown field {name!r}; fields start with one of {', '.join(FIELD_ROOTS)}")
    if not all(_NAME.fullmatch(p) for p in parts):
        raise RuleError(f"{where}: {name!r} is not a valid field path (letters, digits, _ and dots)")
    if root == "segments":
        if len(parts) != 1:
            raise RuleError(f"{where}: use field 'segments' with op contains and a segment id")
        return name
    if len(parts) < 2:
        raise RuleError(f"{where}: name a field under {root}, e.g. {root}.{_example(root)}")
    if root in _FIXED_FIELDS and (len(parts) != 2 or parts[1] not in _FIXED_FIELDS[root]):
        raise RuleError(f"{where}: unknown field {name!r}; {root} has {', '.join(_FIXED_FIELDS[root])}")
    if root == "attributes":
        if len(parts) == 2:
            return f"{name}.value"
        if len(parts) != 3 or parts[2] not in ("value", "source", "rule"):
            raise RuleError(f"{where}: attribute fields are attributes.<name>[.value|.source|.rule]")
    elif root == "measures" and len(parts) > 2 and parts[1] == "by_currency":
        if len(parts) != 4:  # one currency's figure: measures.by_currency.GBP.total_spend
            raise RuleError(f"{where}: per-currency measures are measures.by_currency.<currency>.<name>")
    elif len(parts) != 2:
        raise RuleError(f"{where}: {root} fields are {root}.<name>")
    return name


def _example(root: str) -> str:
    return {"attributes": "email", "measures": "total_spend", "churn": "risk", "enrichment": "region",
            "needs": "next_categories"}.get(root, "name")


MAX_STRING = 1000


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_STRING
    if isinstance(value, float):
        return math.isfinite(value)  # NaN and infinities are not JSON (Cosmos refuses them)
    return value is None or isinstance(value, (int, bool))


def _parse_comparison(raw: dict[str, Any], where: str) -> Comparison:
    path = field_path(raw["field"], f"{where}.field")
    op = raw.get("op")
    if op not in OPS:
        raise RuleError(f"{where}.op: {op!r} is not an operator; use one of {', '.join(OPS)}")
    value = raw.get("value")
    if op in ("exists", "missing"):
        if "value" in raw:
            raise RuleError(f"{where}.value: {op} takes no value")
        return Comparison(path, op)
    if "value" not in raw:
        raise RuleError(f"{where}.value: {op} needs a value")
    if op == "in":
        if not isinstance(value, list) or not value or not all(_scalar(v) for v in value):
            raise RuleError(f"{where}.value: 'in' needs a non-empty list of strings or numbers")
        if len(value) > 100:
            raise RuleError(f"{where}.value: 'in' takes at most 100 values")
    elif isinstance(value, dict):
        days = value.get("days_ago")
        if set(value) != {"days_ago"} or not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_WINDOW_DAYS:
            raise RuleError(f"{where}.value: an object value is {{\"days_ago\": N}} with 0 <= N <= {MAX_WINDOW_DAYS}")
        if op not in ("<", "<=", ">", ">="):
            raise RuleError(f"{where}.value: days_ago works with < <= > >=")
    elif not _scalar(value) or value is None:
        raise RuleError(f"{where}.value: a string (at most {MAX_STRING} characters), number or boolean "
                        "(use op missing for absent values)")
    if op == "startswith" and not isinstance(value, str):
        raise RuleError(f"{where}.value: startswith needs a string")
    if path == "segments" and op != "contains":
        raise RuleError(f"{where}.op: use contains with field 'segments'")
    return Comparison(path, op, value)


def _parse_behaviour(raw: Any, where: str) -> Behaviour:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: an object such as {{\"event\": \"Product Viewed\", \"min_count\": 3, \"within_days\": 30}}")
    _only(raw, {"event", "type", "channel", "properties", "min_count", "max_count", "within_days"}, where)
    event, etype, channel = raw.get("event"), raw.get("type"), raw.get("channel")
    if event is None and etype is None:
        raise RuleError(f"{where}: name an event or an event type")
    if event is not None and (not isinstance(event, str) or not event or len(event) > 256):
        raise RuleError(f"{where}.event: an event name (1 to 256 characters)")
    if etype is not None and etype not in EVENT_TYPES:
        raise RuleError(f"{where}.type: one of {', '.join(EVENT_TYPES)}")
    if channel is not None and not isinstance(channel, str):
        raise RuleError(f"{where}.channel: a channel name such as web or mobile")
    props = raw.get("properties") or {}
    if not isinstance(props, dict) or not all(isinstance(k, str) and _scalar(v) for k, v in props.items()):
        raise RuleError(f"{where}.properties: an object of property name -> string/number/boolean")
    min_count, max_count, days = raw.get("min_count"), raw.get("max_count"), raw.get("within_days", 30)
    if min_count is None:  # "at most N times" alone means from zero
        min_count = 1 if max_count is None else 0
    for name, value, low in (("min_count", min_count, 0), ("within_days", days, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise RuleError(f"{where}.{name}: an integer >= {low}")
    if days > MAX_WINDOW_DAYS:
        raise RuleError(f"{where}.within_days: at most {MAX_WINDOW_DAYS}")
    if max_count is not None and (not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < min_count):
        raise RuleError(f"{where}.max_count: an integer >= min_count")
    return Behaviour(event=event, type=etype, channel=channel, properties=tuple(sorted(props.items())), min_count=min_count,
                     max_count=max_count, within_days=days)


# --- evaluation -----------------------------------------------------------------------------------------

def behaviours(rule: Rule) -> list[Behaviour]:
    if isinstance(rule, Behaviour):
        return [rule]
    if isinstance(rule, Combination):
        return [b for p in rule.parts for b in behaviours(p)]
    return []


def pushdown(rule: Rule, now: datetime) -> tuple | None:
    """A store filter every member satisfies (a superset of the segment), or None when nothing can be pushed.

    Only positive comparisons are pushed: under a ``not`` Cosmos treats a missing field as "undefined" (no
    match either way), so negations are always checked in Python on the candidates instead.
    """
    if isinstance(rule, Comparison):
        if rule.op not in PUSHABLE_OPS:
            return None
        return rule.store_filter(now)
    if isinstance(rule, Combination):
        if rule.kind == "not":
            return None
        parts = [pushdown(p, now) for p in rule.parts]
        if rule.kind == "all":
            kept = [p for p in parts if p is not None]
            return None if not kept else kept[0] if len(kept) == 1 else ("and", kept)
        if any(p is None for p in parts):
            return None
        return parts[0] if len(parts) == 1 else ("or", parts)
    return None


def evaluate(rule: Rule, profile: dict[str, Any], behaviour_counts: dict[Behaviour, int], now: datetime) -> bool:
    """Whether a profile document (with counts of each behaviour condition) satisfies the rule."""
    if isinstance(rule, Comparison):
        if rule.op == "!=":
            return matches(profile, (rule.path, "defined", None)) and not matches(profile, (rule.path, "=", rule.value)) \
                and _comparable(profile, rule)
        return matches(profile, rule.store_filter(now))
    if isinstance(rule, Behaviour):
        return rule.holds(behaviour_counts.get(rule, 0))
    if rule.kind == "not":
        return not evaluate(rule.parts[0], profile, behaviour_counts, now)
    results = (evaluate(p, profile, behaviour_counts, now) for p in rule.parts)
    return all(results) if rule.kind == "all" else any(results)


def _comparable(profile: dict[str, Any], rule: Comparison) -> bool:
    """"!=" holds only between values of the same kind (a missing or null field is not "different")."""
    value = profile
    for part in rule.path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return False
    numeric = (int, float)
    if isinstance(value, bool) or isinstance(rule.value, bool):
        return isinstance(value, bool) and isinstance(rule.value, bool)
    return (isinstance(value, numeric) and isinstance(rule.value, numeric)) or type(value) is type(rule.value)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
