"""Edges of the local Functions host (devstack/host*.py) and the resolve worker's poison handling, where they
must behave like the real host.

- Shutdown keeps renewing the lease of a message whose function is still running within the drain.
- A blob version deleted or overwritten after it was detected is skipped as a success: never poisoned, never
  run with a newer version's content.
- `ucp replay` unwraps the host's poison wrapper of a non-Base64 message.
- The resolve worker's poison wrapper of a full-size message fits a queue message (claim-check beyond the limit)
  and replays to the same content.

Pure tests need no servers; the others use the Azurite started by the session fixture in tests/conftest.py.
"""
from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.storage.queue import QueueClient

from .test_host import conn, container, queue, wait_for

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.hostapp.function_app:app"
YEARLY = "0 0 0 1 1 *"


# -- helpers ---------------------------------------------------------------------------------------------------
class _FakeQueue:
    def __init__(self, name: str, sent: dict) -> None:
        self.name, self.sent = name, sent

    def create_queue(self) -> None:
        pass

    def send_message(self, content: str) -> None:
        self.sent.setdefault(self.name, []).append(content)

    def delete_message(self, *args) -> None:
        self.sent.setdefault("deleted", []).append(args)

    def update_message(self, *args, **kwargs):
        return SimpleNamespace(pop_receipt="r2")


class _FakeConnection:
    name = "AzureWebJobsStorage"

    def __init__(self) -> None:
        self.sent: dict[str, list] = {}

    def queue(self, name: str) -> _FakeQueue:
        return _FakeQueue(name, self.sent)


# -- shutdown --------------------------------------------------------------------------------------------------
@pytest.mark.stack
def test_lease_is_renewed_while_an_invocation_finishes_during_the_drain(local_stack):
    """Like the real host (a per-message timer in QueueListener), the lease of a running message is renewed until
    its invocation returns, also while the host drains at shutdown: the message does not become visible (and run
    a second time elsewhere) while its function finishes inside the drain window."""
    from devstack.host import LocalHost

    p = f"r{uuid.uuid4().hex[:8]}"
    work = queue(f"{p}-work")
    settings = {"HOSTAPP_PREFIX": p, "HOSTAPP_TICK": YEARLY, "HOSTAPP_MONITORED": YEARLY}
    host = LocalHost(APP, port=0, app_settings=settings, timers=False, blob_poll_interval=30, queue_lease=2,
                     drain_timeout=8).start()
    stopper = None
    try:
        work.send_message(json.dumps({"action": "sleep", "seconds": 5, "tag": uuid.uuid4().hex}))
        assert wait_for(lambda: host.in_flight() == 1, timeout=10)  # the function is running
        stopper = threading.Thread(target=host.stop)
        stopper.start()  # graceful shutdown; the function needs ~4.5 s more, well within the 8 s drain
        time.sleep(3.0)
        assert host.in_flight() == 1  # still running inside the drain window
        visible = list(work.peek_messages(max_messages=5))
        assert visible == [], "a message whose function is still running became visible (lease not renewed)"
    finally:
        if stopper is None:
            host.stop()
        else:
            stopper.join(20)
        for m in work.receive_messages(max_messages=32):
            work.delete_message(m)


# -- a message the host cannot decode ---------------------------------------------------------------------------
def test_a_message_that_is_not_base64_goes_to_poison_unchanged_and_replay_reads_it():
    """As the real host (Storage extension 5.x): a message that is not valid Base64 is moved to <queue>-poison
    at once, unchanged, without invoking; `ucp replay` reads the poison queue as stored and gets it back."""
    from devstack.host_config import QueueOptions
    from devstack.host_queue import QueueListener, _Lease
    from shared.identity.worker import unwrap_poison
    from shared.ingest.replay import base64_text

    conn = _FakeConnection()
    invoked = []
    spec = SimpleNamespace(name="resolve_queue", trigger=SimpleNamespace(attrs={"queueName": "resolve"}))
    invoker = SimpleNamespace(invoke=lambda *a, **k: invoked.append(a))
    listener = QueueListener(spec, conn, invoker, QueueOptions(), 30, threading.Event())
    raw = "this is {not base64}!"
    msg = SimpleNamespace(id="m1", content=raw, dequeue_count=1, pop_receipt="r1", expires_on=None,
                          inserted_on=None, next_visible_on=None)
    listener._handle(msg, _Lease(msg, 30))
    assert not invoked
    assert conn.sent["resolve-poison"] == [raw]
    assert unwrap_poison(base64_text(raw) or raw) == (raw, None)  # as replay_poison reads it


# -- blob versions that are no longer current ------------------------------------------------------------------
def _blob_listener(prefix: str, fn, annotation):
    from devstack.host_blob import BlobTriggerListener
    from devstack.host_config import AppSettings, Connections, QueueOptions
    from devstack.host_invoke import Binding, FunctionSpec, Invoker

    attrs = {"path": f"{prefix}-in/{{name}}", "connection": "AzureWebJobsStorage"}
    trigger = Binding("blobTrigger", "blob", "IN", attrs)
    spec = FunctionSpec("edge_blob", trigger, [trigger], fn, ".", param_types={"blob": annotation})
    connections = Connections(AppSettings(ROOT / "tests" / "hostapp", {"AzureWebJobsStorage": conn()}))
    invoker = Invoker(connections)
    listener = BlobTriggerListener([spec], invoker, connections, QueueOptions(visibility_timeout=0.0),
                                   f"edges-{prefix}", 30.0, threading.Event())
    return listener, invoker


