"""Real-time events: POST /api/events (identify, track, page, screen; one event or a batch)."""
import azure.functions as func

from functions._http import respond
from shared.api.errors import ApiError, ApiResponse
from shared.api.openapi import register_paths
from shared.events.service import EventPayloadError, accept_events, anonymous_behaviour
from shared.settings import get_settings
from shared.store import open_store

bp = func.Blueprint()


@bp.route(route="events", methods=["POST"])
def post_events(req: func.HttpRequest) -> func.HttpResponse:
    def handler() -> ApiResponse:
        try:
            status, body = accept_events(open_store(), req.get_body(), get_settings())
        except EventPayloadError as err:
            raise ApiError(err.status, str(err)) from None
        return ApiResponse(body, status=status)

    return respond(req, handler)


@bp.route(route="events/sessions", methods=["GET"])
def anonymous_sessions(req: func.HttpRequest) -> func.HttpResponse:
    def handler() -> ApiResponse:
        try:
            return ApiResponse(anonymous_behaviour(open_store(), req.params.get("anonymous_id", "")))
        except ValueError as err:
            raise ApiError(400, str(err)) from None

    return respond(req, handler)


register_paths({"/events/sessions": {"get": {
    "summary": "Sessions of an anonymous (device) id that has not been identified, and its linked profile",
    "parameters": [{"name": "anonymous_id", "in": "query", "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 256}}],
    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                  "400": {"$ref": "#/components/responses/Problem"},
                  "401": {"$ref": "#/components/responses/Problem"}},
}}})

register_paths({"/events": {"post": {
    "summary": "Accept one event or a batch (identify, track, page, screen) with per-event results",
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
        {"$ref": "#/components/schemas/Event"}, {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
        {"type": "object", "required": ["batch"], "properties": {"batch": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}},
    ]}}}},
    "responses": {
        "200": {"description": "All events accepted", "content": {"application/json": {"schema": {"type": "object"}}}},
        "207": {"description": "Some events rejected, with reasons", "content": {"application/json": {"schema": {"type": "object"}}}},
        "400": {"$ref": "#/components/responses/Problem"},
        "401": {"$ref": "#/components/responses/Problem"},
        "413": {"$ref": "#/components/responses/Problem"},
    },
}}})
