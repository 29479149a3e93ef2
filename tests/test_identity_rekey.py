"""Re-keying a store after a change of normalization (shared/identity/rekey.py, `ucp rekey`), on both stores: the
records resolved under the old normalization claim the new forms of their identifiers, release the old ones and
join the profiles those lead to; profiles are never split; a store already current is left as it is."""
from __future__ import annotations

import json

import pytest

from shared.audit import audit_store
from shared.cli import main
from shared.identity import (Resolver, find_profile_id, get_profile, list_merges, rekey, remove_record,
                             resolve_records)
from shared.identity.docs import REKEYING, ConcurrencyConflict, Ctx
from shared.identity.maintenance import take_out
from shared.models import CustomerRecord
from shared.settings import Settings, get_settings

from .store_faults import Died, crashing, hooked

# One Ann Lee with a work +tag at gmail, another without it and its dot: one mailbox to gmail (provider rules on,
# the default), two to a deployment that turns the rules off. Postcodes and cities apart: no score joins them.
ANNS = [
    CustomerRecord(source="web", record_key="1", given_name="Ann", family_name="Lee", email="ann.lee+work@gmail.com",
                   postcode="LS1 4AP", city="Leeds"),
    CustomerRecord(source="pos", record_key="2", given_name="Ann", family_name="Lee", email="annlee@gmail.com",
                   postcode="SW1A 1AA", city="London"),
]
WALK_IN = "walkin@mystore.co.uk"


def configured(tmp_path, name: str, body: dict) -> Settings:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(body))
    return Settings(identity_config=str(path))


def rules_off(tmp_path) -> Settings:
    return configured(tmp_path, "off", {"normalization": {"email_provider_rules": False}})


def etag(store, profile_id: str) -> str:
    return store.container("profiles").read_item(profile_id, profile_id)["_etag"]


def walk_in_blocked(tmp_path) -> Settings:
    return configured(tmp_path, "blocked", {"protection": {"blocked_values": {"email": [WALK_IN]}}})


def profile_docs(store) -> list[dict]:
    return list(store.container("profiles").query_items(("doc_type", "=", "profile")))


def profile_ids(store) -> list[str]:
    return sorted(d["id"] for d in profile_docs(store))


def identifier_ids(store) -> list[str]:
    return sorted(d["id"] for d in store.container("identifiers").query_items())


def assert_consistent(store) -> None:
    report = audit_store(store).as_dict()
    assert report["ok"], report["violations"]


def test_provider_rules_turned_on_join_the_profiles_of_one_mailbox(store, tmp_path):
    off = rules_off(tmp_path)
    first, second = resolve_records(store, ANNS, settings=off)
    assert first.profile_id != second.profile_id
    # Not re-keyed yet: the folded form is only the pos record's, the web record's profile is not found by it.
    assert find_profile_id(store, "email", "ann.lee+work@gmail.com", settings=Settings()) == second.profile_id

    counts = rekey(store, settings=Settings())

    assert counts == {"passes": 2, "records": 2, "rekeyed": 1, "rekeyed_merged": 1}  # the web record's email changed
    assert profile_ids(store) == [first.profile_id]  # the older profile survives: ids stay stable
    for email in ("ann.lee+work@gmail.com", "annlee@gmail.com"):
        assert find_profile_id(store, "email", email, settings=Settings()) == first.profile_id
    assert "email:ann.lee+work@gmail.com" not in identifier_ids(store)  # the old form is released
    merge, = [m for m in list_merges(store, first.profile_id) if m.get("absorbed_id")]
    assert (merge["absorbed_id"], merge["rule"], merge["via_record"]) == (second.profile_id, "email", "web|1")
    assert_consistent(store)
    assert rekey(store, settings=Settings()) == {"passes": 1, "records": 2, "rekeyed": 0}  # idempotent


def test_provider_rules_turned_off_keep_the_profile_and_index_both_forms(store, tmp_path):
    first, second = resolve_records(store, ANNS, settings=Settings())
    assert second.profile_id == first.profile_id
    before = etag(store, first.profile_id)

    counts = rekey(store, settings=rules_off(tmp_path))

    assert counts == {"passes": 2, "records": 2, "rekeyed": 1, "rekeyed_linked": 1}
    profile = get_profile(store, first.profile_id)
    assert etag(store, first.profile_id) != before and profile_ids(store) == [first.profile_id]  # re-keyed, never split
    assert {"email:ann.lee+work@gmail.com", "email:annlee@gmail.com"} <= set(profile["identifiers"])
    web, = [r for r in profile["records"] if r["key"] == "web|1"]
    assert web["match"]["email"] == "ann.lee+work@gmail.com"
    for email in ("ann.lee+work@gmail.com", "annlee@gmail.com"):
        assert find_profile_id(store, "email", email, settings=rules_off(tmp_path)) == first.profile_id
    assert_consistent(store)


