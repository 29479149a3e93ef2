"""The data generator: deterministic per seed, streaming, noise and hard negatives at the configured rates,
ground truth consistent with the landing files, malformed rows at the configured rate, files ucp can ingest."""
from __future__ import annotations

import csv
import gzip
import hashlib
import inspect
import io
import json
import math
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import phonenumbers
import pyarrow.parquet as pq
import pytest

from shared.generate import FILE_SPECS, GeneratorConfig, generate, load_churn, load_people, load_truth_records
from shared.generate import banks
from shared.generate.noise import fold_diacritics, nicknames_of, typo, unique_phone
from shared.generate.people import iter_households

ROOT = Path(__file__).resolve().parent.parent
N = 2500


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate(out, GeneratorConfig(customers=N, seed=11), progress=False)
    return out


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _text_lines(path: Path, encoding: str) -> list[str]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode(encoding, errors="replace").splitlines()


def read_rows(root: Path, key: str, *, valid_only: bool = True) -> list[dict]:
    """All rows of one logical file (every part) as dicts; rows a reader would reject are skipped."""
    spec = FILE_SPECS[key]
    rows: list[dict] = []
    for path in sorted((root / "landing" / spec.source / spec.entity).iterdir()):
        if spec.format == "parquet":
            rows += pq.read_table(path).to_pylist()
            continue
        lines = _text_lines(path, spec.encoding)
        if spec.format == "jsonl":
            for line in lines:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    if not valid_only:
                        rows.append({"__malformed__": line})
            continue
        reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=spec.delimiter)
        header = next(reader)
        assert header == spec.columns
        for values in reader:
            if len(values) == len(header):
                rows.append(dict(zip(header, values)))
            elif not valid_only:
                rows.append({"__malformed__": values})
    return rows


# ---------------------------------------------------------------- determinism and layout

def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    cfg = GeneratorConfig(customers=250, seed=3)
    generate(tmp_path / "a", cfg, progress=False)
    generate(tmp_path / "b", cfg, progress=False)
    generate(tmp_path / "c", GeneratorConfig(customers=250, seed=4), progress=False)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert len(a) == 13  # 8 landing files + 4 truth files + manifest
    landing = [k for k in a if k.startswith("landing/")]
    assert all(a[k] != c.get(k) for k in landing)


