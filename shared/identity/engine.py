"""The identity resolution engine: links each incoming customer record to the profile of the person it describes.

Per record (every step idempotent, so at-least-once delivery and several workers are safe):
1. Its source identifier ("source:<source>|<key>") says whether it was seen before; same content hash -> unchanged.
2. Strong identifiers (email, phone, loyalty id, custom ids) are looked up with point reads in `identifiers`.
3. The profiles they lead to are joined with the record unless merge protection forbids it (-> review), or a
   shared email/phone is all they have in common and the given names say another person (a household).
4. Blocking keys give candidate profiles (point reads in `blocking`); the match model scores the record against
   their record snapshots. With no strong link: link, review, or a new profile. With a strong link, a candidate
   above the match threshold joins too, so the result does not depend on which record arrived first.
5. Writes, in an order that a retry can always finish: the profile (which now holds the record), the identifier
   claims (create = claim; a lost race is resolved at once by merging or review), the records doc, the blocking
   entries (a write conflict there reveals a concurrent worker's profile, which is scored and joined), and last
   the source identifier with the content hash, which marks the record done.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from itertools import islice
from typing import Any, Iterable, Iterator, Mapping, NoReturn

from shared.models import CustomerRecord
from shared.normalize import NormalizedRecord, normalize_record
from shared.settings import Settings, get_settings
from shared.store import ItemExistsError, ItemNotFoundError, PreconditionFailedError, Store

from .bounds import ENTRY_BYTES, TOO_LARGE, bounded, estimate, record_hash
from .config import load_match_model
from .docs import (MAX_ID_BYTES, MAX_NAMED_BEFORE, MAX_NOTED_HOLDERS, NAMED_BEFORE, NOTED_HOLDERS, REKEYING,
                   SAFE_ID_CHARS, UNREAD, ConcurrencyConflict, Ctx, ResolverConfig, fits_in_id, is_live, now_iso,
                   profile_id_for_record, random_profile_id, record_identifiers, source_identifier, stable_hash,
                   with_retries)
from .maintenance import (_gives, drop_dead_key, entry_identifiers, finish_split_in_flight, forget_deleted_profile,
                          forget_holders, forget_where_listed, hand_to_survivor, index_again, index_given_again,
                          keys_given, leave_named_before, let_go_of_deleted, list_while_given, move_stranded_aliases,
                          note_holder, only_given_by, release, release_again, release_identifier, removed_after,
                          settle_after_earlier_attempt, split_to_finish_first, take_out, update_block)
from .matching import MatchModel, blocking_keys
from .merge import (MAX_WRITE_ATTEMPTS, _destination_of, _repoint, _set_profile_id, live_profile, merge_profiles,
                    review_id, survivor_order)
from .protection import SURNAMES, Side, id_type_of, is_weak_type, join_conflict, without_blocked
from .snapshots import ProfileSnapshots
from .survivorship import _NOT_ATTRIBUTES, as_utc, record_values, survive, utc_text

log = logging.getLogger(__name__)

ACTIONS = ("created", "linked", "merged", "unchanged", "review", "quarantined", "erased")
# Identifiers that members of one household share (family email, home phone): a link through them alone is
# checked against the names.
SHAREABLE_TYPES = frozenset({"email", "phone"})
ERASED = "its person was erased on request: the record is not resolved again (shared/privacy.py)"
STALE_VERSION = "stale: a newer version of this record is resolved already"
REMOVED = "removed: the record was deleted at its source after this version landed"
NO_USABLE_FIELD = ("no usable field: needs an email, phone, loyalty or custom id, a family and given name with a "
                   "birth date, address, postcode or city, or one of the names with a birth date and an address or "
                   "postcode")
KEY_TOO_LONG = f"source and record key too long for a document id (Cosmos DB: {MAX_ID_BYTES} bytes)"
NORMALIZATION_FAILED = "normalization failed"
_QUARANTINE_CODES = {KEY_TOO_LONG: "key_too_long", TOO_LARGE: "too_large"}


def quarantine_code(reason: str) -> str:
    """A short, stable code for a quarantined result's reason: what `ucp resolve`'s summary counts by."""
    if reason.startswith(NORMALIZATION_FAILED):
        return "normalization_failed"
    if reason.startswith(NO_USABLE_FIELD):  # which fields were left out follows it
        return "no_usable_field"
    return _QUARANTINE_CODES.get(reason, "other")


@dataclass(frozen=True)
class ResolveResult:
    record_key: str
    profile_id: str | None
    action: str
    reason: str = ""


def default_model(settings: Settings | None = None) -> MatchModel:
    """The resolver's match model: the file settings.match_model (UCP_MATCH_MODEL) names, else the shipped one, with
    its priors for a store of settings.match_population records when set. Each file is loaded once per process; one
    that does not load raises MatchModelError (no fall back)."""
    settings = settings or get_settings()
    return load_match_model(settings.match_model or None, population=settings.match_population)


def _blocking_keys(n: NormalizedRecord) -> list[str]:
    """The record's blocking keys. Each is the id of its document, short enough for one by construction: made of
    Soundex codes, a birth date, a postcode (cut to 128 characters) and an email user name (an email is at most 254
    characters), it takes at most about 1,015 bytes once encoded."""
    return list(dict.fromkeys(blocking_keys(n)))


SURNAMES_CONFLICT = f"conflict:{SURNAMES}"


def _holds(profile: dict[str, Any] | None, key: str) -> bool:
    """Whether the profile (None: gone) has an entry of the record `key`."""
    return profile is not None and any(r["key"] == key for r in profile.get("records", []))


@dataclass
class _Candidate:
    profile: dict[str, Any]
    types: list[str]  # identifier types that led to it ("score" for a probabilistic candidate)
    detail: dict[str, Any] | None = None  # the match score's explanation, for a probabilistic candidate


class Resolver:
    """Resolves records one at a time against a store; cheap to create, safe to share between threads."""

    def __init__(self, store: Store, *, settings: Settings | None = None, model=None,
                 config: ResolverConfig | None = None):
        self.ctx = Ctx(store, settings, config)
        self.model = model or default_model(self.ctx.settings)
        self.snapshots = ProfileSnapshots()
        self.blocked = self.ctx.config.protection.blocked_values  # the deployment's own placeholders (often none)
        self.email_provider_rules = self.ctx.config.email_provider_rules

    def normalize(self, record: CustomerRecord) -> NormalizedRecord | ResolveResult:
        """The record as this resolver resolves it (normalize_for_resolution with the configured blocked values and
        email provider rules)."""
        return normalize_for_resolution(record, self.blocked, email_provider_rules=self.email_provider_rules)

    def resolve(self, record: CustomerRecord, *, normalized: NormalizedRecord | ResolveResult | None = None,
                landed_at: str | None = None, redelivered: bool = False) -> ResolveResult:
        """`normalized`: what self.normalize(record) returned, when the caller has it already. `landed_at`: when
        the file that carried this version of the record landed (utc_text), which orders the versions of a record
        whose source gives no updated_at. `redelivered`: the message carrying it is delivered again (its dequeue
        count is above 1: an earlier attempt failed or its worker died), so a record found done is checked for what
        such an attempt may have left undone (_list_what_leads_here, _settle_profiles_named)."""
        n = normalized
        if n is None:
            n = normalize_for_resolution(record, self.blocked, email_provider_rules=self.email_provider_rules)
        if isinstance(n, ResolveResult):
            return self._unless_erased(n)
        work = _Work(self, record, n, landed_at, redelivered=redelivered)
        if work.too_large:
            return self._unless_erased(ResolveResult(record.key, None, "quarantined", TOO_LARGE))
        result = with_retries(self.ctx, work.attempt)
        if work.left_behind():  # rare: an attempt (maybe another delivery's) placed the record, and failed
            with_retries(self.ctx, work.leave_abandoned)
        if work.gone_met:  # rare: a worker that died left an identifier naming a profile deleted
            with_retries(self.ctx, work.let_go_of_gone)
        if work.left_found - work.taken_out:  # rare: another worker took the record out of its profile
            with_retries(self.ctx, work.settle_left)
        return result

    def snapshot_of(self, record: CustomerRecord, n: NormalizedRecord) -> dict[str, Any] | None:
        """The match snapshot this resolver keeps of a normalized record in its profile entry (identifier values
        digested in a long record's); None for a record too large for one."""
        work = _Work(self, record, n)
        return None if work.too_large else work.snapshot

    def _unless_erased(self, quarantined: ResolveResult) -> ResolveResult:
        """A record about to be quarantined (kept whole for replay) is answered erased when its person was erased:
        a new version of an erased person's record must not put their data back in storage. One point read, for
        quarantined records only."""
        doc = self.ctx.records.read_item_or_none(quarantined.record_key, quarantined.record_key)
        if doc and doc.get("erased_at"):
            return ResolveResult(quarantined.record_key, None, "erased", ERASED)
        return quarantined

    def resolve_many(self, records: Iterable[CustomerRecord]) -> Iterator[ResolveResult]:
        """Resolve records one after another, in order, normalizing them NORMALIZE_AHEAD at a time: normalization's
        tables (phone number metadata, caches) then stay in the CPU caches for a whole chunk instead of being
        evicted by the store work between two records (in process at 100k records: about 10% less CPU)."""
        records = iter(records)
        blocked, rules = self.blocked, self.email_provider_rules
        while chunk := list(islice(records, NORMALIZE_AHEAD)):
            normalized = [normalize_for_resolution(record, blocked, email_provider_rules=rules) for record in chunk]
            for record, n in zip(chunk, normalized):
                yield self.resolve(record, normalized=n)


NORMALIZE_AHEAD = 256  # records; at 100k records 1,024 measured alike, 64 half the gain


def _left_out_fields(record: CustomerRecord, n: NormalizedRecord) -> list[str]:
    """The names of the fields a record gave that normalization (or the deployment's blocked values) left out: why
    a record with an email, say, still has no usable field. Names only, never values."""
    given = {"email": record.email, "phone": record.phone, "loyalty_id": record.loyalty_id,
             "birth_date": record.birth_date, "address_line1": record.address_line1, "postcode": record.postcode,
             "city": record.city}
    kept = {"email": n.email, "phone": n.phone, "loyalty_id": n.loyalty_id, "birth_date": n.birth_date,
            "address_line1": n.address, "postcode": n.postcode, "city": n.city}
    fields = [name for name, value in given.items() if value not in (None, "") and kept[name] is None]
    return fields + sorted(str(t) for t, v in (record.identifiers or {}).items()
                           if v not in (None, "") and str(t).strip().lower() not in n.identifiers)


def normalize_for_resolution(record: CustomerRecord, blocked: Mapping[str, frozenset[str]] | None = None, *,
                             email_provider_rules: bool = True) -> NormalizedRecord | ResolveResult:
    """The normalized record, or the quarantined result of a record that cannot be resolved. `blocked`: the values
    the deployment blocks (ProtectionPolicy.blocked_values), left out as built-in placeholders are, before anything
    (identifiers, blocking keys, the match snapshot) is computed from the record; a record left with nothing usable
    is quarantined. `email_provider_rules`: ResolverConfig's (normalize_record's), as the blocked emails were
    normalized."""
    try:
        n = normalize_record(record, email_provider_rules=email_provider_rules)
    except (ValueError, TypeError, ArithmeticError) as err:
        return ResolveResult(record.key, None, "quarantined", f"{NORMALIZATION_FAILED}: {type(err).__name__}")
    if blocked:  # an empty mapping when none are configured: nothing more per record
        n = without_blocked(n, blocked)
    if n.is_empty:
        left_out = _left_out_fields(record, n)
        detail = f"; left out as a placeholder, blocked or not valid: {', '.join(left_out)}" if left_out else ""
        return ResolveResult(record.key, None, "quarantined", NO_USABLE_FIELD + detail)
    if len(record.record_key) > SAFE_ID_CHARS - 65 and not fits_in_id(record.key):  # source: 64 at most
        return ResolveResult(record.key, None, "quarantined", KEY_TOO_LONG)  # the records doc's id
    return n


class _Work:
    """One record's resolution; `attempt` runs from fresh reads each time a race is lost."""

    # Set by _bound_entry for a record whose entry had to be measured: its values (None: as record_values gives
    # them), whether they were shortened, whether even its matching data passes the bound.
    values: dict[str, Any] | None = None
    cut = False
    too_large = False
    record_doc_found = False  # an attempt found the records doc uncommitted: the next ones read it first
    prior_uncommitted = False  # the attempt's prior profile holds the record uncommitted (_held_by)
    prior_rank = 0  # what the prior profile ranks as (_group)
    link_rank: float | None = None  # how strongly the record joined its profile (_link_rank)
    placed: frozenset[str] = frozenset()  # the profiles the current attempt wrote (or found) the record's entry in
    abandoned: frozenset[str] = frozenset()  # those of earlier attempts, which failed
    named_before: frozenset[str] = frozenset()  # those the records doc this attempt wrote keeps (NAMED_BEFORE)
    gone_met: frozenset[str] = frozenset()  # profile ids an identifier led to with no profile there (let_go_of_gone)
    left_found: frozenset[str] = frozenset()  # profiles the commit named that did not hold the record (settle_left)
    taken_out: frozenset[str] = frozenset()  # profiles this work took the record out of itself (_leave)

    def __init__(self, resolver: Resolver, record: CustomerRecord, n: NormalizedRecord, landed_at: str | None = None,
                 *, redelivered: bool = False):
        self.ctx = resolver.ctx
        self.landed_at = landed_at
        self.redelivered = redelivered
        self.model = resolver.model
        self.snapshots = resolver.snapshots
        self.policy = self.ctx.config.protection
        self.record = record
        self.n = n
        self.key = record.key
        self.data = record.model_dump(mode="json", exclude_none=True)
        self.hash, size = record_hash(self.data)  # content_hash_of(self.data), and its dump's length
        self.source_iid = source_identifier(self.key)
        self.strong = record_identifiers(n)
        self.snapshot = n.to_dict()
        self.blocking_keys = _blocking_keys(n)
        self.indexed_under: set[str] = set()  # profiles an attempt claimed or wrote keys for (leave_abandoned)
        # At most one value per field and attribute (record_values; source, record key, identifiers and attributes
        # are not values): the estimate needs no values built.
        values = len(self.data) - 4 + len(record.attributes or ())
        if estimate(size, values, self.key, n.email, n.loyalty_id, n.identifiers) > ENTRY_BYTES:
            self._bound_entry()  # a long record: measured, and shortened if need be

    @cached_property
    def side(self) -> Side:
        """The record as merge protection sees it: built only when a candidate profile is checked (most records
        have none)."""
        return Side.of_record(self.key, [self.source_iid, *self.strong], self.snapshot)

    def _bound_entry(self) -> None:
        """The values of the record's profile entry, shortened to its size bound if need be (bounds.py); the record
        is too large when even its matching data does not fit (it is quarantined)."""
        values = record_values(self.record, self.data)
        extra = [name for name in self.record.attributes or () if name in values and (
            name in _NOT_ATTRIBUTES or name not in self.data)]
        fitted = bounded(values, self.snapshot, self.blocking_keys, [self.source_iid, *self.strong], self.key,
                         self.record.source, extra)
        if fitted is None:
            self.too_large = True
            log.warning("record quarantined: its profile entry would pass %d bytes", ENTRY_BYTES)
            return
        self.values, snapshot, self.cut = fitted
        if snapshot != self.snapshot:  # identifier values replaced by their digests: matching is the same
            self.side  # built now, from the values themselves: merge protection compares those, as it always did
            self.snapshot, self.n = snapshot, NormalizedRecord.from_dict(snapshot)

    # --- reads and decision -------------------------------------------------------------------------------

    def attempt(self) -> ResolveResult:
        ctx = self.ctx
        self.abandoned, self.placed = self.abandoned | self.placed, frozenset()
        self.named_before = frozenset()
        self.holders_met: dict[str, set[str]] = {}  # identifier id -> other holders its notes met (_join_new_holders)
        # One time for every document this attempt writes: they are one change (and formatting it is not free).
        self.now = now_iso()
        self.sides: dict[tuple[str, str | None], Side] = {}  # merge protection's view of each profile version
        # One batched read (ReadMany) for the source identifier and the strong ones. The records doc is read only
        # for a record committed before (its source identifier exists) or one whose doc an earlier attempt found
        # (_record_doc_found): a record never seen, most of them, costs no read of it. One seen but not committed (an
        # attempt died, a tombstone, an erasure) has a doc, found by its create before anything else is written.
        lookups = [self.source_iid, *self.strong]
        id_docs = dict(zip(lookups, ctx.identifiers.read_items(list(zip(lookups, lookups)))))
        self.record_doc_read = id_docs[self.source_iid] is not None or self.record_doc_found
        record_doc = ctx.records.read_item_or_none(self.key, self.key) if self.record_doc_read else None
        self.record_doc = record_doc  # its ETag: see _write_record_doc
        if record_doc is None:
            id_docs[self.source_iid] = None  # a commit without its records doc: started again, as it always was
        if record_doc is not None and record_doc.get("erased_at"):
            self._forget_erased()
            return ResolveResult(self.key, None, "erased", ERASED)
        if record_doc is not None and removed_after(record_doc, self.landed_at):
            leave_named_before(ctx, record_doc, self.key, keep=None)  # founded since by a delivery that then died
            return ResolveResult(self.key, None, "unchanged", REMOVED)
        source_doc = id_docs[self.source_iid]
        if record_doc is not None and self._older_than(record_doc):
            if source_doc is not None:  # an attempt of this version that died may have left its entry where it founded
                self._leave_named_before(record_doc, source_doc["profile_id"])
                self._release_claims_of_replaced(source_doc["profile_id"], id_docs)
            return ResolveResult(self.key, record_doc["profile_id"], "unchanged", STALE_VERSION)
        # Not beside a tombstone: left by a removal that died before deleting it, it names a profile the record left.
        # Nor when marked for re-keying (rekey.py): resolved again for what normalization makes of it now; the commit
        # takes the mark off.
        if (source_doc is not None and source_doc.get("content_hash") == self.hash and not record_doc.get("removed_at")
                and not source_doc.get(REKEYING)):
            self._leave_named_before(record_doc, source_doc["profile_id"])
            self._drop_lost_claims_listed(source_doc["profile_id"], id_docs)
            if record_doc.get("content_hash") != self.hash:
                # Another version is being resolved (its records doc is written first): once it replaced this one's
                # entry, what only this one gave is let go, as for a stale redelivery (a late duplicate of this version
                # may have claimed one again, and that version's worker died before letting it go again).
                self._release_claims_of_replaced(source_doc["profile_id"], id_docs)
            self._index_what_has_no_document(source_doc["profile_id"], id_docs)
            merged_away = False
            if self.redelivered:
                self._list_what_leads_here(source_doc["profile_id"], id_docs)
                merged_away = self._settle_profiles_named(record_doc, source_doc["profile_id"])
            if source_doc["profile_id"] != record_doc["profile_id"] or merged_away:  # both read already
                return self._unchanged_after_merge(source_doc["profile_id"], id_docs)
            return ResolveResult(self.key, source_doc["profile_id"], "unchanged")
        self.source_doc = source_doc
        self.owner: dict[str, str] = {}  # identifier id -> live profile id
        self.stale: dict[str, dict[str, Any]] = {}  # identifier docs whose profile is gone or does not give them
        self.aliased: dict[str, str] = {}  # identifier id -> the merged-away profile it still names
        self.block_fresh: set[str] = set()  # profiles another worker put under our keys while we were deciding
        self.block_written: set[str] = set()  # keys this attempt wrote (a concurrent writer would have conflicted)
        self.claimed: list[str] = []  # identifiers this attempt indexed to its profile
        self.commit_doc: dict[str, Any] | None = None  # the source identifier as this attempt's commit wrote it
        self.id_docs = id_docs  # the identifiers as the decision read them (_join_new_holders)
        self.scored: dict[str, str | None] = {}  # profile id -> the version scored in the decision
        self.group_read: dict[str, dict[str, Any]] = {}  # the group's profiles as read just before merging them
        # profile id -> (the version the names test kept the record apart from, the types of the values they share)
        self.apart_by_names: dict[str, tuple[dict[str, Any], list[str]]] = {}
        # holder id -> (the version the names test kept the record apart from, the values they share): _add_holders
        self.apart_holders: dict[str, tuple[dict[str, Any], list[str]]] = {}
        profiles: dict[str, dict[str, Any]] = {}
        self.profiles_read = profiles  # every profile the decision read, as it read it (_noted_meanwhile)
        prior = None
        self.left: dict[str, Any] | None = None  # the profile the record was taken out of, its ids to follow it
        prior_uncommitted = False
        if source_doc is not None:
            prior = self._live(source_doc["profile_id"], profiles)
            if prior is not None and not _holds(prior, self.key):
                if finish_split_in_flight(ctx, prior, self.key):
                    raise ConcurrencyConflict("the record was being split out of its profile")
                self.left, prior = prior, None  # the record was taken out of it (its content changed: see _leave)
                self.left_found |= {self.left["id"]}
            elif prior is None:  # its commit names a profile gone: a removal that died after deleting it
                self._forget_if_deleted(source_doc["profile_id"])
        if prior is None and record_doc is not None:
            # An attempt that died (or lost a race) placed it in a profile already, uncommitted: go on there, unless
            # a higher-priority identifier leads elsewhere (_group). Also when the profile its source identifier
            # names is gone (its person erased after the record left it).
            prior = self._held_by(record_doc, profiles)
            # Ranked as a placement (_group) only when nothing committed the record there (no source identifier) and
            # its person is not being erased: then it stays, and is erased with them (see the _should_leave call).
            prior_uncommitted = (prior is not None and source_doc is None and not prior.get("erasing_at")
                                 and not self._merged_for_it(prior))
            if prior is None and profiles.get(record_doc["profile_id"], UNREAD) is None:
                self._forget_if_deleted(record_doc["profile_id"])
        self.prior_uncommitted = prior_uncommitted
        marked = split_to_finish_first(prior, self.key)
        if marked and finish_split_in_flight(ctx, prior, marked):
            raise ConcurrencyConflict("a split out of the record's profile was in flight")
        candidates: dict[str, _Candidate] = {}
        for iid in self.strong:
            doc = id_docs[iid]
            if doc is None:
                continue
            profile = self._live(doc["profile_id"], profiles)
            if profile is None or (iid not in profile.get("identifiers", ()) and not _gives(profile, iid)):
                # Its profile is gone, or neither lists nor gives it (a release that lost a race between its writes,
                # to versions of one record): released in effect, so no rule link on it; the claim takes it over.
                self.stale[iid] = doc
                if profile is None:
                    self.gone_met |= {doc["profile_id"]}
                continue
            self.owner[iid] = profile["id"]
            if profile["id"] != doc["profile_id"]:
                self.aliased[iid] = doc["profile_id"]
            candidates.setdefault(profile["id"], _Candidate(profile, [])).types.append(id_type_of(iid))
        self._add_holders(id_docs, candidates, profiles)
        # Not out of a profile being erased (privacy.erase_profile marks it first): the record would leave the erase's
        # reach with its doc erased. It stays, and is erased with the person.
        if source_doc is not None and prior is not None and not prior.get("erasing_at") and self._should_leave(prior):
            return self._leave(prior)
        group, reviews, skipped = self._group(prior, candidates)
        link = self._add_probabilistic(group, reviews, skipped, profiles)
        return self._apply(group, reviews, skipped, link)

    def _add_holders(self, id_docs: dict[str, dict[str, Any] | None], candidates: dict[str, _Candidate],
                     profiles: dict[str, dict[str, Any]]) -> None:
        """The other profiles a shared email or phone's document names as holders (their records give it while
        another profile holds it: a household's) are candidates as its holder is, decided by the same names test.
        Otherwise a record whose home phone another member of the household claimed first never met its own
        person's profile: when Cat's record came first, Ann's three records with only her name and that phone stayed
        three profiles. A profile read per holder (up to 16), for records giving such a value only."""
        if not self.n.given_name:
            return  # no name to tell the household's members apart: the holder alone, as before
        # Holders noted on a candidate profile itself (_note_on_kept_apart): one noted after this decision read the
        # value's document, before it read the profile.
        noted = [h for cand in candidates.values() for h in cand.profile.get(NOTED_HOLDERS, ())]
        for iid in self.strong:
            doc = id_docs[iid]
            if doc is None or id_type_of(iid) not in SHAREABLE_TYPES:
                continue
            holder_ids = doc.get("holders", ())
            if noted:
                holder_ids = list(dict.fromkeys([*holder_ids, *noted]))
            for holder_id in holder_ids:
                holder = self._live(holder_id, profiles)
                if holder is None or holder["id"] == self.owner.get(iid) or not _gives(holder, iid):
                    continue
                if holder["id"] not in candidates and not self._names_agree(holder, id_type_of(iid) == "email"):
                    # Another member of the household: not skipped either, so a score may still find it. Noted on
                    # (_note_on_kept_apart).
                    self.apart_holders.setdefault(holder["id"], (holder, []))[1].append(iid)
                    continue
                types = candidates.setdefault(holder["id"], _Candidate(holder, [])).types
                if id_type_of(iid) not in types:
                    types.append(id_type_of(iid))

    def _drop_lost_claims_listed(self, committed_id: str, id_docs: dict[str, dict[str, Any] | None]) -> None:
        """The record is done, and an identifier of it is held by another profile with the commit's profile noted as
        a holder: a duplicate delivery may have listed it on the profile (a claim from a decision taken before the
        other profile claimed it), lost the claim and died before dropping it again. Dropped now, as it would have.
        One profile read, for a record that shares such an identifier (the ids were read already)."""
        lost = [iid for iid in self.strong if (doc := id_docs[iid]) is not None
                and doc["profile_id"] != committed_id and committed_id in doc.get("holders", ())]
        profile = live_profile(self.ctx, committed_id) if lost else None
        self.claimed = []  # what _drop_identifier may claim again (released meanwhile): committed with the record
        for iid in lost:
            if profile is None or profile["id"] != committed_id or iid not in profile.get("identifiers", ()):
                continue
            # Not one a merge into this profile is about to point here (its document names the absorbed profile).
            if _destination_of(self.ctx, id_docs[iid]["profile_id"]) not in (None, committed_id):
                profile = self._drop_identifier(profile, iid)

    def _index_what_has_no_document(self, committed_id: str, id_docs: dict[str, dict[str, Any] | None]) -> None:
        """A record found done one of whose identifiers has no document: a delivery of another record of its profile
        released it on a profile read taken before this record joined, and died before its profile write (which would
        have lost, and indexed it again). The profile is indexed again under it, where it lists it. Seen in the read
        every delivery makes: a profile read only then."""
        missing = {iid for iid in self.strong if id_docs[iid] is None}
        profile = live_profile(self.ctx, committed_id) if missing else None
        if profile is not None and profile["id"] == committed_id:
            index_again(self.ctx, profile, missing, set())

    def _list_what_leads_here(self, committed_id: str, id_docs: dict[str, dict[str, Any] | None]) -> None:
        """A redelivered record found done: an identifier of it leading to its profile that the profile does not list
        was dropped by an attempt that read it leading elsewhere, and that died before listing it again once handed
        on here (_drop_identifier). Listed now while given. One profile read, when an identifier leads here."""
        here = [iid for iid in self.strong if (id_docs[iid] or {}).get("profile_id") == committed_id]
        profile = live_profile(self.ctx, committed_id) if here else None
        if profile is None or profile["id"] != committed_id:
            return
        for iid in here:
            if iid not in profile.get("identifiers", ()):
                list_while_given(self.ctx, committed_id, iid)

    def _settle_profiles_named(self, record_doc: dict[str, Any], committed_id: str) -> bool:
        """A redelivered record found done: its dead attempt may have released a value of the old version on a
        profile read taken before another record giving it joined (a link claiming nothing, a merge), and died before
        its profile write, which would have lost and indexed the value again (index_given_again). The profiles the
        records doc names, now, before or by the commit, are settled as after an earlier attempt: a profile read,
        two queries and two batched reads each, on redelivery only. Returns whether the commit names an alias: the
        records doc named the profile too (a duplicate delivery writes it again over a merge saga's repoint), and the
        attempt died after its commit, before following the merge (races bench, seed 1509455)."""
        named = [*record_doc.get(NAMED_BEFORE, ()), record_doc["profile_id"], committed_id]
        merged_away = False
        for profile_id in dict.fromkeys(named):
            profile = self.ctx.read_profile(profile_id)  # as it is: no merge finished on the way
            if is_live(profile):
                settle_after_earlier_attempt(self.ctx, profile, self.key, claimed=self.strong)
            elif profile_id == committed_id and (profile or {}).get("doc_type") == "alias":
                merged_away = True
        return merged_away

    def _unchanged_after_merge(self, committed_id: str, id_docs: dict[str, dict[str, Any] | None]) -> ResolveResult:
        """A record done whose records doc and source identifier name two profiles: a merge saga repointed the
        records doc between our write of it and our commit, and the worker may have died before following the
        merge (_follow_concurrent_merge). Or both name a profile merged away, found on a redelivery
        (_settle_profiles_named). What it wrote under the absorbed id is pointed at the survivor now."""
        self.block_written = set(self.blocking_keys)
        self.claimed = [iid for iid in self.strong if (id_docs[iid] or {}).get("profile_id") == committed_id]
        self.commit_doc = id_docs[self.source_iid]  # let go as read, if the profile is gone (_undo_for_gone)
        live_id = self._follow_concurrent_merge(committed_id)
        if live_id is None:
            return ResolveResult(self.key, None, "erased", ERASED)
        self._point_record_doc_at(live_id)
        return ResolveResult(self.key, live_id, "unchanged")

    def _point_record_doc_at(self, profile_id: str) -> None:
        point_record_doc_at(self.ctx, self.key, profile_id)

    def _should_leave(self, prior: dict[str, Any]) -> bool:
        """A changed record stays in its profile (ids stay stable) unless its new content is another person's:
        its identifiers lead to another profile (staying would merge the two people), and it shares no identifier
        with the profile's other records nor scores as a match against them. It also leaves when merge protection
        would not join its new content to the profile's other records (a second loyalty card, another birth date):
        resolved again, it goes to review, as it would have on its first arrival."""
        others = [r for r in prior["records"] if r["key"] != self.key]
        if not others:
            return False
        if self._newly_protected(prior, others):
            return True
        if all(owner == prior["id"] for owner in self.owner.values()):
            return False
        if set(self.strong) & set().union(*map(entry_identifiers, others)):
            return False
        p, best = self.model.best_record(self.n, [n for key, n in self.snapshots.of(prior) if key != self.key])
        return best is None or p < self.ctx.settings.match_threshold or self.model.another_given_name(self.n, best)

    def _newly_protected(self, prior: dict[str, Any], others: list[dict[str, Any]]) -> bool:
        """True when merge protection would not join the record's new content to the profile's other records, and
        did join its old content (a conflict a person approved in a review stays approved)."""
        old = next(r for r in prior["records"] if r["key"] == self.key)
        own_ids, _ = only_given_by(old, others)
        rest = replace(self._side(prior), ids=set(prior.get("identifiers", [])) - own_ids)  # without the record
        now = join_conflict(self.policy, [self.side, rest])
        if now in (None, "never_match"):
            return False
        before = Side.of_record(self.key, entry_identifiers(old), old.get("match") or {})
        return now != join_conflict(self.policy, [before, rest])

    def _leave(self, prior: dict[str, Any]) -> ResolveResult:
        """Take the changed record out of its profile, then resolve it again like a new one. The log entry comes
        first (idempotent): a retry after a crash finds the record still in the profile, or resolves it afresh.
        The ids of profiles merged into it that only this record had brought follow it to its new profile, as a
        split takes them: before the commit (_apply), so a retry after a crash finds the record uncommitted, out
        of the profile its source identifier names (self.left), and moves them."""
        self.ctx.merges.upsert_item({
            "id": "o_" + stable_hash("out", self.key, prior["id"], self.hash), "profile_id": prior["id"],
            "absorbed_id": None, "at": self.now, "reason": "record_changed", "records": [self.key],
            "rule": "its new content is no longer this profile's person", "status": "done"})
        take_out(self.ctx, prior, self.key)
        self.taken_out |= {prior["id"]}
        return self.attempt()

    def _older_than(self, record_doc: dict[str, Any]) -> bool:
        """True when the stored version of the record says it changed later than this one, or, when the two do not
        both say when they changed, came in a file that landed later: a redelivered, late or replayed message must
        not undo a newer version (at-least-once delivery, in any order)."""
        stored = (record_doc.get("record") or {}).get("updated_at")
        if self.record.updated_at is not None and stored:
            return self._changed_later(stored)
        stored_landed = record_doc.get("landed_at")
        return bool(self.landed_at and stored_landed and stored_landed > self.landed_at)

    def _changed_later(self, stored: str | None) -> bool:
        """True when `stored`, another version's updated_at, is later than this version's."""
        if self.record.updated_at is None or not stored:
            return False
        try:
            return as_utc(datetime.fromisoformat(stored)) > as_utc(self.record.updated_at)
        except (TypeError, ValueError):  # an unreadable stored time: resolve as before
            return False

    def _add_probabilistic(self, group: list[_Candidate], reviews, skipped: set[str], profiles) -> dict | None:
        """Every other profile scoring above the match threshold joins too, best first, each checked by merge
        protection: a record linked by a rule can also bridge to a profile founded by a record without
        identifiers, and a record can bridge two profiles of one person, whatever the arrival order. When
        nothing joins, the best candidate goes to review if it is in the review band or protection blocked it."""
        ranked = []
        if candidate_ids := self._candidate_ids():  # most records have none
            exclude = {g.profile["id"] for g in group} | skipped | {r[0]["id"] for r in reviews}
            ranked = self._ranked_candidates(candidate_ids, profiles, exclude)
        if not self.ctx.config.single_writer:  # for _join_concurrent: no other writer in a single-writer run
            self.scored = {profile["id"]: profile.get("_etag") for _, profile, _ in ranked}
        settings = self.ctx.settings
        blocked = None
        kin = False  # two profiles the record fits are a parent's and a child's (protection's `surnames`)
        for p, profile, best in ranked:
            if p < settings.match_threshold:
                break
            another_name = self.model.another_given_name(self.n, best)
            if another_name:
                # The profile's best-matching record names another person (Katherine for a Catherine), but another of
                # its records, of this very name (Cathy), may match too: the join must not depend on which of the
                # profile's records came first.
                p, best, another_name = self._best_of_this_name(profile, p, best)
            detail = self._explain(best)
            reason = join_conflict(self.policy, [self.side, *(self._side(g.profile) for g in group), self._side(profile)])
            if reason is None and another_name:
                # Twins and family members share all else (birth date, family email, home phone, address): a
                # score never joins another given name on its own; a person decides. (Also refusing a bridge
                # between profiles of two such names was measured: recall -0.002 for precision +0.0003.)
                reason = "score:given_name"
            if reason is None:
                group.append(_Candidate(profile, ["score"], detail))
            elif reason != "never_match" and blocked is None:
                blocked = (profile, reason, detail)
            if reason == SURNAMES_CONFLICT and join_conflict(self.policy, [self.side, self._side(profile)]) is None:
                kin = True  # the conflict is between the profiles, not with the record
        if kin and group and all(g.types == ["score"] for g in group):
            # The record (Luis Romero) fits a father and a son (Luis Romero Martín, Luis Romero Gómez) alike: it
            # joins neither; a person decides.
            reviews.append((group[0].profile, SURNAMES_CONFLICT, group[0].detail))
            group.clear()
            return None
        if not group or self._founded_alone(group):
            if blocked is not None:
                reviews.append(blocked)
            elif ranked and ranked[0][0] >= settings.review_threshold:
                reviews.append((ranked[0][1], "score", self._explain(ranked[0][2])))
        if len(group) == 1 and group[0].types == ["score"]:
            return {"reason": "score", **group[0].detail}
        return None

    def _best_of_this_name(self, profile: dict[str, Any], p: float, best: NormalizedRecord
                           ) -> tuple[float, NormalizedRecord, bool]:
        """(p, record, whether its given name is another person's): the profile's best-matching record of the same
        given name (alike or a nickname: a typo of the other name, Stepen in the profile of Stephen, would let his
        twin Stephanie in), when it scores at the match threshold or above; else (p, best, True) as they were."""
        same_name = [other for key, other in self.snapshots.of(profile)
                     if key != self.key and self.model.same_given_name(self.n, other)]
        p_named, named = self.model.best_record(self.n, same_name)
        if named is not None and p_named >= self.ctx.settings.match_threshold:
            return p_named, named, False
        return p, best, True

    def _founded_alone(self, group: list[_Candidate]) -> bool:
        """The group is only the profile the record holds alone: one an earlier attempt created for it (a worker
        that died before opening its review, the message retried) or that a changed record has to itself. The
        record joins no one else, so the reviews are opened as for a record joining nobody."""
        return len(group) == 1 and group[0].types == ["prior"] and all(
            r["key"] == self.key for r in group[0].profile["records"])

    def _live(self, profile_id: str, cache: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        if profile_id not in cache:
            cache[profile_id] = live_profile(self.ctx, profile_id)
        return cache[profile_id]

    def _group(self, prior, candidates: dict[str, _Candidate]):
        """The profiles the record joins (prior first, unless only an uncommitted attempt placed it there and an
        identifier of higher priority leads elsewhere), those in conflict (review) and those skipped."""
        reviews: list[tuple[dict[str, Any], str, dict | None]] = []
        skipped: set[str] = set()
        leading = candidates.get(prior["id"]) if prior and self.prior_uncommitted else None
        # Placed there by an attempt that did not commit: a continuation, not a decision. It ranks as what leads
        # there, so an identifier of higher priority leading elsewhere (a card claimed meanwhile) comes first, as it
        # would have one after the other; the profile it is in then goes to review.
        self.prior_rank = self._candidate_rank(leading)[0] if leading else self.policy.rank("prior")
        if not candidates:
            return ([_Candidate(prior, ["prior"])] if prior else []), reviews, skipped
        ranked = sorted(candidates.values(), key=self._candidate_rank)
        group: list[_Candidate] = []
        if prior and not self.prior_uncommitted:
            group.append(_Candidate(prior, ["prior"]))
        elif prior:
            others = [c for c in ranked if c is not leading]
            at = next((i for i, c in enumerate(others) if self._candidate_rank(c)[0] >= self.prior_rank), len(others))
            ranked = [*others[:at], _Candidate(prior, ["prior"]), *others[at:]]
        for cand in ranked:
            if any(g.profile["id"] == cand.profile["id"] for g in group):
                continue
            sides = [self.side] + [self._side(g.profile) for g in group]
            cand_side = self._side(cand.profile)
            if self._shared_not_joined(cand.types, cand.profile, cand_side, sides):
                skipped.add(cand.profile["id"])
                if set(cand.types) <= SHAREABLE_TYPES:
                    self.apart_by_names[cand.profile["id"]] = (cand.profile, cand.types)
                continue
            reason = join_conflict(self.policy, sides + [cand_side])
            if reason == "never_match":
                skipped.add(cand.profile["id"])  # split apart by a person: known not to match, no review
            elif reason:
                reviews.append((cand.profile, reason, None))
            else:
                group.append(cand)
        return group, reviews, skipped

    def _candidate_rank(self, cand: _Candidate) -> tuple[int, Any]:
        """(the priority of the best identifier type that led to the candidate, its survivor order): lower first."""
        return min(self.policy.rank(t) for t in cand.types), survivor_order(cand.profile)

    def _shared_not_joined(self, types: list[str], profile: dict[str, Any], side: Side, sides: list[Side]) -> bool:
        """True when what the record shares with the profile never joins on its own: a device id alone between two
        known customers, or a family email or home phone with another person's given name (household)."""
        if set(types) <= SHAREABLE_TYPES:  # neither is a weak type: tested first, as most candidates share these
            return self._names_disagree(profile, "email" in types)
        return all(is_weak_type(t) for t in types) and side.is_known() and any(s.is_known() for s in sides)

    def _names_agree(self, profile: dict[str, Any], email: bool) -> bool:
        """A record of the profile has a given name, and the record's is not another person's (_names_disagree)."""
        if not any(other.given_name for key, other in self.snapshots.of(profile) if key != self.key):
            return False
        return not self._names_disagree(profile, email)

    def _names_disagree(self, profile: dict[str, Any], email: bool = False) -> bool:
        """True when the record's given name is another person's: that of the profile record the model finds most
        similar (typos, nicknames and initials are not another name). An equal birth date does not make them one
        person: twins share it, and a family email or home phone. (Treating swapped given/family names as
        agreement was measured to over-merge households, so it is not done.)"""
        if not self.n.given_name:
            return False
        named = [other for key, other in self.snapshots.of(profile) if key != self.key and other.given_name]
        _, best = self.model.best_record(self.n, named)
        if best is None or not self.model.another_given_name(self.n, best):
            return False
        # A shared personal mailbox made of a given name that neither record contradicts ("johnscott8049" of "Jihn"
        # and "Jon" Scott), or that one names and the other garbles into no one's name ("Tsu" on Stuart's): one
        # person whose names were mistyped or shortened, not two people of a household (MatchModel.mailbox_names_both).
        return not (email and self.model.mailbox_names_both(self.n, best))

    def _side(self, profile: dict[str, Any]) -> Side:
        version = (profile["id"], profile.get("_etag"))
        side = self.sides.get(version) if version[1] is not None else None
        if side is None:
            side = self.sides[version] = Side.of_profile(profile, without_record=self.key)
        return side

    def _candidate_ids(self) -> list[str]:
        """The profiles found under the record's blocking keys, those under most keys first (at most
        max_candidates); capped keys are too common to find anyone."""
        ctx, cfg = self.ctx, self.ctx.config
        counts: dict[str, int] = {}  # in the order first met (Counter.update costs more on a few short lists)
        docs = ctx.blocking.read_items(list(zip(self.blocking_keys, self.blocking_keys)))
        self.block_docs: dict[str, dict[str, Any] | None] = dict(zip(self.blocking_keys, docs))  # for _add_to_block
        for doc in filter(None, docs):  # most keys of a record have no document yet
            if not doc.get("capped"):
                for profile_id in doc.get("profile_ids", ()):
                    counts[profile_id] = counts.get(profile_id, 0) + 1
        self.block_seen = counts.keys()  # only asked whether a profile was met
        if not counts:
            return []
        # A stable sort: profiles under as many keys keep the order they were first met in.
        return sorted(counts, key=counts.__getitem__, reverse=True)[:cfg.max_candidates]

    def _ranked_candidates(self, profile_ids: list[str], profiles: dict[str, dict[str, Any]], exclude: set[str]):
        """(probability, profile, best-matching record) of these live profiles (not excluded), best first."""
        scored = []
        seen = set()
        unread = [pid for pid in dict.fromkeys(profile_ids) if pid not in profiles]
        if unread:  # one request for them all (ReadMany), not one each; what it reads tells a profile gone
            docs = self.ctx.profiles.read_items([(pid, pid) for pid in unread]) if len(unread) > 1 else [
                self.ctx.read_profile(unread[0])]
            for pid, doc in zip(unread, docs):
                profiles[pid] = live_profile(self.ctx, pid, doc=doc)
                if doc is None:
                    # Named under a key with no document: deleted with its last record, and a worker that died wrote
                    # the key for it after (races bench, seed 2210354). Let go once done, as for an identifier.
                    self.gone_met |= {pid}
        for pid in profile_ids:
            profile = self._live(pid, profiles)
            if profile is None or profile["id"] in seen or profile["id"] in exclude:
                continue
            seen.add(profile["id"])
            others = [other for key, other in self.snapshots.of(profile) if key != self.key]
            if others:
                p, best = self.model.best_record(self.n, others)
                scored.append((p, profile, best))
        scored.sort(key=lambda item: -item[0])  # stable: ties keep the candidates' order
        return scored

    def _scored_against(self, profile: dict[str, Any]) -> dict[str, Any] | None:
        """The explained score against a profile's best-matching record, for a review that merge protection (not a
        score) opened: the person deciding it sees how alike the two are. It decides nothing."""
        others = [other for key, other in self.snapshots.of(profile) if key != self.key]
        return self._explain(self.model.best_record(self.n, others)[1]) if others else None

    def _explain(self, other: NormalizedRecord) -> dict[str, Any]:
        """The explained score of the record against a profile's best-matching record, for logs and reviews."""
        score = self.model.score(self.n, other)
        return {"score": round(float(score.probability), 6), "match_weight": round(float(score.match_weight), 4),
                "contributions": {k: round(float(v), 4) for k, v in score.contributions.items()},
                "levels": score.levels, "model_version": getattr(self.model, "version", None),
                "compared_record": other.key}

    # --- writes -------------------------------------------------------------------------------------------

    def _apply(self, group: list[_Candidate], reviews, skipped: set[str], link) -> ResolveResult:
        lost = self._lost(group) if self.owner else set()
        self.lost = lost  # indexed to a profile outside the group: never listed by the record's profile
        claims = [iid for iid in self.strong if iid not in lost] if lost else self.strong
        self._record_doc_for = None
        if not group:
            # The records doc goes first, naming the profile about to hold the record: a worker dying right
            # after the profile write leaves its retry a pointer to continue from (_held_by), not a fresh start
            # that could place the record in a second profile.
            profile_id = profile_id_for_record(self.key)
            self._write_record_doc(profile_id)
            profile = self._create_profile(profile_id, claims)
            action, reason = ("review", reviews[0][1]) if reviews else ("created", "new")
        else:
            if len(group) > 1 and not self.ctx.config.single_writer:
                self._check_group_live(group)
            if len(group) > 1 and not self.record_doc_read and self.ctx.records.read_item_or_none(self.key, self.key):
                self._found_record_doc()  # before merging on the record's behalf (read here: merges are rare)
            ordered = sorted((g.profile for g in group), key=survivor_order)
            link = link or {"reason": "rule", "rule": "+".join(sorted({t for g in group for t in g.types}))}
            self._write_record_doc(ordered[0]["id"])
            profile = self._join(ordered, group, claims, link)
            action = "merged" if len(group) > 1 else "linked"
            reason = link["reason"] if link["reason"] != "rule" else f"rule:{link['rule']}"
            if link["reason"] == "score":
                self._log_score_link(profile["id"], link)
                reason = f"score:{link['score']}"
        self.link_rank = self._link_rank(group)
        profile = self._claim(profile, claims)
        if self.aliased:  # rare: most records find no identifier naming a merged-away profile
            self._repoint_aliased(profile["id"], {g.profile["id"] for g in group})
        # Another profile holds them: this one takes them over if that one lets them go. Read again (one request),
        # now that the profile gives them: one let go since the decision read it, while this profile did not give
        # it yet, was deleted, not handed on, even where this profile was noted as a holder before.
        lost = sorted(lost)
        fresh = self.ctx.identifiers.read_items([(iid, iid) for iid in lost]) if lost else []
        for iid, doc in zip(lost, fresh):
            if doc is not None and doc["profile_id"] in profile.get("merged_from", ()):
                profile = self._lead_here(profile, iid, doc)
            elif self._note_holder(iid, profile["id"], doc):
                self.claimed.append(iid)  # released meanwhile, and claimed
        self._write_record_doc(profile["id"])
        self._add_blocking(profile)
        if not self.ctx.config.single_writer:
            if (joined := self._note_on_kept_apart(profile)) is not None:
                profile, action, reason = joined[0], "merged", f"{reason}; concurrent:rule:{joined[1]}"
            if (joined := self._join_new_holders(profile)) is not None:
                profile, action, reason = joined[0], "merged", f"{reason}; concurrent:rule:{joined[1]}"
            if (joined := self._join_concurrent(profile)) is not None:
                profile, action, reason = joined, "merged", f"{reason}; concurrent:score"
        for cand_profile, why, detail in reviews:
            self._open_review(profile["id"], cand_profile["id"], why, detail or self._scored_against(cand_profile))
        if self.left is not None and self.left.get("merged_from") and self.left["id"] != profile["id"]:
            move_stranded_aliases(self.ctx, self.left["id"], self.key, profile["id"])
        self._commit(profile["id"])
        profile_id = profile["id"] if self.ctx.config.single_writer else self._follow_concurrent_merge(profile["id"])
        if profile_id is None:
            return ResolveResult(self.key, None, "erased", ERASED)
        if action == "linked" and reviews:
            reason += f"; review:{reviews[0][1]}"
        return ResolveResult(self.key, profile_id, action, reason)

    def _join(self, ordered: list[dict[str, Any]], group: list[_Candidate], claims: list[str], link) -> dict[str, Any]:
        """Link the record to the group's survivor (ordered[0]) and merge the group's other profiles into it.
        The record joins the survivor before the merges, unless another of the profiles holds another version of it
        (that entry is replaced after the fold, which keeps the survivor's; this very version there, left by another
        delivery, is the same entry). Linked first, the record is there for whoever reads the merged profile next,
        and for the fold's check: a record linked to either profile meanwhile that it may not join (another birth
        date) is kept apart by it, or refuses the fold, as one after the other. Linked after, such a record could
        join the merged profile first."""
        survivor, others = ordered[0], ordered[1:]
        if not others:
            return self._link(survivor, claims, link)
        if any(r["key"] == self.key and self._other_version(r) for profile in others for r in profile["records"]):
            return self._link(self._merge_into(survivor, others, group), claims, link)
        merging = {profile["id"] for profile in others}
        # The identifiers the other profiles hold come with the folds.
        self._link(survivor, [iid for iid in claims if self.owner.get(iid) not in merging], link)
        merged = self._merge_into(survivor, others, group)
        # What _link checks, on the profile as merged: a holder noted on a profile folded in after the decision read
        # it; an identifier no fold brought.
        self._meet_noted_holders(merged)
        self._forget_moved(claims, merged)
        return merged

    def _merge_into(self, survivor: dict[str, Any], others: list[dict[str, Any]], group: list[_Candidate]
                    ) -> dict[str, Any]:
        """Merge the others into the survivor, one after the other, on the record's behalf; the profile as merged."""
        for other in others:
            leads = [iid for iid, owner in self.owner.items() if owner == other["id"]]  # its saga points them here
            survivor = merge_profiles(self.ctx, survivor["id"], other["id"], self._merge_reason(group, other),
                                      absorbed=self.group_read.get(other["id"], other), leads=leads)
        return survivor

    def _merge_reason(self, group: list[_Candidate], other: dict[str, Any]) -> dict[str, Any]:
        """Why the record's group merges `other` into the survivor: the rule or score that led to it."""
        cand = next(g for g in group if g.profile["id"] == other["id"])
        if cand.detail is not None:
            return self._why({"reason": "score", **cand.detail})
        why = self._why({"reason": "rule", "rule": "+".join(sorted(set(cand.types)))})
        if cand.types == ["prior"]:
            why["rule"] = "+".join(sorted(set(t for g in group for t in g.types if t != "prior"))) or "prior"
        return why

    def _why(self, reason: dict[str, Any]) -> dict[str, Any]:
        """A merge's reason, with the record it was for and that record's version (for the fold's check: merge.py)."""
        return {**reason, "via_record": self.key, "via_hash": self.hash}

    def _link_rank(self, group: list[_Candidate]) -> float | None:
        """How strongly the record joined its one profile, for a claim it loses next (_settle_lost_claim): the best
        priority of the identifiers that led there (a score ranks below them all; founding it, below anything; an
        uncommitted placement, as _group ranked it). None when it stays whatever it loses: it was in the profile
        before, or merged profiles to join them."""
        if not group:
            return math.inf
        if len(group) != 1:
            return None
        if "prior" in group[0].types:
            return self.prior_rank if self.prior_uncommitted else None
        return min((self.policy.rank(t) for t in group[0].types if t != "score"), default=math.inf)

    def _lost(self, group: list[_Candidate]) -> set[str]:
        """The identifiers found indexed to a live profile the record does not join."""
        joined = {g.profile["id"] for g in group}
        return {iid for iid, owner in self.owner.items() if owner not in joined}

    # --- concurrency with other workers ---------------------------------------------------------------------

    def _check_group_live(self, group: list[_Candidate]) -> None:
        """Before merging: another worker may have merged a member into a profile this record never saw (whose
        rules the decision did not check), or linked a record to one that merge protection keeps apart from the
        record or from another member (a second birth date): merged as read, they would hold what protection
        refuses one record after the other. Then the decision is taken again from fresh reads (the reads are these
        checks' own; merge protection is checked again on what they read, at no request)."""
        lives = []
        ids = [member.profile["id"] for member in group]
        for member, doc in zip(group, self.ctx.profiles.read_items([(pid, pid) for pid in ids])):  # one request
            live = live_profile(self.ctx, member.profile["id"], doc=doc)
            if live is None or live["id"] != member.profile["id"]:
                raise ConcurrencyConflict("a profile of the group was merged away meanwhile")
            lives.append(live)
        changed = any(live.get("_etag") != member.profile.get("_etag") for live, member in zip(lives, group))
        if changed and join_conflict(self.policy, [self.side, *(self._side(live) for live in lives)]) is not None:
            raise ConcurrencyConflict("a profile of the group changed meanwhile into one the record may not join")
        self.group_read = {live["id"]: live for live in lives}

    def _forget_if_deleted(self, profile_id: str) -> None:
        """The profile the records doc names is gone. Deleted with its last record (this record) by a removal that
        died before forgetting the ids merged into it, it would leave them naming a profile founded again under the
        same id, which does not list them: they are forgotten first, as the removal's retry would (one read, and a
        query when there is no document). Or the record's commit names it, while a late delivery of another version
        pointed the records doc elsewhere: the removal's retry follows the doc, and never meets the profile again
        (races bench, seed 1305245: orphan_alias). What the index still names it by is let go once the record is
        done (let_go_of_gone)."""
        if self.ctx.read_profile(profile_id) is None:
            forget_deleted_profile(self.ctx, profile_id)
            self.gone_met |= {profile_id}

    def _merged_for_it(self, profile: dict[str, Any]) -> bool:
        """Whether an attempt placing the record in the profile merged into it, for the record, a profile that brought
        other records (the record's own profile aside). The placement is a decision then: the merges stand, and the
        record stays where they put it, as that attempt would have whatever claim it lost next (_link_rank). Going
        where an identifier claimed meanwhile leads, it left them merged without it (races bench, seed 519). A query
        of the merge log per profile in it, for a record found placed uncommitted only (a retry, a redelivery)."""
        own = profile_id_for_record(self.key)
        if not profile.get("merged_from") or profile["id"] == own:
            return False
        return any(entry.get("via_record") == self.key and entry.get("status") == "done"
                   and entry.get("absorbed_id") != own and set(entry.get("records", ())) - {self.key}
                   for partition in [profile["id"], *profile["merged_from"]]
                   for entry in self.ctx.merges.query_items(partition_key=partition))

    def _held_by(self, doc: dict[str, Any], profiles: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        """The live profile that already holds this record although it was never committed (an attempt died
        after writing it): the retry continues from there instead of placing the record in a second profile."""
        if doc.get("content_hash") is None:
            return None
        profile = self._live(doc["profile_id"], profiles)
        if not _holds(profile, self.key):
            return None
        return profile

    def _join_concurrent(self, profile: dict[str, Any]) -> dict[str, Any] | None:
        """Two records resolved at the same moment by different workers can miss each other: each read the
        blocking keys before the other had written its profile there, so neither joins the other, although
        the second would have, one after the other. They cannot both write a shared key unnoticed: the later
        write loses its ETag (412) or its create (409), re-reads the key (_reread_block) and so learns the
        other's profile, which it scores and merges with now (the merge saga is idempotent). Keys this attempt
        did not write (already listing the profile) are read again; one no longer listing it (taken off by a
        record of the profile that gave it too and changed meanwhile) lists it again. Returns the merged profile, or
        None."""
        unwritten = [key for key in self.blocking_keys if key not in self.block_written]
        names = {profile["id"], *profile.get("merged_from", ())}
        for key, doc in zip(unwritten, self._reread_blocks(unwritten, profile["id"])):
            if doc is None or not doc.get("capped") and names.isdisjoint(doc.get("profile_ids", ())):
                self.block_docs[key] = doc  # as read now
                self._add_to_block(key, profile["id"], profile.get("merged_from", ()))
        # The profile's own ids are left out: a change to it or to a profile merged into it joins nothing more.
        fresh = [pid for pid in sorted(self.block_fresh | self._changed_since_scored(names)) if pid not in names]
        if not fresh:
            return None
        current = live_profile(self.ctx, profile["id"])
        if current is None:
            self._undo_for_gone(profile["id"])
        merged, blocked = None, None
        # Every one scoring above the threshold, best first, with the checks a record meets one after the other
        # (_add_probabilistic): protection, then twins and family. Not only the best: a twin's profile blocked by
        # the given name, the next one of the record's own person joined all the same (races bench, seed 5812).
        for p, other, best in self._ranked_candidates(list(dict.fromkeys(fresh)), {}, {current["id"]}):
            if p < self.ctx.settings.match_threshold:
                break
            another_name = self.model.another_given_name(self.n, best)
            if another_name:
                p, best, another_name = self._best_of_this_name(other, p, best)
            detail = self._explain(best)
            reason = join_conflict(self.policy, [Side.of_profile(current), self._side(other)])
            if reason is None and another_name:
                reason = "score:given_name"
            if reason is None:
                ordered = sorted([current, other], key=survivor_order)
                merged = current = merge_profiles(self.ctx, ordered[0]["id"], ordered[1]["id"],
                                                  self._why({"reason": "score", **detail}))
            elif reason != "never_match" and blocked is None:
                blocked = (other, reason, detail)
        if merged is None and blocked is not None:  # as one after the other: a review when nothing joins
            self._open_review(current["id"], blocked[0]["id"], blocked[1], blocked[2])
        return merged

    def _note_holder(self, iid: str, profile_id: str, doc: dict[str, Any] | None = None) -> bool:
        """maintenance.note_holder, keeping the other holders the note met for _join_new_holders."""
        return note_holder(self.ctx, iid, profile_id, doc, seen=self.holders_met.setdefault(iid, set()))

    def _join_new_holders(self, profile: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
        """Two records of one person, each giving a household's email or phone that another member's profile
        holds, resolved at the same moment: each read the value's document before the other noted its profile as a
        holder, so each founded a profile, where the second would have joined the first one after the other
        (_add_holders). Their notes cannot both miss each other: they write that document under its ETag, so the
        later one met the earlier's profile. That profile is decided now as _add_holders and _group would have (the
        names test, then merge protection). Costs nothing unless a note met a holder the decision did not read.
        Returns (the merged profile, the identifier types it joined by), or None."""
        if not self.n.given_name:
            return None
        met = [(iid, holder_id) for iid, holders in sorted(self.holders_met.items())
               if id_type_of(iid) in SHAREABLE_TYPES
               for holder_id in sorted(holders - set((self.id_docs.get(iid) or {}).get("holders", ())))]
        current = live_profile(self.ctx, profile["id"]) if met else None
        if current is None:
            return None  # no holder met, or the profile is gone (_join_concurrent says so)
        rules: list[str] = []
        for iid, holder_id in met:
            holder = live_profile(self.ctx, holder_id)
            if holder is None or holder["id"] == current["id"] or not _gives(holder, iid):
                continue
            if not self._names_agree(holder, id_type_of(iid) == "email"):
                continue  # another member of the household
            # Every holder met joins, as each would have in _group: not only the first (races bench, seed 5135).
            if (merged := self._merge_unless_protected(current, holder, id_type_of(iid))) is not None:
                current = merged
                rules.append(id_type_of(iid))
        return (current, "+".join(sorted(set(rules)))) if rules else None

    def _merge_unless_protected(self, current: dict[str, Any], other: dict[str, Any], rule: str
                                ) -> dict[str, Any] | None:
        """The record's profile and another of its person's, found after the decision, merged by `rule` (the older
        survives); None when merge protection keeps them apart, with a review opened unless they were split apart."""
        reason = join_conflict(self.policy, [Side.of_profile(current), self._side(other)])
        if reason is not None:
            if reason != "never_match":
                self._open_review(current["id"], other["id"], reason, self._scored_against(other))
            return None
        ordered = sorted([current, other], key=survivor_order)
        return merge_profiles(self.ctx, ordered[0]["id"], ordered[1]["id"], self._why({"reason": "rule", "rule": rule}))

    def _noted_meanwhile(self, target: dict[str, Any]) -> set[str]:
        """The holders the target notes that no profile the decision read noted, when the record has a given name and
        an email or phone: the holders rule (_add_holders) would have tested them. Empty otherwise."""
        if (NOTED_HOLDERS not in target or not self.n.given_name
                or not any(id_type_of(iid) in SHAREABLE_TYPES for iid in self.strong)):
            return set()
        seen = {h for p in self.profiles_read.values() if p for h in p.get(NOTED_HOLDERS, ())}
        return set(target[NOTED_HOLDERS]) - seen

    def _meet_noted_holders(self, merged: dict[str, Any]) -> None:
        """After merges made for the record: holders noted on a profile it merged since the decision read it are met
        as on a value's document, for _join_new_holders to test (the names test, then merge protection) as _add_holders
        would have. Not decided again, as _link does: the merges stand, and the record would leave them behind."""
        if unseen := self._noted_meanwhile(merged):
            for iid in self.strong:
                if id_type_of(iid) in SHAREABLE_TYPES:
                    self.holders_met.setdefault(iid, set()).update(unseen)

    def _note_on_kept_apart(self, profile: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
        """The profiles the names test kept the record apart from, though they share its email or phone (a
        household's): this record's profile is noted on each as a holder, under the ETag of the version tested.
        A record of this one's person linked there meanwhile by another identifier (a family card) writes the same
        document: whichever writes second sees the other. Written first, the link reads the note, or loses its write
        and decides again (_add_holders, _link); written second, this write fails, and the profile is tested again as
        it is now. Of the two records, one after the other, the second would have joined the first's profile.
        Returns (the merged profile, the identifier types), or None. One write per such profile (none in a
        single-writer run); the value's document has the holder noted already (_apply).
        Also the other holders of such a value the names test kept it apart from (_add_holders), unless the value's
        document listed this profile already when the decision read it: then whoever listed it first noted it."""
        rules: list[str] = []
        apart = list(self.apart_by_names.values())
        for holder, iids in self.apart_holders.values():
            if holder["id"] not in self.apart_by_names and not all(self._listed_on(iid, profile["id"]) for iid in iids):
                apart.append((holder, sorted({id_type_of(iid) for iid in iids})))
        for other, types in apart:
            if (joined := self._note_on(other, types, profile)) is not None:
                profile = joined[0]
                rules.append(joined[1])
        return (profile, "+".join(sorted(set(rules)))) if rules else None

    def _listed_on(self, iid: str, profile_id: str) -> bool:
        """Whether the identifier's document named the profile, as holding it or as a holder, when the decision read
        it."""
        doc = self.id_docs.get(iid) or {}
        return doc.get("profile_id") == profile_id or profile_id in doc.get("holders", ())

    def _note_on(self, other: dict[str, Any], types: list[str], profile: dict[str, Any]
                 ) -> tuple[dict[str, Any], str] | None:
        """_note_on_kept_apart for one profile, `other` as the names test saw it; when it changed since, tested again
        as it is now, and noted on that version if it still names another person."""
        rule = "+".join(sorted(set(types)))
        for _ in range(MAX_WRITE_ATTEMPTS):
            noted = other.get(NOTED_HOLDERS, [])
            if profile["id"] in noted:
                return None
            try:
                self.ctx.profiles.replace_item(
                    {**other, NOTED_HOLDERS: [*noted, profile["id"]][-MAX_NOTED_HOLDERS:]}, etag=other["_etag"])
                return None
            except PreconditionFailedError:
                pass
            other, current = live_profile(self.ctx, other["id"]), live_profile(self.ctx, profile["id"])
            if other is None or current is None or other["id"] == current["id"]:
                return None
            if not self._names_agree(other, "email" in types):
                continue  # changed, still another member's: noted on this version
            merged = self._merge_unless_protected(current, other, rule)
            return (merged, rule) if merged is not None else None
        raise ConcurrencyConflict("could not note the record's profile on a profile it shares a value with")

    def _changed_since_scored(self, joined: set[str]) -> set[str]:
        """The profiles scored in the decision that changed since (one batched read): another worker may have
        linked a record to one without touching a blocking key (its keys were there already), and that record
        may be this one's person. Writing blocking keys cannot reveal that, so they are scored again. `joined`: the
        ids of the record's profile (it and those merged into it), not read: the record is there already."""
        ids = [pid for pid in self.scored if pid not in joined]
        if not ids:
            return set()
        docs = self.ctx.profiles.read_items([(pid, pid) for pid in ids])
        return {pid for pid, doc in zip(ids, docs) if doc is not None and doc.get("_etag") != self.scored[pid]}

    def _undo_after_erasure(self, profile_id: str) -> None:
        """The person was erased on request while this attempt linked the record to them: the erase took the
        record with the profile, and what this attempt indexed after the erase swept it (identifier claims, blocking
        keys, the commit) is deleted here. The erase sweeps again after its tombstone (shared/privacy.py), for an
        attempt that checked before the tombstone was there."""
        self._forget_erased({profile_id})
        record_doc = self.ctx.records.read_item_or_none(self.key, self.key)
        if record_doc is not None and not record_doc.get("erased_at"):  # as the erase leaves it
            self.ctx.records.upsert_item({"id": self.key, "profile_id": None, "erased_at": now_iso()})

    def _forget_erased(self, erased: set[str] | None = None) -> None:
        """Erased profiles out of what the record's own blocking keys and identifiers name (pointers, holders): an
        attempt that linked the record while its person was erased wrote them after the erase swept (this attempt,
        an earlier one of this resolution that lost a race after, or one whose worker died: the record is found
        erased when its message comes again). `erased`: those ids; else every erased profile the docs name."""
        ctx, keys, iids = self.ctx, sorted(self.blocking_keys), [*self.strong, self.source_iid]
        blocks = dict(zip(keys, ctx.blocking.read_items([(k, k) for k in keys]))) if keys else {}
        pointers = {iid: doc for iid, doc in zip(iids, ctx.identifiers.read_items([(i, i) for i in iids])) if doc}
        if erased is None:
            named = sorted({pid for doc in blocks.values() if doc for pid in doc.get("profile_ids", [])} | {
                pid for doc in pointers.values() for pid in [doc.get("profile_id"), *doc.get("holders", [])] if pid})
            docs = ctx.profiles.read_items([(pid, pid) for pid in named]) if named else []
            erased = {pid for pid, doc in zip(named, docs) if (doc or {}).get("doc_type") == "erased"}
        if not erased:
            return
        for key, doc in blocks.items():
            for pid in sorted(erased & set((doc or {}).get("profile_ids", []))):
                update_block(ctx, key, pid, None)
        # Holders of any value, also one only the record's earlier version gave (noted again when the version was
        # linked: index_again): one query, as the erase finds them.
        for doc in list(ctx.identifiers.query_items(("or", [("holders", "contains", pid) for pid in sorted(erased)]))):
            forget_holders(ctx, doc["id"], erased)
        for iid, doc in pointers.items():
            if doc.get("profile_id") in erased:  # handed on to a holder whose record gives it, else deleted
                release_identifier(ctx, iid, erased)

    def _follow_concurrent_merge(self, profile_id: str) -> str | None:
        """After the commit: if another worker merged the profile away meanwhile, its saga may have repointed
        the record doc and the source identifier before they were written; point them at the survivor. None when
        the profile was erased meanwhile; gone otherwise, what named it is let go and the record resolved again
        (_undo_for_gone)."""
        live = live_profile(self.ctx, profile_id)
        if live is None and (self.ctx.read_profile(profile_id) or {}).get("doc_type") == "erased":
            self._undo_after_erasure(profile_id)
            return None
        if live is None:
            self._undo_for_gone(profile_id)
        if live["id"] == profile_id:
            self._let_go_if_replaced(live)
            return profile_id
        # What this attempt wrote after the saga repointed the profile's documents names the absorbed id too. The
        # survivor takes the keys and identifiers it gives or lists; the rest is released (another version of the
        # record, merging the profile away, replaced this one's entry).
        hand_to_survivor(self.ctx, profile_id, live, self.block_written, set(self.claimed))
        for container, item_id in ((self.ctx.records, self.key), (self.ctx.identifiers, self.source_iid)):
            for _ in range(20):
                doc = container.read_item_or_none(item_id, item_id)
                if doc is None or doc.get("profile_id") != profile_id:
                    break
                try:
                    container.replace_item({**doc, "profile_id": live["id"]}, etag=doc["_etag"])
                    break
                except PreconditionFailedError:
                    continue
        return live["id"]

    def _undo_for_gone(self, profile_id: str) -> NoReturn:
        """The profile is gone after this attempt placed the record there: a removal took its last record (this
        one), or another version took this one's entry out, while this attempt went on to write its keys, claims and
        commit, all naming a profile gone (races bench, seed 43602). They are let go (the commit, if written, under
        the ETag it was written with: a later one stands), and the record is resolved again from fresh reads, which
        find it removed, or place it anew, as it would have been had it come after. A redelivery finding the record
        done in a profile gone (_unchanged_after_merge) lets go the same, its commit as it read it."""
        self._let_go_of_gone(profile_id, self.block_written, self.claimed)
        if self.commit_doc is not None:
            try:
                self.ctx.identifiers.delete_item(self.source_iid, self.source_iid, etag=self.commit_doc["_etag"])
            except PreconditionFailedError:
                pass  # written again since: by a version that decided after this one
        raise ConcurrencyConflict("the record's profile was deleted while it was placed")

    def _let_go_if_replaced(self, live: dict[str, Any]) -> None:
        """Another version of the record replaced this one's entry in the profile after this attempt wrote it, before
        this attempt claimed its identifiers and wrote its keys (those follow the profile write): what only this
        version gives was released before it was written, and would lead here with no record giving it (races
        bench, seed 29083). Let go now, on the profile already read after the commit."""
        if not (self.claimed or self.block_written) or any(
                r["key"] == self.key and r["hash"] == self.hash for r in live["records"]):
            return
        release_again(self.ctx, live, set(self.claimed), set(self.block_written))

    def _entry(self, link: dict[str, Any] | None, old: dict[str, Any] | None = None) -> dict[str, Any]:
        """The record's profile entry. `old`: the entry it replaces, whose added_at it keeps; seen_at, when ucp saw
        this content if that was after the record was added, is what most_recent ranks by (survivorship)."""
        updated = utc_text(self.record.updated_at) if self.record.updated_at else None
        entry = {"key": self.key, "source": self.record.source, "record_key": self.record.record_key,
                 "hash": self.hash, "match": self.snapshot, "blocking_keys": self.blocking_keys,
                 "values": record_values(self.record, self.data) if self.values is None else self.values,
                 "updated_at": updated, "added_at": old["added_at"] if old else self.now,
                 "link": link or {"reason": "new"}}
        seen_at = old and (old.get("seen_at") if old["hash"] == self.hash else self.now)
        if seen_at:
            entry["seen_at"] = seen_at
        if self.cut:
            entry["cut"] = True  # shortened to its size bound: the records container holds the whole record
        return entry

    def _create_profile(self, profile_id: str, claims: list[str]) -> dict[str, Any]:
        # The time of this write, not the attempt's: the older profile survives a merge (survivor_order), so
        # concurrent workers' profiles must be ordered as they were created.
        now = now_iso()
        entry = self._entry(None)
        attributes, conflicts = survive([entry], self.ctx.config.survivorship)
        doc = {"id": profile_id, "doc_type": "profile", "created_at": now, "updated_at": now,
               "records": [entry], "identifiers": sorted({self.source_iid, *claims}), "attributes": attributes,
               "conflicts": conflicts, "never_match": [], "merged_from": [], "merge_count": 0}
        try:
            return self._wrote(None, self.ctx.profiles.create_item(doc))
        except ItemExistsError:
            pass
        # A retry of our own creation, or the id was used before (record removed, split or merged away).
        existing = live_profile(self.ctx, doc["id"])
        if _holds(existing, self.key):
            return self._link(existing, claims, None)
        doc["id"] = random_profile_id()
        self._write_record_doc(doc["id"])  # first, as for the derived id: a retry finds the profile through it
        return self._wrote(None, self.ctx.profiles.create_item(doc))

    def _handed_here(self, target: dict[str, Any]) -> set[str]:
        """The identifiers another profile held at the decision that the target lists and that lead to it now (one
        batched read, only when it lists one: a dead attempt's claim, or one handed on to it meanwhile)."""
        listed = sorted(self.lost & set(target.get("identifiers", ())))
        docs = self.ctx.identifiers.read_items([(iid, iid) for iid in listed]) if listed else []
        return {iid for iid, doc in zip(listed, docs) if (doc or {}).get("profile_id") == target["id"]}

    def _link(self, target: dict[str, Any], claims: list[str], link) -> dict[str, Any]:
        """Add (or refresh) the record in the target profile, with optimistic concurrency. A new version of the
        record replaces its entry, releasing what only the old version gave the profile."""
        replaced: list[dict[str, Any]] = []  # entries of older versions this call released parts of
        held = None  # whether the profile held the record when this call first read it
        earlier_settled = False  # whether the profile was settled after an earlier attempt of this version
        for _ in range(50):
            if self._noted_meanwhile(target):
                # A profile kept apart from another by the names test was noted on this one after the decision read
                # it (a merge folded it in, or it was written meanwhile): it may be this record's person
                # (_note_on_kept_apart). Decided again, as it would have been had it come first.
                raise self._link_given_up(target, replaced, "a holder of a value it gives was noted meanwhile")
            old, records = None, []
            for r in target["records"]:  # one pass: this record's entry, and the others
                if r["key"] != self.key:
                    records.append(r)
                elif old is None:
                    old = r
            if held is None:
                held = old is not None
            elif held and old is None:  # taken out meanwhile (a split, a removal): decided again from fresh reads
                raise self._link_given_up(target, replaced, "the record left the profile meanwhile")
            # Another version, or this one normalized otherwise (a change of normalization, rekey.py): its entry is
            # replaced, releasing what only the old one gave.
            changed = old is not None and self._other_version(old)
            if old is not None and not changed and not earlier_settled:
                earlier_settled = True
                self._settle_after_earlier_attempt(target)
            if changed and self._changed_later(old.get("updated_at")):
                # A newer version of the record, linked by another worker since this attempt read its records doc:
                # the retry reads that version's records doc and answers stale.
                raise self._link_given_up(target, replaced, "a newer version of the record is in the profile")
            released, released_keys = self._release_replaced(target["id"], old, records) if changed else (set(), set())
            if changed:
                replaced.append(old)
            records.append(self._entry(link or (old or {}).get("link"), old))
            # Less the identifiers another profile holds: an earlier attempt may have listed one before losing
            # its claim and died before taking it off again. Not one handed on to this profile since the decision
            # (its holder let it go): that one leads here now.
            dropped = ((self.lost - self._handed_here(target)) | released) if self.lost else released
            self._forget_moved(claims, target)
            identifiers = sorted((set(target.get("identifiers", [])) - dropped) | {self.source_iid, *claims})
            if old is not None and not changed and identifiers == target.get("identifiers"):
                self.placed |= {target["id"]}
                return self._index_shared(target, replaced)
            if old is None and len(records) > self.policy.max_records:
                # Records linked by other workers since the decision filled it: decide again (cap:records).
                raise self._link_given_up(target, replaced, "the profile reached its records cap meanwhile")
            attributes, conflicts = survive(records, self.ctx.config.survivorship)
            body = {**target, "records": records, "identifiers": identifiers, "attributes": attributes,
                    "conflicts": conflicts, "updated_at": self.now}
            try:
                written = self.ctx.profiles.replace_item(body, etag=target["_etag"])
            except PreconditionFailedError:
                target = live_profile(self.ctx, target["id"])
                if released or released_keys:
                    index_given_again(self.ctx, target, self.key, released, released_keys)
                if target is None:
                    raise ConcurrencyConflict("link target vanished") from None
                if not held and join_conflict(self.policy, [self.side, self._side(target)]):
                    # A record linked meanwhile that this one may not join (another birth date, a second card):
                    # decided again, as it would have been had that record come first.
                    raise self._link_given_up(target, replaced, "a record linked meanwhile conflicts with it")
                continue
            if released or released_keys:  # a new version's write: nothing to release again otherwise
                release_again(self.ctx, written, released, released_keys)
            return self._wrote(target, self._index_shared(written, replaced))
        raise self._link_given_up(target, replaced, "could not link record")

    def _settle_after_earlier_attempt(self, profile: dict[str, Any]) -> None:
        """The profile holds this very version, not committed: an earlier attempt placed it and died (or a duplicate
        delivery runs still), maybe before settling the index with its write (_release_replaced's release_again,
        _index_shared)."""
        if self.source_doc is None or self.source_doc.get("content_hash") != self.hash:  # else a re-keying
            settle_after_earlier_attempt(self.ctx, profile, self.key, claimed=self.strong)

    def _other_version(self, entry: dict[str, Any]) -> bool:
        """Whether the record's entry is another version than this one, or this one normalized otherwise."""
        return entry["hash"] != self.hash or entry.get("match") != self.snapshot

    def _forget_moved(self, claims: list[str], profile: dict[str, Any]) -> None:
        """Identifiers read as leading to the profile (or to one merged into it) that it does not list: moved since
        (a split took one along, a removal handed it on). Claimed as new ones, so _claim settles each with the
        profile that holds it now."""
        listed = profile.get("identifiers", ())
        for iid in [iid for iid in claims if iid in self.owner and iid not in listed]:
            del self.owner[iid]

    def _link_given_up(self, target: dict[str, Any], replaced: list[dict[str, Any]], why: str) -> ConcurrencyConflict:
        """The error a link gives up with, once the profile as last read is indexed again under what an earlier pass
        released, as the profile was then, that its records give now (a record giving it linked meanwhile)."""
        self._index_shared(target, replaced)
        return ConcurrencyConflict(why)

    def _release_replaced(self, profile_id: str, old: dict[str, Any],
                          others: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
        """Release the identifiers and blocking keys only the record's old version gave the profile (neither its
        other records nor the new version give them), before the profile write, as take_out does for a removed
        record. Returns the identifiers released (the profile no longer lists them) and the keys."""
        own_ids, own_keys = only_given_by(old, others)
        ids, keys = own_ids - {self.source_iid, *self.strong}, own_keys - set(self.blocking_keys)
        release(self.ctx, profile_id, ids, keys)
        return ids, keys

    def _index_shared(self, profile: dict[str, Any], replaced: list[dict[str, Any]]) -> dict[str, Any]:
        """After old versions' entries were replaced: index the profile again under what they shared with its other
        records, which an earlier attempt may have released before another worker linked a record giving it too
        (take_out does the same for a removed record). The new version's own are claimed and added next."""
        if replaced:
            ids = set().union(*map(entry_identifiers, replaced)) - {self.source_iid, *self.strong}
            kept_keys = {k for r in profile["records"] if r["key"] != self.key for k in r.get("blocking_keys", ())}
            index_again(self.ctx, profile, ids, kept_keys & {k for e in replaced for k in e.get("blocking_keys", ())})
        return profile

    def _wrote(self, before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
        """`after` is `before` with this record's entry last: its snapshots are known without rebuilding them."""
        self.snapshots.written(before, after, self.key, self.n)
        self.placed |= {after["id"]}
        return after

    def _claim(self, profile: dict[str, Any], claims: list[str]) -> dict[str, Any]:
        """Claim each identifier for the profile; a claim lost to another profile is settled now. Highest priority
        first: a lost one that outranks the link makes the record decide again (_outranks_link) before a lower one
        notes its profile as a holder, which would lead records of the value to a profile it is about to leave. (A
        single writer loses no claim: the order is left as it is, at no cost.)"""
        self.indexed_under.add(profile["id"])
        if not self.ctx.config.single_writer and len(claims) > 1:
            claims = sorted(claims, key=lambda iid: self.policy.rank(id_type_of(iid)))
        for iid in claims:
            if iid in self.owner:
                continue  # found pointing into the group; merges repointed it
            stale = self.stale.get(iid)
            body = {"id": iid, "type": id_type_of(iid), "profile_id": profile["id"], "created_at": self.now}
            try:
                if stale is not None:  # the other profiles whose records give it stay remembered
                    kept = {"holders": stale["holders"]} if stale.get("holders") else {}
                    self.ctx.identifiers.replace_item({**body, **kept}, etag=stale["_etag"])
                else:
                    self.ctx.identifiers.create_item(body)
                self.claimed.append(iid)
                if iid not in profile.get("identifiers", ()):
                    # Another delivery of the record rewrote the profile without it (held elsewhere when it read
                    # it), and the holder let it go since: the claim won, so the profile lists it.
                    profile = self._listed(profile, iid)
                continue
            except (ItemExistsError, PreconditionFailedError):
                pass
            profile = self._settle_lost_claim(profile, iid)
        return profile

    def _listed(self, profile: dict[str, Any], iid: str) -> dict[str, Any]:
        """The profile, listing an identifier just claimed for it while one of its records gives it (read again)."""
        list_while_given(self.ctx, profile["id"], iid)
        return live_profile(self.ctx, profile["id"]) or profile

    def _repoint_aliased(self, profile_id: str, joined: set[str]) -> None:
        """The identifiers found naming a profile merged away: the merge's saga repoints the ones the absorbed profile
        lists, and one claimed for it after that (a worker that read the profile before the merge) is left behind.
        Each is pointed at where the alias leads (this profile, when the record joined it)."""
        for iid, named in self.aliased.items():
            owner = self.owner.get(iid)  # not one claimed again (_link): _settle_lost_claim repoints that one
            if owner is not None:
                _repoint(self.ctx.identifiers, iid, named, profile_id if owner in joined else owner, _set_profile_id)

    def _settle_lost_claim(self, profile: dict[str, Any], iid: str) -> dict[str, Any]:
        doc = self.ctx.identifiers.read_item_or_none(iid, iid)
        if doc is None:
            raise ConcurrencyConflict("identifier vanished while claiming")
        other = live_profile(self.ctx, doc["profile_id"])
        current = live_profile(self.ctx, profile["id"])
        if current is None:
            raise ConcurrencyConflict("profile vanished while claiming")
        if other is None:
            self.ctx.identifiers.replace_item({**doc, "profile_id": current["id"]}, etag=doc["_etag"])
            return current
        if other["id"] == current["id"]:
            if doc["profile_id"] != current["id"]:  # claimed for a profile merged into this one, after its merge
                _repoint(self.ctx.identifiers, iid, doc["profile_id"], current["id"], _set_profile_id)
            return current
        mine, theirs = Side.of_profile(current), Side.of_profile(other)
        if self._shared_not_joined([id_type_of(iid)], other, theirs, [mine]):  # as _group decides
            if id_type_of(iid) in SHAREABLE_TYPES:
                self.apart_by_names.setdefault(other["id"], (other, [id_type_of(iid)]))
        else:
            reason = join_conflict(self.policy, [mine, theirs])
            if reason is None:
                ordered = sorted([current, other], key=survivor_order)
                why = self._why({"reason": "rule", "rule": id_type_of(iid)})
                merged = merge_profiles(self.ctx, ordered[0]["id"], ordered[1]["id"], why)
                self._meet_noted_holders(merged)
                # The other profile's record may have let it go before the merge marked that profile (released,
                # with no holder noted): this record gives it, so the survivor claims it.
                if self._note_holder(iid, merged["id"]):
                    self.claimed.append(iid)
                    return live_profile(self.ctx, merged["id"]) or merged
                return merged
            if self._outranks_link(iid, theirs):
                self._decide_again()
            self._open_review(current["id"], other["id"], reason, self._scored_against(other))
        if self._note_holder(iid, current["id"], doc):
            self.claimed.append(iid)  # released since the claim was lost
            return live_profile(self.ctx, current["id"]) or current
        return self._drop_identifier(current, iid)

    def _lead_here(self, profile: dict[str, Any], iid: str, doc: dict[str, Any]) -> dict[str, Any]:
        """An identifier whose claim was lost, found claimed since for a profile merged into this one: another delivery
        of the record claimed it for the profile it founded, which this attempt's merge then folded in here, and the
        saga repointed only what that profile listed (races bench, seed 2910109: identifier_points_to_alias). Once
        its alias is read leading here, it is listed here, then pointed here (as a hand-on: listed first). Returns
        the profile as it is now."""
        here = live_profile(self.ctx, doc["profile_id"], finish=False)
        if here is None or here["id"] != profile["id"]:
            return profile
        if list_while_given(self.ctx, profile["id"], iid):
            _repoint(self.ctx.identifiers, iid, doc["profile_id"], profile["id"], _set_profile_id)
            return live_profile(self.ctx, profile["id"]) or profile
        return here

    def _outranks_link(self, iid: str, holder: Side) -> bool:
        """True when the identifier whose claim was lost outranks what the record linked by, and the record alone could
        join its holder: one after the other, the record would have joined that holder (_group ranks candidates by
        priority), and the profile it joined instead would have gone to review."""
        rank = self.link_rank
        return (rank is not None and self.policy.rank(id_type_of(iid)) < rank
                and join_conflict(self.policy, [self.side, holder]) is None)

    def _decide_again(self) -> NoReturn:
        """Decide again, now that the identifier's holder is there to be found: the profile that holds the record
        uncommitted ranks as what led there (_group), so the holder comes first. Its entry there is taken out once the
        record is committed elsewhere (leave_abandoned); not now, as another delivery may commit it there first."""
        self.record_doc_found = True  # the retry reads the records doc, which names that profile
        raise ConcurrencyConflict("an identifier outranking the link is held by a profile it may not merge with")

    def _drop_identifier(self, profile: dict[str, Any], iid: str) -> dict[str, Any]:
        """The profile without the identifier another profile holds. Its holder may hand it on to this profile
        meanwhile (its record let it go), and one listed here already is not written again by the hand-on, so no
        ETag tells: asked again once dropped, an identifier pointed here (or released meanwhile) is listed again."""
        for _ in range(50):
            if iid not in profile.get("identifiers", []):
                return profile
            body = {**profile, "identifiers": [i for i in profile["identifiers"] if i != iid]}
            try:
                dropped = self.ctx.profiles.replace_item(body, etag=profile["_etag"])
                break
            except PreconditionFailedError:
                profile = live_profile(self.ctx, profile["id"])
                if profile is None:
                    raise ConcurrencyConflict("profile vanished") from None
        else:
            raise ConcurrencyConflict("could not update identifiers")
        doc = self.ctx.identifiers.read_item_or_none(iid, iid)
        if doc is None:
            if self._note_holder(iid, dropped["id"]):  # released: claimed for this profile
                self.claimed.append(iid)
        elif (live_profile(self.ctx, doc["profile_id"]) or {}).get("id") == dropped["id"]:
            if list_while_given(self.ctx, dropped["id"], iid) is None:
                self._hand_to_survivor(dropped["id"], iid)
        else:
            return dropped
        return live_profile(self.ctx, dropped["id"]) or dropped

    def _hand_to_survivor(self, profile_id: str, iid: str) -> None:
        """An identifier handed on to the profile, which was merged away before listing it: the fold did not bring
        it, nor the saga point it at the survivor. The survivor lists it while one of its records gives it (this
        record), and it leads there; otherwise it is let go."""
        survivor = live_profile(self.ctx, profile_id)
        if survivor is None or survivor["id"] == profile_id:
            return
        list_while_given(self.ctx, survivor["id"], iid)
        hand_to_survivor(self.ctx, profile_id, live_profile(self.ctx, survivor["id"]) or survivor, set(), {iid})

    def _found_record_doc(self) -> NoReturn:
        """The record has a doc the attempt did not read (it skipped it: no commit): an attempt that died placing it,
        a delete's tombstone, an erasure. The decision is taken again from it, before anything is written."""
        self.record_doc_found = True
        raise ConcurrencyConflict("the record has a doc this attempt did not read")

    def _write_record_doc(self, profile_id: str) -> None:
        """Write the records doc under the ETag of the version this attempt read (or last wrote): another version of
        the record written meanwhile, newer or older, makes the attempt start again from fresh reads."""
        if getattr(self, "_record_doc_for", None) == profile_id:
            return  # written earlier in this attempt (a merge saga repoints it if the profile moves)
        body = {"id": self.key, "profile_id": profile_id, "source": self.record.source,
                "record_key": self.record.record_key, "content_hash": self.hash, "record": self.data,
                "updated_at": self.now, **({"landed_at": self.landed_at} if self.landed_at else {})}
        records = self.ctx.records
        for _ in range(20):
            doc = self.record_doc
            try:
                self.record_doc = (records.create_item(body) if doc is None else records.replace_item(
                    {**body, **_named_before(doc, profile_id)}, etag=doc["_etag"]))
                self.named_before = frozenset(self.record_doc.get(NAMED_BEFORE, ()))
                self._record_doc_for = profile_id
                return
            except ItemExistsError:
                if not self.record_doc_read:  # the decision did not know of it: taken again knowing it
                    self._found_record_doc()
                self.record_doc = records.read_item_or_none(self.key, self.key)
            except (PreconditionFailedError, ItemNotFoundError):
                self.record_doc = records.read_item_or_none(self.key, self.key)
            if self.record_doc is None or self.record_doc.get("content_hash") != self.hash:
                raise ConcurrencyConflict("another version of the record was written meanwhile")
            # else this version's doc, repointed by a merge saga or written by a duplicate delivery: write again
        raise ConcurrencyConflict("could not write the records doc")

    def _add_blocking(self, profile: dict[str, Any]) -> None:
        """Make the profile a candidate under the record's blocking keys. A key another record of the profile gives
        is skipped only when the attempt's read of it (_candidate_ids) found it listing the profile (or an id merged
        into it): a worker that died after writing its profile, before its keys, left keys that the profile's records
        list but the index lacks, and neither its retry nor a later record would write them."""
        self.indexed_under.add(profile["id"])
        covered: set[str] = set()
        for r in profile["records"]:
            if r["key"] != self.key:
                covered.update(r.get("blocking_keys", ()))
        names = None
        for key in self.blocking_keys:
            if key in covered:
                doc = self.block_docs.get(key)
                if doc is not None:
                    names = names or {profile["id"], *profile.get("merged_from", ())}
                    if doc.get("capped") or not names.isdisjoint(doc.get("profile_ids", ())):
                        continue
            self._add_to_block(key, profile["id"], profile.get("merged_from", ()))

    def _add_to_block(self, key: str, profile_id: str, merged: Iterable[str] = ()) -> None:
        """List the profile under the key; an id merged into it (`merged`) that the key still names is replaced by
        it in the same write. A merge's saga repoints the keys the absorbed profile's records give, as it read them:
        a key an attempt wrote for its profile while the entry there was another version's (two versions at once)
        was missed, and would name nothing once a removal takes the alias down."""
        blocking = self.ctx.blocking
        merged = set(merged)
        doc = self.block_docs.pop(key, UNREAD)  # the decision did not read it
        if doc is UNREAD:
            doc = blocking.read_item_or_none(key, key)
        for _ in range(50):
            if doc is None:
                try:
                    blocking.create_item({"id": key, "profile_ids": [profile_id]})
                    self.block_written.add(key)
                    return
                except ItemExistsError:
                    doc = self._reread_block(key, profile_id)
                    continue
            ids = doc.get("profile_ids", [])
            kept = [pid for pid in ids if pid not in merged] if merged else ids
            if doc.get("capped") or profile_id in ids and len(kept) == len(ids):
                return
            now = kept if profile_id in kept else [*kept, profile_id]
            body = ({**doc, "profile_ids": now} if len(now) <= self.ctx.config.blocking_cap
                    else {**doc, "capped": True})
            try:
                blocking.replace_item(body, etag=doc["_etag"])
                self.block_written.add(key)
                return
            except PreconditionFailedError:
                doc = self._reread_block(key, profile_id)
        raise ConcurrencyConflict("could not update blocking key")

    def _reread_block(self, key: str, profile_id: str) -> dict[str, Any] | None:
        """A blocking key changed between our read and our write: another worker wrote it meanwhile. The profiles
        it added are ones this record was never compared with (see _join_concurrent)."""
        return self._reread_blocks([key], profile_id)[0]

    def _reread_blocks(self, keys: list[str], profile_id: str) -> list[dict[str, Any] | None]:
        docs = self.ctx.blocking.read_items(list(zip(keys, keys)))
        seen = getattr(self, "block_seen", ())
        for doc in docs:
            if doc is not None and not doc.get("capped"):
                self.block_fresh.update(pid for pid in doc.get("profile_ids", []) if pid not in seen and pid != profile_id)
        return docs

    def _open_review(self, profile_id: str, candidate_id: str, reason: str, detail: dict | None) -> None:
        detail = detail or {}
        doc = {"id": review_id(self.key, candidate_id), "record_key": self.key,
               "profile_id": profile_id, "candidate_profile_id": candidate_id, "reason": reason,
               "score": detail.get("score"), "contributions": detail.get("contributions", {}),
               # what a person reads first: each comparison's level, and which of the candidate's records it was
               "levels": detail.get("levels", {}), "compared_record": detail.get("compared_record"),
               "model_version": detail.get("model_version"), "status": "open", "created_at": self.now}
        try:
            self.ctx.review.create_item(doc)
        except ItemExistsError:
            pass

    def _log_score_link(self, profile_id: str, link: dict[str, Any]) -> None:
        self.ctx.merges.upsert_item({
            "id": "l_" + stable_hash("link", self.key, profile_id), "profile_id": profile_id, "absorbed_id": None,
            "at": self.now, **link, "records": [self.key], "status": "done"})

    def _commit(self, profile_id: str) -> None:
        """The source identifier with the content hash, written last: the record is done."""
        body = {"id": self.source_iid, "type": "source", "profile_id": profile_id, "content_hash": self.hash,
                "created_at": (self.source_doc and self.source_doc.get("created_at")) or self.now}
        try:
            if self.source_doc is not None:
                self.commit_doc = self.ctx.identifiers.replace_item(body, etag=self.source_doc["_etag"])
            else:
                self.commit_doc = self.ctx.identifiers.create_item(body)
        except (ItemExistsError, PreconditionFailedError):
            self._undo_after_lost_commit(profile_id)
            raise ConcurrencyConflict("the same record was resolved concurrently") from None

    def _undo_after_lost_commit(self, profile_id: str) -> None:
        """The same record was committed by another worker meanwhile, whose version found it in this attempt's
        profile: it replaced this version's entry there (releasing what only this version gave), or merged the
        profile away. What this attempt indexed after that (blocking keys, identifier claims) names the profile for
        nothing, or names the absorbed id: the profile (its survivor) keeps what its records give, and the rest is
        released. This version is resolved again from fresh reads.

        That version may also have found no profile holding the record (this attempt wrote its records doc, naming
        a profile it had not written yet) and committed in a profile of its own: this version's entry is then
        taken out of this attempt's profile, as a removal would, or the record would be in two profiles. Or another
        delivery took this version's entry out of it (the commit naming another profile), the profile's last: the
        keys and identifiers this attempt wrote after that name a profile gone."""
        live = self._leave_if_committed_elsewhere(profile_id)
        if live is None:
            self._let_go_of_gone(profile_id, self.block_written, self.claimed)
        if live is None or not (self.block_written or self.claimed):
            return
        given = keys_given(live)
        for key in sorted(self.block_written):
            if key not in given or live["id"] != profile_id:
                update_block(self.ctx, key, profile_id, live["id"] if key in given else None)
        gives = set().union(*map(entry_identifiers, live["records"]))
        for iid in sorted(set(self.claimed)):
            if iid not in gives:
                release_identifier(self.ctx, iid, {profile_id, live["id"]})
            elif live["id"] != profile_id:
                _repoint(self.ctx.identifiers, iid, profile_id, live["id"], _set_profile_id)

    def _leave_named_before(self, record_doc: dict[str, Any], committed_id: str) -> None:
        """The record is done: the profiles its doc names besides the commit's keep this version's entry only where
        the commit is. A delivery whose attempt founded one of them, after the other delivery had read the doc and
        committed elsewhere, and died before its own commit, left the entry there: its redelivery knows that profile
        only from the doc, which names it (the other delivery had written the doc first) or names it before
        (NAMED_BEFORE: written over). A profile read or two per profile named, for the rare doc that names one."""
        named = [*record_doc.get(NAMED_BEFORE, ()), record_doc["profile_id"]]
        for profile_id in dict.fromkeys(named):
            if profile_id != committed_id and self._leave_if_committed_elsewhere(profile_id) is None:
                # Or another delivery took the entry out, the profile's last, after which the dead attempt wrote
                # keys and claims for it: this version's, as its own loss of the commit would have let them go.
                self._let_go_of_gone(profile_id, self.blocking_keys, self.strong)

    def _release_claims_of_replaced(self, profile_id: str, id_docs: dict[str, Any]) -> None:
        """This older version's identifiers that lead to the profile the newer one is committed in, where no record
        gives them: an attempt of this version claimed them after the newer version's entry had replaced its own
        there (claims follow the profile write), and died before its lost commit let them go. A profile read only
        when one of them leads there (the attempt read where they lead with its first read), and the pointers read
        again only when the profile does not give one."""
        leading = {iid for iid in self.strong if (id_docs.get(iid) or {}).get("profile_id") == profile_id}
        live = self.ctx.read_profile(profile_id) if leading else None
        if live is not None and live.get("doc_type") == "profile":
            if stray := {iid for iid in leading if not _gives(live, iid)}:
                release_again(self.ctx, live, stray, set())

    def _let_go_of_gone(self, profile_id: str, keys: Iterable[str], iids: Iterable[str]) -> None:
        """These blocking keys and identifiers stop naming the profile if it is gone (one read to know; a key through
        drop_dead_key, which names it again if it is founded again meanwhile)."""
        keys, iids = sorted(set(keys)), sorted(set(iids))
        if not (keys or iids) or self.ctx.read_profile(profile_id) is not None:
            return
        for key in keys:
            drop_dead_key(self.ctx, key, profile_id)
        for iid in iids:
            release_identifier(self.ctx, iid, {profile_id})

    def let_go_of_gone(self) -> None:
        """After the record is done: the profiles an identifier was found naming, gone, are named by nothing any
        more (let_go_of_deleted). A worker settling a profile on a read taken before a removal deleted it indexed
        it again under an email and a key, and died before its check after the writes; a later record claimed the
        email, and the key kept naming the profile (races bench, seed 809582: blocking_points_to_dead_profile)."""
        for profile_id in sorted(self.gone_met):
            let_go_of_deleted(self.ctx, profile_id)

    def settle_left(self) -> None:
        """After the record is done: a profile its commit named that no longer held it, taken out by another worker
        (a removal, or another delivery's leave) that may have died before settling the index after that write, is
        settled as that worker's retry would (settle_after_earlier_attempt). The retry may never meet it again: the
        records doc names this version's profile now (races bench, seed 1211582: identifier_not_held)."""
        for profile_id in sorted(self.left_found - self.taken_out):
            live = live_profile(self.ctx, profile_id)
            if live is not None and live["id"] == profile_id and not _holds(live, self.key):
                settle_after_earlier_attempt(self.ctx, live, self.key)

    def left_behind(self) -> frozenset[str]:
        """The profiles besides the current attempt's that may hold this version's entry: written by its earlier
        attempts, or named by the records doc it wrote over (another delivery's attempt, maybe dead), or met gone:
        another delivery may have founded one again under its id, then died (races bench, seed 2008160)."""
        return (self.abandoned | self.named_before | self.gone_met) - self.placed

    def leave_abandoned(self) -> None:
        """After the record is done: the profiles that earlier attempts, which failed before their commit, wrote its
        entry in keep it only where the commit is. Such an attempt founded a profile after a duplicate delivery had
        read its records doc (naming that profile, not written yet), linked the record elsewhere and committed; its
        retry found the record done (12 threads resolving random records twice each). So do the profiles the
        records doc named before this attempt wrote it: the delivery that wrote them may have died after founding
        one, before its commit, and this one committed elsewhere (the same, with workers dying). So do the profiles
        met gone and founded again since by such a delivery."""
        for profile_id in sorted(self.left_behind()):
            live = self._leave_if_committed_elsewhere(profile_id)
            if (live is not None and profile_id in self.indexed_under
                    and not any(r["key"] == self.key and r["hash"] == self.hash for r in live["records"])):
                # Another version's entry replaced this one's there before an attempt of this work wrote its keys and
                # claims, and the attempt failed after them (a merge refused), short of its commit, which would have
                # let go what no record there gives (_let_go_if_replaced): let go now (two batched reads; races
                # bench, seed 1103291: blocking_names_non_giver). Not for a profile this work only left.
                release_again(self.ctx, live, set(self.strong), set(self.blocking_keys))

    def _leave_if_committed_elsewhere(self, profile_id: str) -> dict[str, Any] | None:
        """Take this version's entry out of the profile (its survivor) when the record's commit names another one;
        returns the profile as read, unless the entry was taken out (None when it is gone)."""
        live = live_profile(self.ctx, profile_id)
        committed = self._committed_elsewhere(live) if live is not None else None
        if committed is not None:
            # A merge between the two reads (the profile, then the commit's) may have joined the two profiles: the
            # entry there, of the same content, is then the committed version's. Asked again of the profile as it
            # is now, whose read comes first.
            live = live_profile(self.ctx, live["id"]) or live
            committed = self._committed_elsewhere(live)
        if committed is None:
            return live
        # The ids that came here with the record (it left a profile for this one) follow it there, as a split's.
        move_stranded_aliases(self.ctx, live["id"], self.key, committed)
        current = live_profile(self.ctx, live["id"]) or live
        # Once more after those writes; a merge after these reads changes the profile: the ETag refuses it.
        if self._committed_elsewhere(current) is not None:
            take_out(self.ctx, current, self.key)
            if all(r["key"] == self.key for r in current["records"]):
                # Deleted with it: a profile folded into the commit's, whose mark another worker took off before the
                # saga wrote its alias (it read the merge's survivor as gone), is listed there as merged (a query).
                forget_where_listed(self.ctx, current["id"])
        return None

    def _committed_elsewhere(self, live: dict[str, Any]) -> str | None:
        """The live profile the record's commit names, when it is not this one, holds the record, and this
        version's entry is here."""
        if not any(r["key"] == self.key and r["hash"] == self.hash for r in live["records"]):
            return None
        commit = self.ctx.identifiers.read_item_or_none(self.source_iid, self.source_iid)
        committed = live_profile(self.ctx, commit["profile_id"]) if commit else None
        if committed is None or committed["id"] == live["id"] or not _holds(committed, self.key):
            return None
        return committed["id"]


def point_record_doc_at(ctx: Ctx, key: str, profile_id: str) -> None:
    """The records doc names a profile that does not hold the record while `profile_id`, its commit's, does: another
    version of the record lost its commit and took its entry out of the profile it had founded
    (_undo_after_lost_commit), after writing the doc, or died in between. Or it names the id of a profile merged into
    the commit's: a version that lost its commit wrote it after the merge's saga had repointed it. The doc follows
    the record."""
    for _ in range(MAX_WRITE_ATTEMPTS):
        doc = ctx.records.read_item_or_none(key, key)
        if doc is None or doc.get("profile_id") == profile_id or doc.get("removed_at") or doc.get("erased_at"):
            return
        named = live_profile(ctx, doc["profile_id"])
        if not _holds(live_profile(ctx, profile_id), key) or (
                named is not None and named["id"] != profile_id and _holds(named, key)):
            return  # the commit's profile does not hold it, or another does: not this call's to settle
        try:
            ctx.records.replace_item({**doc, "profile_id": profile_id}, etag=doc["_etag"])
            return
        except PreconditionFailedError:
            continue


def _named_before(doc: dict[str, Any], profile_id: str) -> dict[str, Any]:
    """What a records doc keeps of the profiles it named before this write: an attempt that wrote the doc may yet
    write the record's entry in the profile it named, then die before its commit (_leave_named_before). Kept across
    versions: the delivery that finds its version's entry there may be a redelivery of another version than this
    one (two versions without timestamps resolved at once). Only an entry of the finder's own version is taken out."""
    named = [p for p in doc.get(NAMED_BEFORE, ()) if p != profile_id]
    if doc.get("profile_id") not in (None, profile_id, *named):
        named.append(doc["profile_id"])
    return {NAMED_BEFORE: named[-MAX_NAMED_BEFORE:]} if named else {}


def resolve_records(store: Store, records: Iterable[CustomerRecord], *, settings: Settings | None = None,
                    model=None, config: ResolverConfig | None = None) -> list[ResolveResult]:
    """Resolve each record into a profile; one result per record, in order."""
    resolver = Resolver(store, settings=settings, model=model, config=config)
    results = list(resolver.resolve_many(records))
    counts = Counter(r.action for r in results)
    log.info("resolved %d records: %s", len(results), dict(counts))
    return results
