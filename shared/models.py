"""Canonical records: what every source is mapped into, validated with pydantic.

Ingestion produces these; identity resolution, churn and analytics consume them. Raw values are kept as
mapped (trimmed); normalization for matching happens in shared.normalize, so the profile can show what the
source said.
"""
from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENTITIES = ("customers", "transactions", "events", "reviews")


MAX_NESTING = 32  # levels of lists and objects in a free-form field: JSON encoders and Cosmos give up far below 1000


def _shallow(value: Any) -> Any:
    """A free-form field (attributes, traits...) no deeper than MAX_NESTING: deeper, a record would pass
    validation and then fail every time it is stored (a retried message, not a rejected row with a reason)."""
    level = [value]
    for _ in range(MAX_NESTING):
        level = [child for v in level if isinstance(v, (dict, list))
                 for child in (v.values() if isinstance(v, dict) else v)]
        if not level:
            return value
    raise ValueError(f"nested more than {MAX_NESTING} levels deep")


class _Canonical(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: str = Field(min_length=1, max_length=64)

    def content_hash(self) -> str:
        """Stable hash of the record's content: re-processing the same content is recognised as a no-op."""
        return content_hash_of(self.model_dump(mode="json", exclude_none=True))


def content_hash_of(data: dict[str, Any]) -> str:
    """content_hash from the record's JSON dump (mode="json", exclude_none), for callers that dumped it already."""
    payload = "".join(_HASH_ENCODER(data, 0)) if _HASH_ENCODER is not None else _HASH_JSON.encode(data)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


# json.dumps(data, sort_keys=True, separators=(",", ":")): the same bytes from one encoder built once (the C one,
# without the reference-cycle check: a JSON dump has no cycles), instead of one per call.
_HASH_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_HASH_ENCODER = (json.encoder.c_make_encoder(None, _HASH_JSON.default, json.encoder.encode_basestring_ascii, None,
                                             ":", ",", True, False, True)
                 if json.encoder.c_make_encoder is not None else None)


class CustomerRecord(_Canonical):
    """One customer row of one source system."""

    record_key: str = Field(min_length=1, max_length=256)  # the source's own key (joined record_key columns)
    given_name: str | None = None
    family_name: str | None = None
    full_name: str | None = None
    birth_date: date | None = None
    email: str | None = None
    phone: str | None = None
    phone_region: str | None = None  # default region for parsing phone (ISO 3166 alpha-2)
    loyalty_id: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    street_number: str | None = None
    city: str | None = None
    postcode: str | None = None
    state: str | None = None
    country: str | None = None
    identifiers: dict[str, str] = Field(default_factory=dict)  # custom identifier types, e.g. {"crm_guid": "..."}
    attributes: dict[str, Any] = Field(default_factory=dict)  # extra attributes kept on the profile
    updated_at: datetime | None = None  # when the source last changed this record, if it says

    @property
    def key(self) -> str:
        return f"{self.source}|{self.record_key}"

    _attributes_shallow = field_validator("attributes")(_shallow)


class Transaction(_Canonical):
    order_id: str = Field(min_length=1, max_length=256)
    # A return's or refund's own number (return note, credit note, refund id): an order may have several. Without
    # it a return is told apart from its order's other returns by its content (shared.activity.return_part).
    return_id: str | None = Field(default=None, min_length=1, max_length=256)
    # The order line a row is (line-level files: one row per order line). With it each line is its own document
    # (shared.activity.activity_doc) and consumers count orders by (source, order_id), not rows.
    line_id: str | None = Field(default=None, min_length=1, max_length=256)
    customer_key: str = Field(min_length=1, max_length=256)  # the source's customer record key
    timestamp: datetime
    amount: Decimal  # negative only for kind=return/refund; a line's own amount when line_id is set
    currency: str | None = None
    kind: Literal["purchase", "return", "refund"] = "purchase"
    channel: str | None = None  # store, web, mobile, ...
    store: str | None = None
    items: list[dict[str, Any]] = Field(default_factory=list)  # [{"sku", "category", "quantity", "price"}]
    category: str | None = None

    _items_shallow = field_validator("items")(_shallow)

    @field_validator("amount")
    @classmethod
    def _finite(cls, v: Decimal) -> Decimal:
        if not v.is_finite():
            raise ValueError("amount must be a finite number")
        return v


class Event(_Canonical):
    """A behavioural event (web or mobile), in the shape analytics SDKs use."""

    event_id: str = Field(min_length=1, max_length=256)
    type: Literal["identify", "track", "page", "screen"] = "track"
    event: str | None = None  # e.g. "Product Viewed", "Order Completed"
    timestamp: datetime
    anonymous_id: str | None = None
    customer_key: str | None = None  # a source customer key, when the source knows the customer
    user_id: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    channel: str | None = None  # web | mobile
    session_id: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)  # device, campaign, page, as the SDK sent them

    _free_form_shallow = field_validator("traits", "properties", "context")(_shallow)


class Review(_Canonical):
    review_id: str = Field(min_length=1, max_length=256)
    customer_key: str = Field(min_length=1, max_length=256)
    timestamp: datetime
    rating: int | None = Field(default=None, ge=1, le=5)
    text: str | None = Field(default=None, max_length=20000)
    product: str | None = None
