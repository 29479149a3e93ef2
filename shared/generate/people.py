"""The true people: households of 1-4 adults sharing an address (and often a family name, a landline, a family
email, a computer), with life events during the history (moving house, a new email, a marriage name change).

Times are floats: days since the start of the history (negative = before it). A household is generated from its
own RNG, so households can be produced one at a time (streaming) and the output only depends on the seed.
"""
from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

import phonenumbers
from unidecode import unidecode

from . import banks
from .config import GeneratorConfig
from .noise import unique_phone

_FIRST_CUM = {c: (male, banks.zipf_weights(len(male)), female, banks.zipf_weights(len(female)))
              for c, (male, female) in banks.FIRST_NAMES.items()}
_FAMILY_CUM = {c: banks.zipf_weights(len(banks.FAMILY_NAMES[c])) for c in banks.COUNTRIES}


def scramble(x: int, modulus: int, salt: int = 0) -> int:
    """A bijection of [0, modulus) for modulus = 10**k: unique, non-sequential ids without shared state."""
    return (x * 7_368_787_397 + 982_451_653 + salt * 1_000_003) % modulus


@dataclass(slots=True)
class Address:
    country: str
    number: str
    street: str
    street_type: int  # index into banks.STREET_TYPES[country]
    flat: str | None
    city: str
    state: str
    postcode: str


@dataclass(slots=True)
class Person:
    index: int
    person_id: str
    household_id: str
    country: str
    sex: str
    given_name: str
    family_name: str
    birth_date: date
    mobile: phonenumbers.PhoneNumber
    # (valid from, value), oldest first; the first entry is valid from -infinity
    emails: list[tuple[float, str]]
    addresses: list[tuple[float, Address]]
    family_names: list[tuple[float, str]]
    acquired_at: float  # first purchase / first time the retailer met them
    home_phone: phonenumbers.PhoneNumber | None = None
    family_email: str | None = None
    shared_device: str | None = None
    flags: list[str] = field(default_factory=list)  # twin, common_name, name_change, moved, new_email

    def at(self, series: list, t: float):
        """The value of a (from, value) series at time t."""
        return series[max(0, bisect.bisect_right([s[0] for s in series], t) - 1)][1]


@dataclass(slots=True)
class Household:
    index: int
    household_id: str
    people: list[Person]


def _pick(rng: random.Random, items, cum) -> str:
    return items[bisect.bisect_left(cum, rng.random() * cum[-1])]


def _first_name(rng: random.Random, country: str, sex: str, avoid: str | None = None) -> str:
    male, mcum, female, fcum = _FIRST_CUM[country]
    for _ in range(5):
        name = _pick(rng, male, mcum) if sex == "M" else _pick(rng, female, fcum)
        if name != avoid:
            return name
    return name


def _family_name(rng: random.Random, country: str) -> str:
    return _pick(rng, banks.FAMILY_NAMES[country], _FAMILY_CUM[country])


def _postcode(rng: random.Random, country: str, prefix: str) -> str:
    if country == "GB":
        return f"{prefix} {1 + int(rng.random() * 9)}{'ABDEFGHJLNPQRSTUWXYZ'[int(rng.random() * 20)]}{'ABDEFGHJLNPQRSTUWXYZ'[int(rng.random() * 20)]}"
    return prefix + "".join(str(int(rng.random() * 10)) for _ in range(5 - len(prefix)))


def _address(rng: random.Random, country: str, city_index: int | None = None) -> Address:
    cities = banks.CITIES[country]
    ci = city_index if city_index is not None else min(int(rng.expovariate(0.45)), len(cities) - 1)
    city, state, prefixes = cities[ci]
    streets = banks.STREET_NAMES[country]
    flat = None
    if rng.random() < 0.2:
        flat = f"{banks.FLAT_WORDS[country][0]} {1 + int(rng.random() * 39)}"
    return Address(country=country, number=str(1 + int(rng.random() * 249)), street=streets[int(rng.random() * len(streets))],
                   street_type=int(rng.random() * len(banks.STREET_TYPES[country])), flat=flat, city=city, state=state,
                   postcode=_postcode(rng, country, prefixes[int(rng.random() * len(prefixes))]))


