"""Journeys: ordered steps (each an event name or type, with optional property filters) and their funnels.

A person reaches step k when, after reaching step k-1, a later event matches step k, all within
``conversion_window_days`` of the event that started the attempt (step 1). Of several attempts the deepest
counts for the funnel (ties: the first to get that deep, started by the last step-1 event before it); the
person's *current stage* is where their latest attempt stands. In a funnel's ``by_channel`` each person counts
once, under the channel of the step-1 event of their counted attempt (so the channels add up to the total).

Who is a "person": events are read from the `activity` container and mapped to profiles through their owner
(a source record key -> its profile; one profile's several records make one timeline). Events nobody has
claimed yet (anonymous owners) count as separate visitors, so the top of the funnel includes them.
"""
from __future__ import annotations

import statistics
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..activity import iso_utc, list_activity
from ..store import Store
from .common import list_definitions, new_id, now_iso, owners, parse_time, read_definition
from .rules import utc_now

DOC_TYPE = "journey"
Scalar = str | int | float | bool


class JourneyStep(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)
    name: str = Field(min_length=1, max_length=100)
    event: str | None = Field(default=None, min_length=1, max_length=256)
    type: Literal["identify", "track", "page", "screen"] | None = None
    properties: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names_something(self) -> "JourneyStep":
        if self.event is None and self.type is None:
            raise ValueError(f"step {self.name!r}: give an event name, an event type, or both")
        return self

    def matches(self, ev: dict[str, Any]) -> bool:
        if self.event is not None and ev.get("event") != self.event:
            return False
        if self.type is not None and ev.get("type") != self.type:
            return False
        props = ev.get("properties") or {}
        return all(props.get(k) == v for k, v in self.properties.items())


class JourneyDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    steps: list[JourneyStep] = Field(min_length=2, max_length=20)
    conversion_window_days: int = Field(default=30, ge=1, le=365)


# --- definitions ----------------------------------------------------------------------------------------

def create_journey(store: Store, definition: JourneyDefinition) -> dict[str, Any]:
    at = now_iso()
    doc = {"id": new_id("jrn"), "doc_type": DOC_TYPE, **definition.model_dump(mode="json"),
           "created_at": at, "updated_at": at}
    return store.container("segments").create_item(doc)


def get_journey(store: Store, journey_id: str) -> dict[str, Any]:
    return read_definition(store, DOC_TYPE, journey_id)


def list_journeys(store: Store) -> list[dict[str, Any]]:
    return list_definitions(store, DOC_TYPE)


def definition_of(doc: dict[str, Any]) -> JourneyDefinition:
    return JourneyDefinition.model_validate({k: doc[k] for k in JourneyDefinition.model_fields if k in doc})


# --- progress of one person -----------------------------------------------------------------------------

def attempt(steps: list[JourneyStep], events: list[dict[str, Any]], start: int, window: timedelta) -> list[str]:
    """Timestamps of the steps reached from the step-1 event at `start` (events sorted by time)."""
    return [ev["timestamp"] for ev in _attempt(steps, events, start, window)]


def _attempt(steps: list[JourneyStep], events: list[dict[str, Any]], start: int,
             window: timedelta) -> list[dict[str, Any]]:
    reached = [events[start]]
    deadline = iso_utc(parse_time(reached[0]["timestamp"]) + window)
    for ev in events[start + 1:]:
        if len(reached) == len(steps) or ev["timestamp"] > deadline:
            break
        if steps[len(reached)].matches(ev):
            reached.append(ev)
    return reached


def _deepest(steps: list[JourneyStep], events: list[dict[str, Any]], window: timedelta) -> list[dict[str, Any]]:
    """The events of the deepest attempt, in one pass however many step-1 events there are.

    chains[k] is the attempt with the latest start that has reached step k+1 so far: a later start has a later
    deadline, so no earlier one can go further from there. Of equally deep attempts the first to get that deep
    counts (the one started by the last step-1 event before it: last touch)."""
    chains: list[tuple[str, list[dict[str, Any]]] | None] = [None] * len(steps)  # (deadline, events)
    best: list[dict[str, Any]] = []
    for ev in events:
        for k in range(len(steps) - 1, 0, -1):  # deepest first, so one event advances an attempt by one step only
            held = chains[k - 1]
            if held is not None and ev["timestamp"] <= held[0] and steps[k].matches(ev):
                chains[k] = (held[0], [*held[1], ev])
                if k + 1 > len(best):
                    best = chains[k][1]
        if steps[0].matches(ev):
            chains[0] = (iso_utc(parse_time(ev["timestamp"]) + window), [ev])
            best = best or [ev]
    return best


