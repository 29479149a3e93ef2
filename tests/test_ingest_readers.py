"""Readers on real files: formats, encodings, delimiters, compression, limits. No stack needed."""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.ingest.readers import (FileError, FileInfo, ReadOptions, RowError, detect_encoding, read_rows,
                                   stream_from_chunks)

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"


def rows_of(data: bytes, name: str, **options) -> tuple[list, FileInfo]:
    info = FileInfo()
    return list(read_rows(io.BytesIO(data), name, ReadOptions(**options), info)), info


def test_csv_with_bom_semicolons_crlf_and_quoted_newlines():
    rows, info = rows_of((FIXTURES / "crm_bom_semicolon.csv").read_bytes(), "crm.csv")
    assert info.delimiter == ";" and info.columns == ["id", "name", "joined"]
    assert rows == [(1, {"id": "1", "name": "Smith; John", "joined": "01/02/2020"}),
                    (2, {"id": "2", "name": "Multi\r\nLine", "joined": "15/03/2021"})]


def test_latin1_file_is_detected_and_decoded():
    rows, info = rows_of((FIXTURES / "latin1.csv").read_bytes(), "latin1.csv")
    assert info.encoding.lower().replace("_", "-") in ("iso-8859-1", "latin-1", "cp1252", "windows-1252", "cp1250",
                                                       "iso-8859-15", "latin1")
    assert [r["name"] for _, r in rows] == ["José", "François", "Renée"]
    assert rows[0][1]["city"] == "München"


def test_declared_encoding_wins():
    rows, info = rows_of("id,name\n1,Łódź\n".encode("cp1250"), "x.csv", encoding="cp1250")
    assert rows[0][1]["name"] == "Łódź" and info.encoding == "cp1250"


def test_utf8_detection_tolerates_a_few_bad_bytes():
    sample = ("id,name\n" + "1,Zoë\n" * 50).encode() + b"2,Jos\xe9\n"
    assert detect_encoding(sample) == "utf-8"


def test_jsonl_bad_lines_become_row_errors_and_blank_lines_are_skipped():
    rows, info = rows_of((FIXTURES / "events.jsonl").read_bytes(), "events.jsonl")
    assert info.format == "jsonl"
    assert [n for n, _ in rows] == [1, 2, 3, 4, 5]
    assert isinstance(rows[2][1], RowError) and rows[2][1].code == "invalid_json"
    assert isinstance(rows[3][1], RowError) and rows[3][1].code == "not_an_object"
    assert rows[4][1]["id"] == "e3"


def test_json_array_is_streamed_across_chunk_boundaries():
    import json

    items = [{"i": i, "text": "x" * (i * 997 % 5000), "nested": {"a": [1, "]"]}} for i in range(400)]
    data = json.dumps(items).encode()
    chunks = [data[i:i + 4096] for i in range(0, len(data), 4096)]
    rows = list(read_rows(stream_from_chunks(chunks), "big.json", ReadOptions()))
    assert [r for _, r in rows] == items


def test_json_array_fixture_and_broken_array():
    rows, info = rows_of((FIXTURES / "reviews.json").read_bytes(), "reviews.json")
    assert info.format == "json" and [r["review_id"] for _, r in rows] == ["r1", "r2", "r3"]
    with pytest.raises(FileError) as err:
        rows_of(b'[{"a": 1}, {"a": ', "broken.json")
    assert err.value.code == "invalid_json"
    with pytest.raises(FileError) as err:
        rows_of(b'{"a": 1}', "object.json", format="json")
    assert err.value.code == "invalid_json"


def test_parquet_is_read_by_row_group():
    table = pa.table({"id": [f"P{i}" for i in range(25)], "n": list(range(25))})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=10)
    rows, info = rows_of(buf.getvalue(), "members.parquet")
    assert info.format == "parquet" and info.columns == ["id", "n"]
    assert [r["n"] for _, r in rows] == list(range(25)) and rows[-1][0] == 25
    with pytest.raises(FileError) as err:
        rows_of(b"PAR1 not really parquet", "bad.parquet")
    assert err.value.code == "invalid_parquet"


def test_format_is_sniffed_when_the_name_does_not_say():
    assert rows_of(b'{"a": 1}\n', "export.dat")[1].format == "jsonl"
    assert rows_of(b'[{"a": 1}]', "export.dat")[1].format == "json"
    assert rows_of(b"a,b\n1,2\n", "export.dat")[1].format == "csv"


def test_gzip_by_magic_bytes_and_cap_on_decompressed_size():
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 1000)
    rows, info = rows_of(data, "noext")
    assert len(rows) == 1000 and info.compression == "gzip" and info.bytes_read == 4 + 4000
    bomb = gzip.compress(b"a,b\n" + b"0,0\n" * 500_000)  # 2 MB that packs into a few KB
    with pytest.raises(FileError) as err:
        rows_of(bomb, "bomb.csv.gz", max_decompressed_bytes=100_000)
    assert err.value.code == "decompressed_size_exceeded"


def test_corrupt_gzip_is_a_file_error():
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 1000)
    with pytest.raises(FileError) as err:
        rows_of(data[: len(data) // 2], "cut.csv.gz")
    assert err.value.code == "corrupt_compression"


def test_empty_and_header_only():
    with pytest.raises(FileError) as err:
        rows_of(b"", "empty.csv")
    assert err.value.code == "empty_file"
    rows, info = rows_of(b"a,b\r\n", "header.csv")
    assert rows == [] and info.columns == ["a", "b"]


def test_overlong_line_is_one_row_error_and_reading_goes_on():
    data = b"a,b\n1,2\n3," + b"x" * 300_000 + b"\n5,6\n"
    rows, _ = rows_of(data, "x.csv", max_row_bytes=100_000)
    assert rows[0] == (1, {"a": "1", "b": "2"})
    assert isinstance(rows[1][1], RowError) and rows[1][1].code == "row_too_large"
    assert rows[2] == (3, {"a": "5", "b": "6"})


def test_column_count_mismatch_and_duplicate_header():
    rows, _ = rows_of(b"a,b\n1,2,3\n4\n", "x.csv")
    assert [r.code for _, r in rows] == ["column_count", "column_count"]
    with pytest.raises(FileError) as err:
        rows_of(b"a,a\n1,2\n", "x.csv")
    assert err.value.code == "duplicate_columns"
