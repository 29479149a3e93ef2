"""Profile measures, recomputed from activity on every read (never incremented: a merge must not double them)."""
from __future__ import annotations

from typing import Any, Iterable

from .activity import is_purchase


def compute_measures(transactions: Iterable[dict[str, Any]]) -> dict[str, Any]:
    orders: dict[tuple[Any, Any], float] = {}
    returns = 0.0
    first = last = None
    for tx in transactions:
        amount = float(tx.get("amount") or 0.0)
        if is_purchase(tx):
            order = (tx.get("source"), tx.get("order_id") or tx.get("id"))  # each source numbers its own orders
            orders[order] = orders.get(order, 0.0) + amount
            ts = tx.get("timestamp")
            first = ts if first is None or ts < first else first
            last = ts if last is None or ts > last else last
        else:
            returns += abs(amount)
    spend = sum(orders.values())
    n = len(orders)
    return {
        "orders": n,
        "total_spend": round(spend, 2),
        "returns": round(returns, 2),
        "net_spend": round(spend - returns, 2),
        "average_order_value": round(spend / n, 2) if n else None,
        "first_purchase": first,
        "last_purchase": last,
    }


def sentiment_summary(activity: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Average and latest sentiment over reviews and feedback events (activity newest first or in any order)."""
    scored = sorted((a for a in activity if a.get("sentiment") is not None), key=lambda a: a.get("timestamp") or "")
    if not scored:
        return {"average": None, "latest": None, "count": 0}
    values = [a["sentiment"] for a in scored]
    return {"average": round(sum(values) / len(values), 4), "latest": values[-1], "count": len(values),
            "latest_at": scored[-1].get("timestamp")}
