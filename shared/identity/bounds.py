"""A profile document stays under Cosmos DB's 2 MB item limit by construction.

Without a bound, the profile of a shared email (a store's walk-in account, a family address) grows with every
record that links to it, each record entry holding its values and match snapshot, until Cosmos DB refuses the
document (413) and every later write to the customer fails, for good. Two rules bound it:
- a profile holds at most `max_records` record entries (merge protection, "cap:records": the next record goes to
  a profile of its own and to review; protection.MAX_RECORDS_LIMIT is the most a configuration may allow);
- each entry's footprint is at most ENTRY_BYTES: its JSON, plus what its values can add to the profile's
  attributes and conflicts (each value of an entry is the winner, one conflicting value, or a repeat), plus the
  identifier ids it adds and names in its link. The rest of a profile is small and bounded (its merge history by
  max_merges). 100 entries of 16 KB are 1.6 MB; the rest of 2 MB is room for the fields other jobs write.

Ordinary records are never measured: an upper estimate from lengths lets them through (the size of the record's
JSON dump, which its content hash encodes anyway, and the lengths of its snapshot, blocking keys and ids, at 6
bytes a character). Nearly every record passes (the 102k bench set: at most 10 KB). A record above it is measured
(JSON of its parts), once. When it does not fit, its profile copy is shortened and flagged "cut" (the records
container keeps the record whole: rebuilds, exports and erasure read it there): long identifier values in the
match snapshot become the digest their identifier id holds, long values are cut (to CUT_CHARS, then to
SHORT_CUT_CHARS characters, the last one an ellipsis), then the record's extra attributes are left out, last first.
A record whose names, address and identifiers alone do not fit is quarantined.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from .docs import identifier_id, is_digest

ENTRY_BYTES = 16 * 1024
CUT_CHARS = 1024
SHORT_CUT_CHARS = 128
ELLIPSIS = "\u2026"
# Bytes counted generously besides the text: per value, its separators in the entry and the frame of its attribute
# or conflict item ({"value":,"source":,"record":,"rule":"source_priority"}; the key and source it names are
# counted apart); per entry, its fixed fields (content hash, two timestamps, field names, the "cut" flag) and a
# scored link's explanation (comparison levels and contributions, model version).
VALUE_OVERHEAD = 96
ENTRY_OVERHEAD = 1600
TOO_LARGE = ("too large for a profile: its names, address and identifiers alone pass "
             f"{ENTRY_BYTES // 1024} KB (the limit of one record's part of a profile document)")

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def record_hash(data: dict[str, Any]) -> tuple[str, int]:
    """(content hash, JSON size) of a record's JSON dump: shared.models.content_hash_of, whose dump is measured on
    the way (the same encoder; tests pin the two together). Non-ASCII characters are escaped in it (6 or 12 bytes),
    so the size is at least the record's size in UTF-8 JSON."""
    payload = "".join(_HASH_ENCODER(data, 0)) if _HASH_ENCODER is not None else _HASH_JSON.encode(data)
    return hashlib.sha256(payload.encode()).hexdigest()[:32], len(payload)


_HASH_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_HASH_ENCODER = (json.encoder.c_make_encoder(None, _HASH_JSON.default, json.encoder.encode_basestring_ascii, None,
                                             ":", ",", True, False, True)
                 if json.encoder.c_make_encoder is not None else None)

# The most the match snapshot, blocking keys and identifier ids of an entry take besides what `estimate` counts
# from the record: normalization cuts names, address, street number, postcode, city and country to 128 characters
# (3 bytes a character at most once folded), a canonical given name is one of those names' words, a phone is at
# most 16 characters, a birth date 10; blocking keys are made of those (Soundex codes, a postcode, a birth date)
# and of the email user name; ids add their type names. Field names and separators included.
MATCH_BYTES = (17 * 24 + 7 * 128 * 3 + 26) + 512 + 128


