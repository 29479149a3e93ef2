"""The nightly churn job behind the `churn_retrain` timer: retrain on every profile's history, publish if the
challenger holds up, then score every profile. One run at a time, resumable.

- Lock: a doc in the `state` container, claimed with create_item (409 = someone holds it) and an expiry so a
  crashed run does not block the next night forever; renewed (ETag-guarded) while the run makes progress.
- Checkpoint: a doc in `state` with the run's stage (training -> scoring -> done), its as-of time and the last
  profile id scored. A run that finds an unfinished checkpoint (from a crash or a timeout) continues it: it
  skips training once training finished and scores from the profile after `scored_up_to`.
- Profile writes are ETag-guarded replaces of the `churn` field only, retried on 412, so a concurrent merge or
  update is never lost.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Mapping

from shared.churn.features import ACTIVITY_FIELDS, History, to_epoch  # to_epoch: naive times are UTC
from shared.churn.registry import ModelRegistry, RegistryError
from shared.churn.serving import ChurnModel, score_history
from shared.store import ItemExistsError, ItemNotFoundError, PreconditionFailedError, Store

from .churn import MIN_PROFILES, train_and_publish

log = logging.getLogger(__name__)

JOB = "churn-retrain"
LOCK_ID = f"lock:{JOB}"
CHECKPOINT_ID = f"checkpoint:{JOB}"
LOCK_SECONDS = 45 * 60  # renewed between stages and at every page of scoring; a crashed holder frees it then
RESUME_HOURS = 20  # an unfinished run older than this is abandoned, not resumed (its data is stale)
PAGE_SIZE = 100
WRITE_RETRIES = 5


class JobLocked(RuntimeError):
    """Another run holds the lock (or took it over while this one stalled)."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


class JobLock:
    def __init__(self, store: Store, owner: str, *, seconds: float = LOCK_SECONDS) -> None:
        self.container = store.container("state")
        self.owner = owner
        self.seconds = seconds
        self.etag: str | None = None

    def _doc(self) -> dict[str, Any]:
        return {"id": LOCK_ID, "type": "lock", "owner": self.owner,
                "expires_at": (_now() + timedelta(seconds=self.seconds)).isoformat()}

    def acquire(self) -> None:
        for _ in range(2):
            try:
                self.etag = self.container.create_item(self._doc())["_etag"]
                return
            except ItemExistsError:
                held = self.container.read_item_or_none(LOCK_ID, LOCK_ID)
                if held is None:
                    continue
                if datetime.fromisoformat(held["expires_at"]) > _now():
                    raise JobLocked(f"churn job is running as {held['owner']} (lock expires {held['expires_at']})")
                try:  # expired: the holder died; take over, guarded so only one taker wins
                    self.container.delete_item(LOCK_ID, LOCK_ID, etag=held["_etag"])
                except PreconditionFailedError:
                    pass
        raise JobLocked("churn job lock is contended")

    def renew(self) -> None:
        try:
            self.etag = self.container.replace_item(self._doc(), etag=self.etag)["_etag"]
        except (PreconditionFailedError, ItemNotFoundError):
            raise JobLocked(f"run {self.owner} lost the churn job lock (it expired and another run took it)") from None

    def release(self) -> None:
        try:
            self.container.delete_item(LOCK_ID, LOCK_ID, etag=self.etag)
        except PreconditionFailedError:
            pass  # someone else holds it now: not ours to delete


# --- data --------------------------------------------------------------------------------------------
def iter_profiles(store: Store, *, after: str | None = None, page_size: int = PAGE_SIZE) -> Iterator[list[dict]]:
    """Pages of profile docs in id order, starting after `after` (keyset paging: resumable at any id)."""
    container = store.container("profiles")
    while True:
        flt: Any = ("doc_type", "=", "profile")
        if after is not None:
            flt = ("and", [flt, ("id", ">", after)])
        page = list(container.query_items(flt, order_by="id", limit=page_size))
        if not page:
            return
        yield page
        after = page[-1]["id"]


