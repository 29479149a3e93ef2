"""Queue triggers with the real host's semantics (host.json extensions.queues).

- Messages are Base64 text, as the real host reads and writes them by default (`messageEncoding: none` reads
  them as plain text). One that is not valid Base64 goes straight to `<queue>-poison` unchanged, without
  invoking, as the real host's Storage extension 5.x does (azure-sdk-for-net PR 18326).
- A batch of `batchSize` messages is fetched and run concurrently; the next batch is fetched once no more than
  `newBatchThreshold` are still running (so at most batchSize + newBatchThreshold at once per function).
- While a function runs its message stays invisible (leased, the lease renewed in the background). Success
  deletes it. Failure makes it visible again after `visibilityTimeout`, so it is retried with a real
  dequeue_count; after `maxDequeueCount` attempts it is copied unchanged to `<queue>-poison` and deleted.
- An empty queue is polled with exponential back-off up to `maxPollingInterval`; a message this host writes to
  the queue through an output binding wakes its listener at once (as the real host does).
- On shutdown nothing new is fetched, but leases are still renewed while running functions drain (the real
  host renews until the invocation returns); `halt` is set after the drain deadline, and a message whose
  function did not finish by then reappears when its lease expires.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueClient

from .host_config import QueueOptions, StorageConnection
from .host_invoke import FunctionSpec, InvocationFailed, Invoker

log = logging.getLogger("devstack.host")


def decode_body(raw: str) -> bytes:
    """The message body under the Base64 the host expects; ValueError if it is not valid Base64."""
    compact = "".join(raw.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("message is not valid Base64 (the host reads queue messages as Base64 text)") from err


class _Lease:
    """A received message that is being processed, with the pop receipt needed to renew or delete it."""

    def __init__(self, msg: Any, lease_seconds: int) -> None:
        self.id = msg.id
        self.pop_receipt = msg.pop_receipt
        self.renew_at = time.monotonic() + lease_seconds / 2
        self.lock = threading.Lock()


class QueueListener:
    def __init__(self, spec: FunctionSpec, connection: StorageConnection, invoker: Invoker,
                 options: QueueOptions, lease_seconds: int, stopping: threading.Event,
                 halt: threading.Event | None = None) -> None:
        self.spec = spec
        self.queue_name = spec.trigger.attrs["queueName"].lower()
        self.connection = connection
        self.client: QueueClient = connection.queue(self.queue_name)
        self.poison_name = f"{self.queue_name}-poison"
        self.invoker = invoker
        self.options = options
        self.lease_seconds = max(1, int(lease_seconds))
        self.stopping = stopping  # stop fetching
        self.halt = halt or threading.Event()  # stop renewing leases: set after the drain, not when it starts
        self.wake = threading.Event()
        self.leases: dict[str, _Lease] = {}
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        for target, name in ((self._poll, "poll"), (self._renew, "lease")):
            thread = threading.Thread(target=target, name=f"queue-{name}-{self.spec.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def in_flight(self) -> int:
        with self._changed:
            return len(self.leases)

    def notify(self) -> None:
        self.wake.set()

    # -- polling --------------------------------------------------------------------------------------------
    def _poll(self) -> None:
        delay = 0.1
        while not self.stopping.is_set():
            with self._changed:  # wait until the batch drained to newBatchThreshold
                while len(self.leases) > self.options.new_batch_threshold and not self.stopping.is_set():
                    self._changed.wait(0.5)
                room = self.options.batch_size + self.options.new_batch_threshold - len(self.leases)
            if self.stopping.is_set():
                return
            want = max(1, min(self.options.batch_size, room, 32))
            try:
                messages = list(self.client.receive_messages(messages_per_page=want, max_messages=want,
                                                             visibility_timeout=self.lease_seconds))
            except ResourceNotFoundError:
                messages = []  # the queue does not exist yet: keep polling, like the real host
            except Exception as err:  # a storage hiccup must not stop the listener
                log.warning("queue %s: receive failed (%s); retrying", self.queue_name, type(err).__name__)
                messages = []
            if messages:
                delay = 0.1
                for msg in messages:
                    self._start(msg)
                continue
            self.wake.wait(delay)
            if self.wake.is_set():
                self.wake.clear()
                delay = 0.1
            else:
                delay = min(delay * 2, self.options.max_polling_interval)

    def _start(self, msg: Any) -> None:
        lease = _Lease(msg, self.lease_seconds)
        with self._changed:
            self.leases[msg.id] = lease
        threading.Thread(target=self._process, args=(msg, lease), name=f"queue-{self.spec.name}",
                         daemon=True).start()

    def _process(self, msg: Any, lease: _Lease) -> None:
        try:
            self._handle(msg, lease)
        except Exception as err:  # storage errors while completing: the lease expires and it is retried
            log.error("queue %s: could not complete message %s (%s); it will reappear", self.queue_name,
                      msg.id, type(err).__name__)
        finally:
            with self._changed:
                self.leases.pop(msg.id, None)
                self._changed.notify_all()

    def _handle(self, msg: Any, lease: _Lease) -> None:
        raw = msg.content or ""
        try:
            body = decode_body(raw) if self.options.message_encoding == "base64" else raw.encode("utf-8")
        except ValueError as err:  # as the real host does (Storage extension 5.x): no retries, moved unchanged
            self._to_poison(lease, raw, f"not valid Base64 ({err})")
            return
        max_count = self.options.max_dequeue_count
        if msg.dequeue_count > max_count:  # e.g. a host died while running it the last time
            self._to_poison(lease, raw, f"dequeue count {msg.dequeue_count} is over {max_count}")
            return
        qm = QueueMessage(id=msg.id, body=body, dequeue_count=msg.dequeue_count, pop_receipt=lease.pop_receipt,
                          expiration_time=msg.expires_on, insertion_time=msg.inserted_on,
                          time_next_visible=msg.next_visible_on)
        data = {"QueueTrigger": body.decode("utf-8", "replace"), "Id": msg.id, "DequeueCount": msg.dequeue_count,
                "PopReceipt": lease.pop_receipt, **_json_properties(body)}
        try:
            self.invoker.invoke(self.spec, qm, data, f"New queue message detected on '{self.queue_name}'",
                                retry=(msg.dequeue_count - 1, max_count - 1))
        except InvocationFailed as err:
            if msg.dequeue_count >= max_count:
                self._to_poison(lease, raw, f"failed {msg.dequeue_count} times ({type(err.__cause__).__name__})")
            else:
                self._release(lease)
            return
        with lease.lock:
            self.client.delete_message(lease.id, lease.pop_receipt)

    def _release(self, lease: _Lease) -> None:
        """Make a failed message visible again after visibilityTimeout, so it is retried."""
        with lease.lock:
            self.client.update_message(lease.id, lease.pop_receipt,
                                       visibility_timeout=int(round(self.options.visibility_timeout)))

    def _to_poison(self, lease: _Lease, content: str, reason: str) -> None:
        poison = self.connection.queue(self.poison_name)
        try:
            poison.create_queue()
        except ResourceExistsError:
            pass
        poison.send_message(content)
        with lease.lock:
            self.client.delete_message(lease.id, lease.pop_receipt)
        log.error("queue %s: message %s moved to %s: %s", self.queue_name, lease.id, self.poison_name, reason)

    # -- lease renewal --------------------------------------------------------------------------------------
    def _renew(self) -> None:
        """Keep running messages invisible until `halt`, so unfinished ones reappear only after the drain."""
        while not self.halt.wait(min(1.0, self.lease_seconds / 4)):
            now = time.monotonic()
            with self._changed:
                due = [lease for lease in self.leases.values() if lease.renew_at <= now]
            for lease in due:
                with lease.lock:
                    try:
                        receipt = self.client.update_message(lease.id, lease.pop_receipt,
                                                             visibility_timeout=self.lease_seconds)
                        lease.pop_receipt = receipt.pop_receipt
                        lease.renew_at = time.monotonic() + self.lease_seconds / 2
                    except Exception as err:
                        log.warning("queue %s: could not renew the lease of message %s (%s)", self.queue_name,
                                    lease.id, type(err).__name__)
                        lease.renew_at = time.monotonic() + 1


def _json_properties(body: bytes) -> dict[str, Any]:
    """Top-level JSON properties of a message, usable as {name} binding expressions (as in the real host)."""
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, (str, int, float, bool))}
