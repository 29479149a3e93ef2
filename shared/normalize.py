"""Normalization of customer fields for identity resolution.

Built on field libraries (email-validator, phonenumbers, Unidecode, nicknames, nameparser) rather than
hand-written parsers. Every function takes raw source values and returns a comparable form, or None when the
value is missing, invalid or a placeholder (so a placeholder never links two customers).

`normalize_record` turns a CustomerRecord into a NormalizedRecord: a small frozen dataclass with plain strings,
cheap to compare in the matching hot path and to store as a JSON snapshot on the profile.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.phonenumberutil import _is_number_matching_desc  # the type test is_valid_number uses
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from nameparser import HumanName
from nicknames import NickNamer
from unidecode import unidecode

from shared.models import CustomerRecord

# --- Placeholders (blocked values) ------------------------------------------------------------------------

_BLOCKED_ANY = frozenset({
    "", "na", "n/a", "n.a.", "none", "null", "nil", "unknown", "unk", "-", "--", "-1", "0", "?", "x", "xx", "xxx",
    "test", "tbc", "tbd", "notprovided", "not provided", "noemail", "no email", "nophone", "anonymous", "undefined",
    "missing", "empty", "blank", "dummy", "default", "nan", "false", "true",
    # a spreadsheet's error values, exported as text
    "#n/a", "#value!", "#ref!", "#name?", "#null!", "#div/0!", "#num!",
})
_BLOCKED_EMAIL_LOCAL = frozenset({
    "test", "none", "noemail", "no-email", "no.email", "nomail", "noreply", "no-reply", "donotreply", "do-not-reply",
    "null", "na", "n/a", "unknown", "email", "example", "dummy", "fake", "abc", "asdf", "xxx", "x", "anonymous",
    "customer", "nobody", "noone", "no", "info",
})
_BLOCKED_EMAIL_DOMAINS = frozenset({
    "test.com", "none.com", "example.com", "example.org", "example.net", "email.com", "noemail.com", "nomail.com",
    "null.com", "domain.com", "test.test", "invalid", "unknown.com", "fake.com", "mailinator.com",
})
_BLOCKED_BIRTH_DATES = frozenset({"1900-01-01", "1901-01-01", "1970-01-01", "1899-12-31", "9999-12-31", "2000-01-01"})
_NON_DIGITS = re.compile(r"\D")
_ID_SEPARATORS = re.compile(r"[\s\-_.]")
# Every character but letters and digits (of any script): "#N/A", "(none)" and "None." are "na", "none", "none".
_ID_PUNCTUATION = re.compile(r"[\W_]+")
# The placeholders as an identifier is tested for one: without punctuation or spaces ("notprovided", "div0").
_BLOCKED_COMPACT = frozenset(_ID_PUNCTUATION.sub("", v) for v in _BLOCKED_ANY)
_SEQUENCES = ("0123456789", "1234567890", "9876543210")


def is_blocked_value(id_type: str, value: str | None) -> bool:
    """True for placeholders that must never identify a person (test@test.com, 0000000000, n/a, -1, ...)."""
    if value is None:
        return True
    return _is_blocked(id_type, str(value))


def _is_blocked(id_type: str, value: str) -> bool:
    # A few set lookups, not cached: a cache of every email and phone seen thrashed at 100k records.
    text = value.strip().lower()
    if text in _BLOCKED_ANY:
        return True
    if id_type == "email":
        local, at, domain = text.rpartition("@")  # a quoted user name may hold an "@" of its own
        return not at or local in _BLOCKED_EMAIL_LOCAL or domain in _BLOCKED_EMAIL_DOMAINS or not domain
    if id_type == "birth_date":
        return text in _BLOCKED_BIRTH_DATES
    if id_type == "phone":
        return _is_placeholder_phone(_digits_of(text))
    # Loyalty ids and custom identifiers, without punctuation: a placeholder ("#N/A", "(none)", "None."), one
    # repeated ("N/A N/A", "0000", "xxxx"), a run of digits; or nothing but punctuation.
    compact = _ID_PUNCTUATION.sub("", text)
    if compact in _BLOCKED_COMPACT or compact in _SEQUENCES:  # "" (only punctuation) too
        return True
    repeat = (compact + compact).find(compact, 1)  # the length of the shortest part it repeats
    return repeat == 1 or (repeat < len(compact) and compact[:repeat] in _BLOCKED_COMPACT)


def _digits_of(text: str) -> str:
    """The digits of a text. \\D is "not str.isdecimal()", so bare digits and E.164 numbers need no regex."""
    if text.isdecimal():
        return text
    if text[:1] == "+" and text[1:].isdecimal():
        return text[1:]
    return _NON_DIGITS.sub("", text)


def _is_placeholder_phone(digits: str) -> bool:
    national = digits[-10:] if len(digits) > 10 else digits
    return len(national) < 6 or national == national[0] * len(national) or national in _SEQUENCE_PARTS


# Every run of consecutive digits of the sequences: a phone number that is part of one is a placeholder.
_SEQUENCE_PARTS = frozenset(s[i:j] for s in _SEQUENCES for i in range(len(s)) for j in range(i + 1, len(s) + 1))


# --- Email ------------------------------------------------------------------------------------------------

_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# Providers that deliver "user+tag@" to "user@" (sub-addressing), so the tag does not identify a different person.
_PLUS_TAG_DOMAINS = _GMAIL_DOMAINS | frozenset({
    "outlook.com", "hotmail.com", "hotmail.co.uk", "live.com", "msn.com", "icloud.com", "me.com", "mac.com",
    "protonmail.com", "proton.me", "pm.me", "fastmail.com", "fastmail.fm", "yandex.com", "yandex.ru", "zoho.com",
})


# Plain ASCII addresses (nearly all of them) that email-validator accepts unchanged; anything else (quoted
# parts, Unicode, punycode, odd characters) goes through email-validator itself. This path is ~20x faster.
_SIMPLE_EMAIL = re.compile(
    r"^(?=.{1,254}$)(?=[^@]{1,64}@)[a-z0-9_+\-]+(?:\.[a-z0-9_+\-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)


# email-validator's special-use domains (local, test, invalid...) are single labels (a test checks it): an
# address is under one when its last label is one.
_SPECIAL_USE_TLDS = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def normalize_email(value: str | None, *, provider_rules: bool = True) -> str | None:
    """Validated (syntax only, no DNS), lower-cased email; with provider_rules gmail dots and +tags are removed.
    The address of "Ann Lee <ann@x.com>", "mailto:ann@x.com" or "ann@x.com (home)" is read."""
    if value is None:
        return None
    text = str(value)
    if not text.isascii():
        text = _fold_typed_unicode(text)
    text = _bare_address(text.strip().lower())
    if "@" not in text:
        return None
    return _normalize_email(text, provider_rules)


def _fold_typed_unicode(text: str) -> str:
    """Invisible characters pasted with an address or id (zero-width space, BOM, soft hyphen, direction marks:
    category Cf) dropped; full-width letters and digits typed with an IME folded ("ＡＮＮ@..." is ann@..., "Ｌ１００"
    L100); the Turkish capital İ made I, as lower() would make it i and a combining dot, another mailbox."""
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFKC", text).replace("\u0130", "I")


_MAILTO = "mailto:"
_TRAILING_COMMENT = re.compile(r"\s*\([^()]*\)$")  # "ann@x.com (home)": an RFC 5322 comment


def _bare_address(text: str) -> str:
    """The address of a display-name form ("ann lee <ann@x.com>"), without a trailing comment or mailto: prefix."""
    if text[-1:] == ")":
        text = _TRAILING_COMMENT.sub("", text)
    if text[-1:] == ">" and "<" in text:
        text = text[text.rindex("<") + 1:]
    text = text.strip("<>").strip()
    return text[len(_MAILTO):] if text.startswith(_MAILTO) else text


def _normalize_email(text: str, provider_rules: bool) -> str | None:
    local, _, domain = text.rpartition("@")
    simple = _SIMPLE_EMAIL.match(text) and "xn--" not in domain and domain.rpartition(".")[2] not in _SPECIAL_USE_TLDS
    if not simple:
        try:
            # A needlessly quoted local part ("ann"@x) is unquoted: RFC 5321 makes it the same mailbox as ann@x.
            result = validate_email(text, check_deliverability=False, allow_smtputf8=True, allow_quoted_local=True)
        except EmailNotValidError:
            return None
        local, domain = result.local_part.lower(), result.domain.lower()
    if provider_rules:
        if domain in _PLUS_TAG_DOMAINS:
            local = local.split("+", 1)[0]
        if domain in _GMAIL_DOMAINS:
            local, domain = local.replace(".", ""), "gmail.com"
    if not local:
        return None
    return f"{local}@{domain}"


# --- Phone ------------------------------------------------------------------------------------------------

def fold_country(value: Any) -> str:
    """A country as the country table holds it: ASCII, lower-case, words of letters and digits, without a leading
    "the" ("U.S.A." -> "usa", "Bosnia & Herzegovina" -> "bosnia and herzegovina", "The Gambia" -> "gambia")."""
    text = unidecode(str(value)).lower().replace(".", "").replace("'", "").replace("&", " and ")
    text = " ".join(_NON_ALNUM.sub(" ", text).split())
    if text.startswith("the "):
        text = text[4:]
    return "saint" + text[2:] if text.startswith("st ") else text  # St Lucia, St. Kitts and Nevis


def _country_codes() -> dict[str, str]:
    """Folded country code or name -> ISO alpha-2: every alpha-2, alpha-3 and numeric code and the names in
    shared/countries.json (English and the languages phonenumbers names countries in; generated from pycountry and
    phonenumbers' geodata), and the names people use for parts of a country."""
    data = json.loads(Path(__file__).with_name("countries.json").read_text(encoding="utf-8"))
    codes = {}
    for region, names in data["regions"].items():
        codes[region.lower()] = region
        codes.update(dict.fromkeys(names, region))
    return codes | _COUNTRY_ALIASES


_COUNTRY_ALIASES = {
    "uk": "GB", "england": "GB", "scotland": "GB", "wales": "GB", "northern ireland": "GB", "great britain": "GB",
    "britain": "GB", "england and wales": "GB", "great britain and northern ireland": "GB", "america": "US",
    "holland": "NL", "republic of ireland": "IE", "irish republic": "IE", "uae": "AE", "emirates": "AE",
    "ksa": "SA", "ivory coast": "CI", "burma": "MM", "east timor": "TL", "kosovo": "XK", "macau": "MO",
    "dr congo": "CD", "drc": "CD", "vatican city": "VA", "antigua": "AG", "cesko": "CZ", "slovensko": "SK",
    "hellas": "GR", "nippon": "JP",
}
_COUNTRY_CODES = _country_codes()
_REGIONS = frozenset(_COUNTRY_CODES.values())


@lru_cache(maxsize=512)
def region_code(country: str | None) -> str | None:
    """ISO 3166 alpha-2 code for a country code (alpha-2, alpha-3, numeric) or name (None if unknown)."""
    if not country:
        return None
    text = str(country).strip().lower()
    if text in _BLOCKED_ANY and len(text) != 2:  # "n.a." is no country; "NA" is Namibia
        return None
    return _COUNTRY_CODES.get(fold_country(text))


def normalize_phone(value: str | None, region: str | None = None) -> str | None:
    """E.164 phone number (phonenumbers), None when it cannot be parsed, is invalid or is a placeholder."""
    return _phone(value, region) or None


def is_placeholder_phone(value: str | None, region: str | None = None) -> bool:
    """True when normalize_phone leaves the value out as a placeholder (0000000000, fewer than 6 digits,
    "+34 666 666 666"), not because it is no valid phone number."""
    return _phone(value, region) == ""


def _phone(value: str | None, region: str | None) -> str | None:
    """The E.164 number, "" for a placeholder, None when the value is no valid phone number."""
    if value is None:
        return None
    text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()
    if not text:
        return None
    # Formatting (spaces, dashes, brackets) does not change the number: cache on the bare digits.
    bare = _PHONE_FORMATTING.sub("", text)
    # is_blocked_value("phone", text) read off bare: its placeholder words all have fewer digits than a phone
    # number, so the digits alone decide, and they are the same in bare as in text.
    if _is_placeholder_phone(_digits_of(bare)):
        return ""
    region = region_code(region) if region else None  # "UK" is GB to phonenumbers too
    if bare[:2] == "+0":  # no calling code starts with 0: an international prefix after the "+" ("+0044", "+011 33")
        text = bare = _PLUS_AND_PREFIX.sub("+", bare)
    if text.startswith("00"):  # then bare starts with the same "00"
        # The region's own international prefix first (Australia's is 0011), then "00" as most countries'.
        found = _parse_phone(bare, region) if region and _is_bare_number(bare) else None
        if found:
            return found
        text, bare = "+" + text[2:], "+" + bare[2:]
    if _is_bare_number(bare):
        # An international number parses the same whatever the default region: one cache entry for all regions.
        return _parse_phone(bare, None if bare[:1] == "+" else region)
    return _parse_phone(text, region)


def _is_bare_number(bare: str) -> bool:
    return bare.isdigit() or (bare[:1] == "+" and bare[1:].isdigit())


_PHONE_FORMATTING = re.compile(r"[\s\-().\u00a0/]")
# Australia's 0011 before the common 00 ("+0011 44" is +44, not +11 44), then North America's 011.
_PLUS_AND_PREFIX = re.compile(r"^\+(?:0011|00|011)")


# Keep the compiled metadata patterns: is_valid_number tries up to ten per number, which otherwise go through
# the re module's small shared cache (same patterns, same results; ~10% of the phone time).
phonenumbers.enable_pattern_cache()


@lru_cache(maxsize=65536)
def _parse_phone(text: str, region: str | None) -> str | None:
    """As _phone: E.164, "" for a placeholder, None for no valid number."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    # The national number too: "+34 666 666 666" is as much a placeholder as "666 666 666".
    if _is_placeholder_phone(str(number.national_number)):
        return ""
    if not _is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return "" if is_blocked_value("phone", e164) else e164


def _is_valid_number(number: phonenumbers.PhoneNumber) -> bool:
    """phonenumbers.is_valid_number, sooner for a number of a shared calling code's main region (GB of +44, US of
    +1): is_valid_number first finds the number's region by validating it against each region in turn, then
    validates it again for the region found. When the first region has no leading-digits rule, a number valid
    for it is the one that search returns, so one validation decides (tests pin the two together). A calling code
    of one region is validated for it, as is_valid_number does; both through _valid_for_region."""
    main_region = _MAIN_REGIONS.get(number.country_code)
    if main_region is not None and _valid_for_region(number, main_region):
        return True
    only_region = _ONLY_REGIONS.get(number.country_code)
    if only_region is not None:
        return _valid_for_region(number, only_region)
    return phonenumbers.is_valid_number(number)


# The number types after fixed line and mobile, in phonenumbers' order.
_RARER_NUMBER_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
                       "voicemail")


def _valid_for_region(number: phonenumbers.PhoneNumber, region: str) -> bool:
    """phonenumbers.is_valid_number_for_region for a region of the number's calling code: a number is valid when it
    is of some type of the region. phonenumbers tests the rare types first and fixed line and mobile last; this
    tests those first (ten patterns tried for a mobile number, two now), with the same answer."""
    metadata = PhoneMetadata.metadata_for_region(region)
    nsn = phonenumbers.national_significant_number(number)
    if not _is_number_matching_desc(nsn, metadata.general_desc):
        return False
    if _is_number_matching_desc(nsn, metadata.fixed_line):
        return True
    if not metadata.same_mobile_and_fixed_line_pattern and _is_number_matching_desc(nsn, metadata.mobile):
        return True
    return any(_is_number_matching_desc(nsn, getattr(metadata, kind)) for kind in _RARER_NUMBER_TYPES)


def _main_regions() -> dict[int, str]:
    """The first region of each calling code several regions share, when region_code_for_number validates a number
    against it before any other (it has no leading-digits rule)."""
    main = {}
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        metadata = PhoneMetadata.metadata_for_region(regions[0]) if len(regions) > 1 else None
        if metadata is not None and metadata.leading_digits is None:
            main[code] = regions[0]
    return main


def _only_regions() -> dict[int, str]:
    """The region of each calling code no other region shares (not the non-geographic 001), as is_valid_number
    validates a number of that code against it."""
    only = {}
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        metadata = PhoneMetadata.metadata_for_region(regions[0]) if len(regions) == 1 else None
        if metadata is not None and metadata.country_code == code:
            only[code] = regions[0]
    return only


_MAIN_REGIONS = _main_regions()
_ONLY_REGIONS = _only_regions()


# --- Identifiers ------------------------------------------------------------------------------------------

def normalize_loyalty_id(value: Any) -> str | None:
    """Upper-cased loyalty id without spaces or dashes, full-width and invisible characters folded as an email's;
    None for placeholders."""
    if value is None:
        return None
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():  # spreadsheets turn 123 into 123.0
        text = str(int(value))
    if not text.isascii():
        text = _fold_typed_unicode(text)
    text = _ID_SEPARATORS.sub("", text).upper()
    if not text or is_blocked_value("loyalty_id", text):
        return None
    return text


# The engine's own identifier types: a record's "source:<source>|<key>" and a device's "anonymous_id:<id>"
# (shared/events/devices.py). A custom identifier of one of them would claim another record's or device's id. Nor is
# a record's own matching field one (a producer sending {"birth_date": ...} as an identifier would link everyone
# born that day by rule): those are compared by score, from the record's fields.
RESERVED_IDENTIFIER_TYPES = frozenset({"source", "anonymous_id"}
                                      | set(CustomerRecord.model_fields) - {"email", "phone", "loyalty_id"})


def normalize_identifier(id_type: str, value: Any, *, email_provider_rules: bool = True) -> str | None:
    """A custom identifier (crm guid, account number...) without spaces, Unicode folded as an email is (full-width
    characters, invisible ones dropped), its case kept (Salesforce ids 0035g00000AbCdE and 0035g00000aBcDe are two
    contacts); None for a placeholder. id_type is the type as kept (trimmed, lower-case): one typed email, phone or
    loyalty_id is normalized as that field is (a phone, without a region, in international form only); one of the
    engine's own types is left out as a placeholder is. email_provider_rules: as normalize_record's."""
    if value is None or is_reserved_identifier_type(id_type):
        return None
    if id_type == "email":
        return _record_email(value, email_provider_rules)[0]
    if id_type == "phone":
        return normalize_phone(value)
    if id_type == "loyalty_id":
        return normalize_loyalty_id(value)
    text = str(value)
    if not text.isascii():
        text = _fold_typed_unicode(text)
    text = _SPACES.sub("", text)
    if not text or is_blocked_value(id_type, text):
        return None
    return text


def is_reserved_identifier_type(id_type: str) -> bool:
    """True for a type whose ids could be the engine's own: "source", or "source:pos" ("source:pos:1" is a key)."""
    return id_type.partition(":")[0] in RESERVED_IDENTIFIER_TYPES