def test_layout_and_manifest_counts_match_files(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["seed"] == 11 and manifest["params"]["customers"] == N
    paths = {f["path"] for f in manifest["files"]}
    for key, spec in FILE_SPECS.items():
        assert any(p.startswith(f"landing/{spec.source}/{spec.entity}/") for p in paths), key
    for f in manifest["files"]:
        path = dataset / f["path"]
        spec = FILE_SPECS[f"{f['source']}.{f['entity']}"]
        if spec.format == "parquet":
            rows = pq.ParquetFile(path).metadata.num_rows
        else:
            # line count; rows never contain newlines (nothing in the generated values has one)
            rows = len(_text_lines(path, spec.encoding)) - (spec.format == "csv")
        assert rows == f["rows"], f["path"]
    assert manifest["totals"]["rows"] == sum(f["rows"] for f in manifest["files"])


def test_files_roll_over_into_parts(tmp_path):
    manifest = generate(tmp_path, GeneratorConfig(customers=200, seed=1, rows_per_file=300), progress=False)
    events = [f for f in manifest["files"] if f["entity"] == "events"]
    assert len(events) >= 2 and all(f["rows"] <= 300 for f in events)
    for f in events:
        assert (tmp_path / f["path"]).exists()
    pos = [f for f in manifest["files"] if f["source"] == "pos" and f["entity"] == "customers"]
    for f in pos:  # every part is a complete CSV with its header
        assert _text_lines(tmp_path / f["path"], "utf-8-sig")[0].startswith("customer_no,")


def _data_lines(root: Path, key: str) -> list[str]:
    spec = FILE_SPECS[key]
    lines: list[str] = []
    for path in sorted((root / "landing" / spec.source / spec.entity).iterdir()):
        if spec.format == "parquet":
            lines += [json.dumps(r, default=str, sort_keys=True) for r in pq.read_table(path).to_pylist()]
        else:
            lines += _text_lines(path, spec.encoding)[spec.format == "csv":]
    return sorted(lines)


def test_parallel_workers_write_the_same_people_and_truth(tmp_path):
    cfg = GeneratorConfig(customers=400, seed=8)
    one = generate(tmp_path / "one", cfg, progress=False)
    two = generate(tmp_path / "two", cfg, progress=False, workers=2)
    assert two["workers"] == 2 and one["counts"] == two["counts"] and one["totals"] == two["totals"]
    for name in ("records", "people", "churn", "devices"):
        assert (tmp_path / "one" / "truth" / f"{name}.csv").read_bytes() == \
            (tmp_path / "two" / "truth" / f"{name}.csv").read_bytes()
    assert not list((tmp_path / "two" / "truth").glob(".shard*"))
    assert any("_s2_" in f["path"] for f in two["files"])
    for key in FILE_SPECS:  # the same rows, split into per-worker parts
        assert _data_lines(tmp_path / "one", key) == _data_lines(tmp_path / "two", key), key


def test_generation_streams_household_by_household():
    assert inspect.isgeneratorfunction(iter_households)
    from shared.generate.run import Generator

    assert inspect.isgeneratorfunction(Generator._households)
    # the household stream for a million people starts without materialising them
    first = next(iter_households(GeneratorConfig(customers=1_000_000, seed=5)))
    assert 1 <= len(first.people) <= 4 and first.people[0].person_id == "P00000000"


def test_a_prefix_of_people_does_not_depend_on_the_total():
    small = [p.person_id + p.given_name + p.family_name for h in iter_households(GeneratorConfig(customers=60, seed=9))
             for p in h.people]
    large = [p.person_id + p.given_name + p.family_name for h in iter_households(GeneratorConfig(customers=600, seed=9))
             for p in h.people][:59]
    assert small[:59] == large


# ---------------------------------------------------------------- ground truth consistency

def test_every_customer_row_is_in_truth_and_every_person_has_records(dataset):
    truth = load_truth_records(dataset)
    people = load_people(dataset)
    churn = load_churn(dataset)
    assert len(people) == len(churn) == N
    assert set(truth.values()) == set(people)  # every person is known to at least one source
    written = 0
    for key, spec in FILE_SPECS.items():
        if spec.entity != "customers":
            continue
        for row in read_rows(dataset, key):
            k = row.get(spec.key_column)
            if k:
                assert f"{spec.source}|{k}" in truth, (key, k)
                written += 1
    malformed = sum(1 for _ in csv.DictReader(open(dataset / "truth" / "records.csv")) if _["malformed"] == "1")
    assert written >= len(truth) - malformed  # rows lost to corruption are the ones flagged malformed


def test_activity_references_existing_customer_keys(dataset):
    truth = load_truth_records(dataset)
    pos_tx = read_rows(dataset, "pos.transactions")
    orders = read_rows(dataset, "ecommerce.transactions")
    reviews = read_rows(dataset, "ecommerce.reviews")
    events = read_rows(dataset, "ecommerce.events")
    assert pos_tx and orders and reviews and events
    for rows, col, source in ((pos_tx, "customer_no", "pos"), (orders, "customer_id", "ecommerce"),
                              (reviews, "customer_id", "ecommerce"), (events, "userId", "ecommerce")):
        keys = [r[col] for r in rows if r.get(col)]
        assert keys
        assert all(f"{source}|{k}" in truth for k in keys), source
    # a person's activity points at that person's own records
    tx_people = {truth[f"pos|{r['customer_no']}"] for r in pos_tx if r.get("customer_no")}
    assert tx_people <= set(load_people(dataset))


def test_events_are_anonymous_until_identified_and_devices_are_in_truth(dataset):
    events = [e for e in read_rows(dataset, "ecommerce.events") if "anonymousId" in e and "timestamp" in e]
    devices = defaultdict(set)
    for row in csv.DictReader(open(dataset / "truth" / "devices.csv")):
        devices[row["anonymous_id"]].add(row["person_id"])
    assert {e["anonymousId"] for e in events} <= set(devices)
    identifies = [e for e in events if e["type"] == "identify"]
    assert identifies and all(e.get("userId") and "@" in e["traits"]["email"] for e in identifies)
    anonymous = [e for e in events if not e.get("userId")]
    assert 0.05 < len(anonymous) / len(events) < 0.8
    first_seen: dict[str, dict] = {}
    for e in sorted((e for e in events if e["timestamp"].startswith("20")), key=lambda e: e["timestamp"]):
        first_seen.setdefault(e["anonymousId"], e)
    # a new device is anonymous; the only exceptions are devices whose first event was made malformed
    identified_first = [e for e in first_seen.values() if e.get("userId")]
    assert first_seen and len(identified_first) < 0.01 * len(first_seen)
    assert all(not e["messageId"].endswith("-1") for e in identified_first)
    orders = {o.get("order_id") for o in read_rows(dataset, "ecommerce.transactions")}
    completed = [e["properties"]["order_id"] for e in events if e.get("event") == "Order Completed"]
    manifest = json.loads((dataset / "manifest.json").read_text())
    broken_orders = sum(f["malformed"] for f in manifest["files"] if f["path"].startswith("landing/ecommerce/transactions"))
    assert completed and len(set(completed) - orders) <= broken_orders  # every order event has its order row
    kinds = Counter(e["type"] for e in events)
    assert {"page", "screen", "identify", "track"} <= set(kinds)


def test_churn_truth_is_after_the_end_and_learnable(dataset):
    churn = load_churn(dataset)
    end = date(2026, 9, 30)
    assert {c["as_of"] for c in churn.values()} == {end.isoformat()}
    assert {c["window_days"] for c in churn.values()} == {90}
    rate = sum(c["churned"] for c in churn.values()) / len(churn)
    assert 0.4 < rate < 0.85
    recent, stale = [], []
    for c in churn.values():
        if c["last_purchase"]:
            days = (end - date.fromisoformat(c["last_purchase"])).days
            assert days >= 0
            (recent if days <= 30 else stale if days > 365 else []).append(c["churned"])
    # recency carries signal: recent buyers churn far less than people who stopped a year ago
    assert sum(recent) / len(recent) + 0.3 < sum(stale) / len(stale)


def test_transactions_have_returns_and_a_december_peak(dataset):
    rows = read_rows(dataset, "pos.transactions") + [
        {"type": o["kind"], "total": o.get("total_price", ""), "txn_time": o.get("created_at", "")}
        for o in read_rows(dataset, "ecommerce.transactions")]
    kinds = Counter(r["type"] for r in rows)
    assert kinds["purchase"] > 0 and kinds["return"] + kinds["refund"] > 0
    for r in rows:
        try:
            amount = float(r["total"])
        except ValueError:
            continue  # a malformed amount
        if math.isnan(amount):
            continue  # malformed too
        if r["type"] == "purchase":
            assert amount > 0
        elif r["type"] in ("return", "refund"):
            assert amount < 0
    month = Counter()
    for r in rows:
        t = r["txn_time"]
        m = t[5:7] if "T" in t else t[3:5]
        if r["type"] == "purchase" and m.isdigit():
            month[int(m)] += 1
    average = sum(month.values()) / 12
    assert month[12] > 1.3 * average  # December peak


def test_review_sentiment_follows_rating(dataset):
    reviews = [r for r in read_rows(dataset, "ecommerce.reviews") if isinstance(r.get("rating"), int)]
    positive = set(banks.REVIEW_PHRASES["positive"])
    negative = set(banks.REVIEW_PHRASES["negative"])
    pos_ratings = [r["rating"] for r in reviews if any(p in r.get("body", "") for p in positive)]
    neg_ratings = [r["rating"] for r in reviews if any(p in r.get("body", "") for p in negative)]
    assert pos_ratings and neg_ratings
    assert sum(pos_ratings) / len(pos_ratings) > sum(neg_ratings) / len(neg_ratings) + 1.5


# ---------------------------------------------------------------- noise and hard negatives at their rates

def _customer_records(dataset: Path) -> list[tuple[str, dict, dict]]:
    """(source, record as (given, family, email, phone), true person) for every valid customer row."""
    truth = load_truth_records(dataset)
    people = load_people(dataset)
    cols = {"pos": ("first", "last", "mail", "tel"), "ecommerce": ("first_name", "last_name", "email", "phone"),
            "loyalty": (None, None, "email", "mobile"), "crm": ("FirstName", "LastName", "EMail", "Mobile")}
    out = []
    for source in ("pos", "ecommerce", "loyalty", "crm"):
        spec = FILE_SPECS[f"{source}.customers"]
        g, f, e, ph = cols[source]
        for row in read_rows(dataset, f"{source}.customers"):
            key = row.get(spec.key_column)
            if not key:
                continue
            rec = {"given": row.get(g) if g else None, "family": row.get(f) if f else None,
                   "email": row.get(e) or None, "phone": row.get(ph) or None}
            if source == "loyalty" and row.get("full_name"):
                name = row["full_name"]
                rec["given"], rec["family"] = (name.split(", ")[::-1] if ", " in name else name.split(" ", 1))
            out.append((source, rec, people[truth[f"{source}|{key}"]]))
    return out


def test_source_overlap_and_duplicate_accounts_at_configured_rates(dataset):
    by_person_source = Counter()
    for row in csv.DictReader(open(dataset / "truth" / "records.csv")):
        by_person_source[(row["person_id"], row["source"])] += 1
    members = Counter(src for (_, src) in by_person_source)
    # configured 0.60/0.50/0.35/0.40; people in neither pos nor ecommerce (0.4*0.5) are given one of them
    expected = {"pos": 0.60 + 0.2 * 0.55, "ecommerce": 0.50 + 0.2 * 0.45, "loyalty": 0.35, "crm": 0.40}
    for source, share in expected.items():
        assert abs(members[source] / N - share) < 0.04, source
    dups = sum(1 for n in by_person_source.values() if n > 1) / len(by_person_source)
    assert 0.02 < dups < 0.065  # configured 0.04 per person and source


def test_name_noise_rates(dataset):
    records = [r for r in _customer_records(dataset) if r[1]["given"] and r[1]["family"]]
    assert len(records) > 3000
    exact = nick = spaced = 0
    eligible = 0
    for _, rec, person in records:
        given = rec["given"]
        if given == person["given_name"] and rec["family"] == person["family_name"]:
            exact += 1
        if given != given.strip() or rec["family"] != rec["family"].strip():
            spaced += 1  # whitespace noise
        if nicknames_of(person["given_name"]):
            eligible += 1
            if fold_diacritics(given.strip()).lower() in {n.lower() for n in nicknames_of(person["given_name"])}:
                nick += 1
    # configured 12 % nicknames, of which a few are then garbled by other noise
    assert 0.07 < nick / eligible < 0.15
    assert 0.02 < spaced / len(records) < 0.09  # whitespace 5 %
    assert 0.3 < exact / len(records) < 0.85  # most records are noisy in some way, many are clean


def test_placeholders_and_shared_family_emails(dataset):
    records = _customer_records(dataset)
    emails = [r[1]["email"] for r in records]
    placeholders = sum(1 for e in emails if e in banks.PLACEHOLDER_EMAILS)
    assert 0.004 < placeholders / len(records) < 0.02  # configured 1 %
    phones = [r[1]["phone"] for r in records]
    assert sum(1 for p in phones if p in banks.PLACEHOLDER_PHONES) / len(records) < 0.02
    assert sum(1 for p in phones if p in banks.PLACEHOLDER_PHONES) > 0
    # the same real (non-placeholder) email given by records of different people: shared family mailboxes
    owners = defaultdict(set)
    for _, rec, person in records:
        if rec["email"] and rec["email"] not in banks.PLACEHOLDER_EMAILS:
            owners[rec["email"].lower()].add((person["person_id"], person["household_id"]))
    shared = {e: o for e, o in owners.items() if len({p for p, _ in o}) > 1}
    assert shared
    assert all(len({h for _, h in o}) == 1 for o in shared.values())  # only within a household


def test_households_twins_and_common_names(dataset):
    people = list(load_people(dataset).values())
    households = defaultdict(list)
    for p in people:
        households[p["household_id"]].append(p)
    multi = [h for h in households.values() if len(h) > 1]
    assert 0.35 < len(multi) / len(households) < 0.65
    assert all(len({(p["city"], p["postcode"]) for p in h}) == 1 for h in multi)  # one address
    twins = [p for p in people if "twin" in p["flags"]]
    assert twins
    for h in households.values():
        t = [p for p in h if "twin" in p["flags"]]
        if t:
            assert len(t) == 2 and t[0]["birth_date"] == t[1]["birth_date"]
            assert t[0]["family_name"] == t[1]["family_name"] and t[0]["given_name"] != t[1]["given_name"]
    fours = [h for h in households.values() if len(h) == 4]
    assert 0.1 < sum(1 for h in fours if any("twin" in p["flags"] for p in h)) / len(fours) < 0.45  # 25 %
    same_name_city = Counter((p["given_name"], p["family_name"], p["city"]) for p in people)
    assert same_name_city.most_common(1)[0][1] >= 5  # many John Smiths in one city


def test_manifest_noise_rates_match_configuration(dataset):
    noise = json.loads((dataset / "manifest.json").read_text())["noise"]
    cfg = GeneratorConfig()
    assert abs(noise["typo"]["rate"] - 2 * cfg.noise.typo) < 0.03
    assert abs(noise["case"]["rate"] - cfg.noise.case) < 0.03
    assert abs(noise["swap_names"]["rate"] - cfg.noise.swap_names) < 0.012
    assert 0.2 < noise["street_abbreviation"]["rate"] < cfg.noise.street_abbreviation  # of records with a street
    for kind in ("maiden_name", "old_email", "old_address", "home_phone", "plus_tag", "gmail_dots",
                 "diacritics_folded", "date_swap"):
        assert noise[kind]["records"] > 0, kind


def test_phones_are_valid_in_several_countries_and_formats(dataset):
    people = load_people(dataset).values()
    countries = Counter(p["country"] for p in people)
    assert set(countries) == set(banks.COUNTRIES)
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(p["phone"])) for p in people)
    pos = [r["tel"] for r in read_rows(dataset, "pos.customers") if r.get("tel")]
    assert any(t.startswith("+") for t in pos) and any(t.startswith("0") for t in pos)


