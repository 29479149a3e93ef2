"""Five labelled customer datasets made without ucp's own generator (shared/generate), for bench/identity_unseen.py.

The shipped match model learned its weights from shared/generate's UK-centric data, so data from that generator
cannot show how the default configuration does on data it has never seen (issue #5). These datasets come from
other name, address and phone conventions and another author's idea of what goes wrong in customer files:

- us: US customers of a web shop and a store. Households (couples sharing a landline, sometimes an email; Jr and Sr
  at one address; twins), namesakes in one city (John Smith, Maria Garcia), nicknames (Bob, Peggy), middle
  initials, Hispanic double surnames cut to the first or hyphenated, ZIP+4, phone and date formats, upper case.
- eu: German and French customers of a shop and a CRM (one ';'-separated layout with German headers). Umlauts
  spelled out (Mueller), Straße / Str. / strasse, D- and F- postcodes, hyphenated given names written with a space,
  international and national phone formats, couples and twins, Thomas Müller and Jean Martin namesakes.
- sparse: Spanish customers of a shop and a loyalty scheme with little to link on: one person in ten gives an
  email, nobody a phone. Two family names (often only the first), accents dropped, nicknames (Pepe, Paco),
  siblings, parent and child of one name at one address, namesakes (María García López).
- lowlands: Dutch, Belgian, Swedish and Danish customers of a web shop and a till (';'-separated, Dutch headers).
  Initials (voorletters) of the official names at the till (J. for Jan, C. for Kees), the tussenvoegsel written
  four ways (van der Berg, Van der Berg, "Berg, van der", or in a column of its own the mapping does not read),
  house letters (12A, 12-A, 12 A, 12a), S-/SE-/DK-/B-/NL- postcode prefixes, ø/å/ä written as two letters
  (Soeren) or plain (Soren), Belgian, Swedish and Danish flats; couples, twins, namesakes in one city (Jan de
  Vries, Anna Andersson) and neighbours of one family name in one postcode (12 and 12A).
- iberia: Spanish and Portuguese families of a shop and a loyalty scheme. Surnames inherited as they are (a Spanish
  child takes the father's first and the mother's first, a Portuguese child the mother's last and the father's
  last), children named after a parent (family_samename), one surname only (a Spaniard's first, a Portuguese's
  last), a birth date on 40% of records, the household's landline in a column the mapping does not read, and
  loyalty sign-ups at the till with only a first name and a mobile.

Every dataset also has typos, day and month swapped, missing birth dates and people who moved; us and eu swapped
given and family names. Each is a folder of its two sources' CSV files, their ucp mappings (`<source>.json`) and
truth.csv (source, record_id, person_id, household, noise): the person behind each record, the kind of household
the person belongs to (alone, couple, twin, ...) and the noise applied to that record.

    from bench.unseen_data import write_datasets
    datasets = write_datasets(Path("out"), seed=7, people=1500)   # {"us": Dataset, "eu": ..., "iberia": ...}

Deterministic per seed: each dataset draws from its own random stream (seeded by its name and the seed) and keeps
its own record of the emails and phones handed out, so one dataset never depends on another or on earlier calls.
"""
from __future__ import annotations

import csv
import json
import random
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat

TRUTH_COLUMNS = ("source", "record_id", "person_id", "household", "noise")


@dataclass
class Person:
    person_id: str
    given: str
    family: str
    birth_date: str  # ISO 8601, "" when unknown
    address: dict[str, Any]
    household: str  # alone, couple, twin, jrsr, sibling, parentchild, namesake, neighbour, family, family_samename
    home_phone: PhoneNumber | None = None
    mobile: PhoneNumber | None = None
    email: str | None = None
    middle_initial: str = ""
    suffix: str = ""  # Jr / Sr
    particle: str = ""  # a Dutch tussenvoegsel (van der), apart from the family name
    official_given: str = ""  # a Dutch or Belgian's official given names (Johannes for Jan), for their initials


@dataclass
class Dataset:
    name: str
    folder: Path
    inputs: list[tuple[Path, Path]]  # (CSV file, its mapping), in the order to resolve them
    truth: Path


# ---------------------------------------------------------------- noise shared by the datasets


def typo(text: str, rng: random.Random) -> str:
    """One keying slip inside the word (never the first or last letter): a letter substituted, dropped, inserted,
    or two neighbours transposed."""
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 1)
    slip = rng.choice("sdit")
    if slip == "s":
        return text[:i] + rng.choice("aeioulnrst") + text[i + 1:]
    if slip == "d":
        return text[:i] + text[i + 1:]
    if slip == "i":
        return text[:i] + rng.choice("aeioulnrst") + text[i:]
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def without_accents(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def umlauts_spelled_out(text: str) -> str:
    """How German names are written on keyboards and systems without umlauts: Müller -> Mueller, Groß -> Gross."""
    for letter, spelled in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("Ä", "Ae"), ("Ö", "Oe"), ("Ü", "Ue"),
                            ("ß", "ss")):
        text = text.replace(letter, spelled)
    return text


def email_user(text: str) -> str:
    return without_accents(umlauts_spelled_out(text)).lower().replace(" ", "").replace("'", "")


def day_and_month_swapped(iso_date: str) -> str:
    """The date read the other way round (2 March for 3 February); a day over 12 cannot be, so stays."""
    year, month, day = iso_date.split("-")
    return f"{year}-{day}-{month}" if int(day) <= 12 else iso_date


def formatted_date(iso_date: str, layout: str) -> str:
    """An ISO date in a layout of "%d", "%m" and "%Y" (the mapping's own), "" when unknown."""
    if not iso_date:
        return ""
    year, month, day = iso_date.split("-")
    return layout.replace("%d", day).replace("%m", month).replace("%Y", year)


# ---------------------------------------------------------------- what every dataset does the same way