def _birth_date(rng: random.Random, end: date, age_lo: float, age_hi: float) -> date:
    age_days = rng.uniform(age_lo, age_hi) * 365.25
    return end - timedelta(days=int(age_days))


def personal_email(rng: random.Random, country: str, given: str, family: str, token: int, old: str | None = None) -> str:
    """A personal address. The trailing number is unique per person, so two people never share a mailbox."""
    g, f = unidecode(given).lower().replace(" ", ""), unidecode(family).lower().replace(" ", "").replace("'", "")
    domains = banks.EMAIL_DOMAINS[country]
    for _ in range(4):
        pattern = int(rng.random() * 5)
        local = (f"{g}.{f}", f"{g}{f}", f"{g[0]}{f}", f"{f}.{g}", f"{g}_{f}")[pattern]
        domain = domains[min(int(rng.expovariate(0.7)), len(domains) - 1)]
        email = f"{local}{token}@{domain}"
        if email != old:
            return email
    return f"{g}.{f}.{token}@{domains[-1]}"


def make_household(index: int, first_person: int, max_people: int, cfg: GeneratorConfig) -> Household:
    """Household `index`, whose people get indexes first_person, first_person + 1, ... (at most max_people)."""
    rng = _household_rng(index, cfg)
    hard = cfg.hard
    end = cfg.end_date
    history = cfg.history_days
    size = _size(rng, max_people, cfg)
    country = banks.COUNTRIES[min(bisect.bisect_left(_COUNTRY_CUMULATIVE, rng.random()), len(banks.COUNTRIES) - 1)]
    household_id = f"H{index:08d}"
    address = _address(rng, country)
    family = _family_name(rng, country)
    acquired = rng.uniform(-365, history - 1)
    moved_at = rng.uniform(0, history) if rng.random() < cfg.noise.move else None
    new_address = _address(rng, country) if moved_at is not None else None
    home_phone = unique_phone(index, country, landline=True) if size > 1 and rng.random() < hard.home_phone else None
    family_email = None
    if size > 1 and rng.random() < hard.shared_family_email:
        fam = unidecode(family).lower().replace(" ", "").replace("'", "")
        family_email = f"{('the' + fam + 's', fam + 'family', fam + '.home')[int(rng.random() * 3)]}{index}@" \
                       f"{banks.EMAIL_DOMAINS[country][int(rng.random() * 3)]}"
    shared_device = _uuid(rng) if size > 1 and rng.random() < hard.shared_device else None

    # Who: 1 adult; 2 = a couple; 3-4 = a couple and adult children (twins sometimes when there are two).
    first_sex = "M" if rng.random() < 0.5 else "F"
    roles: list[tuple[str, float, float]] = [(first_sex, 25 if size > 2 else 18, 85 if size < 3 else 62)]
    if size >= 2:
        roles.append(("F" if first_sex == "M" else "M", 25 if size > 2 else 18, 85 if size < 3 else 62))
    twins = size == 4 and rng.random() < hard.twins
    for _ in range(size - 2):
        roles.append(("M" if rng.random() < 0.5 else "F", 18, 24))

    people: list[Person] = []
    twin_birth = _birth_date(rng, end, 18, 24) if twins else None
    for k, (sex, lo, hi) in enumerate(roles):
        pi = first_person + k
        given = _first_name(rng, country, sex, avoid=people[-1].given_name if people else None)
        birth = _birth_date(rng, end, lo, hi)
        if k == 1:  # partner: similar age
            birth = people[0].birth_date + timedelta(days=int(rng.gauss(0, 4 * 365)))
            birth = min(birth, end - timedelta(days=int(18.2 * 365.25)))
        flags: list[str] = []
        fam_names = [(-1e9, family)]
        if k == 1 and rng.random() >= hard.keep_family_name:
            fam_names = [(-1e9, _family_name(rng, country))]  # kept their own name
        elif k == 1 and rng.random() < hard.name_change:
            fam_names = [(-1e9, _family_name(rng, country)), (rng.uniform(0, history), family)]
            flags.append("name_change")
        if twins and k >= 2:
            birth = twin_birth
            flags.append("twin")
        if size == 1 and rng.random() < hard.common_name:
            given, family_common, sex = banks.COMMON_NAMES[country][int(rng.random() * len(banks.COMMON_NAMES[country]))]
            fam_names = [(-1e9, family_common)]
            address = _address(rng, country, city_index=0)
            flags.append("common_name")
        token = pi + 11  # unique per person: no two people share a personal mailbox
        emails = [(-1e9, personal_email(rng, country, given, fam_names[-1][1] if rng.random() < 0.5 else fam_names[0][1], token))]
        if rng.random() < cfg.noise.new_email:
            emails.append((rng.uniform(0, history), personal_email(rng, country, given, fam_names[-1][1], token, old=emails[0][1])))
            flags.append("new_email")
        addresses = [(-1e9, address)]
        if moved_at is not None:
            addresses.append((moved_at, new_address))
            flags.append("moved")
        people.append(Person(
            index=pi, person_id=f"P{pi:08d}", household_id=household_id, country=country, sex=sex, given_name=given,
            family_name=fam_names[-1][1], birth_date=birth, mobile=unique_phone(pi, country), emails=emails,
            addresses=addresses, family_names=fam_names,
            acquired_at=min(history - 1, acquired + (rng.uniform(0, 200) if k else 0)), home_phone=home_phone,
            family_email=family_email, shared_device=shared_device, flags=flags))
    return Household(index=index, household_id=household_id, people=people)