def test_noise_primitives():
    import random

    rng = random.Random(1)
    variants = {typo(rng, "Elizabeth") for _ in range(200)}
    assert len(variants) > 20 and "Elizabeth" not in variants
    assert all(abs(len(v) - 9) <= 1 for v in variants)
    assert "Liz" in nicknames_of("Elizabeth") and "Bob" in nicknames_of("Robert")
    assert fold_diacritics("José Müller") == "Jose Muller"
    assert fold_diacritics("Müller", german_style=True) == "Mueller"
    for region in banks.COUNTRIES:
        for landline in (False, True):
            numbers = [unique_phone(i, region, landline=landline) for i in range(0, 2_000_000, 997)]
            assert all(phonenumbers.is_valid_number(n) for n in numbers[:300])
            assert len({n.national_number for n in numbers}) == len(numbers)  # subscribers do not share numbers


def test_unrelated_people_share_no_phone():
    """Only a household's landline puts one number on several people (the hard negative), never chance."""
    owners: dict[int, set[str]] = defaultdict(set)
    for household in iter_households(GeneratorConfig(customers=20_000, seed=5)):
        for person in household.people:
            for number in (person.mobile, person.home_phone):
                if number is not None:
                    owners[(number.country_code, number.national_number)].add(person.household_id)
    assert len(owners) > 20_000 and all(len(households) == 1 for households in owners.values())