class Generator(ABC):
    """People in households, then each person's records in the two sources, each record with its own noise."""

    name: str
    sources: tuple[str, str]
    delimiter = ","
    date_layout: str
    households: dict[str, float]  # kind -> share of households; add_<kind>() adds one
    records_per_person: dict[int, float] = {1: 0.2, 2: 0.4, 3: 0.3, 4: 0.1}

    def __init__(self, seed: int):
        self.rng = random.Random(f"{self.name}:{seed}")
        self.people: list[Person] = []
        self.emails: set[str] = set()
        self.phone_numbers: set[int] = set()

    # -- people

    def draw_people(self, count: int) -> None:
        """Whole households until there are `count` people (the last household may take a few more)."""
        kinds, shares = list(self.households), list(self.households.values())
        while len(self.people) < count:
            getattr(self, f"add_{self.rng.choices(kinds, shares)[0]}")()

    def add_person(self, given: str, family: str, birth_date: str, address: dict[str, Any], household: str,
                   **contact: Any) -> Person:
        person = Person(f"{self.name}{len(self.people) + 1}", given, family, birth_date, address, household,
                        **contact)
        self.people.append(person)
        return person

    def birth_date(self, first_year: int = 1940, last_year: int = 2003) -> str:
        rng = self.rng
        return f"{rng.randint(first_year, last_year)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"

    def unique_email(self, user: str, domain: str) -> str:
        """user@domain, or with a number after the user when another person has it already (as mail providers
        make their users pick)."""
        email = f"{user}@{domain}"
        while email in self.emails:
            email = f"{user}{self.rng.randint(1, 99)}@{domain}"
        self.emails.add(email)
        return email

    def unique_phone(self, draw_digits: Callable[[], str], region: str) -> PhoneNumber:
        """A valid number of the region no other person has: drawn until phonenumbers accepts one."""
        while True:
            number = phonenumbers.parse(draw_digits(), region)
            if phonenumbers.is_valid_number(number) and number.national_number not in self.phone_numbers:
                self.phone_numbers.add(number.national_number)
                return number

    # -- records

    def records(self) -> tuple[dict[str, list[dict[str, str]]], list[tuple[str, ...]]]:
        """(source -> its rows, truth rows): 1 to 4 records per person, spread over the two sources."""
        rows: dict[str, list[dict[str, str]]] = {source: [] for source in self.sources}
        truth = []
        counts, shares = list(self.records_per_person), list(self.records_per_person.values())
        for person in self.people:
            for nth in range(self.rng.choices(counts, shares)[0]):
                source = self.source_of(nth)
                noise: list[str] = []
                row = {"id": f"{source}{len(truth) + 1}", **self.record(person, nth, source, noise)}
                rows[source].append(row)
                truth.append((source, row["id"], person.person_id, person.household, "+".join(noise)))
        return rows, truth

    def source_of(self, nth: int) -> str:
        """A person's records alternate between the sources, with one in three in the other: some people have
        records in one source only, some several in one."""
        first = (nth % 2 == 0) != (self.rng.random() < 0.3)
        return self.sources[0] if first else self.sources[1]

    def sometimes(self, share: float, noise: list[str], label: str) -> bool:
        """True for `share` of the calls; then `label` joins the record's noise."""
        if self.rng.random() < share:
            noise.append(label)
            return True
        return False

    def noisy_birth_date(self, person: Person, noise: list[str], missing_share: float) -> str:
        birth_date = person.birth_date
        if self.rng.random() < 0.03 and day_and_month_swapped(birth_date) != birth_date:
            birth_date = day_and_month_swapped(birth_date)
            noise.append("day_month")
        if self.sometimes(missing_share, noise, "no_birth_date"):
            birth_date = ""
        return birth_date

    def current_address(self, person: Person, nth: int, noise: list[str], moved_share: float) -> dict[str, Any]:
        """The person's address, or for a later record sometimes a new one (they moved)."""
        if nth > 0 and self.sometimes(moved_share, noise, "moved"):
            return self.new_address(person.address)
        return person.address

    @abstractmethod
    def record(self, person: Person, nth: int, source: str, noise: list[str]) -> dict[str, str]: ...

    @abstractmethod
    def new_address(self, near: dict[str, Any] | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def mapping(self, source: str) -> dict[str, Any]: ...

    # -- files

    def write(self, folder: Path) -> Dataset:
        folder.mkdir(parents=True, exist_ok=True)
        rows, truth = self.records()
        inputs = []
        for source, source_rows in rows.items():
            data, mapping = folder / f"{source}.csv", folder / f"{source}.json"
            with data.open("w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=list(source_rows[0]), delimiter=self.delimiter)
                writer.writeheader()
                writer.writerows(source_rows)
            mapping.write_text(json.dumps(self.mapping(source), indent=1, ensure_ascii=False) + "\n",
                               encoding="utf-8")
            inputs.append((data, mapping))
        with (folder / "truth.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(TRUTH_COLUMNS)
            writer.writerows(truth)
        return Dataset(self.name, folder, inputs, folder / "truth.csv")


# ---------------------------------------------------------------- us: US customers, web shop and store

US_MALE = ["James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Charles",
           "Daniel", "Matthew", "Anthony", "Mark", "Steven", "Andrew", "Joshua", "Kevin", "Brian", "Jose", "Luis",
           "Carlos", "Juan", "Miguel", "Jorge", "Tyrone", "DeShawn", "Tyler", "Brandon", "Kyle"]
US_FEMALE = ["Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
             "Nancy", "Lisa", "Margaret", "Sandra", "Ashley", "Kimberly", "Emily", "Donna", "Michelle", "Maria",
             "Guadalupe", "Rosa", "Ana", "Carmen", "Latoya", "Keisha", "Brittany", "Amber", "Megan", "Rachel"]
US_NICKNAMES = {"James": "Jim", "John": "Jack", "Robert": "Bob", "Michael": "Mike", "William": "Bill",
                "David": "Dave", "Richard": "Rick", "Joseph": "Joe", "Thomas": "Tom", "Charles": "Chuck",
                "Daniel": "Dan", "Matthew": "Matt", "Anthony": "Tony", "Steven": "Steve", "Andrew": "Andy",
                "Joshua": "Josh", "Elizabeth": "Liz", "Patricia": "Patty", "Jennifer": "Jenny", "Margaret": "Peggy",
                "Susan": "Sue", "Jessica": "Jess", "Kimberly": "Kim", "Barbara": "Barb", "Sandra": "Sandy",
                "Jose": "Pepe"}
US_FAMILY = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
             "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson",
             "Walker", "Young", "Allen", "King", "Wright", "Scott", "Nguyen", "Kim", "Patel", "O'Brien",
             "McDonald", "Washington", "Kowalski", "Schmidt"]
HISPANIC_FAMILY = ["Garcia", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Perez", "Sanchez",
                   "Ramirez", "Torres", "Flores", "Rivera", "Gomez", "Diaz", "Reyes", "Cruz", "Morales", "Ortiz"]
US_STREETS = ["Main", "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park", "Sunset",
              "Lincoln", "Jefferson", "Highland", "Willow", "Church", "Spring", "Ridge", "Meadow", "Forest"]
US_STREET_TYPES = [("Street", "St"), ("Avenue", "Ave"), ("Road", "Rd"), ("Drive", "Dr"), ("Lane", "Ln"),
                   ("Boulevard", "Blvd"), ("Court", "Ct"), ("Place", "Pl"), ("Circle", "Cir"), ("Parkway", "Pkwy")]
US_CITIES = [("Springfield", "IL", "627"), ("Houston", "TX", "770"), ("Phoenix", "AZ", "850"),
             ("San Antonio", "TX", "782"), ("Columbus", "OH", "432"), ("Miami", "FL", "331"),
             ("Denver", "CO", "802"), ("Boston", "MA", "021"), ("Newark", "NJ", "071"), ("Fresno", "CA", "937")]
US_AREA_CODES = {"IL": ["217", "312"], "TX": ["713", "210"], "AZ": ["602"], "OH": ["614"], "FL": ["305"],
                 "CO": ["303"], "MA": ["617"], "NJ": ["973"], "CA": ["559"]}
US_MAIL_DOMAINS = ["gmail.com", "yahoo.com", "hotmail.com", "aol.com", "outlook.com", "comcast.net"]
US_NAMESAKES = [("John", "Smith", "M"), ("Maria", "Garcia", "F"), ("Michael", "Johnson", "M"),
                ("Jose", "Hernandez", "M"), ("David", "Nguyen", "M")]
US_PHONE_LAYOUTS = ["({}) {}-{}", "{}-{}-{}", "{}.{}.{}", "{}{}{}", "1{}{}{}", "+1 {} {} {}"]


class USCustomers(Generator):
    name = "us"
    sources = ("web", "store")
    date_layout = "%m/%d/%Y"
    households = {"alone": 0.55, "couple": 0.15, "jrsr": 0.08, "twin": 0.06, "namesake": 0.16}

    # -- people

    def given_names(self, sex: str) -> list[str]:
        return US_MALE if sex == "M" else US_FEMALE

    def full_name(self, sex: str) -> tuple[str, str]:
        """A given name and a family name; three in ten a Hispanic double surname (Garcia Lopez)."""
        family = (f"{self.rng.choice(HISPANIC_FAMILY)} {self.rng.choice(HISPANIC_FAMILY)}"
                  if self.rng.random() < 0.3 else self.rng.choice(US_FAMILY))
        return self.rng.choice(self.given_names(sex)), family

    def new_address(self, near: dict[str, Any] | None = None, city: tuple[str, str, str] | None = None) -> dict:
        rng = self.rng
        city_name, state, zip_prefix = city or rng.choice(US_CITIES)
        return {"number": str(rng.randint(10, 9999)), "street": rng.choice(US_STREETS),
                "type": rng.choice(US_STREET_TYPES), "direction": rng.choice(["", "", "", "N", "S", "E", "W"]),
                "unit": rng.choice([""] * 6 + ["Apt 2B", "Apt 12", "#4"]), "city": city_name, "state": state,
                "zip": f"{zip_prefix}{rng.randint(0, 99):02d}", "plus4": str(rng.randint(1000, 9999))}

    def phone_in(self, state: str) -> PhoneNumber:
        rng = self.rng
        return self.unique_phone(lambda: f"{rng.choice(US_AREA_CODES[state])}{rng.randint(200, 999)}"
                                         f"{rng.randint(0, 9999):04d}", "US")

    def email_of(self, given: str, family: str, birth_date: str) -> str:
        given, family = email_user(given), email_user(family.split(" ")[0])
        user = self.rng.choice([f"{given}.{family}", f"{given[0]}{family}", f"{given}{family}{birth_date[2:4]}",
                                f"{family}{given[0]}{self.rng.randint(1, 999)}", f"{given}_{family}"])
        return self.unique_email(user, self.rng.choice(US_MAIL_DOMAINS))

    def add_us_person(self, given: str, family: str, birth_date: str, address: dict, household: str, *,
                      home_phone: PhoneNumber | None = None, email: str | None = None, suffix: str = "") -> Person:
        """A person with their own landline (85%), mobile (60%) and email (80%), unless the household's landline
        or email is given."""
        rng = self.rng
        if home_phone is None and rng.random() < 0.85:
            home_phone = self.phone_in(address["state"])
        mobile = self.phone_in(address["state"]) if rng.random() < 0.6 else None
        if email is None and rng.random() < 0.8:
            email = self.email_of(given, family, birth_date)
        return self.add_person(given, family, birth_date, address, household, home_phone=home_phone, mobile=mobile,
                               email=email, middle_initial=rng.choice("ABCDEJKLMRST"), suffix=suffix)

    def add_alone(self) -> None:
        sex = self.rng.choice("MF")
        self.add_us_person(*self.full_name(sex), self.birth_date(1945, 2002), self.new_address(), "alone")

    def add_couple(self) -> None:
        """Two people of one family name at one address, on one landline; three couples in ten share an email."""
        sex = self.rng.choice("MF")
        given, family = self.full_name(sex)
        address = self.new_address()
        first = self.add_us_person(given, family, self.birth_date(1945, 2002), address, "couple")
        shared_email = first.email if self.rng.random() < 0.3 else None
        other_given = self.rng.choice(self.given_names("F" if sex == "M" else "M"))
        self.add_us_person(other_given, family, self.birth_date(1945, 2002), address, "couple",
                           home_phone=first.home_phone, email=shared_email)

    def add_jrsr(self) -> None:
        """Father and son of one full name at one address and landline, told apart by Sr / Jr and birth date."""
        _, family = self.full_name("M")
        given, address = self.rng.choice(US_MALE), self.new_address()
        senior = self.add_us_person(given, family, self.birth_date(1945, 1965), address, "jrsr", suffix="Sr")
        self.add_us_person(given, family, self.birth_date(1975, 1995), address, "jrsr",
                           home_phone=senior.home_phone, suffix="Jr")

    def add_twin(self) -> None:
        """Two of one sex, family name, birth date, address and landline, with other given names."""
        sex = self.rng.choice("MF")
        given, family = self.full_name(sex)
        birth_date, address = self.birth_date(1970, 2000), self.new_address()
        first = self.add_us_person(given, family, birth_date, address, "twin")
        other_given = self.rng.choice([name for name in self.given_names(sex) if name != given])
        self.add_us_person(other_given, family, birth_date, address, "twin", home_phone=first.home_phone)

    def add_namesake(self) -> None:
        """Two to four people of one common full name living in one city."""
        given, family, _ = self.rng.choice(US_NAMESAKES)
        city = self.rng.choice(US_CITIES)
        for _ in range(self.rng.randint(2, 4)):
            self.add_us_person(given, family, self.birth_date(1945, 2002), self.new_address(city=city), "namesake")

    # -- records

    def record(self, person: Person, nth: int, source: str, noise: list[str]) -> dict[str, str]:
        given, family = self.noisy_names(person, noise)
        birth_date = self.noisy_birth_date(person, noise, missing_share=0.08)
        address = self.current_address(person, nth, noise, moved_share=0.10)
        street = self.street_line(address)
        if source == "store" and self.rng.random() < 0.5:  # the store's till types in capitals
            given, family, street = given.upper(), family.upper(), street.upper()
        email = person.email if person.email and self.rng.random() < 0.75 else ""
        if email and self.rng.random() < 0.2:
            email = email.upper()
        zip_code = address["zip"] + (f"-{address['plus4']}" if self.rng.random() < 0.3 else "")
        return {"first": given, "last": family, "dob": formatted_date(birth_date, self.date_layout), "email": email,
                "phone": self.phone_as_typed(person), "street": street, "unit": address["unit"],
                "city": address["city"], "state": address["state"], "zip": zip_code,
                "country": self.rng.choice(["US", "USA", "United States", "U.S.A.", ""])}

    def noisy_names(self, person: Person, noise: list[str]) -> tuple[str, str]:
        given, family = person.given, person.family
        if self.sometimes(0.12, noise, "typo_given"):
            given = typo(given, self.rng)
        if self.sometimes(0.10, noise, "typo_family"):
            family = typo(family, self.rng)
        if given in US_NICKNAMES and self.sometimes(0.15, noise, "nickname"):
            given = US_NICKNAMES[given]
        if " " in family and self.sometimes(0.4, noise, "double_surname"):  # Garcia Lopez: Garcia, Garcia-Lopez
            family = family.split(" ")[0] if self.rng.random() < 0.6 else family.replace(" ", "-")
        if self.sometimes(0.2, noise, "middle_initial"):
            given = f"{given} {person.middle_initial}{self.rng.choice(['', '.'])}"
        if person.suffix and self.sometimes(0.5, noise, "suffix"):
            family = f"{family} {person.suffix}{self.rng.choice(['', '.'])}"
        if self.sometimes(0.03, noise, "swapped_names"):
            given, family = family, given
        return given, family

    def street_line(self, address: dict[str, Any]) -> str:
        """12 N. Oak Street, 12 N Oak St., 12 Oak St: the street type in full or abbreviated."""
        full, short = address["type"]
        street_type = full if self.rng.random() < 0.5 else short + self.rng.choice(["", "."])
        direction = address["direction"]
        if direction and self.rng.random() < 0.3:
            direction += "."
        return " ".join(part for part in (address["number"], direction, address["street"], street_type) if part)

    def phone_as_typed(self, person: Person) -> str:
        """The mobile or the landline (80% of records give one), in one of the many US layouts."""
        number = person.mobile if person.mobile and self.rng.random() < 0.5 else person.home_phone
        if number is None or self.rng.random() >= 0.8:
            return ""
        digits = str(number.national_number)
        return self.rng.choice(US_PHONE_LAYOUTS).format(digits[:3], digits[3:6], digits[6:])

    def mapping(self, source: str) -> dict[str, Any]:
        return {"source": source, "entity": "customers", "format": "csv", "encoding": "utf-8", "record_key": ["id"],
                "fields": {"given_name": "first", "family_name": "last",
                           "birth_date": {"column": "dob", "format": self.date_layout}, "email": "email",
                           "phone": {"column": "phone", "region": "US"}, "address_line1": "street",
                           "address_line2": "unit", "city": "city", "state": "state", "postcode": "zip",
                           "country": {"column": "country", "default": "US"}}}


# ---------------------------------------------------------------- eu: German and French customers, shop and CRM

DE_MALE = ["Jürgen", "Klaus", "Stefan", "Thomas", "Andreas", "Michael", "Uwe", "Jörg", "Matthias", "Sören", "Lukas",
           "Maximilian", "Karl-Heinz", "Hans-Peter", "Frank", "Dieter", "Björn", "Tobias"]
DE_FEMALE = ["Ursula", "Monika", "Sabine", "Petra", "Andrea", "Claudia", "Karin", "Käthe", "Birgit", "Renate",
             "Anna-Lena", "Lea", "Sophie", "Jana", "Gisela", "Heike", "Brigitte", "Bärbel"]
DE_FAMILY = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
             "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz",
             "Zimmermann", "Krüger", "Hofmann", "Lange", "Möller", "Groß", "Weiß", "von Bergen",
             "Müller-Lüdenscheidt", "Öztürk"]
DE_STREETS = ["Haupt", "Bahnhof", "Schul", "Garten", "Dorf", "Berg", "Linden", "Kirch", "Wald", "Ring", "Goethe",
              "Schiller", "Friedrich-Ebert-", "Rosen", "Birken"]
DE_CITIES = [("Berlin", "10", "030"), ("München", "80", "089"), ("Köln", "50", "0221"),
             ("Frankfurt am Main", "60", "069"), ("Düsseldorf", "40", "0211"), ("Dresden", "01", "0351"),
             ("Leipzig", "04", "0341")]  # (city, postcode prefix, area code)
DE_MOBILE_PREFIXES = ["0151", "0160", "0171", "0176"]
FR_MALE = ["Jean", "Pierre", "Jean-Pierre", "Jean-Luc", "François", "Michel", "Philippe", "Alain", "Nicolas",
           "Julien", "Frédéric", "Stéphane", "Sébastien", "Mathieu"]
FR_FEMALE = ["Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Anne-Marie", "Céline", "Hélène",
             "Sophie", "Aurélie", "Émilie", "Chloé", "Manon"]
FR_FAMILY = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
             "Lefèvre", "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Le Gall",
             "De La Fontaine", "N'Diaye"]
