"""The resolver's quarantine keeps each record (key and content as sent) once: landed copies of a file, redelivered
messages and replays add no copy, and a replay queues each record once (Azurite: real blobs, a real queue)."""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone

import pytest

from shared.identity.worker import handle_resolve_message
from shared.ingest.messages import decode_message
from shared.ingest.replay import replay_quarantined_records
from shared.storage import blob_service, bootstrap_storage
from shared.store import MemoryStore

from .test_replay_quarantined_records import _queued

RESOLVABLE = {"source": "pos", "record_key": "1", "given_name": "Ann", "family_name": "Lee",
              "email": "ann@lee-mail.net"}
UNUSABLE = {"source": "pos", "record_key": "2", "given_name": "Nobodyelse"}  # one name alone: no usable field
ALSO_UNUSABLE = {"source": "pos", "record_key": "3", "given_name": "Noonelse"}
NO_KEY = {"source": "pos", "nickname": "x"}  # not a CustomerRecord, and no record_key to name it by
FIX = {"email": "nobodyelse@fixed-mail.net"}


@pytest.fixture
def env(app_env):
    bootstrap_storage(app_env)
    return app_env, MemoryStore()


def _message(records: list[dict], ingestion: str, landed_at: str) -> str:
    return json.dumps({"v": 1, "ingestion_id": ingestion, "landed_at": landed_at, "records": records})


def _container(settings):
    return blob_service(settings).get_container_client(settings.quarantine_container)


def _blobs(settings) -> list[str]:
    return sorted(b.name for b in _container(settings).list_blobs(name_starts_with="resolve/"))


def _entries(settings) -> Counter:
    """Quarantine entries by (record key, record as sent), over every blob under resolve/."""
    out: Counter = Counter()
    for name in _blobs(settings):
        for line in _container(settings).download_blob(name).readall().decode().splitlines():
            row = json.loads(line)
            out[(row["record_key"], json.dumps(row["record"], sort_keys=True))] += 1
    return out


def _land_copies(settings, store, records: list[dict], copies: int = 3) -> None:
    """One file landed `copies` times (re-uploads, copies under other names): the same records in messages of
    other ingestion ids and landed times; then the first message is redelivered."""
    messages = [_message(records, f"ingest-{n}", f"2026-11-0{n + 1}T07:00:00.000000Z") for n in range(copies)]
    for text in messages + messages[:1]:
        handle_resolve_message(text, store=store, settings=settings)


def test_landed_copies_and_redeliveries_leave_one_entry_per_record_in_one_blob(env):
    settings, store = env
    many = [{"source": "pos", "record_key": f"u{n}", "given_name": f"Name{n}"} for n in range(300)]
    _land_copies(settings, store, [RESOLVABLE, UNUSABLE, NO_KEY, *many])
    assert len(_blobs(settings)) == 1  # one blob write per message, however many records it quarantines
    entries = _entries(settings)
    assert len(entries) == 302 and set(entries.values()) == {1}
    assert entries[(None, json.dumps(NO_KEY, sort_keys=True))] == 1
    rows = [json.loads(line) for line in _container(settings).download_blob(_blobs(settings)[0]).readall().decode()
            .splitlines()]
    [row] = [row for row in rows if row["record_key"] == "pos|2"]  # what readers rely on: reason, record as sent
    assert row["reason"].startswith("no usable field") and row["record"]["given_name"] == "Nobodyelse"
    [row] = [row for row in rows if row["record_key"] is None]
    assert row["record"] == NO_KEY and "fields: nickname, record_key" in row["reason"]


def test_dry_run_counts_each_record_once(env):
    settings, store = env
    _land_copies(settings, store, [RESOLVABLE, UNUSABLE])
    # The file changed elsewhere: the same unusable record now shares its message with another one.
    handle_resolve_message(_message([RESOLVABLE, UNUSABLE, ALSO_UNUSABLE], "ingest-9", "2026-11-09T07:00:00.000000Z"),
                           store=store, settings=settings)
    reports = list(replay_quarantined_records(settings, dry_run=True))
    assert sum(r["records"] for r in reports) == 2  # pos|2 and pos|3
    assert sum(r.get("duplicates", 0) for r in reports) == len(reports) - 1
    assert _queued(settings) == []


def test_a_replay_quarantined_again_leaves_one_entry_each(env):
    settings, store = env
    _land_copies(settings, store, [RESOLVABLE, UNUSABLE, NO_KEY])
    handle_resolve_message(_message([RESOLVABLE, UNUSABLE, ALSO_UNUSABLE], "ingest-9", "2026-11-09T07:00:00.000000Z"),
                           store=store, settings=settings)
    for _ in range(2):  # replayed twice, nothing fixed
        reports = list(replay_quarantined_records(settings))
        assert sum(r["records"] for r in reports) == 2
        texts = _queued(settings)
        assert sorted(r.key for t in texts for r in decode_message(t, settings)) == ["pos|2", "pos|3"]
        results = [handle_resolve_message(text, store=store, settings=settings) for text in texts]
        assert sum(result.pop("quarantined") for result in results) == 2 and not any(results)
        entries = _entries(settings)
        assert set(entries.values()) == {1}
        assert sorted(str(key) for key, _ in entries) == ["None", "pos|2", "pos|3"]  # the invalid line stays once


