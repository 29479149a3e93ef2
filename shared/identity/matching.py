"""Probabilistic record matching: blocking keys, comparison levels and a Fellegi-Sunter model.

The model is Fellegi-Sunter (as in Splink) with one extension that matters for retail data: besides the usual
"match" and "unrelated" classes it has a third latent class, "related" (people of one household, twins,
neighbours sharing a surname, namesakes that blocking brings together), learned with EM without labels (see
model_training/match_model.py for how m, u and the priors are estimated). Plain two-class Fellegi-Sunter assumes the
comparisons are independent given the class, so a shared address, shared landline and shared surname add up to
a confident match between a husband and wife; with a "related" class those agreements are explained as well by
a household as by a match and only person-level evidence (given name, birth date, email) decides.

Priors are over all record pairs of a store of `population` records (the shipped model: 100,000); a store of
another size should score with `model.with_population(records)`, since with more records a pair that agrees
only on a name is less likely the same person.

Every score is explainable: `MatchScore.contributions` holds, per comparison, the log2 Bayes factor of the
match class against the most likely alternative, plus the prior and a small mixture correction, and they sum
exactly to `match_weight` (log2 odds of a match).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import jellyfish
from rapidfuzz.distance import OSA, JaroWinkler, LCSseq
from rapidfuzz.process import extractOne

from shared.normalize import (_NAME_PARTICLES, NormalizedRecord, are_nicknames, canonical_given_name,
                              compound_names_differ, formal_names_of, is_known_given_name, nickname_forms)

DEFAULT_MODEL_PATH = Path(__file__).with_name("default_model.json")
CLASSES = ("match", "related", "unrelated")

# Comparison name -> level names. Level 0 is always "null" (a side is missing): it contributes nothing.
COMPARISONS: dict[str, tuple[str, ...]] = {
    "given_name": ("null", "exact", "nickname", "fuzzy_high", "fuzzy_low", "initial", "different"),
    "family_name": ("null", "exact", "fuzzy_high", "fuzzy_low", "different"),
    "birth_date": ("null", "exact", "day_month_swapped", "two_of_three", "different"),
    "location": ("null", "address_exact", "address_fuzzy", "postcode", "city", "different"),
    "phone": ("null", "exact", "last_7_digits", "different"),
    "email": ("null", "exact", "same_user", "user_fuzzy", "different"),
}
COMPARISON_NAMES = tuple(COMPARISONS)
# Comparisons whose "exact" level is adjusted by how common the value is (John / Smith weigh less).
TF_COMPARISONS = {"given_name": "given_name", "family_name": "family_name"}
EXACT = 1
GIVEN_NICKNAME, GIVEN_FUZZY_LEVELS, GIVEN_DIFFERENT = 2, (3, 4), 6  # "nickname", "fuzzy_high"/"fuzzy_low", "different"
# A given name borne by one record in a thousand or more: typos of even the commonest names stay well below.
COMMON_GIVEN_NAME = 1e-3
MAX_CACHED_PROBABILITIES = 200_000


# --- Comparison levels ------------------------------------------------------------------------------------

_jw = JaroWinkler.similarity


@lru_cache(maxsize=65536)  # few distinct pairs of given names: a tenth of the pairs compared at 100k records
def _given_level(a: str | None, a_canon: str | None, b: str | None, b_canon: str | None) -> int:
    if not a or not b:
        return 0
    if a == b or _umlaut_spellings(a, b):
        return 1
    if (" " in a or " " in b) and (_initials_of(a, b) or _initials_of(b, a)):  # "j p" (J.P.) for "jan pieter"
        return 5
    if compound_names_differ(a, b):
        # Jean-Pierre / Jean-Luc, Mary Jane / Mary Ann: siblings, though their letters are close. A typo in the
        # second word ("anna lena" / "anna lenna") still compares as a typo below.
        if _jw(a.split(" ", 1)[1], b.split(" ", 1)[1]) < 0.82:
            return GIVEN_DIFFERENT
    elif _forms_of_one_name(a, b):
        return 2
    # Against the other's formal name too: "mxrgaret" is a typo of the "margaret" that "meg" stands for.
    sim = max(_jw(a, b), _jw(a, b_canon) if b_canon else 0.0, _jw(a_canon, b) if a_canon else 0.0)
    if sim >= 0.92:
        return 3
    if sim >= 0.82:
        return 3 if _slip_of_a_name(a, b) else 4
    # One slip in a short name ("amy"/"any", "ana"/"naa"), or a letter dropped from a three-letter one ("in"/"ian").
    if (min(len(a), len(b)) >= 3 or sorted((len(a), len(b))) == [2, 3]) and OSA.distance(a, b) <= 1:
        return 3 if _slip_of_a_name(a, b) else 4
    if _typo_of_nickname(a, b_canon) or _typo_of_nickname(b, a_canon):  # "dabey": a typo of davey, for david
        return 4
    if _typo_of_formal(a, b) or _typo_of_formal(b, a):  # "ricahrd": a typo of richard, whom "ricky" stands for
        return 4
    if (len(a) == 1 or len(b) == 1) and a[0] == b[0]:
        return 5
    first_a, first_b = a.split(" ", 1)[0], b.split(" ", 1)[0]
    if first_a == first_b:  # "mary jane" vs "mary"
        return 3
    return 6


def _initials_of(initials: str, name: str) -> bool:
    """True when `initials` is single letters (two or more: "j p") that are the first letters of the name's words in
    order, the first always ("jan pieter", "jan"; not "pieter jan"), and the name is not initials itself."""
    letters, words = initials.split(" "), name.split(" ")
    if len(letters) < 2 or any(len(x) != 1 for x in letters) or all(len(w) == 1 for w in words):
        return False
    return letters[0] == words[0][0] and all(x == w[0] for x, w in zip(letters[1:], words[1:]))


def _slip_of_a_name(a: str, b: str) -> bool:
    """One slip (an edit or a transposition) between a name the nicknames data knows and a string it does not, of 5
    letters or more: a typo of that name ("petfa" / "petra", "dahiel" / "daniel"), where two known names one slip
    apart may be two people of a household (Maria / Mario), and a short slip is near too many names ("amry": a
    typo of Mary, or of Amy)."""
    return min(len(a), len(b)) >= 5 and is_known_given_name(a) != is_known_given_name(b) and OSA.distance(a, b) <= 1


def _forms_of_one_name(a: str, b: str) -> bool:
    """Nicknames of one name: one listed under the other in the nicknames data (bob, bobby, robert), or both short
    forms of a name they are listed under, their letters in its order (liz, beth: elizabeth). As are_nicknames, less
    its rule that one canonical form is enough: the data lists billy under robert as well as william, so billy and
    bobby, two brothers, would be one name (and betty and lisa, both elizabeth's). Compound names: the caller's."""
    first_a, first_b = a.split(" ", 1)[0], b.split(" ", 1)[0]
    formal_a, formal_b = formal_names_of(first_a), formal_names_of(first_b)
    if first_a == first_b or first_a in formal_b or first_b in formal_a:
        return True
    longest = max(len(first_a), len(first_b))
    return any(len(name) > longest and _letters_in_order(first_a, name) and _letters_in_order(first_b, name)
               for name in formal_a if name in formal_b)


def _letters_in_order(short: str, name: str) -> bool:
    return LCSseq.similarity(short, name) == len(short)


# ä/æ, ö/ø, ü and å typed as two letters (ae, oe, ue, aa) where unidecode leaves one vowel of the name as written
# ("mueller", "müller": "muller"); before a consonant, as in names (not "joe", "joey", "xue").
_UMLAUT_DIGRAPH = re.compile(r"([aou])e(?=[^aeiouy ])|(a)a(?=[^aeiouy ])")


@lru_cache(maxsize=65536)
def _umlauts_as_vowels(name: str) -> str:
    return _UMLAUT_DIGRAPH.sub(r"\1\2", name)


def _umlaut_spellings(a: str, b: str) -> bool:
    """One name with ä, ö/ø, ü or å, written with a digraph and with the vowel ("juergen" / "jurgen", "soeren" /
    "soren", "aasa" / "asa"): the same name as written. Not where the digraph's spelling is a name of its own
    (Michael / Michal, Samuel), nor in a name of 3 letters unless the digraph opens it (Haan / Han, Yuen / Yun)."""
    if len(a) == len(b):  # a fast exit: the digraph makes one longer
        return False
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    vowels = _umlauts_as_vowels(longer)
    return (vowels == _umlauts_as_vowels(shorter) and (len(vowels) >= 4 or longer[1] != shorter[1])
            and not is_known_given_name(longer))


# Words of a family name that many families share: particles (as split_full_name reads them, and those of
# Portuguese, Spanish, Dutch, Arabic and Malay names), conjunctions (garcia y lopez), and Mac and O written apart.
_PARTICLES = _NAME_PARTICLES | frozenset({"do", "dos", "das", "des", "los", "las", "y", "e", "ter", "ten", "zu", "el",
                                          "bint", "binti", "ben", "san", "saint", "mac", "mc", "o"})


@lru_cache(maxsize=65536)
def _less_particles(name: str) -> str:
    """A family name without its particles ("de la cruz": "cruz"), or as it is when nothing else is left ("le")."""
    return " ".join(word for word in name.split(" ") if word not in _PARTICLES) or name


def _family_level(a: str | None, b: str | None) -> int:
    if not a or not b:
        return 0
    if a == b or _umlaut_spellings(a, b):
        return 1
    if " " in a or " " in b:
        if a.replace(" ", "") == b.replace(" ", ""):  # "vandenberg" / "van den berg"
            return 1
        core_a, core_b = _less_particles(a), _less_particles(b)
        words_a, words_b = core_a.split(" "), core_b.split(" ")
        if set(words_a) & set(words_b):  # "garcia lopez" / "garcia"; not "de jong" / "de vries"
            return 4 if _surnames_of_kin(words_a, words_b) else 2
        if core_a != a and core_b != b:  # both with particles: "da silva" and "da costa" are alike only in "da "
            a, b = core_a, core_b
    sim = _jw(a, b)
    if sim >= 0.92:
        return 2
    if sim >= 0.82:
        return 3
    return 4


def _surnames_of_kin(words_a: list[str], words_b: list[str], *, slips: int = 0) -> bool:
    """Two family names of two surnames or more that share one and differ in another beyond a typo: a parent and a
    child (Gil Ruiz / Gil Dominguez: the father's first; Ruiz Gomez / Perez Ruiz: the mother's). The words are the
    names' without particles; the caller knows they share one. With `slips`, words that many edits apart or fewer
    are not told apart either."""
    only_a = [w for w in words_a if w not in words_b]
    only_b = [w for w in words_b if w not in words_a]
    return bool(only_a and only_b) and all(_jw(x, y) < 0.82 and OSA.distance(x, y) > slips
                                           for x in only_a for y in only_b)


@lru_cache(maxsize=65536)
def surnames_of_kin(a: str, b: str) -> bool:
    """Whether two normalized family names are a parent's and a child's double surnames (see _surnames_of_kin):
    merge protection's `surnames` attribute, which keeps a record that gives one of them alone (Gil) from joining
    the two people's profiles. A block overrules every other agreement, so it takes surer evidence than the family
    name's `different` level: surnames two slips apart may be two typos of one (Lórez / Lópei of López; Sanz and
    Saez, two families, are then left to the score)."""
    words_a, words_b = _less_particles(a).split(" "), _less_particles(b).split(" ")
    return not set(words_a).isdisjoint(words_b) and _surnames_of_kin(words_a, words_b, slips=2)


# Of two surnames, the one a person of these countries does not go by when they give one: a Spaniard's second, the
# mother's (García López goes by García), a Portuguese's or Brazilian's first, the mother's too (Ribeiro Marques goes
# by Marques). That one alone is rather the surname of the parent it came from, who may share the given name too.
_SURNAME_NOT_GONE_BY = {**dict.fromkeys(("ES", "MX", "AR", "CO", "CL", "PE", "VE", "EC", "GT", "CU", "BO", "DO", "HN",
                                         "PY", "SV", "NI", "CR", "PA", "UY", "PR"), 1),
                        **dict.fromkeys(("PT", "BR", "AO", "MZ"), 0)}


def _surname_out_of_place(a: str, b: str, country_a: str | None, country_b: str | None) -> bool:
    """True when one family name is one surname and the other two, of people of one naming custom, and the one is
    the other's surname that such a person does not go by (Laura Ruiz / Laura Sánchez Ruiz in Spain: her mother
    and her). Without a country on both, or of two customs, nothing is assumed."""
    index = _SURNAME_NOT_GONE_BY.get(country_a)
    if index is None or _SURNAME_NOT_GONE_BY.get(country_b) != index:
        return False
    words_a, words_b = _less_particles(a).split(" "), _less_particles(b).split(" ")
    if sorted((len(words_a), len(words_b))) != [1, 2]:
        return False
    one, two = (words_a, words_b) if len(words_a) == 1 else (words_b, words_a)
    return one[0] == two[index] != two[1 - index]  # López of López López is both


def _birth_date_level(a: str | None, b: str | None) -> int:
    if not a or not b:
        return 0
    if a == b:
        return 1
    if a[:4] == b[:4] and a[5:7] == b[8:10] and a[8:10] == b[5:7]:
        return 2
    same = (a[:4] == b[:4]) + (a[5:7] == b[5:7]) + (a[8:10] == b[8:10])
    return 3 if same == 2 else 4


def _numbers_compatible(a: NormalizedRecord, b: NormalizedRecord) -> bool:
    """False for two house numbers, or two flats (units) of one building: two homes."""
    if a.street_number and b.street_number and a.street_number != b.street_number:
        return False
    unit_a, unit_b = _unit_of(a.address), _unit_of(b.address)
    return not (unit_a and unit_b and unit_a != unit_b)


def _unit_of(address: str | None) -> str | None:
    """The flat's number of a normalized address ("12 high st unit 4" -> "4"): normalization puts it last."""
    at = address.rfind("unit ") if address else -1
    if at < 0 or (at and address[at - 1] != " "):
        return None
    return address[at + 5:].split(" ", 1)[0]


