"""Profile 360, lookup by any identifier, merge log, split, export and erase."""
from __future__ import annotations

import logging
import re
from typing import Any

from ..activity import list_activity
from ..events.sessions import behaviour_summary
from ..measures import compute_measures, sentiment_summary
from ..settings import Settings
from ..store import ItemNotFoundError, Store
from .errors import ApiError, ApiResponse

log = logging.getLogger(__name__)

# Query parameter -> identifier type, in the order a lookup tries them.
LOOKUP_PARAMS = ("email", "phone", "loyalty_id")
# Every parameter of a lookup: the query of GET /profiles, the JSON body of POST /profiles/lookup.
LOOKUP_FIELDS = (*LOOKUP_PARAMS, "source", "source_id", "id_type", "id", "region")
# The kinds of identifier a lookup takes one of, each by the parameters that name it.
_LOOKUP_KINDS = (*((name,) for name in LOOKUP_PARAMS), ("source", "source_id"), ("id_type", "id"))
RECENT_ACTIVITY = 20
_CUSTOM_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")  # a custom identifier's name in the mappings


def _identity():
    from .. import identity

    return identity


def load_profile(store: Store, profile_id: str) -> dict[str, Any]:
    """The live profile for this id (following merges); 404 unknown, 410 erased. One point read when live."""
    if not profile_id or len(profile_id) > 128:
        raise ApiError(400, "profile id must be 1 to 128 characters")
    try:
        return _identity().get_profile(store, profile_id)
    except ItemNotFoundError:
        raw = store.container("profiles").read_item_or_none(profile_id, profile_id)
        if raw is not None and raw.get("doc_type") == "erased":
            raise ApiError(410, "this profile was erased on request", erased_at=raw.get("erased_at")) from None
        raise ApiError(404, "no profile with this id") from None


def _owners(profile: dict[str, Any]) -> list[str]:
    return [r["key"] for r in profile.get("records", [])]


def profile_view(store: Store, profile: dict[str, Any], *, requested_id: str | None = None) -> dict[str, Any]:
    """The unified profile as apps see it: attributes with their winning source, identifiers, records,
    measures from transactions, churn, segments, journey stage and recent activity."""
    activity = list(list_activity(store, _owners(profile)))
    activity.sort(key=lambda a: a.get("timestamp") or "", reverse=True)
    transactions = [a for a in activity if a.get("kind") == "transaction"]
    events = [a for a in activity if a.get("kind") == "event"]
    view = {
        "id": profile["id"],
        "attributes": profile.get("attributes", {}),
        "conflicts": profile.get("conflicts", {}),
        "identifiers": [i for i in profile.get("identifiers", []) if not i.startswith("source:")],
        # Each record with why it joined (its link: new, a rule and the identifiers, or a score and its comparisons).
        "source_records": [{"key": r["key"], "source": r.get("source"), "record_key": r.get("record_key"),
                            "added_at": r.get("added_at"), "link": r.get("link")} for r in profile.get("records", [])],
        "measures": {**(profile.get("measures") or {}), **compute_measures(transactions)},  # fresh wins over stored
        "churn": profile.get("churn"),
        "segments": profile.get("segments", []),
        "needs": profile.get("needs"),
        "journey_stage": profile.get("journey_stage"),
        "enrichment": profile.get("enrichment"),
        "behaviour": behaviour_summary(events),
        "sentiment": sentiment_summary(activity),
        "merged_from": profile.get("merged_from", []),
        "created_at": profile.get("created_at"),
        "updated_at": profile.get("updated_at"),
        "recent_activity": [_activity_summary(a) for a in activity[:RECENT_ACTIVITY]],
    }
    redirected = profile.get("merged_into") or (requested_id if requested_id and requested_id != profile["id"] else None)
    if redirected:
        view["merged_into"] = profile["id"]
        view["requested_id"] = requested_id
    return view


def _activity_summary(a: dict[str, Any]) -> dict[str, Any]:
    keep = ("kind", "timestamp", "source", "order_id", "amount", "channel", "category", "event", "type", "rating")
    return {k: a[k] for k in keep if k in a}


def get_profile_view(store: Store, profile_id: str) -> ApiResponse:
    profile = load_profile(store, profile_id)
    return ApiResponse(profile_view(store, profile, requested_id=profile_id))