# --- Names ------------------------------------------------------------------------------------------------

# A name, address, city, country or postcode is matched on its first 128 characters: nothing longer is a person's
# (a mis-mapped column), and it keeps the match snapshot a profile stores per record bounded
# (shared/identity/bounds.py; folding can make a text longer than it came).
MAX_TEXT_CHARS = 128

_NON_ALNUM = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")
_BLOCKED_NAMES = frozenset({"unknown", "none", "null", "test", "anonymous", "customer", "undefined", "n a", "xxx",
                            "tbc", "guest"})
# Every placeholder of any field, as fold_name leaves it ("Not Provided" -> "not provided"), but real names: the
# surnames Na, Blank and Nan (南), the given names Nan and Nil, and the initial X. A spreadsheet's NaN is a float,
# left out by fold_name as such (ingestion reads it as no value already).
_BLOCKED_NAMES |= {_SPACES.sub(" ", _NON_ALNUM.sub(" ", v)).strip() for v in _BLOCKED_ANY} - {
    "", "na", "blank", "nan", "nil", "x"}
_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "rev", "herr", "frau", "sr", "sra",
                     "mme", "mlle"})
# Only after a name: "Rahman MD" is a doctor, "Md Rahman" a Mohammed (as Bangladeshi names abbreviate it).
_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"})