def _location_level(a: NormalizedRecord, b: NormalizedRecord) -> int:
    pc_a, pc_b = a.postcode, b.postcode
    # A postcode one slip away (5495 / 5459, BS81TH / BS81HT) in the same city is a typo, not another place.
    postcode_conflict = bool(pc_a and pc_b and pc_a != pc_b) and not (
        a.city and a.city == b.city and OSA.distance(pc_a, pc_b) <= 1)
    if a.address and b.address and not postcode_conflict:
        if a.address == b.address:
            return 1
        if _numbers_compatible(a, b) and _jw(a.address, b.address) >= 0.90:
            return 2
    if pc_a and pc_a == pc_b:
        # Two house numbers in one postcode are two houses: neighbours, no nearer than one city.
        return 3 if _numbers_compatible(a, b) else 4
    if a.city and a.city == b.city:
        return 4
    comparable = (a.address and b.address) or (pc_a and pc_b) or (a.city and b.city)
    return 5 if comparable else 0


def _typo_of_nickname(name: str, canonical: str | None) -> bool:
    # One slip in a 4-5 letter nickname scores 0.88-0.92 (dabey/davey, ejss/jess). One call scores all the forms.
    # A nickname of the formal name itself is no typo: billy and bobby are two of robert's (_forms_of_one_name).
    if not canonical or len(name) < 4:
        return False
    forms = nickname_forms(canonical)
    return name not in forms and extractOne(name, forms, scorer=_jw, score_cutoff=0.88) is not None


