"""The four source systems: which people they know, their file layouts, and how each writes a person down.

- pos: store tills. Customers and transactions as CSV (customers with a BOM and CRLF, like an Excel export),
  birth dates as %Y%m%d, phones as typed, names often upper-case without accents, loyalty card when scanned.
- ecommerce: web shop. Customers, orders (with line items), web/mobile events and reviews as JSON Lines;
  ISO 8601 dates; the customer typed their own details.
- loyalty: card programme. Members as Parquet (typed dates and timestamps); one full-name field as embossed on
  the card; only a postcode.
- crm: legacy CRM. Contacts as gzip CSV in cp1252 with ';' and German-style dates (%d.%m.%Y), country names,
  street and number in one field; sometimes the web-shop customer id.
"""
from __future__ import annotations

import bisect
import itertools
import random
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa

from . import banks
from .behaviour import Clock
from .config import GeneratorConfig
from .noise import case_variant, email_variant, fold_diacritics, format_phone, has_diacritics, nicknames_of, typo, \
    whitespace_variant
from .people import Address, Person, personal_email, scramble
from .writers import FileSpec

SOURCES = ("pos", "ecommerce", "loyalty", "crm")

FILE_SPECS: dict[str, FileSpec] = {s.source + "." + s.entity: s for s in (
    FileSpec("pos", "customers", "customers", "csv",
             ["customer_no", "first", "last", "dob", "mail", "tel", "addr1", "addr2", "house_no", "town", "zip",
              "county", "country", "card_no", "store_code", "created"],
             key_column="customer_no", required=("customer_no",), date_columns=("dob",),
             text_columns=("first", "last", "addr1", "town"), encoding="utf-8-sig", line_terminator="\r\n"),
    FileSpec("pos", "transactions", "transactions", "csv",
             ["receipt_no", "customer_no", "txn_time", "store_id", "till_no", "channel", "type", "category", "total",
              "currency"],
             key_column="receipt_no", required=("receipt_no", "customer_no", "txn_time", "total"),
             date_columns=("txn_time",), amount_columns=("total",), text_columns=("category",)),
    FileSpec("ecommerce", "customers", "customers", "jsonl",
             ["customer_id", "email", "first_name", "last_name", "phone", "birthday", "address1", "address2", "city",
              "province", "zip", "country_code", "accepts_marketing", "created_at", "updated_at"],
             key_column="customer_id", required=("customer_id",), date_columns=("birthday", "updated_at"),
             text_columns=("first_name", "last_name", "city")),
    FileSpec("ecommerce", "transactions", "orders", "jsonl",
             ["order_id", "customer_id", "created_at", "kind", "source_name", "total_price", "currency",
              "main_category", "line_items"],
             key_column="order_id", required=("order_id", "customer_id", "created_at", "total_price"),
             date_columns=("created_at",), amount_columns=("total_price",), text_columns=("main_category",)),
    FileSpec("ecommerce", "events", "events", "jsonl",
             ["messageId", "type", "event", "timestamp", "anonymousId", "userId", "sessionId", "channel",
              "properties", "traits"],
             key_column="messageId", required=("messageId", "timestamp"), date_columns=("timestamp",),
             text_columns=("event",), no_nulls=True),
    FileSpec("ecommerce", "reviews", "reviews", "jsonl",
             ["review_id", "customer_id", "product_sku", "rating", "title", "body", "submitted_at"],
             key_column="review_id", required=("review_id", "customer_id", "submitted_at"),
             date_columns=("submitted_at",), text_columns=("body",)),
    FileSpec("loyalty", "customers", "members", "parquet",
             ["member_id", "card_number", "full_name", "birth_date", "email", "mobile", "postcode", "country", "tier",
              "points_balance", "enrolled_at"],
             key_column="member_id", required=("member_id",), date_columns=("birth_date",),
             parquet_types={"member_id": pa.string(), "card_number": pa.string(), "full_name": pa.string(),
                            "birth_date": pa.date32(), "email": pa.string(), "mobile": pa.string(),
                            "postcode": pa.string(), "country": pa.string(), "tier": pa.string(),
                            "points_balance": pa.int64(), "enrolled_at": pa.timestamp("ms", tz="UTC")}),
    FileSpec("crm", "customers", "contacts", "csv",
             ["ContactId", "Salutation", "FirstName", "LastName", "BirthDate", "EMail", "Mobile", "Street", "ZIP",
              "City", "Country", "EcomId", "Segment", "Modified"],
             key_column="ContactId", required=("ContactId",), date_columns=("BirthDate", "Modified"),
             text_columns=("FirstName", "LastName", "Street", "City"), delimiter=";", encoding="cp1252", gzip=True),
)}


