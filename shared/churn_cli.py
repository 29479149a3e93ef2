"""`ucp churn train|score`: the churn model on files, embedded (no services).

TX is a CSV with `customer_id,timestamp,amount` and optionally `channel,kind,category,order_id` (extra columns
are ignored; the rows of one order_id, a line-level file's lines, are one purchase). `--mapping M` renames
columns: a JSON object {"customer_id": "<column>", "timestamp": ..., ...}, or
an ingestion mapping with a "fields" object (customer_key is accepted for customer_id). Timestamps are ISO 8601
unless the timestamp field's "format" (as in ingestion: strptime, a list of them, "epoch" or "epoch_ms") or a
top-level "timestamp_format" says otherwise; times without an offset are in the mapping's "timezone" (UTC by
default), a parsed offset is kept. The file is read by ingestion's readers (shared/ingest/readers.py) with the
mapping's "encoding", "delimiter", "quotechar", "compression" and "format" (gzip and JSON Lines work too).
Bad rows (unparseable, short or long, or with bytes not valid in the file's encoding) are counted and skipped,
never fatal.
"""
from __future__ import annotations

import csv
import itertools
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FIELDS = ("customer_id", "timestamp", "amount", "channel", "kind", "category", "order_id")
REQUIRED = ("customer_id", "timestamp", "amount")
MAX_REPORTED_ROWS = 10
READ_OPTIONS = ("format", "compression", "encoding", "delimiter", "quotechar")


def register(subparsers) -> None:
    churn = subparsers.add_parser("churn", help="train and score the churn model on transaction files")
    sub = churn.add_subparsers(dest="churn_command", required=True, metavar="ACTION")

    train = sub.add_parser("train", help="train, verify and publish a churn model into a local registry")
    _common(train)
    train.add_argument("--window-days", type=int, default=None, help="churn window (default: settings, 90)")
    train.add_argument("--out", required=True, type=Path, help="registry directory (churn/<version>/, churn/latest)")
    train.add_argument("--min-profiles", type=int, default=None, help="refuse below this many customers (500)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--cv-folds", type=int, default=None, help="cross-validation folds for model choice (5)")
    train.add_argument("--snapshots", type=int, default=None,
                       help="training looks back from this many as-of dates, 28 days apart (8)")
    train.add_argument("--models", default=None,
                       help="candidates to compare, comma-separated (default: logistic_regression,"
                            "gradient_boosting,hist_gradient_boosting)")
    train.set_defaults(func=cmd_train)

    score = sub.add_parser("score", help="score every customer with a purchase on or before the as-of date")
    _common(score)
    score.add_argument("--model", required=True, type=Path,
                       help="a registry directory (uses churn/latest) or a version directory with model.onnx")
    score.add_argument("--out", required=True, type=Path, help="CSV: customer_id,churn_score,churn_risk")
    score.set_defaults(func=cmd_score)


def _common(parser) -> None:
    parser.add_argument("--transactions", required=True, type=Path, help="CSV of transactions")
    parser.add_argument("--as-of", required=True, help="YYYY-MM-DD (end of that day, UTC) or an ISO datetime")
    parser.add_argument("--mapping", type=Path, default=None, help="JSON column mapping")


# --- reading -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeFormat:
    formats: tuple[str, ...] = ()  # none: ISO 8601
    zone: tzinfo = timezone.utc  # for times without an offset

    def parse(self, raw: str) -> float:
        """Epoch seconds; ValueError when no format matches."""
        if not self.formats:
            return self._epoch(datetime.fromisoformat(raw))
        for fmt in self.formats:
            try:
                if fmt in ("epoch", "epoch_ms"):
                    seconds = float(raw) / (1000 if fmt == "epoch_ms" else 1)
                    if seconds != seconds or abs(seconds) == float("inf"):
                        raise ValueError("not a finite epoch")
                    return seconds
                return self._epoch(datetime.strptime(raw, fmt))
            except ValueError:
                continue
        raise ValueError(f"{raw!r} matches none of {list(self.formats)}")

    def _epoch(self, parsed: datetime) -> float:
        # an offset in the text wins; only a naive time takes the mapping's zone
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=self.zone)).timestamp()


def load_mapping(path: Path | None) -> tuple[dict[str, str], TimeFormat]:
    if path is None:
        return {f: f for f in FIELDS}, TimeFormat()
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a mapping is a JSON object of field -> column")
    fields = data.get("fields", data)
    if not isinstance(fields, dict):
        raise ValueError(f"{path}: fields is a JSON object of field -> column")
    columns = {f: f for f in FIELDS}
    formats = data.get("timestamp_format")
    for name, spec in fields.items():
        target = "customer_id" if name == "customer_key" else name
        if target in FIELDS:
            if isinstance(spec, dict) and not isinstance(spec.get("column"), str):
                raise ValueError(f"{path}: field {name} names no column")
            columns[target] = spec["column"] if isinstance(spec, dict) else str(spec)
            if target == "timestamp" and isinstance(spec, dict) and spec.get("format"):
                formats = spec["format"]  # the field's own format, as ingestion reads it
    formats = (formats,) if isinstance(formats, str) else tuple(formats or ())
    try:
        zone = ZoneInfo(data["timezone"]) if isinstance(data.get("timezone"), str) else timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{path}: unknown timezone {data['timezone']!r}") from None
    return columns, TimeFormat(formats, zone)


