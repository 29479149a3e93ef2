"""`ucp replay --quarantined-records`: the customer records the resolver quarantined (resolve/ of the quarantine
container) back on the resolve queue once their cause is fixed (Azurite: real blobs, a real queue)."""
from __future__ import annotations

import json

import pytest

from shared.cli import main as ucp
from shared.identity.worker import handle_resolve_message
from shared.ingest.messages import decode_message
from shared.ingest.replay import replay_quarantined_records
from shared.models import CustomerRecord
from shared.storage import blob_service, bootstrap_storage, queue_client
from shared.store import MemoryStore

RESOLVABLE = {"source": "pos", "record_key": "1", "given_name": "Ann", "family_name": "Lee",
              "email": "ann@lee-mail.net"}
UNRESOLVABLE = {"source": "web", "record_key": "2", "given_name": "Nobodyelse"}  # one name alone: no usable field
FIX = {"email": "nobodyelse@fixed-mail.net"}  # what the source sends once fixed


@pytest.fixture
def env(app_env):
    bootstrap_storage(app_env)
    return app_env, MemoryStore()


def _message(records: list[dict], ingestion: str = "i1") -> str:
    return json.dumps({"v": 1, "ingestion_id": ingestion, "records": records})


def _quarantine(settings):
    return blob_service(settings).get_container_client(settings.quarantine_container)


def _blobs(settings, prefix: str = "resolve/") -> list[str]:
    return sorted(b.name for b in _quarantine(settings).list_blobs(name_starts_with=prefix))


def _read(settings, name: str) -> bytes:
    return _quarantine(settings).download_blob(name).readall()


def _write(settings, name: str, data: bytes) -> None:
    _quarantine(settings).upload_blob(name, data, overwrite=True)


def _queued(settings) -> list[str]:
    """The messages on the resolve queue (taken off it)."""
    queue = queue_client(settings.resolve_queue, settings)
    out = []
    while batch := list(queue.receive_messages(messages_per_page=32, max_messages=32)):
        for msg in batch:
            out.append(msg.content)
            queue.delete_message(msg)
    return out


def _quarantine_by_worker(settings, store) -> str:
    """The real worker path: one record resolved, one quarantined; returns the quarantine blob's name."""
    counts = handle_resolve_message(_message([RESOLVABLE, UNRESOLVABLE]), store=store, settings=settings)
    assert counts == {"created": 1, "quarantined": 1}
    [name] = _blobs(settings)
    return name


def _fix_at_source(settings, name: str) -> dict:
    """Add the missing field to the quarantined record's line, as a fixed source would send it."""
    lines = [json.loads(line) for line in _read(settings, name).decode().splitlines()]
    assert [line["record_key"] for line in lines] == ["web|2"] and "no usable field" in lines[0]["reason"]
    lines[0]["record"].update(FIX)
    _write(settings, name, "".join(json.dumps(line) + "\n" for line in lines).encode())
    return lines[0]["record"]


def _no_values(text: str) -> None:
    for value in ("Nobodyelse", "nobodyelse", "Ann", "lee-mail", "Wrongfield"):
        assert value not in text


def test_a_fixed_quarantined_record_goes_back_on_the_resolve_queue_and_its_blob_goes(env):
    settings, store = env
    name = _quarantine_by_worker(settings, store)
    fixed = _fix_at_source(settings, name)

    [report] = replay_quarantined_records(settings)
    [(reason, count)] = report.pop("reasons").items()
    assert reason.startswith("no usable field") and count == 1
    assert report == {"blob": name, "records": 1, "left": [], "replayed": True}
    _no_values(json.dumps(report))
    [text] = _queued(settings)
    assert decode_message(text, settings) == [CustomerRecord.model_validate(fixed)]
    assert _blobs(settings) == []
    assert list(replay_quarantined_records(settings)) == []  # nothing left to replay
    assert _queued(settings) == []


def test_the_replayed_message_resolves_and_quarantines_nothing_again(env):
    settings, store = env
    name = _quarantine_by_worker(settings, store)
    _fix_at_source(settings, name)
    list(replay_quarantined_records(settings))
    [text] = _queued(settings)
    counts = handle_resolve_message(text, store=store, settings=settings)
    assert set(counts) <= {"created", "linked"} and sum(counts.values()) == 1
    assert store.container("records").read_item("web|2", "web|2")["profile_id"]
    assert _blobs(settings) == []


