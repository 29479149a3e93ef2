"""Load JSON Lines files into the in-memory store, so the CLI runs the same insight code on files.

Events may be in the SDK shape (type, anonymousId/userId, messageId, context.channel — what the generator
and POST /api/events use) or canonical (source, event_id, customer_key, ...). An anonymous event is stitched to
the user of the latest identify (or any event carrying both ids) on its anonymous id at or before the event's
time, as the events API links a device to its latest identify; one before any identify, to the first user.
"""
from __future__ import annotations

import bisect
import gzip
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from pydantic import TypeAdapter, ValidationError

from ..activity import activity_doc
from ..events.schema import IncomingEvent
from ..models import Event
from ..store import Store

EVENTS_SOURCE = "events"


class BadLine(ValueError):
    """A line that is not JSON (kept in the stream so callers can count and report it)."""


def read_jsonl(path: str | Path, *, strict: bool = True) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) per non-empty line; a broken line raises, or with strict=False comes as BadLine."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except (ValueError, RecursionError) as err:  # RecursionError: nested deeper than the parser goes
                    bad = BadLine(f"not valid JSON ({getattr(err, 'msg', err)})")
                    if strict:
                        raise ValueError(f"{path}:{n}: {bad}") from None
                    yield n, bad


_TIME = TypeAdapter(datetime)
Ties = list[tuple[datetime, str]]  # (when, userId) of the events tying one anonymous id to a user, in time order


def _ties(rows: list[tuple[int, Any]]) -> dict[str, Ties]:
    ties: dict[str, Ties] = {}
    for _, raw in rows:
        if isinstance(raw, dict):
            anon, user = raw.get("anonymousId") or raw.get("anonymous_id"), raw.get("userId") or raw.get("user_id")
            if anon and user:
                try:
                    when = _TIME.validate_python(raw.get("timestamp"))
                except ValidationError:
                    continue  # the line itself is rejected below
                if when.tzinfo is not None:
                    ties.setdefault(str(anon), []).append((when, str(user)))
    for found in ties.values():
        found.sort(key=lambda t: t[0])
    return ties


def _stitch(ties: Ties, when: datetime | None) -> str | None:
    """The user of the latest tie at or before `when`; before the first, the first (as the API moves a device's
    earlier events to its first identify)."""
    if not ties or when is None:
        return None
    i = bisect.bisect_right(ties, when, key=lambda t: t[0])
    return ties[max(i - 1, 0)][1]


def _sdk_event(raw: dict[str, Any], ties: Ties) -> Event:
    ev = IncomingEvent.model_validate(raw)
    user = None if ev.user_id else _stitch(ties, ev.timestamp)
    canonical = json.dumps(raw, sort_keys=True, default=str)
    event_id = ev.message_id or "h-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
    context = ev.context.model_dump(exclude_none=True)
    return Event(source=EVENTS_SOURCE, event_id=event_id, type=ev.type, event=ev.event or ev.name,
                 timestamp=ev.timestamp, anonymous_id=ev.anonymous_id, customer_key=ev.user_id or user,
                 user_id=ev.user_id, properties={**ev.properties, **({"name": ev.name} if ev.name else {})},
                 channel=context.get("channel") or _channel(raw), context=context)


def _channel(raw: dict[str, Any]) -> str | None:
    """Some exports put the channel at the top level instead of in context."""
    value = raw.get("channel")
    return value if value in ("web", "mobile", "server", "store") else None


def load_events(store: Store, path: str | Path) -> dict[str, int]:
    """Store every event of a JSONL file as activity; bad lines are counted and reported, never fatal."""
    rows = list(read_jsonl(path, strict=False))
    ties = _ties(rows)
    activity = store.container("activity")
    counts = {"events": 0, "rejected": 0}
    errors: list[str] = []
    for n, raw in rows:
        try:
            if isinstance(raw, BadLine):
                raise raw
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            if "event_id" in raw and "source" in raw:
                ev = Event.model_validate(raw)
            else:
                ev = _sdk_event(raw, ties.get(str(raw.get("anonymousId") or raw.get("anonymous_id") or ""), []))
            if ev.timestamp is None:
                raise ValueError("no timestamp")
            activity.upsert_item(activity_doc(ev))
            counts["events"] += 1
        except (ValidationError, ValueError, RecursionError) as err:
            counts["rejected"] += 1
            if len(errors) < 5:
                errors.append(f"line {n}: {str(err).splitlines()[0][:200]}")
    if errors:
        counts["errors"] = errors  # type: ignore[assignment]
    return counts


def load_profiles(store: Store, path: str | Path) -> int:
    """Profile documents (one JSON object per line, in the agreed profile shape)."""
    profiles = store.container("profiles")
    n = 0
    for line, raw in read_jsonl(path):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise ValueError(f"{path}:{line}: a profile is a JSON object with a string id")
        raw.setdefault("doc_type", "profile")
        profiles.upsert_item(raw)
        n += 1
    return n
