"""Three labelled customer datasets made without ucp's own generator (shared/generate), for bench/identity_unseen.py.

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

Every dataset also has typos, swapped given and family names, day and month swapped, missing birth dates and
people who moved. Each is a folder of its two sources' CSV files, their ucp mappings (`<source>.json`) and
truth.csv (source, record_id, person_id, household, noise): the person behind each record, the kind of household
the person belongs to (alone, couple, twin, ...) and the noise applied to that record.

    from bench.unseen_data import write_datasets
    datasets = write_datasets(Path("out"), seed=7, people=1500)   # {"us": Dataset, "eu": ..., "sparse": ...}

Deterministic per seed: each dataset draws from its own random stream (seeded by its name and the seed) and keeps
its own record of the emails and phones handed out, so one dataset never depends on another or on earlier calls.
"""
from __future__ import annotations

import csv
import json
import random
import unicodedata
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
    household: str  # alone, couple, twin, jrsr, sibling, parentchild, namesake
    home_phone: PhoneNumber | None = None
    mobile: PhoneNumber | None = None
    email: str | None = None
    middle_initial: str = ""
    suffix: str = ""  # Jr / Sr


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


class Generator:
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

    def record(self, person: Person, nth: int, source: str, noise: list[str]) -> dict[str, str]:
        raise NotImplementedError

    def new_address(self, near: dict[str, Any] | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def mapping(self, source: str) -> dict[str, Any]:
        raise NotImplementedError

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


GENERATORS: dict[str, type[Generator]] = {g.name: g for g in (USCustomers, EuropeanCustomers, SparseCustomers)}
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
