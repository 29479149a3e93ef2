"""Reports as JSON: unification, churn, revenue by segment and channel, web and mobile analytics, funnels;
and custom reports (saved, parameterized definitions run by id).

Reports aggregate in one pass over the documents they need, read with one filtered query each (a date range
on activity, live profiles), because the Cosmos SQL we can rely on has no GROUP BY. They are meant for
dashboards and scheduled exports, not per-request hot paths.
"""
from __future__ import annotations

import json
import logging
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..activity import is_purchase, iso_utc
from ..events.sessions import sessionize
from ..identity.maintenance import ID_FOLLOWED
from ..settings import Settings
from ..store import Store
from .common import LIVE_PROFILES, list_definitions, new_id, now_iso, read_definition
from .journeys import date_range, funnel, get_journey, profile_of_owner

log = logging.getLogger(__name__)
DOC_TYPE = "report"
RISK_LEVELS = ("low", "medium", "high")
NO_PROFILE = "(no profile)"
NO_SEGMENT = "(no segment)"


class ReportParameters(BaseModel):
    """Parameters any report accepts; each report uses the ones it needs."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    start: str | None = Field(default=None, alias="from", max_length=40)
    end: str | None = Field(default=None, alias="to", max_length=40)
    channel: str | None = Field(default=None, max_length=40)
    journey_id: str | None = Field(default=None, max_length=128)
    conversion_event: str = Field(default="Order Completed", min_length=1, max_length=256)
    top: int = Field(default=10, ge=1, le=100)


class ReportDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    report: Literal["unification", "churn", "revenue", "analytics", "funnel"]
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("parameters")
    @classmethod
    def _known_parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            ReportParameters.model_validate(value)
        except ValidationError as err:
            raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())) from None
        return value


def parameters(raw: dict[str, Any] | None) -> ReportParameters:
    return ReportParameters.model_validate({k: v for k, v in (raw or {}).items() if v not in (None, "")})


# --- unification ----------------------------------------------------------------------------------------

def unification_report(store: Store, params: ReportParameters | None = None) -> dict[str, Any]:
    """Records, profiles, match rate (share of records that share a profile with another record), merges by
    reason, open review pairs, and the same per source."""
    records_total = 0
    profiles = linked = 0
    per_source: dict[str, Counter] = defaultdict(Counter)
    sizes: Counter = Counter()
    for doc in store.container("profiles").query_items(LIVE_PROFILES):
        profiles += 1
        keys = [r.get("key") or "" for r in doc.get("records", [])]
        sources = [k.split("|", 1)[0] for k in keys]
        records_total += len(keys)
        sizes[min(len(keys), 10)] += 1
        if len(keys) > 1:
            linked += len(keys)
        for s in set(sources):
            per_source[s]["profiles"] += 1
            if len(set(sources)) > 1:
                per_source[s]["profiles_with_other_sources"] += 1
        for s in sources:
            per_source[s]["records"] += 1
            if len(keys) > 1:
                per_source[s]["linked_records"] += 1
    # A split is logged under both its profiles (split_into on the old one, split_from on the new): counted once;
    # an id that followed its record out (ID_FOLLOWED) is part of the split or record change that moved it.
    merges = Counter(m.get("reason", "unknown") for m in store.container("merges").query_items()
                     if (m.get("reason") != "split" or m.get("split_into")) and m.get("reason") != ID_FOLLOWED)
    review_open = store.container("review").count_items(("status", "=", "open"))
    return {
        "report": "unification", "generated_at": now_iso(),
        "records": records_total, "profiles": profiles,
        "match_rate": round(linked / records_total, 4) if records_total else 0.0,
        "records_per_profile": round(records_total / profiles, 4) if profiles else 0.0,
        "aliases": store.container("profiles").count_items(("doc_type", "=", "alias")),
        "merges": sum(merges.values()), "merges_by_reason": dict(sorted(merges.items())),
        "review_open": review_open,
        "profile_sizes": {("10+" if k == 10 else str(k)): v for k, v in sorted(sizes.items())},
        "per_source": {s: {"records": c["records"], "profiles": c["profiles"],
                           "match_rate": round(c["linked_records"] / c["records"], 4) if c["records"] else 0.0,
                           "profiles_with_other_sources": c["profiles_with_other_sources"]}
                       for s, c in sorted(per_source.items())},
    }


# --- churn ----------------------------------------------------------------------------------------------

def model_card(settings: Settings | None) -> dict[str, Any] | None:
    """The published champion's card from the model registry, or None (no registry reachable or no model)."""
    if settings is None:
        return None
    try:
        from ..churn.registry import blob_registry

        registry = blob_registry(settings)
        found = registry.latest()
        if found is None:
            return None
        pointer = found[0]
        card = registry.backend.read(f"{registry.prefix}/{pointer['version']}/card.json")
        return {"version": pointer["version"], "published_at": pointer.get("published_at"),
                **(json.loads(card[0]) if card else {})}
    except Exception as err:  # the report still answers without the card; say why in the log (no data)
        log.warning("churn report: model card unavailable (%s)", type(err).__name__)
        return None


