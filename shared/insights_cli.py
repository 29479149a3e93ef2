"""`ucp journey ...` and `ucp segment ...`: funnels and segments on files, with the in-memory store.

    ucp journey funnel --events EVENTS.jsonl --definition JOURNEY.json [--from ISO] [--to ISO] [--channel web]
    ucp segment check --rule RULE.json          (a segment definition {"name", "rule"} or the rule alone)
    ucp segment members --rule RULE.json --profiles PROFILES.jsonl [--events EVENTS.jsonl] [--at ISO]
"""
from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None


def _print(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _validation(err: ValidationError) -> ValueError:
    return ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()))


def journey_funnel(args) -> int:
    from .insights.common import parse_time
    from .insights.files import load_events
    from .insights.journeys import JourneyDefinition, funnel
    from .store import MemoryStore

    try:
        definition = JourneyDefinition.model_validate(_read_json(args.definition))
    except ValidationError as err:
        raise _validation(err) from None
    store = MemoryStore()
    loaded = load_events(store, args.events)
    start, end = args.start, args.end
    if start is None or end is None:  # default to the whole file rather than "the last 30 days"
        stamps = [d["timestamp"] for d in store.container("activity").query_items(("kind", "=", "event"))]
        if not stamps:
            raise ValueError(f"{args.events} has no readable events")
        start = start or min(stamps)
        end = end or (parse_time(max(stamps)) + timedelta(seconds=1)).isoformat()
    report = funnel(store, {"id": None, **definition.model_dump(mode="json")}, start=start, end=end, channel=args.channel)
    _print({"input": loaded, **report})
    return 0


def _read_rule(path: str) -> tuple[Any, bool]:
    """The rule of a file holding either a segment definition as POST /segments takes it ({"name", "rule",
    "description"}, validated as such) or the rule alone; and whether it was a definition."""
    data = _read_json(path)
    if not (isinstance(data, dict) and "rule" in data):  # no rule has a "rule" key: all, any, not, field, behaviour
        return data, False
    from .insights.segments import SegmentDefinition

    try:
        return SegmentDefinition.model_validate(data).rule, True
    except ValidationError as err:
        raise _validation(err) from None


def segment_check(args) -> int:
    from .insights.rules import parse_rule

    rule, definition = _read_rule(args.rule)
    parse_rule(rule)
    print("segment definition is valid" if definition else "rule is valid")
    return 0


def segment_members(args) -> int:
    from .insights.common import parse_time
    from .insights.files import load_events, load_profiles
    from .insights.segments import matching_profile_ids
    from .store import MemoryStore

    store = MemoryStore()
    load_profiles(store, args.profiles)
    if args.events:
        load_events(store, args.events)
    members = matching_profile_ids(store, _read_rule(args.rule)[0], now=parse_time(args.at) if args.at else None)
    _print({"size": len(members), "members": sorted(members)})
    return 0


def register(subparsers) -> None:
    journey = subparsers.add_parser("journey", help="journey funnels on event files")
    jsub = journey.add_subparsers(dest="journey_command", required=True)
    f = jsub.add_parser("funnel", help="funnel report: reached, conversion, drop-off, median time per step")
    f.add_argument("--events", required=True, help="events, JSON Lines (SDK or canonical shape)")
    f.add_argument("--definition", required=True, help="journey definition JSON (name, steps, conversion_window_days)")
    f.add_argument("--from", dest="start", help="start of the date range (ISO 8601, UTC); default: first event")
    f.add_argument("--to", dest="end", help="end of the date range, exclusive; default: after the last event")
    f.add_argument("--channel", help="only events of this channel (web, mobile, ...)")
    f.set_defaults(func=journey_funnel)

    segment = subparsers.add_parser("segment", help="segment rules on profile files")
    ssub = segment.add_subparsers(dest="segment_command", required=True)
    c = ssub.add_parser("check", help="validate a segment rule")
    c.add_argument("--rule", required=True)
    c.set_defaults(func=segment_check)
    m = ssub.add_parser("members", help="profiles matching a rule")
    m.add_argument("--rule", required=True)
    m.add_argument("--profiles", required=True, help="profile documents, JSON Lines")
    m.add_argument("--events", help="events, JSON Lines, for behaviour conditions")
    m.add_argument("--at", help="evaluate as of this time (ISO 8601); default now")
    m.set_defaults(func=segment_members)
