"""Normalization leaves out every placeholder itself (strong_identifiers need not look for them again), and its
phone validity shortcuts agree with phonenumbers."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.identity import is_placeholder_identifier, resolve_records
from shared.models import CustomerRecord
from shared.normalize import NormalizedRecord, is_blocked_value, normalize_record, strong_identifiers
from shared.settings import Settings
from shared.store import MemoryStore


def _record(**fields) -> CustomerRecord:
    return CustomerRecord(source="pos", record_key="17", **fields)


def test_a_custom_identifier_is_checked_for_placeholders_under_the_type_it_is_kept_as():
    # "Email" is kept as "email": "nobody" (no domain) and 1900-01-01 are placeholders of those types.
    n = normalize_record(_record(given_name="Ann", identifiers={"Email": "nobody", " Birth_Date ": "1900-01-01",
                                                                "CRM": "C-9"}))
    assert n.identifiers == {"crm": "C-9"}
    assert strong_identifiers(n) == [("crm", "C-9")]


def test_the_engines_own_identifier_types_are_no_custom_identifiers():
    # "source:pos|123" is record pos|123's own id, "anonymous_id:..." a device link: a CRM column named Source must
    # not claim them (it would join this record to pos|123's profile by rule).
    n = normalize_record(_record(given_name="Bob", identifiers={"Source": "pos|123", "source:pos": "123",
                                                                " Anonymous_ID": "dev-1", "crm": "C-9"}))
    assert n.identifiers == {"crm": "C-9"}


def test_a_records_own_matching_field_is_no_custom_identifier():
    """A producer sending {"birth_date": ...} or {"postcode": ...} as an identifier would link by rule everyone
    born that day or living there: those fields are compared by score, from the record's own fields."""
    store = MemoryStore()
    ann, bob = resolve_records(store, [
        CustomerRecord(source="api", record_key="1", given_name="Ann", family_name="Lee", postcode="LS1 4AB",
                       identifiers={"birth_date": "1980-02-03", "postcode": "LS1 4AB", "crm": "C-1"}),
        CustomerRecord(source="api", record_key="2", given_name="Bob", family_name="Kay", postcode="LS1 4AB",
                       identifiers={"Birth_Date": "1980-02-03", "postcode": "LS1 4AB", "crm": "C-2"})],
        settings=Settings())
    assert bob.action == "created" and bob.profile_id != ann.profile_id
    assert normalize_record(_record(identifiers={"given_name": "Ann", "crm": "C-1"})).identifiers == {"crm": "C-1"}


def test_a_custom_source_identifier_does_not_join_the_record_it_names():
    store = MemoryStore()
    ann, bob = resolve_records(store, [
        CustomerRecord(source="pos", record_key="123", given_name="Ann", family_name="Lee", email="ann.lee@shop.co.uk"),
        CustomerRecord(source="web", record_key="9", given_name="Bob", family_name="Kay", email="bob.kay@shop.co.uk",
                       identifiers={"Source": "pos|123"})], settings=Settings())
    assert bob.action == "created" and bob.profile_id != ann.profile_id


def test_a_custom_email_phone_or_loyalty_id_is_normalized_as_the_field_is():
    n = normalize_record(_record(phone_region="GB", identifiers={"Email": "Ann.Lee+shop@Gmail.com",
                                                                 "Phone": "07911 123456", "Loyalty_ID": "l-100 200"}))
    assert n.identifiers == {"email": "annlee@gmail.com", "phone": "+447911123456", "loyalty_id": "L100200"}
    # A phone is read with the record's country first, as the phone field is.
    n = normalize_record(_record(phone_region="GB", country="United States", identifiers={"phone": "(201) 813-4752"}))
    assert n.identifiers == {"phone": "+12018134752"}


def test_email_provider_rules_off_keep_an_email_and_a_custom_email_as_written():
    """normalization.email_provider_rules false (config/identity.json): gmail dots and +tags name other mailboxes."""
    record = _record(email="Ann.Lee+Work@Gmail.com", identifiers={"Email": "ann.lee+work@googlemail.com"})
    on = normalize_record(record)
    assert (on.email, on.identifiers) == ("annlee@gmail.com", {"email": "annlee@gmail.com"})
    off = normalize_record(record, email_provider_rules=False)
    assert (off.email, off.email_user, off.email_domain) == ("ann.lee+work@gmail.com", "ann.lee+work", "gmail.com")
    assert off.identifiers == {"email": "ann.lee+work@googlemail.com"}
    assert strong_identifiers(off)[0] == ("email", "ann.lee+work@gmail.com")
    assert normalize_record(record) == on  # each form is cached apart
    assert normalize_record(record, email_provider_rules=True) == on


