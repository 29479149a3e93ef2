"""Adversarial inputs for normalization and the given-name comparison: names the nicknames data links wrongly,
placeholders, one value in two spellings, two values folded into one. In-memory store only."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.identity import resolve_records
from shared.identity.matching import MatchModel, compare
from shared.models import CustomerRecord
from shared.normalize import (are_nicknames, canonical_given_name, fold_name, normalize_address, normalize_birth_date,
                              normalize_email, normalize_phone, normalize_record, street_number_of)
from shared.normalize import _email_fields
from shared.settings import Settings
from shared.store import MemoryStore


@pytest.fixture(scope="module")
def model() -> MatchModel:
    return MatchModel.default()


def _rec(source: str, key: str, **fields) -> CustomerRecord:
    return CustomerRecord(source=source, record_key=key, **fields)


def _two_on_a_family_email(model, first: str, second: str):
    """Two household members on one family email, as test_household_email_with_another_given_name_does_not_link
    (Raymond/Kevin) does: the second must get a profile of their own."""
    store = MemoryStore()
    a, = resolve_records(store, [_rec("pos", "1", email="home.lee@shopmail.net", given_name=first, family_name="Lee")],
                         settings=Settings(), model=model)
    b, = resolve_records(store, [_rec("web", "2", email="home.lee@shopmail.net", given_name=second, family_name="Lee")],
                         settings=Settings(), model=model)
    return a, b


# --- 1. False merges: different given names treated as one name (household guard bypassed) -------------------

# Two different names that share only a third, longer "formal" name in the nicknames data
# (ann -> christiana <- chris; sandra -> alexandria <- alexander; gary -> garrett <- jerry; ian -> john <- jack).
TWO_HOP = [("Chris", "Ann"), ("Alexander", "Sandra"), ("Gary", "Jerry"), ("Ian", "Jack")]


@pytest.mark.parametrize("a, b", TWO_HOP)
def test_names_sharing_only_a_formal_name_are_not_one_name(a, b):
    assert canonical_given_name(a) != canonical_given_name(b)
    assert not are_nicknames(fold_name(a), fold_name(b))


@pytest.mark.parametrize("a, b", TWO_HOP)
def test_spouses_sharing_only_a_formal_name_are_not_merged_on_a_family_email(model, a, b):
    first, second = _two_on_a_family_email(model, a, b)
    assert second.profile_id != first.profile_id, f"{b} Lee joined {a} Lee's profile ({second.action})"


# Compound given names: only the first token is compared for nicknames/canonical.
COMPOUND = [("Jean-Pierre", "Jean-Luc"), ("Anna-Lena", "Anna-Maria"), ("Mary Jane", "Mary Ann")]


@pytest.mark.parametrize("a, b", COMPOUND)
def test_compound_given_names_with_another_second_part_are_not_nicknames(a, b):
    na, nb = fold_name(a), fold_name(b)
    assert not are_nicknames(na, nb)
    level = compare(normalize_record(_rec("s", "1", given_name=a, family_name="Lee")),
                    normalize_record(_rec("s", "2", given_name=b, family_name="Lee")))[0]
    assert level != 2, f"{a!r} / {b!r} compared as 'nickname'"


@pytest.mark.parametrize("a, b", COMPOUND)
def test_siblings_with_compound_given_names_are_not_merged_on_a_family_email(model, a, b):
    first, second = _two_on_a_family_email(model, a, b)
    assert second.profile_id != first.profile_id, f"{b} Lee joined {a} Lee's profile ({second.action})"


@pytest.mark.parametrize("a, b, level", [
    ("Anna-Lena", "Anna-Lenna", 3),  # a typo in the second word is still a typo
    ("Mary J", "Mary Jane", 2),  # an initial is not another word
    ("Liz", "Beth", 2), ("Bobby", "Bob", 2),  # two short forms of one name
])
def test_compound_typos_and_short_forms_still_compare_as_one_name(a, b, level):
    assert compare(normalize_record(_rec("s", "1", given_name=a, family_name="Lee")),
                   normalize_record(_rec("s", "2", given_name=b, family_name="Lee")))[0] == level


# Direct links in the nicknames data between two distinct (often opposite-gender) names. docs/identity.md says
# Andrea/Andreas are two people; Andrea/Andrew and Louise/Louis are as clearly so.
DIRECT = [("Andrew", "Andrea"), ("Louis", "Louise"), ("Peter", "Patrick"), ("Emily", "Emma")]


@pytest.mark.parametrize("a, b", DIRECT)
def test_distinct_names_listed_as_nicknames_are_not_merged_on_a_family_email(model, a, b):
    first, second = _two_on_a_family_email(model, a, b)
    assert second.profile_id != first.profile_id, f"{b} Lee joined {a} Lee's profile ({second.action})"


# --- 2. Placeholders that are not blocked ---------------------------------------------------------------

@pytest.mark.parametrize("placeholder", ["Not Provided", "TBD", "Dummy", "UNK", "Missing"])
def test_placeholder_names_are_blocked(placeholder):
    # every one of these is in normalize._BLOCKED_ANY, but names are checked against _BLOCKED_NAMES only
    assert fold_name(placeholder) is None


@pytest.mark.parametrize("name", ["Nan", "Nil", "Na", "Blank", "Md"])
def test_real_names_that_look_like_placeholders_or_suffixes_are_kept(name):
    # Nan (南, and a given name), Nil (a Turkish given name), Md (Mohammed in Bangladeshi names)
    n = normalize_record(_rec("pos", "1", given_name=name, family_name="Li"))
    m = normalize_record(_rec("pos", "2", given_name="Wei", family_name=name))
    assert (n.given_name, m.family_name) == (name.lower(), name.lower())


@pytest.mark.parametrize("full_name, given, family", [
    ("Md Rahman", "md", "rahman"), ("Rahman, Md", "md", "rahman"), ("Mr Md Abdul Karim", "md", "karim"),
    ("John Smith MD", "john", "smith"), ("Dr. Jane Doe, MD", "jane", "doe"),  # a doctor's MD after the name goes
])
def test_md_is_a_name_before_the_name_and_a_suffix_after_it(full_name, given, family):
    n = normalize_record(_rec("pos", "1", full_name=full_name))
    assert (n.given_name, n.family_name) == (given, family)


def test_a_customer_called_nan_li_with_a_city_is_resolved_not_quarantined(model):
    result, = resolve_records(MemoryStore(), [_rec("pos", "9", given_name="Nan", family_name="Li", city="Leeds")],
                              settings=Settings(), model=model)
    assert result.action == "created"


def test_a_spreadsheet_nan_is_no_name():
    assert fold_name(float("nan")) is None


def test_two_unknown_customers_with_a_placeholder_name_are_not_merged(model):
    store = MemoryStore()
    unknown = dict(given_name="Not Provided", family_name="Not Provided", postcode="SW1A 1AA")
    a, = resolve_records(store, [_rec("pos", "1", **unknown)], settings=Settings(), model=model)
    b, = resolve_records(store, [_rec("pos", "2", **unknown)], settings=Settings(), model=model)
    # Quarantined (nothing left to identify them) is not merged either.
    assert b.profile_id is None or b.profile_id != a.profile_id, f"two nameless till customers merged ({b.action})"


@pytest.mark.parametrize("placeholder", ["N/A", "n/a", "n.a."])
def test_placeholder_address_is_blocked(placeholder):
    # _address_text checks _BLOCKED_ANY after folding, when "n/a" has already become "n a"
    assert normalize_address(placeholder) is None
    n = normalize_record(_rec("s", "1", given_name="Ann", family_name="Lee", address_line1=placeholder,
                              postcode="SW1A 1AA"))
    assert n.address is None


@pytest.mark.parametrize("national, region, international", [
    ("666 666 666", "ES", "+34 666 666 666"),
    ("01 23 45 67 89", "FR", "+33 1 23 45 67 89"),
])
def test_phone_placeholder_blocked_in_international_form_too(national, region, international):
    # _is_placeholder_phone looks at the last 10 digits of the whole number: for 9-digit national numbers the
    # country code's last digit is included, so the placeholder survives when written with +34 / +33
    assert normalize_phone(national, region) is None  # blocked: the national spelling
    assert normalize_phone(international, region) is None
    assert normalize_phone(international.replace("+", "00", 1), None) is None


@pytest.mark.parametrize("placeholder", ["ＴＥＳＴ@shopmail.net", "ｎｏｒｅｐｌｙ@shopmail.net"])
def test_full_width_placeholder_email_is_blocked(placeholder):
    assert _email_fields(placeholder) == (None, None, None)


# --- 3. One value, two spellings, two normalized forms ---------------------------------------------------

def test_full_width_email_local_part_is_folded():
    # the domain is NFKC-folded by IDNA, the local part is not: an IME-typed address keeps full-width letters
    assert normalize_email("ＡＮＮ１９８４@shopmail.net") == normalize_email("ann1984@shopmail.net")


def test_needlessly_quoted_local_part_is_the_same_address():
    # RFC 5321: "ann"@x and ann@x are one mailbox; email-validator unquotes it when allow_quoted_local=True
    assert normalize_email('"ann"@shopmail.net') == "ann@shopmail.net"


@pytest.mark.parametrize("pasted", ["ann.lee@shop.co.uk\u200b", "\ufeffann.lee@shop.co.uk", "ann.lee\u00ad@shop.co.uk",
                                    "ann.lee@shop.co.uk\u200e", "\u2060ann.lee@shop.co.uk"])
def test_invisible_characters_pasted_with_an_email_are_dropped(pasted):
    # zero-width space, BOM, soft hyphen, left-to-right mark, word joiner (category Cf) from web forms, spreadsheets
    assert normalize_email(pasted) == "ann.lee@shop.co.uk"


@pytest.mark.parametrize("written", ["Ann Lee <ann.lee@shop.co.uk>", '"Lee, Ann" <Ann.Lee@shop.co.uk>',
                                     "mailto:ann.lee@shop.co.uk", "MAILTO:Ann.Lee@shop.co.uk", "<ann.lee@shop.co.uk>",
                                     "ann.lee@shop.co.uk (home)", "Ann Lee <mailto:ann.lee@shop.co.uk>"])
def test_display_name_mailto_and_comment_forms_give_the_address(written):
    assert normalize_email(written) == "ann.lee@shop.co.uk"


def test_a_record_whose_email_was_pasted_with_a_zero_width_space_links_by_email(model):
    store = MemoryStore()
    first, second = resolve_records(store, [_rec("web", "1", email="ann.lee@shop.co.uk"),
                                            _rec("pos", "2", email="ann.lee@shop.co.uk\u200b")],
                                    settings=Settings(), model=model)
    assert (second.action, second.reason, second.profile_id) == ("linked", "rule:email", first.profile_id)


def test_a_quoted_user_name_holding_an_at_sign_is_split_at_the_last_one():
    assert _email_fields('"ann@home"@shop.co.uk') == ('"ann@home"@shop.co.uk', '"ann@home"', "shop.co.uk")


def test_turkish_capital_dotted_i_folds_to_a_plain_i():
    # "İ".lower() is "i" and a combining dot above (U+0307): another mailbox than the one the customer has
    assert normalize_email("İBRAHIM@SHOP.COM.TR") == normalize_email("ibrahim@shop.com.tr") == "ibrahim@shop.com.tr"


@pytest.mark.parametrize("variant, plain", [
    ("Jo\u200bhn", "John"),  # zero-width space (copy-paste from web forms): unidecode turns it into a space
    ("O\u00b4Brien", "O'Brien"),  # acute accent used as an apostrophe: NFKC makes it " \u0301", then a space
])
def test_invisible_and_apostrophe_like_characters_fold_like_the_plain_name(variant, plain):
    assert fold_name(variant) == fold_name(plain)
    assert canonical_given_name(variant) == canonical_given_name(plain)


@pytest.mark.parametrize("a, b", [
    ("Flat 4, 12 High Street", "12 High Street, Flat 4"),  # the UK order puts the flat first
    ("Apt 4, 12 High Street", "12 High Street Apt 4"),
    ("No. 12 High Street", "12 High Street"),  # "No." is the house number here, not a unit
])
def test_unit_and_number_positions_do_not_change_the_address(a, b):
    assert normalize_address(a) == normalize_address(b)
    assert street_number_of(normalize_address(a)) == "12"


@pytest.mark.parametrize("a, b", [
    ("Berliner Straße 5", "Berliner Str. 5"),
    ("Berliner Strasse 5", "Berliner Str 5"),
])
def test_strasse_abbreviation_is_unified(a, b):
    # "strasse" -> "str" but "str" -> "st" in _ADDRESS_ABBREVIATIONS
    assert normalize_address(a) == normalize_address(b)


def test_international_prefix_of_the_default_region_is_read_by_phonenumbers():
    # Australia's international prefix is 0011: phonenumbers parses it, the hand-written "00" -> "+" rewrite
    # turns it into "+11 44 ..." and loses the number
    assert normalize_phone("0011 44 7911 123456", "AU") == "+447911123456"
    assert normalize_phone("0011 1 415 555 2671", "AU") == "+14155552671"


def test_uk_as_phone_region_means_gb():
    # region_code() maps "UK" to "GB" for countries and postcodes, but phone_region goes to phonenumbers as is
    n = normalize_record(_rec("pos", "1", given_name="Ann", family_name="Lee", phone="07911 123456", phone_region="UK"))
    assert n.phone == "+447911123456"


# --- 4. Different values that normalize equal --------------------------------------------------------------

def test_flat_number_written_with_a_hash_or_no():
    assert normalize_address("12 High St, Flat #4") == normalize_address("Flat No. 4, 12 High Street")


def test_floor_is_not_an_apartment():
    assert normalize_address("12 High Street, Floor 4") != normalize_address("12 High Street, Apt 4")


@pytest.mark.parametrize("a, b, address", [
    # An ordinal floor: "floor 1", not floor 10 of house "1st"
    (("1st Floor, 10 High St",), ("10 High St", "1st Floor"), "10 high st floor 1"),
    (("First Floor Flat, 10 High St",), ("10 High St", "First Floor Flat"), "10 high st floor 1"),
    (("Ground Floor Flat, 10 High St",), ("10 High St", "Ground Floor Flat"), "10 high st floor 0"),
    (("Flat 4, 1st Floor, 12 High St",), ("12 High St", "1st Floor, Flat 4"), "12 high st floor 1 unit 4"),
    (("First Floor Flat 2, 10 High St",), ("10 High St", "Flat 2, 1st Floor"), "10 high st floor 1 unit 2"),
    (("2/10 High St",), ("Unit 2, 10 High St",), "10 high st unit 2"),  # flat 2 of house 10 (Australia)
    (("10 B High St",), ("10B High St",), "10b high st"),
    (("Flat A, 12 High St",), ("12 High St", "Flat A"), "12 high st unit a"),
])
def test_floors_flats_and_house_letters_written_two_ways_are_one_address(a, b, address):
    assert normalize_address(*a) == normalize_address(*b) == address


@pytest.mark.parametrize("written", ["10", "10.0", "No. 10", "nr 10"])
def test_a_street_number_from_a_spreadsheet_or_with_no_is_the_number(written):
    n = normalize_record(_rec("s", "1", given_name="Ann", family_name="Lee", address_line1="High St",
                              street_number=written))
    assert (n.address, n.street_number) == ("10 high st", "10")
    assert normalize_address("High St", None, 10.0) == "10 high st"


@pytest.mark.parametrize("address, number", [
    ("10 N Main St", "10"), ("10 North Main St", "10"),  # a direction
    ("241 r. de la Paix", "241"), ("241 r de la Paix", "241"),  # rue
])
def test_a_letter_after_the_number_that_is_no_house_letter_stays_apart(address, number):
    assert street_number_of(normalize_address(address)) == number


def test_a_unit_word_in_a_street_name_is_not_dropped():
    # "flat" without a number after it is dropped: Flat Rock Road becomes Rock Road (and "Suite Lane" becomes "ln")
    assert normalize_address("12 Flat Rock Road") != normalize_address("12 Rock Road")
    assert normalize_address("12 Suite Lane") != normalize_address("12 Lane")


def test_distinct_han_names_are_not_folded_into_one():
    # 张 and 章 are two surnames, 伟 and 薇 two given names: unidecode reads all of them as "zhang wei"
    assert fold_name("张伟") != fold_name("章伟")
    assert fold_name("张伟") != fold_name("张薇")


@pytest.mark.parametrize("full_name, given, family", [
    ("张伟", "伟", "张"), ("張偉", "偉", "張"), ("王小明", "小明", "王"),
    ("欧阳娜娜", "娜娜", "欧阳"), ("司馬遷", "遷", "司馬"),  # compound family names
    ("山田太郎", "太郎", "山田"),  # four characters: two and two
    ("张 伟", "伟", "张"), ("山田　太郎", "太郎", "山田"),  # with a space: the family name first still
])
def test_han_full_names_are_split_family_name_first(full_name, given, family):
    n = normalize_record(_rec("s", "1", full_name=full_name))
    assert (n.given_name, n.family_name) == (given, family)


@pytest.mark.parametrize("a, b", [("张伟", "张强"), ("山田太郎", "山田花子")])
def test_han_named_siblings_on_one_home_phone_are_two_people(model, a, b):
    store = MemoryStore()
    first, second = resolve_records(store, [_rec("pos", "1", phone="+86 138 0013 8000", full_name=a),
                                            _rec("web", "2", phone="+86 138 0013 8000", full_name=b)],
                                    settings=Settings(), model=model)
    assert second.profile_id != first.profile_id, f"{b} joined {a}'s profile ({second.action})"


# --- 5. Impossible values kept --------------------------------------------------------------------------

def test_birth_date_in_the_future_is_rejected():
    tomorrow = date.today() + timedelta(days=1)
    assert normalize_birth_date(tomorrow) is None
    assert normalize_birth_date(tomorrow.isoformat()) is None
