"""The OpenAPI 3 document of the HTTP API (served at /api/openapi.json; a test keeps it equal to the routes)."""
from __future__ import annotations

from typing import Any

from ..settings import Settings

PROBLEM = {"description": "Problem details", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
JSON_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}


def operation(summary: str, ok: str = "200", *, params: list[dict] | None = None, body: dict | None = None,
        errors: tuple[str, ...] = ("400", "401", "404"), security: bool = True,
        description: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {ok: {"description": "OK", **JSON_OBJECT}}}
    if description:
        op["description"] = description
    for code in errors:
        op["responses"][code] = PROBLEM
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if not security:
        op["security"] = []
    return op


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 128}}


def query_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "string", "maxLength": 512}}


# The longest identifier value a lookup takes: what ingestion accepts for any value (UCP_MAX_FIELD_BYTES, in
# UTF-8 bytes, so at most as many characters), the default of the setting here; a longer one is answered 414.
IDENTIFIER_BYTES = Settings.model_fields["max_field_bytes"].default


def identifier_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False,
            "description": f"{description}; at most UCP_MAX_FIELD_BYTES bytes in UTF-8 ({IDENTIFIER_BYTES} by "
                           "default), as ingestion accepts",
            "schema": {"type": "string", "maxLength": IDENTIFIER_BYTES}}


PID = [path_param("profile_id")]

LOOKUP_SUMMARY = "Find a profile by any identifier (normalized as ingestion does)"
# A lookup's parameters: the query of GET /profiles, the JSON body members of POST /profiles/lookup.
LOOKUP_PARAMS = [
    identifier_param("email", "email address"), identifier_param("phone", "phone number in any format"),
    query_param("region", "default region for a national phone number (ISO 3166 alpha-2)"),
    identifier_param("loyalty_id", "loyalty card id"), query_param("source", "source system"),
    identifier_param("source_id", "record key in that source"),
    query_param("id_type", "a custom identifier of the mappings (e.g. ecommerce_id), with id"),
    identifier_param("id", "the custom identifier's value")]
LOOKUP_ERRORS = ("400", "401", "404", "414")
LOOKUP_BODY = {
    "type": "object", "additionalProperties": False,
    "description": "the parameters of GET /profiles as string members: one identifier, or source with source_id, "
                   "or id_type with id (null or an empty string is absent)",
    "properties": {p["name"]: {**p["schema"], "nullable": True, "description": p["description"]}
                   for p in LOOKUP_PARAMS},
}

PATHS: dict[str, dict[str, Any]] = {
    "/health": {"get": operation("Liveness", errors=(), security=False)},
    "/openapi.json": {"get": operation("This document", errors=("401",))},
    "/profiles": {"get": operation(
        LOOKUP_SUMMARY, params=LOOKUP_PARAMS, errors=LOOKUP_ERRORS,
        description="The identifier is in the URL, so in access logs and proxies, and a URL carries a few KB at most: "
                    "prefer POST /profiles/lookup in production. A built-in placeholder (test@test.com, 0000000000, "
                    "n/a) or a value the deployment blocks answers 404 saying so; a malformed value 400; a value "
                    "longer than ingestion accepts 414.")},
    "/profiles/lookup": {"post": operation(
        LOOKUP_SUMMARY + ", the parameters in a JSON body", body=LOOKUP_BODY, errors=("400", "401", "404", "413"),
        description="The lookup of GET /profiles with its parameters as the members of a JSON object, answered "
                    "exactly as GET /profiles answers them: no identifier in the URL (none in access logs or "
                    "proxies) and no URL length limit. Recommended in production. A body that is not such an "
                    "object (other members, a value that is not a string) answers 400; a value longer than ingestion "
                    "accepts 413.")},
    "/profiles/{profile_id}": {
        "get": operation("Unified profile: attributes with sources, identifiers, measures, churn, activity",
                   params=PID, errors=("400", "401", "404", "410")),
        "delete": operation("Erase the person (cascade) and log the erasure without PII", params=PID,
                      errors=("400", "401", "404", "410")),
    },
    "/profiles/{profile_id}/export": {"get": operation("Everything held about the person", params=PID, errors=("400", "401", "404", "410"))},
    "/profiles/{profile_id}/merges": {"get": operation("Merge log with reasons and field contributions", params=PID, errors=("400", "401", "404", "410"))},
    "/profiles/{profile_id}/split": {"post": operation("Take a source record out into its own profile (never merged back)",
                                                 "201", params=PID, errors=("400", "401", "404", "409", "410"),
                                                 body={"type": "object", "required": ["record_key"],
                                                       "properties": {"record_key": {"type": "string"}}})},
    "/ingestions": {"get": operation("Ingestion reports, newest first (paginated)", errors=("400", "401"), params=[
        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
        query_param("continuation", "token from the previous page"), query_param("status", "filter by status"),
        query_param("source", "filter by source system")])},
    "/ingestions/{ingestion_id}": {"get": operation("One ingestion report: rows read, accepted, quarantined, duplicates, reasons",
                                              params=[path_param("ingestion_id")])},
}


def register_paths(paths: dict[str, dict[str, Any]]) -> None:
    """Areas add their routes here (keyed by path, then method) when their blueprint module is imported."""
    for path, ops in paths.items():
        PATHS.setdefault(path, {}).update(ops)


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "ucp: Unified Customer Profile API", "version": "0.1.0",
                 "description": "Profiles, identity resolution, churn and insights. Every route except /health "
                                "needs a function key (x-functions-key header or code query parameter)."},
        "servers": [{"url": "/api"}],
        "security": [{"functionKeyHeader": []}, {"functionKeyQuery": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {
                "functionKeyHeader": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
            "responses": {"Problem": PROBLEM},
            "schemas": {
                "Problem": {"type": "object", "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "detail": {"type": "string"}, "instance": {"type": "string"}}},
                "Event": {"type": "object", "required": ["type"], "properties": {
                    "type": {"type": "string", "enum": ["identify", "track", "page", "screen"]},
                    "event": {"type": "string"}, "name": {"type": "string"}, "anonymousId": {"type": "string"},
                    "userId": {"type": "string"}, "messageId": {"type": "string"},
                    "timestamp": {"type": "string", "format": "date-time"},
                    "traits": {"type": "object"}, "properties": {"type": "object"}, "context": {"type": "object"}}},
            },
        },
    }
