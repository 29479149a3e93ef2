"""The churn model registry: versioned ONNX models with model cards, a `latest` pointer and run reports.

Layout (the same on a local directory and in a Blob Storage container, e.g. settings.models_container):

    churn/<version>/model.onnx     the exported model (written once, never overwritten)
    churn/<version>/card.json      the model card (metrics, calibration, features, library versions)
    churn/latest                   {"version", "model_etag", "card_etag", "published_at", "roc_auc"}
    churn/runs/<run id>.json       every training run's report, published or not

The pointer is written with a condition on its previous ETag, so two concurrent publishers cannot both win;
serving polls the pointer's ETag (one cheap HEAD) to notice a new champion.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Protocol

PREFIX = "churn"


class RegistryError(RuntimeError):
    pass


class RegistryConflict(RegistryError):
    """A conditional write lost: the blob changed (or already exists) since it was read."""


class Backend(Protocol):
    def read(self, name: str) -> tuple[bytes, str] | None: ...

    def etag(self, name: str) -> str | None: ...

    def write(self, name: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str: ...

    def list(self, prefix: str) -> list[str]: ...


class LocalBackend:
    """Files under a root directory; ETags are content hashes; conditional writes are serialized by a lock file."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if self.root.resolve() not in path.parents:
            raise RegistryError(f"blob name escapes the registry root: {name!r}")
        return path

    @staticmethod
    def _etag_of(data: bytes) -> str:
        return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'

    def read(self, name: str) -> tuple[bytes, str] | None:
        try:
            data = self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        return data, self._etag_of(data)

    def etag(self, name: str) -> str | None:
        found = self.read(name)
        return found[1] if found else None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".registry.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write(self, name: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        path = self._path(name)
        with self._locked():
            current = self.etag(name)
            if if_none_match and current is not None:
                raise RegistryConflict(f"{name} already exists")
            if if_match is not None and current != if_match:
                raise RegistryConflict(f"{name} changed since it was read")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # readers see the old or the new file, never half of one
        return self._etag_of(data)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))