@pytest.mark.parametrize("email", ["test@test.com", "no.reply@gmail.com", "noreply+shop@gmail.com", "n/a"])
def test_email_provider_rules_off_still_leave_placeholders_out(email):
    """A placeholder with provider rules applied is one without them: the option names mailboxes, not placeholders."""
    n = normalize_record(_record(given_name="Ann", email=email, identifiers={"email": email}),
                         email_provider_rules=False)
    assert (n.email, n.email_user, n.email_domain, n.identifiers) == (None, None, None, {})
    assert is_placeholder_identifier("email", email)


def test_a_custom_email_links_the_same_address_in_the_email_field():
    store = MemoryStore()
    first, second = resolve_records(store, [
        _record(given_name="Ann", family_name="Lee", email="ann.lee@gmail.com"),
        CustomerRecord(source="web", record_key="2", given_name="Ann", family_name="Lee",
                       identifiers={"Email": "Ann.Lee+shop@Gmail.com"})], settings=Settings())
    assert (second.action, second.profile_id) == ("linked", first.profile_id)


def test_a_custom_identifier_keeps_its_case():
    # Salesforce 15-character ids differ by case alone: two contacts, not one.
    a = normalize_record(_record(identifiers={"sf_id": " 0035g00000AbCdE "}))
    b = normalize_record(_record(identifiers={"sf_id": "0035g00000aBcDe"}))
    assert (a.identifiers, b.identifiers) == ({"sf_id": "0035g00000AbCdE"}, {"sf_id": "0035g00000aBcDe"})
    store = MemoryStore()
    first, second = resolve_records(store, [
        CustomerRecord(source="crm", record_key=str(i), given_name=given, family_name="Lee", city="Leeds",
                       identifiers={"sf_id": sf_id})
        for i, (given, sf_id) in enumerate((("Ann", "0035g00000AbCdE"), ("Bob", "0035g00000aBcDe")))
    ], settings=Settings())
    assert second.action == "created" and second.profile_id != first.profile_id


def test_a_stored_snapshot_custom_placeholder_is_still_no_identifier():
    # Stored by a version that tested "Email" as a custom type: kept as email, but no address.
    n = NormalizedRecord.from_dict({"key": "pos|17", "source": "pos", "identifiers": {"email": "nobody", "crm": "c-9"}})
    assert strong_identifiers(n) == [("crm", "c-9")]


@pytest.mark.parametrize("value", ["#N/A", "(none)", "None.", "n.a", "n-a", "not_provided", "N/A N/A", "#VALUE!",
                                   "#REF!", "#NAME?", "#NULL!", "#DIV/0!", "#NUM!", "[unknown]", "'n/a'"])
@pytest.mark.parametrize("id_type", ["loyalty_id", "member_no"])
def test_a_punctuated_or_spreadsheet_placeholder_id_links_nobody(id_type, value):
    """A placeholder wrapped in punctuation (a spreadsheet's #N/A, "(none)", "None.", "N/A N/A") is as much one as
    "n/a": left out, called a placeholder by the lookup, and two strangers holding it stay two profiles."""
    ids = {"loyalty_id": value} if id_type == "loyalty_id" else {"identifiers": {id_type: value}}
    n = normalize_record(_record(given_name="Ann", **ids))
    assert (n.loyalty_id, n.identifiers) == (None, {}), value
    assert is_placeholder_identifier(id_type, value), value
    store = MemoryStore()
    ann, mo = resolve_records(store, [
        CustomerRecord(source="crm", record_key="1", given_name="Ann", family_name="Lee", postcode="SW1A 1AA", **ids),
        CustomerRecord(source="pos", record_key="2", given_name="Mohammed", family_name="Khan", postcode="M1 1AE",
                       **ids)], settings=Settings())
    assert mo.action == "created" and mo.profile_id != ann.profile_id


def test_an_id_with_punctuation_or_a_placeholder_word_in_it_is_still_an_id():
    for value in ("L-100", "NA-1", "N/A-77", "#12345", "(0161) 55", "NONE7", "TEST-900", "A/B", "会員123"):
        assert normalize_record(_record(loyalty_id=value)).loyalty_id, value
        assert normalize_record(_record(identifiers={"member_no": value})).identifiers, value


