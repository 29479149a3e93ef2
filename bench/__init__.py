"""Benchmarks: each `bench/<name>.py` with a `main()` prints one JSON object of figures (see bench/harness.py).

    python -m bench              # every benchmark, one subprocess each
    python -m bench NAME [ARGS]  # one benchmark, e.g. python -m bench generate --customers 100000
    python -m bench.NAME [ARGS]  # the same, directly
"""
