"""bench/identity_repair.py: a repair over a window of time reads what the window touches, a full run everything."""
from __future__ import annotations

from bench import identity_repair


def test_the_window_run_reads_around_the_windows_records_and_the_full_run_everything(store):
    """Two households resolved, then one more record of the first: the window's scope holds its profile and what it
    touches, not the other household; the full run reads every profile. Neither finds anything to mend."""
    from shared.models import CustomerRecord
    from tests.test_identity_shared_identifiers import HOME, SETTINGS, person

    records = [person("pos", "1", "Ann", phone=HOME, email="ann@lee.org", birth_date="1975-05-06"),
               person("pos", "2", "Bob", phone=HOME, email="bob@lee.org", birth_date="1977-07-08"),
               CustomerRecord(source="pos", record_key="3", given_name="Zoe", family_name="Park",
                              phone="+44 7700 900111", email="zoe@park.org"),
               person("web", "4", "Ann", email="ann@lee.org")]
    figures = identity_repair.measure(store, records, 3, SETTINGS)
    assert figures["records_in_window"] == 1 and figures["requests_resolving_the_window"] > 0
    assert figures["window_run"]["found"] == {"profiles": 1}  # Ann's, nothing mended
    assert figures["full_run"]["found"] == {"profiles": 3}
    scopes = figures["window_scopes"]
    assert scopes["chunks"] == 1 and scopes["profiles_and_aliases"] == 2  # Ann, and Bob as a holder of her phone
    assert figures["documents_in_window"]["profiles"] == 1 and figures["documents_in_store"]["profiles"] == 3
    assert figures["window_run"]["requests"] > 0 and figures["full_run"]["requests"] > 0
    assert set(figures["documents_in_store"]) == {"profiles", "identifiers", "blocking", "records"}
