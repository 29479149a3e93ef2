"""Lookup latency over HTTP on the local stack, next to the raw Cosmos point reads it needs.

Starts Azurite + the Cosmos emulator + the local Functions host with the real app, resolves a few hundred
generated-like customers into Cosmos, then times GET /api/profiles/{id} and GET /api/profiles?email=... against
a raw `read_item` of the profile (and of the identifier + profile for the email lookup) in the same run.
Targets (issue 7): p99 <= 20 ms; the API adds <= 2 ms at p50 over the raw point reads it needs.
"""
from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
from urllib.parse import quote

from bench.harness import run_benchmark
from bench.metrics import percentiles
from devstack.stack import ROOT, LocalStack, free_port


def _records(n: int):
    from shared.models import CustomerRecord

    for i in range(n):
        yield CustomerRecord(source="pos", record_key=str(i), given_name=f"Given{i}", family_name=f"Family{i}",
                             email=f"person{i}@shopmail.net", birth_date=f"19{50 + i % 50}-0{1 + i % 9}-1{i % 9}")


def _wait_http(conn_port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("host exited")
        try:
            c = http.client.HTTPConnection("127.0.0.1", conn_port, timeout=2)
            c.request("GET", "/api/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("host did not start")


def measure(n_profiles: int = 300, n_requests: int = 1000) -> dict:
    from shared.identity import find_profile_id, resolve_records
    from shared.settings import get_settings
    from shared.store import open_store

    with LocalStack() as stack:
        os.environ.update(stack.env)
        get_settings.cache_clear()
        from shared.bootstrap import bootstrap

        bootstrap()
        store = open_store()
        records = list(_records(n_profiles))
        resolve_records(store, records, settings=get_settings())
        emails = [r.email for r in records]
        ids = [find_profile_id(store, "email", e) for e in emails]
        port = free_port()
        key = "bench-key"
        env = {**os.environ, "UCP_HOST_FUNCTION_KEYS": key, "UCP_HOST_MASTER_KEY": key}
        host = subprocess.Popen([sys.executable, "-m", "devstack.host", "--app", "function_app:app", "--port", str(port),
                                 "--no-timers"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            _wait_http(port, host)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

            def get(path: str) -> float:
                t0 = time.perf_counter()
                conn.request("GET", path, headers={"x-functions-key": key})
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200, (path, resp.status)
                return (time.perf_counter() - t0) * 1000

            profiles = store.container("profiles")
            identifiers = store.container("identifiers")
            for i in range(50):  # warm up connections and caches
                get(f"/api/profiles/{ids[i % n_profiles]}")
            by_id, by_email, raw_profile, raw_email = [], [], [], []
            activity = store.container("activity")

            def raw_reads(*, with_identifier: bool, j: int) -> float:
                # The store calls the API itself needs: [identifier], profile, the activity of its one record.
                t0 = time.perf_counter()
                if with_identifier:
                    identifiers.read_item(f"email:{emails[j]}", f"email:{emails[j]}")
                profiles.read_item(ids[j], ids[j])
                list(activity.query_items(partition_key=f"pos|{j}", order_by="timestamp"))
                return (time.perf_counter() - t0) * 1000

            for i in range(n_requests):
                j = (i * 7919) % n_profiles
                by_id.append(get(f"/api/profiles/{ids[j]}"))
                by_email.append(get(f"/api/profiles?email={quote(emails[j])}"))
                raw_profile.append(raw_reads(with_identifier=False, j=j))
                raw_email.append(raw_reads(with_identifier=True, j=j))
        finally:
            host.terminate()
            host.wait(timeout=15)
    pid, pemail, rp, re_ = (percentiles(x) for x in (by_id, by_email, raw_profile, raw_email))
    return {
        "profiles": n_profiles, "requests_each": n_requests, "unit": "ms",
        "http_by_id": pid, "http_by_email": pemail,
        "raw_store_calls_by_id": rp, "raw_store_calls_by_email": re_,
        "api_overhead_p50_by_id_ms": round(pid["p50"] - rp["p50"], 3),
        "api_overhead_p50_by_email_ms": round(pemail["p50"] - re_["p50"], 3),
        "targets": {"p99_ms": 20, "overhead_p50_ms": 2},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=300)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args(argv)
    run_benchmark("api_latency", lambda: measure(args.profiles, args.requests), params=vars(args))


if __name__ == "__main__":
    main()
