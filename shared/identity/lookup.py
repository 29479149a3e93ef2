"""Reading identity results: profiles through aliases, the profile of an identifier, the merge log."""
from __future__ import annotations

import re
from typing import Any

from shared.models import CustomerRecord
from shared.normalize import (is_blocked_value, is_placeholder_phone, normalize_email, normalize_identifier,
                              normalize_loyalty_id, normalize_record)
from shared.settings import Settings, get_settings
from shared.store import ItemNotFoundError, Store

from .docs import Ctx, ResolverConfig, _configured, follow_aliases, identifier_id, record_identifiers
from .protection import id_type_of


def get_profile(store: Store, profile_id: str) -> dict[str, Any]:
    """The profile with this id, following aliases of merged profiles.

    When redirected, the result carries "requested_id" (the id asked for) and "merged_into" (the id found).
    Raises ItemNotFoundError when neither the profile nor what it was merged into exists.
    """
    ctx = Ctx(store)
    doc, path = follow_aliases(ctx, profile_id)
    if doc is None or doc.get("doc_type") != "profile":
        raise ItemNotFoundError(f"profile {profile_id} not found")
    result = {k: v for k, v in doc.items() if not k.startswith("_")}
    if path:
        result["requested_id"] = profile_id
        result["merged_into"] = doc["id"]
    return result


def normalized_identifier(id_type: str, raw_value: str, *, region: str | None = None,
                          config: ResolverConfig | Settings | None = None) -> str | None:
    """The identifier id ingestion would claim for this raw value ("email:ann@x.com"), None if unusable. An email
    is normalized with the provider rules of the identity configuration (`config`, or the one these settings name;
    default: this process's settings), as the resolver normalizes records."""
    id_type = id_type.strip().lower()
    if id_type == "source":
        value = str(raw_value).strip()
        return identifier_id("source", value) if "|" in value else None
    fields: dict[str, Any] = {"source": "lookup", "record_key": "lookup", "phone_region": region}
    if id_type in ("email", "phone", "loyalty_id"):
        fields[id_type] = raw_value
    else:
        fields["identifiers"] = {id_type: raw_value}
    rules = _resolver_config(config).email_provider_rules
    try:
        n = normalize_record(CustomerRecord(**fields), email_provider_rules=rules)
    except ValueError:
        return None
    return next((iid for iid in record_identifiers(n) if iid.split(":", 1)[0] == id_type), None)


def is_placeholder_identifier(id_type: str, raw_value: str, *, region: str | None = None) -> bool:
    """True when this raw value is well formed but a built-in placeholder that ingestion leaves out of every record,
    so it identifies nobody: test@test.com, 0000000000, "+34 666 666 666", a loyalty id "N/A" or "0000", and the
    placeholder words (n/a, unknown, -1...) of any type. False when it is malformed (an email that is not an
    address, a phone number with letters or that cannot be parsed) or usable. normalized_identifier gives None for
    both kinds of unusable value; this tells them apart, and normalization's own test decides what a placeholder
    is (shared.normalize.is_blocked_value, through the normalizers)."""
    id_type = id_type.strip().lower()
    text = str(raw_value).strip()
    if not text or id_type == "source":
        return False  # nothing given; a source key is never a placeholder
    if id_type == "email":
        email = normalize_email(text)
        return is_blocked_value("email", email) if email else _is_placeholder_word(text)
    if id_type == "phone":
        return is_placeholder_phone(text, region) if _PHONE_TEXT.fullmatch(text) else _is_placeholder_word(text)
    # A loyalty id or custom identifier has no form to be malformed in: normalization leaves one out only as a
    # placeholder.
    if id_type == "loyalty_id":
        return normalize_loyalty_id(text) is None
    return normalize_identifier(id_type, text) is None


# A phone number as written: digits with an optional leading + and the formatting normalization ignores.
_PHONE_TEXT = re.compile(r"\+?[\d\s\-()./\u00a0]*\d[\d\s\-()./\u00a0]*")


def _is_placeholder_word(text: str) -> bool:
    """n/a, unknown, none, 0000, xxxx: a value that is a placeholder as any identifier (read as one of no form of
    its own), so also when it is not an email address or a phone number."""
    return is_blocked_value("identifier", text)


def is_blocked_identifier(iid: str, config: ResolverConfig | Settings | None = None) -> bool:
    """True when the deployment blocks this identifier's value (protection.blocked_values of the identity
    configuration, or of the one these settings name): the resolver leaves it out of every record, so it
    identifies nobody, although profiles may hold it from before it was blocked."""
    config = _resolver_config(config)
    id_type = id_type_of(iid)
    return any(identifier_id(id_type, value) == iid for value in config.protection.blocked_values.get(id_type, ()))


def _resolver_config(config: ResolverConfig | Settings | None) -> ResolverConfig:
    """This resolver configuration, or the one these settings name (default: this process's settings)."""
    return config if isinstance(config, ResolverConfig) else _configured(config or get_settings())


def find_profile_id(store: Store, id_type: str, raw_value: str, *, region: str | None = None,
                    settings: Settings | None = None) -> str | None:
    """The live profile id holding this identifier, normalized exactly as ingestion does (with the identity
    configuration of these settings, default this process's); None if none, or if the deployment blocks it
    (is_blocked_identifier)."""
    ctx = Ctx(store, settings)
    iid = normalized_identifier(id_type, raw_value, region=region, config=ctx.config)
    if iid is None:
        return None
    if is_blocked_identifier(iid, ctx.config):
        return None
    doc = ctx.identifiers.read_item_or_none(iid, iid)
    if doc is None:
        return None
    profile, _ = follow_aliases(ctx, doc["profile_id"])
    return profile["id"] if profile is not None and profile.get("doc_type") == "profile" else None


def list_merges(store: Store, profile_id: str) -> list[dict[str, Any]]:
    """The merge log of a profile (merges, score links, splits), oldest first: also the entries of the profiles
    merged into it, which were written under the survivor of their time."""
    doc, _ = follow_aliases(Ctx(store), profile_id)
    partitions = [doc["id"], *doc.get("merged_from", [])] if doc and doc.get("doc_type") == "profile" else [profile_id]
    merges = store.container("merges")
    items = [item for pid in partitions for item in merges.query_items(partition_key=pid)]
    items.sort(key=lambda item: (item.get("at") or "", item["id"]))
    return [{k: v for k, v in item.items() if not k.startswith("_")} for item in items]