def lookup_params(body: Any) -> dict[str, str]:
    """The lookup parameters of a POST /profiles/lookup body: a JSON object with the query parameters of
    GET /profiles as string members (null or "" is absent, as an empty query parameter). Anything else is 400."""
    if not isinstance(body, dict):
        raise ApiError(400, 'body must be a JSON object of the lookup parameters, such as {"email": "..."}')
    unknown = sorted(k for k in body if k not in LOOKUP_FIELDS)
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])  # names only: a value is never echoed (PII)
        raise ApiError(400, f"unknown lookup parameter(s) {shown}; the parameters are {', '.join(LOOKUP_FIELDS)}")
    params: dict[str, str] = {}
    for name, value in body.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise ApiError(400, f"{name} must be a string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escape ("\ud800"): ingestion keeps no such value
            raise ApiError(400, f"{name} is not valid Unicode (a lone surrogate escape)") from None
        params[name] = value
    return params


def lookup(store: Store, params: dict[str, str], settings: Settings, *, too_large_status: int = 414) -> ApiResponse:
    """GET /profiles?email=|phone=|loyalty_id=|source=&source_id=|id_type=&id= and POST /profiles/lookup with
    the same parameters in a JSON body (lookup_params), normalized exactly as ingestion does; id_type names a
    custom identifier of the mappings, such as ecommerce_id. A value of any length ingestion accepts is found (a
    long one under the digest id identity.docs.identifier_id gives it); a longer one is answered too_large_status
    (414 URI Too Long for the GET's query, 413 Content Too Large for the POST's body). A built-in
    placeholder (test@test.com, 0000000000, n/a) or a value the deployment blocks identifies nobody: 404 saying
    so; a malformed value is 400."""
    identity = _identity()
    given = {k: v for k, v in params.items() if k in LOOKUP_FIELDS and v and v.strip()}
    kinds = [names for names in _LOOKUP_KINDS if any(name in given for name in names)]
    if len(kinds) != 1:  # two identifiers may name two people: which one was meant is not ours to guess
        raise ApiError(400, "give exactly one of email, phone, loyalty_id, source with source_id, "
                            "or id_type with id")
    if kinds[0] == ("source", "source_id"):
        if not (given.get("source") and given.get("source_id")):
            raise ApiError(400, "source lookup needs both source and source_id")
        # trimmed as ingestion trims a record's key
        id_type, value = "source", f"{given['source'].strip()}|{given['source_id'].strip()}"
    elif kinds[0] == ("id_type", "id"):
        id_type, value = given.get("id_type", "").strip().lower(), given.get("id", "")
        if not value or not _CUSTOM_TYPE.fullmatch(id_type) or id_type in (*LOOKUP_PARAMS, "source"):
            raise ApiError(400, "a custom identifier lookup needs id_type (a custom identifier's name, such as "
                                "ecommerce_id) and id")
    else:
        id_type, value = kinds[0][0], given[kinds[0][0]]
    limit = settings.max_field_bytes  # ingestion refuses a longer value (field_too_large): none is stored
    if len(value) * 4 > limit and len(value.encode("utf-8", "surrogatepass")) > limit:
        raise ApiError(too_large_status, f"{id_type} is larger than {limit} bytes (UTF-8), the most ingestion "
                                         "accepts for a value: no profile can have it")
    region = given.get("region")
    identifier = identity.normalized_identifier(id_type, value, region=region, config=settings)
    if identifier is None:
        if identity.is_placeholder_identifier(id_type, value, region=region):
            # Left out of every record by normalization, as a value the deployment blocks is by the resolver.
            raise ApiError(404, f"this {id_type} is a placeholder (such as test@test.com, 0000000000 or n/a) that "
                                "identifies nobody: ingestion leaves it out of every record, so no profile is found "
                                "by it")
        hint = " (for a national number, give region, such as GB)" if id_type == "phone" else ""
        raise ApiError(400, f"this {id_type} is malformed{hint}")
    if identity.is_blocked_identifier(identifier, settings):
        # Left out of every record by the resolver: profiles that held it before it was blocked keep it, but it
        # names nobody, so none of them is this value's person.
        raise ApiError(404, f"this {id_type} is blocked by this deployment's identity configuration "
                            "(protection.blocked_values): it identifies nobody, so no profile is found by it")
    claim = store.container("identifiers").read_item_or_none(identifier, identifier)
    if claim is None or not claim.get("profile_id"):
        raise ApiError(404, f"no profile has this {id_type}")
    try:
        return ApiResponse(profile_view(store, load_profile(store, claim["profile_id"])))
    except ApiError as err:
        if err.status in (404, 410):  # the claim outlived its profile (erased): nobody has it now
            raise ApiError(404, f"no profile has this {id_type}") from None
        raise


def merges(store: Store, profile_id: str) -> ApiResponse:
    profile = load_profile(store, profile_id)
    return ApiResponse({"profile_id": profile["id"], "merges": _identity().list_merges(store, profile["id"])})


def split(store: Store, profile_id: str, body: Any, settings: Settings) -> ApiResponse:
    if not isinstance(body, dict) or not isinstance(body.get("record_key"), str):
        raise ApiError(400, 'body must be JSON {"record_key": "<source>|<record key>"}')
    profile = load_profile(store, profile_id)
    if body["record_key"] not in _owners(profile):
        raise ApiError(404, "this profile has no such source record")
    if len(profile.get("records", [])) < 2:
        raise ApiError(409, "a profile with a single source record cannot be split")
    from ..identity.docs import ConcurrencyConflict
    from ..store import ItemExistsError, PreconditionFailedError

    try:
        new_id = _identity().split_record(store, profile["id"], body["record_key"], settings=settings)
    except ItemNotFoundError:  # taken out, split or the profile merged away since it was read
        raise ApiError(404, "this profile has no such source record (any more)") from None
    except ValueError as err:  # the profile's only record (now), or a record key naming several
        raise ApiError(409, str(err)) from None
    except (ConcurrencyConflict, PreconditionFailedError, ItemExistsError):
        raise ApiError(409, "the profile kept changing while it was split; try again") from None
    return ApiResponse({"profile_id": profile["id"], "new_profile_id": new_id}, status=201)