FR_STREET_TYPES = [("rue", "r."), ("avenue", "av."), ("boulevard", "bd"), ("place", "pl."), ("chemin", "ch."),
                   ("allée", "all.")]
FR_STREETS = ["de la Paix", "Victor Hugo", "Jean Jaurès", "des Lilas", "du Général de Gaulle", "de la République",
              "Pasteur", "des Écoles", "Saint-Michel"]
FR_CITIES = [("Paris", "750", "01"), ("Lyon", "6900", "04"), ("Marseille", "1300", "04"),
             ("Toulouse", "3100", "05"), ("Nantes", "4400", "02"), ("Lille", "5900", "03"),
             ("Strasbourg", "6700", "03")]  # (city, postcode prefix, area code)
EU_NAMESAKES = [("Thomas", "Müller", "DE", "M"), ("Jean", "Martin", "FR", "M"), ("Sabine", "Schmidt", "DE", "F")]
MAIL_DOMAINS = {"DE": ["gmx.de", "web.de", "t-online.de", "gmail.com"],
                "FR": ["orange.fr", "free.fr", "laposte.net", "gmail.com", "sfr.fr"]}


class EuropeanCustomers(Generator):
    name = "eu"
    sources = ("shop", "crm")
    delimiter = ";"
    date_layout = "%d.%m.%Y"
    households = {"alone": 0.6, "couple": 0.18, "twin": 0.08, "namesake": 0.14}

    # -- people

    def full_name(self, country: str, sex: str) -> tuple[str, str]:
        if country == "DE":
            return self.rng.choice(DE_MALE if sex == "M" else DE_FEMALE), self.rng.choice(DE_FAMILY)
        return self.rng.choice(FR_MALE if sex == "M" else FR_FEMALE), self.rng.choice(FR_FAMILY)

    def new_address(self, near: dict[str, Any] | None = None, *, country: str | None = None,
                    city: tuple[str, str, str] | None = None) -> dict[str, Any]:
        """An address in `country` (a move stays in the country of `near`), in `city` if given."""
        rng = self.rng
        country = country or near["country"]
        if country == "DE":
            city_name, postcode_prefix, area_code = city or rng.choice(DE_CITIES)
            return {"country": "DE", "street": rng.choice(DE_STREETS),
                    "number": str(rng.randint(1, 150)) + rng.choice([""] * 8 + ["a", "b"]), "city": city_name,
                    "postcode": f"{postcode_prefix}{rng.randint(100, 999)}", "area_code": area_code}
        city_name, postcode_prefix, area_code = city or rng.choice(FR_CITIES)
        # Paris postcodes name the arrondissement (75001-75020)
        district = f"{rng.randint(1, 20):02d}" if city_name == "Paris" else str(rng.randint(0, 9))
        return {"country": "FR", "type": rng.choice(FR_STREET_TYPES), "street": rng.choice(FR_STREETS),
                "number": str(rng.randint(1, 120)), "bis": rng.choice([""] * 9 + [" bis"]), "city": city_name,
                "postcode": postcode_prefix + district, "area_code": area_code}

    def phone_at(self, address: dict[str, Any], mobile: bool) -> PhoneNumber:
        rng, area_code = self.rng, address["area_code"]
        if address["country"] == "DE":
            if mobile:
                return self.unique_phone(lambda: rng.choice(DE_MOBILE_PREFIXES) + str(rng.randint(10**6, 10**7 - 1)),
                                         "DE")
            # German subscriber numbers are shorter where the area code is longer
            return self.unique_phone(lambda: area_code + str(rng.randint(2 * 10**6, 10**7 - 1))[:11 - len(area_code)],
                                     "DE")
        prefix = (lambda: rng.choice(["06", "07"])) if mobile else (lambda: area_code)
        return self.unique_phone(lambda: f"{prefix()}{rng.randint(0, 10**8 - 1):08d}", "FR")

    def email_of(self, given: str, family: str, birth_date: str, country: str) -> str:
        given, family = email_user(given), email_user(family)
        user = self.rng.choice([f"{given}.{family}", f"{given[0]}.{family}", f"{given}{family}{birth_date[2:4]}",
                                f"{family}.{given}"])
        return self.unique_email(user, self.rng.choice(MAIL_DOMAINS[country]))

    def add_eu_person(self, given: str, family: str, birth_date: str, address: dict, household: str, *,
                      home_phone: PhoneNumber | None = None, email: str | None = None) -> Person:
        """A person with their own landline (60%), mobile (70%) and email (80%), unless the household's landline
        or email is given."""
        rng = self.rng
        if home_phone is None and rng.random() < 0.6:
            home_phone = self.phone_at(address, mobile=False)
        mobile = self.phone_at(address, mobile=True) if rng.random() < 0.7 else None
        if email is None and rng.random() < 0.8:
            email = self.email_of(given, family, birth_date, address["country"])
        return self.add_person(given, family, birth_date, address, household, home_phone=home_phone, mobile=mobile,
                               email=email)

    def country(self) -> str:
        return self.rng.choice(["DE", "DE", "FR"])

    def add_alone(self) -> None:
        country = self.country()
        given, family = self.full_name(country, self.rng.choice("MF"))
        self.add_eu_person(given, family, self.birth_date(), self.new_address(country=country), "alone")

    def add_couple(self) -> None:
        """Two people of one family name at one address, on one landline; three couples in ten share an email."""
        country, sex = self.country(), self.rng.choice("MF")
        given, family = self.full_name(country, sex)
        address = self.new_address(country=country)
        first = self.add_eu_person(given, family, self.birth_date(), address, "couple")
        other_given, _ = self.full_name(country, "F" if sex == "M" else "M")
        shared_email = first.email if self.rng.random() < 0.3 else None
        self.add_eu_person(other_given, family, self.birth_date(), address, "couple", home_phone=first.home_phone,
                           email=shared_email)

    def add_twin(self) -> None:
        """Two of one sex, family name, birth date, address and landline, with other given names."""
        country, sex = self.country(), self.rng.choice("MF")
        given, family = self.full_name(country, sex)
        birth_date, address = self.birth_date(1960, 2000), self.new_address(country=country)
        first = self.add_eu_person(given, family, birth_date, address, "twin")
        other_given = given
        while other_given == given:
            other_given, _ = self.full_name(country, sex)
        self.add_eu_person(other_given, family, birth_date, address, "twin", home_phone=first.home_phone)

    def add_namesake(self) -> None:
        """Two to four people of one common full name living in one city."""
        given, family, country, _ = self.rng.choice(EU_NAMESAKES)
        city = self.rng.choice(DE_CITIES if country == "DE" else FR_CITIES)
        for _ in range(self.rng.randint(2, 4)):
            self.add_eu_person(given, family, self.birth_date(), self.new_address(country=country, city=city),
                               "namesake")

    # -- records

    def record(self, person: Person, nth: int, source: str, noise: list[str]) -> dict[str, str]:
        given, family = self.noisy_names(person, noise)
        if source == "crm" and self.rng.random() < 0.4:  # the CRM keeps some names in capitals
            given, family = given.upper(), family.upper()
        birth_date = self.noisy_birth_date(person, noise, missing_share=0.08)
        address = self.current_address(person, nth, noise, moved_share=0.10)
        street, postcode, country = (self.german_address(address) if address["country"] == "DE"
                                     else self.french_address(address))
        email = person.email if person.email and self.rng.random() < 0.75 else ""
        return {"vorname": given, "nachname": family,
                "geburtsdatum": formatted_date(birth_date, self.date_layout), "email": email,
                "telefon": self.phone_as_typed(person, source), "strasse": street, "plz": postcode,
                "ort": address["city"], "land": country}

    def noisy_names(self, person: Person, noise: list[str]) -> tuple[str, str]:
        given, family = person.given, person.family
        if self.sometimes(0.10, noise, "typo_given"):
            given = typo(given, self.rng)
        if self.sometimes(0.08, noise, "typo_family"):
            family = typo(family, self.rng)
        if self.sometimes(0.3, noise, "umlauts_spelled_out"):
            given, family = umlauts_spelled_out(given), umlauts_spelled_out(family)
        if "-" in given and self.sometimes(0.3, noise, "hyphen_as_space"):  # Karl Heinz, Jean Pierre
            given = given.replace("-", " ")
        if self.sometimes(0.03, noise, "swapped_names"):
            given, family = family, given
        return given, family

    def german_address(self, address: dict[str, Any]) -> tuple[str, str, str]:
        """(street line, postcode, country) as typed: Hauptstraße / Hauptstr. / Hauptstrasse 12, D-10115."""
        rng, street = self.rng, address["street"]
        if street == "Ring":
            suffix = ""
        elif street.endswith("-"):  # Friedrich-Ebert-Straße: the suffix is a word of its own
            suffix = rng.choice(["Straße", "Str.", "Strasse"])
        else:
            suffix = rng.choice(["straße", "str.", "strasse", "Straße", "Str."])
        separator = " " if rng.random() < 0.9 else ", "
        postcode = address["postcode"] if rng.random() < 0.8 else f"D-{address['postcode']}"
        return f"{street}{suffix}{separator}{address['number']}", postcode, rng.choice(
            ["DE", "Deutschland", "Germany", "DEU"])

    def french_address(self, address: dict[str, Any]) -> tuple[str, str, str]:
        """(street line, postcode, country) as typed: 12 bis, rue de la Paix / 12 r. de la Paix, F-75012."""
        rng = self.rng
        full, short = address["type"]
        street_type = full if rng.random() < 0.6 else short
        line = f"{address['number']}{address['bis']}{rng.choice([' ', ', '])}{street_type} {address['street']}"
        postcode = address["postcode"] if rng.random() < 0.85 else f"F-{address['postcode']}"
        return line, postcode, rng.choice(["FR", "France", "FRA"])

    def phone_as_typed(self, person: Person, source: str) -> str:
        """The mobile or the landline (80% of records give one): the shop stores +49 30 1234567, the CRM what the
        customer said (030 1234567, half the time without spaces or slashes)."""
        number = person.mobile if person.mobile and self.rng.random() < 0.5 else person.home_phone
        if number is None or self.rng.random() >= 0.8:
            return ""
        if source == "shop":
            return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        return national.replace(" ", "").replace("/", "") if self.rng.random() < 0.5 else national

    def mapping(self, source: str) -> dict[str, Any]:
        # a national number is read in the record's own country (land); DE when the country says nothing
        return {"source": source, "entity": "customers", "format": "csv", "encoding": "utf-8",
                "delimiter": self.delimiter, "record_key": ["id"],
                "fields": {"given_name": "vorname", "family_name": "nachname",
                           "birth_date": {"column": "geburtsdatum", "format": self.date_layout}, "email": "email",
                           "phone": {"column": "telefon", "region": "DE"}, "phone_region": "land",
                           "address_line1": "strasse", "postcode": "plz", "city": "ort", "country": "land"}}


