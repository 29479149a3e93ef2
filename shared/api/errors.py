"""Errors as RFC 9457 problem details (application/problem+json)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROBLEM_TYPES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 410: "Gone", 413: "Payload Too Large", 414: "URI Too Long", 422: "Unprocessable Content",
    429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable",
}


@dataclass
class ApiResponse:
    body: Any
    status: int = 200
    mimetype: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, detail: str, *, title: str | None = None, **extra: Any):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or PROBLEM_TYPES.get(status, "Error")
        self.extra = extra

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body = {"type": "about:blank", "title": self.title, "status": self.status, "detail": self.detail}
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body