def _typo_of_formal(name: str, nickname: str) -> bool:
    """A slip (one edit) of a formal name the other is a nickname of, itself no name the nicknames data knows:
    "ricahrd" / "ricky" (richard), "thdeodore" / "teddy" (theodore). Needed where the nickname has no one
    canonical form (ricky also stands for frederick and eric). A known name ("amelia" / "emily") is not a slip."""
    return (len(name) >= 5 and not is_known_given_name(name)
            and any(OSA.distance(name, formal) <= 1 for formal in formal_names_of(nickname)))


def _phone_level(a: str | None, b: str | None) -> int:
    if not a or not b:
        return 0
    if a == b:
        return 1
    if a[-7:] == b[-7:]:
        return 2
    return 3


def _email_level(a: NormalizedRecord, b: NormalizedRecord) -> int:
    """Same mailbox; same user name at another provider (separators and +tags aside: "paul_davies519",
    "pauldavies519"); a slip in the user name, or its parts reordered around the same number; or different.
    People put a number in their user name, and namesakes' addresses differ mostly by it ("johnsmith12",
    "john.smith85"): a different number is another person's mailbox, however similar the letters."""
    if not a.email or not b.email:
        return 0
    if a.email == b.email:
        return 1
    (user_a, digits_a), (user_b, digits_b) = _email_user_parts(a.email_user), _email_user_parts(b.email_user)
    if not user_a or not user_b:
        return 4
    if user_a == user_b:
        # At two providers, a user name that is only the person's names ("sophie.girard") is what her namesakes
        # have too: it says no more than the names compared already. One with a number of its own is hers.
        if not _own_number(digits_a) and _made_of_names(user_a, a, b, alone=True):
            return 0
        return 2
    if digits_a != digits_b and not _number_slip(digits_a, digits_b):
        return 4
    if (not _own_number(digits_a) and _made_of_names(user_a, a, b, alone=True)
            and _made_of_names(user_b, a, b, alone=True)):
        # Two patterns of the names ("jdevries41" / "jan.devries41", "anna.andersson46" / "andersson.anna46") with
        # a number namesakes share: close letters say nothing the names do not (as above), and namesakes in one
        # city met at 0.99 on them (a generated Dutch and Swedish set).
        return 4
    if _jw(user_a, user_b) >= 0.92:
        return 3
    if digits_a and sorted(user_a) == sorted(user_b):  # "peter.richter1707" / "richter.peter1707": reordered
        return 3
    if (digits_a == digits_b and _own_number(digits_a)
            and _made_of_names(user_a, a, b) and _made_of_names(user_b, a, b)):
        # "mdavies22132" / "davies.michael22132": both user names are the person's names (in any of the usual
        # patterns) with the same number of 3 or more digits that is not a year. A family mailbox
        # ("thedavies22132") is not made of a given name; a namesake born the same year may share a year.
        return 3
    return 4