@lru_cache(maxsize=65536)
def fold_name(value: Any) -> str | None:
    """ASCII-folded, lower-case name: 'José  O'Brien-Smith' -> 'jose obrien smith'. None if nothing is left."""
    if value is None or (isinstance(value, float) and value != value):  # a spreadsheet's NaN
        return None
    text = str(value)
    if not text.isascii():
        text = _fold_unicode(text)
    text = text.lower().replace("'", "").replace("`", "")
    text = _SPACES.sub(" ", _NON_NAME_CHARS.sub(" ", text)).strip()
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS].rstrip()
    if not text or text in _BLOCKED_NAMES:
        return None
    return text


# Accents typed as apostrophes (O´Brien): NFKC makes them a space and a combining mark, so they go first.
_APOSTROPHE_LIKE = str.maketrans({"\u00b4": "'", "\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u02bb": "'",
                                  "\u02b9": "'", "\u02ca": "'", "\u0060": "'"})
# Han ideographs: unidecode reads them as pinyin without tones, so 张伟, 章伟 and 张薇 would all be "zhang wei".
_HAN_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_HAN = re.compile(f"([{_HAN_RANGES}]+)")
_NON_NAME_CHARS = re.compile(f"[^a-z0-9 {_HAN_RANGES}]+")


def _fold_unicode(text: str) -> str:
    """ASCII letters for Latin (and other alphabetic) scripts; Han kept as it is, after NFKC and case folding.
    Zero-width and other format characters (category Cf, pasted from web forms) are dropped, not made spaces."""
    text = "".join(ch for ch in text.translate(_APOSTROPHE_LIKE) if unicodedata.category(ch) != "Cf")
    text = unicodedata.normalize("NFKC", text).casefold()
    if not _HAN.search(text):
        return unidecode(text)
    return "".join(part if index % 2 else unidecode(part) for index, part in enumerate(_HAN.split(text)))