def test_a_newly_blocked_value_is_released(store, tmp_path):
    """A till's walk-in email, typed for customers who gave none, blocked after records were resolved with it: the
    identifier goes, and the records keep the rest."""
    records = [
        CustomerRecord(source="pos", record_key="1", given_name="Ann", family_name="Lee", email=WALK_IN,
                       phone="+447911123456"),
        CustomerRecord(source="pos", record_key="2", given_name="Ann", family_name="Lee", email=WALK_IN,
                       birth_date="1980-02-03", postcode="LS1 4AP"),
        CustomerRecord(source="pos", record_key="3", given_name="Raj", family_name="Patel", email="raj@patel.org"),
    ]
    ann, ann_again, raj = resolve_records(store, records, settings=Settings())
    assert ann_again.profile_id == ann.profile_id
    raj_etag = etag(store, raj.profile_id)

    counts = rekey(store, settings=walk_in_blocked(tmp_path))

    assert counts == {"passes": 2, "records": 3, "rekeyed": 2, "rekeyed_linked": 2}
    profile = get_profile(store, ann.profile_id)
    assert f"email:{WALK_IN}" not in identifier_ids(store) and f"email:{WALK_IN}" not in profile["identifiers"]
    assert [r["match"].get("email") for r in profile["records"]] == [None, None]
    assert find_profile_id(store, "phone", "+447911123456") == ann.profile_id
    assert etag(store, raj.profile_id) == raj_etag  # current: not written
    assert_consistent(store)


def test_a_record_left_with_nothing_usable_stays_until_removed(store, tmp_path):
    """A record whose only usable field was the value blocked now (its name alone is not resolved) is counted and
    left in its profile as it was, its identifier with it; its removal releases it."""
    records = [
        CustomerRecord(source="pos", record_key="1", given_name="Ann", family_name="Lee", email=WALK_IN,
                       phone="+447911123456"),
        CustomerRecord(source="pos", record_key="2", given_name="Ann", family_name="Lee", email=WALK_IN),
    ]
    ann, _ = resolve_records(store, records, settings=Settings())

    counts = rekey(store, settings=walk_in_blocked(tmp_path))

    assert counts == {"passes": 2, "records": 2, "rekeyed": 1, "rekeyed_linked": 1, "unusable": 1}
    assert f"email:{WALK_IN}" in get_profile(store, ann.profile_id)["identifiers"]  # pos|2 still gives it
    remove_record(store, "pos", "2", settings=Settings())
    assert f"email:{WALK_IN}" not in identifier_ids(store)
    assert_consistent(store)


def test_a_current_store_is_read_and_left_as_it_is(store):
    results = resolve_records(store, ANNS, settings=Settings())
    documents = {name: sorted((d["id"], d["_etag"]) for d in store.container(name).query_items())
                 for name in ("profiles", "identifiers", "records", "blocking", "merges", "review")}
    assert rekey(store, settings=Settings()) == {"passes": 1, "records": 2, "rekeyed": 0}
    assert documents == {name: sorted((d["id"], d["_etag"]) for d in store.container(name).query_items())
                         for name in documents}
    assert results[0].profile_id == results[1].profile_id


def test_a_redelivered_record_without_refresh_is_unchanged_and_keeps_its_old_forms(store, tmp_path):
    """Only rekey (or a changed record) re-keys: a redelivery of the same content is answered from its commit."""
    resolve_records(store, ANNS, settings=rules_off(tmp_path))
    again = Resolver(store, settings=Settings()).resolve(ANNS[0])
    assert again.action == "unchanged"
    assert "email:ann.lee+work@gmail.com" in identifier_ids(store)


def test_ucp_rekey_re_keys_the_configured_store(app_env, cosmos_store, tmp_path, monkeypatch, capsys):
    first, second = resolve_records(cosmos_store, ANNS, settings=rules_off(tmp_path))
    monkeypatch.setenv("UCP_IDENTITY_CONFIG", "")  # the shipped configuration: provider rules on
    get_settings.cache_clear()
    assert main(["rekey"]) == 0
    assert json.loads(capsys.readouterr().out) == {"passes": 2, "records": 2, "rekeyed": 1, "rekeyed_merged": 1}
    assert profile_ids(cosmos_store) == [first.profile_id]
    assert_consistent(cosmos_store)


@pytest.mark.parametrize("finished_by", ["rekey", "redelivery"])
def test_a_rekey_that_died_midway_is_finished_by_the_next_run_or_delivery(store, tmp_path, finished_by):
    """The run dies after the web record's entry was replaced, before its new email was claimed: the profile lists
    an identifier no document indexes. Its source identifier still bears the mark, so the next run (whose check of
    the entry alone would find it current) or the record's next delivery (whose content is the same) finishes it."""
    first, _ = resolve_records(store, ANNS, settings=Settings())
    off = rules_off(tmp_path)
    dying = crashing(store, "identifiers", "create_item", when=lambda body: body["id"].startswith("email:"))
    with pytest.raises(Died):
        rekey(dying, settings=off)
    assert "email:ann.lee+work@gmail.com" in get_profile(store, first.profile_id)["identifiers"]
    assert "email:ann.lee+work@gmail.com" not in identifier_ids(store)

    if finished_by == "rekey":  # the marked record first, then one pass over the profiles
        assert rekey(store, settings=off) == {"passes": 1, "records": 2, "rekeyed": 1, "rekeyed_linked": 1}
    else:
        assert Resolver(store, settings=off).resolve(ANNS[0]).action == "linked"
        assert rekey(store, settings=off) == {"passes": 1, "records": 2, "rekeyed": 0}
    assert find_profile_id(store, "email", "ann.lee+work@gmail.com", settings=off) == first.profile_id
    assert not any(d.get("rekeying") for d in store.container("identifiers").query_items())
    assert_consistent(store)


