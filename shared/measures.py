"""Profile measures, recomputed from activity on every read (never incremented: a merge must not double them).

Money is never added across currencies (the convention of the revenue report, shared.insights.reports):
``by_currency`` holds every money figure per currency code (``unknown`` for rows without one), and the single
``total_spend``, ``returns``, ``net_spend`` and ``average_order_value`` are set only when the customer's
transactions are all in one currency (``currency`` names it); for a customer who bought in several they are
null. ``orders``, ``first_purchase`` and ``last_purchase`` always cover every currency. There is no base
currency and no exchange rate: nothing is converted.
"""
from __future__ import annotations

from typing import Any, Iterable

from .activity import is_purchase

UNKNOWN_CURRENCY = "unknown"  # the revenue report's key for rows without a currency
MONEY_MEASURES = ("total_spend", "returns", "net_spend", "average_order_value")


def currency_of(tx: dict[str, Any]) -> str:
    return tx.get("currency") or UNKNOWN_CURRENCY


def compute_measures(transactions: Iterable[dict[str, Any]]) -> dict[str, Any]:
    orders: dict[tuple[Any, Any], None] = {}  # every order, whatever its currency
    spend: dict[str, dict[tuple[Any, Any], float]] = {}  # currency -> order -> amount
    returns: dict[str, float] = {}
    first = last = None
    for tx in transactions:
        amount = float(tx.get("amount") or 0.0)
        currency = currency_of(tx)
        if is_purchase(tx):
            # each source numbers its own orders; the lines of a line-level file (line_id) are one order
            order = (tx.get("source"), tx.get("order_id") or tx.get("id"))
            orders[order] = None
            per_order = spend.setdefault(currency, {})
            per_order[order] = per_order.get(order, 0.0) + amount
            ts = tx.get("timestamp")
            first = ts if first is None or ts < first else first
            last = ts if last is None or ts > last else last
        else:
            returns[currency] = returns.get(currency, 0.0) + abs(amount)
    by_currency = {c: _money(spend.get(c, {}), returns.get(c, 0.0)) for c in sorted({*spend, *returns})}
    single = len(by_currency) <= 1
    total = next(iter(by_currency.values())) if by_currency else _money({}, 0.0)
    return {
        "orders": len(orders),
        **{k: total[k] if single else None for k in MONEY_MEASURES},
        "currency": next(iter(by_currency)) if len(by_currency) == 1 else None,
        "by_currency": by_currency,
        "first_purchase": first,
        "last_purchase": last,
    }


def _money(orders: dict[Any, float], returns: float) -> dict[str, Any]:
    spend, n = sum(orders.values()), len(orders)
    return {"orders": n, "total_spend": round(spend, 2), "returns": round(returns, 2),
            "net_spend": round(spend - returns, 2), "average_order_value": round(spend / n, 2) if n else None}


def sentiment_summary(activity: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Average and latest sentiment over reviews and feedback events (activity newest first or in any order)."""
    scored = sorted((a for a in activity if a.get("sentiment") is not None), key=lambda a: a.get("timestamp") or "")
    if not scored:
        return {"average": None, "latest": None, "count": 0}
    values = [a["sentiment"] for a in scored]
    return {"average": round(sum(values) / len(values), 4), "latest": values[-1], "count": len(values),
            "latest_at": scored[-1].get("timestamp")}