@lru_cache(maxsize=65536)
def _strip_titles(folded: str | None) -> str | None:
    if not folded:
        return None
    kept: list[str] = []
    for token in folded.split(" "):
        if token not in _TITLES and not (kept and token in _SUFFIXES):  # a suffix follows a name
            kept.append(token)
    return " ".join(kept) or None


# The generation a suffix after a name gives ("Robert Jackson Jr."): II is a Jr, the second of the name. Only the
# short forms: Senior and Junior are family names (Ann Senior) and given names too.
_GENERATIONS = {"jr": "jr", "jnr": "jr", "ii": "jr", "sr": "sr", "snr": "sr", "iii": "iii", "iv": "iv"}


@lru_cache(maxsize=65536)
def _generation_of(folded: str | None) -> str | None:
    """The generation of a folded name that ends in one, after at least one name ("jackson jr"); else None."""
    if not folded or " " not in folded:
        return None
    return next((_GENERATIONS[t] for t in folded.split(" ")[1:] if t in _GENERATIONS), None)


_NICKNAMER: NickNamer | None = None

# Links in the nicknames data between two names of different people (often a man's and a woman's name, or a
# name of its own such as Ian, the Scottish John): a family email or phone must not join them.
_NOT_NICKNAMES = (
    ("andrea", "andrew"), ("louis", "louise"), ("patrick", "peter"), ("emily", "emma"),
    ("alexandria", "alexander"), ("garrett", "jerry"), ("john", "ian"),
)


# Short forms the nicknames data (English names) does not know, of Spanish, Portuguese, Italian, German and Dutch
# names: Pepe is José to a retailer in Madrid as Bob is Robert in Leeds (a labelled Spanish set missed 47 pairs of
# Pepe / José alone). Only forms that stand for one name of one sex.
_MORE_NICKNAMES = {
    "jose": ("pepe", "pepito", "ze", "zeca"), "francisco": ("paco", "pancho", "curro", "quico", "chico"),
    "jesus": ("chuy", "chucho"), "antonio": ("tono",), "ignacio": ("nacho",), "dolores": ("lola",), "pilar": ("pili",),
    "concepcion": ("concha", "conchita"), "guadalupe": ("lupe", "lupita"), "manuel": ("manolo", "manel"),
    "enrique": ("quique",), "rosario": ("charo",), "mercedes": ("merche",), "rafael": ("rafa",),
    "fernando": ("nando",), "eduardo": ("lalo",), "guillermo": ("memo",),
    "giuseppe": ("beppe", "peppe", "pino"), "giovanni": ("gianni",), "salvatore": ("toto",), "vincenzo": ("enzo",),
    "johannes": ("hans", "hannes"), "friedrich": ("fritz",), "heinrich": ("heinz",), "margarete": ("grete",),
    "cornelis": ("kees",), "hendrik": ("henk",), "wilhelmus": ("wim",), "jacobus": ("koos", "jaap"),
    "petrus": ("piet",),
}


def _nicknamer() -> NickNamer:
    global _NICKNAMER
    if _NICKNAMER is None:
        lookup = NickNamer.default_lookup()
        for formal, nickname in _NOT_NICKNAMES:
            lookup.get(formal, set()).discard(nickname)
        for formal, nicknames in _MORE_NICKNAMES.items():
            lookup.setdefault(formal, set()).update(nicknames)
        _NICKNAMER = NickNamer(nickname_lookup=lookup)
    return _NICKNAMER


@lru_cache(maxsize=65536)
def canonical_given_name(value: Any) -> str | None:
    """One canonical form per nickname family: bob, bobby, robert -> 'robert'; liz -> 'elizabeth'.

    Of the compound "mary jane" only the first word counts. See `_canonical_of` for the choice.
    """
    folded = _strip_titles(fold_name(value))
    if not folded:
        return None
    return _canonical_of(folded.split(" ", 1)[0])


@lru_cache(maxsize=16384)
def _canonical_of(first: str) -> str:
    """The hub of the name's family (the formal name with most nicknames), or the name itself when ambiguous.

    The nicknames data is many-to-many: "ann" is listed under anna and under christiana, "chris" under
    christopher and christiana. Picking the hub among all of them made Ann and Chris one name. So the hub is
    the canonical only when the name's other formal names are of the hub's family (they share nicknames with
    it: margaretta, margaret) or are minor (at most half the hub's nicknames); else the name stands for itself.
    """
    namer = _nicknamer()
    formals = namer.canonicals_of(first)
    if not formals:
        return first
    hub = min(formals | {first}, key=lambda name: (-len(namer.nicknames_of(name)), -len(name), name))
    if hub == first:
        return first
    family, others = {hub}, set(formals) - {hub}
    grown = True
    while grown:
        joined = {name for name in others if any(_same_family(name, member) for member in family)}
        family |= joined
        others -= joined
        grown = bool(joined)
    hub_size = len(namer.nicknames_of(hub))
    return hub if all(2 * len(namer.nicknames_of(name)) <= hub_size for name in others) else first