# ---------------------------------------------------------------- sparse: Spanish customers, few emails, no phones

ES_MALE = ["José", "Antonio", "Manuel", "Francisco", "Juan", "David", "Javier", "Daniel", "Carlos", "Jesús",
           "Alejandro", "Miguel", "José Luis", "Juan Carlos", "Pablo", "Sergio"]
ES_FEMALE = ["María", "Carmen", "Ana", "Laura", "Isabel", "María José", "María Carmen", "Lucía", "Cristina", "Marta",
             "Pilar", "Elena", "Rosa", "Paula", "Raquel", "Dolores"]
ES_FAMILY = ["García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez",
             "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Navarro",
             "Torres"]
ES_STREET_TYPES = [("Calle", "C/"), ("Avenida", "Avda."), ("Plaza", "Pza."), ("Paseo", "Pº")]
ES_STREETS = ["Mayor", "de la Constitución", "Real", "del Sol", "de Alcalá", "San Juan", "Gran Vía", "de Goya"]
ES_CITIES = [("Madrid", "28"), ("Barcelona", "08"), ("Valencia", "46"), ("Sevilla", "41"), ("Zaragoza", "50")]
ES_FLOORS = ["", "1º A", "2º B", "3º Izq", "4º D", "Bajo"]
ES_NICKNAMES = {"José": "Pepe", "Francisco": "Paco", "Manuel": "Manolo", "Dolores": "Lola", "Jesús": "Chuy",
                "Antonio": "Toño", "Pilar": "Pili"}
ES_NAMESAKES = [("María", "García López"), ("José", "Fernández García"), ("Antonio", "López Martínez")]


