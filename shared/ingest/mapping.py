"""Source mappings (config/sources/<source>.<entity>.json) and mapping + validation of raw rows.

The mapping format is the one of issue 4, plus documented extensions:

    {"source": "pos", "entity": "customers", "record_key": ["customer_no"],
     "fields": {"given_name": "first", "birth_date": {"column": "dob", "format": "%Y%m%d"},
                "phone": {"column": "tel", "region": "GB"}, ...},
     "identifiers": {"loyalty_id": "card_no"},
     "attributes": ["store_code"],
     # extensions (all optional)
     "format": "csv|jsonl|json|parquet", "compression": "gzip|none", "encoding": "utf-8",
     "delimiter": ";", "quotechar": "\"", "timezone": "UTC", "required": ["email"]}

A field spec is a column name or an object: ``column`` (a dotted path reaches into nested JSON), ``columns``
(joined with "|"), ``format`` (strptime format, a list of them, or "epoch"/"epoch_ms"), ``region`` (default phone
region: the row's phone_region when that names no country, empty or a placeholder such as "n/a"), ``value`` (a
constant), ``default``, ``decimal`` ("," for decimal commas), ``on_invalid``.

``on_invalid``: "quarantine" (the default) quarantines a row whose value of the field cannot be used (an impossible
date, a number that is not one, a value too large or not valid text, a value the model refuses, e.g. a rating of 7);
"drop" keeps the row without that value and flags it ``dropped_invalid:<field>`` (the field's name, never the
value), counted in the report's ``flags``. Only for optional values: refused on the record key, required fields, the
natural id and customer key of activity and fields whose absence means something else (NO_DROP).

Transactions may map one item from plain columns (a line-level file: one row per order line) with the fields
``sku``, ``quantity`` and ``unit_price`` (ITEM_FIELDS): the row's ``items`` is then the one item
``{"sku", "quantity", "price", "category"}`` (the row's category), instead of a JSON ``items`` column.

A row maps to a canonical pydantic model or to a list of every reason it cannot (never just the first).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..models import ENTITIES, CustomerRecord, Event, Review, Transaction
from ..normalize import region_code
from .readers import ReadOptions, RowError, has_bad_encoding

KEY_JOINER = "|"
MIN_DATE = date(1900, 1, 1)
FUTURE_SKEW = timedelta(days=1)  # source clocks and time zones: a timestamp up to a day ahead is still plausible
MODELS: dict[str, type[BaseModel]] = {
    "customers": CustomerRecord, "transactions": Transaction, "events": Event, "reviews": Review,
}
NATURAL_ID = {"transactions": "order_id", "events": "event_id", "reviews": "review_id"}
# Canonical fields a row cannot do without (besides the record key), per entity.
REQUIRED_FIELDS = {
    "customers": (),
    "transactions": ("order_id", "customer_key", "timestamp", "amount"),
    "events": ("event_id", "timestamp"),
    "reviews": ("review_id", "customer_key", "timestamp"),
}
# Fields "on_invalid": "drop" is refused on (besides REQUIRED_FIELDS and the mapping's `required`): the keys that
# identify a row or its owner, and values whose absence means something else (no kind is a purchase, no type a track
# event, no line id a whole order).
NO_DROP = {
    "customers": ("record_key",),
    "transactions": ("order_id", "customer_key", "timestamp", "amount", "kind", "line_id"),
    "events": ("event_id", "customer_key", "timestamp", "type"),
    "reviews": ("review_id", "customer_key", "timestamp"),
}
_NO_DROP_WHY = {"kind": "without it a row is a purchase", "type": "without it an event is a track event",
                "line_id": "without it a row is a whole order"}
DROPPED_FLAG = "dropped_invalid"
DATE_FIELDS = {"birth_date"}
DATETIME_FIELDS = {"updated_at", "timestamp"}
JSON_FIELDS = {"items", "traits", "properties"}
# Transactions: mapping fields that build the row's one item (not canonical fields): field -> item key.
ITEM_FIELDS = {"sku": "sku", "quantity": "quantity", "unit_price": "price"}
ITEM_NUMBERS = {"quantity", "unit_price"}
MAX_AMOUNT = Decimal(10) ** 15  # beyond float's exact integers; no retail amount is near it
MAX_JSON_DEPTH = 64  # pydantic's serializer gives up near 255 levels, mid-file; real properties are shallow
NOT_TEXT = DATE_FIELDS | DATETIME_FIELDS | JSON_FIELDS | ITEM_NUMBERS | {"amount", "rating", "phone"}
_NUMBER_LIKE = re.compile(r"^[+-][\d\s().,]*$")
_FORMULA_START = frozenset("=@+-\t\r")
_DOT_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d*)?$")  # 1.234.567,89 with a decimal comma
# strptime costs ~20 µs; these common date layouts are sliced directly (strptime still decides odd input).
_FAST_DATES = {"%Y%m%d": (slice(0, 4), slice(4, 6), slice(6, 8), 8),
               "%Y-%m-%d": (slice(0, 4), slice(5, 7), slice(8, 10), 10),
               "%d/%m/%Y": (slice(6, 10), slice(3, 5), slice(0, 2), 10),
               "%m/%d/%Y": (slice(6, 10), slice(0, 2), slice(3, 5), 10),
               "%d.%m.%Y": (slice(6, 10), slice(3, 5), slice(0, 2), 10)}


def _fast_date(text: str, fmt: str) -> datetime | None:
    layout = _FAST_DATES.get(fmt)
    if layout is None or len(text) != layout[3]:
        return None
    y, m, d = text[layout[0]], text[layout[1]], text[layout[2]]
    if not (text.isascii() and y.isdigit() and m.isdigit() and d.isdigit()):
        return None
    if layout[3] == 10:
        first, second = (4, 7) if fmt.startswith("%Y") else (2, 5)
        if text[first] != fmt[2] or text[second] != fmt[2]:
            return None
    try:
        return datetime(int(y), int(m), int(d))
    except ValueError:
        return None


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str | None = None
    columns: list[str] | None = None
    format: str | list[str] | None = None
    region: str | None = Field(default=None, min_length=2, max_length=2)
    value: Any = None
    default: Any = None
    decimal: Literal[".", ","] = "."
    on_invalid: Literal["quarantine", "drop"] = "quarantine"  # "drop": keep the row without an unusable value

    @model_validator(mode="after")
    def _has_source(self) -> "FieldSpec":
        if not (self.column or self.columns or self.value is not None or self.default is not None):
            raise ValueError("a field needs a column, columns, value or default")
        return self

    def source_columns(self) -> list[str]:
        return list(self.columns or ([self.column] if self.column else []))


def _spec(value: str | dict | FieldSpec) -> FieldSpec:
    if isinstance(value, FieldSpec):
        return value
    return FieldSpec(column=value) if isinstance(value, str) else FieldSpec.model_validate(value)


class Mapping(BaseModel):
    """One source file type: how its columns map onto a canonical entity."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    entity: Literal["customers", "transactions", "events", "reviews"]
    record_key: list[str] = Field(default_factory=list)
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    identifiers: dict[str, FieldSpec] = Field(default_factory=dict)
    attributes: dict[str, FieldSpec] = Field(default_factory=dict)
    format: str | None = None
    compression: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    quotechar: str = '"'
    timezone: str = "UTC"
    required: list[str] = Field(default_factory=list)
    description: str | None = None

    @field_validator("record_key", mode="before")
    @classmethod
    def _key_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("fields", "identifiers", mode="before")
    @classmethod
    def _specs(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, dict):
            raise ValueError("must be an object of canonical field -> column or {column, format, region}")
        return {k: _spec(s) for k, s in (v or {}).items()}

    @field_validator("attributes", mode="before")
    @classmethod
    def _attribute_specs(cls, v: Any) -> Any:
        if isinstance(v, list):  # ["store_code"]: keep the column under its own name
            return {c: FieldSpec(column=c) for c in v}
        if v is not None and not isinstance(v, dict):
            raise ValueError("must be a list of columns or an object of attribute -> column")
        return {k: _spec(s) for k, s in (v or {}).items()}

    @field_validator("delimiter", "quotechar")
    @classmethod
    def _one_character(cls, v: str | None) -> str | None:
        if v in ("tab", "\\t"):
            return "\t"
        if v is not None and (len(v) != 1 or v in "\r\n"):  # else csv raises TypeError on every file
            raise ValueError('must be one character (or "tab"), not a line break')
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _fields_exist(self) -> "Mapping":
        if self.delimiter is not None and self.delimiter == self.quotechar:
            raise ValueError("delimiter and quotechar must differ")
        model = MODELS[self.entity]
        extra = ITEM_FIELDS if self.entity == "transactions" else {}
        unknown = [f for f in self.fields if (f not in model.model_fields and f not in extra) or f == "source"]
        if unknown:
            raise ValueError(f"unknown {self.entity} fields: {', '.join(unknown)}")
        if "items" in self.fields and any(f in self.fields for f in extra):
            raise ValueError("fields.items (a JSON list) and the one-item fields sku/quantity/unit_price exclude "
                             "each other")
        if self.entity == "customers" and not self.record_key and "record_key" not in self.fields:
            raise ValueError("a customers mapping needs record_key columns")
        natural = NATURAL_ID.get(self.entity)
        if natural and natural not in self.fields and not self.record_key:
            raise ValueError(f"a {self.entity} mapping needs fields.{natural} or record_key")
        self._drop_only_optional()
        return self

    def _drop_only_optional(self) -> None:
        """"on_invalid": "drop" only where a row stays what it is without the value (see NO_DROP)."""
        wrong = []
        for group in ("fields", "identifiers", "attributes"):
            for name, spec in getattr(self, group).items():
                if spec.on_invalid != "drop":
                    continue
                if name in self.required:
                    wrong.append(f"{group}.{name} (in required)")
                elif group == "fields" and name in REQUIRED_FIELDS[self.entity]:
                    wrong.append(f"{group}.{name} (required for {self.entity})")
                elif group == "fields" and name in NO_DROP[self.entity]:
                    wrong.append(f"{group}.{name} ({_NO_DROP_WHY.get(name, 'a key')})")
        if wrong:
            raise ValueError('on_invalid "drop" is only for optional values, not for ' + ", ".join(wrong))

    def read_options(self, settings=None) -> ReadOptions:
        opts = ReadOptions(format=self.format, compression=self.compression, encoding=self.encoding,
                           delimiter=self.delimiter, quotechar=self.quotechar)
        if settings is not None:
            opts.max_decompressed_bytes = settings.max_decompressed_bytes
            opts.max_row_bytes = max(4 * settings.max_field_bytes, 1024 * 1024)
        return opts

    def required_columns(self) -> list[str]:
        """Columns the file must have (record key, required canonical fields, mapping's ``required``)."""
        cols = list(self.record_key)
        for name in (*REQUIRED_FIELDS[self.entity], *self.required):
            spec = self.fields.get(name) or self.identifiers.get(name) or self.attributes.get(name)
            if spec is None:
                if name in self.required and name not in MODELS[self.entity].model_fields:
                    cols.append(name)  # `required` may name a raw column
            elif spec.value is None and spec.default is None:
                cols += [c for c in spec.source_columns() if "." not in c]
        return list(dict.fromkeys(cols))

    def mapped_columns(self) -> set[str]:
        cols = set(self.record_key)
        for spec in (*self.fields.values(), *self.identifiers.values(), *self.attributes.values()):
            cols.update(c.split(".")[0] for c in spec.source_columns())
        return cols