def _cumulative(ps):
    total = 0.0
    for p in ps:
        total += p
        yield total


_COUNTRY_CUMULATIVE = list(_cumulative(banks.COUNTRY_WEIGHTS))


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def _household_rng(index: int, cfg: GeneratorConfig) -> random.Random:
    return random.Random(cfg.seed * 1_000_000_007 + index)


def _size(rng: random.Random, max_people: int, cfg: GeneratorConfig) -> int:
    """The household's size: always the first draw of its RNG, so sizes can be known without the people."""
    size = 1 + bisect.bisect_left(list(_cumulative(cfg.hard.household_sizes)), rng.random())
    return max(1, min(size, 4, max_people))


def iter_households(cfg: GeneratorConfig, start: int = 0, stop: int | None = None, first_person: int = 0):
    """Households one at a time until cfg.customers people exist (the last one may be cut short); a shard
    is the households [start, stop) whose first person has index first_person."""
    made = first_person
    index = start
    while made < cfg.customers and (stop is None or index < stop):
        household = make_household(index, made, cfg.customers - made, cfg)
        made += len(household.people)
        index += 1
        yield household


def plan_shards(cfg: GeneratorConfig, shards: int) -> list[tuple[int, int, int]]:
    """Split the households into `shards` contiguous spans of about equal people: (start, stop, first person).
    Only household sizes are drawn (cheap), so each shard can then be generated on its own."""
    bounds = [cfg.customers * k // shards for k in range(1, shards)]
    spans, start, first, made, index = [], 0, 0, 0, 0
    while made < cfg.customers:
        made += _size(_household_rng(index, cfg), cfg.customers - made, cfg)
        index += 1
        if bounds and made >= bounds[0]:
            while bounds and made >= bounds[0]:
                bounds.pop(0)
            spans.append((start, index, first))
            start, first = index, made
    if start < index or not spans:
        spans.append((start, index, first))
    return spans
