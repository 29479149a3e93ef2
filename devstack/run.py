"""`make run`: the local stack, the Functions app and sample data flowing through it.

Starts Azurite and the Cosmos emulator, creates the containers and queues, starts the Functions host
(`func start` when Core Tools are installed, else the project's local host), generates a small multi-source
sample data set, uploads it to the landing container and prints where to look. Ctrl-C stops everything.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from devstack.stack import ROOT, LocalStack, StackError, port_in_use
from shared.settings import get_settings

SAMPLE_DIR = ROOT / ".devstack" / "sample"
DATA_DIR = ROOT / ".devstack" / "data"


def log(msg: str) -> None:
    print(f"[ucp] {msg}", flush=True)


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
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env}, stdout=open(host_log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
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


def generate_sample(customers: int, seed: int) -> Path:
    if not (SAMPLE_DIR / "manifest.json").exists():
        log(f"generating sample data: {customers} customers, seed {seed}")
        subprocess.run([sys.executable, "-m", "shared.cli", "generate", "--customers", str(customers),
                        "--seed", str(seed), "--out", str(SAMPLE_DIR)], cwd=ROOT, check=True)
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


def sample_lookup(sample: Path) -> dict[str, str]:
    """One generated customer's email, to show a lookup (fake data made by the generator)."""
    truth = sample / "truth" / "records.csv"
    for path in sorted((sample / "landing").rglob("*.jsonl")):
        if "/customers/" not in path.as_posix():
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                for key, value in row.items():
                    if "mail" in key.lower() and isinstance(value, str) and "@" in value and "test" not in value:
                        return {"email": value.strip()}
    return {"truth": str(truth)}


def wait_for_profiles(base: str, key: str, query: dict[str, str], timeout: float = 120) -> dict | None:
    from urllib.parse import urlencode

    url = f"{base}/profiles?{urlencode(query)}&code={key}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as err:
            if err.code not in (404,):
                log(f"lookup answered {err.code}")
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.run", description=__doc__)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--no-wait", action="store_true", help="stop after the sample data is served (for scripts)")
    args = parser.parse_args(argv)

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    stack = LocalStack(DATA_DIR, 10000, 10001, 8081)
    host = None
    key = os.environ.get("UCP_HOST_FUNCTION_KEYS", "").split(",")[0] or secrets.token_urlsafe(24)
    try:
        os.environ.update(stack.start())
        get_settings.cache_clear()
        # Every app setting the bindings may name (%UCP_RESOLVE_QUEUE%, schedules, ...), for the host process.
        env = {**get_settings().to_env(), "UCP_HOST_FUNCTION_KEYS": key, "UCP_HOST_MASTER_KEY": key}
        os.environ.update(env)
        log("Azurite on 127.0.0.1:10000 (blob) and :10001 (queue); Cosmos emulator on https://127.0.0.1:8081/")
        from shared.bootstrap import bootstrap

        bootstrap()
        log("storage containers, queues and Cosmos containers are ready")
        sample = generate_sample(args.customers, args.seed)
        host = start_host(env, args.port)
        base = f"http://127.0.0.1:{args.port}/api"
        n = upload_landing(sample)
        log(f"uploaded {n} files to the landing container; ingestion and identity resolution are running")
        query = sample_lookup(sample)
        profile = wait_for_profiles(base, key, query) if "email" in query else None
        log("ready. Try:")
        print(f"  curl '{base}/health'")
        print(f"  curl -H 'x-functions-key: {key}' '{base}/ingestions'")
        if "email" in query:
            print(f"  curl -H 'x-functions-key: {key}' '{base}/profiles?email={query['email']}'")
        if profile:
            print(f"  curl -H 'x-functions-key: {key}' '{base}/profiles/{profile.get('id')}'")
            print(f"  dashboard: {base}/dashboard?code={key}")
            print(json.dumps({k: profile.get(k) for k in ("id", "identifiers", "churn") if k in profile}, indent=2)[:2000])
        else:
            log("no profile answered yet; see .devstack/data/host.log")
        if args.no_wait:
            return 0 if profile else 1
        log("Ctrl-C stops everything")
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while True:
            if host.poll() is not None:
                log(f"the Functions host exited with code {host.returncode}; see .devstack/data/host.log")
                return 1
            time.sleep(1)
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        log("stopping")
        return 0
    finally:
        if host is not None and host.poll() is None:
            os.killpg(host.pid, signal.SIGTERM)
            try:
                host.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(host.pid, signal.SIGKILL)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