def churn_report(store: Store, params: ReportParameters | None = None, settings: Settings | None = None) -> dict[str, Any]:
    risk: Counter = Counter()
    bins = [0] * 10
    scores: list[float] = []
    factors: Counter = Counter()
    unscored = 0
    for doc in store.container("profiles").query_items(LIVE_PROFILES):
        churn = doc.get("churn") or {}
        score = churn.get("score")
        if not isinstance(score, (int, float)):
            unscored += 1
            continue
        scores.append(float(score))
        risk[churn.get("risk") or "unknown"] += 1
        bins[min(int(score * 10), 9)] += 1
        for f in (churn.get("top_factors") or [])[:3]:
            name = (f.get("factor") or f.get("feature")) if isinstance(f, dict) else None
            if name:
                factors[name] += 1
    return {
        "report": "churn", "generated_at": now_iso(), "scored": len(scores), "unscored": unscored,
        "average_score": round(sum(scores) / len(scores), 4) if scores else None,
        "risk": {level: risk.get(level, 0) for level in (*RISK_LEVELS, *sorted(set(risk) - set(RISK_LEVELS)))},
        "score_histogram": [{"from": i / 10, "to": (i + 1) / 10, "profiles": n} for i, n in enumerate(bins)],
        "top_factors": [{"factor": k, "profiles": v} for k, v in factors.most_common(10)],
        "thresholds": {"medium": settings.churn_risk_medium, "high": settings.churn_risk_high} if settings else None,
        "model": model_card(settings),
    }


# --- revenue --------------------------------------------------------------------------------------------

def _profile_segments(store: Store, pid: str, cache: dict[str, list[str]]) -> list[str]:
    if pid not in cache:
        doc = store.container("profiles").read_item_or_none(pid, pid)
        cache[pid] = list((doc or {}).get("segments") or []) if doc and doc.get("doc_type") == "profile" else []
    return cache[pid]