def test_a_record_still_unresolvable_is_quarantined_again_once_in_its_own_blob(env):
    settings, store = env
    name = _quarantine_by_worker(settings, store)  # not fixed
    [report] = replay_quarantined_records(settings)
    assert report["records"] == 1 and report["replayed"]
    [text] = _queued(settings)
    assert handle_resolve_message(text, store=store, settings=settings) == {"quarantined": 1}
    [again] = _blobs(settings)
    assert again == name  # named by the record's key and content, not by the message that carried it
    lines = _read(settings, again).decode().splitlines()
    assert [CustomerRecord.model_validate(json.loads(line)["record"]) for line in lines] == [
        CustomerRecord.model_validate(UNRESOLVABLE)]


def test_dry_run_lists_and_moves_nothing(env):
    settings, store = env
    name = _quarantine_by_worker(settings, store)
    before = _read(settings, name)
    [report] = replay_quarantined_records(settings, dry_run=True)
    assert report["blob"] == name and report["records"] == 1 and report["left"] == []
    assert report["replayed"] is False
    assert _blobs(settings) == [name] and _read(settings, name) == before
    assert _queued(settings) == []


def test_a_corrupt_line_stays_in_its_blob_and_is_reported(env):
    settings, store = env
    name = _quarantine_by_worker(settings, store)
    _fix_at_source(settings, name)
    good = _read(settings, name)
    bad_json = b'{"reason": "x", "record": {"source": "web", "record_key": "3", "given_name": "Wrongfield"'
    bad_record = json.dumps({"reason": "x", "record_key": "web|4",
                             "record": {"source": "web", "record_key": "4", "nickname": "Wrongfield"}}).encode()
    no_record = b'["Wrongfield"]'
    _write(settings, name, bad_json + b"\n" + good + b"\n" + bad_record + b"\n" + no_record + b"\n")

    [report] = replay_quarantined_records(settings)
    assert report["records"] == 1 and report["replayed"] is True
    assert report["left"] == [
        {"line": 1, "reason": "line is not JSON"},
        {"line": 4, "reason": "record is not a valid CustomerRecord (fields: nickname)"},
        {"line": 5, "reason": "line has no record object"},
    ]
    _no_values(json.dumps(report))
    assert _read(settings, name) == bad_json + b"\n" + bad_record + b"\n" + no_record + b"\n"
    [text] = _queued(settings)
    assert [r.key for r in decode_message(text, settings)] == ["web|2"]

    [again] = replay_quarantined_records(settings)  # only the bad lines left: nothing queued, nothing changed
    assert again["records"] == 0 and len(again["left"]) == 3 and again["replayed"] is False
    assert _read(settings, name) == bad_json + b"\n" + bad_record + b"\n" + no_record + b"\n"
    assert _queued(settings) == []


def _line(record: dict, reason: str = "no usable field: ...") -> bytes:
    return (json.dumps({"reason": reason, "record_key": f"{record['source']}|{record['record_key']}",
                        "record": record}) + "\n").encode()


def test_prefix_limits_the_blobs_replayed(env):
    settings, _ = env
    day1, day2 = "resolve/2026/11/01/aaa.jsonl", "resolve/2026/11/02/bbb.jsonl"
    _write(settings, day1, _line({**UNRESOLVABLE, "record_key": "d1"}))
    _write(settings, day2, _line({**UNRESOLVABLE, "record_key": "d2"}))
    _write(settings, "ing_0123.jsonl", b'{"file": "x.csv", "row": 2, "raw": {}, "reasons": []}\n')  # ingestion's

    assert [r["blob"] for r in replay_quarantined_records(settings, prefix="resolve/2026/11/01/")] == [day1]
    assert _blobs(settings) == [day2]
    assert [r.record_key for t in _queued(settings) for r in decode_message(t, settings)] == ["d1"]
    assert [r["blob"] for r in replay_quarantined_records(settings, prefix="2026/11/02/")] == [day2]  # short form
    assert [r.record_key for t in _queued(settings) for r in decode_message(t, settings)] == ["d2"]
    assert list(replay_quarantined_records(settings)) == []
    assert _blobs(settings, "") == ["ing_0123.jsonl"]  # rows ingestion quarantined are not records: untouched


