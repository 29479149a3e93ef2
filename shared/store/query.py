"""A small filter language that both stores evaluate: the in-memory store in Python, Cosmos as parameterized SQL.

A filter is either a condition ``(path, op, value)`` or a combination ``("and", [f, ...])``,
``("or", [f, ...])``, ``("not", f)``. Paths are dotted field names (``churn.score``); values are always
sent as query parameters, never pasted into the SQL text. ``(path, "type", "string")`` holds when the value
is of that JSON type (null, boolean, number, string, array or object; Cosmos DB's IS_STRING and so on).
"""
from __future__ import annotations

import re
from typing import Any, Union

Condition = tuple[str, str, Any]
Filter = Union[Condition, tuple[str, Any], None]

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "contains", "startswith", "defined", "undefined", "type")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")  # fullmatch: "$" allows a final "\n"
_SQL_OPS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_TYPE_FUNCTIONS = {"null": "IS_NULL", "boolean": "IS_BOOL", "number": "IS_NUMBER", "string": "IS_STRING",
                   "array": "IS_ARRAY", "object": "IS_OBJECT"}


class InvalidFilterError(ValueError):
    pass


def where(**equals: Any) -> Filter:
    """Shorthand: ``where(source="pos", kind="customer")`` is an AND of equalities."""
    conds = [(k, "=", v) for k, v in equals.items()]
    if not conds:
        return None
    return conds[0] if len(conds) == 1 else ("and", conds)


def sql_path(path: str, alias: str = "c") -> str:
    """A validated path as Cosmos SQL property access. Brackets, not dots, so that parts that are SQL keywords
    (attributes.email.value) still parse: c["attributes"]["email"]["value"]."""
    return alias + "".join(f'["{part}"]' for part in _check_path(path).split("."))


def _check_path(path: str) -> str:
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise InvalidFilterError(f"invalid field path {path!r}")
    return path


def _is_combination(f: Any) -> bool:
    return isinstance(f, tuple) and len(f) == 2 and f[0] in ("and", "or", "not")


def to_sql(filter_: Filter, alias: str = "c") -> tuple[str, list[dict[str, Any]]]:
    """Translate a filter into a WHERE expression and its parameters (empty expression for no filter)."""
    params: list[dict[str, Any]] = []

    def param(value: Any) -> str:
        name = f"@p{len(params)}"
        params.append({"name": name, "value": value})
        return name

    def walk(f: Any) -> str:
        if _is_combination(f):
            kind, parts = f
            if kind == "not":
                return f"(NOT ({walk(parts)}))"  # parenthesized: the emulator binds NOT tighter than =
            if not parts:
                raise InvalidFilterError(f"empty {kind!r}")
            return "(" + f" {kind.upper()} ".join(walk(p) for p in parts) + ")"
        if not (isinstance(f, tuple) and len(f) == 3):
            raise InvalidFilterError(f"a condition is (path, op, value), got {f!r}")
        path, op, value = f
        ref = sql_path(path, alias)
        if op in _SQL_OPS:
            return f"{ref} {_SQL_OPS[op]} {param(value)}"
        if op == "in":
            return f"ARRAY_CONTAINS({param(list(value))}, {ref})"
        if op == "contains":
            return f"ARRAY_CONTAINS({ref}, {param(value)})"
        if op == "startswith":
            return f"STARTSWITH({ref}, {param(value)})"
        if op == "defined":
            return f"IS_DEFINED({ref})"
        if op == "undefined":
            return f"NOT IS_DEFINED({ref})"
        if op == "type":
            return f"{_type_function(value)}({ref})"
        raise InvalidFilterError(f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")

    if filter_ is None:
        return "", params
    return walk(filter_), params


def _type_function(kind: Any) -> str:
    if kind not in _TYPE_FUNCTIONS:
        raise InvalidFilterError(f"unknown JSON type {kind!r}; use one of {', '.join(_TYPE_FUNCTIONS)}")
    return _TYPE_FUNCTIONS[kind]


def validate(filter_: Filter, order_by: str | None = None) -> None:
    """Raise InvalidFilterError for a malformed filter or sort path, whether or not any item would reach it."""
    to_sql(filter_)
    if order_by is not None:
        _check_path(order_by)


_MISSING = object()
MISSING = _MISSING  # what get_path returns for a path the document does not have (undefined)


def get_path(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def json_type(value: Any) -> str:
    """The JSON type Cosmos DB sees: undefined, null, boolean, number, string, array or object."""
    if value is _MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    return "object"


TYPE_RANK = {"undefined": 0, "null": 1, "boolean": 2, "number": 3, "string": 4, "array": 5, "object": 6}


def sort_key(value: Any) -> tuple:
    """Where a value goes in an ORDER BY. Cosmos DB orders undefined < null < false < true < numbers < strings <
    arrays < objects, and keeps items without the property (undefined) in an ORDER BY. Arrays and objects tie
    within their type."""
    kind = json_type(value)
    return (TYPE_RANK[kind], value if kind in ("boolean", "number", "string") else 0)


def json_equal(left: Any, right: Any) -> bool:
    """Deep equality with JSON types: True is not 1 (Python says it is), 1 is 1.0."""
    kind = json_type(left)
    if kind != json_type(right):
        return False
    if kind == "array":
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right))
    if kind == "object":
        return left.keys() == right.keys() and all(json_equal(v, right[k]) for k, v in left.items())
    return left == right


