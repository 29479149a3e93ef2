"""The ways real source systems garble a person: typos, nicknames, case, whitespace, diacritics, phone and email
formats, street abbreviations. Each function takes the caller's `random.Random` so output is deterministic."""
from __future__ import annotations

import itertools
import math
import random
import unicodedata
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from .banks import PLUS_TAG_DOMAINS

_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {}
for _r, _row in enumerate(_KEYBOARD_ROWS):
    for _i, _ch in enumerate(_row):
        near = [_row[j] for j in (_i - 1, _i + 1) if 0 <= j < len(_row)]
        for _rr in (_r - 1, _r + 1):
            if 0 <= _rr < len(_KEYBOARD_ROWS):
                near += [_KEYBOARD_ROWS[_rr][j] for j in (_i, _i + 1) if j < len(_KEYBOARD_ROWS[_rr])]
        _NEIGHBOURS[_ch] = "".join(near)

TYPO_OPS = ("insert", "delete", "substitute", "transpose")


def typo(rng: random.Random, text: str) -> str:
    """One edit of the kind people make typing: insert, delete, substitute (a keyboard neighbour), transpose."""
    if len(text) < 3:
        return text
    op = TYPO_OPS[int(rng.random() * 4)]
    i = 1 + int(rng.random() * (len(text) - 2))  # first letter rarely wrong in practice
    ch = text[i]
    near = _NEIGHBOURS.get(ch.lower()) or "aeiou"
    sub = near[int(rng.random() * len(near))]
    sub = sub.upper() if ch.isupper() else sub
    if op == "insert":
        return text[:i] + sub + text[i:]
    if op == "delete":
        return text[:i] + text[i + 1:]
    if op == "substitute":
        return text[:i] + sub + text[i + 1:]
    return text[:i - 1] + text[i] + text[i - 1] + text[i + 1:] if text[i] != text[i - 1] else text[:i] + sub + text[i + 1:]


@lru_cache(maxsize=1)
def _nicknamer():
    from nicknames import NickNamer

    return NickNamer()


@lru_cache(maxsize=4096)
def nicknames_of(given: str) -> tuple[str, ...]:
    """Sorted (deterministic: sets iterate in hash order) nicknames of a given name, capitalised."""
    nicks = _nicknamer().nicknames_of(given.lower())
    return tuple(sorted(n.capitalize() for n in nicks if len(n) > 1))


def fold_diacritics(text: str, german_style: bool = False) -> str:
    """José -> Jose; Müller -> Muller, or Mueller when written the German way; Straße -> Strasse."""
    if german_style:
        for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("Ä", "Ae"), ("Ö", "Oe"), ("Ü", "Ue")):
            text = text.replace(a, b)
    text = text.replace("ß", "ss")
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def has_diacritics(text: str) -> bool:
    return not text.isascii()


def case_variant(rng: random.Random, text: str) -> str:
    r = rng.random()
    if r < 0.45:
        return text.upper()
    if r < 0.9:
        return text.lower()
    return text.swapcase()


def whitespace_variant(rng: random.Random, text: str) -> str:
    r = rng.random()
    if r < 0.4:
        return text + " "
    if r < 0.7:
        return " " + text
    if " " in text:
        return text.replace(" ", "  ", 1)
    return text + "  "


def email_variant(rng: random.Random, email: str) -> tuple[str, str]:
    """A variant the same mailbox receives: case, a plus-tag, dots in a gmail address. Returns (kind, email)."""
    local, _, domain = email.partition("@")
    r = rng.random()
    if domain in PLUS_TAG_DOMAINS and r < 0.4:
        return "plus_tag", f"{local}+{('shop', 'news', 'promo', 'store', 'offers')[int(rng.random() * 5)]}@{domain}"
    if domain == "gmail.com" and r < 0.7:
        plain = local.replace(".", "")
        if len(plain) > 3:
            i = 1 + int(rng.random() * (len(plain) - 2))
            return "gmail_dots", f"{plain[:i]}.{plain[i:]}@{domain}"
    return "email_case", (email.upper() if rng.random() < 0.3 else local.capitalize() + "@" + domain.capitalize())