class SparseCustomers(Generator):
    name = "sparse"
    sources = ("tienda", "fidelidad")
    date_layout = "%d/%m/%Y"
    households = {"alone": 0.6, "sibling": 0.15, "parentchild": 0.10, "namesake": 0.15}
    records_per_person = {1: 0.25, 2: 0.5, 3: 0.25}

    # -- people

    def given_names(self, sex: str) -> list[str]:
        return ES_MALE if sex == "M" else ES_FEMALE

    def family_names(self) -> str:
        """Spaniards carry two family names, the father's then the mother's."""
        return f"{self.rng.choice(ES_FAMILY)} {self.rng.choice(ES_FAMILY)}"

    def new_address(self, near: dict[str, Any] | None = None, city: tuple[str, str] | None = None) -> dict:
        rng = self.rng
        city_name, postcode_prefix = city or rng.choice(ES_CITIES)
        return {"type": rng.choice(ES_STREET_TYPES), "street": rng.choice(ES_STREETS),
                "number": str(rng.randint(1, 200)), "floor": rng.choice(ES_FLOORS), "city": city_name,
                "postcode": f"{postcode_prefix}{rng.randint(0, 80):03d}"}

    def add_es_person(self, given: str, family: str, birth_date: str, address: dict, household: str) -> Person:
        """One in ten gives an email (their first given name and two digits); nobody a phone."""
        email = None
        if self.rng.random() < 0.1:
            user = email_user(given.split(" ")[0]) + str(self.rng.randint(10, 99))
            email = self.unique_email(user, "telefonica.net")
        return self.add_person(given, family, birth_date, address, household, email=email)

    def add_alone(self) -> None:
        given = self.rng.choice(self.given_names(self.rng.choice("MF")))
        self.add_es_person(given, self.family_names(), self.birth_date(), self.new_address(), "alone")

    def add_sibling(self) -> None:
        """Two of one sex with both family names and the address in common."""
        names = self.given_names(self.rng.choice("MF"))
        given, family, address = self.rng.choice(names), self.family_names(), self.new_address()
        self.add_es_person(given, family, self.birth_date(1970, 2000), address, "sibling")
        other_given = self.rng.choice([name for name in names if name != given])
        self.add_es_person(other_given, family, self.birth_date(1970, 2000), address, "sibling")

    def add_parentchild(self) -> None:
        """Juan padre and Juan hijo: one full name at one address, a generation apart."""
        given = self.rng.choice(self.given_names(self.rng.choice("MF")))
        family, address = self.family_names(), self.new_address()
        self.add_es_person(given, family, self.birth_date(1940, 1960), address, "parentchild")
        self.add_es_person(given, family, self.birth_date(1975, 1995), address, "parentchild")

    def add_namesake(self) -> None:
        """Two to four people of one common full name living in one city."""
        given, family = self.rng.choice(ES_NAMESAKES)
        city = self.rng.choice(ES_CITIES)
        for _ in range(self.rng.randint(2, 4)):
            self.add_es_person(given, family, self.birth_date(), self.new_address(city=city), "namesake")

    # -- records

    def record(self, person: Person, nth: int, source: str, noise: list[str]) -> dict[str, str]:
        given, family = self.noisy_names(person, noise)
        birth_date = self.noisy_birth_date(person, noise, missing_share=0.05)
        address = self.current_address(person, nth, noise, moved_share=0.08)
        full, short = address["type"]
        street_type = full if self.rng.random() < 0.5 else short
        separator = self.rng.choice([", ", " ", " nº "])
        email = person.email if person.email and self.rng.random() < 0.7 else ""
        return {"nombre": given, "apellidos": family, "nacimiento": formatted_date(birth_date, self.date_layout),
                "email": email, "direccion": f"{street_type} {address['street']}{separator}{address['number']}",
                "piso": address["floor"], "cp": address["postcode"], "ciudad": address["city"], "pais": "ES"}

    def noisy_names(self, person: Person, noise: list[str]) -> tuple[str, str]:
        given, family = person.given, person.family
        if self.sometimes(0.10, noise, "typo_given"):
            given = typo(given, self.rng)
        if self.sometimes(0.10, noise, "typo_family"):
            family = typo(family, self.rng)
        if self.sometimes(0.3, noise, "first_family_name_only"):
            family = family.split(" ")[0]
        if given in ES_NICKNAMES and self.sometimes(0.1, noise, "nickname"):
            given = ES_NICKNAMES[given]
        if self.sometimes(0.3, noise, "no_accents"):
            given, family = without_accents(given), without_accents(family)
        return given, family

    def mapping(self, source: str) -> dict[str, Any]:
        return {"source": source, "entity": "customers", "format": "csv", "encoding": "utf-8", "record_key": ["id"],
                "fields": {"given_name": "nombre", "family_name": "apellidos",
                           "birth_date": {"column": "nacimiento", "format": self.date_layout}, "email": "email",
                           "address_line1": "direccion", "address_line2": "piso", "postcode": "cp",
                           "city": "ciudad", "country": "pais"}}


# ---------------------------------------------------------------- lowlands: Dutch, Belgian, Swedish, Danish customers

# (the name a Dutch or Fleming goes by, their official given names): the till's loyalty form asks for the initials
# of the official names (voorletters), so Kees Bakker is C. Bakker there and Gert-Jan, G.J.
NL_MALE = [("Jan", "Johannes"), ("Piet", "Petrus"), ("Kees", "Cornelis"), ("Henk", "Hendrik"), ("Willem", "Willem"),
           ("Dirk", "Dirk"), ("Bram", "Abraham"), ("Sander", "Alexander"), ("Thijs", "Matthijs"),
           ("Daan", "Daniël"), ("Ruud", "Rudolf"), ("Joost", "Justus"), ("Maarten", "Maarten"),
           ("Gert-Jan", "Gerrit Jan"), ("Luuk", "Lucas")]
NL_FEMALE = [("Anna", "Anna"), ("Marieke", "Maria"), ("Saskia", "Saskia"), ("Femke", "Femke"), ("Ingrid", "Ingrid"),
             ("Annemiek", "Anna Maria"), ("Sanne", "Susanna"), ("Lotte", "Charlotte"), ("Els", "Elisabeth"),
             ("Mieke", "Maria"), ("Fleur", "Fleur"), ("Noor", "Eleonora"), ("Eva", "Eva"), ("Ilse", "Ilse")]
# (tussenvoegsel, family name): Jan van der Berg is filed under B and written "Berg, van der" as often as not
NL_FAMILY = [("", "Jansen"), ("de", "Vries"), ("van den", "Berg"), ("van der", "Berg"), ("van", "Dijk"),
             ("", "Bakker"), ("", "Visser"), ("", "Smit"), ("", "Meijer"), ("de", "Boer"), ("", "Mulder"),
             ("de", "Groot"), ("", "Bos"), ("", "Vos"), ("", "Peters"), ("", "Hendriks"), ("van", "Leeuwen"),
             ("", "Dekker"), ("", "Brouwer"), ("de", "Wit"), ("", "Dijkstra"), ("", "Smits"), ("de", "Graaf"),
             ("van der", "Meer"), ("van der", "Linden"), ("", "Kok"), ("", "Jacobs"), ("de", "Haan"),
             ("", "Vermeulen"), ("van den", "Heuvel")]
BE_MALE = [("Luc", "Lucas"), ("Pieter", "Pieter"), ("Koen", "Koenraad"), ("Wim", "Willem"), ("Tom", "Thomas"),
           ("Bart", "Bartholomeus"), ("Jens", "Jens"), ("Stijn", "Stijn")]
BE_FEMALE = [("Sofie", "Sofie"), ("An", "Anna"), ("Katrien", "Katrien"), ("Els", "Elisabeth"), ("Lien", "Lien"),
             ("Hilde", "Hilde"), ("Nathalie", "Nathalie")]
BE_FAMILY = [("", "Peeters"), ("", "Janssens"), ("", "Maes"), ("", "Jacobs"), ("", "Mertens"), ("", "Willems"),
             ("", "Claes"), ("", "Goossens"), ("", "Wouters"), ("De", "Smet"), ("Van", "Damme"), ("", "Dubois")]
SE_MALE = ["Lars", "Anders", "Johan", "Per", "Mikael", "Erik", "Karl", "Björn", "Göran", "Håkan", "Nils", "Sven"]
SE_FEMALE = ["Anna", "Eva", "Maria", "Karin", "Åsa", "Birgitta", "Kerstin", "Ingrid", "Märta", "Linnéa", "Elin",
             "Sara"]
SE_FAMILY = ["Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson", "Persson",
             "Svensson", "Gustafsson", "Lindström", "Lindqvist", "Åberg", "Sjöberg", "Björk", "Ström", "Holmgren"]
DK_MALE = ["Søren", "Jens", "Niels", "Lars", "Mads", "Rasmus", "Jørgen", "Anders", "Henrik", "Mikkel"]
DK_FEMALE = ["Mette", "Hanne", "Lene", "Susanne", "Birgit", "Camilla", "Sørine", "Karen", "Kirsten", "Maja"]
DK_FAMILY = ["Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
             "Rasmussen", "Jørgensen", "Madsen", "Kristensen", "Møller", "Østergaard", "Kjær"]
LOWLANDS_COUNTRIES = {"NL": 0.5, "BE": 0.15, "SE": 0.2, "DK": 0.15}
LOWLANDS_CITIES = {
    "NL": [("Amsterdam", "10"), ("Rotterdam", "30"), ("Utrecht", "35"), ("Den Haag", "25"), ("Eindhoven", "56")],
    "BE": [("Antwerpen", "20"), ("Gent", "90"), ("Leuven", "30"), ("Brugge", "80")],
    "SE": [("Stockholm", "11"), ("Göteborg", "41"), ("Malmö", "21"), ("Uppsala", "75")],
    "DK": [("København", "2"), ("Aarhus", "8"), ("Odense", "5")]}
LOWLANDS_STREETS = {
    "NL": ["Kerkstraat", "Dorpsstraat", "Molenweg", "Stationsweg", "Beukenlaan", "Schoolstraat", "Prinsengracht"],
    "BE": ["Kerkstraat", "Stationsstraat", "Nieuwstraat", "Molenstraat", "Dorpstraat"],
    "SE": ["Storgatan", "Kungsgatan", "Drottninggatan", "Skolgatan", "Järnvägsgatan", "Ringvägen"],
    "DK": ["Nørregade", "Vestergade", "Østergade", "Søndergade", "Strandvejen", "Åboulevarden"]}
