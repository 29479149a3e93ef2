"""Configuration of the local Functions host: host.json, app settings and storage connections.

App settings resolve like the real host: the process environment first, then `local.settings.json` Values
(which never override the environment). `%NAME%` binding expressions and `connection=` names resolve from them.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Mapping

from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")
_SETTING_EXPR = re.compile(r"%([^%\s]+)%")


class HostConfigError(ValueError):
    """A host.json value, app setting or binding that cannot be used; the message says which and why."""


def parse_timespan(value: str | int | float, what: str) -> float:
    """A .NET TimeSpan string ("[d.]hh:mm:ss[.fffffff]") as host.json uses it, in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    m = _TIMESPAN.match(str(value).strip())
    if not m:
        raise HostConfigError(f"host.json {what}: {value!r} is not a TimeSpan like '00:00:30'")
    days, hours, minutes, seconds, fraction = m.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return total + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


@dataclass(frozen=True)
class QueueOptions:
    """host.json extensions.queues, with the real host's defaults (except where noted)."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    visibility_timeout: float = 0.0  # delay before a failed message is retried
    max_dequeue_count: int = 5
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"  # or "none" (Storage Queues extension v5)

    @classmethod
    def from_json(cls, section: Mapping) -> "QueueOptions":
        batch = int(section.get("batchSize", 16))
        if not 1 <= batch <= 32:
            raise HostConfigError(f"host.json extensions.queues.batchSize must be 1..32, not {batch}")
        return cls(
            batch_size=batch,
            new_batch_threshold=int(section.get("newBatchThreshold", batch // 2)),
            visibility_timeout=parse_timespan(section.get("visibilityTimeout", 0), "extensions.queues.visibilityTimeout"),
            max_dequeue_count=int(section.get("maxDequeueCount", 5)),
            max_polling_interval=max(0.1, parse_timespan(section.get("maxPollingInterval", "00:01:00"),
                                                         "extensions.queues.maxPollingInterval")),
            message_encoding=_encoding(section.get("messageEncoding", "base64")),
        )


def _encoding(value: str) -> str:
    encoding = str(value).lower()
    if encoding not in ("base64", "none"):
        raise HostConfigError(f"host.json extensions.queues.messageEncoding must be base64 or none, not {value!r}")
    return encoding


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = QueueOptions()
    function_timeout: float | None = None

    @classmethod
    def load(cls, script_root: Path) -> "HostConfig":
        path = script_root / "host.json"
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except ValueError as err:
            raise HostConfigError(f"{path} is not valid JSON: {err}") from err
        extensions = data.get("extensions") or {}
        timeout = data.get("functionTimeout")
        return cls(
            route_prefix=str((extensions.get("http") or {}).get("routePrefix", "api")).strip("/"),
            queues=QueueOptions.from_json(extensions.get("queues") or {}),
            function_timeout=parse_timespan(timeout, "functionTimeout") if timeout not in (None, "-1") else None,
        )


class AppSettings:
    """App settings as the host sees them: overrides, then the environment, then local.settings.json Values."""

    def __init__(self, script_root: Path, overrides: Mapping[str, str] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self.local_values = _read_local_settings(script_root / "local.settings.json")

    def get(self, name: str) -> str | None:
        for source in (self.overrides, os.environ, self.local_values):
            value = source.get(name)
            if value not in (None, ""):
                return str(value)
        return None

    def export_local_values(self) -> list[str]:
        """Put local.settings.json Values into os.environ where missing (as `func start` does for the worker).
        Returns the names it added, so they can be removed again on stop."""
        added = []
        for name, value in {**self.local_values, **self.overrides}.items():
            if name not in os.environ and value is not None:
                os.environ[name] = str(value)
                added.append(name)
        return added

    def resolve(self, text: str, where: str) -> str:
        """Replace `%NAME%` app-setting expressions; an unknown setting is an error, as in the real host."""
        def setting(m: re.Match) -> str:
            value = self.get(m.group(1))
            if value is None:
                raise HostConfigError(f"{where}: '%{m.group(1)}%' does not resolve to a value (app setting "
                                      f"{m.group(1)} is not set in the environment or local.settings.json)")
            return value
        return _SETTING_EXPR.sub(setting, text)


def _read_local_settings(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8-sig")).get("Values") or {}
    except ValueError as err:
        raise HostConfigError(f"{path} is not valid JSON: {err}") from err
    return {str(k): str(v) for k, v in values.items() if v is not None}


class StorageConnection:
    """Blob and queue clients for one `connection=` app setting, created once and shared by all threads."""

    def __init__(self, name: str, settings: AppSettings) -> None:
        self.name = name or "AzureWebJobsStorage"
        self.connection_string = settings.get(self.name) or settings.get(f"AzureWebJobs{self.name}")
        self.account_name = settings.get(f"{self.name}__accountName")
        if not self.connection_string and not self.account_name:
            raise HostConfigError(f"storage connection '{self.name}' is not configured: set the app setting "
                                  f"{self.name} (a connection string) or {self.name}__accountName")

    @cached_property
    def _credential(self):
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()

    @cached_property
    def blob_service(self) -> BlobServiceClient:
        # small first GET and chunks: a blob trigger argument streams instead of loading up to 32 MB at once
        sizes = {"max_single_get_size": 4 * 1024 * 1024, "max_chunk_get_size": 4 * 1024 * 1024}
        if self.connection_string:
            return BlobServiceClient.from_connection_string(self.connection_string, **sizes)
        return BlobServiceClient(f"https://{self.account_name}.blob.core.windows.net", credential=self._credential,
                                 **sizes)

    @cached_property
    def _queue_service(self) -> QueueServiceClient:
        if self.connection_string:
            return QueueServiceClient.from_connection_string(self.connection_string)
        return QueueServiceClient(f"https://{self.account_name}.queue.core.windows.net", credential=self._credential)

    def queue(self, name: str) -> QueueClient:
        """A raw queue client: the host does the Base64 encoding itself, so bad messages can be handled."""
        return self._queue_service.get_queue_client(name)


class Connections:
    def __init__(self, settings: AppSettings) -> None:
        self._settings = settings
        self._by_name: dict[str, StorageConnection] = {}

    def get(self, name: str | None) -> StorageConnection:
        key = name or "AzureWebJobsStorage"
        if key not in self._by_name:
            self._by_name[key] = StorageConnection(key, self._settings)
        return self._by_name[key]