def _same_family(a: str, b: str) -> bool:
    namer = _nicknamer()
    nicks_a, nicks_b = namer.nicknames_of(a), namer.nicknames_of(b)
    return a in nicks_b or b in nicks_a or len(nicks_a & nicks_b) >= 2


@lru_cache(maxsize=16384)
def nickname_forms(canonical: str) -> tuple[str, ...]:
    """The nicknames of a canonical given name (robert -> bob, bobby, rob...), for comparing a typo of one."""
    return tuple(sorted(_nicknamer().nicknames_of(canonical)))


@lru_cache(maxsize=16384)
def formal_names_of(nickname: str) -> tuple[str, ...]:
    """The formal names a nickname is listed under (ricky -> richard, frederick, ...); () for a formal name or a
    string the nicknames data does not know."""
    return tuple(sorted(_nicknamer().canonicals_of(nickname)))


@lru_cache(maxsize=16384)
def is_known_given_name(name: str) -> bool:
    """True when the nicknames data lists the name, as a formal name or as a nickname."""
    namer = _nicknamer()
    return bool(namer.nicknames_of(name) or namer.canonicals_of(name))


def compound_names_differ(a: str, b: str) -> bool:
    """True for two compound given names whose later words differ: Jean-Pierre and Jean-Luc are brothers.
    An initial is not another word ("mary j" / "mary jane")."""
    if " " not in a or " " not in b:
        return False
    rest_a, rest_b = a.split(" ", 1)[1], b.split(" ", 1)[1]
    return not (rest_a.startswith(rest_b) or rest_b.startswith(rest_a))


def are_nicknames(a: str, b: str) -> bool:
    """True when one given name is a known nickname of the other, or both are short forms of one name. Not cached:
    its one caller in matching (_given_level) is, so every call here is a new pair (at 102k records, 0 hits in
    38,984 calls)."""
    if not a or not b or compound_names_differ(a, b):
        return False
    first_a, first_b = a.split(" ", 1)[0], b.split(" ", 1)[0]
    formal_a, formal_b = formal_names_of(first_a), formal_names_of(first_b)  # cached: names recur in many pairs
    if first_a == first_b or first_a in formal_b or first_b in formal_a:  # bob -> robert
        return True
    if _canonical_of(first_a) == _canonical_of(first_b):  # bobby, bob -> robert
        return True
    # A shared formal name alone is not enough (ann and chris are both listed under christiana, ian and jack
    # under john): both must be short forms of it, their letters in its order (liz, beth -> elizabeth).
    return any(len(name) > max(len(first_a), len(first_b)) and _letters_in_order(first_a, name)
               and _letters_in_order(first_b, name) for name in formal_a if name in formal_b)


def _letters_in_order(short: str, name: str) -> bool:
    rest = iter(name)
    return all(ch in rest for ch in short)


def split_full_name(full_name: str | None) -> tuple[str | None, str | None]:
    """(given, family) from a full name, with titles/suffixes and 'Family, Given' order handled by nameparser."""
    if not full_name or not str(full_name).strip():
        return None, None
    text = str(full_name).strip()
    han = _split_han_name(text) if not text.isascii() else None
    if han:
        return han
    tokens = text.split()
    # "Ann Lee" and "Lee, Ann" (most names) need no parser; nameparser (~150 us) handles titles, suffixes,
    # particles such as "de la Cruz", and words it reads specially in the "Family, Given" form.
    if len(tokens) == 2 and "," not in text and "." not in text and not (
            {t.lower() for t in tokens} & (_TITLES | _SUFFIXES | _NAME_PARTICLES)):
        return tokens[0], tokens[1]
    if text.count(",") == 1 and "." not in text:
        family, given = (part.strip() for part in text.split(","))
        # "Rahman, Md": alone as the given part, Md is the name (Mohammed), where nameparser reads a suffix.
        if (family and given and len(family.split()) == 1 and len(given.split()) == 1
                and not {family.lower(), given.lower()} & (_parser_words() - {"md"})):
            return given, family
    return _parse_full_name(text)


# A Chinese or Japanese name in Han characters, the family name first: "张伟", "山田太郎", "张 伟", "山田　太郎".
_HAN_FULL_NAME = re.compile(f"([{_HAN_RANGES}]{{2,}})|([{_HAN_RANGES}]+)\\s+([{_HAN_RANGES}]+)")
# Chinese two-character family names (simplified and traditional): 欧阳娜娜 is Ouyang Nana, not Ou Yangnana.
_COMPOUND_HAN_SURNAMES = frozenset(
    "欧阳 歐陽 司马 司馬 上官 诸葛 諸葛 东方 東方 皇甫 尉迟 尉遲 公孙 公孫 慕容 长孙 長孫 宇文 司徒 夏侯 轩辕 軒轅 令狐 端木 "
    "西门 西門 南宫 南宮 独孤 獨孤 申屠 澹台 澹臺 呼延 万俟 萬俟 闻人 聞人 太史 公冶 赫连 赫連 钟离 鍾離".split())


def _split_han_name(text: str) -> tuple[str, str] | None:
    """(given, family) of a Han full name, None for any other name. Written without a space, the family name is
    the first character, or two: a compound family name (欧阳), or of a four-character name (山田太郎, Japanese
    names are mostly two and two; 陈方安生 a married woman's two family names)."""
    found = _HAN_FULL_NAME.fullmatch(text)
    if not found:
        return None
    whole, family, given = found.groups()
    if family:
        return given, family
    size = 2 if whole[:2] in _COMPOUND_HAN_SURNAMES or len(whole) == 4 else 1
    return whole[size:], whole[:size]


_NAME_PARTICLES = frozenset({"de", "da", "del", "della", "di", "du", "van", "von", "der", "den", "la", "le", "bin", "ibn", "al", "st"})


@lru_cache(maxsize=1)
def _parser_words() -> frozenset[str]:
    """Words nameparser gives a role of their own (titles, suffixes, particles, conjunctions)."""
    from nameparser.config import CONSTANTS

    return frozenset().union(CONSTANTS.titles, CONSTANTS.first_name_titles, CONSTANTS.suffix_acronyms,
                             CONSTANTS.suffix_not_acronyms, CONSTANTS.prefixes, CONSTANTS.conjunctions,
                             _TITLES, _SUFFIXES, _NAME_PARTICLES)


@lru_cache(maxsize=16384)
def _parse_full_name(text: str) -> tuple[str | None, str | None]:
    parsed = HumanName(text)
    return (parsed.first or None), (parsed.last or None)


# --- Addresses --------------------------------------------------------------------------------------------