@dataclass(frozen=True)
class Style:
    """A source's habits: how often it drops a field, folds accents, shouts names, and its phone formats."""

    missing_birth: float
    missing_email: float
    missing_phone: float
    missing_address: float
    fold_accents: float
    upper_names: float
    phone_styles: tuple[tuple[str, float], ...]


STYLES = {
    "pos": Style(0.45, 0.30, 0.20, 0.25, 0.8, 0.25,
                 (("national", 0.5), ("digits", 0.3), ("international", 0.1), ("dashes", 0.1))),
    "ecommerce": Style(0.70, 0.0, 0.40, 0.30, 0.1, 0.0,
                       (("e164", 0.4), ("international", 0.3), ("national", 0.2), ("digits", 0.1))),
    "loyalty": Style(0.15, 0.10, 0.30, 0.0, 0.5, 0.0, (("e164", 0.3), ("national", 0.4), ("digits", 0.3))),
    "crm": Style(0.40, 0.30, 0.35, 0.15, 0.2, 0.05,
                 (("international", 0.3), ("double_zero", 0.2), ("national", 0.3), ("dots", 0.2))),
}
_STYLE_CUM = {s: (tuple(x[0] for x in st.phone_styles), list(itertools.accumulate(x[1] for x in st.phone_styles)))
              for s, st in STYLES.items()}


@dataclass(slots=True)
class SourceRecord:
    source: str
    record_key: str
    registered: float  # when the account was created
    as_of: float  # when the source last updated it: the snapshot of the person it holds
    duplicate: bool
    card: str | None = None  # loyalty card number (loyalty records)


def key_for(source: str, person_index: int, n: int, rng: random.Random) -> str:
    x = person_index * 4 + n
    if source == "pos":
        return f"C{scramble(x, 10**9, 1):09d}"
    if source == "ecommerce":
        return str(10**10 + scramble(x, 10**10, 2))
    if source == "loyalty":
        return f"M{scramble(x, 10**9, 3):09d}"
    h = f"{rng.getrandbits(128):032x}"  # crm: a GUID
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}".upper()


def plan_records(rng: random.Random, person: Person, cfg: GeneratorConfig, clock: Clock) -> dict[str, list[SourceRecord]]:
    """Which sources know this person, with how many accounts, created when, last updated when."""
    member = [s for s in SOURCES if rng.random() < cfg.sources.get(s, 0.0)]
    if "pos" not in member and "ecommerce" not in member:  # every person bought somewhere
        member.append("pos" if rng.random() < 0.55 else "ecommerce")
    last = clock.history - 0.01
    plan: dict[str, list[SourceRecord]] = {}
    for source in SOURCES:
        if source not in member:
            continue
        delay = {"pos": 10.0, "ecommerce": 20.0, "loyalty": 120.0, "crm": 90.0}[source]
        first = min(last, person.acquired_at + rng.expovariate(1.0 / delay))
        times = [first]
        if rng.random() < cfg.duplicate_rate:
            times.append(rng.uniform(first, last))
        recs = []
        for n, reg in enumerate(times):
            as_of = reg if rng.random() < 0.5 else rng.uniform(reg, last)
            rec = SourceRecord(source, key_for(source, person.index, n, rng), reg, as_of, duplicate=n > 0)
            if source == "loyalty":
                rec.card = f"6337{scramble(person.index * 4 + n, 10**12, 4):012d}"
            recs.append(rec)
        plan[source] = recs
    return plan


def record_at(records: list[SourceRecord], t: float) -> SourceRecord:
    """The account a person used at time t: the newest one created by then (else their first)."""
    best = records[0]
    for r in records:
        if r.registered <= t:
            best = r
    return best


# ---------------------------------------------------------------- the noisy view of a person in one record

@dataclass(slots=True)
class View:
    given: str | None
    family: str | None
    email: str | None
    phone: str | None
    birth: date | None
    address: Address | None
    street: str | None  # street name with its type, maybe abbreviated, without the number


