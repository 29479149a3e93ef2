"""Blob triggers: poll containers, fire once per blob version, persist receipts, poison after 5 failures.

Like the real host, receipts live in the host storage account (container `azure-webjobs-hosts`, blob
`blobreceipts/<host id>/Host.Functions.<name>/<etag>/<container>/<blob name>`), so a restarted host neither
misses a blob written while it was down nor fires again for a version it already handled. Failed blobs are
retried (host.json extensions.queues maxDequeueCount and visibilityTimeout, as the real host runs blob
triggers through an internal queue), then reported on the `webjobs-blobtrigger-poison` queue. Before each
attempt the blob's properties are read again, as the real host does: a deleted blob, or one whose ETag changed
since it was detected (the new version fires on its own), is skipped as a success, and the content is read
only if it still has the detected ETag.
Functions with `source=EVENT_GRID` are served the same way (there is no Event Grid locally), plus an
Event Grid-style webhook (`POST /runtime/webhooks/blobs?functionName=Host.Functions.<name>`).
"""
from __future__ import annotations

import base64
import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions import _abc as func_abc
from azure.storage.blob import BlobClient, BlobProperties

from .host_config import Connections, QueueOptions, StorageConnection
from .host_invoke import FunctionSpec, InvocationFailed, Invoker

log = logging.getLogger("devstack.host")

HOSTS_CONTAINER = "azure-webjobs-hosts"
POISON_QUEUE = "webjobs-blobtrigger-poison"