# ---------------------------------------------------------------- malformed rows

def test_malformed_rows_at_configured_rate(dataset, tmp_path):
    manifest = json.loads((dataset / "manifest.json").read_text())
    totals = manifest["totals"]
    expected = 0.005 * totals["rows"]
    assert abs(totals["malformed"] - expected) < 4 * math.sqrt(expected) + 5
    kinds = Counter()
    for f in manifest["files"]:
        kinds.update(f["malformed_kinds"])
    assert {"bad_date", "missing_required", "unquoted_delimiter", "bad_encoding", "invalid_json",
            "non_numeric_amount", "truncated_row"} <= set(kinds)

    high = generate(tmp_path / "high", GeneratorConfig(customers=150, seed=2, malformed_rate=0.08), progress=False)
    assert abs(high["totals"]["malformed"] / high["totals"]["rows"] - 0.08) < 0.02
    clean = generate(tmp_path / "clean", GeneratorConfig(customers=150, seed=2, malformed_rate=0.0), progress=False)
    assert clean["totals"]["malformed"] == 0
    for key in FILE_SPECS:  # with no corruption every row parses
        assert all("__malformed__" not in r for r in read_rows(tmp_path / "clean", key, valid_only=False))


def test_malformed_csv_rows_are_really_broken(dataset):
    rows = read_rows(dataset, "pos.transactions", valid_only=False)
    assert any("__malformed__" in r for r in rows)  # wrong column count
    raw = b"".join(p.read_bytes() for p in (dataset / "landing/pos/transactions").iterdir())
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # latin-1 bytes in a UTF-8 file


