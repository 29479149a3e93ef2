"""Ingestion throughput and peak memory: CSV, JSON Lines and Parquet customer files through the real pipeline.

    python bench/ingest.py                     # 100k rows per format
    python bench/ingest.py --rows 1000000      # 1M rows
    python bench/ingest.py --csv-gb 1          # also a ~1 GB CSV (the 300 MB peak RSS target)
    python bench/ingest.py --e2e               # upload -> resolved -> served by the API, on the local stack

Files are synthesized on the fly into a temp dir (deterministic for a seed). Each format runs in a fresh child
process so its peak RSS is its own. Customer records are encoded into queue messages exactly as in production
(batching, JSON) but not sent: this measures read + map + validate + dedupe + encode. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import collections
import gzip
import io
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GIVEN = ["Ann", "Bob", "Cara", "Dan", "Eve", "José", "Zoë", "Liam", "Mia", "Noah", "Olivia", "Priya", "Raj", "Sofia"]
FAMILY = ["Smith", "Jones", "Brown", "Taylor", "Wilson", "Müller", "García", "O'Neil", "Nguyen", "Khan"]
TOWNS = ["Leeds", "York", "Hull", "Bristol", "London", "Manchester", "Cardiff", "Glasgow"]
COLUMNS = ["customer_no", "first", "last", "dob", "mail", "tel", "addr1", "addr2", "town", "zip", "county",
           "house_no", "card_no", "store_code"]
MAPPING = {"source": "bench", "entity": "customers", "record_key": ["customer_no"],
           "fields": {"given_name": "first", "family_name": "last", "birth_date": {"column": "dob", "format": "%Y%m%d"},
                      "email": "mail", "phone": {"column": "tel", "region": "GB"}, "address_line1": "addr1",
                      "address_line2": "addr2", "city": "town", "postcode": "zip", "state": "county",
                      "street_number": "house_no"},
           "identifiers": {"loyalty_id": "card_no"}, "attributes": ["store_code"]}


def synth_rows(n: int, seed: int):
    rng = random.Random(seed)
    for i in range(n):
        g, f = rng.choice(GIVEN), rng.choice(FAMILY)
        yield {"customer_no": f"C{i:08d}", "first": g, "last": f,
               "dob": f"{rng.randint(1940, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
               "mail": f"{g.lower()}.{f.lower()}{i}@mailbox.co.uk".replace("'", ""),
               "tel": f"07700 9{rng.randint(0, 99999):05d}", "addr1": f"{rng.randint(1, 200)} High Street",
               "addr2": "" if rng.random() < 0.7 else f"Flat {rng.randint(1, 9)}", "town": rng.choice(TOWNS),
               "zip": f"LS{rng.randint(1, 29)} {rng.randint(1, 9)}AB", "county": "West Yorkshire",
               "house_no": str(rng.randint(1, 200)), "card_no": f"L{i:09d}" if rng.random() < 0.4 else "",
               "store_code": f"S{rng.randint(1, 50):02d}"}


def people_rows(n: int, seed: int):
    """Customers of the data generator's population (`ucp generate`): its name frequencies, households (family
    emails aside, each row has the person's own email), addresses and countries; clean values, one row each."""
    import phonenumbers

    from shared.generate import GeneratorConfig
    from shared.generate import banks
    from shared.generate.people import iter_households

    people = (p for h in iter_households(GeneratorConfig(customers=n, seed=seed)) for p in h.people)
    for i, p in enumerate(people):
        a = p.addresses[-1][1]
        street = f"{a.street} {banks.STREET_TYPES[a.country][a.street_type][0]}".strip()
        yield {"customer_no": f"C{i:08d}", "first": p.given_name, "last": p.family_name,
               "dob": p.birth_date.strftime("%Y%m%d"), "mail": p.emails[-1][1],
               "tel": phonenumbers.format_number(p.mobile, phonenumbers.PhoneNumberFormat.E164),
               "addr1": f"{a.number} {street}", "addr2": a.flat or "", "town": a.city, "zip": a.postcode,
               "county": a.state, "house_no": a.number, "card_no": f"L{i:09d}" if i % 5 < 2 else "",
               "store_code": f"S{i % 50:02d}"}