def estimate(size: int, values: int, key: str, email: str | None, loyalty: str | None, custom: dict[str, str]) -> int:
    """An upper bound of the footprint in bytes of the entry of a record whose JSON dump is `size` bytes (see
    record_hash), with at most `values` values, this key, and this normalized email, loyalty id and custom identifiers:
    arithmetic on lengths, as it runs for every record. Per copy, an email takes at most 4 bytes a character and is
    copied 6 times (snapshot: itself, its user name and domain; blocking keys: its user name twice; ids: twice),
    an identifier value 6 bytes (a control character escaped) 3 times (snapshot, ids twice); the record key (with
    its source) appears in each attribute or conflict item, and 4 times more (key, record key and source in the
    entry and the snapshot, the source id twice)."""
    named = 2 * len(_escaped(key)) + VALUE_OVERHEAD  # an item's frame, naming the key and its source
    size = 3 * size + (values + 4) * named + MATCH_BYTES + ENTRY_OVERHEAD
    if email:
        size += 24 * len(email)
    if loyalty:
        size += 18 * len(loyalty)
    if custom:  # a custom loyalty_id is normalized as the field, where a character may become 3
        size += 60 * (sum(map(len, custom)) + sum(map(len, custom.values())) + len(custom))
    return size


_escaped = json.encoder.encode_basestring_ascii  # a JSON string, escaped to ASCII: at least its UTF-8 bytes


def footprint(values: dict[str, Any], snapshot: dict[str, Any], blocking_keys: list[str], ids: list[str],
              key: str, source: str) -> int:
    """An entry's footprint in bytes, measured (its parts as JSON)."""
    names = _bytes(key) + _bytes(source)
    return (3 * _bytes(values) + len(values) * (VALUE_OVERHEAD + names) + _bytes(snapshot) + _bytes(blocking_keys)
            + 2 * _bytes(ids) + 3 * names + ENTRY_OVERHEAD)


def _bytes(doc: Any) -> int:
    return len(_JSON.encode(doc).encode("utf-8", "surrogatepass"))


def bounded(values: dict[str, Any], snapshot: dict[str, Any], blocking_keys: list[str], ids: list[str], key: str,
            source: str, extra: list[str]) -> tuple[dict[str, Any], dict[str, Any], bool] | None:
    """(values, snapshot, shortened) of an entry within ENTRY_BYTES: as they are when they fit, else shortened
    (see the module docstring); None when even the shortest form does not fit. `extra`: the names of values that
    are the record's extra attributes, which are left out first."""
    size = footprint(values, snapshot, blocking_keys, ids, key, source)
    if size <= ENTRY_BYTES:
        return values, snapshot, False
    snapshot = _digested(snapshot)
    for limit in (CUT_CHARS, SHORT_CUT_CHARS):
        values = {name: _cut(value, limit) for name, value in values.items()}
        size = footprint(values, snapshot, blocking_keys, ids, key, source)
        if size <= ENTRY_BYTES:
            return values, snapshot, True
    names = _bytes(key) + _bytes(source)
    values = dict(values)
    for name in reversed([n for n in extra if n in values]):
        size -= 3 * (_bytes({name: values.pop(name)}) - 2) + VALUE_OVERHEAD + names
        if size <= ENTRY_BYTES:
            return values, snapshot, True
    return None


def _cut(value: Any, limit: int) -> Any:
    """The value, or its first limit - 1 characters and an ellipsis; a list or an object too long as JSON becomes
    its JSON text, cut the same way (so does a number of more digits than that)."""
    if type(value) is str:
        return value if len(value) <= limit else value[:limit - 1] + ELLIPSIS
    if type(value) is bool or value is None:
        return value
    text = _JSON.encode(value)
    return value if len(text) <= limit else text[:limit - 1] + ELLIPSIS


def _digested(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot with each identifier value too long for an id replaced by the digest its id holds, so the ids
    worked out from the snapshot again (maintenance.entry_identifiers) are the same. Matching does not compare
    these values."""
    out = dict(snapshot)
    if out.get("loyalty_id"):
        out["loyalty_id"] = _as_in_id("loyalty_id", out["loyalty_id"])[1]
    if out.get("identifiers"):
        out["identifiers"] = dict(_as_in_id(id_type, value) for id_type, value in out["identifiers"].items())
    return out


def _as_in_id(id_type: str, value: str) -> tuple[str, str]:
    """(type, value) as the identifier's id holds them: a digest in place of a value (or type) too long for it."""
    from shared.normalize import normalize_loyalty_id

    folded = (normalize_loyalty_id(value) or value) if id_type == "loyalty_id" and not is_digest(value) else value
    iid = identifier_id(id_type, folded)
    if iid == f"{id_type}:{folded}":
        return id_type, value
    short_type, digest = iid.rsplit(":", 1)  # a digest holds no colon; a type may
    return short_type, digest
