"""A small filter language that both stores evaluate: the in-memory store in Python, Cosmos as parameterized SQL.

A filter is either a condition ``(path, op, value)`` or a combination ``("and", [f, ...])``,
``("or", [f, ...])``, ``("not", f)``. Paths are dotted field names (``churn.score``); values are always
sent as query parameters, never pasted into the SQL text.
"""
from __future__ import annotations

import re
from typing import Any, Union

Condition = tuple[str, str, Any]
Filter = Union[Condition, tuple[str, Any], None]

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "contains", "startswith", "defined", "undefined")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SQL_OPS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class InvalidFilterError(ValueError):
    pass


def where(**equals: Any) -> Filter:
    """Shorthand: ``where(source="pos", kind="customer")`` is an AND of equalities."""
    conds = [(k, "=", v) for k, v in equals.items()]
    if not conds:
        return None
    return conds[0] if len(conds) == 1 else ("and", conds)


def _check_path(path: str) -> str:
    if not isinstance(path, str) or not _PATH.match(path):
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
                return f"(NOT {walk(parts)})"
            if not parts:
                raise InvalidFilterError(f"empty {kind!r}")
            return "(" + f" {kind.upper()} ".join(walk(p) for p in parts) + ")"
        if not (isinstance(f, tuple) and len(f) == 3):
            raise InvalidFilterError(f"a condition is (path, op, value), got {f!r}")
        path, op, value = f
        ref = f"{alias}." + _check_path(path)
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
        raise InvalidFilterError(f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")

    if filter_ is None:
        return "", params
    return walk(filter_), params


_MISSING = object()


def get_path(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    # Cosmos compares only values of the same kind; anything else is undefined, i.e. no match.
    if left is _MISSING or left is None or right is None:
        return op == "=" and left is None and right is None
    numeric = (int, float)
    if isinstance(left, bool) or isinstance(right, bool):
        if not (isinstance(left, bool) and isinstance(right, bool)):
            return False
    elif isinstance(left, numeric) != isinstance(right, numeric) or (
        not isinstance(left, numeric) and type(left) is not type(right)
    ):
        return op == "!=" and left is not _MISSING
    try:
        return {"=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
                ">": left > right, ">=": left >= right}[op]
    except TypeError:
        return False


def matches(doc: dict[str, Any], filter_: Filter) -> bool:
    """Evaluate a filter on one document the way Cosmos DB would."""
    if filter_ is None:
        return True
    if _is_combination(filter_):
        kind, parts = filter_
        if kind == "not":
            return not matches(doc, parts)
        if not parts:
            raise InvalidFilterError(f"empty {kind!r}")
        results = (matches(doc, p) for p in parts)
        return all(results) if kind == "and" else any(results)
    if not (isinstance(filter_, tuple) and len(filter_) == 3):
        raise InvalidFilterError(f"a condition is (path, op, value), got {filter_!r}")
    path, op, value = filter_
    left = get_path(doc, _check_path(path))
    if op in _SQL_OPS:
        return _compare(op, left, value)
    if op == "in":
        return left is not _MISSING and left in list(value)
    if op == "contains":
        return isinstance(left, list) and value in left
    if op == "startswith":
        return isinstance(left, str) and isinstance(value, str) and left.startswith(value)
    if op == "defined":
        return left is not _MISSING
    if op == "undefined":
        return left is _MISSING
    raise InvalidFilterError(f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