def test_a_large_record_goes_through_a_claim_blob(env):
    settings, _ = env
    big = {**UNRESOLVABLE, **FIX, "attributes": {"notes": "n" * 60_000}}
    _write(settings, "resolve/2026/11/03/big.jsonl", _line(big, "too large for a profile"))
    [report] = replay_quarantined_records(settings)
    assert report["records"] == 1 and report["replayed"]
    [text] = _queued(settings)
    assert "claim" in json.loads(text) and len(text) < 1000
    assert decode_message(text, settings) == [CustomerRecord.model_validate(big)]
    assert _blobs(settings) == []


def test_cli_prints_the_reports_and_exits_0(env, capsys):
    settings, store = env
    name = _quarantine_by_worker(settings, store)
    _fix_at_source(settings, name)

    assert ucp(["replay", "--quarantined-records", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[0])["blob"] == name and "would replay 1 quarantined record(s)" in err
    assert _blobs(settings) == [name] and _queued(settings) == []

    assert ucp(["replay", "--quarantined-records", "resolve/"]) == 0
    out, err = capsys.readouterr()
    [line] = out.splitlines()
    assert json.loads(line) | {"reasons": None} == {"blob": name, "records": 1, "reasons": None, "left": [],
                                                    "replayed": True}
    assert "replayed 1 quarantined record(s) of 1 blob(s)" in err
    _no_values(out + err)
    assert _blobs(settings) == [] and len(_queued(settings)) == 1


def test_cli_exits_1_when_lines_stay(env, capsys):
    settings, _ = env
    _write(settings, "resolve/2026/11/04/bad.jsonl", b"not json\n")
    assert ucp(["replay", "--quarantined-records"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["left"] == [{"line": 1, "reason": "line is not JSON"}]
    assert "1 line(s) could not be read and stay" in err
    assert _blobs(settings) == ["resolve/2026/11/04/bad.jsonl"]


def test_a_crash_between_queueing_and_deleting_only_redelivers(env, monkeypatch):
    settings, store = env
    name = _quarantine_by_worker(settings, store)
    _fix_at_source(settings, name)
    import shared.ingest.replay as replay

    enqueue = replay._enqueue

    def enqueue_then_die(*args, **kwargs):
        enqueue(*args, **kwargs)
        raise KeyboardInterrupt  # the process is killed once the records are queued

    monkeypatch.setattr(replay, "_enqueue", enqueue_then_die)
    with pytest.raises(KeyboardInterrupt):
        list(replay_quarantined_records(settings))
    assert _blobs(settings) == [name]  # queued, not deleted
    monkeypatch.setattr(replay, "_enqueue", enqueue)
    [report] = replay_quarantined_records(settings)  # the re-run
    assert report["replayed"] and _blobs(settings) == []
    first, second = _queued(settings)
    assert first == second  # the same blob version: the same message
    assert set(handle_resolve_message(first, store=store, settings=settings)) <= {"created", "linked"}
    assert handle_resolve_message(second, store=store, settings=settings) == {"unchanged": 1}
    assert _blobs(settings) == []


def test_a_blob_changed_while_replayed_stays(env, monkeypatch):
    settings, store = env
    name = _quarantine_by_worker(settings, store)
    import shared.ingest.replay as replay

    enqueue = replay._enqueue

    def enqueue_while_edited(*args, **kwargs):
        enqueue(*args, **kwargs)
        _fix_at_source(settings, name)  # someone fixes the line meanwhile

    monkeypatch.setattr(replay, "_enqueue", enqueue_while_edited)
    [report] = replay_quarantined_records(settings)
    assert report["replayed"] is False and "changed while being replayed" in report["error"]
    assert json.loads(_read(settings, name))["record"]["email"] == FIX["email"]  # the edit is kept


def test_audit_reads_the_quarantined_keys_past_a_damaged_line(env):
    # A line the replay leaves in place (damaged by hand) must not stop the audit: the other keys are excused.
    from shared.audit import resolver_quarantined_keys

    settings, store = env
    name = _quarantine_by_worker(settings, store)
    _write(settings, name, _read(settings, name) + b'{"broken\n[1, 2]\n\xff\xfe\n')
    assert resolver_quarantined_keys(settings) == {"web|2"}
