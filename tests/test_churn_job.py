"""The nightly churn job: train -> publish -> score every profile; the lock; resuming; the timer function on
Azurite + the Cosmos emulator."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache

import pytest
from azure.functions.timer import TimerRequest

from model_training.churn import labelled_snapshot
from model_training.churn_job import CHECKPOINT_ID, LOCK_ID, JobLock, JobLocked, load_histories, run_churn_job
from model_training.churn_synth import simulate
from shared.activity import activity_doc, save_activity
from shared.churn.features import FEATURE_NAMES, to_epoch
from shared.churn.registry import blob_registry, local_registry
from shared.churn.serving import profile_history
from shared.models import Event, Review, Transaction
from shared.settings import Settings
from shared.store import MemoryStore
from tests.test_churn_training import END, FAST, WINDOW, trained_model


@lru_cache(maxsize=2)
def stored_customers(n: int, seed: int = 11) -> tuple[list[dict], list[dict]]:
    """Profiles (two source records each) and their activity docs, as ingestion and identity store them."""
    data, _ = simulate(n, seed=seed, end=END, window_days=WINDOW)
    profiles, docs = [], []
    for cid, acts in data.items():
        profiles.append({"id": f"p_{cid}", "doc_type": "profile", "records": [
            {"key": f"pos|{cid}", "source": "pos", "record_key": cid},
            {"key": f"web|{cid}", "source": "web", "record_key": cid}], "identifiers": [f"source:pos|{cid}"]})
        for i, t in enumerate(acts["transactions"]):
            docs.append(activity_doc(Transaction(
                source="pos", order_id=f"{cid}-{i}", customer_key=cid, timestamp=t["timestamp"],
                amount=str(t["amount"]), kind=t["kind"], channel=t["channel"], category=t.get("category"))))
        for i, e in enumerate(acts["events"]):
            docs.append(activity_doc(Event(source="web", event_id=f"{cid}-{i}", customer_key=cid,
                                           timestamp=e["timestamp"], channel=e["channel"], event=e["event"])))
        for i, r in enumerate(acts["reviews"]):
            docs.append(activity_doc(Review(source="web", review_id=f"{cid}-{i}", customer_key=cid,
                                            timestamp=r["timestamp"], rating=r["rating"], text=r["text"])))
    # a profile without purchases and an alias stub: neither is scored
    profiles.append({"id": "p_browser", "doc_type": "profile", "records": [{"key": "web|browser"}]})
    profiles.append({"id": "p_old", "doc_type": "alias", "merged_into": profiles[0]["id"]})
    return profiles, docs


def load(store, profiles, docs) -> None:
    for p in profiles:
        store.container("profiles").upsert_item(p)
    activity = store.container("activity")
    for d in docs:
        activity.upsert_item(d)


def churned_profiles(store) -> dict[str, dict]:
    return {p["id"]: p["churn"] for p in store.container("profiles").query_items(("churn", "defined", None))}


SETTINGS = Settings(churn_window_days=WINDOW, churn_auc_tolerance=0.005)


def test_nightly_job_trains_publishes_and_scores_every_profile(tmp_path):
    store, registry = MemoryStore(), local_registry(tmp_path)
    profiles, docs = stored_customers(620)
    load(store, profiles, docs)

    result = run_churn_job(store, registry, SETTINGS, now=END, train_options=FAST)
    assert result["stage"] == "done" and result["training"] == "published"
    version = registry.latest()[0]["version"]
    assert result["model_version"] == version
    scored = churned_profiles(store)
    customers = [p for p in profiles if p["id"].startswith("p_c")]
    assert set(scored) == {p["id"] for p in customers} and result["scored"] == len(customers)
    assert result["no_purchases"] == 1
    some = next(iter(scored.values()))
    assert some["model_version"] == version and some["risk"] in ("low", "medium", "high")
    assert 0 < some["score"] < 1 and some["scored_at"] and isinstance(some["top_factors"], list)
    # the other fields of the profile are untouched
    stored = store.container("profiles").read_item(customers[0]["id"], customers[0]["id"])
    assert stored["records"] == customers[0]["records"] and stored["identifiers"] == customers[0]["identifiers"]
    assert registry.read_run(result["run_id"])["status"] == "published"
    assert store.container("state").read_item_or_none(LOCK_ID, LOCK_ID) is None  # released


def test_an_unfinished_run_resumes_where_it_stopped(tmp_path):
    store, registry = MemoryStore(), local_registry(tmp_path)
    profiles, docs = stored_customers(620)
    load(store, profiles, docs)
    first = run_churn_job(store, registry, SETTINGS, now=END, train_options=FAST)

    # simulate a crash half-way through scoring: checkpoint at stage scoring, churn only on the first half
    ids = sorted(p["id"] for p in profiles if p["doc_type"] == "profile")
    halfway = ids[len(ids) // 2]
    for p in store.container("profiles").query_items(("id", ">", halfway)):
        store.container("profiles").replace_item({k: v for k, v in p.items() if k != "churn"})
    state = store.container("state")
    checkpoint = state.read_item(CHECKPOINT_ID, CHECKPOINT_ID)
    state.upsert_item({**checkpoint, "stage": "scoring", "scored_up_to": halfway, "scored": 0, "no_purchases": 0,
                       "started_at": datetime.now(timezone.utc).isoformat()})

    resumed = run_churn_job(store, registry, SETTINGS, now=END + timedelta(days=1), train_options=FAST)
    assert resumed["run_id"] == first["run_id"] and resumed["resumed"] == 1
    assert resumed["stage"] == "done"
    assert resumed["scored"] == len([i for i in ids if i > halfway and i.startswith("p_c")])
    assert len(registry.runs()) == 1  # no retraining
    assert len(churned_profiles(store)) == first["scored"]


def test_a_second_run_refuses_while_the_lock_is_held(cosmos_store, tmp_path):
    registry = local_registry(tmp_path)
    holder = JobLock(cosmos_store, "other-run")
    holder.acquire()
    with pytest.raises(JobLocked, match="other-run"):
        run_churn_job(cosmos_store, registry, SETTINGS, now=END)
    assert cosmos_store.container("state").read_item_or_none(CHECKPOINT_ID, CHECKPOINT_ID) is None

    holder.release()
    run = run_churn_job(cosmos_store, registry, SETTINGS, now=END)  # empty store: refused training, nothing to score
    assert run["training"] == "refused" and run["stage"] == "done"


def test_an_expired_lock_is_taken_over(cosmos_store):
    state = cosmos_store.container("state")
    state.create_item({"id": LOCK_ID, "owner": "crashed",
                       "expires_at": (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()})
    lock = JobLock(cosmos_store, "new-run")
    lock.acquire()
    assert state.read_item(LOCK_ID, LOCK_ID)["owner"] == "new-run"
    with pytest.raises(JobLocked):
        JobLock(cosmos_store, "third").acquire()
    lock.release()
    assert state.read_item_or_none(LOCK_ID, LOCK_ID) is None


def test_timer_function_scores_profiles_on_the_local_stack(functions_by_name, app_env, cosmos_store, caplog):
    fn = functions_by_name["churn_retrain"]
    trigger = fn.get_trigger()
    assert trigger.schedule == "%UCP_CHURN_SCHEDULE%" and not trigger.run_on_startup

    registry = blob_registry(app_env)
    champion = trained_model()
    registry.publish(champion.version, champion.onnx, champion.card, expected_latest=None)
    profiles, docs = stored_customers(25, seed=5)
    load(cosmos_store, profiles, docs)

    fn.get_user_function()(TimerRequest(past_due=False))

    scored = churned_profiles(cosmos_store)
    customers = {p["id"] for p in profiles if p["id"].startswith("p_c")}
    assert set(scored) == customers
    assert {c["model_version"] for c in scored.values()} == {champion.version}
    runs = registry.runs()
    assert len(runs) == 1 and registry.read_run(runs[0])["status"] == "refused"  # 25 profiles: too few to train
    checkpoint = cosmos_store.container("state").read_item(CHECKPOINT_ID, CHECKPOINT_ID)
    assert checkpoint["stage"] == "done" and checkpoint["scored"] == len(customers)

    JobLock(cosmos_store, "someone-else").acquire()  # a concurrent run: the timer skips, without failing
    fn.get_user_function()(TimerRequest(past_due=True))
    assert "churn_retrain skipped" in caplog.text
    assert len(registry.runs()) == 1


def test_churn_write_retries_on_412_and_keeps_the_concurrent_change(store):
    from model_training.churn_job import write_churn

    profiles = store.container("profiles")
    read = profiles.create_item({"id": "p_x", "doc_type": "profile", "records": [{"key": "pos|1"}]})
    concurrent = {k: v for k, v in read.items() if not k.startswith("_")}
    profiles.replace_item({**concurrent, "records": [{"key": "pos|1"}, {"key": "web|9"}]})  # a merge lands first

    assert write_churn(store, read, {"score": 0.9, "risk": "high"})  # stale ETag -> 412 -> re-read -> write
    stored = profiles.read_item("p_x", "p_x")
    assert stored["churn"]["score"] == 0.9 and len(stored["records"]) == 2

    profiles.replace_item({"id": "p_x", "doc_type": "alias", "merged_into": "p_y"})
    assert write_churn(store, stored, {"score": 0.1}) is False  # merged away meanwhile: not resurrected
    assert "churn" not in profiles.read_item("p_x", "p_x")


def test_runnable_now_through_the_local_hosts_admin_endpoint(stack_settings, cosmos_store):
    """The real host stand-in resolves %UCP_CHURN_SCHEDULE% and runs the timer on POST /admin/functions/<name>."""
    import time

    import requests

    from devstack.host import LocalHost
    from tests.conftest import settings_env

    registry = blob_registry(stack_settings)
    champion = trained_model()
    registry.publish(champion.version, champion.onnx, champion.card, expected_latest=None)
    profiles, docs = stored_customers(25, seed=5)
    load(cosmos_store, profiles, docs[:200])
    key = "churn-test-master"
    env = {**settings_env(stack_settings), "UCP_CHURN_SCHEDULE": "0 0 2 * * *", "UCP_HOST_MASTER_KEY": key}
    with LocalHost("function_app:app", port=0, timers=False, blob_poll_interval=30, app_settings=env) as host:
        listed = {f["name"]: f for f in requests.get(f"{host.url}/admin/functions", params={"code": key}).json()}
        assert listed["churn_retrain"]["error"] is None
        assert listed["churn_retrain"]["bindings"][0]["schedule"] == "0 0 2 * * *"
        resp = requests.post(f"{host.url}/admin/functions/churn_retrain", json={"input": ""}, params={"code": key})
        assert resp.status_code == 202
        state = cosmos_store.container("state")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            checkpoint = state.read_item_or_none(CHECKPOINT_ID, CHECKPOINT_ID)
            if checkpoint and checkpoint["stage"] == "done":
                break
            time.sleep(0.5)
    assert checkpoint and checkpoint["stage"] == "done" and checkpoint["model_version"] == champion.version
    assert checkpoint["scored"] == len(churned_profiles(cosmos_store)) > 0


def utc(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc)


def test_nightly_histories_read_a_positive_refund_as_a_return_like_serving():
    """Stored transactions keep their own kind as transaction_kind (kind="transaction"): the nightly job's copy of
    the docs must keep it, or a refund with a positive amount becomes a purchase in training and batch scoring
    while score_profile reads it as a return, and a churned customer is labelled retained."""
    store = MemoryStore()
    save_activity(store, [
        Transaction(source="pos", order_id="o1", customer_key="42", timestamp=utc("2025-01-10"), amount="100"),
        Transaction(source="pos", order_id="o1-R", customer_key="42", timestamp=utc("2025-03-15"), amount="40",
                    kind="refund"),
    ])
    profile = {"id": "p_1", "doc_type": "profile", "records": [{"key": "pos|42"}]}
    store.container("profiles").upsert_item(profile)

    as_of = to_epoch("2025-04-01T00:00:00Z")
    nightly = dict(zip(FEATURE_NAMES, load_histories(store)["p_1"].features(as_of)))
    serving = dict(zip(FEATURE_NAMES, profile_history(store, profile).features(as_of)))
    assert serving["frequency"] == 1 and serving["returns_ratio"] == 1.0  # the definition
    assert nightly == serving
    # bought 2025-01-10, then only a refund in [cut-off, as_of): churned
    ids, _, y = labelled_snapshot(load_histories(store), as_of=as_of, window_days=60)
    assert dict(zip(ids, y.tolist())) == {"p_1": 1}


def test_nightly_histories_equal_profile_history_for_every_stored_customer():
    """Every feature the nightly job computes is the serving one, whatever the doc shape (some sources store
    returns with a positive amount)."""
    store = MemoryStore()
    profiles, docs = stored_customers(60, seed=7)
    positive = [{**d, "amount": abs(d["amount"])} if d.get("transaction_kind") in ("return", "refund") else d
                for d in docs]
    assert positive != docs
    load(store, profiles, positive)
    nightly = load_histories(store)
    as_of = to_epoch(END)
    for profile in profiles:
        if profile["doc_type"] != "profile" or profile["id"] not in nightly:
            continue
        serving = profile_history(store, profile)
        if serving.purchases_before(as_of):
            assert (nightly[profile["id"]].features(as_of) == serving.features(as_of)).all(), profile["id"]


def test_a_champion_that_cannot_be_loaded_does_not_crash_the_nightly_run(tmp_path):
    """Training refused (too few profiles) and the published model is gone: the run finishes, says why, and the
    next training replaces the champion (test_churn_registry)."""
    store, registry = MemoryStore(), local_registry(tmp_path)
    champion = trained_model()
    registry.publish(champion.version, champion.onnx, champion.card, expected_latest=None)
    (tmp_path / "churn" / champion.version / "model.onnx").unlink()
    profiles, docs = stored_customers(25, seed=5)
    load(store, profiles, docs)

    result = run_churn_job(store, registry, SETTINGS, now=END, train_options=FAST)
    assert result["stage"] == "done" and result["training"] == "refused"
    assert result["model_version"] is None and "incomplete or missing" in result["model_error"]
    assert result["scored"] == 0


def _stored(store, cid, *, bad=False):
    """A profile with three purchases; `bad` adds an activity doc whose amount cannot be read."""
    store.container("profiles").upsert_item({"id": f"p_{cid}", "doc_type": "profile",
                                             "records": [{"key": f"pos|{cid}"}]})
    save_activity(store, [Transaction(source="pos", order_id=f"{cid}-{i}", customer_key=cid, timestamp=utc(day),
                                      amount="25") for i, day in enumerate(["2026-01-10", "2026-03-01", "2026-05-20"])])
    if bad:
        store.container("activity").upsert_item({"id": f"transaction:pos:{cid}-x", "owner": f"pos|{cid}",
                                                  "kind": "transaction", "timestamp": "2026-04-01T00:00:00Z",
                                                  "amount": "n/a"})


def test_an_unreadable_activity_doc_does_not_stop_the_nightly_run(tmp_path):
    """load_histories skips a profile whose activity cannot be parsed; scoring must not then re-parse it and die
    (the job would stop mid-scoring, and every resume on the same page)."""
    store, registry = MemoryStore(), local_registry(tmp_path)
    champion = trained_model()
    registry.publish(champion.version, champion.onnx, champion.card, expected_latest=None)
    _stored(store, "a_bad", bad=True)
    _stored(store, "b_good")
    result = run_churn_job(store, registry, SETTINGS, now=END)
    assert result["stage"] == "done" and result["unreadable"] == 1 and result["scored"] == 1
    assert "churn" in store.container("profiles").read_item("p_b_good", "p_b_good")


def test_a_profile_without_purchases_does_not_keep_an_old_score(tmp_path):
    """A split moves the purchasing record out of a profile (identity.maintenance keeps its other fields): its
    old score, computed from the record that left, is removed instead of being served forever."""
    store, registry = MemoryStore(), local_registry(tmp_path)
    champion = trained_model()
    registry.publish(champion.version, champion.onnx, champion.card, expected_latest=None)
    _stored(store, "buyer")
    first = run_churn_job(store, registry, SETTINGS, now=END)
    profiles = store.container("profiles")
    assert first["scored"] == 1 and "churn" in profiles.read_item("p_buyer", "p_buyer")

    doc = profiles.read_item("p_buyer", "p_buyer")
    profiles.replace_item({**{k: v for k, v in doc.items() if not k.startswith("_")}, "records": [{"key": "web|w1"}]})
    save_activity(store, [Event(source="web", event_id="e1", customer_key="w1", timestamp=utc("2026-06-01"),
                                channel="web")])
    second = run_churn_job(store, registry, SETTINGS, now=END + timedelta(days=1))
    assert second["no_purchases"] == 1 and second["cleared"] == 1
    stored = profiles.read_item("p_buyer", "p_buyer")
    assert "churn" not in stored and stored["records"] == [{"key": "web|w1"}]
    third = run_churn_job(store, registry, SETTINGS, now=END + timedelta(days=2))
    assert third["no_purchases"] == 1 and third["cleared"] == 0  # nothing left to remove: no write


def test_removing_a_score_is_etag_guarded(store):
    from model_training.churn_job import write_churn

    profiles = store.container("profiles")
    read = profiles.create_item({"id": "p_x", "doc_type": "profile", "records": [{"key": "pos|1"}],
                                 "churn": {"score": 0.5}})
    concurrent = {k: v for k, v in read.items() if not k.startswith("_")}
    profiles.replace_item({**concurrent, "records": [{"key": "pos|1"}, {"key": "web|9"}]})  # a merge lands first
    assert write_churn(store, read, None)
    stored = profiles.read_item("p_x", "p_x")
    assert "churn" not in stored and len(stored["records"]) == 2
