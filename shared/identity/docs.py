"""Document helpers of the identity engine: ids, timestamps, containers, profile lookup through aliases."""
from __future__ import annotations

import hashlib
import random
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, TypeVar

from shared.normalize import normalize_loyalty_id, strong_identifiers
from shared.settings import Settings, get_settings
from shared.store import ItemExistsError, ItemNotFoundError, PreconditionFailedError, Store

from .protection import ProtectionPolicy
from .survivorship import SurvivorshipPolicy

T = TypeVar("T")
# A guard: a merge redirects the aliases of the profile it absorbs to the survivor (merge._repoint_aliases), so an
# alias is one hop from a live profile, two while a merge is in flight; longer chains are from earlier versions.
MAX_ALIAS_HOPS = 20
# Documents of this type in the identifiers container are devices' links (shared/events/devices.py), not identifiers.
DEVICE_LINK = "anonymous_id"
UNREAD = object()  # a document its caller did not read (None: read, and found missing)
# On a record's source identifier (its commit), naming the record: resolve it again though its content is the same,
# for what normalization makes of it now (rekey.py). Its commit, written last, takes the mark off.
REKEYING = "rekeying"
# On a profile holding a household's email or phone: the profiles lately noted as its other holders (their records
# give the value too; the identifier's document remembers them). Written under the profile's ETag, so a worker that
# links a record there meanwhile either reads them or loses its write (engine._note_on_kept_apart). A hint: bounded to
# the latest MAX_NOTED_HOLDERS, and each is read live before it is used.
NOTED_HOLDERS = "noted_holders"
MAX_NOTED_HOLDERS = 8
# Records doc: the profiles uncommitted attempts named before the current one (engine._named_before). Two or three
# deliveries of a record at once name two or three; the cap bounds the doc.
NAMED_BEFORE = "named_before"
MAX_NAMED_BEFORE = 8


class ConcurrencyConflict(Exception):
    """Another worker changed what this step relied on; the whole step is retried from fresh reads."""


@dataclass(frozen=True)
class ResolverConfig:
    protection: ProtectionPolicy = field(default_factory=ProtectionPolicy)
    survivorship: SurvivorshipPolicy = field(default_factory=SurvivorshipPolicy)
    max_attempts: int = 12
    blocking_cap: int = 50  # profile ids per blocking key; a fuller key is too common to be useful
    max_candidates: int = 20  # candidate profiles scored per record
    # One process, one thread, over a store only this resolver writes (`ucp resolve`, benchmarks): no other
    # worker can change a document between our read and our write, so the re-reads that catch concurrent
    # workers are skipped. Never for queue workers or a shared Cosmos store.
    single_writer: bool = False
    # normalization.email_provider_rules of the identity configuration: gmail dots and +tags folded in emails (the
    # records', blocked values', lookups'). The protection policy's blocked emails are normalized the same way.
    email_provider_rules: bool = True

    def __post_init__(self) -> None:
        if self.protection.email_provider_rules == self.email_provider_rules:
            return
        if self.protection.blocked_values.get("email"):  # normalized the other way; the values as given are gone
            raise ValueError("protection.email_provider_rules differs from email_provider_rules: make the "
                             "ProtectionPolicy with the same value, so that its blocked emails are normalized as "
                             "records are")
        object.__setattr__(self, "protection", replace(self.protection, email_provider_rules=self.email_provider_rules))


def now_iso() -> str:
    """The current UTC time as "2026-01-31T12:00:00.123456Z". Every resolved record stamps several documents:
    the date and time part is formatted once per second, the microseconds per call."""
    global _second
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _second
    if cached[0] != seconds:
        cached = _second = (seconds, datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{micros:06d}Z"


_second: tuple[int, str] = (-1, "")  # (whole seconds since the epoch, their formatted date and time)


def stable_hash(*parts: str, size: int = 20) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:size]


def profile_id_for_record(record_key: str) -> str:
    """The id of the profile a record founds: derived from its key, so a retried creation finds its own work."""
    return "p_" + stable_hash("profile", record_key)


def random_profile_id() -> str:
    return "p_" + uuid.uuid4().hex[:20]


# Cosmos DB refuses an id longer than 1,023 bytes, counted as stored: UTF-8, after the escaping (~XX) of the
# characters it forbids (CosmosContainer's encode_id, mirrored here: the identity engine runs on any store). An id of
# at most 255 characters always fits (4 bytes a character at most; an escaped character takes 3).
MAX_ID_BYTES = 1023
SAFE_ID_CHARS = 255
_ESCAPED_IN_IDS = ("~", "%", "/", "\\", "?", "#", "\t", "\r", "\n")
DIGEST_CHARS = 40  # hex digits of a long value's digest (160 bits)


def stored_id_bytes(item_id: str) -> int:
    """The bytes Cosmos DB counts for this id: UTF-8, after escaping (2 more bytes per escaped character)."""
    escaped = sum(item_id.count(c) for c in _ESCAPED_IN_IDS) + (1 if item_id.endswith(" ") else 0)
    return len(item_id.encode("utf-8", "surrogatepass")) + 2 * escaped


