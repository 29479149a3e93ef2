"""The chaos run: generated multi-source data through the real blob and queue path while the infrastructure
misbehaves, then the invariant audit (shared/audit.py) against a run of the same data without faults.

    python -m bench chaos [--customers 300] [--seed 7] [--workers 4] [--kills 3] [--throttle-rate 0.1]

Both runs use the local stack (Azurite + Cosmos emulator) and N local Functions hosts running function_app:app,
all polling one resolve queue like scaled-out instances; host w0 also runs the landing blob trigger. Faults of
the chaos run:
1. 10 % of blob events are delivered twice (the same name and ETag, to another instance: the host's admin
   endpoint runs ingest_blob for the blob's current version), half at once, half after the first delivery
   finished; 10 % of the resolve-queue messages are sent twice (peeked, then re-sent with the same content).
2. N workers at once; files of every source are split small (--rows-per-file), so the records of one person
   travel in different messages, resolved by different workers concurrently.
3. A worker is SIGKILLed while it has resolve invocations running, --kills times, and restarted; the Cosmos
   emulator is restarted once (graceful, its data file keeps the data) while workers are resolving
   (--restart-while-ingesting: while files are ingested; --cosmos-outage S: it stays down S seconds, 60+ sends
   messages and blob events to poison).
4. The emulator answers 429 with x-ms-retry-after-ms to --throttle-rate of document requests.
Then the operator's part: resolve poison is replayed with `ucp replay`, poisoned blob events are delivered
again (same name and ETag) once the ingestion leases lapse, stale ingestions are resumed.

Figures: what was injected, how the pipeline coped (failed/retried invocations, poison, replays), the audit of
both runs, and per true person the number of profiles compared with fault-free runs: the baseline, and one
record at a time in file order, random orders and each run's own arrival order (resolution depends on arrival
order, which faults change; a corrupted state gives a result no fault-free order gives). Exit code 1 (and
`invariants_hold` false) if any invariant fails.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import ssl
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import run_benchmark
from devstack.apphost import ingestion_reports

ROOT = Path(__file__).resolve().parent.parent
RESOLVE_FUNCTION = "resolve_queue"
INGEST_FUNCTION = "ingest_blob"
BLOB_POISON_QUEUE = "webjobs-blobtrigger-poison"


@dataclass
class ChaosConfig:
    customers: int = 300
    seed: int = 7
    rows_per_file: int = 15
    activity_files: int = 2  # per activity folder (events, orders, reviews): enough to account for their rows
    workers: int = 4
    kills: int = 3
    restart_cosmos: bool = True
    cosmos_outage: float = 0.0  # seconds the emulator stays down on its restart (long enough: poison, replay)
    restart_while_ingesting: bool = False  # restart Cosmos while files are being ingested (not while resolving)
    duplicate_rate: float = 0.1
    throttle_rate: float = 0.1
    fault_spacing: float = 4.0  # seconds between one crash (or restart) and looking for the next victim
    queue_lease: int = 8  # seconds a killed worker's messages stay invisible (the real host: minutes)
    timeout: float = 900.0
    reference_orders: int = 5  # fault-free sequential arrival orders, for the range of profiles per person
    keep: bool = False  # keep the work folder (logs, data) for inspection


@dataclass
class FaultLog:
    blob_duplicates: list[dict[str, Any]] = field(default_factory=list)
    queue_messages_seen: int = 0
    queue_duplicates: int = 0
    kills: list[dict[str, Any]] = field(default_factory=list)
    cosmos_restarts: list[dict[str, Any]] = field(default_factory=list)
    replayed_poison: int = 0
    redelivered_blob_events: int = 0
    resumed_ingestions: int = 0
    notes: list[str] = field(default_factory=list)
    duplicator_errors: dict[str, int] = field(default_factory=dict)  # peeks/sends that failed (store down)


# ------------------------------------------------------------------------------------------------ data


def generate(out: Path, cfg: ChaosConfig) -> Path:
    subprocess.run([sys.executable, "-m", "shared.cli", "generate", "--customers", str(cfg.customers),
                    "--seed", str(cfg.seed), "--rows-per-file", str(cfg.rows_per_file), "--no-progress",
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    return out


def select_blobs(generated: Path, activity_files: int) -> list[str]:
    """Every customer file, and the first few files of each activity folder."""
    landing = generated / "landing"
    names = []
    for folder in sorted(p for p in landing.glob("*/*") if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.is_file())
        if folder.name != "customers":
            files = files[:activity_files]
        names += [p.relative_to(landing).as_posix() for p in files]
    return names


def chosen(index: int, rate: float) -> bool:
    """Every 1/rate-th item (the first one halfway through the first period): exactly that share, even of
    the few messages and files of a small run."""
    if rate <= 0:
        return False
    period = max(1, round(1 / rate))
    return index % period == period // 2


# ------------------------------------------------------------------------------------------------ one run


class PipelineRun:
    """One isolated set of containers/queues on a stack, N hosts, the data uploaded, faults optional."""

    def __init__(self, stack, generated: Path, blobs: list[str], cfg: ChaosConfig, work: Path, *, tag: str,
                 faults: bool):
        from devstack.apphost import AppHost, isolated_settings
        from shared.bootstrap import bootstrap
        from shared.store.cosmos import CosmosStore

        self.stack, self.generated, self.blobs, self.cfg, self.faults = stack, generated, blobs, cfg, faults
        self.work = work / tag
        self.settings = isolated_settings(stack.env, f"{tag}{os.getpid() % 10000}")
        bootstrap(self.settings)
        s = self.settings
        self.store = CosmosStore(s.cosmos_endpoint, s.cosmos_key, s.cosmos_database, prefix=s.container_prefix)
        idle = {"UCP_LANDING_CONTAINER": s.landing_container + "-idle"}  # no blob polling on w1..: resolvers
        self.hosts = [AppHost(s, self.work / "logs", name=f"w{i}", app_settings={} if i == 0 else idle,
                              queue_lease=cfg.queue_lease) for i in range(cfg.workers)]
        self.log = FaultLog()
        self.rng = random.Random(cfg.seed)
        self._stop = threading.Event()

    # -- lifecycle

    def run(self) -> dict[str, Any]:
        from devstack.apphost import upload, wait_settled

        t0 = time.monotonic()
        threads = [threading.Thread(target=h.start) for h in self.hosts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if not all(h.alive for h in self.hosts):
            raise RuntimeError("a host did not start:\n" + "\n".join(h.log_tail(1500) for h in self.hosts))
        started = time.monotonic()
        self._t_upload = time.monotonic()
        try:
            upload(self.settings, self.generated / "landing", self.blobs)
            helpers = []
            if self.faults:
                helpers = [threading.Thread(target=self._duplicate_queue_messages, daemon=True),
                           threading.Thread(target=self._duplicate_blob_events, daemon=True)]
                for t in helpers:
                    t.start()
                self._crash_workers()
            reports = wait_settled(self.settings, self.store, files=len(self.blobs), hosts=self.hosts,
                                   timeout=self.cfg.timeout)
            self._stop.set()
            for t in helpers:
                t.join(timeout=30)
            reports = self._operator_recovery(reports)
            pipeline_s = time.monotonic() - started
        finally:
            self._stop.set()
            for h in self.hosts:
                h.stop()
        return {"pipeline_s": round(pipeline_s, 1), "hosts_start_s": round(started - t0, 1),
                **self._figures(reports)}

    # -- faults

    def _duplicate_queue_messages(self) -> None:
        """Peek the resolve queue continuously; re-send the content of a share of the messages seen."""
        from shared.storage import queue_client

        queue = queue_client(self.settings.resolve_queue, self.settings)
        seen: set[str] = set()
        sent, counted_at = 0, 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - counted_at > 1.0:  # messages ingestion sent so far (some never peeked)
                    sent = sum(int(r.get("messages_sent") or 0) for r in ingestion_reports(self.store))
                    counted_at = time.monotonic()
                for msg in queue.peek_messages(max_messages=32):
                    if msg.id in seen:
                        continue
                    seen.add(msg.id)
                    self.log.queue_messages_seen += 1
                    # The share of every message sent, not only of those seen before a worker took them.
                    share = self.cfg.duplicate_rate * max(sent, self.log.queue_messages_seen)
                    target = max(1, round(share)) if self.cfg.duplicate_rate > 0 else 0
                    if self.log.queue_duplicates < target:
                        copy = queue.send_message(msg.content)
                        seen.add(copy.id)  # a copy is not copied again
                        self.log.queue_duplicates += 1
            except Exception as err:  # noqa: BLE001 - a storage hiccup (or the store restarting) delays a peek
                name = type(err).__name__
                self.log.duplicator_errors[name] = self.log.duplicator_errors.get(name, 0) + 1
            self._stop.wait(0.05)

    def _duplicate_blob_events(self) -> None:
        """Deliver a second event for a share of the blobs (same name and ETag) to another instance."""
        picks = [b for i, b in enumerate(self.blobs) if chosen(i, self.cfg.duplicate_rate)]
        container = self.settings.landing_container
        for i, name in enumerate(picks):
            late = i % 2 == 1
            if late:  # after the first delivery finished: the ledger says "done"
                self._wait_for_report(name, timeout=self.cfg.timeout / 2)
            others = self.hosts[1:]
            order = others[i % len(others):] + others[:i % len(others)] + self.hosts[:1] if others else self.hosts
            status, host = None, order[0]
            for _ in range(20):
                for host in order:  # another instance first; skip one that is being restarted
                    status = host.run_function(INGEST_FUNCTION, f"{container}/{name}") if host.alive else None
                    if status is not None:
                        break
                if status is not None:
                    break
                time.sleep(0.5)
            self.log.blob_duplicates.append({"blob_index": self.blobs.index(name), "late": late,
                                             "host": host.name, "status": status})
            if self._stop.is_set():
                return

    def _wait_for_report(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                if any(r.get("blob") == name and r.get("status") != "processing"
                       for r in self.store.container("ledger").query_items(("blob", "=", name))):
                    return
            except Exception:  # noqa: BLE001 - the store may be restarting
                pass
            time.sleep(0.3)

    def _crash_workers(self) -> None:
        """Kill a resolver mid-batch `kills` times (restarting it each time); restart Cosmos once, in between."""
        victims = self.hosts[1:] or self.hosts
        restart_after = max(0, self.cfg.kills // 2) if self.cfg.restart_cosmos else None
        if self.cfg.restart_cosmos and self.cfg.restart_while_ingesting:
            restart_after = None
            self._restart_cosmos(while_function=INGEST_FUNCTION)
        for k in range(self.cfg.kills):
            if k == restart_after:
                self._restart_cosmos()
            host = self._busy_host(victims, timeout=120)
            if host is None:
                self.log.notes.append(f"kill {k + 1}: no resolver had work in flight; skipped")
                continue
            running = host.in_flight(RESOLVE_FUNCTION)
            host.kill()
            self.log.kills.append({"host": host.name, "resolve_in_flight": running, "at_s": self._elapsed()})
            time.sleep(0.5)
            host.start()
            self._stop.wait(self.cfg.fault_spacing)  # spread the faults over the run
        if restart_after is not None and restart_after >= self.cfg.kills:
            self._restart_cosmos()

    def _busy_host(self, hosts, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = [h for h in hosts if h.alive and h.in_flight(RESOLVE_FUNCTION) > 0]
            if busy:  # the least killed so far, then the busiest
                killed = [k["host"] for k in self.log.kills]
                return min(busy, key=lambda h: (killed.count(h.name), -h.in_flight(RESOLVE_FUNCTION)))
            time.sleep(0.05)
        return None

    def _restart_cosmos(self, while_function: str = RESOLVE_FUNCTION) -> None:
        """Restart the emulator (graceful: it saves and reloads its data) while `while_function` runs."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(h.in_flight(while_function) for h in self.hosts if h.alive):
            time.sleep(0.02)
        running = {f: sum(h.in_flight(f) for h in self.hosts if h.alive) for f in (INGEST_FUNCTION, RESOLVE_FUNCTION)}
        t = time.monotonic()
        self.stack.restart_cosmos(down_for=self.cfg.cosmos_outage)
        self.log.cosmos_restarts.append({"down_s": round(time.monotonic() - t, 2), "at_s": self._elapsed(),
                                         "in_flight": running})

    def _elapsed(self) -> float:
        return round(time.monotonic() - getattr(self, "_t_upload", time.monotonic()), 1)

    # -- the operator's part

    def _operator_recovery(self, reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What an operator does after an incident (docs/operations.md): replay the resolve queue's poison
        messages (`ucp replay`), re-deliver the blob events the host gave up on (same name and ETag), and let
        crashed ingestions whose lease lapsed be resumed (the app's resume_stale_ingestion timer)."""
        from devstack.apphost import queue_length, wait_settled

        for _ in range(3):
            poison = queue_length(self.settings, self.settings.resolve_queue + "-poison")
            blobs = self._poisoned_blobs()
            stale = [r for r in reports if r.get("status") == "processing"]
            if not poison and not blobs and not stale and self._all_reported(reports):
                break
            if poison:
                env = {**os.environ, **self.settings.to_env()}
                out = subprocess.run([sys.executable, "-m", "shared.cli", "replay", "--queue",
                                      self.settings.resolve_queue], cwd=ROOT, env=env, capture_output=True,
                                     text=True, timeout=120)
                self.log.replayed_poison += poison
                self.log.notes.append(f"ucp replay: exit {out.returncode}")
            self._wait_for_leases(stale)
            for msg, name in blobs:
                status = self.hosts[0].run_function(INGEST_FUNCTION, f"{self.settings.landing_container}/{name}")
                if status == 202:
                    self._blob_poison.delete_message(msg)
                    self.log.redelivered_blob_events += 1
            if stale and not blobs:
                self.hosts[0].run_function("resume_stale_ingestion")
                self.log.resumed_ingestions += len(stale)
            reports = wait_settled(self.settings, self.store, files=len(self.blobs), hosts=self.hosts,
                                   timeout=self.cfg.timeout, allow_unfinished=True)
        return reports

    def _all_reported(self, reports: list[dict[str, Any]]) -> bool:
        done = {r.get("blob") for r in reports if r.get("status") in ("completed", "failed")}
        return all(name in done for name in self.blobs)

    def _poisoned_blobs(self) -> list[tuple[Any, str]]:
        """Messages of the host's blob-trigger poison queue (shared by every app on the storage account) that
        name this run's landing container, with the blob name."""
        from shared.storage import queue_client

        self._blob_poison = queue_client(BLOB_POISON_QUEUE, self.settings)
        found = []
        try:
            for msg in self._blob_poison.receive_messages(messages_per_page=32, visibility_timeout=60):
                body = json.loads(msg.content)
                if body.get("ContainerName") == self.settings.landing_container:
                    found.append((msg, body["BlobName"]))
                else:
                    self._blob_poison.update_message(msg, visibility_timeout=0)  # another app's: leave it
        except Exception as err:  # noqa: BLE001 - no such queue: nothing was poisoned
            if type(err).__name__ != "ResourceNotFoundError":
                raise
        return found

    def _wait_for_leases(self, stale: list[dict[str, Any]]) -> None:
        """An ingestion that failed while the store was down could not give its lease back: a retry is refused
        (IngestionBusy) until the lease lapses (minutes, by design). Wait for that."""
        from shared.ingest import ledger

        latest = max((r.get("lease_until") or "" for r in stale), default="")
        while latest and ledger.iso(ledger.utc_now()) <= latest:
            time.sleep(1)

    # -- figures

    def _figures(self, reports: list[dict[str, Any]]) -> dict[str, Any]:
        from devstack.apphost import queue_length
        from shared.audit import audit_store, manifest_rows, read_truth, resolver_quarantined_keys, truth_clusters

        findings = audit_store(self.store, expected_rows=manifest_rows(self.generated, uploaded=self.blobs))
        excused = resolver_quarantined_keys(self.settings)
        self.clusters = truth_clusters(self.store, read_truth(self.generated), excused=excused)
        self.arrival = arrival_order(self.store)
        invocations = {}
        for h in self.hosts:
            for status, n in h.invocations(RESOLVE_FUNCTION).items():
                invocations[status] = invocations.get(status, 0) + n
        ingest = self.hosts[0].invocations(INGEST_FUNCTION)
        for h in self.hosts[1:]:
            for status, n in h.invocations(INGEST_FUNCTION).items():
                ingest[status] = ingest.get(status, 0) + n
        figures = {
            "audit": findings.as_dict(),
            "truth": {**self.clusters["figures"], "lost_samples": self.clusters["lost"][:10],
                      "resolver_quarantined": len(excused)},
            "invocations": {RESOLVE_FUNCTION: invocations, INGEST_FUNCTION: ingest},
            "left_in_poison": {"resolve": queue_length(self.settings, self.settings.resolve_queue + "-poison"),
                               "blob": queue_length(self.settings, BLOB_POISON_QUEUE)},
        }
        if self.faults:
            figures["faults"] = asdict(self.log)
            figures["faults"]["blob_events"] = len(self.blobs)
            figures["faults"]["queue_messages_sent_by_ingestion"] = sum(int(r.get("messages_sent") or 0)
                                                                        for r in reports)
            figures["faults"]["cosmos"] = _chaos_stats(self.stack)
        return figures


def _chaos_stats(stack) -> dict[str, Any]:
    try:
        ctx = ssl._create_unverified_context()  # the emulator's self-signed certificate, on 127.0.0.1 only
        with urllib.request.urlopen(f"{stack.env['COSMOS_ENDPOINT']}_chaos/stats", context=ctx, timeout=10) as r:
            return json.loads(r.read())
    except OSError as err:
        return {"error": type(err).__name__}


# ------------------------------------------------------------------------------------------------ the bench


def start_stack(work: Path, *, throttle_rate: float, seed: int, persist: bool):
    from devstack.stack import LocalStack

    args = ["--chaos-seed", str(seed)]
    if persist:
        args += ["--data-file", str(work / "cosmos-data.json")]
    if throttle_rate > 0:
        args += ["--throttle-rate", str(throttle_rate)]
    stack = LocalStack(work / "stack", cosmos_args=args)
    stack.start()
    return stack


def reference_orders(generated: Path, orders: int, seed: int, *,
                     arrivals: list[list[str]] = ()) -> list[dict[str, Any]]:
    """Fault-free clusterings of the same customer records, one process, MemoryStore, one record at a time:
    in file order, in `orders` - 1 random orders, and in each given arrival order (record keys, e.g. the order
    in which a pipeline run placed them). The range a faulty run is compared with."""
    from bench.identity import load_customer_records
    from shared.audit import read_truth, truth_clusters
    from shared.identity.engine import resolve_records
    from shared.settings import Settings
    from shared.store import MemoryStore

    records = load_customer_records(generated)
    truth = read_truth(generated)
    sequences = []
    for i in range(orders):
        arrival = list(records)  # the first: the order of the files, which the pipeline roughly follows
        if i:
            random.Random(seed * 1000 + i).shuffle(arrival)
        sequences.append(arrival)
    for keys in arrivals:
        rank = {key: i for i, key in enumerate(keys)}
        sequences.append(sorted(records, key=lambda r: rank.get(r.key, len(rank))))
    out = []
    for arrival in sequences:
        store = MemoryStore()
        resolve_records(store, arrival, settings=Settings())
        out.append(truth_clusters(store, truth))
    return out


def arrival_order(store) -> list[str]:
    """Record keys in the order a run placed them in profiles (their entries' added_at)."""
    entries = [(r.get("added_at") or "", r["key"])
               for p in store.container("profiles").query_items(("doc_type", "=", "profile"))
               for r in p.get("records", [])]
    return [key for _, key in sorted(entries)]


def invariants_hold(run: dict[str, Any], envelope: dict[str, Any] | None = None) -> bool:
    """The audit passes, no true record is lost or unknown, nothing is left in poison, and (when given) every
    person has a number of profiles that fault-free runs also gave them."""
    truth = run["truth"]
    ok = run["audit"]["ok"] and not truth["lost"] and not truth["unknown_records"]
    ok = ok and not run["left_in_poison"]["resolve"]
    if envelope is not None:
        ok = ok and envelope["people_outside"] == 0
    return ok


def chaos(cfg: ChaosConfig, work: Path | None = None) -> dict[str, Any]:
    """Baseline run, chaos run, audits and comparison; returns the figures."""
    from shared.audit import compare_clusters, compare_to_envelope

    own = work is None
    work = Path(work or tempfile.mkdtemp(prefix="ucp-chaos-"))
    try:
        generated = generate(work / "data", cfg)
        blobs = select_blobs(generated, cfg.activity_files)
        figures: dict[str, Any] = {"blobs": len(blobs), "work_dir": str(work) if cfg.keep else None}

        stack = start_stack(work / "baseline", throttle_rate=0, seed=cfg.seed, persist=False)
        try:
            base = PipelineRun(stack, generated, blobs, cfg, work, tag="base", faults=False)
            figures["baseline"] = base.run()
        finally:
            stack.stop()

        stack = start_stack(work / "chaos", throttle_rate=cfg.throttle_rate, seed=cfg.seed,
                            persist=cfg.restart_cosmos)
        try:
            run = PipelineRun(stack, generated, blobs, cfg, work, tag="chaos", faults=True)
            figures["chaos"] = run.run()
        finally:
            stack.stop()

        # Fault-free references: the baseline, file order, random orders, and both runs' own arrival orders
        # replayed one record at a time (a fault that reorders arrival may change an order-dependent result;
        # one that corrupts state gives a result no fault-free order gives).
        refs = reference_orders(generated, cfg.reference_orders, cfg.seed, arrivals=[run.arrival, base.arrival])
        envelope = compare_to_envelope(run.clusters, [base.clusters, *refs])
        figures["comparison"] = {
            "with_baseline": compare_clusters(run.clusters, base.clusters),
            "with_fault_free_range": envelope,
            "baseline_with_sequential_orders": compare_to_envelope(base.clusters, refs),
        }
        figures["invariants_hold"] = invariants_hold(figures["chaos"], envelope)
        figures["baseline_invariants_hold"] = invariants_hold(figures["baseline"])
        return figures
    finally:
        if own and not cfg.keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    defaults = ChaosConfig()
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=defaults.customers)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--rows-per-file", type=int, default=defaults.rows_per_file)
    parser.add_argument("--activity-files", type=int, default=defaults.activity_files)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--no-cosmos-restart", dest="restart_cosmos", action="store_false")
    parser.add_argument("--cosmos-outage", type=float, default=defaults.cosmos_outage,
                        help="seconds Cosmos stays down on its restart (60+ sends messages to poison)")
    parser.add_argument("--restart-while-ingesting", action="store_true",
                        help="restart Cosmos while files are ingested (exercises the ingestion lease recovery)")
    parser.add_argument("--duplicate-rate", type=float, default=defaults.duplicate_rate)
    parser.add_argument("--throttle-rate", type=float, default=defaults.throttle_rate)
    parser.add_argument("--queue-lease", type=int, default=defaults.queue_lease)
    parser.add_argument("--fault-spacing", type=float, default=defaults.fault_spacing)
    parser.add_argument("--timeout", type=float, default=defaults.timeout)
    parser.add_argument("--reference-orders", type=int, default=defaults.reference_orders)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (data, host logs)")
    args = parser.parse_args(argv)
    cfg = ChaosConfig(**vars(args))
    report = run_benchmark("chaos", lambda: chaos(cfg), params=asdict(cfg), seed=cfg.seed)
    return 0 if report["figures"].get("invariants_hold") else 1


if __name__ == "__main__":
    sys.exit(main())
