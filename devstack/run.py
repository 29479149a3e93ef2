"""`make run`: the local stack, the Functions app and sample data flowing through it.

Starts Azurite and the Cosmos emulator, creates the containers and queues, starts the Functions host
(`func start` when Core Tools are installed, else the project's local host), generates a small multi-source
sample data set, uploads it to the landing container and prints where to look. Ctrl-C, SIGTERM or closing the
terminal (SIGHUP) stops everything; if this process is killed outright, its servers get SIGTERM all the same.
Azurite and the Cosmos emulator keep their data in .devstack/data between runs (`make clean` resets it).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlencode

from devstack import lifeline
from devstack.host_workers import SETTING as WORKER_PROCESS_COUNT, suggested_process_count
from devstack.stack import (ROOT, LocalStack, StackError, ignore_stop_signals, port_in_use, stop_on_signals,
                            terminate)
from shared.settings import get_settings

SAMPLE_DIR = ROOT / ".devstack" / "sample"
DATA_DIR = ROOT / ".devstack" / "data"


def log(msg: str) -> None:
    try:
        print(f"[ucp] {msg}", flush=True)
    except OSError:  # the terminal is gone (SIGHUP): keep stopping quietly
        pass


def start_host(env: dict[str, str], port: int) -> subprocess.Popen:
    if port_in_use(port):
        raise StackError(f"port {port} (Functions host) is in use: stop what holds it or pass --port.")
    if shutil.which("func"):
        settings = {"IsEncrypted": False, "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", **env}}
        (ROOT / "local.settings.json").write_text(json.dumps(settings, indent=2))
        args = ["func", "start", "--port", str(port)]
        log("Core Tools found: starting the real host with func start")
    else:
        args = [sys.executable, "-m", "devstack.host", "--app", "function_app:app", "--port", str(port)]
        log("Core Tools not installed: starting the local host (devstack/host.py)")
    host_log = DATA_DIR / "host.log"
    with open(host_log, "wb") as out:  # the host keeps its own descriptor
        proc = lifeline.popen(args, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(f"the Functions host exited with code {proc.returncode}; see {host_log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    if r.status == 200:
                        return proc
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise StackError(f"the Functions host did not answer on port {port} within 60 s; see {host_log}")
    except BaseException:  # not started (or Ctrl-C meanwhile): stop it, the caller never gets it
        terminate(proc, timeout=15)
        raise


def generate_sample(customers: int, seed: int) -> Path:
    """A multi-source sample whose history ends today, so churn scores mean something now."""
    today = datetime.now(timezone.utc).date().isoformat()
    manifest = SAMPLE_DIR / "manifest.json"
    if not manifest.exists() or json.loads(manifest.read_text()).get("as_of") != today:
        shutil.rmtree(SAMPLE_DIR, ignore_errors=True)
        log(f"generating sample data: {customers} customers, seed {seed}, history up to {today}")
        subprocess.run([sys.executable, "-m", "shared.cli", "generate", "--customers", str(customers),
                        "--seed", str(seed), "--end-date", today, "--out", str(SAMPLE_DIR), "--no-progress"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return SAMPLE_DIR


def upload_landing(sample: Path) -> int:
    from shared.settings import get_settings
    from shared.storage import blob_service

    container = blob_service().get_container_client(get_settings().landing_container)
    n = 0
    for path in sorted((sample / "landing").rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                container.upload_blob(path.relative_to(sample / "landing").as_posix(), f, overwrite=True)
            n += 1
    return n


def sample_lookups(sample: Path, limit: int = 10) -> list[dict[str, str]]:
    """Lookups of generated customers (fake data made by the generator), by email, in file order: the first is
    shown; the others stand in when it answers nothing (that person is not resolved yet, or was erased in an
    earlier run)."""
    found: list[dict[str, str]] = []
    for path in sorted((sample / "landing").rglob("*.jsonl")):
        if "/customers/" not in path.as_posix():
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(row, dict):
                    continue
                for key, value in row.items():
                    if "mail" in key.lower() and isinstance(value, str) and "@" in value and "test" not in value:
                        query = {"email": value.strip()}
                        if query not in found:
                            found.append(query)
                        break
                if len(found) >= limit:
                    return found
    return found


def wait_until_settled(base: str, key: str, files: int, timeout: float = 900) -> bool:
    """Every uploaded file has a finished ingestion report and the resolve queue is empty."""
    from shared.storage import queue_client

    queue = queue_client(get_settings().resolve_queue)
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/ingestions?limit=100&code={key}", timeout=10) as r:
                reports = json.loads(r.read()).get("items", [])
        except (urllib.error.URLError, OSError, ValueError):
            reports = []
        done = [x for x in reports if x.get("status") in ("completed", "failed")]
        pending = queue.get_queue_properties().approximate_message_count
        quiet = quiet + 1 if len(done) >= files and pending == 0 else 0
        if quiet >= 3:
            return True
        time.sleep(1)
    return False


def run_now(port: int, key: str, function: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/admin/functions/{function}", method="POST",
                                 data=b'{"input": ""}',
                                 headers={"x-functions-key": key, "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status


def show_churn(base: str, key: str, port: int, timeout: float = 600) -> None:
    """Train the churn model now (the nightly timer's job, through the admin endpoint) and show a scored profile."""
    from shared.store import open_store

    run_now(port, key, "churn_retrain")
    log("churn model training started (POST /admin/functions/churn_retrain); scores follow")
    profiles = open_store().container("profiles")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scored = list(profiles.query_items(("churn.risk", "=", "high"), limit=1)) or \
            list(profiles.query_items(("churn.score", "defined", None), limit=1))
        if scored:
            pid = scored[0]["id"]
            log(f"churn scored; for example curl -H 'x-functions-key: {key}' '{base}/profiles/{pid}':")
            print(json.dumps(scored[0]["churn"], indent=2)[:1500])
            run_now(port, key, "refresh_insights")
            log(f"insights refresh started (segments, journeys, needs): {base}/dashboard?code={key}")
            return
        time.sleep(3)
    log("no churn score yet: see .devstack/data/host.log (the model refuses too little data, with a report)")


_REPORTED: set[int] = set()


def lookup_profile(base: str, key: str, query: dict[str, str]) -> dict | None:
    """GET /profiles?<query>: the profile, or None when nobody has it (yet, or any more: 404, 410)."""
    try:
        with urllib.request.urlopen(f"{base}/profiles?{urlencode(query)}&code={key}", timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as err:
        if err.code not in (404, 410) and err.code not in _REPORTED:
            _REPORTED.add(err.code)
            log(f"lookup answered {err.code}")
    except (urllib.error.URLError, OSError, ValueError):
        pass
    return None


def wait_for_profiles(base: str, key: str, queries: list[dict[str, str]], timeout: float = 120, *,
                      lookup: Optional[Callable[[dict[str, str]], dict | None]] = None,
                      pause: float = 1.0) -> tuple[dict[str, str], dict] | None:
    """The first sample customer whose lookup answers, with their profile. Each round asks every candidate in
    order, so a customer erased by an earlier run (404 for good) never holds up the others."""
    lookup = lookup or (lambda query: lookup_profile(base, key, query))
    deadline = time.monotonic() + timeout
    while queries:
        for query in queries:
            profile = lookup(query)
            if profile:
                return query, profile
        if time.monotonic() >= deadline:
            break
        time.sleep(pause)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.run", description=__doc__)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--no-wait", action="store_true", help="stop after the sample data is served (for scripts)")
    args = parser.parse_args(argv)

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # SIGTERM and SIGHUP (the terminal closing) stop everything too (the finally below), not only Ctrl-C.
    stop_on_signals()
    # Cosmos keeps its data in .devstack/data too (saved on the way down, loaded on start), like Azurite: a second
    # `make run` starts where the first stopped; `make clean` starts afresh.
    stack = LocalStack(DATA_DIR, 10000, 10001, 8081, cosmos_args=["--data-file", str(DATA_DIR / "cosmos.json")])
    host = None
    key = os.environ.get("UCP_HOST_FUNCTION_KEYS", "").split(",")[0] or secrets.token_urlsafe(24)
    try:
        os.environ.update(stack.start())
        get_settings.cache_clear()
        # Every app setting the bindings may name (%UCP_RESOLVE_QUEUE%, schedules, ...), for the host process.
        env = {**get_settings().to_env(), "UCP_HOST_FUNCTION_KEYS": key, "UCP_HOST_MASTER_KEY": key,
               WORKER_PROCESS_COUNT: os.environ.get(WORKER_PROCESS_COUNT) or str(suggested_process_count())}
        os.environ.update(env)
        log(f"queue functions run in {env[WORKER_PROCESS_COUNT]} worker processes ({WORKER_PROCESS_COUNT})")
        log("Azurite on 127.0.0.1:10000 (blob) and :10001 (queue); Cosmos emulator on https://127.0.0.1:8081/")
        from shared.bootstrap import bootstrap

        bootstrap()
        log("storage containers, queues and Cosmos containers are ready")
        sample = generate_sample(args.customers, args.seed)
        host = start_host(env, args.port)
        base = f"http://127.0.0.1:{args.port}/api"
        n = upload_landing(sample)
        log(f"uploaded {n} files to the landing container; ingestion and identity resolution are running")
        candidates = sample_lookups(sample)
        found = wait_for_profiles(base, key, candidates)
        query, profile = found if found else (candidates[0] if candidates else None, None)
        if found and query != candidates[0]:
            first = urlencode(candidates[0], safe="@")
            # Files are resolved in parallel: another customer's profile can answer first. Only a later answer
            # tells an erased person from one not resolved yet, so the message says both.
            log(f"the first sample customer ({first}) has no profile yet (still being resolved, or erased in an "
                "earlier run): showing another")
        log("ready. Try:")
        print(f"  curl '{base}/health'")
        print(f"  curl -H 'x-functions-key: {key}' '{base}/ingestions'")
        if query:
            print(f"  curl -H 'x-functions-key: {key}' '{base}/profiles?{urlencode(query, safe='@')}'")
            # The same lookup with the identifier out of the URL (and so out of access logs): production's way.
            print(f"  curl -H 'x-functions-key: {key}' -H 'content-type: application/json' "
                  f"-d {shlex.quote(json.dumps(query))} '{base}/profiles/lookup'")
        if profile:
            print(f"  curl -H 'x-functions-key: {key}' '{base}/profiles/{profile.get('id')}'")
            print(f"  dashboard: {base}/dashboard?code={key}")
            print(f"  review list (records left to a person): {base}/dashboard?code={key}&tab=reviews")
            shown = {k: profile.get(k) for k in ("id", "identifiers", "churn") if k in profile}
            print(json.dumps(shown, indent=2)[:2000])
        else:
            log("no profile answered yet; see .devstack/data/host.log")
        if args.no_wait:
            return 0 if profile else 1
        if profile:
            log("waiting for every file to be ingested and resolved")
            if wait_until_settled(base, key, n):
                show_churn(base, key, args.port)
        log("Ctrl-C stops everything")
        while True:
            if host.poll() is not None:
                log(f"the Functions host exited with code {host.returncode}; see .devstack/data/host.log")
                return 1
            time.sleep(1)
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        ignore_stop_signals()  # a second signal must not cut the clean-up short
        log("stopping (the Cosmos emulator saves its data on the way down)")
        return 0
    finally:
        ignore_stop_signals()
        if host is not None:
            terminate(host, timeout=15)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