class BlobStream(func_abc.InputStream):
    """A blob trigger argument that downloads in chunks as the function reads, not all up front."""

    def __init__(self, client: BlobClient, props: BlobProperties, container: str) -> None:
        super().__init__()
        self._client = client
        self._name = f"{container}/{props.name}"
        self._length = props.size
        self._properties = blob_properties(props)
        self._metadata = dict(props.metadata or {})
        self._chunks = None
        self._buffer = b""
        self._eof = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def length(self) -> int:
        return self._length

    @property
    def uri(self) -> str:
        return self._client.url

    @property
    def blob_properties(self) -> dict:
        return self._properties

    @property
    def metadata(self) -> dict:
        return self._metadata

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def _fill(self, want: int) -> None:
        if self._chunks is None:
            self._chunks = iter(_download(self._client, self._properties["ETag"]).chunks())
        parts = [self._buffer]
        have = len(self._buffer)
        while not self._eof and (want < 0 or have < want):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._eof = True
            else:
                parts.append(chunk)
                have += len(chunk)
        self._buffer = b"".join(parts)

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        if size == 0:
            return b""
        if size < 0 or len(self._buffer) < size:
            self._fill(size)
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def read1(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.read(-1)
        if not self._buffer and not self._eof:
            self._fill(1)
        return self.read(min(size, len(self._buffer)) if self._buffer else 0)


def blob_properties(props: BlobProperties) -> dict[str, Any]:
    """Blob properties under the names the real host passes to the Python worker."""
    settings = props.content_settings
    md5 = settings.content_md5
    return {
        "ContentType": settings.content_type,
        "ContentLength": props.size,
        "Length": props.size,
        "ContentEncoding": settings.content_encoding,
        "ContentLanguage": settings.content_language,
        "ContentDisposition": settings.content_disposition,
        "CacheControl": settings.cache_control,
        "ContentMD5": base64.b64encode(md5).decode() if md5 else None,
        "ETag": props.etag,
        "LastModified": props.last_modified.isoformat() if props.last_modified else None,
        "CreatedOn": props.creation_time.isoformat() if props.creation_time else None,
        "BlobType": str(props.blob_type.value if hasattr(props.blob_type, "value") else props.blob_type),
    }


def _download(client: BlobClient, etag: str | None):
    """The content of exactly this version: a blob overwritten since `etag` fails (412) instead of mixing."""
    if not etag:
        return client.download_blob()
    return client.download_blob(etag=etag, match_condition=MatchConditions.IfNotModified)


def blob_argument(client: BlobClient, props: BlobProperties, annotation: Any, container: str) -> Any:
    """What a blob parameter receives, by its annotation: bytes, str, a (streaming) InputStream, or, for the SDK
    types of azurefunctions-extensions-bindings-blob, the azure.storage.blob client the worker would build from
    the same connection (the host then passes no content at all). Content is read only at the ETag of `props`."""
    sdk = sdk_blob_argument(client, annotation, props.etag)
    if sdk is not None:
        return sdk
    if annotation is bytes:
        return _download(client, props.etag).readall()
    if annotation is str:
        return _download(client, props.etag).readall().decode("utf-8")
    return BlobStream(client, props, container)


def sdk_blob_argument(client: BlobClient, annotation: Any, etag: str | None = None) -> Any:
    """BlobClient, ContainerClient or StorageStreamDownloader for an SDK-type annotation; None otherwise."""
    try:
        from azurefunctions.extensions.bindings import blob as sdk
    except ImportError:  # the extension is not installed: no parameter can ask for an SDK type
        return None
    if not isinstance(annotation, type):
        return None
    if issubclass(annotation, sdk.BlobClient):
        return client
    if issubclass(annotation, sdk.ContainerClient):
        return client._get_container_client()  # same account, credential and pipeline settings
    if issubclass(annotation, sdk.StorageStreamDownloader):
        return _download(client, etag)
    return None


def path_regex(pattern: str) -> re.Pattern:
    """`dir/{name}.csv` -> a regex with a named group per `{expression}` (names may span virtual folders)."""
    parts = re.split(r"(\{[^{}]+\})", pattern)
    regex = "".join(f"(?P<{p[1:-1]}>.+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


def etag_key(etag: str) -> str:
    return etag.strip('"')


@dataclass
class BlobWatch:
    spec: FunctionSpec
    connection: StorageConnection
    container: str
    pattern: str
    regex: re.Pattern
    slots: threading.BoundedSemaphore

    @property
    def prefix(self) -> str:
        return self.pattern.split("{", 1)[0]


class ReceiptStore:
    """Which blob versions each function has handled, persisted in the host storage account."""

    def __init__(self, host_storage: StorageConnection, host_id: str) -> None:
        self.container = host_storage.blob_service.get_container_client(HOSTS_CONTAINER)
        self.root = f"blobreceipts/{host_id}/"
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass

    def load(self) -> set[tuple[str, str, str, str]]:
        """(function, container, blob name, etag) for every receipt of this host."""
        done = set()
        for blob in self.container.list_blobs(name_starts_with=self.root):
            parts = blob.name[len(self.root):].split("/", 3)
            if len(parts) == 4 and parts[0].startswith("Host.Functions."):
                fn, etag, container, name = parts
                done.add((fn[len("Host.Functions."):], container, name, etag))
        return done

    def write(self, function: str, container: str, name: str, etag: str, status: str) -> None:
        path = f"{self.root}Host.Functions.{function}/{etag_key(etag)}/{container}/{name}"
        self.container.upload_blob(path, b"", overwrite=True, metadata={"Status": status})


class BlobTriggerListener:
    def __init__(self, specs: list[FunctionSpec], invoker: Invoker, connections: Connections,
                 options: QueueOptions, host_id: str, poll_interval: float, stopping: threading.Event) -> None:
        self.invoker = invoker
        self.options = options
        self.poll_interval = poll_interval
        self.stopping = stopping
        host_storage = connections.get("AzureWebJobsStorage")
        self.receipts = ReceiptStore(host_storage, host_id)
        self.poison = host_storage.queue(POISON_QUEUE)
        capacity = options.batch_size + options.new_batch_threshold
        self.watches = []
        for spec in specs:
            container, _, pattern = spec.trigger.attrs["path"].partition("/")
            self.watches.append(BlobWatch(spec, connections.get(spec.trigger.attrs.get("connection")),
                                          container, pattern, path_regex(pattern),
                                          threading.BoundedSemaphore(capacity)))
        self.seen = self.receipts.load()
        self.active: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll, name="blob-scanner", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread:
            self._thread.join(timeout)

    def in_flight(self) -> list[threading.Thread]:
        with self._lock:
            return [t for t in self.active if t.is_alive()]

    def _poll(self) -> None:
        groups: dict[tuple[str, str], list[BlobWatch]] = {}
        for watch in self.watches:  # functions on the same container share one listing
            groups.setdefault((watch.connection.name, watch.container), []).append(watch)
        while not self.stopping.is_set():
            for watches in groups.values():
                try:
                    self._scan(watches)
                except ResourceNotFoundError:
                    pass  # the container does not exist (yet): nothing to trigger on
                except Exception as err:  # a storage hiccup must not stop the scanner
                    log.warning("blob scan of container %s failed: %s", watches[0].container, type(err).__name__)
            self.stopping.wait(self.poll_interval)

    def _scan(self, watches: list[BlobWatch]) -> None:
        prefixes = {w.prefix for w in watches}
        prefix = prefixes.pop() if len(prefixes) == 1 else ""
        container = watches[0].connection.blob_service.get_container_client(watches[0].container)
        for props in container.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
            if self.stopping.is_set():
                return
            for watch in watches:
                if watch.regex.match(props.name):
                    self.dispatch(watch, props)

    def dispatch(self, watch: BlobWatch, props: BlobProperties) -> bool:
        """Start the function for this blob version unless it ran already; False when it is busy."""
        key = (watch.spec.name, watch.container, props.name, etag_key(props.etag))
        with self._lock:
            if key in self.seen:
                return True
            if not watch.slots.acquire(blocking=False):
                return False  # every slot busy: the next scan picks it up
            self.seen.add(key)
            worker = threading.Thread(target=self._run, args=(watch, props, key), daemon=True,
                                      name=f"blob-{watch.spec.name}")
            self.active.add(worker)
        worker.start()
        return True

    def deliver(self, spec_name: str, container: str, name: str) -> bool:
        """An Event Grid BlobCreated event for one function: fire it for the blob's current version."""
        for watch in self.watches:
            if watch.spec.name == spec_name and watch.container == container and watch.regex.match(name):
                client = watch.connection.blob_service.get_blob_client(container, name)
                props = client.get_blob_properties()
                props.name = name
                return self.dispatch(watch, props)
        return False

    def _run(self, watch: BlobWatch, props: BlobProperties, key: tuple) -> None:
        spec = watch.spec
        try:
            client = watch.connection.blob_service.get_blob_client(watch.container, props.name)
            data = {**watch.regex.match(props.name).groupdict(), "BlobTrigger": f"{watch.container}/{props.name}",
                    "Uri": client.url}
            attempts = self.options.max_dequeue_count
            last_error = ""
            for attempt in range(1, attempts + 1):
                try:
                    gone = self._gone(client, props)
                    if gone:  # the real host ignores such a version: success, no invocation, no retry
                        log.info("blob trigger %s: skipped a blob version since %s", spec.name,
                                 "deleted" if gone == "Deleted" else "overwritten")
                        self.receipts.write(spec.name, watch.container, props.name, props.etag, gone)
                        return
                    arg = blob_argument(client, props, spec.param_types.get(spec.trigger.name), watch.container)
                    self.invoker.invoke(spec, arg, data, f"New blob detected: {watch.container}/(name withheld)",
                                        retry=(attempt - 1, attempts - 1))
                    self.receipts.write(spec.name, watch.container, props.name, props.etag, "Succeeded")
                    return
                except InvocationFailed as err:
                    last_error = type(err.__cause__).__name__  # a 412 or 404 mid-read: the next check skips it
                except Exception as err:  # the argument could not be built (storage error)
                    last_error = type(err).__name__
                    log.warning("blob trigger %s: could not read the blob: %s", spec.name, last_error)
                if attempt < attempts and self.stopping.wait(self.options.visibility_timeout):
                    with self._lock:
                        self.seen.discard(key)  # shutting down: no receipt, so the next start retries it
                    return
            self._to_poison(watch, props, f"{spec.name} failed {attempts} times; last error: {last_error}")
            self.receipts.write(spec.name, watch.container, props.name, props.etag, "Poisoned")
        except Exception as err:  # never let a worker thread die silently
            log.error("blob trigger %s: could not complete (%s); it will be retried on the next start",
                      spec.name, type(err).__name__)
            with self._lock:
                self.seen.discard(key)
        finally:
            watch.slots.release()
            with self._lock:
                self.active.discard(threading.current_thread())

    @staticmethod
    def _gone(client: BlobClient, props: BlobProperties) -> str | None:
        """'Deleted' or 'Changed' when the detected version is no longer the blob's current one, else None."""
        try:
            current = client.get_blob_properties()
        except ResourceNotFoundError:
            return "Deleted"
        return None if etag_key(current.etag) == etag_key(props.etag) else "Changed"

    def _to_poison(self, watch: BlobWatch, props: BlobProperties, reason: str) -> None:
        body = json.dumps({
            "Type": "BlobTrigger", "FunctionId": f"Host.Functions.{watch.spec.name}", "BlobType": "BlockBlob",
            "ContainerName": watch.container, "BlobName": props.name, "ETag": props.etag, "Reason": reason,
        })
        try:
            self.poison.create_queue()
        except ResourceExistsError:
            pass
        self.poison.send_message(base64.b64encode(body.encode()).decode())
        log.error("blob trigger %s gave up on a blob after %d attempts; see queue %s",
                  watch.spec.name, self.options.max_dequeue_count, POISON_QUEUE)
