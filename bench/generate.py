"""Data generator throughput: customers/s, rows/s and peak memory of `ucp generate` (default 20k customers;
`--customers 100000` for the issue's figure). Writes into a temporary directory unless --out is given.

    python -m bench.generate [--customers N] [--seed S] [--workers K] [--out DIR]
"""
from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from bench.harness import run_benchmark
from bench.metrics import PeakRSS, peak_rss_mb


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(customers: int, seed: int, out: str | None, workers: int = 1) -> dict:
    from shared.generate import GeneratorConfig, generate

    target = Path(out) if out else Path(tempfile.mkdtemp(prefix="ucp-bench-generate-"))
    try:
        cfg = GeneratorConfig(customers=customers, seed=seed)
        with PeakRSS() as mem:
            t0, cpu0, child0 = time.perf_counter(), time.process_time(), _children_cpu()
            manifest = generate(target, cfg, progress=False, workers=workers)
            wall = time.perf_counter() - t0
            cpu = time.process_time() - cpu0 + _children_cpu() - child0  # workers run in child processes
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        rows = manifest["totals"]["rows"]
        return {
            "customers": customers, "workers": workers, "records": manifest["counts"]["records"], "rows": rows,
            "malformed_rows": manifest["totals"]["malformed"], "files": len(manifest["files"]),
            "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "customers_per_s": round(customers / wall), "customers_per_cpu_s": round(customers / cpu),
            "rows_per_s": round(rows / wall), "output_mb": round(size / 1024**2, 1),
            "peak_rss_mb": round(mem.peak_mb, 1), "rss_growth_mb": round(mem.growth_mb, 1),
            "worker_peak_rss_mb": round(peak_rss_mb(children=True), 1) if workers > 1 else None,
            "target_customers_per_s": 5000,
        }
    finally:
        if not out:
            shutil.rmtree(target, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default=None, help="keep the data set here (default: a temp dir, deleted)")
    args = parser.parse_args(argv)
    run_benchmark("generate", lambda: measure(args.customers, args.seed, args.out, args.workers), params=vars(args))


if __name__ == "__main__":
    main()
