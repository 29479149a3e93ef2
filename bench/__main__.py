"""`python -m bench`: run every benchmark (each `bench/<name>.py` defining `main()`), or one by name.

Each benchmark runs in its own process (`python -m bench.<name>`), so one failing or exhausting memory does
not stop the others and peak-memory figures are per benchmark. Exit code: the number of failed benchmarks.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"__init__", "__main__", "harness", "metrics"}


def discover() -> list[str]:
    """Benchmark module names: bench/*.py with a top-level `def main(` (found without importing them)."""
    names = []
    for path in sorted(BENCH_DIR.glob("*.py")):
        if path.stem in NOT_BENCHMARKS or path.stem.startswith("_"):
            continue
        if re.search(r"^def main\(", path.read_text(encoding="utf-8"), re.MULTILINE):
            names.append(path.stem)
    return names


def run_one(name: str, args: list[str], env: dict[str, str]) -> int:
    cmd = [sys.executable, "-m", f"bench.{name}", *args]
    print(f"[bench] {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    code = subprocess.call(cmd, cwd=BENCH_DIR.parent, env=env)
    print(f"[bench] {name}: exit {code} after {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="one benchmark to run (default: all)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to that benchmark")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--save", action="store_true", help="also write bench/results/<name>.json")
    opts = parser.parse_args(argv)
    names = discover()
    if opts.list:
        print("\n".join(names))
        return 0
    env = dict(os.environ)
    if opts.save:
        env["UCP_BENCH_SAVE"] = "1"
    if opts.name:
        if opts.name not in names:
            parser.error(f"unknown benchmark {opts.name!r}; known: {', '.join(names)}")
        return run_one(opts.name, opts.args, env)
    failed = [name for name in names if run_one(name, [], env) != 0]
    if failed:
        print(f"[bench] failed: {', '.join(failed)}", file=sys.stderr)
    return len(failed)


if __name__ == "__main__":
    sys.exit(main())