def test_a_replay_that_resolves_them_leaves_none(env):
    settings, store = env
    _land_copies(settings, store, [RESOLVABLE, UNUSABLE])
    [name] = _blobs(settings)
    lines = [json.loads(line) for line in _container(settings).download_blob(name).readall().decode().splitlines()]
    assert [line["record_key"] for line in lines] == ["pos|2"]
    lines[0]["record"].update(FIX)  # fixed by hand, as the docs say
    _container(settings).upload_blob(name, json.dumps(lines[0]) + "\n", overwrite=True)

    [report] = replay_quarantined_records(settings)
    assert report["records"] == 1 and report["replayed"]
    [text] = _queued(settings)
    assert set(handle_resolve_message(text, store=store, settings=settings)) <= {"created", "linked"}
    assert store.container("records").read_item("pos|2", "pos|2")["profile_id"]
    assert _blobs(settings) == []


def test_a_line_fixed_by_hand_survives_the_same_records_quarantined_again(env):
    settings, store = env
    text = _message([UNUSABLE], "ingest-0", "2026-11-01T07:00:00.000000Z")
    handle_resolve_message(text, store=store, settings=settings)
    [name] = _blobs(settings)
    line = json.loads(_container(settings).download_blob(name).readall())
    line["record"].update(FIX)
    _container(settings).upload_blob(name, json.dumps(line) + "\n", overwrite=True)
    handle_resolve_message(text, store=store, settings=settings)  # redelivered before the replay
    assert _blobs(settings) == [name]
    entries = _entries(settings)  # the fixed line, and the record as sent again: each once
    assert set(entries.values()) == {1} and sorted(json.loads(r).get("email", "") for _, r in entries) == [
        "", FIX["email"]]


def test_a_day_prefix_selects_the_blobs_last_written_that_day(env):
    # The resolver's blobs have no day in their name (resolve/<digest>.jsonl); those of earlier releases do.
    settings, _ = env
    line = json.dumps({"reason": "no usable field", "record_key": "pos|2", "record": UNUSABLE}) + "\n"
    flat, dated = "resolve/0123456789abcdef01234567.jsonl", "resolve/2025/01/02/0123456789abcdef01234567.jsonl"
    _container(settings).upload_blob(flat, line, overwrite=True)
    _container(settings).upload_blob(dated, line.replace("pos|2", "pos|3").replace('"2"', '"3"'), overwrite=True)
    today = datetime.now(timezone.utc)
    for prefix in (today.strftime("resolve/%Y/%m/"), today.strftime("%Y/%m/%d/"), today.strftime("%Y")):
        [report] = replay_quarantined_records(settings, prefix=prefix, dry_run=True)
        assert report["blob"] == flat and report["records"] == 1
    [report] = replay_quarantined_records(settings, prefix="2025/01/", dry_run=True)  # by name, not by date
    assert report["blob"] == dated and report["records"] == 1
    assert list(replay_quarantined_records(settings, prefix="2024/", dry_run=True)) == []
    assert [r["blob"] for r in replay_quarantined_records(settings, dry_run=True)] == sorted([flat, dated])


def test_a_record_quarantined_again_while_its_replay_runs_stays_once(env, monkeypatch):
    settings, store = env
    _land_copies(settings, store, [RESOLVABLE, UNUSABLE])
    [name] = _blobs(settings)
    damaged = b'{"reason": "x", "record": {"source": "pos"'  # a line edited badly by hand: kept as it is
    _container(settings).upload_blob(name, _container(settings).download_blob(name).readall() + damaged + b"\n",
                                     overwrite=True)
    import shared.ingest.replay as replay

    enqueue = replay._enqueue

    def enqueue_and_resolve_at_once(*args, **kwargs):  # a worker faster than the replay's delete
        enqueue(*args, **kwargs)
        for text in _queued(settings):
            assert handle_resolve_message(text, store=store, settings=settings) == {"quarantined": 1}

    monkeypatch.setattr(replay, "_enqueue", enqueue_and_resolve_at_once)
    [report] = replay_quarantined_records(settings)
    assert report["records"] == 1 and "changed while being replayed" in report["error"]  # it stays for the next
    lines = _container(settings).download_blob(name).readall().splitlines()
    assert lines[0] == damaged and [json.loads(line)["record_key"] for line in lines[1:]] == ["pos|2"]
