"""Blob and Queue clients, one per process, from settings (connection string or managed identity)."""
from __future__ import annotations

from functools import lru_cache

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from .settings import Settings, get_settings


def _credential():
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


@lru_cache(maxsize=8)
def _blob_service(connection: str, account_name: str | None) -> BlobServiceClient:
    if account_name:
        return BlobServiceClient(f"https://{account_name}.blob.core.windows.net", credential=_credential())
    return BlobServiceClient.from_connection_string(connection)


@lru_cache(maxsize=8)
def _queue_service(connection: str, account_name: str | None) -> QueueServiceClient:
    if account_name:
        return QueueServiceClient(f"https://{account_name}.queue.core.windows.net", credential=_credential())
    return QueueServiceClient.from_connection_string(connection)


def blob_service(settings: Settings | None = None) -> BlobServiceClient:
    s = settings or get_settings()
    return _blob_service(s.storage_connection, s.storage_account_name)


def queue_client(name: str, settings: Settings | None = None, *, base64: bool = True) -> QueueClient:
    """A queue client that speaks Base64 text, like the Functions host's queue trigger and output binding
    (base64=False: messages as stored, for queues other writers fill, which may or may not encode)."""
    s = settings or get_settings()
    service = _queue_service(s.storage_connection, s.storage_account_name)
    if not base64:
        return QueueClient(service.url, name, credential=service.credential)
    return QueueClient(
        service.url, name, credential=service.credential,
        message_encode_policy=TextBase64EncodePolicy(), message_decode_policy=TextBase64DecodePolicy(),
    )


def blob_containers(settings: Settings) -> list[str]:
    return [settings.landing_container, settings.quarantine_container, settings.failed_container,
            settings.models_container, settings.exports_container, settings.claims_container,
            settings.config_container]


def queues(settings: Settings) -> list[str]:
    names = [settings.resolve_queue, settings.activity_queue]
    return names + [f"{n}-poison" for n in names]


def bootstrap_storage(settings: Settings | None = None) -> dict[str, list[str]]:
    """Create every blob container and queue the app uses; safe to run again."""
    s = settings or get_settings()
    service = blob_service(s)
    for name in blob_containers(s):
        try:
            service.create_container(name)
        except ResourceExistsError:
            pass
    for name in queues(s):
        try:
            queue_client(name, s).create_queue()
        except ResourceExistsError:
            pass
    return {"containers": blob_containers(s), "queues": queues(s)}