def _compare(op: str, left: Any, right: Any) -> bool | None:
    # Cosmos DB: a comparison with undefined, or across JSON types, is undefined (None here), which never matches
    # and stays undefined under NOT. Objects and arrays only support = and !=.
    kind = json_type(left)
    if kind == "undefined" or kind != json_type(right):
        return None
    if op in ("=", "!="):
        return json_equal(left, right) == (op == "=")
    if kind in ("array", "object"):
        return None
    if kind == "null":
        return op in ("<=", ">=")
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _evaluate(doc: dict[str, Any], filter_: Any) -> bool | None:
    """Three-valued (true / false / undefined=None) evaluation, as Cosmos DB's SQL does it."""
    if _is_combination(filter_):
        kind, parts = filter_
        if kind == "not":
            inner = _evaluate(doc, parts)
            return None if inner is None else not inner
        if not parts:
            raise InvalidFilterError(f"empty {kind!r}")
        results = [_evaluate(doc, p) for p in parts]
        decisive = kind == "or"  # True decides an OR, False decides an AND
        if decisive in results:
            return decisive
        return None if None in results else not decisive
    if not (isinstance(filter_, tuple) and len(filter_) == 3):
        raise InvalidFilterError(f"a condition is (path, op, value), got {filter_!r}")
    path, op, value = filter_
    left = get_path(doc, _check_path(path))
    if op in _SQL_OPS:
        return _compare(op, left, value)
    if op == "in":  # ARRAY_CONTAINS(@values, c.path): false, not undefined, when the path is missing
        return any(json_equal(v, left) for v in value)
    if op == "contains":  # ARRAY_CONTAINS(c.path, @value): undefined unless the path holds an array
        return any(json_equal(v, value) for v in left) if json_type(left) == "array" else None
    if op == "startswith":
        return left.startswith(value) if isinstance(left, str) and isinstance(value, str) else None
    if op == "defined":
        return left is not _MISSING
    if op == "undefined":
        return left is _MISSING
    if op == "type":  # IS_STRING(c.path) and so on: false, not undefined, when the path is missing
        _type_function(value)
        return json_type(left) == value
    raise InvalidFilterError(f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")


def matches(doc: dict[str, Any], filter_: Filter) -> bool:
    """Evaluate a filter on one document the way Cosmos DB would: only a true result matches."""
    if filter_ is None:
        return True
    return _evaluate(doc, filter_) is True