def read_options(path: Path | None):
    """How to read the file: the mapping's top-level format/compression/encoding/delimiter/quotechar, as in
    ingestion; what it leaves out is found out as ingestion does (name, magic bytes, BOM/UTF-8, header)."""
    from .ingest.readers import ReadOptions

    data = json.loads(path.read_text(encoding="utf-8")) if path is not None else {}
    given = {k: data[k] for k in READ_OPTIONS if isinstance(data, dict) and data.get(k) is not None}
    bad = [k for k, v in given.items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f"{path}: {', '.join(bad)} must be text")
    if given.get("delimiter") in ("tab", "\\t"):
        given["delimiter"] = "\t"
    return ReadOptions(**given)


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def read_transactions(path: Path, mapping: Path | None, *,
                      as_of: float) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    """Transactions per customer, only those before `as_of`; and counts (rows, skipped with row numbers)."""
    from .ingest.readers import FileInfo, RowError, has_bad_encoding, read_rows

    columns, time_format = load_mapping(mapping)
    options = read_options(mapping)
    per_customer: dict[str, list[dict[str, Any]]] = {}
    stats: dict[str, Any] = {"rows": 0, "used": 0, "after_as_of": 0, "rejected": 0, "rejected_rows": []}
    used = [columns[f] for f in FIELDS]
    info = FileInfo()
    with open(path, "rb") as fh:
        rows = read_rows(fh, path.name, options, info)
        first = next(rows, None)  # the header is read with the first row
        if info.columns is not None:
            missing = [columns[f] for f in REQUIRED if columns[f] not in info.columns]
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (have: {', '.join(info.columns)})")
        for row_number, row in itertools.chain([first] if first else [], rows):
            stats["rows"] += 1
            try:
                if isinstance(row, RowError):
                    raise ValueError(row.code)
                if any(has_bad_encoding(row.get(c)) for c in used):  # bytes not valid in the file's encoding
                    raise ValueError("invalid_encoding")
                cid = _text(row[columns["customer_id"]]).strip()
                raw_ts = _text(row[columns["timestamp"]]).strip()
                ts = time_format.parse(raw_ts)
                amount = float(row[columns["amount"]])
                if not cid or amount != amount or amount in (float("inf"), float("-inf")):
                    raise ValueError("empty customer id or non-finite amount")
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
                stats["rejected"] += 1
                if len(stats["rejected_rows"]) < MAX_REPORTED_ROWS:
                    stats["rejected_rows"].append(row_number)
                continue
            if ts >= as_of:
                stats["after_as_of"] += 1
                continue
            tx = {"timestamp": ts, "amount": amount}
            for optional in ("channel", "kind", "category", "order_id"):
                value = _text(row.get(columns[optional])).strip()
                if value:
                    tx[optional] = value
            per_customer.setdefault(cid, []).append(tx)
            stats["used"] += 1
    stats["customers"] = len(per_customer)
    return per_customer, stats


def _histories(per_customer: dict[str, list[dict]]):
    from .churn.features import History

    return {cid: History.from_docs(txs) for cid, txs in per_customer.items()}


# --- commands ----------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from model_training.churn import CV_FOLDS, MIN_PROFILES, SNAPSHOTS, candidate_models, train_and_publish

    from .churn.features import as_of_instant
    from .churn.registry import local_registry
    from .settings import get_settings

    settings = get_settings()
    as_of = as_of_instant(args.as_of)
    window = args.window_days or settings.churn_window_days
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    unknown = set(models or ()) - set(candidate_models(0))
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(sorted(unknown))}; choose from {', '.join(candidate_models(0))}")
    per_customer, stats = read_transactions(args.transactions, args.mapping, as_of=as_of)
    report = train_and_publish(
        _histories(per_customer), local_registry(args.out), as_of=as_of, window_days=window,
        tolerance=settings.churn_auc_tolerance, min_profiles=args.min_profiles or MIN_PROFILES, seed=args.seed,
        folds=args.cv_folds or CV_FOLDS, candidates=models, snapshots=args.snapshots or SNAPSHOTS)
    report["input"] = stats
    print(json.dumps(report, indent=2, default=str))
    if report["status"] in ("refused", "failed"):
        print(f"ucp churn train: {report['status']}: {report.get('reason')}", file=sys.stderr)
        return 1
    return 0


def load_model(path: Path):
    """A ChurnModel from a version directory (model.onnx + card.json) or a registry directory's latest."""
    from .churn.registry import local_registry
    from .churn.serving import ChurnModel

    if (path / "model.onnx").is_file():
        return ChurnModel((path / "model.onnx").read_bytes(), json.loads((path / "card.json").read_text()))
    found = local_registry(path).load_latest()
    if found is None:
        raise FileNotFoundError(f"{path}: no model.onnx and no churn/latest pointer (train one with `ucp churn train`)")
    pointer, etag, blob, card = found
    return ChurnModel(blob, card, etag=etag)


def cmd_score(args) -> int:
    from .churn.features import as_of_instant, feature_matrix
    from .churn.serving import risk_level
    from .settings import get_settings

    settings = get_settings()
    model = load_model(args.model)
    as_of = as_of_instant(args.as_of)
    per_customer, stats = read_transactions(args.transactions, args.mapping, as_of=as_of)
    histories = {cid: h for cid, h in sorted(_histories(per_customer).items()) if h.purchases_before(as_of)}
    scores = model.predict(feature_matrix(histories.values(), as_of)) if histories else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    risks: dict[str, int] = {"low": 0, "medium": 0, "high": 0}
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["customer_id", "churn_score", "churn_risk"])
        for cid, score in zip(histories, scores):
            risk = risk_level(float(score), medium=settings.churn_risk_medium, high=settings.churn_risk_high)
            risks[risk] += 1
            writer.writerow([cid, f"{score:.6f}", risk])
    print(json.dumps({"model_version": model.version, "scored": len(histories), "risk": risks,
                      "out": str(args.out), "input": stats}, indent=2))
    return 0