LOWLANDS_COUNTRY_WORDS = {"NL": ["NL", "Nederland", "Netherlands"], "BE": ["BE", "België", "Belgium"],
                          "SE": ["SE", "Sverige", "Sweden"], "DK": ["DK", "Danmark", "Denmark"]}
LOWLANDS_MAIL_DOMAINS = {"NL": ["ziggo.nl", "kpnmail.nl", "gmail.com", "hotmail.com", "xs4all.nl"],
                         "BE": ["telenet.be", "skynet.be", "gmail.com"],
                         "SE": ["telia.com", "gmail.com", "hotmail.se", "bredband.net"],
                         "DK": ["gmail.com", "hotmail.dk", "mail.dk", "jubii.dk"]}
LOWLANDS_NAMESAKES = {"NL": ("Jan", "Johannes", "de", "Vries"), "BE": ("Luc", "Lucas", "", "Peeters"),
                      "SE": ("Anna", "Anna", "", "Andersson"), "DK": ("Jens", "Jens", "", "Jensen")}
NL_POSTCODE_LETTERS = "ABCDEGHJKLMNPRSTVWXZ"


def nordic_letters_as_digraphs(text: str) -> str:
    """How ø, å, æ, ä and ö are written without them: Søren -> Soeren, Åberg -> Aaberg, Björk -> Bjoerk."""
    for letter, spelled in (("ø", "oe"), ("Ø", "Oe"), ("å", "aa"), ("Å", "Aa"), ("ä", "ae"), ("Ä", "Ae"),
                            ("ö", "oe"), ("Ö", "Oe"), ("æ", "ae"), ("Æ", "Ae"), ("ü", "ue")):
        text = text.replace(letter, spelled)
    return text


def plain_letters(text: str) -> str:
    """The letters on an English keyboard: accents dropped, ø as o and æ as ae (Søren -> Soren, Daniël -> Daniel),
    which no Unicode decomposition gives."""
    for letter, plain in (("ø", "o"), ("Ø", "O"), ("æ", "ae"), ("Æ", "Ae")):
        text = text.replace(letter, plain)
    return without_accents(text)


def initials(names: str) -> str:
    """Voorletters: Gerrit Jan -> G.J."""
    return "".join(f"{word[0]}." for word in names.replace("-", " ").split())


def phone_as_any_layout(number: PhoneNumber, rng: random.Random) -> str:
    """National (06 12345678), international (+31 6 12345678) or E.164 (+31612345678)."""
    draw = rng.random()
    layout = (PhoneNumberFormat.NATIONAL if draw < 0.4 else PhoneNumberFormat.INTERNATIONAL if draw < 0.8
              else PhoneNumberFormat.E164)
    return phonenumbers.format_number(number, layout)