# USPS street suffixes and UK/IE road types plus directionals, folded to one short form.
_ADDRESS_ABBREVIATIONS = {
    "street": "st", "str": "st", "strasse": "st", "avenue": "ave", "av": "ave", "avn": "ave", "road": "rd",
    "boulevard": "blvd", "blv": "blvd", "drive": "dr", "drv": "dr", "lane": "ln", "court": "ct", "crt": "ct",
    "place": "pl", "plaza": "plz", "square": "sq", "terrace": "ter", "terr": "ter", "parkway": "pkwy",
    "highway": "hwy", "circle": "cir", "crescent": "cres", "cresc": "cres", "close": "cl", "grove": "gr",
    "gardens": "gdns", "garden": "gdn", "way": "way", "mews": "mews", "row": "row", "hill": "hl", "park": "pk",
    "trail": "trl", "turnpike": "tpke", "expressway": "expy", "freeway": "fwy", "alley": "aly", "walk": "wlk",
    "green": "grn", "view": "vw", "heights": "hts", "mount": "mt", "point": "pt",
    "north": "n", "south": "s", "east": "e", "west": "w", "northeast": "ne", "northwest": "nw",
    "southeast": "se", "southwest": "sw", "saint": "st",
}
_DIRECTIONS = frozenset({"north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest"})
_STREET_TYPE_WORDS = frozenset(set(_ADDRESS_ABBREVIATIONS) | set(_ADDRESS_ABBREVIATIONS.values())) - _DIRECTIONS - {"n", "s", "e", "w", "ne", "nw", "se", "sw"}
# Words that mark a flat, floor or room by the number after them, and the one form each is written as.
_UNIT_WORDS = {"apartment": "unit", "apt": "unit", "unit": "unit", "flat": "unit", "suite": "unit", "ste": "unit",
               "room": "room", "rm": "room", "fl": "floor", "floor": "floor"}
_HOUSE_NUMBER_WORDS = frozenset({"no", "number", "num", "nr"})  # "No. 12 High Street": the house number
_ORDINAL_WORDS = {"first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th"}
_LEADING_NUMBER = re.compile(r"^(\d+[a-z]?)\b")
_HOUSE_NUMBER = re.compile(r"\d+[a-z]?")


def _address_tokens(text: str) -> list[str]:
    folded = unidecode(unicodedata.normalize("NFKC", text)).lower().replace("#", " unit ")
    if "/" in folded:
        folded = _UNIT_SLASH_HOUSE.sub(r"unit \1 \2", folded)
    folded = _SPACE_BEFORE_HOUSE_LETTER.sub("", folded)
    folded = _SPACES.sub(" ", _NON_ALNUM.sub(" ", folded.replace("'", ""))).strip()
    tokens: list[str] = []
    # Units go at the end, wherever they were written: "Flat 4, 12 High St" is "12 High St, Flat 4".
    units: list[tuple[str, str]] = []
    words = folded.split(" ") if folded else []
    i = 0
    while i < len(words):
        word = words[i]
        following = words[i + 1] if i + 1 < len(words) else ""
        if following in _FLOOR_WORDS and (level := _floor_level(word)):  # "1st Floor", "Ground Floor": floor 1, 0
            units.append(("floor", level))
            i += 2
            if i < len(words) and _UNIT_WORDS.get(words[i]) == "unit" and not _flat_number_follows(words, i + 1):
                i += 1  # "First Floor Flat, 10 High St": that floor's flat; the number after it is the house's
            continue
        if word in _UNIT_WORDS or word in _HOUSE_NUMBER_WORDS:
            # A word without a number after it is part of a name: "12 Flat Rock Road", "Suite Lane".
            skip = following in _HOUSE_NUMBER_WORDS or following == "unit"  # "Flat No. 4", "Flat #4"
            number_at = i + 2 if skip else i + 1
            number = words[number_at] if number_at < len(words) else ""
            lettered = len(number) == 1 and number.isalpha() and word in _UNIT_WORDS  # "Flat A, 12 High St"
            if lettered or any(ch.isdigit() for ch in number):
                if word in _UNIT_WORDS:  # "Apt 4", "Flat 2B", "Suite 300" -> "unit 4"; "Floor 4" -> "floor 4"
                    units.append((_UNIT_WORDS[word], number))
                else:
                    tokens.append(number)
                i = number_at + 1
                continue
        # "Park Road" keeps "park": a street-type word is only shortened where it is the type, not the name.
        if word in _ADDRESS_ABBREVIATIONS and not (following in _STREET_TYPE_WORDS and word in _STREET_TYPE_WORDS):
            word = _ADDRESS_ABBREVIATIONS[word]
        tokens.append(_ORDINAL_WORDS.get(word, word))
        i += 1
    return tokens + [part for unit in sorted(units) for part in unit]  # "Flat 4, 1st Floor" is "1st Floor, Flat 4"


# "2/10 High St" (Australia, New Zealand): flat 2 of house 10, as "Unit 2, 10 High St".
_UNIT_SLASH_HOUSE = re.compile(r"^\s*(\d+[a-z]?)\s*/\s*(\d+[a-z]?)\b")
_FLOOR_WORDS = frozenset({"floor", "fl"})
_FLOOR_LEVELS = {"ground": "0", "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5"}
_ORDINAL_NUMBER = re.compile(r"(\d+)(?:st|nd|rd|th)")
# A house or flat letter written apart from its number: "10 B High St" is "10B High St". Not a direction (10 N Main
# St: north), nor r (rue), nor a letter with a dot after it (an abbreviation: "241 r. de la Paix").
_SPACE_BEFORE_HOUSE_LETTER = re.compile(r"(?<=\d)(?: +|-)(?=[a-df-mo-qt-vx-z]\b(?!\.))")  # and "12-A" (Dutch)


def _floor_level(word: str) -> str | None:
    """The floor an ordinal names: "1st" and "first" -> "1", "ground" -> "0"."""
    if word in _FLOOR_LEVELS:
        return _FLOOR_LEVELS[word]
    found = _ORDINAL_NUMBER.fullmatch(word)
    return found.group(1) if found else None


def _flat_number_follows(words: list[str], at: int) -> bool:
    """True when words[at] is a flat's number: one the house's number ("Flat 2, 10 High St") or nothing follows
    ("10 High St, 1st Floor, Flat 4"), not one a street name follows ("Flat, 10 High St")."""
    if at >= len(words) or not words[at][:1].isdigit():
        return False
    return at + 1 == len(words) or words[at + 1][:1].isdigit()


def normalize_address(line1: Any, line2: Any = None, street_number: Any = None) -> str | None:
    """'12 High Street, Apt 4' -> '12 high st unit 4': folded, abbreviations unified, unit numbers marked."""
    return _address_fields(line1, line2, street_number)[0]


