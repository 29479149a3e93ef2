"""Streaming file writers for the landing files (CSV, JSON Lines, Parquet; optionally gzip), rolling over to a new
part every `rows_per_file` rows, and injecting malformed rows at the configured rate.

A malformed row replaces the row it was made from (so ground truth can flag it): bad dates, broken quoting (an
unquoted delimiter, i.e. one field too many), bytes in the wrong encoding, missing required values or columns,
non-numeric amounts, truncated JSON. Everything is deterministic: gzip headers carry no time or name.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import random
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

BAD_DATES = ("31/02/1985", "1985-13-45", "not a date", "00000000", "32.13.2001", "2099-99-99", "19xx-01-01")
BAD_AMOUNTS = ("12,50 EUR", "abc", "NaN", "1.234.56", "--5", "£")
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_MARK = "\u2063MALFORMED\u2063"  # placeholder replaced after CSV/JSON encoding


@dataclass
class FileSpec:
    """What one logical landing file looks like. Column roles drive which corruptions make sense."""

    source: str
    entity: str
    stem: str  # file name stem, e.g. "customers"
    format: str  # csv | jsonl | parquet
    columns: list[str]
    key_column: str
    required: tuple[str, ...] = ()
    date_columns: tuple[str, ...] = ()
    amount_columns: tuple[str, ...] = ()
    text_columns: tuple[str, ...] = ()
    delimiter: str = ","
    encoding: str = "utf-8"
    gzip: bool = False
    line_terminator: str = "\n"
    parquet_types: dict[str, Any] = field(default_factory=dict)
    no_nulls: bool = False  # rows never carry None values (JSON Lines: skip dropping them)

    @property
    def extension(self) -> str:
        return {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}[self.format] + (".gz" if self.gzip else "")


class Sink(ABC):
    """One logical file: rows in, parts out. write() returns the malformed kind it injected, or None."""

    def __init__(self, spec: FileSpec, out_dir: Path, landing: Path, *, rows_per_file: int, malformed_rate: float,
                 tag: str):
        self.spec = spec
        self.out_dir = out_dir
        self.dir = landing / spec.source / spec.entity
        self.rows_per_file = rows_per_file
        self.malformed_rate = malformed_rate
        self.tag = tag
        self.part = 0
        self.part_rows = 0
        self.files: list[dict[str, Any]] = []
        self._kinds = self._malformed_kinds()

    # -- parts
    def _next_path(self) -> Path:
        self.part += 1
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir / f"{self.spec.stem}_{self.tag}_{self.part:03d}.{self.spec.extension}"

    def _open_part(self) -> None:
        path = self._next_path()
        self.files.append({"path": path.relative_to(self.out_dir).as_posix(), "source": self.spec.source,
                           "entity": self.spec.entity, "format": self.spec.format, "rows": 0, "malformed": 0,
                           "malformed_kinds": Counter()})
        self.part_rows = 0
        self._open(path)

    def write(self, rng: random.Random, row: dict[str, Any]) -> str | None:
        if self.part_rows >= self.rows_per_file or not self.files:
            if self.files:
                self._close()
            self._open_part()
        kind = None
        if self.malformed_rate and rng.random() < self.malformed_rate and self._kinds:
            kind = self._kinds[int(rng.random() * len(self._kinds))]
            entry = self.files[-1]
            entry["malformed"] += 1
            entry["malformed_kinds"][kind] += 1
        self._write(rng, row, kind)
        self.part_rows += 1
        self.files[-1]["rows"] = self.part_rows
        return kind

    def close(self) -> list[dict[str, Any]]:
        if self.files:
            self._close()
        for f in self.files:
            f["malformed_kinds"] = dict(sorted(f["malformed_kinds"].items()))
        return self.files

    # -- format specific
    @abstractmethod
    def _malformed_kinds(self) -> list[str]: ...

    @abstractmethod
    def _open(self, path: Path) -> None: ...

    @abstractmethod
    def _write(self, rng: random.Random, row: dict[str, Any], kind: str | None) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...


def _open_binary(path: Path, compress: bool):
    raw = open(path, "wb", buffering=1 << 20)
    if compress:
        return raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
    return raw, raw


def _latin1_bytes(rng: random.Random) -> bytes:
    return ("Ren\u00e9e", "Jos\u00e9", "M\u00fcller", "Fran\u00e7ois", "Pe\u00f1a")[int(rng.random() * 5)].encode("latin-1")


class CsvSink(Sink):
    def _malformed_kinds(self) -> list[str]:
        s = self.spec
        kinds = ["missing_required", "truncated_row", "unquoted_delimiter"]
        kinds += ["bad_date"] * bool(s.date_columns) + ["non_numeric_amount"] * bool(s.amount_columns)
        if s.encoding.replace("-sig", "") in ("utf-8", "utf8") and s.text_columns:
            kinds.append("bad_encoding")
        return kinds

    def _open(self, path: Path) -> None:
        self._raw, self._binary = _open_binary(path, self.spec.gzip)
        self._text = io.TextIOWrapper(self._binary, encoding=self.spec.encoding, errors="replace", newline="")
        self._csv = csv.writer(self._text, delimiter=self.spec.delimiter, lineterminator=self.spec.line_terminator)
        self._csv.writerow(self.spec.columns)

    def _write(self, rng, row, kind):
        s = self.spec
        values = ["" if row.get(c) is None else row[c] for c in s.columns]
        if kind is None:
            self._csv.writerow(values)
            return
        if kind == "bad_date":
            values[s.columns.index(s.date_columns[int(rng.random() * len(s.date_columns))])] = BAD_DATES[int(rng.random() * len(BAD_DATES))]
        elif kind == "non_numeric_amount":
            values[s.columns.index(s.amount_columns[0])] = BAD_AMOUNTS[int(rng.random() * len(BAD_AMOUNTS))]
        elif kind == "missing_required":
            values[s.columns.index(s.required[int(rng.random() * len(s.required))])] = ""
        elif kind == "truncated_row":  # the export died mid-row: required columns at the end are missing
            values = values[: max(1, len(values) // 3)]
        if kind in ("unquoted_delimiter", "bad_encoding"):
            i = s.columns.index(s.text_columns[int(rng.random() * len(s.text_columns))])
            values[i] = _MARK
        buf = io.StringIO()
        csv.writer(buf, delimiter=s.delimiter, lineterminator=s.line_terminator).writerow(values)
        line = buf.getvalue()
        if kind == "unquoted_delimiter":  # e.g. 12, High Street written without quotes
            line = line.replace(_MARK, f"Flat 2{s.delimiter} Rear Building")
        if kind == "bad_encoding":  # latin-1 bytes in a UTF-8 file
            head, tail = line.split(_MARK)
            self._text.flush()
            self._binary.write(head.encode(s.encoding.replace("-sig", "")) + _latin1_bytes(rng)
                               + tail.encode(s.encoding.replace("-sig", "")))
            return
        self._text.write(line)

    def _close(self):
        self._text.flush()
        self._text.detach()
        if self._binary is not self._raw:
            self._binary.close()
        self._raw.close()


class JsonlSink(Sink):
    def _malformed_kinds(self) -> list[str]:
        s = self.spec
        kinds = ["invalid_json", "missing_required"]
        kinds += ["bad_date"] * bool(s.date_columns) + ["non_numeric_amount"] * bool(s.amount_columns)
        kinds += ["bad_encoding"] * bool(s.text_columns)
        return kinds

    def _open(self, path: Path) -> None:
        self._raw, self._binary = _open_binary(path, self.spec.gzip)

    def _write(self, rng, row, kind):
        s = self.spec
        if not s.no_nulls or kind:
            row = {k: v for k, v in row.items() if v is not None}
        if kind == "bad_date":
            row[s.date_columns[int(rng.random() * len(s.date_columns))]] = BAD_DATES[int(rng.random() * len(BAD_DATES))]
        elif kind == "non_numeric_amount":
            row[s.amount_columns[0]] = BAD_AMOUNTS[int(rng.random() * len(BAD_AMOUNTS))]
        elif kind == "missing_required":
            row.pop(s.required[int(rng.random() * len(s.required))], None)
        elif kind == "bad_encoding":
            row[s.text_columns[int(rng.random() * len(s.text_columns))]] = _MARK
        line = _JSON.encode(row)
        if kind == "invalid_json":  # a line cut short
            line = line[: max(2, len(line) // 2)]
        if kind == "bad_encoding":
            head, tail = line.split(_MARK)
            self._binary.write(head.encode() + _latin1_bytes(rng) + tail.encode() + b"\n")
            return
        self._binary.write(line.encode() + b"\n")

    def _close(self):
        if self._binary is not self._raw:
            self._binary.close()
        self._raw.close()


class ParquetSink(Sink):
    """Rows buffered per column and written in row groups (bounded memory)."""

    row_group_size = 10_000

    def _malformed_kinds(self) -> list[str]:
        kinds = ["missing_required"]
        if any(pa.types.is_date(self.spec.parquet_types[c]) for c in self.spec.date_columns):
            kinds.append("future_date")
        return kinds

    def _open(self, path: Path) -> None:
        self._schema = pa.schema([(c, self.spec.parquet_types[c]) for c in self.spec.columns])
        self._writer = pq.ParquetWriter(path, self._schema, compression="snappy")
        self._buffer: dict[str, list] = {c: [] for c in self.spec.columns}
        self._buffered = 0

    def _write(self, rng, row, kind):
        s = self.spec
        if kind == "missing_required":
            row = {**row, s.required[int(rng.random() * len(s.required))]: None}
        elif kind == "future_date":
            col = next(c for c in s.date_columns if pa.types.is_date(s.parquet_types[c]))
            row = {**row, col: date(2091, row[col].month, min(row[col].day, 28)) if row.get(col) else date(2091, 6, 1)}
        for c in s.columns:
            self._buffer[c].append(row.get(c))
        self._buffered += 1
        if self._buffered >= self.row_group_size:
            self._flush()

    def _flush(self):
        if self._buffered:
            table = pa.table({c: pa.array(v, type=self.spec.parquet_types[c]) for c, v in self._buffer.items()},
                             schema=self._schema)
            self._writer.write_table(table, row_group_size=self.row_group_size)
            self._buffer = {c: [] for c in self.spec.columns}
            self._buffered = 0

    def _close(self):
        self._flush()
        self._writer.close()


def open_sink(spec: FileSpec, out_dir: Path, landing: Path, **kw) -> Sink:
    return {"csv": CsvSink, "jsonl": JsonlSink, "parquet": ParquetSink}[spec.format](spec, out_dir, landing, **kw)