@lru_cache(maxsize=65536)
def mailbox_given_name(user: str | None, *families: str | None) -> str | None:
    """The given name an email user name is made of with a family name ("johnscott8049" with Scott: "john"), or
    None: no family name in it, or what is left is not a name of 2 letters or more."""
    letters = _DIGITS.sub("", compact_email_user(user))
    for family in families:
        rest = _less_family(letters, family)
        if rest is not None:
            return rest if len(rest) >= 2 and rest.isalpha() else None
    return None


def _less_family(letters: str, family: str | None) -> str | None:
    """The letters of a user name without a family name of 2 letters or more (spaces and apostrophes aside), None
    when they do not hold it."""
    family = family.replace(" ", "").replace("'", "") if family else ""
    start = letters.find(family) if len(family) >= 2 else -1
    return letters[:start] + letters[start + len(family):] if start >= 0 else None


def _number_slip(digits_a: tuple[str, ...], digits_b: tuple[str, ...]) -> bool:
    """The same number with a slip: a letter typed inside it ("cmartin2e7731" / "cmartin27731"), or two adjacent
    digits of a number of 4 or more swapped ("cwhite1568" / "cwhite5168"), not in a year (1985 / 1958: namesakes)."""
    a, b = "".join(digits_a), "".join(digits_b)
    if a == b:
        return True
    return (len(a) == len(b) >= 4 and sorted(a) == sorted(b) and OSA.distance(a, b) == 1
            and not any(len(x) == 4 and x[:2] in ("19", "20") for x in (a, b)))


def _own_number(digits: tuple[str, ...]) -> bool:
    """One number of 3 digits or more, not one a namesake could share: a year (1900-2099)."""
    return len(digits) == 1 and len(digits[0]) >= 3 and not (len(digits[0]) == 4 and digits[0][:2] in ("19", "20"))


def _made_of_names(user: str, a: NormalizedRecord, b: NormalizedRecord, *, alone: bool = False) -> bool:
    """True when the letters of an email user name are a family name of either record with, before or after it, a
    given name of either (as written, its formal form, or its first letter; any name of that letter for a record
    giving an initial): "mdavies", "davies.michael"; the family name also without its particles or as one of its
    words ("vries.jan" of de Vries, "rpinto" of Marques Pinto), particles left beside the given name aside
    ("jandevries" of Vries); umlauts written either way ("joerg.mueller" of Jörg Müller, which normalization
    folds to jorg muller). With `alone`, also either name on its own ("jan", "peeters"): without a number of
    its own, what the person's namesakes or relatives may have as well."""
    letters, givens = _DIGITS.sub("", user), _given_forms(a, b)
    if _names_pattern(letters, givens, (a.family_name, b.family_name), alone, fold=False):
        return True
    # Folded apart from the names as written: folding "annaandersson" whole would take its "aa" for an å.
    return _names_pattern(_umlauts_as_vowels(letters), {_umlauts_as_vowels(g) for g in givens},
                          (a.family_name, b.family_name), alone, fold=True)


def _names_pattern(letters: str, givens: set[str], families: tuple[str | None, ...], alone: bool, *, fold: bool
                   ) -> bool:
    """_made_of_names on one spelling of the user name's letters (umlauts folded or not, the names alike)."""
    if alone and letters in givens:
        return True
    for family in set(families):
        for variant in _family_variants(family):
            rest = _less_family(letters, _umlauts_as_vowels(variant.replace(" ", "")) if fold else variant)
            if rest == "" and alone:
                return True
            if rest and (_is_given(rest, givens) or _is_given(_less_particle_ends(rest), givens)):
                return True
    return False