def _street(addr: Address, rng: random.Random, abbreviate: bool) -> str:
    forms = banks.STREET_TYPES[addr.country][addr.street_type]
    kind = forms[1 + int(rng.random() * (len(forms) - 1))] if abbreviate and len(forms) > 1 else forms[0]
    if addr.country == "DE":
        return f"{addr.street}{kind}"
    if addr.country in ("FR", "ES"):
        return f"{kind} {addr.street}"
    return f"{addr.street} {kind}"


def street_with_number(addr: Address, street: str) -> str:
    if addr.country in ("DE", "ES"):
        return f"{street} {addr.number}"
    return f"{addr.number} {street}"


def customer_view(rng: random.Random, p: Person, rec: SourceRecord, cfg: GeneratorConfig, stats: Counter) -> View:
    n, style, t = cfg.noise, STYLES[rec.source], rec.as_of
    given = p.given_name
    nicks = nicknames_of(given)
    if nicks:
        stats["nickname_eligible"] += 1
        if rng.random() < n.nickname:
            given = nicks[int(rng.random() * len(nicks))]
            stats["nickname"] += 1
    family = p.at(p.family_names, t)
    if family != p.family_name:
        stats["maiden_name"] += 1
    if rng.random() < n.typo:
        given = typo(rng, given)
        stats["typo"] += 1
    if rng.random() < n.typo:
        family = typo(rng, family)
        stats["typo"] += 1
    if rng.random() < n.swap_names:
        given, family = family, given
        stats["swap_names"] += 1
    if (has_diacritics(given) or has_diacritics(family)) and rng.random() < style.fold_accents:
        german = p.country == "DE" and rng.random() < 0.3
        given, family = fold_diacritics(given, german), fold_diacritics(family, german)
        stats["diacritics_folded"] += 1
    if rng.random() < style.upper_names:
        given, family = given.upper(), family.upper()
    if rng.random() < n.case:
        if rng.random() < 0.5:
            given = case_variant(rng, given)
        else:
            family = case_variant(rng, family)
        stats["case"] += 1
    if rng.random() < n.whitespace:
        if rng.random() < 0.5:
            given = whitespace_variant(rng, given)
        else:
            family = whitespace_variant(rng, family)
        stats["whitespace"] += 1
    return View(given=given, family=family, email=_email(rng, p, t, style, n, stats, rec.duplicate),
                phone=_phone(rng, p, rec.source, style, n, stats), birth=_birth(rng, p, style, n, stats),
                **_address(rng, p, t, style, n, stats))


def _email(rng, p: Person, t: float, style: Style, n, stats: Counter, duplicate: bool) -> str | None:
    if rng.random() < n.placeholder_email:
        stats["placeholder_email"] += 1
        return banks.PLACEHOLDER_EMAILS[int(rng.random() * len(banks.PLACEHOLDER_EMAILS))]
    if p.family_email and rng.random() < 0.5:
        stats["family_email"] += 1
        return p.family_email
    if rng.random() < style.missing_email:
        return None
    email = p.at(p.emails, t)
    if duplicate and rng.random() < 0.6:  # a second account is often a re-registration with another address
        email = personal_email(rng, p.country, p.given_name, p.family_name, p.index + 11, old=email)
        stats["reregistration_email"] += 1
    elif email != p.emails[-1][1]:
        stats["old_email"] += 1
    if rng.random() < n.email_variant:
        kind, email = email_variant(rng, email)
        stats[kind] += 1
    if rng.random() < n.email_typo:
        local, _, domain = email.partition("@")
        email = typo(rng, local) + "@" + domain
        stats["email_typo"] += 1
    return email


def _phone(rng, p: Person, source: str, style: Style, n, stats: Counter) -> str | None:
    if rng.random() < n.placeholder_phone:
        stats["placeholder_phone"] += 1
        return banks.PLACEHOLDER_PHONES[int(rng.random() * len(banks.PLACEHOLDER_PHONES))]
    if rng.random() < style.missing_phone:
        return None
    number = p.mobile
    if p.home_phone is not None and rng.random() < 0.3:
        number = p.home_phone
        stats["home_phone"] += 1
    names, cum = _STYLE_CUM[source]
    return format_phone(number, names[min(bisect.bisect_left(cum, rng.random() * cum[-1]), len(names) - 1)])


