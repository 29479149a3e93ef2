"""Segments: stored rule definitions, evaluation without full scans, membership on the profile, CSV export.

Evaluation. The profile-level part of a rule (attributes, measures, churn, enrichment, needs, other segments)
is translated into the store's filter language, which Cosmos runs as a parameterized query
(`shared.store.query.to_sql`); only those candidates are read. Behaviour conditions ("did Product Viewed at
least 3 times in the last 30 days") are then counted per candidate from its own activity partitions, and the
whole rule is checked in Python (negations are never pushed down; see `rules.pushdown`).

Membership. Each profile carries ``segments``: the sorted ids of the segments it belongs to, so
"members of S" is an indexed ``ARRAY_CONTAINS`` query (paginated with continuation tokens) and the profile
view shows its segments. It is kept current in three ways:
- `evaluate_segment` (on create, on demand via POST /segments/{id}/evaluate, and for every segment in the
  scheduled insights job) adds the segment to profiles that now match and removes it from those that no
  longer do, ETag-guarded;
- `refresh.refresh_profile` recomputes one profile's list after its measures and needs (the scheduled
  insights job for every profile; POST /insights/profiles/{id}/refresh for one, e.g. after it changed);
- the scheduled job (settings.insights_schedule) re-runs every segment, because behaviour windows and
  relative dates ("last 30 days") move with time even when no profile changes.
"""
from __future__ import annotations

import csv
import io
import logging
from datetime import datetime, timedelta
from typing import Any, Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..activity import iso_utc
from ..ingest import escape_formula
from ..settings import Settings
from ..store import PreconditionFailedError, Store
from .common import (LIVE_PROFILES, list_definitions, live_profiles, new_id, now_iso, owners, read_definition,
                     update_profile)
from .rules import Behaviour, Rule, behaviours, evaluate, parse_rule, pushdown, utc_now

log = logging.getLogger(__name__)
DOC_TYPE = "segment"
EXPORT_COLUMNS = ("profile_id", "email", "phone", "loyalty_id", "given_name", "family_name", "country",
                  "churn_risk", "churn_score")
EXPORT_BLOCK_BYTES = 4 * 1024 * 1024


