"""Pages of an ordered query by position (keyset pagination), the same on every backend.

``query_page(order_by=...)`` orders by (sort value, id): the id breaks ties, so the order is total and every
backend gives the same pages. A page's continuation token holds the sort value and id of its last item (opaque:
URL-safe base64 of JSON, bound to its query by a fingerprint), and the next page is a fresh query for what comes
after that position. Nothing is kept on the server between pages, so:

- Cosmos DB needs no continuation support from the SDK, which has none for cross-partition ORDER BY queries
  (azure-sdk-for-python #37230, #41434: the token it hands out is a partition range's, and the gateway refuses it);
- items written between pages are neither skipped nor repeated: an item that sorts after the position is on a
  later page, one that sorts before it is not (its place was passed before it existed). An item whose sort value
  changes between pages may be seen twice or not at all, as with any cursor.

Cosmos DB's ORDER BY on two properties needs a composite index, so the Cosmos store orders by the one property
and settles ties by id itself (shared/store/cosmos.py); here are the filters it uses for that.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from .errors import BadRequestError
from .query import MISSING, TYPE_RANK, Filter, get_path, json_type, sort_key

MAX_TOKEN_CHARS = 2048
_SCALARS = ("boolean", "number", "string")
_KINDS = tuple(TYPE_RANK)  # undefined, null, boolean, number, string, array, object: Cosmos DB's type order


@dataclass(frozen=True)
class Position:
    """Where an item sits in an ordered query: its sort value (JSON type and, for scalars, the value) and id;
    no id (None) for the place after the whole group of items with this value."""

    kind: str
    value: Any
    item_id: str | None

    @classmethod
    def of(cls, item: dict[str, Any], order_by: str) -> Position:
        value = get_path(item, order_by)
        kind = json_type(value)
        return cls(kind, value if kind in _SCALARS else None, item["id"])

    def sort_key(self) -> tuple:
        if self.kind in ("array", "object"):
            return TYPE_RANK[self.kind], 0
        return sort_key(MISSING if self.kind == "undefined" else self.value)



def item_key(item: dict[str, Any], order_by: str, item_id: Any = None) -> tuple:
    """The total order of a page: (sort value as Cosmos DB orders it, id); item_id overrides the id compared."""
    return sort_key(get_path(item, order_by)), item["id"] if item_id is None else item_id


def fingerprint(container: str, filter_: Filter, partition_key: Any, order_by: str, descending: bool) -> str:
    """Ties a token to its query: a token of another list, filter or order is refused, not misread."""
    shape = json.dumps([container, filter_, partition_key, order_by, bool(descending)], default=repr, sort_keys=True)
    return hashlib.sha256(shape.encode()).hexdigest()[:16]


def encode(fp: str, position: Position) -> str:
    body = {"q": fp, "t": position.kind, "v": position.value, "id": position.item_id}
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _invalid() -> BadRequestError:
    return BadRequestError("invalid continuation token")


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity: never in a token this module wrote


def decode(token: Any, fp: str) -> Position:
    """The position a token names; BadRequestError for anything this module did not write for this query."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise _invalid()
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        body = json.loads(raw.decode(), parse_constant=_reject_constant)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _invalid() from None
    if not isinstance(body, dict) or set(body) != {"q", "t", "v", "id"} or body["q"] != fp:
        raise _invalid()
    kind, value, item_id = body["t"], body["v"], body["id"]
    if kind not in TYPE_RANK or not (item_id is None or isinstance(item_id, str) and item_id):
        raise _invalid()
    valid = {"boolean": isinstance(value, bool),
             "number": isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
             "string": isinstance(value, str)}.get(kind, value is None)
    if not valid:
        raise _invalid()
    return Position(kind, value, item_id)


def both(*filters: Filter) -> Filter:
    """The AND of the filters that are not None (None when none is left)."""
    parts = [f for f in filters if f is not None]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else ("and", parts)


def _any(parts: list) -> Filter:
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else ("or", parts)


def group_filter(path: str, position: Position) -> Filter:
    """The items whose sort value ties with the position's (arrays tie with arrays, objects with objects)."""
    if position.kind == "undefined":
        return (path, "undefined", None)
    if position.kind == "null":
        return (path, "=", None)
    if position.kind in _SCALARS:
        return (path, "=", position.value)
    return (path, "type", position.kind)


def after_filter(path: str, position: Position, descending: bool) -> Filter:
    """The items whose sort value comes after the position's group in this order; None when nothing can."""
    rank = TYPE_RANK[position.kind]
    parts: list = []
    if position.kind == "boolean":  # false < true: the other boolean, if it comes after
        if position.value is descending:
            parts.append((path, "=", not descending))
    elif position.kind in _SCALARS:
        parts.append((path, "<" if descending else ">", position.value))
    if not descending:
        if position.kind == "undefined":
            return (path, "defined", None)
        parts += [(path, "type", kind) for kind in _KINDS if TYPE_RANK[kind] > rank]
    else:
        parts += [(path, "type", kind) for kind in _KINDS if 0 < TYPE_RANK[kind] < rank]
        if rank > 0:
            parts.append((path, "undefined", None))
    return _any(parts)


def id_after(position: Position, descending: bool) -> Filter:
    """Within the position's group: the items whose id comes after its id in this order."""
    return ("id", "<" if descending else ">", position.item_id)
