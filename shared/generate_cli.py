"""`ucp generate`: write a realistic multi-source retail data set with ground truth (see shared/generate)."""
from __future__ import annotations

import json
import sys
import time
from datetime import date


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate multi-source retail data with ground truth (deterministic per seed)")
    p.add_argument("--customers", type=int, default=1000, help="number of true people (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory (landing/, truth/, manifest.json)")
    p.add_argument("--malformed-rate", type=float, default=0.005, help="share of rows made malformed (default 0.005)")
    p.add_argument("--churn-window-days", type=int, default=90, help="churn = no purchase this long after the end")
    p.add_argument("--end-date", type=date.fromisoformat, default=None, help="last day of the data (YYYY-MM-DD)")
    p.add_argument("--history-days", type=int, default=730, help="days of history before the end date")
    p.add_argument("--rows-per-file", type=int, default=250_000, help="landing files roll over after this many rows")
    p.add_argument("--workers", type=int, default=1,
                   help="generate in this many processes (same people and truth; landing files split per worker)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from .generate import DEFAULT_END_DATE, GeneratorConfig, generate

    if args.customers < 1:
        raise ValueError("--customers must be at least 1")
    cfg = GeneratorConfig(customers=args.customers, seed=args.seed, malformed_rate=args.malformed_rate,
                          churn_window_days=args.churn_window_days, end_date=args.end_date or DEFAULT_END_DATE,
                          history_days=args.history_days, rows_per_file=args.rows_per_file)
    started = time.perf_counter()
    manifest = generate(args.out, cfg, progress=not args.no_progress, workers=args.workers)
    seconds = time.perf_counter() - started
    summary = {"out": str(args.out), "people": manifest["counts"]["people"], "records": manifest["counts"]["records"],
               "rows": manifest["totals"]["rows"], "malformed": manifest["totals"]["malformed"],
               "files": len(manifest["files"]), "seconds": round(seconds, 2),
               "customers_per_s": round(args.customers / seconds, 1) if seconds else None}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    from .cli import main

    sys.exit(main(["generate", *sys.argv[1:]]))