class SegmentDefinition(BaseModel):
    """What a client sends to create a segment."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    rule: dict[str, Any]

    @field_validator("rule")
    @classmethod
    def _valid_rule(cls, value: dict[str, Any]) -> dict[str, Any]:
        parse_rule(value)
        return value


def create_segment(store: Store, definition: SegmentDefinition, *, evaluate_now: bool = True,
                   now: datetime | None = None) -> dict[str, Any]:
    at = now_iso()
    doc = {"id": new_id("seg"), "doc_type": DOC_TYPE, "name": definition.name, "description": definition.description,
           "rule": definition.rule, "created_at": at, "updated_at": at, "size": None, "evaluated_at": None}
    doc = store.container("segments").create_item(doc)
    if evaluate_now:
        evaluate_segment(store, doc, now=now)
        doc = get_segment(store, doc["id"])
    return doc


def get_segment(store: Store, segment_id: str) -> dict[str, Any]:
    return read_definition(store, DOC_TYPE, segment_id)


def list_segments(store: Store) -> list[dict[str, Any]]:
    return list_definitions(store, DOC_TYPE)


def delete_segment(store: Store, segment_id: str) -> int:
    """Delete the definition and take it off its members; returns how many profiles were updated."""
    get_segment(store, segment_id)
    removed = sum(update_profile(store, pid, lambda d: _set_member(d, segment_id, False))
                  for pid in _member_ids(store, segment_id))
    store.container("segments").delete_item(segment_id, segment_id)
    return removed


# --- evaluation -----------------------------------------------------------------------------------------

def candidate_filter(rule: Rule, now: datetime) -> Any:
    """The store filter that selects candidates: live profiles narrowed by the pushable part of the rule."""
    narrowed = pushdown(rule, now)
    return LIVE_PROFILES if narrowed is None else ("and", [LIVE_PROFILES, narrowed])


def behaviour_counts(store: Store, profile: dict[str, Any], conditions: list[Behaviour],
                     now: datetime) -> dict[Behaviour, int]:
    """How many events in each condition's window match it, from the profile's own activity partitions."""
    if not conditions:
        return {}
    since = iso_utc(now - timedelta(days=max(c.within_days for c in conditions)))
    flt: list[Any] = [("kind", "=", "event"), ("timestamp", ">=", since)]
    names = {c.event for c in conditions}
    if None not in names:
        flt.append(("event", "in", sorted(names)))
    activity = store.container("activity")
    events = [e for owner in owners(profile) for e in activity.query_items(("and", flt), partition_key=owner)]
    return count_behaviour(conditions, events, now)


def count_behaviour(conditions: list[Behaviour], events: list[dict[str, Any]], now: datetime) -> dict[Behaviour, int]:
    """Counts of each behaviour condition in already-loaded events (activity docs)."""
    counts = {}
    until = iso_utc(now)  # evaluating "as of" a past moment ignores what happened after it
    for cond in conditions:
        cut = iso_utc(now - timedelta(days=cond.within_days))
        counts[cond] = sum(1 for e in events if cut <= e.get("timestamp", "") <= until and cond.matches_event(e))
    return counts


class _LazyCounts(dict):
    """Behaviour counts read on first use: a profile that fails the profile-level part costs no activity query."""

    def __init__(self, load):
        super().__init__()
        self._load = load

    def get(self, key, default=None):
        if self._load is not None:
            self.update(self._load())
            self._load = None
        return super().get(key, default)


def is_member(store: Store, rule: Rule, profile: dict[str, Any], now: datetime,
              events: list[dict[str, Any]] | None = None) -> bool:
    """Whether the profile is in the segment; behaviour is counted in `events` when the caller has the
    profile's events already, else read from its activity partitions (only if the rule gets that far)."""
    conditions = behaviours(rule)
    if events is not None:
        return evaluate(rule, profile, count_behaviour(conditions, events, now), now)
    return evaluate(rule, profile, _LazyCounts(lambda: behaviour_counts(store, profile, conditions, now)), now)


def matching_profile_ids(store: Store, rule_json: dict[str, Any], *, now: datetime | None = None) -> set[str]:
    now = now or utc_now()
    rule = parse_rule(rule_json)
    return {p["id"] for p in live_profiles(store, pushdown(rule, now)) if is_member(store, rule, p, now)}


def _member_ids(store: Store, segment_id: str) -> set[str]:
    return {p["id"] for p in live_profiles(store, ("segments", "contains", segment_id))}


def _set_member(doc: dict[str, Any], segment_id: str, member: bool) -> bool:
    current = set(doc.get("segments") or [])
    wanted = current | {segment_id} if member else current - {segment_id}
    if wanted == current and "segments" in doc:
        return False
    doc["segments"] = sorted(wanted)
    return True


def evaluate_segment(store: Store, segment: dict[str, Any] | str, *, now: datetime | None = None) -> dict[str, Any]:
    """Recompute a segment's members and bring the profiles' ``segments`` lists up to date."""
    segment = get_segment(store, segment) if isinstance(segment, str) else segment
    now = now or utc_now()
    members = matching_profile_ids(store, segment["rule"], now=now)
    previous = _member_ids(store, segment["id"])
    added = removed = 0
    for pid in members - previous:
        added += update_profile(store, pid, lambda d: _set_member(d, segment["id"], True))
    for pid in previous - members:
        removed += update_profile(store, pid, lambda d: _set_member(d, segment["id"], False))

    def record(doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "size": len(members), "evaluated_at": iso_utc(now)}

    update_definition(store, segment["id"], record)
    result = {"segment_id": segment["id"], "size": len(members), "added": added, "removed": removed}
    log.info("segment evaluated: %s", result)
    return result


def update_definition(store: Store, segment_id: str, change) -> None:
    container = store.container("segments")
    for _ in range(5):
        doc = container.read_item_or_none(segment_id, segment_id)
        if doc is None:
            return  # deleted meanwhile
        try:
            container.replace_item(change(doc), etag=doc.get("_etag"))
            return
        except PreconditionFailedError:  # updated meanwhile (e.g. renamed): re-read and apply again
            continue


