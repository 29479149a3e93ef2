"""Incoming events in the shape analytics SDKs send (Segment/RudderStack spec), validated with pydantic.

Both camelCase (anonymousId, userId, messageId) and snake_case names are accepted.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_ID = 256
MAX_DEPTH = 32  # nesting of properties/traits/context; the stored form cannot serialize very deep values


def check_json_value(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """Refuse values nested deeper than max_depth and non-finite numbers (NaN, Infinity: not JSON). Iterative, so
    a deep value gives a reason instead of a RecursionError."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        if isinstance(item, (dict, list)):
            if depth >= max_depth:
                raise ValueError(f"nested more than {max_depth} levels deep")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return value


class EventContext(BaseModel):
    model_config = ConfigDict(extra="allow")

    channel: Literal["web", "mobile", "server", "store"] | None = None
    device: dict[str, Any] | None = None
    campaign: dict[str, Any] | None = None
    page: dict[str, Any] | None = None


class IncomingEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, str_strip_whitespace=True)

    type: Literal["identify", "track", "page", "screen"]
    event: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=500)  # page or screen name
    anonymous_id: str | None = Field(default=None, max_length=MAX_ID,
                                     validation_alias=AliasChoices("anonymousId", "anonymous_id"))
    user_id: str | None = Field(default=None, max_length=MAX_ID, validation_alias=AliasChoices("userId", "user_id"))
    message_id: str | None = Field(default=None, max_length=MAX_ID,
                                   validation_alias=AliasChoices("messageId", "message_id"))
    timestamp: datetime | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    context: EventContext = Field(default_factory=EventContext)

    @model_validator(mode="after")
    def _who_and_what(self) -> "IncomingEvent":
        if not self.anonymous_id and not self.user_id:
            raise ValueError("an event needs anonymousId or userId")
        if self.type == "track" and not self.event:
            raise ValueError("a track event needs an event name")
        return self

    @field_validator("traits", "properties", "context", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return check_json_value(value)

    @field_validator("timestamp")
    @classmethod
    def _plausible_time(cls, ts: datetime | None) -> datetime | None:
        if ts is None:
            return None
        if ts.tzinfo is None:  # a device's local time without its offset: nothing tells which zone it is
            raise ValueError("timestamp needs a UTC offset (Z or +hh:mm): a time without a zone is ambiguous")
        now = datetime.now(timezone.utc)
        if ts > now + timedelta(hours=24):
            raise ValueError("timestamp is more than a day in the future")
        if ts < now - timedelta(days=3 * 365):
            raise ValueError("timestamp is more than three years old")
        return ts
