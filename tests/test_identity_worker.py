"""The resolve queue function, poison handling and replay (Azurite + Cosmos emulator), and `ucp resolve` on files."""
from __future__ import annotations

import base64
import csv
import json
from datetime import datetime, timezone

import pytest
from azure.functions.queue import QueueMessage

from shared.cli import main as ucp
from shared.identity import get_profile
from shared.identity.worker import (POISON_SUFFIX, handle_resolve_message, replay_poison, send_to_poison,
                                    unwrap_poison)
from shared.storage import blob_service, bootstrap_storage, queue_client


def _message(body: str | bytes, dequeue_count: int = 1) -> QueueMessage:
    now = datetime.now(timezone.utc)
    body = body.encode() if isinstance(body, str) else body
    return QueueMessage(id="m1", body=body, dequeue_count=dequeue_count, expiration_time=now,
                        insertion_time=now, time_next_visible=now, pop_receipt="r")


@pytest.fixture
def worker_env(app_env, cosmos_store):
    bootstrap_storage(app_env)
    return app_env, cosmos_store


def test_queue_function_resolves_and_quarantines(worker_env, functions_by_name):
    settings, store = worker_env
    fn = functions_by_name["resolve_queue"]
    assert fn.get_trigger().queue_name == "%UCP_RESOLVE_QUEUE%"
    records = [
        {"source": "pos", "record_key": "1", "given_name": "Ann", "family_name": "Lee", "email": "ann@lee-mail.net"},
        {"source": "web", "record_key": "2", "given_name": "Ann", "email": "ANN@lee-mail.net"},
        {"source": "web", "record_key": "3", "given_name": "Nobody"},
    ]
    fn.get_user_function()(_message(json.dumps({"v": 1, "ingestion_id": "i1", "records": records})))
    pos = store.container("records").read_item("pos|1", "pos|1")["profile_id"]
    assert store.container("records").read_item("web|2", "web|2")["profile_id"] == pos
    assert {r["key"] for r in get_profile(store, pos)["records"]} == {"pos|1", "web|2"}
    blobs = list(blob_service(settings).get_container_client(settings.quarantine_container).list_blobs())
    assert len(blobs) == 1 and blobs[0].name.endswith(".jsonl")
    lines = blob_service(settings).get_blob_client(settings.quarantine_container, blobs[0].name).download_blob().readall()
    rows = [json.loads(line) for line in lines.decode().splitlines()]
    assert [r["record_key"] for r in rows] == ["web|3"] and "no usable field" in rows[0]["reason"]
    # redelivery of the same message changes nothing
    fn.get_user_function()(_message(json.dumps({"v": 1, "ingestion_id": "i1", "records": records}), dequeue_count=2))
    assert store.container("profiles").count_items(("doc_type", "=", "profile")) == 1


def test_a_message_delivered_again_checks_its_done_records_for_what_a_dead_attempt_left(worker_env, functions_by_name):
    """The dequeue count reaches the resolver: a record found done lists an identifier leading to its profile that the
    profile does not list (left so by an attempt that died: tests/test_identity_races.py), on a redelivery only."""
    settings, store = worker_env
    fn = functions_by_name["resolve_queue"].get_user_function()
    ann = {"source": "pos", "record_key": "1", "given_name": "Ann", "email": "ann@lee-mail.net",
           "phone": "+447911123456"}
    body = json.dumps({"v": 1, "ingestion_id": "i1", "records": [ann]})
    fn(_message(body))
    profiles = store.container("profiles")
    pid = store.container("records").read_item("pos|1", "pos|1")["profile_id"]
    doc = profiles.read_item(pid, pid)
    profiles.replace_item({**doc, "identifiers": ["email:ann@lee-mail.net", "source:pos|1"]}, etag=doc["_etag"])
    fn(_message(body))  # a duplicate, first delivered: the record is done, nothing is read again
    assert "phone:+447911123456" not in profiles.read_item(pid, pid)["identifiers"]
    fn(_message(body, dequeue_count=2))
    assert "phone:+447911123456" in profiles.read_item(pid, pid)["identifiers"]