def _birth(rng, p: Person, style: Style, n, stats: Counter) -> date | None:
    if rng.random() < n.placeholder_birth_date:
        stats["placeholder_birth_date"] += 1
        return date.fromisoformat(banks.PLACEHOLDER_BIRTH_DATES[int(rng.random() * len(banks.PLACEHOLDER_BIRTH_DATES))])
    if rng.random() < style.missing_birth:
        return None
    b = p.birth_date
    if b.day <= 12 and b.day != b.month and rng.random() < n.date_swap:
        stats["date_swap"] += 1
        return date(b.year, b.day, b.month)
    return b


def _address(rng, p: Person, t: float, style: Style, n, stats: Counter) -> dict:
    if rng.random() < style.missing_address:
        return {"address": None, "street": None}
    addr = p.at(p.addresses, t)
    if addr is not p.addresses[-1][1]:
        stats["old_address"] += 1
    abbreviate = rng.random() < n.street_abbreviation
    if abbreviate:
        stats["street_abbreviation"] += 1
    street = _street(addr, rng, abbreviate)
    if rng.random() < n.street_typo:
        street = typo(rng, street)
        stats["street_typo"] += 1
    return {"address": addr, "street": street}


# ---------------------------------------------------------------- rows per source

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def customer_row(rng: random.Random, p: Person, rec: SourceRecord, v: View, clock: Clock, extra: dict) -> dict:
    a = v.address
    if rec.source == "pos":
        number_in_line = a is not None and rng.random() < 0.3
        return {
            "customer_no": rec.record_key, "first": v.given, "last": v.family,
            "dob": v.birth.strftime("%Y%m%d") if v.birth else None, "mail": v.email, "tel": v.phone,
            "addr1": (street_with_number(a, v.street) if number_in_line else v.street) if a else None,
            "addr2": a.flat if a else None, "house_no": a.number if a and not number_in_line else None,
            "town": a.city if a else None, "zip": a.postcode if a else None,
            "county": a.state if a and rng.random() < 0.6 else None, "country": p.country,
            "card_no": extra.get("card"), "store_code": extra.get("store"),
            "created": clock.format(rec.registered, "%Y-%m-%d"),
        }
    if rec.source == "ecommerce":
        return {
            "customer_id": rec.record_key, "email": v.email, "first_name": v.given, "last_name": v.family,
            "phone": v.phone, "birthday": v.birth.isoformat() if v.birth else None,
            "address1": street_with_number(a, v.street) if a else None, "address2": a.flat if a else None,
            "city": a.city if a else None, "province": a.state if a else None, "zip": a.postcode if a else None,
            "country_code": a.country if a else None, "accepts_marketing": rng.random() < 0.4,
            "created_at": clock.iso(rec.registered), "updated_at": clock.iso(rec.as_of),
        }
    if rec.source == "loyalty":
        full = f"{v.given} {v.family}" if rng.random() < 0.85 else f"{v.family}, {v.given}"
        return {
            "member_id": rec.record_key, "card_number": rec.card,
            "full_name": full.upper() if rng.random() < 0.5 else full, "birth_date": v.birth, "email": v.email,
            "mobile": v.phone, "postcode": a.postcode if a else None, "country": p.country,
            "tier": ("bronze", "silver", "gold")[min(2, int(rng.expovariate(1.5)))],
            "points_balance": int(rng.expovariate(1 / 800)),
            "enrolled_at": _EPOCH + timedelta(days=(clock.start - _EPOCH.date()).days + rec.registered),
        }
    salutation = {"GB": ("Mr", "Mrs", "Ms"), "US": ("Mr.", "Mrs.", "Ms."), "DE": ("Herr", "Frau", "Frau"),
                  "FR": ("M.", "Mme", "Mlle"), "ES": ("Sr.", "Sra.", "Srta.")}[p.country]
    return {
        "ContactId": rec.record_key,
        "Salutation": salutation[0] if p.sex == "M" else salutation[1 + (rng.random() < 0.3)],
        "FirstName": v.given, "LastName": v.family,
        "BirthDate": v.birth.strftime("%d.%m.%Y") if v.birth else None, "EMail": v.email, "Mobile": v.phone,
        "Street": street_with_number(a, v.street) if a else None, "ZIP": a.postcode if a else None,
        "City": a.city if a else None,
        "Country": banks.COUNTRY_NAMES[p.country][int(rng.random() * len(banks.COUNTRY_NAMES[p.country]))],
        "EcomId": extra.get("ecommerce_id"), "Segment": ("A", "B", "C", "D")[int(rng.random() * 4)],
        "Modified": clock.format(rec.as_of, "%d.%m.%Y", "{h:02d}:{m:02d}"),
    }
