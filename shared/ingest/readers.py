"""Streaming readers for landed files: CSV, JSON Lines, JSON arrays and Parquet, any of them gzip-compressed.

Every reader takes a binary stream and yields ``(row_number, dict)`` for a row it could read, or
``(row_number, RowError)`` for a row it could not (the rest of the file goes on). A problem that makes the whole
file unreadable raises ``FileError`` with a reason code; rows already yielded stay accounted for.

Memory stays flat whatever the file size: text is decoded incrementally, a physical line is capped (a file with
no newlines cannot make us buffer it whole), gzip output is capped (a 1 KB bomb cannot become 10 GB), and
Parquet is read one row group at a time.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator

FORMATS = ("csv", "jsonl", "json", "parquet")
CSV_DELIMITERS = ",;\t|"
SAMPLE_BYTES = 64 * 1024
TEXT_CHUNK = 256 * 1024
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"

# csv's per-field limit is process-wide; ours is enforced per field after parsing, so only guard the extreme here.
csv.field_size_limit(256 * 1024 * 1024)


class FileError(Exception):
    """The file cannot be read (further): the reason goes into the report and the file to failed/."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class RowError:
    """A row that could not be read; ``raw`` is what was read of it (for the quarantine)."""

    code: str
    message: str
    raw: Any = None


Row = tuple[int, "dict[str, Any] | RowError"]


@dataclass
class ReadOptions:
    format: str | None = None  # csv | jsonl | json | parquet; None = from the name, else sniffed
    compression: str | None = None  # gzip | none; None = from the name or the magic bytes
    encoding: str | None = None  # None = BOM, then UTF-8, then charset-normalizer
    delimiter: str | None = None  # None = sniffed from the header
    quotechar: str = '"'
    max_decompressed_bytes: int = 2 * 1024**3
    max_row_bytes: int = 1024 * 1024


@dataclass
class FileInfo:
    """What the reader found out about the file (goes into the report)."""

    format: str | None = None
    compression: str = "none"
    encoding: str | None = None
    delimiter: str | None = None
    columns: list[str] | None = None
    bytes_read: int = 0  # decompressed bytes
    warnings: list[str] = field(default_factory=list)


class _ChunkStream(io.RawIOBase):
    """A read-only binary stream over an iterator of byte chunks (e.g. a blob download's ``chunks()``)."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def stream_from_chunks(chunks) -> io.BufferedReader:
    return io.BufferedReader(_ChunkStream(chunks), buffer_size=TEXT_CHUNK)


class _CappedStream(io.RawIOBase):
    """Counts bytes read from an inner stream and stops the file when they pass the cap (gzip bombs)."""

    def __init__(self, inner: BinaryIO, cap: float, info: FileInfo):
        self._inner = inner
        self._cap = cap
        self._info = info

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        try:
            data = self._inner.read(len(target))
        except (OSError, EOFError, zlib.error) as err:  # truncated or corrupt gzip
            raise FileError("corrupt_compression", f"compressed data is corrupt or truncated: {err}") from None
        self._info.bytes_read += len(data)
        if self._info.bytes_read > self._cap:
            raise FileError("decompressed_size_exceeded",
                            f"decompressed size passed the cap of {self._cap} bytes (possible gzip bomb)")
        n = len(data)
        target[:n] = data
        return n


def base_name(name: str) -> str:
    """The name without a compression suffix, lower-cased, for format detection."""
    lower = name.lower()
    return lower[:-3] if lower.endswith(".gz") else lower[:-5] if lower.endswith(".gzip") else lower


def format_from_name(name: str) -> str | None:
    base = base_name(name)
    for suffix, fmt in ((".csv", "csv"), (".tsv", "csv"), (".txt", "csv"), (".jsonl", "jsonl"),
                        (".ndjson", "jsonl"), (".json", "json"), (".parquet", "parquet"), (".pq", "parquet")):
        if base.endswith(suffix):
            return fmt
    return None


def open_decompressed(stream: BinaryIO, name: str, options: ReadOptions, info: FileInfo) -> io.BufferedReader:
    """The file's bytes after decompression (declared, by name or by magic bytes), capped in size."""
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream, TEXT_CHUNK)
    compression = (options.compression or "").lower() or None
    if compression in (None, "auto"):
        gz = buffered.peek(2)[:2] == GZIP_MAGIC or name.lower().endswith((".gz", ".gzip"))
        compression = "gzip" if gz else "none"
    if compression not in ("gzip", "none"):
        raise FileError("unsupported_compression", f"compression {compression!r} is not supported (gzip or none)")
    info.compression = compression
    if compression == "none":  # the cap is on what decompression makes, not on a plain file's size
        return io.BufferedReader(_CappedStream(buffered, float("inf"), info), TEXT_CHUNK)
    inner = gzip.GzipFile(fileobj=buffered, mode="rb")
    return io.BufferedReader(_CappedStream(inner, options.max_decompressed_bytes, info), TEXT_CHUNK)


