"""Real-time events on the local stack: events/s accepted over HTTP, and the delay from acceptance to the event
being visible on the profile (issue 8 target: within 2 s).

Starts Azurite + the Cosmos emulator + the local Functions host with the real app; identifies `--people`
customers through POST /api/events, then
- throughput: posts batches of track/page events (`--batch` per request) from `--clients` threads;
- delay: posts one event at a time and polls GET /api/profiles/{id} until it shows in recent activity.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from bench.harness import run_benchmark
from bench.metrics import percentiles
from devstack.apphost import AppHost, isolated_settings
from devstack.stack import LocalStack

KEY = "bench-events-key"


def _client(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def _request(conn, method: str, path: str, body: object | None = None) -> tuple[int, dict]:
    payload = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=payload, headers={"x-functions-key": KEY, "content-type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, (json.loads(data) if data else {})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def measure(people: int, batches: int, batch: int, clients: int, probes: int) -> dict:
    from shared.bootstrap import bootstrap

    with LocalStack() as stack, tempfile.TemporaryDirectory() as tmp:
        settings = isolated_settings(stack.env, f"ev{uuid.uuid4().hex[:6]}")
        bootstrap(settings)
        with AppHost(settings, Path(tmp), name="events", keys={"UCP_HOST_FUNCTION_KEYS": KEY}, verbose=False) as host:
            port = host.port
            conn = _client(port)
            profiles = {}
            for i in range(people):
                status, body = _request(conn, "POST", "/api/events", {
                    "type": "identify", "anonymousId": f"dev-{i}", "userId": f"u-{i}", "timestamp": _now(),
                    "traits": {"email": f"shopper{i}@shopmail.net", "firstName": f"Given{i}", "lastName": f"Family{i}"}})
                assert status == 200, body
                profiles[i] = body["results"][0]["profile_id"]

            # Throughput: batches of anonymous and known events from several clients at once.
            accepted = [0] * clients
            latencies: list[float] = []
            lock = threading.Lock()

            def worker(c: int) -> None:
                conn = _client(port)
                for b in range(batches // clients):
                    events = [{"type": "track" if k % 2 else "page", "event": "Product Viewed", "name": "PDP",
                               "userId": f"u-{(c * 7 + b + k) % people}", "timestamp": _now(),
                               "context": {"channel": "web" if k % 3 else "mobile"},
                               "properties": {"sku": f"sku-{k}", "category": "shoes"}} for k in range(batch)]
                    t0 = time.perf_counter()
                    status, body = _request(conn, "POST", "/api/events", {"batch": events})
                    with lock:
                        latencies.append((time.perf_counter() - t0) * 1000)
                    accepted[c] += body.get("accepted", 0) if status == 200 else 0

            t0 = time.perf_counter()
            threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0

            # Delay: one event, then poll the profile until it shows the event.
            delays = []
            for p in range(probes):
                i = p % people
                marker = f"Probe {p}"
                sent = time.perf_counter()
                status, _ = _request(conn, "POST", "/api/events", {"type": "track", "event": marker,
                                                                   "userId": f"u-{i}", "timestamp": _now()})
                assert status == 200
                while True:
                    status, view = _request(conn, "GET", f"/api/profiles/{profiles[i]}")
                    if any(a.get("event") == marker for a in view.get("recent_activity", [])):
                        delays.append((time.perf_counter() - sent) * 1000)
                        break
                    if time.perf_counter() - sent > 10:
                        delays.append(float("inf"))
                        break
                    time.sleep(0.01)
    total = sum(accepted)
    return {
        "people": people, "events_accepted": total, "expected": (batches // clients) * clients * batch,
        "events_per_s": round(total / elapsed, 1), "clients": clients, "batch_size": batch,
        "request_ms": percentiles(latencies),
        "event_to_profile_ms": percentiles(delays),
        "target_event_to_profile_ms": 2000,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--batches", type=int, default=80)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--probes", type=int, default=30)
    args = parser.parse_args(argv)
    run_benchmark("events", lambda: measure(args.people, args.batches, args.batch, args.clients, args.probes),
                  params=vars(args))


if __name__ == "__main__":
    main()