class LowlandsCustomers(Generator):
    name = "lowlands"
    sources = ("webshop", "kassa")
    delimiter = ";"
    date_layout = "%d-%m-%Y"
    households = {"alone": 0.55, "couple": 0.15, "twin": 0.07, "neighbour": 0.07, "namesake": 0.16}
    records_per_person = {1: 0.25, 2: 0.5, 3: 0.25}

    # -- people

    def country(self) -> str:
        return self.rng.choices(list(LOWLANDS_COUNTRIES), list(LOWLANDS_COUNTRIES.values()))[0]

    def full_name(self, country: str, sex: str) -> tuple[str, str, str, str]:
        """(given name, official given names, tussenvoegsel, family name); Swedes and Danes have no particle and
        go by their official name."""
        rng = self.rng
        if country in ("NL", "BE"):
            given, official = rng.choice((NL_MALE if sex == "M" else NL_FEMALE) if country == "NL"
                                         else (BE_MALE if sex == "M" else BE_FEMALE))
            particle, family = rng.choice(NL_FAMILY if country == "NL" else BE_FAMILY)
            return given, official, particle, family
        if country == "SE":
            given = rng.choice(SE_MALE if sex == "M" else SE_FEMALE)
            return given, given, "", rng.choice(SE_FAMILY)
        given = rng.choice(DK_MALE if sex == "M" else DK_FEMALE)
        return given, given, "", rng.choice(DK_FAMILY)

    def new_address(self, near: dict[str, Any] | None = None, *, country: str = "NL",
                    city: tuple[str, str] | None = None) -> dict[str, Any]:
        """An address of the country (in `city`); near an address: another street of its town (a move). NL
        postcodes 1011 AB, Belgian and Danish ones of four digits, Swedish 114 55; a Dutch or Belgian house one in
        five with a letter (12A), a Belgian flat's box (bus 3), a Swedish flat (lgh 1102), a Danish floor (2. tv)."""
        rng = self.rng
        if near is not None:
            country, city = near["country"], (near["city"], near["prefix"])
        city_name, prefix = city or rng.choice(LOWLANDS_CITIES[country])
        if country == "NL":
            postcode = f"{prefix}{rng.randint(10, 99)} {rng.choice(NL_POSTCODE_LETTERS)}" \
                       f"{rng.choice(NL_POSTCODE_LETTERS)}"
        elif country == "BE":
            postcode = f"{prefix[0]}{rng.randint(0, 9)}{prefix[1]}0"
        elif country == "SE":
            postcode = f"{prefix}{rng.randint(1, 9)} {rng.randint(10, 99)}"
        else:
            postcode = f"{prefix}{rng.randint(0, 9)}{rng.randint(0, 9)}0"
        letter = rng.choice("ABC") if country in ("NL", "BE") and rng.random() < 0.2 else ""
        unit = ""
        if country == "BE" and rng.random() < 0.2:
            unit = f" bus {rng.randint(1, 9)}"
        elif country == "SE" and rng.random() < 0.3:
            unit = f" lgh {rng.randint(1001, 1304)}"
        elif country == "DK" and rng.random() < 0.3:
            unit = f", {rng.randint(1, 4)}. {rng.choice(['tv', 'th', 'mf'])}"
        return {"country": country, "street": rng.choice(LOWLANDS_STREETS[country]),
                "number": str(rng.randint(1, 180)), "letter": letter, "unit": unit, "city": city_name,
                "prefix": prefix, "postcode": postcode}

    def mobile_in(self, country: str) -> PhoneNumber:
        rng = self.rng
        draw = {"NL": lambda: f"06{rng.randint(10000000, 99999999)}",
                "BE": lambda: f"04{rng.choice('789')}{rng.randint(1000000, 9999999)}",
                "SE": lambda: f"07{rng.choice('0236')}{rng.randint(1000000, 9999999)}",
                "DK": lambda: f"{rng.choice('2345')}{rng.randint(1000000, 9999999)}"}[country]
        return self.unique_phone(draw, country)

    def landline_in(self, country: str) -> PhoneNumber:
        rng = self.rng
        draw = {"NL": lambda: f"020{rng.randint(1000000, 9999999)}",
                "BE": lambda: f"03{rng.randint(1000000, 9999999)}",
                "SE": lambda: f"08{rng.randint(1000000, 9999999)}",
                "DK": lambda: f"{rng.choice('3479')}{rng.randint(1000000, 9999999)}"}[country]
        return self.unique_phone(draw, country)

    def add_ll_person(self, name: tuple[str, str, str, str], birth_date: str, address: dict[str, Any],
                      household: str, *, home_phone: PhoneNumber | None = None, email: str | None = None) -> Person:
        """A person with a mobile (75%) and an email (80%: jan.vandervries, jvandervries, jan42, vries.jan at a
        provider of their country) unless the household's is given; only a couple or twins have a landline."""
        rng = self.rng
        given, official, particle, family = name
        country = address["country"]
        mobile = self.mobile_in(country) if rng.random() < 0.75 else None
        if email is None and rng.random() < 0.8:
            user = rng.choice([f"{given}.{particle}{family}", f"{given[0]}{particle}{family}",
                               f"{given}{rng.randint(10, 99)}", f"{family}.{given}"])
            email = self.unique_email(email_user(plain_letters(user)).replace("-", ""),
                                      rng.choice(LOWLANDS_MAIL_DOMAINS[country]))
        return self.add_person(given, family, birth_date, address, household, home_phone=home_phone,
                               mobile=mobile, email=email, particle=particle, official_given=official)

    def add_alone(self) -> None:
        country = self.country()
        self.add_ll_person(self.full_name(country, self.rng.choice("MF")), self.birth_date(1940, 2004),
                           self.new_address(country=country), "alone")

    def add_couple(self) -> None:
        """Two people at one address, on one landline (60% have one), of another sex and given name; six couples
        in ten go by one family name; three in ten share an email."""
        rng, country, sex = self.rng, self.country(), self.rng.choice("MF")
        name, address = self.full_name(country, sex), self.new_address(country=country)
        landline = self.landline_in(country) if rng.random() < 0.6 else None
        first = self.add_ll_person(name, self.birth_date(1945, 1995), address, "couple", home_phone=landline)
        other = name
        while other[0] == name[0]:
            other = self.full_name(country, "F" if sex == "M" else "M")
        if rng.random() < 0.6:
            other = (other[0], other[1], name[2], name[3])
        self.add_ll_person(other, self.birth_date(1945, 1995), address, "couple", home_phone=landline,
                           email=first.email if rng.random() < 0.3 else None)

    def add_twin(self) -> None:
        """Two of one sex, family name, birth date, address and landline (half have one), whose given names start
        with other letters (so their initials differ)."""
        rng, country, sex = self.rng, self.country(), self.rng.choice("MF")
        name, address = self.full_name(country, sex), self.new_address(country=country)
        birth_date = self.birth_date(1960, 2004)
        landline = self.landline_in(country) if rng.random() < 0.5 else None
        self.add_ll_person(name, birth_date, address, "twin", home_phone=landline)
        other = name
        while other[0][0] == name[0][0]:
            other = self.full_name(country, sex)
        self.add_ll_person((other[0], other[1], name[2], name[3]), birth_date, address, "twin", home_phone=landline)

    def add_neighbour(self) -> None:
        """Two of one family name and sex next door in one postcode: 12 and 12A, or 12 and 14 (the given name may
        be the same too)."""
        country, sex = self.country(), self.rng.choice("MF")
        name, address = self.full_name(country, sex), self.new_address(country=country)
        self.add_ll_person(name, self.birth_date(1945, 2000), address, "neighbour")
        next_door = dict(address)
        if country in ("NL", "BE") and not address["letter"]:
            next_door["letter"] = "A"
        else:
            next_door["number"] = str(int(address["number"]) + 2)
        other = self.full_name(country, sex)
        self.add_ll_person((other[0], other[1], name[2], name[3]), self.birth_date(1945, 2000), next_door,
                           "neighbour")

    def add_namesake(self) -> None:
        """Two to four people of the country's commonest full name (Jan de Vries, Anna Andersson) in one city."""
        country = self.country()
        city = self.rng.choice(LOWLANDS_CITIES[country])
        for _ in range(self.rng.randint(2, 4)):
            self.add_ll_person(LOWLANDS_NAMESAKES[country], self.birth_date(1945, 2000),
                               self.new_address(country=country, city=city), "namesake")

    # -- records

    def record(self, person: Person, nth: int, source: str, noise: list[str]) -> dict[str, str]:
        rng = self.rng
        country = person.address["country"]
        given, family, particle_column = self.noisy_names(person, source, noise)
        birth_date = self.noisy_birth_date(person, noise, missing_share=0.4 if source == "webshop" else 0.7)
        address = self.current_address(person, nth, noise, moved_share=0.05)
        email = person.email if person.email and rng.random() < (0.85 if source == "webshop" else 0.3) else ""
        phones = [number for number in (person.mobile, person.home_phone) if number]
        phone = (phone_as_any_layout(rng.choice(phones), rng)
                 if phones and rng.random() < (0.5 if source == "webshop" else 0.8) else "")
        return {"voornaam": given, "tussenvoegsel": particle_column, "achternaam": family,
                "geboortedatum": formatted_date(birth_date, self.date_layout), "email": email, "telefoon": phone,
                "adres": self.street_line(address, noise), "postcode": self.postcode_as_typed(address, noise),
                "plaats": address["city"], "land": rng.choice(LOWLANDS_COUNTRY_WORDS[country])}

    def noisy_names(self, person: Person, source: str, noise: list[str]) -> tuple[str, str, str]:
        """(given name, family name, tussenvoegsel column): the till's form takes Dutch and Belgian initials; the
        particle in a column of its own (which the mapping does not read), after the name (Berg, van der),
        capitalised (Van der Berg) or before it; Nordic letters as two (Soeren) or plain (Soren)."""
        rng = self.rng
        given, family, particle = person.given, person.family, person.particle
        country = person.address["country"]
        if source == "kassa" and country in ("NL", "BE") and self.sometimes(0.3, noise, "voorletters"):
            given = initials(person.official_given)
        elif self.sometimes(0.07, noise, "typo_given"):
            given = typo(given, rng)
        if self.sometimes(0.07, noise, "typo_family"):
            family = typo(family, rng)
        particle_column = ""
        if particle:
            draw = rng.random()
            if draw < 0.25:
                particle_column = particle
                noise.append("particle_column")
            elif draw < 0.45:
                family = f"{family}, {particle}"
                noise.append("particle_after")
            elif draw < 0.55:
                family = f"{particle[0].upper()}{particle[1:]} {family}"
            else:
                family = f"{particle} {family}"
        if country in ("SE", "DK") and self.sometimes(0.3, noise, "digraphs"):
            given, family = nordic_letters_as_digraphs(given), nordic_letters_as_digraphs(family)
        elif self.sometimes(0.15, noise, "plain_letters"):
            given, family = plain_letters(given), plain_letters(family)
        if self.sometimes(0.1, noise, "upper_case"):
            given, family = given.upper(), family.upper()
        return given, family, particle_column

    def street_line(self, address: dict[str, Any], noise: list[str]) -> str:
        """Kerkstraat 12A / 12-A / 12 A / 12a, bus 3 / lgh 1102 / , 2. tv; the street sometimes in plain letters."""
        rng = self.rng
        number = address["number"]
        if address["letter"]:
            layout = rng.choice(["{n}{l}", "{n}-{l}", "{n} {l}", "{n}{lower}"])
            number = layout.format(n=number, l=address["letter"], lower=address["letter"].lower())
            if layout != "{n}{l}":
                noise.append("house_letter_written_" + {"{n}-{l}": "dash", "{n} {l}": "space",
                                                         "{n}{lower}": "lower"}[layout])
        street = address["street"]
        if rng.random() < 0.15 and plain_letters(street) != street:
            street = plain_letters(street)
            noise.append("street_plain_letters")
        return f"{street} {number}{address['unit']}"

    def postcode_as_typed(self, address: dict[str, Any], noise: list[str]) -> str:
        """1011 AB / 1011AB / 1011 ab / NL-1011 AB; S-114 55, SE-114 55, 11455; DK-2100; B-2000."""
        rng, postcode, country = self.rng, address["postcode"], address["country"]
        draw = rng.random()
        if country == "NL":
            if draw < 0.05:
                noise.append("postcode_prefix")
                return f"NL-{postcode}"
            return rng.choice([postcode, postcode.replace(" ", ""), postcode.lower(), postcode])
        if country == "SE" and draw < 0.25:
            noise.append("postcode_prefix")
            return rng.choice(["S-", "SE-"]) + postcode
        if country == "SE" and draw < 0.5:
            return postcode.replace(" ", "")
        if country in ("DK", "BE") and draw < 0.15:
            noise.append("postcode_prefix")
            return ("DK-" if country == "DK" else "B-") + postcode
        return postcode

    def mapping(self, source: str) -> dict[str, Any]:
        # the tussenvoegsel column is left unread (as a mapping written for family names only would); a national
        # number is read in the record's own country (land); NL when the country says nothing
        return {"source": source, "entity": "customers", "format": "csv", "encoding": "utf-8",
                "delimiter": self.delimiter, "record_key": ["id"],
                "fields": {"given_name": "voornaam", "family_name": "achternaam",
                           "birth_date": {"column": "geboortedatum", "format": self.date_layout}, "email": "email",
                           "phone": {"column": "telefoon", "region": "NL"}, "phone_region": "land",
                           "address_line1": "adres", "postcode": "postcode", "city": "plaats", "country": "land"}}


# ---------------------------------------------------------------- iberia: Spanish and Portuguese families

IB_ES_MALE = ["José", "Juan", "Antonio", "Manuel", "Francisco", "Javier", "Carlos", "Miguel", "Pedro", "Luis",
              "Jesús", "Pablo"]
IB_ES_FEMALE = ["María", "Carmen", "Ana", "Isabel", "Dolores", "Pilar", "Laura", "Cristina", "Marta", "Lucía",
                "Teresa", "Rosa"]
IB_ES_FAMILY = ["García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez",
                "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Álvarez", "Muñoz", "Romero", "Alonso",
                "Gutiérrez", "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil", "Ramírez", "Serrano",
                "Blanco", "Molina"]
PT_MALE = ["João", "José", "António", "Manuel", "Francisco", "Pedro", "Rui", "Paulo", "Luís", "Carlos", "Miguel",
           "Tiago"]
PT_FEMALE = ["Maria", "Ana", "Joana", "Sofia", "Catarina", "Inês", "Marta", "Teresa", "Rita", "Helena", "Isabel",
             "Beatriz"]
PT_FAMILY = ["Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues", "Martins", "Jesus", "Sousa",
             "Fernandes", "Gonçalves", "Gomes", "Lopes", "Marques", "Alves", "Almeida", "Ribeiro", "Pinto",
             "Carvalho"]
IB_CITIES = {"ES": [("Madrid", "28"), ("Barcelona", "08"), ("Valencia", "46"), ("Sevilla", "41"), ("Zaragoza", "50")],
             "PT": [("Lisboa", "1"), ("Porto", "4"), ("Braga", "47"), ("Coimbra", "30")]}
IB_STREET_TYPES = {"ES": [("Calle", "C/"), ("Avenida", "Avda."), ("Plaza", "Pza."), ("Paseo", "Pº")],
                   "PT": [("Rua", "R."), ("Avenida", "Av."), ("Travessa", "Tv."), ("Largo", "Lg.")]}
IB_STREETS = {"ES": ["Mayor", "de Alcalá", "Gran Vía", "del Sol", "San Juan", "de la Constitución", "Real", "de Goya"],
              "PT": ["Augusta", "da Liberdade", "do Carmo", "de Santa Catarina", "Dom Pedro V", "da Boavista",
                     "das Flores"]}
IB_FLOORS = {"ES": ["1º A", "2º B", "3º Izq", "4º D", "Bajo", ""], "PT": ["1º Esq", "2º Dto", "3º", "R/C", ""]}
IB_NAMESAKES = {"ES": [("María", "García López"), ("José", "Fernández García"), ("Antonio", "Martínez Sánchez")],
                "PT": [("Maria", "Costa Silva"), ("José", "Pereira Santos"), ("Ana", "Ferreira Silva")]}