# ---------------------------------------------------------------- phones

@lru_cache(maxsize=None)
def _phone_prefixes(region: str, landline: bool) -> tuple[str, ...]:
    """Valid number prefixes of a region (all but the last 4 digits), found once with a fixed seed: numbering
    plans allocate blocks of at least 10,000, so any 4-digit tail on a valid prefix is valid (checked in tests)."""
    kind = PhoneNumberType.FIXED_LINE if landline else PhoneNumberType.MOBILE
    template = str(phonenumbers.example_number_for_type(region, kind).national_number)
    code = phonenumbers.country_code_for_region(region)
    keep = max(2, len(template) - 7)
    rng = random.Random(f"phone-prefixes/{region}/{landline}")
    found: set[str] = set()
    for _ in range(400):
        digits = template[:keep] + "".join(str(int(rng.random() * 10)) for _ in range(len(template) - keep))
        if phonenumbers.is_valid_number(phonenumbers.PhoneNumber(country_code=code, national_number=int(digits))):
            found.add(digits[:-4])
    return tuple(sorted(found)) or (template[:-4],)


@lru_cache(maxsize=None)
def _phone_multiplier(space: int) -> int:
    """A multiplier coprime with the number space, so index -> slot is a bijection of [0, space)."""
    return next(m for m in itertools.count(7_368_787_397) if math.gcd(m, space) == 1)


def unique_phone(index: int, region: str, *, landline: bool = False) -> phonenumbers.PhoneNumber:
    """The valid number of the region that belongs to `index` (a person for mobiles, a household for landlines):
    distinct indexes get distinct numbers (up to a few million per region), as real subscribers do; only the
    household hard negative makes people share a number. Non-sequential: a scrambled slot of prefix x tail."""
    prefixes = _phone_prefixes(region, landline)
    space = len(prefixes) * 10_000
    slot = (index * _phone_multiplier(space) + 982_451_653) % space
    digits = f"{prefixes[slot // 10_000]}{slot % 10_000:04d}"
    return phonenumbers.PhoneNumber(country_code=phonenumbers.country_code_for_region(region),
                                    national_number=int(digits))


PHONE_STYLES = ("e164", "international", "national", "digits", "dashes", "double_zero", "dots")


@lru_cache(maxsize=100_000)
def _phone_template(country_code: int, prefix: str, style: str) -> str:
    """The formatted form of prefix + "0000". Numbers sharing all but their last 4 digits format alike (the
    pattern is chosen by leading digits), so formatting is a cached template plus the tail: phonenumbers' own
    formatting costs ~40 us per call."""
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(prefix + "0000"))
    if style == "e164":
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if style == "international":
        return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    if style == "national":
        return national
    digits = "".join(c for c in national if c.isdigit())
    if style == "digits":
        return digits
    if style == "dashes":
        return f"{digits[:-7]}-{digits[-7:-4]}-{digits[-4:]}"
    if style == "dots":
        return f"{digits[:-6]}.{digits[-6:-3]}.{digits[-3:]}"
    # double_zero: 0044 7700 900123 (the international form with 00 instead of +)
    return "00" + phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)[1:]


def format_phone(number: phonenumbers.PhoneNumber, style: str) -> str:
    nsn = str(number.national_number)
    out = list(_phone_template(number.country_code, nsn[:-4], style))
    tail = len(nsn) - 1
    for i in range(len(out) - 1, -1, -1):  # put the real last 4 digits in place of the template's 0000
        if out[i].isdigit():
            out[i] = nsn[tail]
            tail -= 1
            if tail < len(nsn) - 4:
                break
    return "".join(out)


def e164(number: phonenumbers.PhoneNumber) -> str:
    return f"+{number.country_code}{number.national_number}"