def load_histories(store: Store) -> dict[str, History]:
    """Every profile's activity (through its source records), read with one scan of the activity container."""
    owner_to_profile: dict[str, str] = {}
    for page in iter_profiles(store, page_size=500):
        for profile in page:
            for record in profile.get("records", []):
                owner_to_profile[record["key"]] = profile["id"]
    docs: dict[str, list[dict[str, Any]]] = {}
    for doc in store.container("activity").query_items(None):
        pid = owner_to_profile.get(doc.get("owner"))
        if pid is not None:
            docs.setdefault(pid, []).append({k: doc[k] for k in ACTIVITY_FIELDS if k in doc})
    histories = {}
    for pid, items in docs.items():
        try:
            histories[pid] = History.from_activity(items)
        except (KeyError, ValueError, TypeError):  # an unreadable doc must not stop the nightly run
            log.warning("churn: skipped the activity of profile %s (unreadable timestamp or amount)", pid)
    return histories


# --- scoring -----------------------------------------------------------------------------------------
def write_churn(store: Store, profile: dict[str, Any], churn: dict[str, Any] | None) -> bool:
    """Set profile["churn"] (remove it when churn is None) with an ETag-guarded replace; on 412 re-read and
    retry. False if the profile is gone or was merged away meanwhile."""
    container = store.container("profiles")
    for _ in range(WRITE_RETRIES):
        body = {k: v for k, v in profile.items() if not k.startswith("_")}
        if churn is not None:
            body["churn"] = churn
        elif "churn" in body:
            del body["churn"]
        else:
            return True  # nothing to remove: no write
        try:
            container.replace_item(body, etag=profile.get("_etag"))
            return True
        except PreconditionFailedError:
            profile = container.read_item_or_none(profile["id"], profile["id"])
        except ItemNotFoundError:
            return False
        if profile is None or profile.get("doc_type") != "profile":
            return False
    raise RuntimeError(f"profile {profile['id']} kept changing; churn not written after {WRITE_RETRIES} attempts")


def score_profiles(store: Store, model: ChurnModel, histories: Mapping[str, History], *, as_of: datetime,
                   settings, checkpoint: dict[str, Any], on_page) -> None:
    """Score every profile after checkpoint["scored_up_to"]; `on_page(checkpoint)` saves progress."""
    from shared.churn.serving import profile_history

    scored_at = _now().isoformat()
    for key in ("unreadable", "cleared"):  # absent from checkpoints written before they were counted
        checkpoint.setdefault(key, 0)
    for page in iter_profiles(store, after=checkpoint.get("scored_up_to")):
        for profile in page:
            history = histories.get(profile["id"])
            if history is None:  # created after the histories were loaded, no activity, or unreadable activity
                try:
                    history = profile_history(store, profile)
                except (KeyError, ValueError, TypeError):  # one bad doc must not stop the run (or every resume)
                    log.warning("churn: profile %s not scored: unreadable activity", profile["id"])
                    checkpoint["unreadable"] += 1
                    continue
            result = score_history(model, history, as_of=to_epoch(as_of),
                                   medium=settings.churn_risk_medium, high=settings.churn_risk_high)
            if result is None:
                checkpoint["no_purchases"] += 1
                # a score from purchases the profile no longer has (a split moved them) must not stay
                if "churn" in profile and write_churn(store, profile, None):
                    checkpoint["cleared"] += 1
            elif write_churn(store, profile, {**result, "scored_at": scored_at}):
                checkpoint["scored"] += 1
            else:
                checkpoint["gone"] += 1
        checkpoint["scored_up_to"] = page[-1]["id"]
        on_page(checkpoint)