def evaluate_all(store: Store, *, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utc_now()
    return [evaluate_segment(store, s, now=now) for s in list_segments(store)]


def profile_segments(store: Store, profile: dict[str, Any], segments: Iterable[dict[str, Any]] | None = None,
                     *, now: datetime | None = None) -> list[str]:
    """The ids of the segments this profile belongs to now (for the per-profile refresh)."""
    now = now or utc_now()
    found = []
    for seg in (list_segments(store) if segments is None else segments):
        if is_member(store, parse_rule(seg["rule"]), profile, now):
            found.append(seg["id"])
    return sorted(found)


# --- members, size, export ------------------------------------------------------------------------------

def _members_filter(segment_id: str) -> Any:
    return ("and", [LIVE_PROFILES, ("segments", "contains", segment_id)])


def members_page(store: Store, segment_id: str, *, page_size: int = 100,
                 continuation: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    get_segment(store, segment_id)
    docs, token = store.container("profiles").query_page(_members_filter(segment_id), page_size=page_size,
                                                          continuation=continuation)
    return [member_summary(d) for d in docs], token


def segment_size(store: Store, segment_id: str) -> int:
    get_segment(store, segment_id)
    return store.container("profiles").count_items(_members_filter(segment_id))


def _attr(doc: dict[str, Any], name: str) -> Any:
    return ((doc.get("attributes") or {}).get(name) or {}).get("value")


def member_summary(doc: dict[str, Any]) -> dict[str, Any]:
    churn = doc.get("churn") or {}
    return {"id": doc["id"], "given_name": _attr(doc, "given_name"), "family_name": _attr(doc, "family_name"),
            "email": _attr(doc, "email"), "churn_risk": churn.get("risk"), "updated_at": doc.get("updated_at")}


def _spreadsheet_safe(value: Any) -> str:
    """CSV cells a spreadsheet would run as a formula get a leading quote (phone numbers like +44... stay)."""
    return escape_formula("" if value is None else str(value))


def export_rows(store: Store, segment_id: str) -> Iterator[list[str]]:
    for doc in store.container("profiles").query_items(_members_filter(segment_id)):
        churn = doc.get("churn") or {}
        row = [doc["id"], _attr(doc, "email"), _attr(doc, "phone"), _attr(doc, "loyalty_id"),
               _attr(doc, "given_name"), _attr(doc, "family_name"), _attr(doc, "country"),
               churn.get("risk"), churn.get("score")]
        yield [_spreadsheet_safe(v) for v in row]


def export_segment(store: Store, segment_id: str, settings: Settings, *, now: datetime | None = None) -> dict[str, Any]:
    """Write the members as CSV to the exports container (streamed in blocks, so memory stays bounded)."""
    import base64

    from ..storage import blob_service

    segment = get_segment(store, segment_id)
    stamp = (now or utc_now()).strftime("%Y%m%dT%H%M%SZ")
    name = f"segments/{segment['id']}/{stamp}.csv"
    blob = blob_service(settings).get_blob_client(settings.exports_container, name)
    buffer, blocks, rows = io.StringIO(), [], 0
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)

    def flush() -> None:
        data = buffer.getvalue().encode("utf-8")
        if data:
            block_id = base64.b64encode(f"{len(blocks):08d}".encode()).decode()
            blob.stage_block(block_id, data)
            blocks.append(block_id)
        buffer.seek(0)
        buffer.truncate()

    for row in export_rows(store, segment["id"]):
        writer.writerow(row)
        rows += 1
        if buffer.tell() >= EXPORT_BLOCK_BYTES:
            flush()
    flush()
    from azure.storage.blob import BlobBlock, ContentSettings

    blob.commit_block_list([BlobBlock(block_id=b) for b in blocks],
                           content_settings=ContentSettings(content_type="text/csv; charset=utf-8"),
                           metadata={"segment_id": segment["id"], "rows": str(rows)})
    log.info("segment %s exported: %d rows to %s", segment["id"], rows, name)
    return {"segment_id": segment["id"], "container": settings.exports_container, "blob": name, "rows": rows}
