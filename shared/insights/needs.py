"""Customer needs: category affinity and the next likely categories, per profile.

Signals are purchases (each line item's category), add-to-cart and product views (``properties.category``,
or the category of a product id the person bought), weighted by kind and by recency (exponential decay with
a half-life), then blended with the overall popularity of each category so that a thin history still gets
a sensible suggestion. `bench/needs.py` measures hit rate@3 on held-out purchases of generated data against
a most-popular baseline and chose the default weights.

Written on the profile as ``profile["needs"]`` by the insights refresh job and usable in segments
(``needs.top_categories`` / ``needs.next_categories`` with ``contains``).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from ..activity import is_purchase, up_to
from .common import parse_time

CART_EVENTS = ("Product Added", "Added to Cart", "Add to Cart")
VIEW_EVENTS = ("Product Viewed", "Product Clicked")


@dataclass(frozen=True)
class NeedsModel:
    purchase_weight: float = 3.0
    cart_weight: float = 2.0
    view_weight: float = 1.0
    half_life_days: float = 365.0
    popularity_weight: float = 0.005  # how much the overall popularity share adds to a person's affinity share
    top: int = 3
    keep: int = 10  # categories kept in the stored affinity


DEFAULT_MODEL = NeedsModel()


def category_signals(activity: Iterable[dict[str, Any]], model: NeedsModel = DEFAULT_MODEL) -> list[tuple[str, float, str]]:
    """(category, weight, timestamp) for every signal in a person's activity docs."""
    activity = list(activity)
    sku_category: dict[str, str] = {}
    signals: list[tuple[str, float, str]] = []
    for a in activity:
        if a.get("kind") != "transaction" or not is_purchase(a):
            continue
        cats = []
        for item in a.get("items") or []:
            if isinstance(item, dict) and item.get("category"):
                cats.append(str(item["category"]))
                if item.get("sku"):
                    sku_category[str(item["sku"])] = str(item["category"])
        if not cats and a.get("category"):
            cats = [str(a["category"])]
        signals += [(c, model.purchase_weight, a["timestamp"]) for c in cats]
    for a in activity:
        if a.get("kind") != "event":
            continue
        name = a.get("event")
        weight = model.cart_weight if name in CART_EVENTS else model.view_weight if name in VIEW_EVENTS else None
        if weight is None:
            continue
        props = a.get("properties") or {}
        cat = props.get("category") or sku_category.get(str(props.get("product_id") or props.get("sku") or ""))
        if cat:
            signals.append((str(cat), weight, a["timestamp"]))
    return signals


def affinity(signals: Iterable[tuple[str, float, str]], now: datetime, model: NeedsModel = DEFAULT_MODEL) -> dict[str, float]:
    """Recency-weighted share of each category in a person's signals (sums to 1); future signals are ignored."""
    scores: Counter = Counter()
    decay = math.log(2) / model.half_life_days
    for cat, weight, ts in signals:
        age = (now - parse_time(ts)).total_seconds() / 86400
        if age >= 0:
            scores[cat] += weight * math.exp(-decay * age)
    total = sum(scores.values())
    return {c: s / total for c, s in scores.most_common()} if total else {}


def next_categories(person: dict[str, float], popularity: dict[str, float], model: NeedsModel = DEFAULT_MODEL) -> list[str]:
    """The most likely next categories: personal affinity plus a little overall popularity."""
    cats = set(person) | set(popularity)
    score = {c: person.get(c, 0.0) + model.popularity_weight * popularity.get(c, 0.0) for c in cats}
    return [c for c, _ in sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:model.top]]


def popularity_of(category_counts: Counter) -> dict[str, float]:
    total = sum(category_counts.values())
    return {c: n / total for c, n in category_counts.most_common()} if total else {}


def profile_needs(activity: Iterable[dict[str, Any]], now: datetime, popularity: dict[str, float],
                  model: NeedsModel = DEFAULT_MODEL) -> dict[str, Any]:
    signals = category_signals(up_to(activity, now), model)  # nothing learnt from after `now`
    aff = affinity(signals, now, model)
    top = dict(list(aff.items())[:model.keep])
    return {"affinity": {c: round(v, 4) for c, v in top.items()}, "top_categories": list(top)[:model.top],
            "next_categories": next_categories(aff, popularity, model), "signals": len(signals),
            "computed_at": now.isoformat().replace("+00:00", "Z")}


def purchase_categories(activity: Iterable[dict[str, Any]]) -> Counter:
    """Line-item categories of purchases (for the overall popularity)."""
    counts: Counter = Counter()
    for a in activity:
        if a.get("kind") == "transaction" and is_purchase(a):
            cats = [i["category"] for i in a.get("items") or [] if isinstance(i, dict) and i.get("category")]
            counts.update(cats or ([a["category"]] if a.get("category") else []))
    return counts