def test_a_loyalty_or_custom_id_typed_full_width_or_pasted_with_an_invisible_character_is_the_same_id():
    """Full-width characters (typed with an IME) and invisible ones (a zero-width space, a BOM pasted with the value)
    are folded as an email's are: the same id, one profile; a custom id keeps its case."""
    for raw in ("Ｌ１００２３４", "L100\u200b234", "\ufeffl-100 234", "L１００２３４\u00ad"):
        assert normalize_record(_record(loyalty_id=raw)).loyalty_id == "L100234", raw
    assert normalize_record(_record(identifiers={"member_no": "Ｃ-５５０１２\u200b"})).identifiers == {"member_no": "C-55012"}
    assert normalize_record(_record(identifiers={"sf_id": "ａＢｃ"})).identifiers == {"sf_id": "aBc"}
    assert normalize_record(_record(identifiers={"member_no": "会員\u200b123"})).identifiers == {"member_no": "会員123"}
    for ids_a, ids_b in (({"loyalty_id": "L100234"}, {"loyalty_id": "Ｌ１００２３４"}),
                         ({"loyalty_id": "L100234"}, {"loyalty_id": "L100\u200b234"}),
                         ({"identifiers": {"member_no": "C-55012"}}, {"identifiers": {"member_no": "Ｃ-５５０１２"}})):
        first, second = resolve_records(MemoryStore(), [
            CustomerRecord(source="crm", record_key="1", given_name="Yuki", family_name="Tanaka", **ids_a),
            CustomerRecord(source="pos", record_key="2", given_name="Yuki", family_name="Tanaka", **ids_b)],
            settings=Settings())
        assert (second.action, second.profile_id) == ("linked", first.profile_id), ids_b


@pytest.mark.parametrize("id_type", ["loyalty_id", "member_no"])
def test_a_full_width_placeholder_id_links_nobody(id_type):
    ids = {"loyalty_id": "Ｎ／Ａ"} if id_type == "loyalty_id" else {"identifiers": {id_type: "Ｎ／Ａ"}}
    assert is_placeholder_identifier(id_type, "Ｎ／Ａ") and is_placeholder_identifier(id_type, "n/a\u200b")
    ann, mo = resolve_records(MemoryStore(), [
        CustomerRecord(source="crm", record_key="1", given_name="Ann", family_name="Lee", postcode="SW1A 1AA", **ids),
        CustomerRecord(source="pos", record_key="2", given_name="Mohammed", family_name="Khan", postcode="M1 1AE",
                       **ids)], settings=Settings())
    assert mo.action == "created" and mo.profile_id != ann.profile_id


_text = st.one_of(st.none(), st.text(max_size=30),
                  st.sampled_from(["n/a", "0000000000", "+44 7911 123456", "a@b.co", "test@test.com", "-1", "1111"]))
_types = st.one_of(st.text(max_size=12), st.sampled_from(["Email", " PHONE", "loyalty_id", "Birth_Date", "crm"]))


@settings(max_examples=200, deadline=None)
@given(email=_text, phone=_text, loyalty_id=_text, identifiers=st.dictionaries(_types, st.text(max_size=20),
                                                                                 max_size=3))
def test_no_strong_identifier_is_a_placeholder(email, phone, loyalty_id, identifiers):
    fields = {k: v for k, v in dict(email=email, phone=phone, loyalty_id=loyalty_id).items() if v and v.strip()}
    try:
        record = _record(phone_region="GB", identifiers=identifiers, **fields)
    except ValueError:
        return  # the canonical model itself rejects it
    for id_type, value in strong_identifiers(normalize_record(record)):
        assert value and not is_blocked_value(id_type, value)


def test_phone_validity_agrees_with_the_library_for_every_region_and_number_type():
    # _valid_for_region tests fixed line and mobile before the rarer types: every type's example number of every
    # region, and the same with its last digit changed, must be valid exactly when the library says so.
    import phonenumbers
    from phonenumbers import PhoneNumberType

    from shared.normalize import _is_valid_number

    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE,
                            PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST, PhoneNumberType.VOIP,
                            PhoneNumberType.PERSONAL_NUMBER, PhoneNumberType.PAGER, PhoneNumberType.UAN,
                            PhoneNumberType.VOICEMAIL):
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is None:
                continue
            for national in (example.national_number, example.national_number // 10 * 10 + 7):
                number = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=national)
                assert _is_valid_number(number) == phonenumbers.is_valid_number(number), (region, national)
                checked += 1
    assert checked > 2000
