"""Generate a data set: landing files per source and entity, ground truth, and a manifest. Streaming: one
household at a time, every row written as soon as it exists, so memory does not grow with the customer count.

    DIR/landing/<source>/<entity>/<stem>_<end date>_<part>.<ext>   (what ucp ingests)
    DIR/truth/records.csv   source, entity, record_key, person_id, malformed
    DIR/truth/people.csv    the true person behind the records (and household, hard-negative flags)
    DIR/truth/churn.csv     person_id, churned, last_purchase, as_of, window_days
    DIR/truth/devices.csv   anonymous_id, person_id, channel, shared
    DIR/manifest.json       parameters, rows and malformed rows per file, noise and hard-negative counts
"""
from __future__ import annotations

import csv
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

from .behaviour import Clock, Purchase, review_of, simulate_shopper
from .config import GeneratorConfig
from .noise import e164
from .people import Household, Person, iter_households, plan_shards, scramble
from .sessions import person_sessions
from .sources import FILE_SPECS, SourceRecord, customer_row, customer_view, plan_records, record_at
from .writers import Sink, open_sink
from . import banks

GENERATOR_VERSION = 1


def household_rng(seed: int, index: int, stream: int) -> random.Random:
    """Independent, reproducible random stream per (seed, household, purpose)."""
    return random.Random((seed << 72) | (index << 8) | stream)


class _Truth:
    def __init__(self, truth_dir: Path):
        truth_dir.mkdir(parents=True, exist_ok=True)
        self._files = {}
        self.writers = {}
        headers = {
            "records": ["source", "entity", "record_key", "person_id", "malformed"],
            "people": ["person_id", "household_id", "country", "sex", "given_name", "family_name", "birth_date",
                       "email", "phone", "city", "postcode", "flags"],
            "churn": ["person_id", "churned", "last_purchase", "as_of", "window_days"],
            "devices": ["anonymous_id", "person_id", "channel", "shared"],
        }
        for name, header in headers.items():
            f = open(truth_dir / f"{name}.csv", "w", newline="", encoding="utf-8", buffering=1 << 20)
            self._files[name] = f
            self.writers[name] = csv.writer(f, lineterminator="\n")
            self.writers[name].writerow(header)

    def close(self):
        for f in self._files.values():
            f.close()