def sniff_format(data: io.BufferedReader) -> str:
    head = data.peek(SAMPLE_BYTES)[:SAMPLE_BYTES]
    if head[:4] == PARQUET_MAGIC:
        return "parquet"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] == b"[":
        return "json"
    if text[:1] == b"{":
        return "jsonl"
    return "csv"


def detect_encoding(sample: bytes) -> str:
    """BOM, else UTF-8 when the sample is UTF-8 (a few bad bytes in real UTF-8 are rows to quarantine, not a
    reason to decode the whole file as something else), else charset-normalizer's best guess."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    text = sample.decode("utf-8", errors="surrogateescape")
    bad = sum(1 for ch in text if "\udc80" <= ch <= "\udcff")
    if bad <= 3:  # a multi-byte character cut at the sample's end looks like 1-3 bad bytes
        return "utf-8"
    good_non_ascii = sum(1 for ch in text if ord(ch) > 127 and not "\udc80" <= ch <= "\udcff")
    if good_non_ascii >= bad:
        return "utf-8"
    from charset_normalizer import from_bytes

    # On a few accented names cp1250 often scores best for a Western European export (ñ read as ń, ø as ř);
    # Western European single-byte files are the common case, so cp1252 wins whenever it is a candidate.
    matches = from_bytes(sample)
    if any(m.encoding == "cp1252" for m in matches):
        return "cp1252"
    best = matches.best()
    return best.encoding if best is not None else "cp1252"


# Any surrogate: undecodable bytes kept by surrogateescape (\udc80-\udcff), or a lone UTF-16 half from a JSON
# escape ("\ud83d" of an emoji cut in two); none of them can be encoded as UTF-8 later.
_ESCAPED_BYTE = re.compile("[\ud800-\udfff]")


def has_bad_encoding(value: Any) -> bool:
    """True when a decoded string carries undecodable bytes or a lone surrogate (not valid text)."""
    return isinstance(value, str) and not value.isascii() and _ESCAPED_BYTE.search(value) is not None


def text_stream(data: io.BufferedReader, options: ReadOptions, info: FileInfo) -> io.TextIOWrapper:
    encoding = options.encoding or detect_encoding(data.peek(SAMPLE_BYTES)[:SAMPLE_BYTES])
    if not options.encoding and encoding not in ("utf-8", "utf-8-sig", "utf-16"):
        info.warnings.append(f"the file is not UTF-8 and no encoding is declared: read as {encoding} (a guess; "
                             "set \"encoding\" in the mapping if names look wrong)")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise FileError("unknown_encoding", f"unknown encoding {encoding!r}") from None
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # tolerate a BOM even when UTF-8 is declared
    info.encoding = encoding
    # surrogateescape: a bad byte marks its row (quarantined with reason invalid_encoding), not the whole file.
    return io.TextIOWrapper(data, encoding=encoding, errors="surrogateescape", newline="")


class RowTooLarge(Exception):
    pass


class _CappedLines:
    """Physical lines of a text stream, each at most ``limit`` characters: an over-long line is skipped
    (drained in bounded pieces) and reported with RowTooLarge, so memory never holds more than one cap."""

    def __init__(self, text: io.TextIOBase, limit: int):
        self._text = text
        self._limit = limit
        self.line_number = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self._text.readline(self._limit + 1)
        if not line:
            raise StopIteration
        self.line_number += 1
        if len(line) > self._limit:
            self._skip_rest(line)
        return line

    def _skip_rest(self, line: str) -> None:
        while line and not line.endswith("\n"):
            line = self._text.readline(self._limit)
        raise RowTooLarge(f"line {self.line_number} is longer than {self._limit} characters")


class RecordTooLarge(Exception):
    pass


class _RecordLines(_CappedLines):
    """CSV lines, keeping those of the logical record being read (read_csv clears them per record): a stray
    quote makes csv read on across lines, so the record is capped and its lines after the first re-read."""

    def __init__(self, text: io.TextIOBase, limit: int):
        super().__init__(text, limit)
        self.record: list[str] = []
        self.size = 0
        self.at_eof = False
        self._again: list[str] = []  # lines to read again, last first

    def __next__(self) -> str:
        if self._again:
            line = self._again.pop()
        else:
            line = self._text.readline(self._limit + 1)
            if not line:
                self.at_eof = True
                raise StopIteration
            self.line_number += 1
            if len(line) > self._limit:
                self._skip_rest(line)
        self.record.append(line)
        self.size += len(line)
        if self.size > self._limit:  # a line alone is capped, so this record spans several
            raise RecordTooLarge()
        return line

    def read_again_after_first(self) -> str:
        """The record's first line; the lines after it are read again."""
        self._again.extend(reversed(self.record[1:]))
        self.at_eof = False
        return self.record[0]


def sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in CSV_DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(text: io.TextIOBase, options: ReadOptions, info: FileInfo) -> Iterator[Row]:
    lines = _RecordLines(text, options.max_row_bytes)
    try:
        first = next(lines)
    except StopIteration:
        raise FileError("empty_file", "the file is empty: no header row") from None
    except RowTooLarge as err:
        raise FileError("header_too_large", str(err)) from None
    if not first.strip():
        raise FileError("empty_file", "the file has no header row (first line is blank)")
    delimiter = options.delimiter or sniff_delimiter(first)
    if delimiter == "\\t":
        delimiter = "\t"
    info.delimiter = delimiter
    header = next(csv.reader([first], delimiter=delimiter, quotechar=options.quotechar))
    columns = [c.strip() for c in header]
    info.columns = columns
    if len(set(columns)) != len(columns):
        # Positions, not names: a file without a header row would put a customer's data in the report.
        repeats = [str(i) for i, c in enumerate(columns, 1) if columns.index(c) != i - 1]
        raise FileError("duplicate_columns", f"the header repeats column names (at positions {', '.join(repeats)}; "
                                             "is the header row missing?)")
    record = lines.record
    reader = csv.reader(lines, delimiter=delimiter, quotechar=options.quotechar, strict=False)
    row_number = 0
    while True:
        record.clear()
        lines.size = 0
        try:
            values = next(reader)
            if lines.at_eof:  # csv returns what it has when the file ends inside a quoted field
                raise RecordTooLarge()
        except StopIteration:
            return
        except RecordTooLarge:
            row_number += 1
            cause = "the end of the file" if lines.at_eof else f"{options.max_row_bytes} characters"
            yield row_number, RowError("malformed_row", f"a quote opened on this line is not closed within {cause}; "
                                                        "the lines after it are read as rows of their own",
                                       lines.read_again_after_first().rstrip("\r\n"))
            continue
        except RowTooLarge as err:
            row_number += 1
            yield row_number, RowError("row_too_large", str(err))
            continue
        except csv.Error as err:
            row_number += 1
            yield row_number, RowError("malformed_row", f"CSV parse error: {err}")
            continue
        if not values or (len(values) == 1 and not values[0].strip()):
            continue  # blank line: not a row
        row_number += 1
        if values == header:  # exports concatenated (cat a.csv b.csv): not a customer named "first last"
            yield row_number, RowError("repeated_header", "the header line is repeated here", values)
            continue
        if len(values) != len(columns):
            raw = dict(zip(columns, values)) if len(values) < len(columns) else {"values": values}
            yield row_number, RowError(
                "column_count", f"row has {len(values)} fields, the header has {len(columns)}", raw)
            continue
        yield row_number, dict(zip(columns, values))


def read_jsonl(text: io.TextIOBase, options: ReadOptions, info: FileInfo) -> Iterator[Row]:
    lines = _CappedLines(text, options.max_row_bytes)
    row_number = 0
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except RowTooLarge as err:
            row_number += 1
            yield row_number, RowError("row_too_large", str(err))
            continue
        if not line.strip():
            continue
        row_number += 1
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as err:  # RecursionError: hostile nesting ([[[...]]])
            yield row_number, RowError("invalid_json", f"not valid JSON: {err}", line[:1000])
            continue
        if not isinstance(value, dict):
            yield row_number, RowError("not_an_object", f"expected a JSON object, got {type(value).__name__}", value)
            continue
        yield row_number, value


