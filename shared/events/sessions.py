"""Sessions from an event timeline: a new session after `gap_minutes` of inactivity (30 by default, as in GA)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def sessionize(events: Iterable[dict[str, Any]], gap_minutes: int = 30) -> list[dict[str, Any]]:
    """Group events (stored activity docs) into sessions, oldest first."""
    gap = timedelta(minutes=gap_minutes)
    sessions: list[dict[str, Any]] = []
    for ev in sorted(events, key=lambda e: e["timestamp"]):
        ts = _ts(ev["timestamp"])
        if not sessions or ts - sessions[-1]["_last"] > gap:
            sessions.append({"start": ev["timestamp"], "_last": ts, "events": 0, "channels": set(), "pages": 0})
        s = sessions[-1]
        s["_last"], s["end"] = ts, ev["timestamp"]
        s["events"] += 1
        if ev.get("channel"):
            s["channels"].add(ev["channel"])
        if ev.get("type") in ("page", "screen"):
            s["pages"] += 1
    return [{"start": s["start"], "end": s["end"], "events": s["events"], "views": s["pages"],
             "duration_seconds": int((s["_last"] - _ts(s["start"])).total_seconds()),
             "channels": sorted(s["channels"])} for s in sessions]


def behaviour_summary(events: list[dict[str, Any]], gap_minutes: int = 30) -> dict[str, Any]:
    """What the profile shows about behaviour: last seen, sessions, channels."""
    if not events:
        return {"last_seen": None, "sessions": 0, "events": 0, "channels": [], "recent_sessions": []}
    sessions = sessionize(events, gap_minutes)
    channels = sorted({e["channel"] for e in events if e.get("channel")})
    return {"last_seen": max(e["timestamp"] for e in events), "sessions": len(sessions), "events": len(events),
            "channels": channels, "recent_sessions": sessions[-5:][::-1]}