def fits_in_id(item_id: str) -> bool:
    return len(item_id) <= SAFE_ID_CHARS or stored_id_bytes(item_id) <= MAX_ID_BYTES


def value_digest(value: str) -> str:
    """"#" and a stable digest of a value: what an id holds instead of a value too long for it."""
    return "#" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_CHARS]


def is_digest(value: str) -> bool:
    return len(value) == DIGEST_CHARS + 1 and value[0] == "#" and all(c in _HEX for c in value[1:])


_HEX = frozenset("0123456789abcdef")


def identifier_id(id_type: str, value: str) -> str:
    """The id of an identifier (or blocking key) document: "<type>:<value>", or "<type>:#<digest of the value>" when
    that would be longer than Cosmos DB allows. Every id of a value is built here, so the same value always finds
    the same document; ids that fit never change. A digest is itself short, so it stays as it is (a snapshot may
    hold the digest in place of the value). A type too long for an id of its own (a custom identifier's name) is
    made a digest too."""
    iid = f"{id_type}:{value}"
    if len(iid) <= SAFE_ID_CHARS or stored_id_bytes(iid) <= MAX_ID_BYTES:
        return iid
    if not fits_in_id(id_type + ":#" + "0" * DIGEST_CHARS):
        id_type = value_digest(id_type)[:17]
    return f"{id_type}:{value_digest(value)}"


def record_identifiers(n) -> list[str]:
    """The identifier ids a normalized record claims, in priority order (blocked values already removed).

    A loyalty id reaches the record either as the loyalty_id field or as a custom identifier named
    loyalty_id (mappings do both); normalization folds those two differently, so the custom form is folded
    like the field here, and "L-100" from one source and "l100" from another claim the same identifier."""
    out = []
    for id_type, value in strong_identifiers(n):
        if id_type == "loyalty_id" and not is_digest(value):
            value = normalize_loyalty_id(value) or value
        iid = identifier_id(id_type, value)
        if iid not in out:
            out.append(iid)
    return out


def source_identifier(record_key: str) -> str:
    return identifier_id("source", record_key)


class Ctx:
    """What every engine step needs: the store's containers, settings, policies."""

    def __init__(self, store: Store, settings: Settings | None = None, config: ResolverConfig | None = None):
        self.store = store
        self.settings = settings or get_settings()
        self.config = config or _configured(self.settings)
        self.profiles = store.container("profiles")
        self.identifiers = store.container("identifiers")
        self.records = store.container("records")
        self.blocking = store.container("blocking")
        self.merges = store.container("merges")
        self.review = store.container("review")

    def read_profile(self, profile_id: str) -> dict[str, Any] | None:
        return self.profiles.read_item_or_none(profile_id, profile_id)


def _configured(settings: Settings) -> ResolverConfig:
    from .config import load_identity_config  # config imports this module

    return load_identity_config(settings.identity_config or None)


def with_retries(ctx: Ctx, step: Callable[[], T]) -> T:
    """Run a step, retrying lost optimistic-concurrency races with jittered exponential backoff."""
    attempts = ctx.config.max_attempts
    for attempt in range(attempts):
        try:
            return step()
        except (ConcurrencyConflict, PreconditionFailedError, ItemExistsError, ItemNotFoundError):
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0, min(0.5, 0.002 * 2 ** attempt)))
    raise AssertionError("unreachable")


def is_live(doc: dict[str, Any] | None) -> bool:
    return doc is not None and doc.get("doc_type") == "profile" and not doc.get("pending_merge")


def is_device_link(doc: dict[str, Any]) -> bool:
    """A device's link kept in the identifiers container (shared/events/devices.py), not an identifier."""
    return doc.get("type") == DEVICE_LINK or doc["id"].split(":", 1)[0] == DEVICE_LINK


def alias_targets(docs: Iterable[dict[str, Any]]) -> dict[str, str | None]:
    """Alias id -> the id at the end of its chain (MAX_ALIAS_HOPS at most), as a reader following it finds, over the
    profiles container's documents read in one scan (the audit's, the repair's)."""
    merged_into = {d["id"]: d.get("merged_into") for d in docs if d.get("doc_type") == "alias"}
    targets = {}
    for alias_id, target in merged_into.items():
        for _ in range(MAX_ALIAS_HOPS):
            if target not in merged_into:
                break
            target = merged_into[target]
        targets[alias_id] = target
    return targets


def follow_aliases(ctx: Ctx, profile_id: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The profile doc at the end of the alias chain (None if it is gone) and the ids passed on the way."""
    path = []
    current = profile_id
    for _ in range(MAX_ALIAS_HOPS):
        doc = ctx.read_profile(current)
        if doc is None or doc.get("doc_type") != "alias":
            return doc, path
        path.append(current)
        current = doc["merged_into"]
    raise ItemNotFoundError(f"alias chain of {profile_id} is longer than {MAX_ALIAS_HOPS} hops")
