"""Web and mobile sessions in the shape analytics SDKs send (Segment-like): an anonymous id per device, events
anonymous until the person logs in (an `identify` with the customer id and email), identified afterwards.

Hard case: a family computer several household members log in on (a device id alone must not join them).
"""
from __future__ import annotations

import math
import random

from .behaviour import Clock, Purchase
from .config import GeneratorConfig
from .people import Person
from .sources import SourceRecord, record_at


def uuid_from(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def _poisson(rng: random.Random, mean: float, cap: int = 30) -> int:
    limit, k, p = math.exp(-min(mean, 30.0)), 0, rng.random()
    while p > limit and k < cap:
        k += 1
        p *= rng.random()
    return k


def person_sessions(rng: random.Random, p: Person, accounts: list[SourceRecord], orders: list[tuple[Purchase, str]],
                    has_app: bool, dropped_at: float | None, clock: Clock, cfg: GeneratorConfig, currency: str):
    """Yields (event dict, None) for each event and (None, (anonymous_id, channel, shared)) for each device."""
    web = [uuid_from(rng)] + ([uuid_from(rng)] if rng.random() < 0.3 else [])
    app = uuid_from(rng) if has_app else None
    for d in web:
        yield None, (d, "web", False)
    if app:
        yield None, (app, "mobile", False)
    if p.shared_device:
        yield None, (p.shared_device, "web", True)

    begin = max(0.0, accounts[0].registered - 30)
    end = min(clock.history, (dropped_at + 60) if dropped_at is not None else clock.history)
    sessions = [(o.t - rng.uniform(5, 40) / 1440, o, oid) for o, oid in orders]
    if end > begin:
        for _ in range(_poisson(rng, cfg.browse_sessions_per_year * (end - begin) / 365.0)):
            sessions.append((rng.uniform(begin, end), None, None))
    sessions = [s for s in sessions if 0 <= s[0] < clock.history]
    sessions.sort(key=lambda s: s[0])
    identified: set[str] = set()
    for t, order, order_id in sessions:
        mobile = app is not None and (order.channel == "mobile" if order else rng.random() < 0.5)
        if mobile:
            device, channel = app, "mobile"
        elif p.shared_device and rng.random() < 0.4:
            device, channel = p.shared_device, "web"
        else:
            device, channel = web[int(rng.random() * len(web))], "web"
        shared = device == p.shared_device
        login = order is not None or rng.random() < 0.3
        key = record_at(accounts, t).record_key
        session_id = f"{rng.getrandbits(64):016x}"
        seq = 0

        def event(kind: str, name: str | None, props: dict | None = None, traits: dict | None = None, user=None):
            """One event dict without empty keys (the events sink skips its None-dropping pass)."""
            nonlocal t, seq
            t += (10 + rng.random() * 80) / 86400
            seq += 1
            e = {"messageId": f"{session_id}-{seq}", "type": kind}
            if name:
                e["event"] = name
            e["timestamp"] = clock.iso(t)
            e["anonymousId"] = device
            e["sessionId"] = session_id
            e["channel"] = channel
            if user:
                e["userId"] = user
            if props:
                e["properties"] = props
            if traits:
                e["traits"] = traits
            return e

        known = login or (device in identified and not shared)  # a shared device only knows who is logged in
        yield event("screen" if mobile else "page", None, {"name": "home" if rng.random() < 0.6 else "category"},
                    user=key if known and device in identified else None), None
        if login and (device not in identified or shared):
            identified.add(device)
            yield event("identify", None, traits={"email": p.at(p.emails, t)}, user=key), None
        user = key if known else None
        items = order.items if order else []
        for _ in range(1 + (rng.random() < 0.5)):
            sku = items[int(rng.random() * len(items))].sku if items and rng.random() < 0.7 else f"SKU-{10000 + int(rng.random() * 89999)}"
            yield event("track", "Product Viewed", {"product_id": sku}, user=user), None
        if order or rng.random() < 0.3:
            yield event("track", "Product Added", {"product_id": items[0].sku if items else f"SKU-{10000 + int(rng.random() * 89999)}"},
                        user=user), None
        if order:
            yield event("track", "Checkout Started", {"value": order.amount, "currency": currency}, user=user), None
            yield event("track", "Order Completed", {"order_id": order_id, "revenue": order.amount,
                                                     "currency": currency}, user=user), None