@lru_cache(maxsize=65536, typed=True)  # one household's address comes from several sources
def _address_fields(line1: Any, line2: Any, street_number: Any) -> tuple[str | None, str | None]:
    """(normalized address, street number): the street number given, else the one the address starts with."""
    number = _clean_street_number(street_number)
    address = _address_text(line1, line2, number)
    return address, number or street_number_of(address)


def _address_text(line1: Any, line2: Any, number: str | None) -> str | None:
    parts = [str(p) for p in (line1, line2) if p is not None and str(p).strip()]
    if not parts:
        return None
    raw = " ".join(parts)
    if raw.strip().lower() in _BLOCKED_ANY:  # before folding turns "n/a" into "n a"
        return None
    tokens = _address_tokens(raw)
    if number and (not tokens or tokens[0] != number):
        tokens.insert(0, number)
    text = " ".join(tokens)[:MAX_TEXT_CHARS].rstrip()
    return None if not text or text in _BLOCKED_ANY else text


_NON_ALNUM_ANY_CASE = re.compile(r"[^0-9A-Za-z]")
_ALL_ZEROS = re.compile(r"0+")


def _clean_street_number(value: Any) -> str | None:
    """"10" of "10", 10.0 and "10.0" (a spreadsheet's), "No. 10"; "10b" of "10 B"."""
    if value is None:
        return None
    text = str(value)
    if text.isdecimal() and text.isascii():  # most are: no spreadsheet's ".0", no "No."
        return text[:MAX_TEXT_CHARS]
    words = _NON_ALNUM.sub(" ", _DECIMAL_ZEROS.sub("", unidecode(text).lower())).split()
    while words and words[0] in _HOUSE_NUMBER_WORDS:
        del words[0]
    return "".join(words)[:MAX_TEXT_CHARS] or None


_DECIMAL_ZEROS = re.compile(r"(?<=\d)\.0+$")


def street_number_of(address: str | None) -> str | None:
    """The house number at the start of a normalized address, if any."""
    if not address:
        return None
    found = _LEADING_NUMBER.match(address)
    if found:
        return found.group(1)
    # Else the number after the street, as most of Europe writes it ("hauptstrasse 12", "calle mayor 37 2 izq"),
    # not a flat's or floor's (moved to the end: "rose court unit 3").
    words = address.split(" ")
    return next((w for prev, w in zip(words, words[1:])
                 if _HOUSE_NUMBER.fullmatch(w) and prev not in ("unit", "floor")), None)


@lru_cache(maxsize=65536, typed=True)  # neighbours and a person's records share postcodes
def normalize_postcode(value: Any, country: str | None = None) -> str | None:
    """Postcode without spaces, upper-case; US ZIP+4 cut to 5 digits; leading zeros lost by spreadsheets restored."""
    if value is None:
        return None
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    prefixed = _COUNTRY_PREFIXED_POSTCODE.fullmatch(text)
    if prefixed and prefixed[1].upper() in _POSTCODE_COUNTRY_PREFIXES:  # "D-10115", "CH-8001": the number alone
        text = prefixed[2]
    text = _NON_ALNUM_ANY_CASE.sub("", unidecode(text)).upper()
    if not text or text.lower() in _BLOCKED_ANY or _ALL_ZEROS.fullmatch(text):
        return None
    region = region_code(country)
    if region == "US" and text.isdigit():
        text = text[:5].zfill(5) if len(text) in (3, 4, 5, 9) else text
    elif region in ("DE", "FR", "ES", "IT") and text.isdigit() and len(text) == 4:
        text = text.zfill(5)
    return text[:MAX_TEXT_CHARS]


# A numeric postcode after its country's letters and a dash, as European addresses were long written and CRM exports
# still hold them (D-10115 Berlin, F-75001, CH-8001, A-1010, NL-1012 AB): the vehicle or ISO code of the country.
# The number may come in two groups: S-114 55, CZ-110 00, GR-104 31, PT-1100-053.
_COUNTRY_PREFIXED_POSTCODE = re.compile(
    r"([A-Za-z]{1,3})\s*[-\u2013]\s*((?:\d{4,5}(?:[\s-]?\d{3})?|\d{3}[\s-]?\d{2})(?:\s?[A-Za-z]{2})?)")
_POSTCODE_COUNTRY_PREFIXES = frozenset(
    "A AT B BE BG CH CY CZ D DE DK E EE ES EST F FI FIN FL FR GR H HR HU I IT L LI LT LU LV M MC MT N NL NO P PL PT RO "
    "S SE SI SK SLO".split())


def normalize_city(value: Any) -> str | None:
    folded = fold_name(value)
    return _city_of_folded(folded) if folded else None


@lru_cache(maxsize=4096)  # a few hundred cities, each on thousands of records
def _city_of_folded(folded: str) -> str:
    return " ".join(_ADDRESS_ABBREVIATIONS.get(t, t) if t in ("saint", "mount", "north", "south", "east", "west") else t
                    for t in folded.split(" "))


def normalize_birth_date(value: Any) -> str | None:
    """ISO date string, None for missing, impossible or placeholder dates (1900-01-01, 1970-01-01...)."""
    iso = _birth_date_iso(value) if value is not None else None
    # A date up to the day this module was loaded cannot be in the future: no clock read for those.
    return iso if iso is None or iso <= _DAY_AT_IMPORT or iso <= date.today().isoformat() else None


_DAY_AT_IMPORT = date.today().isoformat()  # compared as text with ISO dates (4-digit years from 1900)


@lru_cache(maxsize=65536, typed=True)  # few distinct dates: many people share one
def _birth_date_iso(value: Any) -> str | None:
    """The ISO date of a raw value, None when unreadable, before 1900 or a placeholder (not yet in the future)."""
    if isinstance(value, date):
        iso = value.isoformat()[:10]
    else:
        try:
            iso = date.fromisoformat(str(value).strip()[:10]).isoformat()
        except ValueError:
            return None
    return None if int(iso[:4]) < 1900 or is_blocked_value("birth_date", iso) else iso


# --- Records ----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NormalizedRecord:
    """What matching compares: plain, already-folded strings (no pydantic in the hot path)."""

    key: str
    source: str
    given_name: str | None = None
    family_name: str | None = None
    given_canonical: str | None = None
    birth_date: str | None = None  # ISO yyyy-mm-dd
    email: str | None = None
    email_user: str | None = None
    email_domain: str | None = None
    phone: str | None = None  # E.164
    loyalty_id: str | None = None
    address: str | None = None
    street_number: str | None = None
    postcode: str | None = None
    city: str | None = None
    country: str | None = None  # ISO alpha-2 when known, else the folded name
    generation: str | None = None  # "jr", "sr", "iii", "iv" after a name: father and son share the rest
    identifiers: dict[str, str] = field(default_factory=dict)  # custom strong identifiers, blocked values removed

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON form (None fields left out) for the profile's record snapshot."""
        out = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is not None and value != {}:
                out[name] = dict(value) if name == "identifiers" else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NormalizedRecord":
        return cls(**{k: v for k, v in data.items() if k in _FIELD_SET})

    @property
    def is_empty(self) -> bool:
        """True when nothing identifies the person: no strong identifier and too little for matching. Without an
        identifier, a full name with a birth date or a place is enough; so is one name (a source that left the
        other blank) with a birth date and an address or postcode: "Donaldson, 1994-08-25, 14 Manity Court" is one
        person as surely, where quarantining it would leave the customer and their orders in no profile."""
        if self.email or self.phone or self.loyalty_id or self.identifiers:
            return False
        given = self.given_name or self.given_canonical
        if self.family_name and given:
            return not (self.birth_date or self.address or self.postcode or self.city)
        return not ((self.family_name or given) and self.birth_date and (self.address or self.postcode))