class IberianCustomers(Generator):
    name = "iberia"
    sources = ("tienda", "fidelidad")
    delimiter = ";"
    date_layout = "%d/%m/%Y"
    households = {"alone": 0.45, "family": 0.40, "namesake": 0.15}
    records_per_person = {1: 0.25, 2: 0.5, 3: 0.25}

    # -- people

    def country(self) -> str:
        return self.rng.choices(["ES", "PT"], [0.6, 0.4])[0]

    def names_of(self, country: str) -> tuple[list[str], list[str], list[str]]:
        return (IB_ES_MALE, IB_ES_FEMALE, IB_ES_FAMILY) if country == "ES" else (PT_MALE, PT_FEMALE, PT_FAMILY)

    def new_address(self, near: dict[str, Any] | None = None, *, country: str = "ES",
                    city: tuple[str, str] | None = None) -> dict[str, Any]:
        """An address of the country (in `city`); near an address: anywhere in its country (a move). Spanish
        postcodes of five digits, Portuguese 1100-053."""
        rng = self.rng
        if near is not None:
            country = near["country"]
        city_name, prefix = city or rng.choice(IB_CITIES[country])
        if country == "ES":
            postcode = f"{prefix}{rng.randint(1, 80):03d}"
        else:
            postcode = prefix + "".join(str(rng.randint(0, 9)) for _ in range(4 - len(prefix))) + \
                       f"-{rng.randint(0, 999):03d}"
        return {"country": country, "type": rng.choice(IB_STREET_TYPES[country]),
                "street": rng.choice(IB_STREETS[country]), "number": str(rng.randint(1, 150)),
                "floor": rng.choice(IB_FLOORS[country]), "city": city_name, "postcode": postcode}

    def mobile_in(self, country: str) -> PhoneNumber:
        rng = self.rng
        if country == "ES":
            return self.unique_phone(lambda: f"6{rng.randint(10000000, 99999999)}", "ES")
        return self.unique_phone(lambda: f"9{rng.choice('1236')}{rng.randint(1000000, 9999999)}", "PT")

    def landline_in(self, country: str) -> PhoneNumber:
        rng = self.rng
        if country == "ES":
            return self.unique_phone(lambda: f"9{rng.choice('1356')}{rng.randint(1000000, 9999999)}", "ES")
        return self.unique_phone(lambda: f"2{rng.choice('12')}{rng.randint(1000000, 9999999)}", "PT")

    def add_ib_person(self, given: str, family: str, birth_date: str, address: dict[str, Any], household: str, *,
                      home_phone: PhoneNumber | None = None) -> Person:
        """A person with a mobile (80%) and an email (40%) of their first given name and the surname they go by
        (a Spaniard's first, a Portuguese's last)."""
        rng, country = self.rng, address["country"]
        mobile = self.mobile_in(country) if rng.random() < 0.8 else None
        email = None
        if rng.random() < 0.4:
            first = email_user(given.split(" ")[0])
            surname = email_user(family.split(" ")[0] if country == "ES" else family.split(" ")[-1])
            user = rng.choice([f"{first}.{surname}", f"{first}{surname}{rng.randint(1, 99)}", f"{first[0]}{surname}"])
            email = self.unique_email(user, rng.choice(["gmail.com", "hotmail.com",
                                                        "sapo.pt" if country == "PT" else "telefonica.net"]))
        return self.add_person(given, family, birth_date, address, household, home_phone=home_phone, mobile=mobile,
                               email=email)

    def add_alone(self) -> None:
        country = self.country()
        male, female, surnames = self.names_of(country)
        given = self.rng.choice(male if self.rng.choice("MF") == "M" else female)
        self.add_ib_person(given, f"{self.rng.choice(surnames)} {self.rng.choice(surnames)}",
                           self.birth_date(1940, 2004), self.new_address(country=country), "alone")

    def add_family(self) -> None:
        """Father, mother and one or two grown children at one address, on one landline (40% have one). Surnames
        are inherited as they are: a Spanish child takes the father's first and the mother's first (Gil Ruiz and
        Serrano Blanco: Gil Serrano), a Portuguese child the mother's last and the father's last (Costa Silva and
        Pinto Alves: Alves Silva). Half the children are named after the parent of their sex: that child and that
        parent are a family_samename household."""
        rng, country = self.rng, self.country()
        male, female, surnames = self.names_of(country)
        father_1, father_2, mother_1, mother_2 = rng.sample(surnames, 4)
        address = self.new_address(country=country)
        landline = self.landline_in(country) if rng.random() < 0.4 else None
        father = self.add_ib_person(rng.choice(male), f"{father_1} {father_2}", self.birth_date(1940, 1965), address,
                                    "family", home_phone=landline)
        mother = self.add_ib_person(rng.choice(female), f"{mother_1} {mother_2}", self.birth_date(1940, 1965),
                                    address, "family", home_phone=landline)
        family = f"{father_1} {mother_1}" if country == "ES" else f"{mother_2} {father_2}"
        for _ in range(rng.randint(1, 2)):
            parent = father if rng.choice("MF") == "M" else mother
            given = parent.given if rng.random() < 0.5 else rng.choice(male if parent is father else female)
            household = "family"
            if given == parent.given:
                household = parent.household = "family_samename"
            self.add_ib_person(given, family, self.birth_date(1970, 2000), address, household, home_phone=landline)

    def add_namesake(self) -> None:
        """Two or three people of a very common full name (María García López, Maria Costa Silva) in one city."""
        country = self.country()
        given, family = self.rng.choice(IB_NAMESAKES[country])
        city = self.rng.choice(IB_CITIES[country])
        for _ in range(self.rng.randint(2, 3)):
            self.add_ib_person(given, family, self.birth_date(1945, 2000),
                               self.new_address(country=country, city=city), "namesake")

    # -- records

    def record(self, person: Person, nth: int, source: str, noise: list[str]) -> dict[str, str]:
        rng, country = self.rng, person.address["country"]
        if source == "fidelidad" and person.mobile and self.sometimes(0.35, noise, "mobile_only"):
            # signed up for the loyalty scheme at the till: a first name and a mobile
            return {"nombre": person.given.split(" ")[0], "apellidos": "", "nacimiento": "", "email": "",
                    "movil": phone_as_any_layout(person.mobile, rng), "telefono": "", "direccion": "", "piso": "",
                    "cp": "", "ciudad": "", "pais": country}
        given, family = self.noisy_names(person, noise)
        birth_date = self.noisy_birth_date(person, noise, missing_share=0.6)
        address = self.current_address(person, nth, noise, moved_share=0.05)
        full, short = address["type"]
        street_type = full if rng.random() < 0.5 else short
        separator = rng.choice([", ", " ", " nº "])
        email = person.email if person.email and rng.random() < 0.6 else ""
        mobile = phone_as_any_layout(person.mobile, rng) if person.mobile and rng.random() < 0.5 else ""
        landline = phone_as_any_layout(person.home_phone, rng) if person.home_phone and rng.random() < 0.4 else ""
        return {"nombre": given, "apellidos": family, "nacimiento": formatted_date(birth_date, self.date_layout),
                "email": email, "movil": mobile, "telefono": landline,
                "direccion": f"{street_type} {address['street']}{separator}{address['number']}",
                "piso": address["floor"], "cp": address["postcode"], "ciudad": address["city"], "pais": country}

    def noisy_names(self, person: Person, noise: list[str]) -> tuple[str, str]:
        given, family = person.given, person.family
        if self.sometimes(0.07, noise, "typo_given"):
            given = typo(given, self.rng)
        if self.sometimes(0.07, noise, "typo_family"):
            family = typo(family, self.rng)
        if self.sometimes(0.3, noise, "one_surname"):  # the one people go by: a Spaniard's first, a Portuguese's last
            family = family.split(" ")[0] if person.address["country"] == "ES" else family.split(" ")[-1]
        if self.sometimes(0.3, noise, "no_accents"):
            given, family = without_accents(given), without_accents(family)
        if self.sometimes(0.1, noise, "upper_case"):
            given, family = given.upper(), family.upper()
        return given, family

    def mapping(self, source: str) -> dict[str, Any]:
        # the mobile is the phone ucp reads; the household's landline (telefono) is left unread
        return {"source": source, "entity": "customers", "format": "csv", "encoding": "utf-8",
                "delimiter": self.delimiter, "record_key": ["id"],
                "fields": {"given_name": "nombre", "family_name": "apellidos",
                           "birth_date": {"column": "nacimiento", "format": self.date_layout}, "email": "email",
                           "phone": {"column": "movil", "region": "ES"}, "phone_region": "pais",
                           "address_line1": "direccion", "address_line2": "piso", "postcode": "cp",
                           "city": "ciudad", "country": "pais"}}


GENERATORS: dict[str, type[Generator]] = {g.name: g for g in (USCustomers, EuropeanCustomers, SparseCustomers,
                                                               LowlandsCustomers, IberianCustomers)}
DATASETS = tuple(GENERATORS)


def write_dataset(name: str, folder: Path, *, seed: int, people: int) -> Dataset:
    """Dataset `name` for about `people` people (whole households), written into `folder`."""
    generator = GENERATORS[name](seed)
    generator.draw_people(people)
    return generator.write(folder)


def write_datasets(folder: Path, *, seed: int, people: int, names: tuple[str, ...] = DATASETS) -> dict[str, Dataset]:
    """Each dataset of `names` into folder/<name>/."""
    return {name: write_dataset(name, folder / name, seed=seed, people=people) for name in names}


def read_truth(dataset: Dataset) -> list[dict[str, str]]:
    """truth.csv's rows: source, record_id, person_id, household, noise."""
    with dataset.truth.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