def revenue_report(store: Store, params: ReportParameters | None = None) -> dict[str, Any]:
    """Revenue (purchases), returns and orders in a date range, by channel, by segment and by both.

    Money is never added across currencies: every bucket has ``by_currency``, and its own revenue, returns,
    net revenue and average order value only when it holds one currency (None when it mixes several)."""
    p = params or ReportParameters()
    start, end = date_range(p.start, p.end, default_days=90)
    flt: list[Any] = [("kind", "=", "transaction"), ("timestamp", ">=", iso_utc(start)), ("timestamp", "<", iso_utc(end))]
    if p.channel:
        flt.append(("channel", "=", p.channel))
    owners: dict[str, str] = {}
    segs: dict[str, list[str]] = {}
    names = {s["id"]: s["name"] for s in list_definitions(store, "segment")}

    def money() -> dict[str, Any]:
        return {"revenue": 0.0, "returns": 0.0, "orders": set(), "customers": set()}

    def blank() -> dict[str, Any]:
        return {**money(), "currencies": defaultdict(money)}

    total, by_channel, by_segment = blank(), defaultdict(blank), defaultdict(blank)
    by_both: dict[tuple[str, str], dict[str, Any]] = defaultdict(blank)
    for tx in store.container("activity").query_items(("and", flt)):
        pid = profile_of_owner(store, tx["owner"], owners)
        channel = tx.get("channel") or "unknown"
        seg_ids = _profile_segments(store, pid, segs) if pid != tx["owner"] else []
        buckets = [total, by_channel[channel]]
        for s in seg_ids or [NO_SEGMENT]:
            buckets += [by_segment[s], by_both[(s, channel)]]
        amount = float(tx.get("amount") or 0.0)
        # each source numbers its own orders; the lines of a line-level file (line_id) are one order
        order = (tx.get("source"), tx.get("order_id") or tx["id"])
        for b in buckets:
            for m in (b, b["currencies"][tx.get("currency") or "unknown"]):
                if is_purchase(tx):
                    m["revenue"] += amount
                    m["orders"].add(order)
                    m["customers"].add(pid)
                else:
                    m["returns"] += abs(amount)

    def figures(m: dict[str, Any], single: bool = True) -> dict[str, Any]:
        orders = len(m["orders"])
        return {"revenue": round(m["revenue"], 2) if single else None,
                "returns": round(m["returns"], 2) if single else None,
                "net_revenue": round(m["revenue"] - m["returns"], 2) if single else None,
                "orders": orders, "customers": len(m["customers"]),
                "average_order_value": round(m["revenue"] / orders, 2) if orders and single else None}

    def out(b: dict[str, Any]) -> dict[str, Any]:
        currencies = sorted(b["currencies"])
        return {**figures(b, len(currencies) <= 1), "currency": currencies[0] if len(currencies) == 1 else None,
                "by_currency": {c: figures(b["currencies"][c]) for c in currencies}}

    def label(seg: str) -> str:
        return names.get(seg, seg)

    return {
        "report": "revenue", "generated_at": now_iso(), "from": iso_utc(start), "to": iso_utc(end), "channel": p.channel,
        **out(total),
        "by_channel": {c: out(b) for c, b in sorted(by_channel.items())},
        "by_segment": [{"segment_id": s, "segment": label(s), **out(b)} for s, b in sorted(by_segment.items())],
        "by_segment_and_channel": [{"segment_id": s, "segment": label(s), "channel": c, **out(b)}
                                   for (s, c), b in sorted(by_both.items())],
    }


# --- web and mobile analytics ---------------------------------------------------------------------------