def read_json_array(text: io.TextIOBase, options: ReadOptions, info: FileInfo) -> Iterator[Row]:
    """A top-level JSON array of objects, decoded element by element from a bounded buffer."""
    decoder = json.JSONDecoder()
    buffer, eof, pos = "", False, 0

    def fill() -> bool:
        nonlocal buffer, pos, eof
        chunk = text.read(TEXT_CHUNK)
        buffer = buffer[pos:] + chunk
        pos = 0
        eof = not chunk
        return bool(chunk)

    def skip_ws() -> None:
        nonlocal pos
        while True:
            while pos < len(buffer) and buffer[pos] in " \t\r\n\ufeff":
                pos += 1
            if pos < len(buffer) or not fill():
                return

    fill()
    skip_ws()
    if pos >= len(buffer):
        raise FileError("empty_file", "the file is empty")
    if buffer[pos] != "[":
        raise FileError("invalid_json", "a JSON file must hold one array of objects (or use JSON Lines)")
    pos += 1
    row_number = 0
    expect_item = True
    while True:
        skip_ws()
        if pos >= len(buffer):
            raise FileError("invalid_json", f"the JSON array is not closed (after row {row_number})")
        if buffer[pos] == "]":
            return
        if not expect_item:
            if buffer[pos] != ",":
                raise FileError("invalid_json", f"expected ',' or ']' after row {row_number}")
            pos += 1
            expect_item = True
            continue
        while True:
            try:
                value, end = decoder.raw_decode(buffer, pos)
                break
            except RecursionError:  # hostile nesting: the array cannot be resynchronised after it
                raise FileError("invalid_json", f"row {row_number + 1} is nested too deeply") from None
            except ValueError as err:
                if len(buffer) - pos > options.max_row_bytes:
                    raise FileError("row_too_large",
                                    f"row {row_number + 1} is larger than {options.max_row_bytes} bytes") from None
                if eof or not fill():
                    raise FileError("invalid_json", f"invalid JSON in row {row_number + 1}: {err}") from None
        pos = end
        row_number += 1
        expect_item = False
        if isinstance(value, dict):
            yield row_number, value
        else:
            yield row_number, RowError("not_an_object", f"expected a JSON object, got {type(value).__name__}", value)


def read_parquet(data: io.BufferedReader, options: ReadOptions, info: FileInfo) -> Iterator[Row]:
    """Parquet needs random access (its footer is at the end): spool to a temp file, then read by row group."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(data, spool, TEXT_CHUNK)
        if spool.tell() == 0:
            raise FileError("empty_file", "the file is empty")
        spool.seek(0)
        try:
            parquet = pq.ParquetFile(spool)
        except Exception as err:  # pyarrow raises ArrowInvalid and friends
            raise FileError("invalid_parquet", f"not a readable Parquet file: {err}") from None
        info.columns = list(parquet.schema_arrow.names)
        row_number = 0
        batches = parquet.iter_batches(batch_size=10_000)  # row group by row group, a slice at a time
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as err:
                raise FileError("invalid_parquet", f"row {row_number + 1} onwards cannot be read: {err}") from None
            for row in batch.to_pylist():
                row_number += 1
                yield row_number, row


def read_rows(stream: BinaryIO, name: str, options: ReadOptions | None = None,
              info: FileInfo | None = None) -> Iterator[Row]:
    """Rows of a landed file, whatever its format and compression. ``info`` is filled in as reading goes."""
    options = options or ReadOptions()
    info = info if info is not None else FileInfo()
    data = open_decompressed(stream, name, options, info)
    try:
        head = data.peek(1)
    except FileError:
        raise
    if not head:
        raise FileError("empty_file", "the file is empty (0 bytes)")
    fmt = (options.format or format_from_name(name) or sniff_format(data)).lower()
    if fmt in ("ndjson", "jsonlines"):
        fmt = "jsonl"
    if fmt not in FORMATS:
        raise FileError("unsupported_format", f"format {fmt!r} is not supported ({', '.join(FORMATS)})")
    info.format = fmt
    if fmt == "parquet":
        yield from read_parquet(data, options, info)
        return
    text = text_stream(data, options, info)
    reader = {"csv": read_csv, "jsonl": read_jsonl, "json": read_json_array}[fmt]
    try:
        yield from reader(text, options, info)
    except UnicodeDecodeError as err:  # only for non-UTF-8 codecs that cannot escape (e.g. UTF-16 odd bytes)
        raise FileError("invalid_encoding", f"the file is not valid {info.encoding}: {err.reason}") from None
