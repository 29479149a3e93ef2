"""Small synthetic retail histories with known churn, for tests and for the bench when no generated data set is
given. Behaviour follows the BG/NBD story (a latent purchase rate, a dropout chance after each purchase) plus
what real customers show before they leave: spend and engagement fade, reviews turn negative.

Truth is simulated past the end: churned = no purchase in (end, end + window], the window is never emitted.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

CHANNELS = ("store", "web", "mobile")
CATEGORIES = ("apparel", "shoes", "home", "beauty", "electronics", "grocery", "toys")
GOOD_REVIEWS = ("Love it, great quality", "Excellent service, will buy again", "Very happy with this")
BAD_REVIEWS = ("Terrible quality, very disappointed", "Awful service, never again", "Broke after a day, bad")


def simulate(n_customers: int, *, seed: int = 0, end: datetime | None = None, years: float = 2.0,
             window_days: int = 90) -> tuple[dict[str, dict[str, list[dict[str, Any]]]], dict[str, int]]:
    """({customer id: {"transactions", "events", "reviews"}}, {customer id: churned 0/1}) as activity docs."""
    end = end or datetime(2026, 6, 30, tzinfo=timezone.utc)
    span = years * 365.0
    start = end - timedelta(days=span)
    rng = np.random.default_rng(seed)
    data, truth = {}, {}
    for i in range(n_customers):
        cid = f"c{i:06d}"
        rate = rng.gamma(2.0, 1 / 50.0)  # purchases per day: mean one every ~25 days, widely spread
        dropout = rng.beta(1.0, 8.0)
        born = rng.uniform(0, span * 0.8)
        channel_mix = rng.dirichlet((2.0, 1.0, 1.0))
        mean_amount = rng.lognormal(3.5, 0.5)
        fade_days = rng.uniform(60, 240)  # before leaving, purchases thin out over this long
        t, alive_until = born, None
        times = []
        while t < span + window_days:
            times.append(t)
            if rng.random() < dropout:
                alive_until = t
                break
            gap = rng.exponential(1 / rate)
            t += gap
        # fading: customers who leave slow down before the last purchase (stretch gaps near the end)
        if alive_until is not None and len(times) > 2:
            times = _fade(np.array(times), fade_days)
        times = [x for x in times if x < span + window_days]
        past = [x for x in times if x < span]
        if not past:
            continue
        truth[cid] = int(not any(span <= x < span + window_days for x in times))
        leaving = alive_until is not None
        data[cid] = {
            "transactions": _transactions(rng, past, start, channel_mix, mean_amount, alive_until, fade_days, span),
            "events": _events(rng, past, start, span, leaving, alive_until, rate),
            "reviews": _reviews(rng, past, start, leaving, alive_until, fade_days, span),
        }
    return data, truth


def _fade(times: np.ndarray, fade_days: float) -> np.ndarray:
    last = times[-1]
    gaps = np.diff(times)
    closeness = np.clip(1 - (last - times[1:]) / fade_days, 0, 1)
    return np.concatenate([[times[0]], times[0] + np.cumsum(gaps * (1 + 1.5 * closeness))])


def _iso(start: datetime, day: float) -> str:
    return (start + timedelta(days=float(day))).isoformat().replace("+00:00", "Z")


def _transactions(rng, times, start, channel_mix, mean_amount, alive_until, fade_days, span) -> list[dict[str, Any]]:
    out = []
    for k, t in enumerate(times):
        fading = alive_until is not None and alive_until - t < fade_days
        amount = round(float(rng.lognormal(np.log(mean_amount) - (0.4 if fading else 0.0), 0.4)), 2)
        channel = CHANNELS[int(rng.choice(3, p=channel_mix))]
        out.append({"order_id": f"o{k}", "timestamp": _iso(start, t), "amount": amount, "kind": "purchase",
                    "channel": channel, "category": CATEGORIES[int(rng.integers(len(CATEGORIES)))]})
        returned_at = t + rng.uniform(2, 20)
        if rng.random() < (0.15 if fading else 0.05) and returned_at < span:
            out.append({"order_id": f"r{k}", "timestamp": _iso(start, returned_at),
                        "amount": -round(amount * rng.uniform(0.3, 1.0), 2), "kind": "return", "channel": channel})
    return out


def _events(rng, times, start, span, leaving, alive_until, rate) -> list[dict[str, Any]]:
    """Browsing sessions around purchases, and between them for customers who are still around."""
    out = []
    horizon = alive_until + 30 if leaving else span
    n = rng.poisson(max(1.0, rate * 2 * min(horizon, span)))
    first = times[0]
    for k in range(int(n)):
        t = rng.uniform(first, min(horizon, span))
        out.append({"id": f"e{k}", "timestamp": _iso(start, t), "channel": "web" if rng.random() < 0.6 else "mobile",
                    "type": "track", "event": "Product Viewed"})
    return out


def _reviews(rng, times, start, leaving, alive_until, fade_days, span) -> list[dict[str, Any]]:
    out = []
    for k, t in enumerate(times):
        if rng.random() < 0.1 and t + 3 < span:
            unhappy = leaving and alive_until - t < fade_days and rng.random() < 0.7
            rating = int(rng.integers(1, 3)) if unhappy else int(rng.integers(4, 6))
            text = (BAD_REVIEWS if unhappy else GOOD_REVIEWS)[int(rng.integers(3))]
            out.append({"id": f"v{k}", "timestamp": _iso(start, t + 3), "rating": rating, "text": text})
    return out
