"""Derive region, email domain type, household, tenure and lifecycle stage for a profile.

Everything here is labelled derived (profile["enrichment"]["derived"] = True) and kept apart from what
sources said, so a data team can always tell an observed attribute from an inferred one.
"""
from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timezone
from typing import Any

from ..activity import is_purchase, list_activity, up_to
from ..store import PreconditionFailedError, Store
from ..normalize import fold_name
from .reference import CITY_REGION, DISPOSABLE_MAIL, FREE_MAIL, UK_POSTCODE_AREA_REGION, US_STATE_REGION

log = logging.getLogger(__name__)
ACTIVE_DAYS, LAPSING_DAYS = 90, 180


def _attr(profile: dict[str, Any], name: str) -> str | None:
    value = (profile.get("attributes", {}).get(name) or {}).get("value")
    return str(value) if value not in (None, "") else None


def region_of(postcode: str | None, city: str | None, state: str | None, country: str | None) -> str | None:
    if postcode:
        m = re.match(r"^([A-Z]{1,2})\d", postcode.replace(" ", "").upper())
        if m and m.group(1) in UK_POSTCODE_AREA_REGION and (country or "GB").upper() in ("GB", "UK", "UNITED KINGDOM"):
            return UK_POSTCODE_AREA_REGION[m.group(1)]
    if state and state.strip().upper() in US_STATE_REGION:
        return US_STATE_REGION[state.strip().upper()]
    if city:
        return CITY_REGION.get(fold_name(city) or "")
    return None


def email_domain_type(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().lower()
    if domain in DISPOSABLE_MAIL:
        return "disposable"
    return "free" if domain in FREE_MAIL else "corporate"


def household_id(profile: dict[str, Any]) -> str | None:
    """Same normalized address and family name -> same household (never used to merge profiles)."""
    address, postcode, family = _attr(profile, "address_line1"), _attr(profile, "postcode"), _attr(profile, "family_name")
    if not (address and family):
        return None
    key = "|".join(fold_name(x) or "" for x in (address, postcode or "", family))
    return "h_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def lifecycle(first: str | None, last: str | None, now: datetime) -> tuple[int | None, str]:
    if not last:
        return None, "prospect"
    first_dt = datetime.fromisoformat(first.replace("Z", "+00:00"))
    last_dt = datetime.fromisoformat(last.replace("Z", "+00:00"))
    tenure = max(0, (now - first_dt).days)
    since = (now - last_dt).days
    if since > LAPSING_DAYS:
        return tenure, "lapsed"
    if since > ACTIVE_DAYS:
        return tenure, "lapsing"
    return tenure, "new" if tenure <= ACTIVE_DAYS else "active"


def enrich_profile(profile: dict[str, Any], transactions: list[dict[str, Any]], *, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    purchases = sorted(t["timestamp"] for t in up_to(transactions, now) if is_purchase(t))  # as of `now`
    tenure, stage = lifecycle(purchases[0] if purchases else None, purchases[-1] if purchases else None, now)
    return {
        "derived": True,
        "computed_at": now.isoformat(),
        "region": region_of(_attr(profile, "postcode"), _attr(profile, "city"), _attr(profile, "state"), _attr(profile, "country")),
        "email_domain_type": email_domain_type(_attr(profile, "email")),
        "household_id": household_id(profile),
        "tenure_days": tenure,
        "lifecycle_stage": stage,
    }


def run_enrichment(store: Store, *, now: datetime | None = None, max_retries: int = 5) -> dict[str, int]:
    """Recompute enrichment for every live profile (ETag-guarded: a profile changed meanwhile is re-read)."""
    profiles = store.container("profiles")
    counts = {"profiles": 0, "updated": 0, "retries": 0}
    for summary in profiles.query_items(("doc_type", "=", "profile")):
        counts["profiles"] += 1
        for _ in range(max_retries):
            doc = profiles.read_item_or_none(summary["id"], summary["id"])
            if doc is None or doc.get("doc_type") != "profile":
                break
            owners = [r["key"] for r in doc.get("records", [])]
            enrichment = enrich_profile(doc, list(list_activity(store, owners, kind="transaction")), now=now)
            if {k: v for k, v in (doc.get("enrichment") or {}).items() if k != "computed_at"} == \
                    {k: v for k, v in enrichment.items() if k != "computed_at"}:
                break
            doc["enrichment"] = enrichment
            try:
                profiles.replace_item(doc, etag=doc["_etag"])
                counts["updated"] += 1
                break
            except PreconditionFailedError:
                counts["retries"] += 1
    log.info("enrichment: %s", counts)
    return counts