def analytics_report(store: Store, params: ReportParameters | None = None) -> dict[str, Any]:
    """Daily active profiles, sessions, top pages and screens, and conversion by channel (share of people
    active on a channel who did the conversion event there)."""
    p = params or ReportParameters()
    start, end = date_range(p.start, p.end, default_days=30)
    flt: list[Any] = [("kind", "=", "event"), ("timestamp", ">=", iso_utc(start)), ("timestamp", "<", iso_utc(end))]
    if p.channel:
        flt.append(("channel", "=", p.channel))
    owners: dict[str, str] = {}
    daily: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    by_actor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    pages, screens = Counter(), Counter()
    active: dict[str, set] = defaultdict(set)
    converted: dict[str, set] = defaultdict(set)
    for ev in store.container("activity").query_items(("and", flt)):
        actor = profile_of_owner(store, ev["owner"], owners)
        channel = ev.get("channel") or "unknown"
        day = ev["timestamp"][:10]
        daily[day]["all"].add(actor)
        daily[day][channel].add(actor)
        by_actor[actor].append(ev)
        active[channel].add(actor)
        name = (ev.get("properties") or {}).get("name") or ev.get("event") or "(unnamed)"
        if ev.get("type") == "page":
            pages[name] += 1
        elif ev.get("type") == "screen":
            screens[name] += 1
        if ev.get("event") == p.conversion_event:
            converted[channel].add(actor)
    sessions = Counter()
    durations: list[int] = []
    for events in by_actor.values():
        for s in sessionize(events):
            sessions[s["channels"][0] if len(s["channels"]) == 1 else "mixed" if s["channels"] else "unknown"] += 1
            durations.append(s["duration_seconds"])
    return {
        "report": "analytics", "generated_at": now_iso(), "from": iso_utc(start), "to": iso_utc(end), "channel": p.channel,
        "active_profiles": len(by_actor),
        "daily_active": [{"date": d, "active": len(daily[d]["all"]) if d in daily else 0,
                          **{c: len(a) for c, a in sorted(daily[d].items()) if c != "all"}} for d in _days(start, end)],
        "sessions": sum(sessions.values()), "sessions_by_channel": dict(sorted(sessions.items())),
        "median_session_seconds": statistics.median(durations) if durations else None,
        "top_pages": [{"name": k, "views": v} for k, v in pages.most_common(p.top)],
        "top_screens": [{"name": k, "views": v} for k, v in screens.most_common(p.top)],
        "conversion_event": p.conversion_event,
        "conversion_by_channel": {c: {"active": len(a), "converted": len(converted[c]),
                                      "rate": round(len(converted[c]) / len(a), 4) if a else 0.0}
                                  for c, a in sorted(active.items())},
    }


def _days(start: datetime, end: datetime) -> list[str]:
    """Every UTC date in [start, end), so a chart's time axis has no gaps."""
    last = (end - timedelta(microseconds=1)).date()
    day, out = start.date(), []
    while day <= last:
        out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def funnel_report(store: Store, params: ReportParameters | None = None) -> dict[str, Any]:
    p = params or ReportParameters()
    if not p.journey_id:
        raise ValueError("the funnel report needs the parameter journey_id")
    return {"report": "funnel", "generated_at": now_iso(),
            **funnel(store, get_journey(store, p.journey_id), start=p.start, end=p.end, channel=p.channel)}


BUILTIN: dict[str, Callable[..., dict[str, Any]]] = {
    "unification": unification_report, "churn": churn_report, "revenue": revenue_report,
    "analytics": analytics_report, "funnel": funnel_report,
}


def run_builtin(store: Store, name: str, raw_params: dict[str, Any] | None = None,
                settings: Settings | None = None) -> dict[str, Any]:
    if name not in BUILTIN:
        raise LookupError(f"no report named {name!r}; built-in reports: {', '.join(BUILTIN)}")
    p = parameters(raw_params)
    if name == "churn":
        return churn_report(store, p, settings)
    return BUILTIN[name](store, p)


# --- custom reports -------------------------------------------------------------------------------------

def create_report(store: Store, definition: ReportDefinition) -> dict[str, Any]:
    at = now_iso()
    doc = {"id": new_id("rpt"), "doc_type": DOC_TYPE, **definition.model_dump(mode="json"), "created_at": at, "updated_at": at}
    return store.container("segments").create_item(doc)


def get_report(store: Store, report_id: str) -> dict[str, Any]:
    return read_definition(store, DOC_TYPE, report_id)


def list_reports(store: Store) -> list[dict[str, Any]]:
    return list_definitions(store, DOC_TYPE)


def run_report(store: Store, report: str, overrides: dict[str, Any] | None = None,
               settings: Settings | None = None) -> dict[str, Any]:
    """Run a built-in report by name, or a saved one by id with its parameters and these overrides."""
    if report in BUILTIN:
        return run_builtin(store, report, overrides, settings)
    saved = get_report(store, report)
    result = run_builtin(store, saved["report"], {**saved.get("parameters", {}), **(overrides or {})}, settings)
    return {**result, "report_id": saved["id"], "name": saved["name"]}