# ---------------------------------------------------------------- mappings and ingestion

def test_every_generated_file_has_a_mapping_naming_its_columns():
    for key, spec in FILE_SPECS.items():
        mapping = json.loads((ROOT / "config" / "sources" / f"{key}.json").read_text())
        assert (mapping["source"], mapping["entity"]) == (spec.source, spec.entity)
        columns = set(spec.columns)
        named = set(mapping.get("record_key", []))
        for value in (*mapping["fields"].values(), *mapping.get("identifiers", {}).values()):
            named.add(value if isinstance(value, str) else value["column"])
        named.update(mapping.get("attributes", []))
        assert named <= columns, (key, named - columns)


def test_generated_files_ingest_with_their_mappings(dataset):
    ingest = pytest.importorskip("shared.ingest")
    manifest = json.loads((dataset / "manifest.json").read_text())
    truth_rows = list(csv.DictReader(open(dataset / "truth" / "records.csv")))
    clean_keys = {f"{r['source']}|{r['record_key']}" for r in truth_rows if r["malformed"] == "0"}
    accepted_keys = set()
    for f in manifest["files"]:
        mapping = ingest.load_mapping_file(ROOT / "config" / "sources" / f"{f['source']}.{f['entity']}.json")
        with open(dataset / f["path"], "rb") as stream:
            mapped = list(ingest.iter_mapped(stream, Path(f["path"]).name, mapping))
        quarantined = sum(1 for m in mapped if m.reasons)
        assert len(mapped) == f["rows"], f["path"]
        assert quarantined == f["malformed"], f["path"]  # every corrupted row caught, nothing clean rejected
        if f["entity"] == "customers":
            accepted_keys |= {f"{f['source']}|{m.record_key}" for m in mapped if m.item is not None}
    assert clean_keys <= accepted_keys