@pytest.mark.parametrize("body, reason", [
    ("not json", "not JSON"),
    ('{"v": 1, "records": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),  # the parser's recursion
    (json.dumps({"v": "ann@lee-mail.net", "records": []}), "unsupported message version (a str; expected 1)"),
    (json.dumps({"v": 1, "claim": "missing.json"}), "not found"),
])
def test_malformed_message_goes_to_poison_with_reason_and_replays(worker_env, functions_by_name, body, reason):
    settings, _ = worker_env
    functions_by_name["resolve_queue"].get_user_function()(_message(body))
    poison = queue_client(settings.resolve_queue + POISON_SUFFIX, settings)
    peeked = poison.peek_messages(max_messages=5)
    assert len(peeked) == 1
    original, why = unwrap_poison(peeked[0].content)
    assert original == body and reason in why
    assert "ann@" not in why  # a value is never echoed in a reason (logged, and kept with the message)
    assert peeked[0].expires_on.year == 9999  # kept until replayed: no seven-day time-to-live


def test_invalid_records_are_quarantined_and_the_others_resolved(worker_env, functions_by_name):
    """A producer other than ingestion sends a record that is not a CustomerRecord: that record goes to the
    quarantine with the fields it failed on (names only: one that is no field name, such as an email, is counted), a
    record nested too deep to store goes there too, and the message's valid records are resolved."""
    settings, store = worker_env
    records = [
        {"source": "pos", "record_key": "1", "given_name": "Ann", "family_name": "Lee", "email": "ann@lee-mail.net"},
        {"source": "pos", "record_key": "2", "email": "bob@ray-mail.net", "bob.ray@ray-mail.net": "x"},
        {"source": "pos", "record_key": "3", "email": "cy@lee-mail.net",
         "attributes": {"a": json.loads("[" * 40 + "]" * 40)}},  # deeper than a record may be stored
        {"source": "pos", "record_key": "4", "given_name": "Dee", "family_name": "Lee", "email": "dee@lee-mail.net"},
    ]
    result = handle_resolve_message(json.dumps({"v": 1, "records": records}), store=store, settings=settings)
    assert result == {"created": 2, "invalid": 2}
    assert not queue_client(settings.resolve_queue + POISON_SUFFIX, settings).peek_messages(max_messages=1)
    container = blob_service(settings).get_container_client(settings.quarantine_container)
    [blob] = [b for b in container.list_blobs() if b.name.startswith("resolve/")]
    rows = [json.loads(line) for line in container.download_blob(blob.name).readall().decode().splitlines()]
    assert [r["record_key"] for r in rows] == ["pos|2", "pos|3"]  # full keys, as the resolver's own entries
    assert rows[0]["reason"] == "record 1 is not a valid CustomerRecord (fields: 1 other name(s))"
    assert rows[1]["reason"] == "record 2 is not a valid CustomerRecord (fields: attributes)"
    assert rows[0]["record"] == records[1]  # as sent, to be fixed and replayed


@pytest.mark.parametrize("memory", [True, False], ids=["memory", "cosmos"])
def test_a_late_message_of_an_older_file_does_not_undo_the_newer_version(worker_env, memory):
    """A pos file without update times lands, then its corrected version; a message of the first arrives late (a
    retry, a replay from the poison queue). The version that landed later stays, by the files' landing times."""
    from shared.ingest import encode_batches
    from shared.models import CustomerRecord
    from shared.store import MemoryStore

    settings, cosmos = worker_env
    store = MemoryStore() if memory else cosmos
    old = CustomerRecord(source="pos", record_key="1", given_name="Ann", family_name="Lee", email="ann@old-mail.net")
    new = old.model_copy(update={"email": "ann@new-mail.net"})

    def message(record, landed_at):
        batch, = encode_batches([record], ingestion_id="i-" + landed_at[:10], landed_at=landed_at)
        return batch.text

    first_file, second_file = "2026-11-01T09:00:00.000000Z", "2026-11-02T09:00:00.000000Z"
    assert handle_resolve_message(message(old, first_file), store=store, settings=settings) == {"created": 1}
    assert handle_resolve_message(message(new, second_file), store=store, settings=settings) == {"linked": 1}
    late = handle_resolve_message(message(old, first_file), store=store, settings=settings)
    assert late == {"unchanged": 1}
    profile_id = store.container("records").read_item("pos|1", "pos|1")["profile_id"]
    assert get_profile(store, profile_id)["attributes"]["email"]["value"] == "ann@new-mail.net"
    # The same file landing again later is a new version: it wins, as it would with update times.
    assert handle_resolve_message(message(old, "2026-11-03T09:00:00.000000Z"), store=store,
                                  settings=settings) == {"linked": 1}
    assert get_profile(store, profile_id)["attributes"]["email"]["value"] == "ann@old-mail.net"


def test_a_message_that_is_not_utf8_is_poisoned_as_it_came_and_replayed_so(worker_env, functions_by_name):
    settings, _ = worker_env
    body = b'{"v": 1, "records": [{"source": "pos", "record_key": "1", "given_name": "Ren\xe9"}]}'
    functions_by_name["resolve_queue"].get_user_function()(_message(body))
    assert ucp(["replay", "--queue", settings.resolve_queue]) == 0
    [back] = queue_client(settings.resolve_queue, settings, base64=False).peek_messages(max_messages=5)
    assert base64.b64decode(back.content) == body


def test_replay_ends_when_a_message_is_poisoned_again_while_it_runs(worker_env):
    """With the app running, a still-bad message is poisoned again as soon as it is replayed, under a new id: the
    run recognises it by its content, reports it and ends; the next run finds it visible."""
    settings, store = worker_env
    send_to_poison(settings.resolve_queue, "not json", "message is not JSON", settings)
    target = queue_client(settings.resolve_queue, settings)
    reports = replay_poison(settings.resolve_queue, settings)
    first = next(reports)
    assert first["replayed"] is True
    [moved] = target.receive_messages(max_messages=1)  # the running app takes it, and poisons it again
    assert handle_resolve_message(moved.content, store=store, settings=settings) == {"poisoned": "message is not JSON"}
    target.delete_message(moved)
    rest = list(reports)
    assert [r["replayed"] for r in rest] == [False] and "replayed earlier in this run" in rest[0]["left"]
    assert len(queue_client(settings.resolve_queue + POISON_SUFFIX, settings).peek_messages(max_messages=5)) == 1


def test_replay_reads_a_message_the_host_moved_unchanged(worker_env):
    """The real host moves a message that is not Base64 to the poison queue as it was: replay reads the queue
    as stored and puts it back Base64-encoded, where the worker can read it (and say what is wrong with it)."""
    settings, _ = worker_env
    poison = queue_client(settings.resolve_queue + POISON_SUFFIX, settings, base64=False)  # bootstrap made it
    poison.send_message("{not base64 and not json")
    assert ucp(["replay", "--queue", settings.resolve_queue]) == 0
    [back] = queue_client(settings.resolve_queue, settings).peek_messages(max_messages=5)
    assert back.content == "{not base64 and not json"


def test_replay_of_a_queue_without_a_poison_queue_is_a_clear_error(worker_env, capsys):
    assert ucp(["replay", "--queue", "nosuchqueue"]) == 2
    assert "there is no queue nosuchqueue-poison" in capsys.readouterr().err


def test_replay_moves_poison_back_unwrapped(worker_env, functions_by_name, capsys):
    settings, _ = worker_env
    functions_by_name["resolve_queue"].get_user_function()(_message("not json"))
    poison = queue_client(settings.resolve_queue + POISON_SUFFIX, settings)
    target = queue_client(settings.resolve_queue, settings)
    assert ucp(["replay", "--queue", settings.resolve_queue, "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["reason"] == "message is not JSON"
    assert list(target.peek_messages(max_messages=5)) == []
    assert ucp(["replay", "--queue", settings.resolve_queue]) == 0  # at once: a dry run leaves them visible
    assert [m.content for m in target.peek_messages(max_messages=5)] == ["not json"]
    assert poison.peek_messages(max_messages=5) == []


MAPPING = {"source": "{source}", "entity": "customers", "record_key": ["id"],
           "fields": {"given_name": "first", "family_name": "last", "email": "mail",
                      "phone": {"column": "tel", "region": "GB"}, "postcode": "zip", "birth_date": "dob"}}


def _write_source(tmp_path, source: str, rows: list[dict]) -> str:
    data = tmp_path / f"{source}.csv"
    with data.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "first", "last", "mail", "tel", "zip", "dob"])
        writer.writeheader()
        writer.writerows(rows)
    mapping = tmp_path / f"{source}.json"
    mapping.write_text(json.dumps(MAPPING).replace("{source}", source))
    return f"{data}:{mapping}"


@pytest.mark.parametrize("normalize_ahead", [1, 2, None])  # chunk boundaries inside and across files
def test_ucp_resolve_on_files(tmp_path, monkeypatch, normalize_ahead):
    if normalize_ahead is not None:
        monkeypatch.setattr("shared.identity.engine.NORMALIZE_AHEAD", normalize_ahead)
    pos = _write_source(tmp_path, "pos", [
        {"id": "P1", "first": "Ann", "last": "Lee", "mail": "ann@lee-mail.net", "dob": "1980-02-03", "zip": "LS1 4AB"},
        {"id": "P2", "first": "Bob", "last": "Jones", "tel": "07911 123456", "zip": "YO1 7HH"},
        {"id": "P3", "first": "", "last": "", "mail": ""},
    ])
    web = _write_source(tmp_path, "web", [
        {"id": "W1", "first": "Ann", "last": "Lee", "mail": "ANN@lee-mail.net"},
        {"id": "W2", "first": "Robert", "last": "Jones", "tel": "+44 7911 123456"},
        {"id": "W3", "first": "Cara", "last": "Brown", "dob": "1990-01-01", "zip": "HU1 1AA"},
    ])
    out, log = tmp_path / "out.csv", tmp_path / "merges.jsonl"
    assert ucp(["resolve", pos, web, "--out", str(out), "--merge-log", str(log), "--no-progress"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["source"], r["record_id"]) for r in rows] == [
        ("pos", "P1"), ("pos", "P2"), ("pos", "P3"), ("web", "W1"), ("web", "W2"), ("web", "W3")]
    ids = {(r["source"], r["record_id"]): r["profile_id"] for r in rows}
    assert ids[("pos", "P1")] == ids[("web", "W1")] and ids[("pos", "P2")] == ids[("web", "W2")]
    assert len({ids[("pos", "P1")], ids[("pos", "P2")], ids[("web", "W3")]}) == 3
    assert ids[("pos", "P3")] == ""  # nothing to resolve it on
    assert log.exists()


def test_ucp_resolve_says_why_a_record_has_no_profile(tmp_path, capsys):
    """--rejects: each record left without a profile, with its file row and the reason (field names, no values);
    the summary counts the reasons either way."""
    pos = _write_source(tmp_path, "pos", [
        {"id": "P1", "first": "Ann", "last": "Lee", "mail": "ann@lee-mail.net"},
        {"id": "P2", "first": "Bob", "last": "Jones", "mail": "test@test.com", "tel": "0000000000"},
        {"id": "P3", "first": "Cara", "last": "Brown", "dob": "1990-13-45", "mail": "cara@brown-mail.net"},
        {"id": "P4", "first": "Dan"},
    ])
    out, rejects = tmp_path / "out.csv", tmp_path / "rejects.csv"
    assert ucp(["resolve", pos, "--out", str(out), "--rejects", str(rejects), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert summary["actions"] == {"created": 1, "quarantined": 2, "invalid": 1}
    assert summary["reasons"] == {"no_usable_field": 2, "invalid_date:birth_date": 1}
    rows = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert [(r["file"], r["row"], r["source"], r["record_id"], r["action"], r["reason"]) for r in rows] == [
        ("pos.csv", "2", "pos", "P2", "quarantined", "no_usable_field"),
        ("pos.csv", "3", "pos", "P3", "invalid", "invalid_date:birth_date"),
        ("pos.csv", "4", "pos", "P4", "quarantined", "no_usable_field")]
    assert rows[0]["message"].endswith("left out as a placeholder, blocked or not valid: email, phone")
    assert rows[2]["message"].startswith("no usable field") and "left out" not in rows[2]["message"]
    assert "test@test.com" not in rejects.read_text(encoding="utf-8")
    no_profile = {r["record_id"] for r in csv.DictReader(out.open()) if not r["profile_id"]}
    assert no_profile == {r["record_id"] for r in rows}  # the two files join on the record id


def test_ucp_resolve_reviews_name_the_profiles_as_out_does(tmp_path):
    """A review's candidate absorbed by a later merge: --reviews names the profile it now belongs to."""
    pos = _write_source(tmp_path, "pos", [
        {"id": "P0", "first": "Ann", "last": "Lee", "tel": "07911 111111"},
        {"id": "P1", "first": "Ann", "last": "Lee", "mail": "ann@lee-mail.net", "tel": "07911 123456"}])
    web = _write_source(tmp_path, "web", [  # a second email: over the limit of one, so a review against P1
        {"id": "W1", "first": "Ann", "last": "Lee", "mail": "ann.lee@work-mail.net", "tel": "+44 7911 123456"}])
    crm = _write_source(tmp_path, "crm", [  # P1's email, P0's phone: P1's profile merges into P0's, the older
        {"id": "C1", "first": "Ann", "last": "Lee", "mail": "ann@lee-mail.net", "tel": "07911 111111"}])
    rules = tmp_path / "identity.json"
    rules.write_text(json.dumps({"protection": {"limits": {"email": 1}}}))
    out, reviews, merges = tmp_path / "out.csv", tmp_path / "reviews.jsonl", tmp_path / "merges.jsonl"
    assert ucp(["resolve", pos, web, crm, "--out", str(out), "--reviews", str(reviews), "--merge-log", str(merges),
                "--identity-config", str(rules), "--no-progress"]) == 0
    ids = {r["record_id"]: r["profile_id"] for r in csv.DictReader(out.open())}
    assert ids["P0"] == ids["P1"] == ids["C1"] != ids["W1"]
    (merge,) = [json.loads(line) for line in merges.read_text(encoding="utf-8").splitlines()]
    (review,) = [json.loads(line) for line in reviews.read_text(encoding="utf-8").splitlines()]
    assert (merge["profile_id"], merge["records"]) == (ids["P1"], ["pos|P1"])  # P1's first profile is an alias now
    assert (review["record_key"], review["profile_id"], review["candidate_profile_id"]) == (
        "web|W1", ids["W1"], ids["P1"])


def test_ucp_resolve_reviews_are_the_open_questions(tmp_path, capsys):
    """A review a later record answers (its merge joins the two sides) is closed, so --reviews leaves it out."""
    pos = _write_source(tmp_path, "pos", [  # a family mailbox at 1 High Street
        {"id": "A1", "first": "Ann", "last": "Lee", "mail": "thelees4300@mail.net", "tel": "07911 123456",
         "zip": "LS1 4AB"}])
    web = _write_source(tmp_path, "web", [  # a personal mailbox, same name and postcode: a review by score
        {"id": "A2", "first": "Ann", "last": "Lee", "mail": "ann.lee88@post.net", "zip": "LS1 4AB"}])
    crm = _write_source(tmp_path, "crm", [  # A2's email with A1's phone: the two are merged
        {"id": "A3", "first": "Ann", "last": "Lee", "mail": "ann.lee88@post.net", "tel": "+44 7911 123456"}])
    for inputs, open_reviews in (([pos, web], 1), ([pos, web, crm], 0)):
        out, reviews = tmp_path / "out.csv", tmp_path / "reviews.jsonl"
        assert ucp(["resolve", *inputs, "--out", str(out), "--reviews", str(reviews), "--no-progress"]) == 0
        assert len(reviews.read_text(encoding="utf-8").splitlines()) == open_reviews
        summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert (summary["actions"]["review"], summary["open_reviews"]) == (1, open_reviews)
    assert len({r["profile_id"] for r in csv.DictReader(out.open())}) == 1


def test_ucp_resolve_rejects_bad_arguments(tmp_path, capsys):
    assert ucp(["resolve", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv")]) == 2
    assert "INPUT:MAPPING" in capsys.readouterr().err


def test_ucp_resolve_takes_the_deployments_identity_rules(tmp_path):
    """--identity-config: the same rules file as the deployment (here: one email per profile) changes the links."""
    pos = _write_source(tmp_path, "pos", [{"id": "P1", "first": "Ann", "last": "Lee", "mail": "ann@lee-mail.net",
                                           "tel": "07911 123456"}])
    web = _write_source(tmp_path, "web", [{"id": "W1", "first": "Ann", "last": "Lee", "mail": "ann.lee@work-mail.net",
                                           "tel": "+44 7911 123456"}])
    rules = tmp_path / "identity.json"
    rules.write_text(json.dumps({"protection": {"limits": {"email": 1}}}))
    outputs = []
    for extra in ([], ["--identity-config", str(rules)]):
        out = tmp_path / f"out{len(outputs)}.csv"
        assert ucp(["resolve", pos, web, "--out", str(out), "--no-progress", *extra]) == 0
        outputs.append({r["record_id"]: r["profile_id"] for r in csv.DictReader(out.open())})
    assert outputs[0]["P1"] == outputs[0]["W1"]  # linked by the phone, two emails allowed
    assert outputs[1]["P1"] != outputs[1]["W1"]  # a second email is over the limit: review, not a link
    reviews = tmp_path / "reviews.jsonl"  # --reviews: the review list the run left
    assert ucp(["resolve", pos, web, "--out", str(tmp_path / "out.csv"), "--reviews", str(reviews), "--no-progress",
                "--identity-config", str(rules)]) == 0
    (review,) = [json.loads(line) for line in reviews.read_text(encoding="utf-8").splitlines()]
    assert (review["record_key"], review["profile_id"], review["candidate_profile_id"], review["status"]) == (
        "web|W1", outputs[1]["W1"], outputs[1]["P1"], "open")
    assert review["reason"] and not any(key.startswith("_") for key in review)
