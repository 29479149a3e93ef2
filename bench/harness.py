"""Run one benchmark and report it the same way as every other: ONE JSON object on stdout with the figures,
the parameters and seed, elapsed time, peak memory, the machine, package versions and the git commit.

    from bench.harness import run_benchmark
    def main(argv=None):
        args = parser.parse_args(argv)
        run_benchmark("identity", lambda: measure(args.customers, args.seed), params=vars(args))

Set UCP_BENCH_SAVE=1 (or pass save=True / `python -m bench --save`) to also write bench/results/<name>.json.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import sysconfig
import time
import traceback
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from .metrics import Latencies, PeakRSS, classification_scores, cluster_scores, peak_rss_mb, percentiles  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
PACKAGES = ("azure-functions", "azure-cosmos", "azure-storage-blob", "azure-storage-queue", "pydantic", "numpy",
            "pyarrow", "phonenumbers", "rapidfuzz", "scikit-learn", "onnxruntime", "skl2onnx", "pandas")


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                            "machine": platform.machine(), "python": platform.python_version(),
                            "implementation": platform.python_implementation()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info["cpu_model"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        info["cpu_model"] = platform.processor() or None
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 1024**3, 1)
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]  # other work on the machine skews timings
    except (ImportError, OSError):
        pass
    info["python_build"] = python_build()
    return info


def python_build() -> dict[str, Any]:
    """How this interpreter was built, which moves a pure-Python figure more than most code changes: on one
    machine the same resolver ran about 12% faster on Debian's CPython 3.11 (libpython linked into the executable,
    optimized by the distribution) than on a default pyenv build (a shared libpython, no PGO) (docs/identity.md).
    `libpython` is the shared library this process loaded (None when linked in); `configure` the build flags that
    matter for speed among those configure was given (a distribution may optimize without naming them)."""
    flags = (sysconfig.get_config_var("CONFIG_ARGS") or "").replace("'", " ").split()
    return {"executable": os.path.realpath(sys.executable), "libpython": _loaded_libpython(),
            "configure": [f for f in ("--enable-optimizations", "--with-lto", "--enable-shared") if f in flags]}


def _loaded_libpython() -> str | None:
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            return next((line.split()[-1] for line in maps if "/libpython3" in line), None)
    except OSError:  # not Linux
        return None


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> dict[str, Any] | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if commit.returncode:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def _should_save(save: bool | None) -> bool:
    if save is not None:
        return save
    return os.environ.get("UCP_BENCH_SAVE", "").lower() in ("1", "true", "yes")


def run_benchmark(name: str, fn: Callable[[], dict[str, Any]], *, params: dict[str, Any] | None = None,
                  seed: int | None = None, save: bool | None = None, results_dir: Path | None = None,
                  stream=None) -> dict[str, Any]:
    """Run fn() (which returns the figures), print the report as one JSON object and return it.

    A failing benchmark still prints its report (ok=false, the error) and then re-raises, so the exit code
    says it failed."""
    stream = stream or sys.stdout
    params = dict(params or {})
    if seed is None and isinstance(params.get("seed"), int):
        seed = params["seed"]
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0, cpu0 = time.perf_counter(), time.process_time()
    error: BaseException | None = None
    figures: dict[str, Any] = {}
    try:
        figures = fn() or {}
    except BaseException as err:  # report, then re-raise
        error = err
    report = {
        "benchmark": name,
        "ok": error is None,
        "figures": figures,
        "params": params,
        "seed": seed,
        "started_at": started_at,
        "elapsed_s": round(time.perf_counter() - t0, 3),
        "cpu_s": round(time.process_time() - cpu0, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "machine": machine_info(),
        "versions": package_versions(),
        "git": git_commit(),
    }
    if error is not None:
        report["error"] = f"{type(error).__name__}: {error}"
        traceback.print_exception(error, file=sys.stderr)
    text = json.dumps(report, indent=2, default=_json_default, allow_nan=True)
    print(text, file=stream, flush=True)
    if _should_save(save):
        out_dir = results_dir or RESULTS_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{name}.json").write_text(text + "\n", encoding="utf-8")
    if error is not None:
        raise error
    return report


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)