class BlobBackend:
    """A Blob Storage container (azure.storage.blob.ContainerClient); conditions map to If-Match/If-None-Match."""

    def __init__(self, container) -> None:
        self.container = container

    def read(self, name: str) -> tuple[bytes, str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self.container.download_blob(name)
            return downloader.readall(), downloader.properties.etag
        except ResourceNotFoundError:
            return None

    def etag(self, name: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.container.get_blob_client(name).get_blob_properties().etag
        except ResourceNotFoundError:
            return None

    def write(self, name: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        kwargs: dict[str, Any] = {"overwrite": not if_none_match}
        if if_match is not None:
            kwargs.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        blob = self.container.get_blob_client(name)
        try:
            try:
                result = blob.upload_blob(data, **kwargs)
            except ResourceNotFoundError:
                if if_match is not None:  # conditioned on a blob that no longer exists
                    raise RegistryConflict(f"{name} is gone since it was read") from None
                try:
                    self.container.create_container()
                except ResourceExistsError:
                    pass
                result = blob.upload_blob(data, **kwargs)
        except (ResourceExistsError, ResourceModifiedError) as err:
            raise RegistryConflict(f"{name}: {err.reason or 'condition not met'}") from None
        return result["etag"]

    def list(self, prefix: str) -> list[str]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return sorted(b.name for b in self.container.list_blobs(name_starts_with=prefix))
        except ResourceNotFoundError:
            return []


class ModelRegistry:
    def __init__(self, backend: Backend, prefix: str = PREFIX) -> None:
        self.backend = backend
        self.prefix = prefix

    @property
    def latest_name(self) -> str:
        return f"{self.prefix}/latest"

    def _model_name(self, version: str) -> str:
        return f"{self.prefix}/{_safe(version)}/model.onnx"

    def _card_name(self, version: str) -> str:
        return f"{self.prefix}/{_safe(version)}/card.json"

    def _run_name(self, run_id: str) -> str:
        return f"{self.prefix}/runs/{_safe(run_id)}.json"

    # --- champion -----------------------------------------------------------------------------------
    def latest(self) -> tuple[dict[str, Any], str] | None:
        """The pointer to the current champion and its ETag, or None when nothing was published yet."""
        found = self.backend.read(self.latest_name)
        if found is None:
            return None
        pointer = _json_doc(found[0], self.latest_name)
        if not isinstance(pointer.get("version"), str):
            raise RegistryError(f"{self.latest_name} names no version")
        return pointer, found[1]

    def latest_etag(self) -> str | None:
        return self.backend.etag(self.latest_name)

    def load(self, version: str, *, model_etag: str | None = None) -> tuple[bytes, dict[str, Any]]:
        """Model bytes and card of a version; with model_etag, refuse a model blob that is not the published one."""
        model = self.backend.read(self._model_name(version))
        card = self.backend.read(self._card_name(version))
        if model is None or card is None:
            raise RegistryError(f"churn model version {version} is incomplete or missing in the registry")
        if model_etag is not None and model[1] != model_etag:
            raise RegistryError(f"churn model {version} changed after it was published (ETag mismatch)")
        return model[0], _json_doc(card[0], self._card_name(version))

    def load_latest(self) -> tuple[dict[str, Any], str, bytes, dict[str, Any]] | None:
        """(pointer, pointer ETag, model bytes, card) of the champion, or None."""
        found = self.latest()
        if found is None:
            return None
        pointer, etag = found
        model, card = self.load(pointer["version"], model_etag=pointer.get("model_etag"))
        return pointer, etag, model, card

    def versions(self) -> list[str]:
        names = self.backend.list(f"{self.prefix}/")
        return sorted({n.split("/")[1] for n in names if n.endswith("/card.json")})

    def publish(self, version: str, model: bytes, card: dict[str, Any], *, expected_latest: str | None) -> dict[str, Any]:
        """Store the version and move `latest` to it, unless `latest` moved since the caller compared against it
        (`expected_latest` is the pointer ETag read before, None when there was no champion) -> RegistryConflict."""
        model_etag = self.backend.write(self._model_name(version), model, if_none_match=True)
        card_etag = self.backend.write(self._card_name(version), _json_bytes(card), if_none_match=True)
        pointer = {
            "version": version, "model_etag": model_etag, "card_etag": card_etag,
            "published_at": datetime.now(timezone.utc).isoformat(),
            "roc_auc": card.get("metrics", {}).get("roc_auc"),
        }
        self.backend.write(self.latest_name, _json_bytes(pointer), if_match=expected_latest,
                           if_none_match=expected_latest is None)
        return pointer

    # --- run reports --------------------------------------------------------------------------------
    def write_run(self, run_id: str, report: dict[str, Any]) -> None:
        self.backend.write(self._run_name(run_id), _json_bytes(report))

    def read_run(self, run_id: str) -> dict[str, Any] | None:
        found = self.backend.read(self._run_name(run_id))
        return json.loads(found[0]) if found else None

    def runs(self) -> list[str]:
        prefix = f"{self.prefix}/runs/"
        return [n[len(prefix):-len(".json")] for n in self.backend.list(prefix) if n.endswith(".json")]


def _safe(part: str) -> str:
    if not part or "/" in part or part in (".", "..") or part.startswith("."):
        raise RegistryError(f"invalid registry name part: {part!r}")
    return part


def _json_doc(data: bytes, name: str) -> dict[str, Any]:
    """A stored JSON object; a corrupt one is a RegistryError (unusable content), like a missing blob."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise RegistryError(f"{name} is not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{name} is not a JSON object")
    return doc


def _json_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=True, default=str).encode()


def local_registry(root: str | os.PathLike) -> ModelRegistry:
    return ModelRegistry(LocalBackend(root))


def blob_registry(settings=None) -> ModelRegistry:
    """The registry in Blob Storage (settings.models_container), with the process-wide blob client."""
    from ..settings import get_settings
    from ..storage import blob_service

    s = settings or get_settings()
    return ModelRegistry(BlobBackend(blob_service(s).get_container_client(s.models_container)))