def progress(steps: list[JourneyStep], events: list[dict[str, Any]], window: timedelta) -> tuple[list[str], list[str]]:
    """(deepest attempt, latest attempt) for one person's events, as timestamps of the steps reached."""
    best, latest = _progress(steps, events, window)
    return [e["timestamp"] for e in best], [e["timestamp"] for e in latest]


def _progress(steps: list[JourneyStep], events: list[dict[str, Any]],
              window: timedelta) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = sorted(events, key=lambda e: e["timestamp"])
    starts = [i for i, ev in enumerate(events) if steps[0].matches(ev)]
    if not starts:
        return [], []
    return _deepest(steps, events, window), _attempt(steps, events, starts[-1], window)


def stage_of(journey: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A person's current stage in a journey: the step their latest attempt reached (None if never started)."""
    definition = definition_of(journey)
    _, latest = progress(definition.steps, events, timedelta(days=definition.conversion_window_days))
    if not latest:
        return None
    return {"journey_id": journey["id"], "journey": definition.name, "step": len(latest),
            "step_name": definition.steps[len(latest) - 1].name, "steps": len(definition.steps),
            "completed": len(latest) == len(definition.steps), "at": latest[-1], "started_at": latest[0]}


def profile_stage(store: Store, journey: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any] | None:
    return stage_of(journey, list(list_activity(store, owners(profile), kind="event")))


# --- funnel ---------------------------------------------------------------------------------------------

def funnel_from_events(definition: JourneyDefinition, actor_events: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Funnel figures for people's events (already limited to the date range and channel)."""
    return _figures(definition, best_attempts(definition, actor_events).values())


def best_attempts(definition: JourneyDefinition,
                  actor_events: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Each person's deepest attempt (the events of the steps reached)."""
    window = timedelta(days=definition.conversion_window_days)
    return {actor: _progress(definition.steps, events, window)[0] for actor, events in actor_events.items()}


def _figures(definition: JourneyDefinition, attempts: Iterable[list[dict[str, Any]]]) -> dict[str, Any]:
    steps = definition.steps
    reached = [0] * len(steps)
    gaps: list[list[float]] = [[] for _ in steps]
    total_times: list[float] = []
    for chain in attempts:
        best = [e["timestamp"] for e in chain]
        for k, ts in enumerate(best):
            reached[k] += 1
            if k:
                gaps[k].append((parse_time(ts) - parse_time(best[k - 1])).total_seconds())
        if len(best) == len(steps) and len(steps) > 1:
            total_times.append((parse_time(best[-1]) - parse_time(best[0])).total_seconds())
    rows = []
    for k, step in enumerate(steps):
        prev = reached[k - 1] if k else reached[0]
        rows.append({
            "step": k + 1, "name": step.name, "reached": reached[k],
            "conversion_from_previous": _ratio(reached[k], prev),
            "conversion_from_start": _ratio(reached[k], reached[0]),
            "drop_off": prev - reached[k] if k else 0,
            "drop_off_rate": round(1 - _ratio(reached[k], prev), 4) if k and prev else 0.0,
            "median_seconds_from_previous": statistics.median(gaps[k]) if gaps[k] else None,
        })
    return {"entered": reached[0], "completed": reached[-1], "overall_conversion": _ratio(reached[-1], reached[0]),
            "median_seconds_to_complete": statistics.median(total_times) if total_times else None, "steps": rows}


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def _step_filter(steps: list[JourneyStep]) -> Any:
    """Only events that could match some step are read (event names and types go into the query)."""
    parts = []
    for s in steps:
        conds = [c for c in (("event", "=", s.event) if s.event else None, ("type", "=", s.type) if s.type else None) if c]
        parts.append(conds[0] if len(conds) == 1 else ("and", conds))
    return parts[0] if len(parts) == 1 else ("or", parts)


def profile_of_owner(store: Store, owner: str, cache: dict[str, str]) -> str:
    """The live profile id owning this activity owner, or the owner itself when no profile claims it."""
    if owner in cache:
        return cache[owner]
    found = owner
    record = store.container("records").read_item_or_none(owner, owner)
    pid = record.get("profile_id") if record else None
    profiles = store.container("profiles")
    for _ in range(5):  # follow merge aliases to the surviving profile
        if not pid:
            break
        doc = profiles.read_item_or_none(pid, pid)
        if doc is None or doc.get("doc_type") == "erased":
            break
        if doc.get("doc_type") == "alias" and doc.get("merged_into"):
            pid = doc["merged_into"]
            continue
        found = pid
        break
    cache[owner] = found
    return found


def load_actor_events(store: Store, steps: list[JourneyStep], start: datetime, end: datetime,
                      channel: str | None = None) -> dict[str, list[dict[str, Any]]]:
    flt: list[Any] = [("kind", "=", "event"), ("timestamp", ">=", iso_utc(start)), ("timestamp", "<", iso_utc(end)),
                      _step_filter(steps)]
    if channel:
        flt.append(("channel", "=", channel))
    actors: dict[str, list[dict[str, Any]]] = {}
    cache: dict[str, str] = {}
    for ev in store.container("activity").query_items(("and", flt)):
        actors.setdefault(profile_of_owner(store, ev["owner"], cache), []).append(ev)
    return actors


def _in_calendar(moment: datetime) -> datetime:
    """In UTC (reports list UTC days), and far enough from year 1 and 9999 to compute a range and its days."""
    if not 1900 <= moment.year <= 9998:
        raise ValueError("dates must be between the years 1900 and 9998")
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def date_range(start: str | datetime | None, end: str | datetime | None, *, default_days: int = 30) -> tuple[datetime, datetime]:
    """[start, end) in UTC; defaults to the last `default_days` days. Raises ValueError on bad input."""
    end_dt = _in_calendar((parse_time(end) if isinstance(end, str) else end) or utc_now())
    start_dt = _in_calendar((parse_time(start) if isinstance(start, str) else start)
                            or end_dt - timedelta(days=default_days))
    if start_dt >= end_dt:
        raise ValueError("the date range is empty: 'from' must be before 'to'")
    if end_dt - start_dt > timedelta(days=3 * 366):
        raise ValueError("the date range may span at most three years")
    return start_dt, end_dt


def funnel(store: Store, journey: dict[str, Any], *, start: str | datetime | None = None,
           end: str | datetime | None = None, channel: str | None = None) -> dict[str, Any]:
    """The journey's funnel over [start, end), overall (or for one channel) and per channel."""
    definition = definition_of(journey)
    start_dt, end_dt = date_range(start, end)
    actors = load_actor_events(store, definition.steps, start_dt, end_dt, channel)
    report = {"journey_id": journey.get("id"), "journey": definition.name, "from": iso_utc(start_dt),
              "to": iso_utc(end_dt), "channel": channel}
    attempts = best_attempts(definition, actors)
    report.update(_figures(definition, attempts.values()))
    if channel is None:
        report["by_channel"] = {c: _figures(definition, chains) for c, chains in sorted(by_channel(attempts).items())}
    return report


def by_channel(attempts: dict[str, list[dict[str, Any]]]) -> dict[str, list[list[dict[str, Any]]]]:
    """Each person's attempt under the channel where it started (their full timeline, so a web view followed by
    an app purchase is one web conversion, and the channels add up to the total)."""
    out: dict[str, list[list[dict[str, Any]]]] = {}
    for chain in attempts.values():
        if chain:
            out.setdefault(chain[0].get("channel") or "unknown", []).append(chain)
    return out


def stages_for(store: Store, journeys: Iterable[dict[str, Any]], profile: dict[str, Any],
               events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Current stage in each journey the person has started, keyed by journey id (written on the profile)."""
    if events is None:
        events = list(list_activity(store, owners(profile), kind="event"))
    stages = {}
    for j in journeys:
        stage = stage_of(j, events)
        if stage:
            stages[j["id"]] = stage
    return stages
