"""Small synthetic customer sets with ground truth, for training and testing the match model.

Self-contained (no files, deterministic per seed) so tests and training never depend on the full data
generator. It produces the noise and the hard negatives identity resolution must handle: typos, nicknames,
diacritics, swapped names, missing fields, abbreviations, moves, new emails, married names, phone formats;
households sharing address/phone/surname, twins, and many people with the most common names in one city.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterator

import phonenumbers
from nicknames import NickNamer

from shared.models import CustomerRecord

COMMON_FAMILY = ["Smith", "Jones", "Williams", "Brown", "Taylor", "Johnson", "Davies", "Miller", "Wilson", "Evans",
                 "Thomas", "Garcia", "Martin", "Moore", "Clark", "Walker", "White", "Hall", "Lewis", "Young",
                 "Müller", "García", "Nguyen", "Patel", "Khan", "Kowalski", "O'Brien", "Murphy", "Martínez", "Lee"]
COMMON_GIVEN = ["John", "James", "Michael", "David", "Robert", "William", "Mary", "Sarah", "Emma", "Olivia",
                "Elizabeth", "Jennifer", "Thomas", "Daniel", "Jessica", "Margaret", "Christopher", "Katherine",
                "Anthony", "Susan", "José", "Zoë", "Renée", "Chloé", "Mohammed", "Wei", "Priya", "Liam", "Noah", "Ava"]
SYLLABLES = ["ash", "bel", "cor", "dun", "el", "far", "gal", "har", "ing", "kel", "lan", "mor", "nor", "ost", "pem",
             "quin", "ral", "sel", "tor", "ul", "ven", "wes", "yar", "zan", "brook", "ford", "ley", "ton", "wick", "by"]
STREET_TYPES = [("Street", "St"), ("Road", "Rd"), ("Avenue", "Ave"), ("Lane", "Ln"), ("Drive", "Dr"), ("Close", "Cl"),
                ("Court", "Ct"), ("Place", "Pl"), ("Crescent", "Cres"), ("Way", "Way")]
CITIES = {"GB": ["London", "Manchester", "Leeds", "Bristol", "Glasgow", "Cardiff", "York", "Bath"],
          "US": ["Springfield", "Portland", "Austin", "Denver", "Boston", "Seattle", "Madison", "Salem"]}
EMAIL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com", "mail.com"]
PLACEHOLDERS = {"email": ["test@test.com", "none@none.com", "n/a"], "phone": ["0000000000", "N/A", "1111111111"]}
SOURCES = ("pos", "ecommerce", "loyalty", "crm")


@dataclass
class Person:
    person_id: str
    given: str
    family: str
    birth_date: date
    country: str
    number: int
    street: str
    street_type: tuple[str, str]
    city: str
    postcode: str
    phone: str
    email: str


def _word(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def _zipf_pick(rng: random.Random, common: list[str], rare_share: float, make_rare) -> str:
    if rng.random() < rare_share:
        return make_rare()
    # Roughly Zipf: the most common name is ~2-3% of people, as Smith or John are in real data.
    return rng.choices(common, weights=[1 / (rank + 8) for rank in range(len(common))])[0]


class _Names:
    def __init__(self) -> None:
        namer = NickNamer()
        self.namer = namer
        pool = sorted({n for n in COMMON_GIVEN})
        self.formal = pool + sorted({name.capitalize() for name in ("alexander", "benjamin", "charlotte", "dorothy",
                                     "edward", "frederick", "gabriel", "harriet", "isabella", "jacob", "lucy",
                                     "matthew", "nathan", "patricia", "rebecca", "samuel", "victoria", "zachary")})

    def nickname(self, rng: random.Random, given: str) -> str:
        options = sorted(self.namer.nicknames_of(given.lower()))
        return rng.choice(options).capitalize() if options else given


def _postcode(rng: random.Random, country: str) -> str:
    if country == "US":
        return f"{rng.randint(1000, 99999):05d}"
    letters = "ABCDEFGHJKLMNPRSTUWY"
    return f"{rng.choice(letters)}{rng.choice(letters)}{rng.randint(1, 20)} {rng.randint(1, 9)}{rng.choice(letters)}{rng.choice(letters)}"


def _phone(rng: random.Random, country: str) -> str:
    while True:
        if country == "US":
            raw = f"+1{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        else:
            raw = f"+447{rng.randint(100, 999)}{rng.randint(0, 999999):06d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(raw)):
            return raw


def _email(rng: random.Random, given: str, family: str) -> str:
    from unidecode import unidecode
    g, f = unidecode(given).lower().replace("'", ""), unidecode(family).lower().replace("'", "")
    user = rng.choice([f"{g}.{f}", f"{g}{f}", f"{g[0]}{f}", f"{g}_{f}{rng.randint(1, 99)}", f"{f}.{g}{rng.randint(1, 9)}"])
    return f"{user}{rng.randint(1, 9999) if rng.random() < 0.8 else ''}@{rng.choice(EMAIL_DOMAINS)}"


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return text[:i] + text[i + 1:]
    if kind == 1:
        return text[:i] + rng.choice("aeioulnrst") + text[i:]
    if kind == 2:
        return text[:i] + rng.choice("aeioulnrst") + text[i + 1:]
    return text[:i - 1] + text[i] + text[i - 1] + text[i + 1:]


def _format_phone(rng: random.Random, e164: str) -> str:
    number = phonenumbers.parse(e164)
    fmt = rng.choice([phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.NATIONAL,
                      phonenumbers.PhoneNumberFormat.INTERNATIONAL])
    text = phonenumbers.format_number(number, fmt)
    return text.replace(" ", "-") if rng.random() < 0.2 else text


def _gmail_variant(rng: random.Random, email: str) -> str:
    user, domain = email.split("@")
    if domain == "gmail.com" and rng.random() < 0.5:
        user = user.replace(".", "") if "." in user else user[:2] + "." + user[2:]
    if rng.random() < 0.3:
        user += "+shop"
    return (f"{user}@{domain}").upper() if rng.random() < 0.1 else f"{user}@{domain}"


def generate_people(n_people: int, *, seed: int = 7) -> list[Person]:
    """People in households: ~30% share an address, landline and surname with others; some are twins."""
    rng = random.Random(seed)
    names = _Names()
    people: list[Person] = []
    while len(people) < n_people:
        country = "GB" if rng.random() < 0.6 else "US"
        family = _zipf_pick(rng, COMMON_FAMILY, 0.7, lambda: _word(rng, rng.choice((2, 3))))
        city = rng.choice(CITIES[country])
        address = dict(number=rng.randint(1, 250), street=_word(rng, 2), street_type=rng.choice(STREET_TYPES),
                       city=city, postcode=_postcode(rng, country))
        size = rng.choices([1, 2, 3, 4], weights=[70, 18, 8, 4])[0]
        landline = _phone(rng, country)
        base_dob = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 50))
        twins = size >= 2 and rng.random() < 0.25
        used_given: set[str] = set()
        for member in range(size):
            given = _zipf_pick(rng, names.formal, 0.4, lambda: _word(rng, 2))
            while given in used_given:
                given = rng.choice(names.formal + [_word(rng, 2)])
            used_given.add(given)
            dob = base_dob if (twins and member < 2) else base_dob + timedelta(days=rng.randrange(-9000, 9000))
            phone = landline if (size > 1 and rng.random() < 0.6) else _phone(rng, country)
            email = _email(rng, given, family)
            people.append(Person(f"P{len(people):06d}", given, family, dob, country, phone=phone, email=email, **address))
    # Many John Smiths in one city: a few people share the most common names but nothing else.
    for i in range(max(2, n_people // 200)):
        p = people[rng.randrange(len(people))]
        p.given, p.family = "John", "Smith"
    return people[:n_people]


def _record(rng: random.Random, p: Person, source: str, key: str, names: _Names, *, moved: bool) -> CustomerRecord:
    given, family = p.given, p.family
    r = rng.random
    if r() < 0.15:
        given = names.nickname(rng, given)
    if r() < 0.08:
        given = _typo(rng, given)
    if r() < 0.08:
        family = _typo(rng, family)
    if r() < 0.05:
        family = _word(rng, 2)  # married / maiden name
    if r() < 0.1:
        from unidecode import unidecode
        given, family = unidecode(given), unidecode(family)
    if r() < 0.1:
        given, family = given.upper(), family.upper()
    if r() < 0.03:
        given, family = family, given
    number, street, street_type, city, postcode = p.number, p.street, p.street_type, p.city, p.postcode
    if moved:
        number, street, street_type = rng.randint(1, 250), _word(rng, 2), rng.choice(STREET_TYPES)
        postcode = _postcode(rng, p.country)
    street_word = street_type[1] if r() < 0.5 else street_type[0]
    line1 = f"{number} {street} {street_word}" + ("." if r() < 0.1 and street_word == street_type[1] else "")
    dob = p.birth_date
    if r() < 0.03 and dob.day <= 12:
        dob = date(dob.year, dob.day, dob.month)
    elif r() < 0.03:
        dob = dob + timedelta(days=rng.choice((-1, 1)))
    email = _gmail_variant(rng, p.email) if r() < 0.7 else _email(rng, p.given, p.family)
    fields = dict(
        given_name=given if r() > 0.03 else None,
        family_name=family if r() > 0.02 else None,
        birth_date=dob if r() > 0.3 else None,
        email=email if r() > 0.35 else (rng.choice(PLACEHOLDERS["email"]) if r() < 0.1 else None),
        phone=_format_phone(rng, p.phone) if r() > 0.4 else (rng.choice(PLACEHOLDERS["phone"]) if r() < 0.1 else None),
        phone_region=p.country,
        address_line1=line1 if r() > 0.15 else None,
        address_line2=(f"Apt {rng.randint(1, 30)}" if r() < 0.05 else None),
        city=city if r() > 0.1 else None,
        postcode=postcode if r() > 0.15 else None,
        country=p.country,
    )
    if source == "loyalty":
        fields["loyalty_id"] = f"L{int(p.person_id[1:]):08d}"
    return CustomerRecord(source=source, record_key=key, **fields)


def generate_records(n_people: int, *, seed: int = 7) -> Iterator[tuple[CustomerRecord, str]]:
    """(record, person_id) pairs: each person has 1-4 records across sources, noisy as described above."""
    rng = random.Random(seed + 1)
    names = _Names()
    counter = 0
    for p in generate_people(n_people, seed=seed):
        n_records = rng.choices([1, 2, 3, 4], weights=[30, 40, 20, 10])[0]
        sources = rng.sample(SOURCES, k=min(n_records, len(SOURCES)))
        moved_after = rng.randrange(1, n_records + 1) if rng.random() < 0.15 else n_records + 1
        for i, source in enumerate(sources):
            counter += 1
            yield _record(rng, p, source, f"{source[0]}{counter:07d}", names, moved=i >= moved_after), p.person_id