def write_csv(path: Path, n: int, seed: int) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(synth_rows(n, seed))


def write_jsonl(path: Path, n: int, seed: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in synth_rows(n, seed):
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_parquet(path: Path, n: int, seed: int, group: int = 50_000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = synth_rows(n, seed)
    writer = None
    while True:
        chunk = [r for _, r in zip(range(group), rows)]
        if not chunk:
            break
        table = pa.Table.from_pylist(chunk)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    if writer:
        writer.close()


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it is not inherited from the parent across fork+exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: str) -> None:
    """Run the pipeline on one file in this (fresh) process and print its figures."""
    from shared.ingest import ingest_file, parse_mapping
    from shared.ingest.sinks import CountingSink
    from shared.settings import Settings

    mapping = parse_mapping(MAPPING)
    sink = CountingSink("bench")
    start = time.perf_counter()
    report, _ = ingest_file(path, mapping, settings=Settings(), customers=sink)
    elapsed = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({"rows": report["rows_read"], "accepted": report["accepted"], "seconds": round(elapsed, 2),
                      "rows_per_s": round(report["rows_read"] / elapsed), "cpu_s": round(cpu, 1),
                      "rows_per_cpu_s": round(report["rows_read"] / cpu), "peak_rss_mb": round(peak_mb, 1),
                      "messages": sink.messages_sent, "file_mb": round(os.path.getsize(path) / 2**20, 1)}))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc; 0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_child(path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(args) -> dict:
    writers = {"csv": write_csv, "jsonl": write_jsonl, "parquet": write_parquet}
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="ucp-bench-ingest-") as tmp:
        for fmt in args.formats.split(","):
            path = Path(tmp) / f"customers.{fmt}"
            base = fmt.removesuffix(".gz")
            writers[base](Path(tmp) / f"customers.{base}", args.rows, args.seed)
            if fmt.endswith(".gz"):
                with open(Path(tmp) / f"customers.{base}", "rb") as src, gzip.open(path, "wb", 6) as dst:
                    shutil.copyfileobj(src, dst)
            results[fmt] = run_child(path)
            for f in Path(tmp).iterdir():
                f.unlink()
        if args.csv_gb:
            n = int(args.csv_gb * 2**30 / 136)  # ~136 bytes per synthesized CSV row
            path = Path(tmp) / "big.csv"
            write_csv(path, n, args.seed)
            results[f"csv_{args.csv_gb:g}gb"] = run_child(path)
    return {"rows": args.rows, "results": results, "target_peak_rss_mb_for_1gb_csv": 300,
            "note": "read+map+validate+dedupe+encode queue messages in one process; sends not included"}


class ApiClient:
    """GET requests to the local host's API over one keep-alive connection (reopened after an error)."""

    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key
        self.conn = self._connect()

    def _connect(self):
        import http.client

        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            self.conn.request("GET", path, headers={"x-functions-key": self.key})
            resp = self.conn.getresponse()
            return resp.status, resp.read()
        except OSError:
            self.conn.close()
            self.conn = self._connect()
            return 0, b""

    def status(self, path: str) -> int:
        return self.get(path)[0]

    def get_json(self, path: str) -> dict | None:
        status, body = self.get(path)
        return json.loads(body) if status == 200 else None