@lru_cache(maxsize=16384)
def _family_variants(family: str | None) -> tuple[str, ...]:
    """A family name as a user name may hold it: whole, without particles, and each word of 3 letters or more."""
    if not family:
        return ()
    core = [w for w in family.split(" ") if w not in _PARTICLES]
    found = [family, "".join(core), *(w for w in core if len(w) >= 3)]
    return tuple(dict.fromkeys(v for v in found if len(v.replace(" ", "")) >= 2))


# Particles written into a user name, longest first ("vander" before "van"), to take off either end of what is left.
_GLUED_PARTICLES = tuple(sorted({p for p in _PARTICLES if len(p) >= 2} | {"vander", "vanden", "vande", "dela"},
                                key=len, reverse=True))


def _is_given(rest: str, givens: set[str]) -> bool:
    return any(rest == given or rest == given[0] or (len(given) == 1 and rest[0] == given) for given in givens)


@lru_cache(maxsize=16384)
def _less_particle_ends(rest: str) -> str:
    """What is left of a user name without particles at either end ("jande" of "jande" + "vries": "jan")."""
    changed = True
    while changed:
        changed = False
        for particle in _GLUED_PARTICLES:
            if len(rest) > len(particle) and (rest.startswith(particle) or rest.endswith(particle)):
                rest = rest[len(particle):] if rest.startswith(particle) else rest[:-len(particle)]
                changed = True
                break
    return rest


def _given_forms(a: NormalizedRecord, b: NormalizedRecord) -> set[str]:
    return {name.replace(" ", "").replace("-", "") for name in (a.given_name, a.given_canonical, b.given_name,
                                                                 b.given_canonical) if name}


_DIGITS = re.compile(r"\d+")


@lru_cache(maxsize=65536)
def _email_user_parts(user: str | None) -> tuple[str, tuple[str, ...]]:
    """The compact user name and the numbers in it; a record's address is compared with many candidates."""
    compact = compact_email_user(user)
    return compact, tuple(_DIGITS.findall(compact))


def _one_slip(a: str, b: str) -> bool:
    """The same name, or one typo apart (an edit or a transposition) in names of 3 letters or more."""
    return a == b or (min(len(a), len(b)) >= 3 and OSA.distance(a, b) <= 1)


def _names_swapped(a: NormalizedRecord, b: NormalizedRecord) -> bool:
    """"Smith John" vs "John Smith", also with a typo on either side ("Woods Lunda" vs "Linda Woods")."""
    given_a, family_a, given_b, family_b = a.given_name, a.family_name, b.given_name, b.family_name
    if not (given_a and family_a and given_b and family_b) or given_a == given_b:
        return False
    if given_a == family_b and family_a == given_b:
        return True
    if given_a != given_b and family_a != family_b and (
            _one_slip(given_a, family_b) and _one_slip(family_a, given_b)
            or given_a == family_b and are_nicknames(family_a, given_b)
            or family_a == given_b and are_nicknames(given_a, family_b)):
        # Each name a slip of the other's across ("Ggray Paul" vs "Apul Gray", "Evans James" vs "James Veans"),
        # or one the same and the other another form of one given name ("Wood William" vs "Bill Wood").
        return True
    if (given_a[0] == family_b[0] or family_a[0] == given_b[0]) and _jw(family_a, family_b) < 0.82 and _given_level(
            given_a, a.given_canonical, given_b, b.given_canonical) == GIVEN_DIFFERENT and (
            _swapped_across(given_a, a.given_canonical, family_b, family_a, given_b)
            or _swapped_across(given_b, b.given_canonical, family_a, family_b, given_a)):
        # The straight order fits neither name; across, a given name is the other's in some form (a typo, a
        # nickname, both: "Dony Riey" vs "Rley Donald") and the family name is close ("Riey" / "Rley"). One
        # first letter across agrees (cheap test first: a typo rarely hits both).
        return True
    # Cheap test first (a typo rarely hits a first letter), then: both names close, or one equal and the other a
    # typo; and the straight order must not fit.
    if given_a[0] != family_b[0] or family_a[0] != given_b[0]:
        return False
    low, high = sorted((_jw(given_a, family_b), _jw(family_a, given_b)))
    return ((low >= 0.92 or (high == 1.0 and low >= 0.82))
            and _jw(given_a, given_b) < 0.82 and _jw(family_a, family_b) < 0.82)


def _swapped_across(given: str, canonical: str | None, other_family: str, family: str, other_given: str) -> bool:
    """A given name that compares as the same one (exact, nickname, fuzzy) with the other record's family name, and
    a family name close to the other's given name."""
    return (_jw(family, other_given) >= 0.82
            and 0 < _given_level(given, canonical, other_family, canonical_given_name(other_family)) < 5)


def _names_of(b: NormalizedRecord, a: NormalizedRecord) -> tuple[str | None, str | None, str | None]:
    """b's given name, its canonical form and family name, the right way round against a's ("Smith John" vs
    "John Smith")."""
    if _names_swapped(a, b):
        return b.family_name, canonical_given_name(b.family_name), b.given_name
    return b.given_name, b.given_canonical, b.family_name


def given_level(a: NormalizedRecord, b: NormalizedRecord) -> int:
    """compare(a, b)[0] alone, for the rules that look at the given names only."""
    b_given, b_canon, _ = _names_of(b, a)
    return _given_level(a.given_name, a.given_canonical, b_given, b_canon)


