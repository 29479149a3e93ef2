"""Customer needs on held-out purchases of generated data, against a most-popular baseline.

Shoppers come from the data generator's behaviour model (shared.generate.behaviour: purchase times, baskets
with line-item categories, favourite categories). For every shopper with at least two purchases, the last
purchase is held out; the needs model sees everything before it and predicts 3 categories "as of" that
moment. A hit is any held-out line-item category among the 3 (hit rate@3). The baseline predicts the 3 most
purchased categories over all shoppers' training purchases.

    .venv/bin/python bench/needs.py [--shoppers 3000] [--seed 7]

Prints one JSON document: the baseline, the default model, and a small grid over half-life and popularity
weight (the default is meant to sit at or near the best of the grid).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.generate.behaviour import Clock, simulate_shopper  # noqa: E402
from shared.generate.config import GeneratorConfig  # noqa: E402
from shared.insights.common import parse_time  # noqa: E402
from shared.insights.needs import DEFAULT_MODEL, NeedsModel, popularity_of, profile_needs, purchase_categories  # noqa: E402


def shoppers(n: int, seed: int) -> list[list[dict]]:
    """Each shopper's purchases as activity docs (oldest first)."""
    cfg = GeneratorConfig(customers=n, seed=seed)
    clock = Clock(cfg)
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s = simulate_shopper(rng, rng.uniform(-365, clock.history - 30), clock, cfg, in_store=True, online=True)
        out.append([{"kind": "transaction", "id": f"{i}-{k}", "timestamp": clock.iso(p.t), "amount": p.amount,
                     "transaction_kind": "purchase", "channel": p.channel,
                     "items": [{"sku": it.sku, "category": it.category} for it in p.items]}
                    for k, p in enumerate(s.purchases)])
    return out


def split(histories: list[list[dict]]) -> list[tuple[list[dict], set[str], str]]:
    cases = []
    for h in histories:
        if len(h) >= 2:
            held = h[-1]
            cases.append((h[:-1], {it["category"] for it in held["items"]}, held["timestamp"]))
    return cases


def evaluate(cases, popularity: dict[str, float], model: NeedsModel) -> float:
    hits = 0
    for train, truth, at in cases:
        needs = profile_needs(train, parse_time(at), popularity, model)
        hits += bool(truth & set(needs["next_categories"]))
    return round(hits / len(cases), 4)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shoppers", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    started = time.perf_counter()
    cases = split(shoppers(args.shoppers, args.seed))
    counts: Counter = Counter()
    for train, _, _ in cases:
        counts.update(purchase_categories(train))
    popularity = popularity_of(counts)
    top3 = [c for c, _ in counts.most_common(3)]
    baseline = round(sum(bool(truth & set(top3)) for _, truth, _ in cases) / len(cases), 4)
    grid = []
    for half_life in (30.0, 90.0, 180.0, 365.0, 1e9):
        for pop in (0.0, 0.005, 0.05, 0.3):
            m = replace(DEFAULT_MODEL, half_life_days=half_life, popularity_weight=pop)
            grid.append({"half_life_days": half_life if half_life < 1e9 else None, "popularity_weight": pop,
                         "hit_rate_at_3": evaluate(cases, popularity, m)})
    default = evaluate(cases, popularity, DEFAULT_MODEL)
    best = max(grid, key=lambda g: g["hit_rate_at_3"])
    print(json.dumps({
        "bench": "needs", "shoppers": args.shoppers, "seed": args.seed, "held_out_purchases": len(cases),
        "categories": len(counts), "baseline_most_popular": {"top3": top3, "hit_rate_at_3": baseline},
        "model_default": {"half_life_days": DEFAULT_MODEL.half_life_days,
                          "popularity_weight": DEFAULT_MODEL.popularity_weight, "hit_rate_at_3": default},
        "lift_over_baseline": round(default - baseline, 4), "best_of_grid": best, "grid": grid,
        "seconds": round(time.perf_counter() - started, 2)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