def wait_until_served(port: int, key: str, paths: list[str], *, clients: int, miss_pause: float,
                      timeout: float) -> tuple[float | None, int]:
    """Look up every path until each has been served (200) once: (when the last one was, None on timeout;
    lookups made). Rows finish in any order, so a row not served yet goes to the back of the line. Several
    clients look up side by side, as API users would: rows become visible in bursts (a message's lanes commit
    together), and one client would see the last of a burst only after as many sequential lookups. Each lookup
    costs host and emulator CPU that resolution needs, so a client that missed waits about clients x miss_pause
    (the clients together probe about every miss_pause) but wakes as soon as another client is served a row:
    the next rows are likely served too."""
    pending = collections.deque(paths)
    changed = threading.Condition()
    state = {"in_flight": 0, "lookups": 0, "served_at": None}
    deadline = time.perf_counter() + timeout
    rng = random.Random(0)

    def client() -> None:
        api = ApiClient(port, key)
        while time.perf_counter() < deadline:
            with changed:
                if not pending:
                    return  # any row still in flight comes back to the client checking it
                path = pending.popleft()
                state["in_flight"] += 1
                state["lookups"] += 1
            served = api.status(path) == 200
            with changed:
                state["in_flight"] -= 1
                if served:
                    if not pending and not state["in_flight"]:
                        state["served_at"] = time.perf_counter()
                    changed.notify_all()
                else:
                    pending.append(path)
                    changed.wait(miss_pause * clients * rng.uniform(0.5, 1.5))  # jitter: clients stay staggered

    threads = [threading.Thread(target=client, daemon=True) for _ in range(max(1, clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return state["served_at"], state["lookups"]


def end_to_end(args) -> dict:
    """Upload a 100-row customer CSV to Azurite with the local host running the real app; time until the API
    serves the profile of every row of the file (blob trigger -> ingestion -> resolve queue -> identity -> API)."""
    from urllib.parse import quote

    from bench.metrics import percentiles
    from devstack.stack import LocalStack, free_port
    from datetime import datetime

    from shared.bootstrap import bootstrap
    from shared.ingest.ledger import ingestion_id
    from shared.settings import get_settings
    from shared.storage import blob_service

    from devstack.host_workers import suggested_process_count

    processes = args.worker_processes or suggested_process_count()
    mapping = {**MAPPING, "source": "e2e"}
    served, ingested, missing, observed = [], [], 0, 0
    cpu_ms: list[list[float]] = [[], [], []]  # per trial: what a file costs, whatever else loads the machine
    with LocalStack() as stack:
        os.environ.update(stack.env)
        get_settings.cache_clear()
        settings = get_settings()
        bootstrap(settings)
        blobs = blob_service(settings)
        blobs.get_blob_client(settings.config_container, "sources/e2e.customers.json").upload_blob(
            json.dumps(mapping).encode(), overwrite=True)
        port, key = free_port(), "bench-key"
        env = {**os.environ, **settings.to_env(), "UCP_HOST_FUNCTION_KEYS": key, "UCP_HOST_MASTER_KEY": key,
               "FUNCTIONS_WORKER_PROCESS_COUNT": str(processes)}
        host_log = open(args.host_log or Path(stack.data_dir) / "host.log", "wb")
        host = subprocess.Popen([sys.executable, "-m", "devstack.host", "--app", "function_app:app", "--port",
                                 str(port), "--no-timers", "--blob-poll-interval", str(args.poll)],
                                cwd=ROOT, env=env, stdout=host_log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            api = ApiClient(port, key)
            deadline = time.monotonic() + 60
            while api.status("/api/health") != 200:
                if time.monotonic() > deadline or host.poll() is not None:
                    raise RuntimeError("the local host did not start")
                time.sleep(0.2)
            population = list(people_rows(100 * (args.trials + 1), args.seed)) if args.population == "generated" else []
            for trial in range(args.trials + 1):  # trial 0 warms up (imports, model load, connections)
                batch = population[100 * trial:100 * (trial + 1)] or list(synth_rows(100, args.seed + trial))
                rows = [{**r, "customer_no": f"T{trial}-{r['customer_no']}", "mail": f"t{trial}.{r['mail']}"}
                        for r in batch]
                buf = io.StringIO()
                import csv

                w = csv.DictWriter(buf, COLUMNS)
                w.writeheader()
                w.writerows(rows)
                lookups = [f"/api/profiles?email={quote(r['mail'])}" for r in rows]
                blob = f"e2e/customers/trial{trial}.csv"
                groups = [[host.pid], child_pids(host.pid), [p.pid for p in stack.procs]]
                cpu0 = [cpu_seconds(pids) for pids in groups]
                t0, wall0 = time.perf_counter(), time.time()
                client = blobs.get_blob_client(settings.landing_container, blob)
                etag = client.upload_blob(buf.getvalue().encode(), overwrite=True)["etag"]
                # Served = every row of the file served by the API (its profile looked up by the row's email).
                served_at, made = wait_until_served(port, key, lookups, clients=args.clients,
                                                    miss_pause=args.miss_pause, timeout=args.timeout)
                observed += made
                elapsed = (served_at or time.perf_counter()) - t0
                cpu = [cpu_seconds(pids) - before for pids, before in zip(groups, cpu0)]
                report = api.get_json(f"/api/ingestions/{ingestion_id(f'{settings.landing_container}/{blob}', etag)}")
                if elapsed > args.timeout:  # say why, from the report and the host's log
                    print("not served in time; ingestion report:", report, file=sys.stderr)
                if trial:
                    served.append(elapsed * 1000)
                    for figures, seconds in zip(cpu_ms, cpu):
                        figures.append(seconds * 1000)
                    if report and report.get("finished_at"):
                        finished = datetime.fromisoformat(report["finished_at"].replace("Z", "+00:00")).timestamp()
                        ingested.append((finished - wall0) * 1000)
                    time.sleep(0.2)
                    missing += sum(api.status(path) != 200 for path in lookups)
        finally:
            host.terminate()
            host.wait(timeout=15)
            host_log.close()
    return {"trials": args.trials, "rows_per_file": 100, "population": args.population,
            "upload_to_all_rows_served_ms": percentiles(served),
            "upload_to_ingested_ms": percentiles(ingested), "rows_not_served_after": missing,
            "cpu_ms_per_file": {"host_process": percentiles(cpu_ms[0]), "worker_processes": percentiles(cpu_ms[1]),
                                "azurite_and_cosmos_emulator": percentiles(cpu_ms[2]),
                                "note": "upload to served, observer lookups included"},
            "blob_poll_interval_s": args.poll, "functions_worker_process_count": processes,
            "resolve_batch_records": settings.resolve_batch_records, "miss_pause_s": args.miss_pause,
            "observer_clients": args.clients,
            "api_lookups_per_trial": round(observed / (args.trials + 1)), "target_p95_ms": 2000,
            "note": "the local host polls blobs every blob_poll_interval (Event Grid pushes in Azure)"}


def main(argv: list[str] | None = None) -> dict:
    from bench.harness import run_benchmark

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--formats", default="csv,jsonl,parquet,csv.gz")
    p.add_argument("--csv-gb", type=float, default=0, help="also ingest a CSV of about this many GB")
    p.add_argument("--e2e", action="store_true", help="upload-to-API latency on the local stack instead")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for a file to be served (--e2e)")
    p.add_argument("--poll", type=float, default=0.25, help="local host blob poll interval (s), with --e2e")
    p.add_argument("--worker-processes", type=int, default=0,
                   help="FUNCTIONS_WORKER_PROCESS_COUNT of the local host (default: one per CPU), with --e2e")
    p.add_argument("--miss-pause", type=float, default=0.025,
                   help="--e2e: the observer's clients together look up a row not served yet about this often "
                        "(its lookups load the host)")
    p.add_argument("--clients", type=int, default=4, help="concurrent API clients of the --e2e observer")
    p.add_argument("--host-log", help="keep the local host's log in this file (with --e2e)")
    p.add_argument("--population", choices=("generated", "synthetic"), default="generated",
                   help="--e2e rows: people of the data generator's population (realistic name frequencies), or the "
                        "throughput bench's synthetic rows (14 given x 10 family names: every new row meets dozens "
                        "of namesakes, a worst case for blocking)")
    p.add_argument("--child")
    args = p.parse_args(argv)
    if args.child:
        child(args.child)
        return {}
    if args.e2e:
        return run_benchmark("ingest_e2e", lambda: end_to_end(args), params=vars(args))
    return run_benchmark("ingest", lambda: throughput(args), params=vars(args))


if __name__ == "__main__":
    main()