def _blob_poison_for(name: str) -> list[dict]:
    q = QueueClient.from_connection_string(conn(), "webjobs-blobtrigger-poison")
    mine = []
    try:
        for m in q.receive_messages(max_messages=32, visibility_timeout=2):
            body = json.loads(base64.b64decode(m.content))
            if body.get("BlobName") == name:
                mine.append(body)
                q.delete_message(m)  # do not leave it for other tests' `ucp replay --blob-poison`
    except Exception:
        pass
    return mine


@pytest.mark.stack
def test_blob_deleted_before_its_invocation_is_ignored_not_poisoned(local_stack):
    """Like the real host (BlobQueueTriggerExecutor: "If the blob no longer exists, just ignore this message"), a
    blob deleted after it was detected is a success: no invocation, no retries, nothing on
    webjobs-blobtrigger-poison (even for a `bytes` parameter, whose argument could not be built)."""
    p = f"r{uuid.uuid4().hex[:8]}"
    calls = []

    def fn(blob: bytes) -> None:
        calls.append(blob)

    listener, invoker = _blob_listener(p, fn, bytes)
    try:
        blobs = container(f"{p}-in")
        blobs.upload_blob("gone.csv", b"x")
        props = next(iter(blobs.list_blobs()))
        blobs.delete_blob("gone.csv")  # deleted after the scan saw it, before the function ran
        watch = listener.watches[0]
        assert listener.dispatch(watch, props)
        assert wait_for(lambda: not listener.in_flight(), timeout=20)
        poisoned = _blob_poison_for("gone.csv")
        assert poisoned == [], f"a deleted blob was reported as poison: {poisoned}"
        assert calls == []
    finally:
        invoker.close()


@pytest.mark.stack
def test_blob_overwritten_before_its_invocation_is_not_run_with_the_newer_content(local_stack):
    """Like the real host, a version whose ETag changed since it was detected is skipped as a success (the new
    version fires on its own): the old version's invocation never reads the new content under the old ETag and
    length, so the new content is not processed twice."""
    from azure.functions import InputStream

    p = f"r{uuid.uuid4().hex[:8]}"
    calls = []

    def fn(blob: InputStream) -> None:
        calls.append((blob.blob_properties["ETag"], blob.length, blob.read()))

    listener, invoker = _blob_listener(p, fn, InputStream)
    try:
        blobs = container(f"{p}-in")
        blobs.upload_blob("a.csv", b"version one")
        old = next(iter(blobs.list_blobs()))
        blobs.upload_blob("a.csv", b"v2", overwrite=True)
        assert listener.dispatch(listener.watches[0], old)
        assert wait_for(lambda: not listener.in_flight(), timeout=20)
        mismatched = [(etag, n, data) for etag, n, data in calls if etag == old.etag and data != b"version one"]
        assert mismatched == [], f"the old version's invocation got other content: {mismatched}"
        assert calls == []  # skipped: the new version is dispatched by the next scan
        new = next(iter(blobs.list_blobs()))
        assert listener.dispatch(listener.watches[0], new)
        assert wait_for(lambda: not listener.in_flight(), timeout=20)
        assert calls == [(new.etag, 2, b"v2")]
    finally:
        invoker.close()


# -- the resolve worker's poison wrapper -----------------------------------------------------------------------
@pytest.mark.stack
def test_worker_poison_wrapper_of_a_full_size_message_can_be_sent(stack_settings):
    """A resolve message holds up to MAX_MESSAGE_JSON_BYTES (45,000) of JSON; wrapped as {"reason", "message"} it
    is JSON-escaped (every quote doubles) and Base64-encoded, past the 64 KiB queue limit. Such a wrapper keeps
    the message in a claim-check blob and wraps the claim message instead: the poison message is sent with its
    reason, and what `ucp replay` re-enqueues decodes to the same content."""
    from shared.identity.worker import POISON_SUFFIX, handle_resolve_message, unwrap_poison
    from shared.ingest.messages import MAX_MESSAGE_JSON_BYTES, decode_message, encode_batches
    from shared.models import CustomerRecord
    from shared.storage import bootstrap_storage, queue_client
    from shared.store import MemoryStore

    settings = stack_settings
    bootstrap_storage(settings)
    records = [CustomerRecord(source="pos", record_key=str(i), given_name="Ann", family_name="Lee",
                              email=f"ann{i}@lee-mail.net") for i in range(2000)]
    batch = next(encode_batches(records, ingestion_id="i1"))
    assert len(batch.text.encode()) <= MAX_MESSAGE_JSON_BYTES
    body = json.loads(batch.text)
    body["v"] = 2  # a version this worker does not read: the whole message is poisoned
    text = json.dumps(body, separators=(",", ":"))
    result = handle_resolve_message(text, store=MemoryStore(), settings=settings)
    assert "poisoned" in result
    peeked = queue_client(settings.resolve_queue + POISON_SUFFIX, settings).peek_messages(max_messages=5)
    assert len(peeked) == 1
    original, reason = unwrap_poison(peeked[0].content)
    assert reason == result["poisoned"] and "version" in reason
    assert len(original) < 1000 and json.loads(original).get("claim")  # the claim message, not the wrapper
    with pytest.raises(ValueError, match="version"):  # replayed, it reads the same (still unreadable) message
        decode_message(original, settings)