def parse_mapping(data: dict[str, Any] | str | bytes) -> Mapping:
    """A Mapping from its JSON/YAML text or dict; raises ValueError with every problem found."""
    if isinstance(data, (str, bytes)):
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        try:
            data = json.loads(text)
        except ValueError:
            import yaml

            data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("a mapping must be a JSON object")
    try:
        return Mapping.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'mapping'}: {e['msg']}" for e in err.errors())
        raise ValueError(f"invalid mapping: {problems}") from None


def load_mapping_file(path: str | Path) -> Mapping:
    return parse_mapping(Path(path).read_bytes())


# ------------------------------------------------------------------------------------------------- rows


@dataclass
class Reason:
    code: str
    field: str | None
    message: str

    @property
    def key(self) -> str:
        return f"{self.code}:{self.field}" if self.field else self.code

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "message": self.message}


@dataclass
class MappedRow:
    row: int
    raw: Any
    item: BaseModel | None = None
    reasons: list[Reason] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # e.g. formula_like:given_name (accepted, kept inert)
    record_key: str | None = None


def is_formula_like(value: Any) -> bool:
    """Text a spreadsheet would run as a formula (CSV injection): kept as text, escaped on export."""
    if not isinstance(value, str) or not value:
        return False
    if value[0] in "=@\t\r":
        return True
    return value[0] in "+-" and not _NUMBER_LIKE.match(value)


