"""Helpers the insight modules share: definition ids, profile owners, ETag-guarded profile updates."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from ..store import PreconditionFailedError, Store

LIVE_PROFILES = ("doc_type", "=", "profile")
MAX_RETRIES = 5


class DefinitionNotFound(LookupError):
    pass


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def owners(profile: dict[str, Any]) -> list[str]:
    """A profile's activity owners: its source record keys."""
    return [r["key"] for r in profile.get("records", []) if r.get("key")]


def live_profiles(store: Store, filter_: Any = None) -> Iterator[dict[str, Any]]:
    """Live profile documents (no alias or erased stubs), optionally narrowed by a store filter."""
    flt = LIVE_PROFILES if filter_ is None else ("and", [LIVE_PROFILES, filter_])
    yield from store.container("profiles").query_items(flt)


def update_profile(store: Store, profile_id: str, mutate: Callable[[dict[str, Any]], bool], *,
                   current: dict[str, Any] | None = None) -> bool:
    """Read-modify-write one profile under its ETag; `mutate` edits the doc and says whether it changed.

    A concurrent writer (identity resolution) wins the race and we re-read, so we never overwrite its work.
    `current` is a copy the caller just read (with its _etag), saving the first read. Returns whether the
    profile was written."""
    profiles = store.container("profiles")
    for attempt in range(MAX_RETRIES):
        doc = dict(current) if attempt == 0 and current and current.get("_etag") else \
            profiles.read_item_or_none(profile_id, profile_id)
        if doc is None or doc.get("doc_type") != "profile":
            return False
        if not mutate(doc):
            return False
        try:
            profiles.replace_item(doc, etag=doc.get("_etag"))
            return True
        except PreconditionFailedError:
            continue
    raise PreconditionFailedError(f"profile {profile_id} kept changing; gave up after {MAX_RETRIES} attempts")


def read_definition(store: Store, doc_type: str, definition_id: str) -> dict[str, Any]:
    doc = store.container("segments").read_item_or_none(definition_id, definition_id) if definition_id else None
    if doc is None or doc.get("doc_type") != doc_type:
        raise DefinitionNotFound(f"no {doc_type} with this id")
    return doc


def list_definitions(store: Store, doc_type: str) -> list[dict[str, Any]]:
    return list(store.container("segments").query_items(("doc_type", "=", doc_type), order_by="created_at"))


def parse_time(value: str) -> datetime:
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
