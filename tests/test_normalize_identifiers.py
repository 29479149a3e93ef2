"""Normalization leaves out every placeholder itself (strong_identifiers need not look for them again), and its
phone validity shortcuts agree with phonenumbers."""
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.models import CustomerRecord
from shared.normalize import NormalizedRecord, is_blocked_value, normalize_record, strong_identifiers


def _record(**fields) -> CustomerRecord:
    return CustomerRecord(source="pos", record_key="17", **fields)


def test_a_custom_identifier_is_checked_for_placeholders_under_the_type_it_is_kept_as():
    # "Email" is kept as "email": "nobody" (no domain) and 1900-01-01 are placeholders of those types.
    n = normalize_record(_record(given_name="Ann", identifiers={"Email": "nobody", " Birth_Date ": "1900-01-01",
                                                                "CRM": "C-9"}))
    assert n.identifiers == {"crm": "c-9"}
    assert strong_identifiers(n) == [("crm", "c-9")]


def test_a_stored_snapshot_custom_placeholder_is_still_no_identifier():
    # Stored by a version that tested "Email" as a custom type: kept as email, but no address.
    n = NormalizedRecord.from_dict({"key": "pos|17", "source": "pos", "identifiers": {"email": "nobody", "crm": "c-9"}})
    assert strong_identifiers(n) == [("crm", "c-9")]


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