class Generator:
    """Writes one data set, or one shard of it (households [start, stop) when `span` is given).

    `run()` streams households (`_households` is a generator: one household in memory at a time)."""

    def __init__(self, cfg: GeneratorConfig, out_dir: Path, *, span: tuple[int, int, int] | None = None,
                 shard: int | None = None):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.clock = Clock(cfg)
        self.span = span or (0, None, 0)
        self.tag = cfg.end_date.strftime("%Y%m%d") + (f"_s{shard + 1}" if shard is not None else "")
        self.truth_dir = self.out / "truth" / (f".shard{shard + 1}" if shard is not None else "")
        self.stats: Counter = Counter()
        self.sinks: dict[str, Sink] = {}
        self.truth: _Truth | None = None

    def _sink(self, name: str) -> Sink:
        sink = self.sinks.get(name)
        if sink is None:
            sink = self.sinks[name] = open_sink(FILE_SPECS[name], self.out, self.out / "landing",
                                                rows_per_file=self.cfg.rows_per_file,
                                                malformed_rate=self.cfg.malformed_rate, tag=self.tag)
        return sink

    def _households(self) -> Iterator[Household]:
        """Generates and writes household after household, yielding each once its rows are written."""
        for household in iter_households(self.cfg, *self.span):
            rng = household_rng(self.cfg.seed, household.index, 1)
            self.stats["households"] += 1
            self.stats[f"household_size_{len(household.people)}"] += 1
            for person in household.people:
                self._person(rng, person)
            yield household

    def write(self, on_people: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
        """Writes every row of this generator's households; returns the landing files written."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.truth = _Truth(self.truth_dir)
        try:
            for household in self._households():
                if on_people is not None:
                    on_people(len(household.people))
        finally:
            files = [f for name in sorted(self.sinks) for f in self.sinks[name].close()]
            self.truth.close()
        return files

    def run(self, progress: bool = True) -> dict[str, Any]:
        bar = _progress_bar(self.cfg) if progress else None
        try:
            files = self.write(bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
        return write_manifest(self.out, self.cfg, self.stats, files, self.clock)

    # ------------------------------------------------------------ one person
    def _person(self, rng: random.Random, p: Person) -> None:
        cfg, clock, tw = self.cfg, self.clock, self.truth.writers
        self.stats["people"] += 1
        for flag in p.flags:
            self.stats[f"people_{flag}"] += 1
        plan = plan_records(rng, p, cfg, clock)
        shopper = simulate_shopper(rng, p.acquired_at, clock, cfg, in_store="pos" in plan, online="ecommerce" in plan)
        store = f"{p.country}{scramble(p.index, 1000, 7) % 60 + 1:03d}"
        extra = {"store": store}
        if "ecommerce" in plan:
            extra["ecommerce_id"] = plan["ecommerce"][0].record_key
        cards = [r.card for r in plan.get("loyalty", [])]

        for source, records in plan.items():
            self.stats[f"people_in_{source}"] += 1
            if len(records) > 1:
                self.stats[f"duplicate_accounts_{source}"] += 1
            for rec in records:
                self.stats["records"] += 1
                view = customer_view(rng, p, rec, cfg, self.stats)
                rec_extra = {"store": store}
                if source == "pos" and cards and rng.random() < 0.6:
                    rec_extra["card"] = cards[-1]
                if source == "crm" and "ecommerce_id" in extra and rng.random() < 0.3:
                    rec_extra["ecommerce_id"] = extra["ecommerce_id"]
                row = customer_row(rng, p, rec, view, clock, rec_extra)
                kind = self._sink(f"{source}.customers").write(rng, row)
                tw["records"].writerow([source, "customers", rec.record_key, p.person_id, int(kind is not None)])

        currency = banks.CURRENCY[p.country]
        online_orders = self._transactions(rng, p, plan, shopper.purchases, store, currency)
        if "ecommerce" in plan:
            self._events(rng, p, plan["ecommerce"], online_orders, shopper, currency)
            self._reviews(rng, p, plan["ecommerce"], online_orders)

        last = shopper.purchases[-1].t if shopper.purchases else None
        tw["churn"].writerow([p.person_id, int(shopper.churned), clock.date(last).isoformat() if last is not None else "",
                              cfg.end_date.isoformat(), cfg.churn_window_days])
        self.stats["churned"] += shopper.churned
        addr = p.addresses[-1][1]
        tw["people"].writerow([p.person_id, p.household_id, p.country, p.sex, p.given_name, p.family_name,
                               p.birth_date.isoformat(), p.emails[-1][1], e164(p.mobile), addr.city, addr.postcode,
                               "|".join(p.flags)])

    def _transactions(self, rng, p: Person, plan, purchases: list[Purchase], store: str, currency: str):
        clock = self.clock
        online_orders: list[tuple[Purchase, str]] = []
        for k, pur in enumerate(purchases):
            self.stats["purchases"] += 1
            if pur.channel == "store":
                rec = record_at(plan["pos"], pur.t)
                shop = store if rng.random() < 0.8 else f"{p.country}{1 + int(rng.random() * 60):03d}"
                receipt = f"{shop}-{scramble(p.index * 512 + k, 10**10, 5):010d}"
                row = {"receipt_no": receipt, "customer_no": rec.record_key,
                       "txn_time": clock.format(pur.t, "%d/%m/%Y", "{h:02d}:{m:02d}"), "store_id": shop,
                       "till_no": str(1 + int(rng.random() * 8)), "channel": "store", "type": "purchase",
                       "category": pur.items[0].category, "total": f"{pur.amount:.2f}", "currency": currency}
                self._sink("pos.transactions").write(rng, row)
                if pur.returned_at is not None:
                    self.stats["returns"] += 1
                    self._sink("pos.transactions").write(rng, {
                        **row, "receipt_no": receipt + "-R", "txn_time": clock.format(pur.returned_at, "%d/%m/%Y", "{h:02d}:{m:02d}"),
                        "type": pur.return_kind, "total": f"{-pur.return_amount:.2f}"})
                continue
            rec = record_at(plan["ecommerce"], pur.t)
            order_id = f"ORD{scramble(p.index * 512 + k, 10**10, 6):010d}"
            online_orders.append((pur, order_id))
            items = [{"sku": i.sku, "category": i.category, "quantity": i.quantity, "price": i.price} for i in pur.items]
            row = {"order_id": order_id, "customer_id": rec.record_key, "created_at": clock.iso(pur.t),
                   "kind": "purchase", "source_name": pur.channel, "total_price": f"{pur.amount:.2f}",
                   "currency": currency, "main_category": pur.items[0].category, "line_items": items}
            self._sink("ecommerce.transactions").write(rng, row)
            if pur.returned_at is not None:
                self.stats["returns"] += 1
                self._sink("ecommerce.transactions").write(rng, {
                    **row, "order_id": order_id + "-R", "created_at": clock.iso(pur.returned_at),
                    "kind": pur.return_kind, "total_price": f"{-pur.return_amount:.2f}"})
        return online_orders

    def _events(self, rng, p: Person, accounts: list[SourceRecord], orders, shopper, currency: str) -> None:
        sink = self._sink("ecommerce.events")
        for event, device in person_sessions(rng, p, accounts, orders, shopper.has_app, shopper.dropped_at,
                                             self.clock, self.cfg, currency):
            if device is not None:
                self.truth.writers["devices"].writerow([device[0], p.person_id, device[1], int(device[2])])
            else:
                sink.write(rng, event)
                self.stats["events"] += 1

    def _reviews(self, rng, p: Person, accounts: list[SourceRecord], orders) -> None:
        for pur, order_id in orders:
            if rng.random() >= self.cfg.review_rate:
                continue
            t = pur.t + rng.uniform(2, 20)
            if t >= self.clock.history:
                continue
            rating, title, text = review_of(rng, pur.returned_at is not None)
            self._sink("ecommerce.reviews").write(rng, {
                "review_id": f"RV{order_id[3:]}", "customer_id": record_at(accounts, t).record_key,
                "product_sku": pur.items[0].sku, "rating": rating, "title": title, "body": text,
                "submitted_at": self.clock.iso(t)})
            self.stats["reviews"] += 1

def _progress_bar(cfg: GeneratorConfig):
    from tqdm import tqdm

    return tqdm(total=cfg.customers, unit="customer", file=sys.stderr, mininterval=0.5)


NOISE_KINDS = ("typo", "nickname", "case", "whitespace", "swap_names", "diacritics_folded", "maiden_name",
               "placeholder_email", "placeholder_phone", "placeholder_birth_date", "family_email", "old_email",
               "reregistration_email", "plus_tag", "gmail_dots", "email_case", "email_typo", "home_phone",
               "date_swap", "old_address", "street_abbreviation", "street_typo")


def write_manifest(out: Path, cfg: GeneratorConfig, stats: Counter, files: list[dict[str, Any]], clock: Clock,
                   workers: int = 1) -> dict[str, Any]:
    records = max(1, stats["records"])
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "seed": cfg.seed,
        "workers": workers,
        "params": cfg.to_dict(),
        "as_of": cfg.end_date.isoformat(),
        "history_start": clock.start.isoformat(),
        "counts": {k: v for k, v in sorted(stats.items()) if k not in NOISE_KINDS and k != "nickname_eligible"},
        "noise": {k: {"records": stats[k], "rate": round(stats[k] / records, 5)} for k in NOISE_KINDS},
        "nickname_eligible_records": stats["nickname_eligible"],
        "files": files,
        "totals": {"rows": sum(f["rows"] for f in files), "malformed": sum(f["malformed"] for f in files)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


_shard_progress = None  # a shared counter in worker processes


def _init_worker(counter) -> None:
    global _shard_progress
    _shard_progress = counter


def _count_people(n: int) -> None:
    with _shard_progress.get_lock():
        _shard_progress.value += n


def _run_shard(cfg: GeneratorConfig, out: str, span: tuple[int, int, int], shard: int):
    gen = Generator(cfg, Path(out), span=span, shard=shard)
    files = gen.write(_count_people)
    return files, dict(gen.stats)


def _generate_parallel(out: Path, cfg: GeneratorConfig, workers: int, progress: bool) -> dict[str, Any]:
    """Shards of households generated in worker processes, each writing its own landing parts (`_s<k>` in the
    name) and truth files, which are then concatenated in order: the truth is the same as with one worker."""
    import multiprocessing
    import shutil
    import time
    from concurrent.futures import ProcessPoolExecutor

    spans = plan_shards(cfg, workers)
    out.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads or open files
    counter = ctx.Value("q", 0)
    bar = _progress_bar(cfg) if progress else None
    stats: Counter = Counter()
    files: list[dict[str, Any]] = []
    try:
        with ProcessPoolExecutor(len(spans), mp_context=ctx, initializer=_init_worker, initargs=(counter,)) as pool:
            futures = [pool.submit(_run_shard, cfg, str(out), span, k) for k, span in enumerate(spans)]
            while not all(f.done() for f in futures):
                time.sleep(0.25)
                if bar is not None:
                    bar.update(counter.value - bar.n)
            for f in futures:
                shard_files, shard_stats = f.result()
                files += shard_files
                stats.update(shard_stats)
        if bar is not None:
            bar.update(counter.value - bar.n)
    finally:
        if bar is not None:
            bar.close()
    truth = out / "truth"
    for name in ("records", "people", "churn", "devices"):
        with open(truth / f"{name}.csv", "wb") as merged:
            for k in range(len(spans)):
                with open(truth / f".shard{k + 1}" / f"{name}.csv", "rb") as part:
                    header = part.readline()
                    if k == 0:
                        merged.write(header)
                    shutil.copyfileobj(part, merged)
    for k in range(len(spans)):
        shutil.rmtree(truth / f".shard{k + 1}")
    files.sort(key=lambda f: f["path"])
    return write_manifest(out, cfg, stats, files, Clock(cfg), workers=len(spans))


def generate(out_dir: str | Path, cfg: GeneratorConfig, *, progress: bool = True, workers: int = 1) -> dict[str, Any]:
    """Write a data set to out_dir and return its manifest. With workers > 1 the households are split into
    that many shards generated in parallel processes: the people, records and truth are identical to one
    worker's; the landing files are split into per-shard parts instead."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if workers == 1:
        return Generator(cfg, Path(out_dir)).run(progress=progress)
    return _generate_parallel(Path(out_dir), cfg, workers, progress)