def compare(a: NormalizedRecord, b: NormalizedRecord) -> tuple[int, ...]:
    """The comparison vector of a pair: one level index per comparison, in COMPARISON_NAMES order."""
    if _names_swapped(a, b):  # _names_of, inlined: every candidate pair is compared
        b_given, b_canon, b_family = b.family_name, canonical_given_name(b.family_name), b.given_name
    else:
        b_given, b_canon, b_family = b.given_name, b.given_canonical, b.family_name
    return (
        _given_level(a.given_name, a.given_canonical, b_given, b_canon),
        _family_of(a, b, b_family),
        _birth_date_level(a.birth_date, b.birth_date),
        _location_level(a, b),
        _phone_level(a.phone, b.phone),
        _email_level(a, b),
    )


def _family_of(a: NormalizedRecord, b: NormalizedRecord, b_family: str | None) -> int:
    """The family-name level of a pair (b's family name the right way round against a's names)."""
    level = _family_level(a.family_name, b_family)
    if level == 2 and _surname_out_of_place(a.family_name, b_family, a.country, b.country):
        return 4
    return level


def _tf_values(a: NormalizedRecord) -> tuple[str | None, str | None]:
    return a.given_name, a.family_name


# --- Blocking ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=65536)
def _phonetic(value: str | None) -> str | None:
    if not value:
        return None
    compact = value.replace(" ", "")
    return jellyfish.soundex(compact) if compact.isalpha() else compact[:8]


def name_codes(n: NormalizedRecord) -> list[str]:
    """The distinct Soundex codes of the family name and the canonical given name, sorted (either order)."""
    family, given = _phonetic(n.family_name), _phonetic(n.given_canonical or n.given_name)
    if family and given and family != given:
        return [family, given] if family < given else [given, family]
    return [family or given] if family or given else []


def blocking_keys(n: NormalizedRecord) -> list[str]:
    """A handful of keys; two records of one person share at least one of them despite typical noise.

    Name codes are Soundex (typos), of the canonical given name (nicknames), and are not tied to the given or
    family position (swapped names). The birth-date key sorts day and month (transposed dates).
    """
    names = name_codes(n)
    keys: list[str] = []
    born = None
    if n.birth_date:
        month, day = n.birth_date[5:7], n.birth_date[8:10]
        born = n.birth_date[:4] + (month + day if month <= day else day + month)
        for code in names:  # loops, not comprehensions: one or two codes, a function call each in Python 3.11
            keys.append(f"dob:{born}|n:{code}")
    if n.postcode:
        for code in names:
            keys.append(f"pc:{n.postcode}|n:{code}")
        if born:
            # Birth date and postcode without the name: both names mistyped ("Geogia Simmovnds" for "Georgia
            # Simmonds") change every name code above. A tiny block (a household's twins at most). Measured: FEBRL
            # recall +0.01 at precision 1.000; the 102k bench set F1 +0.0002; +1.2% instructions per record.
            keys.append(f"dp:{born}|{n.postcode}")
    if n.email_user:
        user, numbers = _email_user_parts(n.email_user)
        if len(user) >= 4:  # "paul_davies519" and "pauldavies519" at any provider
            keys.append(f"eu:{user}")
        digits = "".join(numbers)
        if len(digits) >= 4 and not (len(digits) == 4 and digits[:2] in ("19", "20")):
            # A number of 4 digits or more in an email user name (not a year), alone: the same person's addresses
            # with the user name reordered or mistyped, or a married or mistyped name ("patriciabell40537" /
            # "patriciarobinson40537"), in tiny blocks; a number many people use fills its key to the cap.
            keys.append(f"ed:{digits}")
        elif len(digits) >= 2 and len(names) == 2:
            # A shorter number, with the names ("ryznsingh31" / "ryansingh31").
            keys.append(f"ed:{digits}|n:{'+'.join(names)}")
    # No key by name alone (or name and city). Those blocks held 80% of the candidate pairs at 102k records for
    # 0.0003 pairwise recall (F1 -0.0002 with the key above): a name is not enough to link, so the pairs they
    # brought scored low, and they cost a third of in-process resolution time and two writes per record (the key
    # above adds one back where the email user name has a number).
    # Nor a key by country, nor by national phone number (a number parsed with the wrong default region): 10
    # of 76,899 true pairs had no other key, for a write per record with a phone (F1 -0.0001).
    return keys


_EMAIL_USER_SEPARATORS = re.compile(r"[._\-]")


@lru_cache(maxsize=65536)
def compact_email_user(user: str | None) -> str:
    """The user name of an address without its +tag and separators: what stays when a person retypes it."""
    return _EMAIL_USER_SEPARATORS.sub("", user.split("+", 1)[0]) if user else ""


# --- Model ------------------------------------------------------------------------------------------------

@dataclass
class MatchScore:
    probability: float
    match_weight: float  # log2 odds of a match; equals sum(contributions.values())
    contributions: dict[str, float]  # per comparison: log2 Bayes factor; plus "prior" and "mixture"
    levels: dict[str, str] | None = None  # comparison -> level name, for explanations
    candidate_key: str | None = None  # best_match: the key of the candidate record that scored best

    def to_dict(self) -> dict[str, Any]:
        return {"probability": self.probability, "match_weight": self.match_weight,
                "contributions": self.contributions, "levels": self.levels, "candidate_key": self.candidate_key}


NO_MATCH = MatchScore(probability=0.0, match_weight=-math.inf, contributions={}, levels={})