# --- the job -----------------------------------------------------------------------------------------
def run_churn_job(store: Store, registry: ModelRegistry, settings, *, now: datetime | None = None,
                  min_profiles: int = MIN_PROFILES, lock_seconds: float = LOCK_SECONDS,
                  train_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One run of the nightly job (or the rest of an unfinished one). Raises JobLocked if another run holds the
    lock. Returns the checkpoint: run_id, stage=done, training status, counts of scored profiles."""
    from .churn import new_version

    state = store.container("state")
    run_id = new_version(now)
    lock = JobLock(store, run_id, seconds=lock_seconds)
    lock.acquire()
    started = time.perf_counter()
    try:
        checkpoint = state.read_item_or_none(CHECKPOINT_ID, CHECKPOINT_ID)
        if checkpoint and _resumable(checkpoint):
            log.info("churn job: resuming run %s at stage %s", checkpoint["run_id"], checkpoint["stage"])
            checkpoint["resumed"] = checkpoint.get("resumed", 0) + 1
        else:
            as_of = now or _now()
            checkpoint = {"id": CHECKPOINT_ID, "run_id": run_id, "stage": "training", "as_of": as_of.isoformat(),
                          "started_at": _now().isoformat(), "scored_up_to": None, "scored": 0, "no_purchases": 0,
                          "gone": 0, "unreadable": 0, "cleared": 0}
        checkpoint = _save(state, checkpoint)
        as_of = datetime.fromisoformat(checkpoint["as_of"])
        histories = load_histories(store)
        lock.renew()

        if checkpoint["stage"] == "training":
            report = train_and_publish(histories, registry, as_of=to_epoch(as_of),
                                       window_days=settings.churn_window_days, tolerance=settings.churn_auc_tolerance,
                                       run_id=checkpoint["run_id"], min_profiles=min_profiles, **(train_options or {}))
            checkpoint.update(stage="scoring", training=report["status"], training_reason=report.get("reason")
                              or report.get("decision"))
            checkpoint = _save(state, checkpoint)
            lock.renew()

        if checkpoint["stage"] == "scoring":
            model, checkpoint["model_version"] = _champion(registry, checkpoint)
            if model is not None:

                def on_page(cp: dict[str, Any]) -> None:
                    cp.update(_save(state, cp))
                    lock.renew()

                score_profiles(store, model, histories, as_of=as_of, settings=settings, checkpoint=checkpoint,
                               on_page=on_page)
            checkpoint.update(stage="done", finished_at=_now().isoformat())
            checkpoint = _save(state, checkpoint)
    finally:
        lock.release()
    result = {k: v for k, v in checkpoint.items() if not k.startswith("_")}
    result["seconds"] = round(time.perf_counter() - started, 2)
    log.info("churn job %s: training=%s model=%s scored=%d no_purchases=%d cleared=%d unreadable=%d gone=%d in %ss",
             result["run_id"], result.get("training"), result.get("model_version"), result["scored"],
             result["no_purchases"], result.get("cleared", 0), result.get("unreadable", 0), result["gone"],
             result["seconds"])
    return result


def _champion(registry: ModelRegistry, checkpoint: dict[str, Any]) -> tuple[ChurnModel | None, str | None]:
    """The published model to score with, or None (nothing published, or a champion that cannot be loaded: the
    run finishes without scoring, keeps the error in the checkpoint, and the next training replaces it)."""
    try:
        found = registry.load_latest()
    except RegistryError as err:
        checkpoint["model_error"] = f"{type(err).__name__}: {err}"
        log.error("churn job: the published model cannot be loaded; nothing scored: %s", err)
        return None, None
    if found is None:
        return None, None
    pointer, etag, blob, card = found
    try:
        return ChurnModel(blob, card, etag=etag), pointer["version"]
    except Exception as err:  # noqa: BLE001  incompatible features or bytes onnxruntime refuses
        checkpoint["model_error"] = f"{type(err).__name__}: {err}"
        log.error("churn job: model %s cannot serve; nothing scored: %s", pointer["version"], err)
        return None, None


def _resumable(checkpoint: dict[str, Any]) -> bool:
    if checkpoint.get("stage") == "done":
        return False
    started = datetime.fromisoformat(checkpoint["started_at"])
    return _now() - started < timedelta(hours=RESUME_HOURS)


def _save(state, checkpoint: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in checkpoint.items() if not k.startswith("_")}
    return state.upsert_item(body)


def run_scheduled(settings) -> dict[str, Any]:
    """Entry point of the timer: the Cosmos store and Blob registry of these settings."""
    from shared.churn.registry import blob_registry
    from shared.store import open_store

    return run_churn_job(open_store(settings), blob_registry(settings), settings)