_FIELD_NAMES = tuple(f.name for f in fields(NormalizedRecord))
_FIELD_SET = frozenset(_FIELD_NAMES)


def normalize_record(rec: CustomerRecord, *, email_provider_rules: bool = True) -> NormalizedRecord:
    """Normalize every matching field of a canonical customer record. email_provider_rules (the identity
    configuration's normalization.email_provider_rules): gmail dots and the +tags of providers that deliver them to
    the base address are folded, in the email field and a custom identifier typed email; off, they are kept."""
    given, family = rec.given_name, rec.family_name
    if rec.full_name and not (given and family):
        parsed_given, parsed_family = split_full_name(rec.full_name)
        given, family = given or parsed_given, family or parsed_family
    given_raw, family_raw = fold_name(given), fold_name(family)
    given_folded, family_folded = _strip_titles(given_raw), _strip_titles(family_raw)
    email, email_user, email_domain = _record_email(rec.email, email_provider_rules)
    address, street_number = _address_fields(rec.address_line1, rec.address_line2, rec.street_number)
    region = region_code(rec.country)
    country = region or fold_name(rec.country)
    return NormalizedRecord(
        key=rec.key,
        source=rec.source,
        given_name=given_folded,
        family_name=family_folded,
        given_canonical=canonical_given_name(given_folded),
        birth_date=normalize_birth_date(rec.birth_date),
        email=email,
        email_user=email_user,
        email_domain=email_domain,
        phone=_record_phone(rec.phone, rec.phone_region, region or country),
        loyalty_id=normalize_loyalty_id(rec.loyalty_id),
        address=address,
        street_number=street_number,
        postcode=normalize_postcode(rec.postcode, rec.country),
        city=normalize_city(rec.city),
        country=country,
        generation=(_generation_of(family_raw) or _generation_of(given_raw)
                    or (_generation_of(fold_name(rec.full_name)) if rec.full_name else None)),
        identifiers=_custom_identifiers(rec, region or country, email_provider_rules) if rec.identifiers else {},
    )


def _custom_identifiers(rec: CustomerRecord, country: str | None, email_provider_rules: bool = True
                        ) -> dict[str, str]:
    """The record's custom identifiers under the type each is kept as (trimmed, lower-case), placeholders and the
    engine's own types left out. A phone is read with the record's regions, as the phone field is (country: as
    _record_phone takes it)."""
    custom = {}
    for raw_type, raw in (rec.identifiers or {}).items():
        id_type = str(raw_type).strip().lower()  # checked for placeholders under the type it is kept as
        if id_type == "phone":
            value = _record_phone(raw, rec.phone_region, country)
        else:
            value = normalize_identifier(id_type, raw, email_provider_rules=email_provider_rules)
        if value is not None:
            custom[id_type] = value
    return custom


def _record_email(value: Any, provider_rules: bool = True) -> tuple[str | None, str | None, str | None]:
    """(email, user, domain) of a record's email, placeholders removed; provider_rules: normalize_email's."""
    if not provider_rules:
        return _email_fields_as_written(value) if type(value) is str else _email_fields_as_written.__wrapped__(value)
    if type(value) is str:
        return _email_fields(value)
    return _email_fields.__wrapped__(value)  # None, or an odd value of a record built without validation


@lru_cache(maxsize=65536)  # the one email cache, on the raw text: a person's email repeats across their records
def _email_fields(value: Any) -> tuple[str | None, str | None, str | None]:
    return _fields_of_email(normalize_email(value))


@lru_cache(maxsize=65536)  # a deployment uses one of the two caches: provider rules are on or off for it
def _email_fields_as_written(value: Any) -> tuple[str | None, str | None, str | None]:
    """_email_fields without provider rules (gmail dots and +tags kept). A placeholder is one either way: an
    address that is one once the rules fold it (no.reply@gmail.com, noreply+shop@gmail.com) names no person."""
    if _email_fields.__wrapped__(value)[0] is None:
        return None, None, None
    return _fields_of_email(normalize_email(value, provider_rules=False))


def _fields_of_email(email: str | None) -> tuple[str | None, str | None, str | None]:
    """(email, user, domain) of a normalized email; (None, None, None) for none or a placeholder."""
    if not email or is_blocked_value("email", email):
        return None, None, None
    user, _, domain = email.rpartition("@")  # a quoted user name may hold an "@" of its own: "ann@home"@x.com
    return email, user, domain


def _record_phone(value: Any, phone_region: str | None, country: str | None) -> str | None:
    """A record's phone parsed with its own country (its region code) first, then the source's default region
    (phone_region): a source that is mostly British still has customers with American numbers written the national
    way. country is the record's as normalized: a region code, or the folded name of a country the table does not
    know, which still says the customer may live elsewhere than the source's region, so that a national number is
    not read as one of it ("030 1234 5678" is Berlin, not +44 30...): only an international form is."""
    if country is not None and country not in _REGIONS:
        return normalize_phone(value)
    source_region = region_code(phone_region) if phone_region else None
    phone = normalize_phone(value, country or source_region)
    if phone is None and source_region and country and source_region != country:
        phone = normalize_phone(value, source_region)
    return phone


def strong_identifiers(n: NormalizedRecord) -> list[tuple[str, str]]:
    """The record's identifiers that link deterministically, in priority order. An email, phone or loyalty id is
    not tested for a placeholder again: normalization left those out (each normalizer tests its value with
    is_blocked_value; a test pins it), and a stored snapshot holds what normalization gave or a digest of it."""
    out: list[tuple[str, str]] = []
    if n.email:
        out.append(("email", n.email))
    if n.phone:
        out.append(("phone", n.phone))
    if n.loyalty_id:
        out.append(("loyalty_id", n.loyalty_id))
    for id_type, value in sorted(n.identifiers.items()):
        # Still tested: a snapshot stored before normalize_record tested a custom value under the type it keeps may
        # hold a placeholder ("Email": "nobody" kept as email).
        if not is_blocked_value(id_type, value):
            out.append((id_type, value))
    return out