class MatchModel:
    """Three-class Fellegi-Sunter model. Parameters are probabilities per comparison level and class."""

    def __init__(self, *, version: str, lambdas: Sequence[float], params: dict[str, dict[str, list[float]]],
                 term_frequencies: dict[str, dict[str, float]] | None = None, tf_floor: float = 1e-5,
                 population: int | None = None, metadata: dict[str, Any] | None = None):
        self.version = version
        self.population = population  # number of records the priors (lambdas) refer to
        self.lambdas = [float(x) for x in lambdas]
        self.params = {name: {cls: [float(p) for p in probs] for cls, probs in by_class.items()}
                       for name, by_class in params.items()}
        self.term_frequencies = term_frequencies or {}
        self.tf_floor = tf_floor
        self.metadata = metadata or {}
        self._compile()

    def _compile(self) -> None:
        """Precompute log2 tables so scoring is a few list lookups."""
        self._log_prior = [math.log2(max(x, 1e-300)) for x in self.lambdas]
        self._log = []  # per comparison: per class: per level log2 probability (level 0 -> 0.0)
        for name in COMPARISON_NAMES:
            by_class = self.params[name]
            table = []
            for cls in CLASSES:
                probs = by_class[cls]
                table.append([0.0] + [math.log2(max(p, 1e-12)) for p in probs[1:]])
            self._log.append(table)
        self._tf_log = {name: {v: math.log2(max(f, self.tf_floor)) for v, f in values.items()}
                        for name, values in self.term_frequencies.items()}
        # Probability by (levels, term-frequency values): few distinct keys, so candidate ranking is mostly lookups.
        self._probabilities: dict[tuple, float] = {}

    def with_population(self, records: int) -> "MatchModel":
        """The same model with priors for a store of `records` records.

        The expected number of matches and related people per record does not depend on the store's size, but
        the number of pairs grows with its square, so the prior of a match for one pair falls as 1/records.
        """
        if not self.population:  # silently unscaled, a store of millions would be scored as the file's own size
            raise ValueError("the file says no population (the store size its priors are for), so they cannot be "
                             "scaled to a store's size: add it to the file, or leave UCP_MATCH_POPULATION unset")
        if records == self.population:
            return self
        scale = (self.population - 1) / max(records - 1, 1)
        match, related = self.lambdas[0] * scale, self.lambdas[1] * scale
        if match + related >= 1.0:
            raise ValueError(f"a store of {records} records is too small for priors fitted on {self.population}: "
                             "every pair would be one person or related")
        return MatchModel(version=self.version, lambdas=[match, related, 1.0 - match - related], params=self.params,
                          term_frequencies=self.term_frequencies, tf_floor=self.tf_floor, population=records,
                          metadata=self.metadata)

    # --- scoring ----------------------------------------------------------------------------------------

    def score(self, a: NormalizedRecord, b: NormalizedRecord) -> MatchScore:
        levels = compare(a, b)
        return self.score_levels(levels, tf_values=self._tf_pair(a, b, levels))

    def probability(self, a: NormalizedRecord, b: NormalizedRecord) -> float:
        """Match probability only (no explanation built): the cheap path for ranking candidates."""
        levels = compare(a, b)
        key = (levels, self._tf_pair(a, b, levels))
        found = self._probabilities.get(key)
        if found is None:
            if len(self._probabilities) >= MAX_CACHED_PROBABILITIES:
                self._probabilities.clear()
            found = self._probabilities[key] = _probability(_match_weight(self._class_totals(*key)))
        return found

    def best_record(self, a: NormalizedRecord, others: Sequence[NormalizedRecord]) -> tuple[float, NormalizedRecord | None]:
        """The probability of the best-matching of `others` and that record: how a record scores against a
        profile. (Pooling the strongest level per comparison across a profile's records was measured: it
        changed no decision on generated data, so the simpler rule stays.)"""
        best_p, best = 0.0, None
        for b in others:
            p = self.probability(a, b)
            if best is None or p > best_p:
                best_p, best = p, b
        return best_p, best

    @staticmethod
    def same_given_name(a: NormalizedRecord, b: NormalizedRecord) -> bool:
        """True when the given names are one: written alike, or a nickname of the other (not merely similar: a typo
        of a twin's name is similar to both twins')."""
        return given_level(a, b) in (EXACT, GIVEN_NICKNAME)

    def another_given_name(self, a: NormalizedRecord, b: NormalizedRecord) -> bool:
        """True when the given names are two people's: "different", or similar where each is a name the model has
        seen often (its term-frequency table): Andrea/Andreas, Petra/Peter, where a typo ("Francpois") is rare.
        Nicknames and initials are not another name."""
        return self._another_at(given_level(a, b), a.given_name, b.given_name)

    def _another_at(self, level: int, a: str | None, b: str | None) -> bool:
        """another_given_name of two given names compared at this given-name level."""
        if level == GIVEN_DIFFERENT:
            return True
        names = self.term_frequencies.get("given_name", {})
        return (level in GIVEN_FUZZY_LEVELS and names.get(a, 0.0) >= COMMON_GIVEN_NAME
                and names.get(b, 0.0) >= COMMON_GIVEN_NAME)

    def mailbox_names_both(self, a: NormalizedRecord, b: NormalizedRecord) -> bool:
        """True when a's email is a personal mailbox whose given name is neither record's another given name:
        "johnscott8049" given as "Jihn Scott" (a typo) and as "Jon Scott" (a nickname) is John's own address,
        not a family one that two people of a household give; or one record's and the other's is a slip of it that
        is no one's name. Letters of the user name less a family name of either record must be a given name people
        are called (not an initial, not "the..s", "family", "home")."""
        given = mailbox_given_name(a.email_user, a.family_name, b.family_name)
        if given is None or not self._known_given(given):
            return False
        canonical = canonical_given_name(given)
        against = [self._another_given(given, canonical, x.given_name, x.given_canonical) for x in (a, b)]
        if not any(against):
            return True
        # One record names the mailbox's owner, the other a slip of that name or of a short form of it that no one
        # is called ("lkz" for Liz, on Lisa's mailbox; "tsu" for Stu, on Stuart's), not a rare name of its own.
        other = b if against[1] else a
        if against[0] == against[1] or self._known_given(other.given_name):
            return False
        forms = (given, *nickname_forms(canonical or given))
        return any(OSA.distance(other.given_name, form) <= (1 if len(form) <= 4 else 2) for form in forms)

    def _known_given(self, name: str | None) -> bool:
        """A given name people are called: in the model's term frequencies or the nickname data."""
        return bool(name) and (name in self.term_frequencies.get("given_name", {}) or bool(nickname_forms(name)))

    def _another_given(self, a: str, a_canon: str | None, b: str | None, b_canon: str | None) -> bool:
        """another_given_name on two given names alone."""
        return self._another_at(_given_level(a, a_canon, b, b_canon), a, b)

    def _tf_pair(self, a: NormalizedRecord, b: NormalizedRecord, levels: tuple[int, ...]) -> tuple[str | None, str | None]:
        given = a.given_name if levels[0] == EXACT else None
        family = a.family_name if levels[1] == EXACT else None
        if given and family and given == b.family_name and family == b.given_name:
            # Swapped names ("robinson john" / "john robinson"): which way round is right is unknown, so the
            # names are weighed as the more common way round ("robinson" is a rare given name, not "john").
            if self._tf_log_of(family, given) > self._tf_log_of(given, family):
                given, family = family, given
        return given, family

    def _tf_log_of(self, given: str, family: str) -> float:
        return sum(self._unrelated_log(index, EXACT, value) for index, value in enumerate((given, family)))

    def _unrelated_log(self, index: int, level: int, tf_value: str | None) -> float:
        """log2 u for a level; for an exact name match, the value's own frequency when it is known."""
        if tf_value is not None and level == EXACT:
            name = COMPARISON_NAMES[index]
            found = self._tf_log.get(name, {}).get(tf_value)
            if found is not None:
                return found
        return self._log[index][2][level]

    def _class_totals(self, levels: tuple[int, ...], tf_values: tuple[str | None, str | None]) -> list[float]:
        totals = list(self._log_prior)
        for index, level in enumerate(levels):
            if level == 0:
                continue
            table = self._log[index]
            totals[0] += table[0][level]
            totals[1] += table[1][level]
            totals[2] += self._unrelated_log(index, level, tf_values[index] if index < 2 else None)
        return totals

    def score_levels(self, levels: tuple[int, ...], *, tf_values: tuple[str | None, str | None] = (None, None)) -> MatchScore:
        totals = self._class_totals(levels, tf_values)
        weight = _match_weight(totals)
        reference = 1 if totals[1] >= totals[2] else 2  # the most likely non-match explanation
        contributions = {"prior": self._log_prior[0] - self._log_prior[reference]}
        level_names = {}
        for index, level in enumerate(levels):
            name = COMPARISON_NAMES[index]
            level_names[name] = COMPARISONS[name][level]
            if level == 0:
                contributions[name] = 0.0
                continue
            ref = (self._log[index][1][level] if reference == 1
                   else self._unrelated_log(index, level, tf_values[index] if index < 2 else None))
            contributions[name] = self._log[index][0][level] - ref
        # log2 of (reference class likelihood / total non-match likelihood): in [-1, 0] by construction.
        contributions["mixture"] = weight - sum(contributions.values())
        level_names["explained_against"] = CLASSES[reference]
        return MatchScore(probability=_probability(weight), match_weight=weight,
                          contributions=contributions, levels=level_names)

    # --- persistence ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "kind": "fellegi-sunter-3class",
            "classes": list(CLASSES),
            "lambdas": self.lambdas,
            "comparisons": {name: {"levels": list(COMPARISONS[name]), **self.params[name]} for name in COMPARISON_NAMES},
            "term_frequencies": self.term_frequencies,
            "tf_floor": self.tf_floor,
            "population": self.population,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MatchModel":
        params = {}
        for name, levels in COMPARISONS.items():
            spec = d["comparisons"][name]
            if list(spec["levels"]) != list(levels):
                raise ValueError(f"model {d.get('version')}: comparison {name} has levels {spec['levels']}, expected {list(levels)}")
            params[name] = {c: spec[c] for c in CLASSES}
        return cls(version=d["version"], lambdas=d["lambdas"], params=params,
                   term_frequencies=d.get("term_frequencies"), tf_floor=d.get("tf_floor", 1e-5),
                   population=d.get("population"), metadata=d.get("metadata"))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "MatchModel":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def default(cls) -> "MatchModel":
        """The shipped model (shared/identity/default_model.json), loaded once per process."""
        return _default_model()


@lru_cache(maxsize=1)
def _default_model() -> MatchModel:
    return MatchModel.load(DEFAULT_MODEL_PATH)


def _match_weight(totals: list[float]) -> float:
    high = max(totals[1], totals[2])
    other = math.log2(2.0 ** (totals[1] - high) + 2.0 ** (totals[2] - high)) + high
    return totals[0] - other


def _probability(weight: float) -> float:
    if weight > 60:
        return 1.0
    if weight < -60:
        return 0.0
    return 1.0 / (1.0 + 2.0 ** (-weight))


def best_match(record: NormalizedRecord, candidates: Sequence[NormalizedRecord], model: MatchModel) -> MatchScore:
    """The explained score of `record` against its most probable candidate (NO_MATCH when there is none)."""
    _, best = model.best_record(record, candidates)
    if best is None:
        return NO_MATCH
    scored = model.score(record, best)
    scored.candidate_key = best.key
    return scored
