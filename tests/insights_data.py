"""Small, hand-made profiles and activity for the insights tests (documents in the agreed shapes)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from shared.activity import save_activity
from shared.models import Event, Transaction

NOW = datetime(2026, 9, 30, 12, 0, tzinfo=timezone.utc)
ROOT_DIR = Path(__file__).resolve().parent.parent


def ago(days: float, hours: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours)


def profile_doc(pid: str, *, sources: list[str], given: str, family: str, email: str | None = None,
                churn: dict[str, Any] | None = None, enrichment: dict[str, Any] | None = None,
                measures: dict[str, Any] | None = None, country: str = "GB") -> dict[str, Any]:
    attrs = {"given_name": given, "family_name": family, "country": country}
    if email:
        attrs["email"] = email
    src = sources[0].split("|")[0]
    doc = {
        "id": pid, "doc_type": "profile", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "records": [{"key": k, "source": k.split("|")[0], "record_key": k.split("|")[1], "hash": "h",
                     "match": {}, "added_at": "2026-01-01T00:00:00Z"} for k in sources],
        "identifiers": [f"source:{k}" for k in sources] + ([f"email:{email}"] if email else []),
        "attributes": {k: {"value": v, "source": src, "record": sources[0], "rule": "most_recent"} for k, v in attrs.items()},
        "conflicts": {}, "never_match": [], "merged_from": [], "merge_count": 0,
    }
    if churn:
        doc["churn"] = churn
    if enrichment:
        doc["enrichment"] = enrichment
    if measures:
        doc["measures"] = measures
    return doc


def put_profiles(store, docs: list[dict[str, Any]]) -> None:
    profiles, records = store.container("profiles"), store.container("records")
    for doc in docs:
        profiles.upsert_item(doc)
        for r in doc["records"]:
            records.upsert_item({"id": r["key"], "profile_id": doc["id"], "source": r["source"],
                                 "record_key": r["record_key"], "content_hash": "h", "record": {}, "updated_at": doc["updated_at"]})


def event(owner: str, n: int, name: str | None, when: datetime, *, type_: str = "track", channel: str = "web",
          **props: Any) -> Event:
    source, key = owner.split("|", 1)
    return Event(source=source, event_id=f"{key}-{n}", type=type_, event=name, timestamp=when, customer_key=key,
                 channel=channel, properties=props)


def purchase(owner: str, order: str, when: datetime, amount: float, *, channel: str = "store",
             category: str | None = None, items: list[dict] | None = None, kind: str = "purchase") -> Transaction:
    source, key = owner.split("|", 1)
    return Transaction(source=source, order_id=order, customer_key=key, timestamp=when, amount=amount, channel=channel,
                       category=category, items=items or [], kind=kind)


def seed_shop(store) -> dict[str, str]:
    """Four people: Ann (high churn, viewed shoes 4x recently), Bob (low churn, web buyer), Cy (no churn score,
    mobile), Dee (medium churn, viewed shoes long ago)."""
    put_profiles(store, [
        profile_doc("p_ann", sources=["pos|1", "web|a1"], given="Ann", family="Lee", email="ann@example.com",
                    churn={"score": 0.82, "risk": "high", "top_factors": [{"factor": "recency", "impact": 0.4, "direction": "up"},
                                                                  {"factor": "frequency", "impact": -0.1, "direction": "down"}]},
                    enrichment={"region": "London", "lifecycle_stage": "lapsing"},
                    measures={"orders": 2, "total_spend": 120.0, "last_purchase": "2026-05-01T00:00:00.000000Z"}),
        profile_doc("p_bob", sources=["web|b1"], given="Bob", family="Ray", email="bob@example.org",
                    churn={"score": 0.1, "risk": "low"}, enrichment={"region": "North West", "lifecycle_stage": "active"},
                    measures={"orders": 5, "total_spend": 640.5, "last_purchase": "2026-09-20T00:00:00.000000Z"}),
        profile_doc("p_cy", sources=["app|c1"], given="Cy", family="Moss", country="US"),
        profile_doc("p_dee", sources=["pos|4"], given="Dee", family="Hart", email="dee@example.net",
                    churn={"score": 0.5, "risk": "medium"}, enrichment={"region": "London"}),
    ])
    save_activity(store, [
        *[event("web|a1", i, "Product Viewed", ago(i + 1), category="shoes") for i in range(4)],
        event("web|a1", 9, "Product Viewed", ago(2), category="bags"),
        event("web|b1", 1, "Product Viewed", ago(3), category="shoes"),
        event("web|b1", 2, "Order Completed", ago(3), category="shoes"),
        event("app|c1", 1, None, ago(1), type_="screen", channel="mobile"),
        *[event("pos|4", i, "Product Viewed", ago(200 + i), category="shoes") for i in range(5)],
    ])
    return {"ann": "p_ann", "bob": "p_bob", "cy": "p_cy", "dee": "p_dee"}