def test_a_record_a_dead_run_left_out_of_every_profile_is_found_by_its_mark(store, tmp_path):
    """A record whose new content takes it out of its profile (engine step 2) is taken out, then resolved as a new
    one. A run that died in between leaves it in no profile, where no pass over the profiles finds it: the next run
    starts from the records its mark names."""
    first, _ = resolve_records(store, ANNS, settings=Settings())
    ctx = Ctx(store, Settings())
    commit = ctx.identifiers.read_item("source:web|1", "source:web|1")
    ctx.identifiers.replace_item({**commit, REKEYING: "web|1"}, etag=commit["_etag"])  # as rekey marks it
    take_out(ctx, ctx.profiles.read_item(first.profile_id, first.profile_id), "web|1")  # as the record leaving it
    assert [r["key"] for p in profile_docs(store) for r in p["records"]] == ["pos|2"]

    assert rekey(store, settings=Settings()) == {"passes": 1, "records": 2, "rekeyed": 1, "rekeyed_linked": 1}

    assert sorted(r["key"] for p in profile_docs(store) for r in p["records"]) == ["pos|2", "web|1"]
    assert not [doc for doc in store.container("identifiers").query_items() if doc.get(REKEYING)]
    assert_consistent(store)


def test_a_removal_meeting_a_record_being_re_keyed_waits_for_it(store, tmp_path):
    """web|1 is deleted at its source while rekey resolves it again (its entry replaced, its new email not yet
    claimed). Its content is the same, so the removal cannot tell from the content hash that a resolution is under
    way: it waits on the mark (as its queue would retry it), and the record ends removed, nothing of it indexed. It
    used to take the record out at once; the re-key then claimed its email and keys for a profile without it."""
    first, _ = resolve_records(store, ANNS, settings=Settings())
    off = rules_off(tmp_path)
    waited = []

    def remove_meanwhile():
        try:
            remove_record(store, "web", "1", settings=off)
        except ConcurrencyConflict:
            waited.append(True)

    racing = hooked(store, "identifiers", "create_item", hook=remove_meanwhile,
                    when=lambda body: body["id"].startswith("email:"))
    rekey(racing, settings=off)
    assert racing.intercepted and waited == [True]

    assert remove_record(store, "web", "1", settings=off) == first.profile_id  # the retry, after the re-key
    assert [r["key"] for p in profile_docs(store) for r in p["records"]] == ["pos|2"]
    assert "email:ann.lee+work@gmail.com" not in identifier_ids(store)
    assert_consistent(store)


def test_a_version_committed_while_rekey_reads_is_left_to_its_worker(store, tmp_path):
    """A new version of the web record is resolved (with the new setting) between rekey's reads and its mark: the
    mark's write fails on the commit's ETag, and the record, checked again, is current."""
    resolve_records(store, ANNS, settings=Settings())
    off = rules_off(tmp_path)
    moved = ANNS[0].model_copy(update={"city": "York", "postcode": "YO1 7HH"})
    racing = hooked(store, "identifiers", "replace_item", hook=lambda: resolve_records(store, [moved], settings=off))

    assert rekey(racing, settings=off) == {"passes": 1, "records": 2, "rekeyed": 0}
    web = [r for p in profile_docs(store) for r in p["records"] if r["key"] == "web|1"]
    assert [r["match"]["city"] for r in web] == ["york"]
    assert_consistent(store)


def test_a_marked_record_left_with_nothing_usable_loses_its_mark_and_can_be_removed(store, tmp_path):
    """A run re-keying a record whose only identifier is a tagged gmail address (provider rules turned off) dies
    after marking it; before the next run, that address is blocked as well: the record is left as it is (nothing to
    re-key it to) and its mark taken off, so that its removal (which waits on a mark) goes through."""
    tagged = "ann.lee+x@gmail.com"
    only_email, = resolve_records(store, [CustomerRecord(source="pos", record_key="2", given_name="Ann",
                                                         family_name="Lee", email=tagged)], settings=Settings())
    with pytest.raises(Died):
        rekey(crashing(store, "records", "replace_item"), settings=rules_off(tmp_path))
    assert [doc["id"] for doc in store.container("identifiers").query_items() if doc.get(REKEYING)] == ["source:pos|2"]
    blocked = configured(tmp_path, "off_blocked", {"normalization": {"email_provider_rules": False},
                                                   "protection": {"blocked_values": {"email": [tagged]}}})

    assert rekey(store, settings=blocked) == {"passes": 1, "records": 1, "rekeyed": 0, "unusable": 1}

    assert not [doc for doc in store.container("identifiers").query_items() if doc.get(REKEYING)]
    assert remove_record(store, "pos", "2", settings=blocked) == only_email.profile_id
    assert_consistent(store)