def escape_formula(value: Any) -> Any:
    """The value made inert for spreadsheet export (OWASP: prefix a single quote)."""
    return "'" + value if is_formula_like(value) else value


def _lookup(raw: dict[str, Any], column: str) -> Any:
    if column in raw:
        return raw[column]
    if "." in column:
        node: Any = raw
        for part in column.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node
    return None


def _too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when a JSON value nests deeper than limit (walked iteratively: no recursion to exhaust)."""
    level = [value]
    for _ in range(limit):
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v) if isinstance(c, (dict, list))]
        if not level:
            return False
    return True


def _blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, str) and value.isspace())


def _as_text(value: Any) -> Any:
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        if not math.isfinite(value):  # Parquet/pandas NaN means no value, not the text "nan"
            return None
    elif isinstance(value, bytes):  # Parquet BINARY without a UTF8 annotation; bad bytes stay marked
        return value.decode("utf-8", "surrogateescape").strip()
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else value


class RowMapper:
    """Maps raw rows of one file onto the mapping's canonical model, collecting every reason a row fails."""

    def __init__(self, mapping: Mapping, *, max_field_bytes: int = 64 * 1024, now: datetime | None = None):
        self.mapping = mapping
        self.model = MODELS[mapping.entity]
        self.max_field_bytes = max_field_bytes
        self.zone = ZoneInfo(mapping.timezone)
        self.now = now or datetime.now(timezone.utc)
        self.today = self.now.date()
        # Text fields read straight from one column, with no default: eligible for map_row's fast path.
        self._plain = {name for name, spec in mapping.fields.items()
                       if name not in NOT_TEXT and name != "kind" and spec.column and "." not in spec.column
                       and spec.value is None and spec.default is None}
        self._drop = {name for name, spec in mapping.fields.items() if spec.on_invalid == "drop"}

    # --- value extraction and conversion

    def value_of(self, spec: FieldSpec, raw: dict[str, Any]) -> Any:
        """The raw value a field spec selects (constant, joined columns or one column), default if blank."""
        if spec.value is not None:
            return spec.value
        if spec.columns:
            parts = [_as_text(_lookup(raw, c)) for c in spec.columns]
            value = None if any(_blank(p) for p in parts) else KEY_JOINER.join(str(p) for p in parts)
        else:
            value = _lookup(raw, spec.column) if spec.column else None
        return spec.default if _blank(value) else value

    def _date(self, name: str, value: Any, spec: FieldSpec, reasons: list[Reason]) -> date | None:
        if isinstance(value, date):  # typed columns (Parquet date32/timestamp) still get the range check
            parsed: Any = value
        else:
            parsed = self._parse_datetime(str(value).strip(), spec, as_date=True)
        if parsed is None:
            reasons.append(Reason("invalid_date", name, f"{name} is not a date{self._fmt_hint(spec)}"))
            return None
        d = parsed.date() if isinstance(parsed, datetime) else parsed
        if d < MIN_DATE or d > self.today:
            reasons.append(Reason("date_out_of_range", name, f"{name} {d.isoformat()} is before 1900 or in the future"))
            return None
        return d

    def _datetime(self, name: str, value: Any, spec: FieldSpec, reasons: list[Reason]) -> datetime | None:
        if isinstance(value, datetime):
            parsed: Any = value
        elif isinstance(value, date):
            parsed = datetime(value.year, value.month, value.day)
        else:
            parsed = self._parse_datetime(str(value).strip(), spec, as_date=False)
        if parsed is None:
            reasons.append(Reason("invalid_date", name, f"{name} is not a date-time{self._fmt_hint(spec)}"))
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self.zone)
        try:
            parsed = parsed.astimezone(timezone.utc)
        except OverflowError:  # year 1 or 9999 shifted past the calendar's edge
            reasons.append(Reason("date_out_of_range", name, f"{name} is before 1900 or in the future"))
            return None
        if parsed.date() < MIN_DATE or parsed > self.now + FUTURE_SKEW:
            reasons.append(Reason("date_out_of_range", name,
                                  f"{name} {parsed.isoformat()} is before 1900 or in the future"))
            return None
        return parsed

    @staticmethod
    def _fmt_hint(spec: FieldSpec) -> str:
        return f" in format {spec.format}" if spec.format else " (ISO 8601 expected)"

    @staticmethod
    def _parse_datetime(text: str, spec: FieldSpec, *, as_date: bool) -> date | datetime | None:
        formats = [spec.format] if isinstance(spec.format, str) else list(spec.format or [])
        for fmt in formats:
            try:
                if fmt in ("epoch", "epoch_ms"):
                    seconds = float(text) / (1000 if fmt == "epoch_ms" else 1)
                    return datetime.fromtimestamp(seconds, timezone.utc)
                fast = _fast_date(text, fmt)
                return fast if fast is not None else datetime.strptime(text, fmt)
            except (ValueError, OverflowError, OSError):
                continue
        if formats:
            return None
        try:
            return date.fromisoformat(text) if as_date and len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            return None

    def _amount(self, name: str, value: Any, spec: FieldSpec, reasons: list[Reason]) -> Decimal | None:
        text = str(value).strip()
        if spec.decimal == "," and isinstance(value, str):  # a JSON/Parquet number has no separators to swap
            if "." in text and not _DOT_THOUSANDS.match(text):  # "12.50" is not 1250
                reasons.append(Reason("invalid_number", name, f"{name} has a '.' that is not a thousands separator "
                                                              "(the mapping says the decimal mark is ',')"))
                return None
            text = text.replace(".", "").replace(",", ".")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            reasons.append(Reason("invalid_number", name, f"{name} is not a number"))
            return None
        if not amount.is_finite() or abs(amount) >= MAX_AMOUNT:  # 1e400 is finite, but float(...) is inf
            reasons.append(Reason("invalid_number", name, f"{name} is not a finite number below {MAX_AMOUNT:,}"))
            return None
        return amount

    def _json(self, name: str, value: Any, reasons: list[Reason]) -> Any:
        if not isinstance(value, str):
            return value
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: hostile nesting
            reasons.append(Reason("invalid_json", name, f"{name} is not valid JSON"))
            return None
        if isinstance(parsed, (dict, list)) and _too_deep(parsed):
            reasons.append(Reason("invalid_json", name, f"{name} nests deeper than {MAX_JSON_DEPTH} levels"))
            return None
        return parsed

    def _checked(self, name: str, value: Any, reasons: list[Reason]) -> tuple[bool, Any]:
        """Size and encoding checks every raw value goes through; False drops the value."""
        if isinstance(value, bytes):  # Parquet BINARY: text if UTF-8, else bad bytes escaped (invalid_encoding)
            value = value.decode("utf-8", "surrogateescape")
        if isinstance(value, str):
            if len(value) * 4 > self.max_field_bytes and \
                    len(value.encode("utf-8", "surrogateescape")) > self.max_field_bytes:
                reasons.append(Reason("field_too_large", name, f"{name} is larger than {self.max_field_bytes} bytes"))
                return False, None
            if has_bad_encoding(value):
                reasons.append(Reason("invalid_encoding", name, f"{name} has bytes that are not valid in the file's encoding"))
                return False, None
        elif isinstance(value, (dict, list)):
            if _too_deep(value):
                reasons.append(Reason("invalid_json", name, f"{name} nests deeper than {MAX_JSON_DEPTH} levels"))
                return False, None
            text = json.dumps(value, default=str)
            if len(text) > self.max_field_bytes:
                reasons.append(Reason("field_too_large", name, f"{name} is larger than {self.max_field_bytes} bytes"))
                return False, None
            # A surrogate nested anywhere is dumped as a \ud escape (rare: only then the exact check)
            if "\\ud" in text and has_bad_encoding(json.dumps(value, default=str, ensure_ascii=False)):
                reasons.append(Reason("invalid_encoding", name, f"{name} holds text that is not valid Unicode"))
                return False, None
        return True, value

    def _convert(self, name: str, value: Any, spec: FieldSpec, reasons: list[Reason], flags: list[str]) -> Any:
        ok, value = self._checked(name, value, reasons)
        if not ok or _blank(value):
            return None
        if name in DATE_FIELDS:
            return self._date(name, value, spec, reasons)
        if name in DATETIME_FIELDS:
            return self._datetime(name, value, spec, reasons)
        if name == "amount":
            return self._amount(name, value, spec, reasons)
        if name in ITEM_NUMBERS and self.mapping.entity == "transactions":
            number = self._amount(name, value, spec, reasons)
            if number is None:
                return None
            return int(number) if name == "quantity" and number == number.to_integral_value() else float(number)
        if name in JSON_FIELDS:
            return self._json(name, value, reasons)
        if name == "kind" and isinstance(value, str):
            return value.strip().lower()
        value = _as_text(value)
        if name not in NOT_TEXT and is_formula_like(value):
            flags.append(f"formula_like:{name}")
        return value

    def _convert_or_drop(self, name: str, spec: FieldSpec, raw: dict[str, Any], flags: list[str]) -> Any:
        """The converted value of an on_invalid "drop" field; an unusable one is left out and flagged instead of
        adding its reasons (every reason of the value, size and encoding included: the row stays valid)."""
        own: list[Reason] = []
        value = self._convert(name, self.value_of(spec, raw), spec, own, flags)
        if own:
            flags.append(f"{DROPPED_FLAG}:{name}")
            return None
        return value

    # --- the row

    def record_key_of(self, raw: dict[str, Any]) -> str | None:
        if not self.mapping.record_key:
            return None
        parts = [_as_text(_lookup(raw, c)) for c in self.mapping.record_key]
        if any(_blank(p) or has_bad_encoding(p) for p in parts):
            return None
        return KEY_JOINER.join(str(p) for p in parts)

    def map_row(self, row: int, raw: dict[str, Any] | RowError) -> MappedRow:
        if isinstance(raw, RowError):
            return MappedRow(row, raw.raw, reasons=[Reason(raw.code, None, raw.message)])
        out = MappedRow(row, raw)
        reasons, flags = out.reasons, out.flags
        values: dict[str, Any] = {"source": self.mapping.source}
        m = self.mapping
        key = self.record_key_of(raw)
        if m.record_key:
            if key is None and any(has_bad_encoding(_as_text(_lookup(raw, c))) for c in m.record_key):
                reasons.append(Reason("invalid_encoding", "record_key", "the record key is not valid text"))
            elif key is None:
                reasons.append(Reason("missing_value", "record_key",
                                      f"record key column(s) {', '.join(m.record_key)} empty or missing"))
            elif len(key.encode()) > 256:
                reasons.append(Reason("field_too_large", "record_key", "record key is longer than 256 bytes"))
            else:
                out.record_key = key
                if m.entity == "customers":
                    values["record_key"] = key
                else:
                    values[NATURAL_ID[m.entity]] = key
        for name, spec in m.fields.items():
            if name in self._plain:  # fast path: a short, clean text cell (most cells of most files)
                value = raw.get(spec.column)
                if type(value) is str and len(value) * 4 <= self.max_field_bytes and value.isascii():
                    value = value.strip()
                    if value:
                        values[name] = value
                        if value[0] in _FORMULA_START and is_formula_like(value):
                            flags.append(f"formula_like:{name}")
                    continue
            if spec.on_invalid == "drop":
                value = self._convert_or_drop(name, spec, raw, flags)
            else:
                value = self._convert(name, self.value_of(spec, raw), spec, reasons, flags)
            if value is not None:
                values[name] = value
        phone = m.fields.get("phone")
        row_region = values.get("phone_region")
        if phone is not None and phone.region and (
                not row_region or (type(row_region) is str and not region_code(row_region))):
            # The mapping's default when the row names no country: an empty cell, or a placeholder (n/a, -, unknown)
            values["phone_region"] = phone.region.upper()
        if m.entity == "customers":
            self._extras(raw, values, reasons, flags)
        elif out.record_key is None:
            out.record_key = _as_text(values.get(NATURAL_ID[m.entity]))
        if m.entity == "transactions":
            self._one_item(values)
        for name in (*REQUIRED_FIELDS[m.entity], *m.required):
            if not any(r.field == name for r in reasons) and not self._present(name, values, raw):
                reasons.append(Reason("missing_value", name, f"{name} is required"))
        self._business_rules(values, reasons)
        if reasons:
            return out
        try:
            out.item = self.model.model_validate(values)
        except ValidationError as err:
            errors = err.errors()
            if self._drop and self._drop_refused(errors, values, flags):
                errors = [e for e in errors if not e["loc"] or e["loc"][0] not in self._drop]
                if not errors:
                    try:
                        out.item = self.model.model_validate(values)
                    except ValidationError as again:
                        errors = again.errors()
            for e in errors:
                loc = ".".join(str(p) for p in e["loc"]) or None
                reasons.append(Reason("invalid_value", loc, f"{loc}: {e['msg']}"))
        return out

    def _drop_refused(self, errors: list[Any], values: dict[str, Any], flags: list[str]) -> bool:
        """Leaves out (and flags) the values of "drop" fields the model refused, e.g. a rating of 7; True if any."""
        refused = dict.fromkeys(e["loc"][0] for e in errors if e["loc"] and e["loc"][0] in self._drop)
        for name in refused:
            values.pop(name, None)
            flags.append(f"{DROPPED_FLAG}:{name}")
        return bool(refused)

    def _present(self, name: str, values: dict[str, Any], raw: dict[str, Any]) -> bool:
        if values.get(name) is not None:
            return True
        if name in values.get("identifiers", {}) or name in values.get("attributes", {}):
            return True
        return name not in self.model.model_fields and not _blank(_lookup(raw, name))

    def _extras(self, raw: dict[str, Any], values: dict[str, Any], reasons: list[Reason], flags: list[str]) -> None:
        identifiers: dict[str, str] = {}
        for id_type, spec in self.mapping.identifiers.items():
            if spec.on_invalid == "drop":
                value = self._convert_or_drop(id_type, spec, raw, flags)
            else:
                value = self._convert(id_type, self.value_of(spec, raw), spec, reasons, flags)
            if value is None:
                continue
            if id_type in CustomerRecord.model_fields and id_type != "identifiers":
                values.setdefault(id_type, str(value))  # a canonical identifier (loyalty_id, email, phone)
            else:
                identifiers[id_type] = str(value)
        if identifiers:
            values["identifiers"] = identifiers
        attributes: dict[str, Any] = {}
        for name, spec in self.mapping.attributes.items():
            value = self.value_of(spec, raw)
            own: list[Reason] = [] if spec.on_invalid == "drop" else reasons
            ok, value = self._checked(name, value, own)
            if not ok and own is not reasons:
                flags.append(f"{DROPPED_FLAG}:{name}")
            if ok and not _blank(value):
                value = _as_text(value) if not isinstance(value, (dict, list, bool)) else value
                if value is None:  # NaN
                    continue
                attributes[name] = value
                if is_formula_like(value):
                    flags.append(f"formula_like:{name}")
        if attributes:
            values["attributes"] = attributes

    @staticmethod
    def _one_item(values: dict[str, Any]) -> None:
        """The row's item from the one-item fields (ITEM_FIELDS), with the row's category; none when all blank."""
        item = {key: values.pop(name) for name, key in ITEM_FIELDS.items() if name in values}
        if item:
            if values.get("category") is not None:
                item["category"] = values["category"]
            values["items"] = [item]

    def _business_rules(self, values: dict[str, Any], reasons: list[Reason]) -> None:
        if self.mapping.entity == "events" and not values.get("customer_key") and not values.get("anonymous_id") \
                and not any(r.field in ("customer_key", "anonymous_id") for r in reasons):
            reasons.append(Reason("missing_value", "customer_key", "an event needs a customer key or an anonymous id"))
        if self.mapping.entity != "transactions":
            return
        kind = values.get("kind", "purchase")
        amount = values.get("amount")
        if kind == "purchase" and isinstance(amount, Decimal) and amount < 0:
            reasons.append(Reason("negative_amount", "amount", "a purchase cannot have a negative amount"))
        if kind == "purchase" and "line_id" in self.mapping.fields and values.get("line_id") is None \
                and not any(r.field == "line_id" for r in reasons):
            # a line-level file: a purchase row without its line would be stored as a whole order beside its lines
            reasons.append(Reason("missing_value", "line_id", "a purchase row needs its line id (fields.line_id)"))

