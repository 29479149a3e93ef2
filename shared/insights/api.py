"""HTTP handlers for insights (segments, journeys, reports, profile insights), independent of azure.functions.

Each takes plain values (the store, route and query parameters, the parsed body) and returns an ApiResponse
or raises ApiError (problem+json, with a list of `errors` for invalid definitions).
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from pydantic import BaseModel, ValidationError

from ..api.errors import ApiError, ApiResponse
from ..api.paging import decode_token, encode_token, page_size
from ..settings import Settings
from ..store import BadRequestError, Store
from . import journeys, reports, segments
from .common import DefinitionNotFound
from .refresh import refresh_profile
from .rules import RuleError

M = TypeVar("M", bound=BaseModel)


def _errors(err: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]} for e in err.errors()]


def validated(model: type[M], body: Any, what: str) -> M:
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object describing the {what}")
    try:
        return model.model_validate(body)
    except ValidationError as err:
        raise ApiError(422, f"invalid {what}", errors=_errors(err)) from None


def guarded(fn: Callable[[], ApiResponse]) -> ApiResponse:
    """Domain errors as HTTP problems: unknown ids 404, bad parameters 400."""
    try:
        return fn()
    except DefinitionNotFound as err:
        raise ApiError(404, str(err)) from None
    except ValidationError as err:
        raise ApiError(400, "invalid parameters", errors=_errors(err)) from None
    except (RuleError, ValueError) as err:
        raise ApiError(400, str(err)) from None
    except OverflowError:  # a date at the edge of the calendar, moved by a time zone
        raise ApiError(400, "a date is out of range") from None
    except LookupError as err:
        raise ApiError(404, str(err)) from None


# --- segments -------------------------------------------------------------------------------------------

def create_segment(store: Store, body: Any) -> ApiResponse:
    definition = validated(segments.SegmentDefinition, body, "segment definition")
    return ApiResponse(segments.create_segment(store, definition), status=201)


def list_segments(store: Store) -> ApiResponse:
    return ApiResponse({"segments": segments.list_segments(store)})


def get_segment(store: Store, segment_id: str) -> ApiResponse:
    return guarded(lambda: ApiResponse(segments.get_segment(store, segment_id)))


def delete_segment(store: Store, segment_id: str) -> ApiResponse:
    return guarded(lambda: ApiResponse({"deleted": segment_id, "profiles_updated": segments.delete_segment(store, segment_id)}))


def segment_members(store: Store, segment_id: str, params: dict[str, str]) -> ApiResponse:
    size, token = page_size(params), decode_token(params.get("continuation"))

    def run() -> ApiResponse:
        try:
            members, next_token = segments.members_page(store, segment_id, page_size=size, continuation=token)
        except BadRequestError:  # a token from elsewhere or tampered with; a throttled or failing store is not 400
            raise ApiError(400, "continuation is not a token this API returned") from None
        return ApiResponse({"segment_id": segment_id, "members": members, "continuation": encode_token(next_token)})

    return guarded(run)


def segment_size(store: Store, segment_id: str) -> ApiResponse:
    def run() -> ApiResponse:
        seg = segments.get_segment(store, segment_id)
        return ApiResponse({"segment_id": segment_id, "size": segments.segment_size(store, segment_id),
                            "evaluated_at": seg.get("evaluated_at")})

    return guarded(run)


def evaluate_segment(store: Store, segment_id: str) -> ApiResponse:
    return guarded(lambda: ApiResponse(segments.evaluate_segment(store, segment_id)))


def export_segment(store: Store, segment_id: str, settings: Settings) -> ApiResponse:
    return guarded(lambda: ApiResponse(segments.export_segment(store, segment_id, settings), status=201))


# --- journeys -------------------------------------------------------------------------------------------

def create_journey(store: Store, body: Any) -> ApiResponse:
    definition = validated(journeys.JourneyDefinition, body, "journey definition")
    return ApiResponse(journeys.create_journey(store, definition), status=201)


def list_journeys(store: Store) -> ApiResponse:
    return ApiResponse({"journeys": journeys.list_journeys(store)})


def get_journey(store: Store, journey_id: str) -> ApiResponse:
    return guarded(lambda: ApiResponse(journeys.get_journey(store, journey_id)))


def journey_funnel(store: Store, journey_id: str, params: dict[str, str]) -> ApiResponse:
    return guarded(lambda: ApiResponse(journeys.funnel(store, journeys.get_journey(store, journey_id),
                                                       start=params.get("from") or None, end=params.get("to") or None,
                                                       channel=params.get("channel") or None)))


def journey_stage(store: Store, journey_id: str, profile: dict[str, Any]) -> ApiResponse:
    def run() -> ApiResponse:
        journey = journeys.get_journey(store, journey_id)
        return ApiResponse({"journey_id": journey_id, "profile_id": profile["id"],
                            "stage": journeys.profile_stage(store, journey, profile)})

    return guarded(run)


# --- reports --------------------------------------------------------------------------------------------

def list_reports(store: Store) -> ApiResponse:
    return ApiResponse({"builtin": sorted(reports.BUILTIN), "saved": reports.list_reports(store)})


def create_report(store: Store, body: Any) -> ApiResponse:
    definition = validated(reports.ReportDefinition, body, "report definition")
    return guarded(lambda: ApiResponse(reports.create_report(store, definition), status=201))


def run_report(store: Store, report: str, params: dict[str, str], settings: Settings) -> ApiResponse:
    overrides = {k: v for k, v in params.items() if k != "code"}
    if "top" in overrides:
        if not (overrides["top"].isascii() and overrides["top"].isdigit()):  # "¹".isdigit(), but int fails
            raise ApiError(400, "top must be an integer")
        overrides["top"] = int(overrides["top"])
    return guarded(lambda: ApiResponse(reports.run_report(store, report, overrides, settings)))


# --- profile insights -----------------------------------------------------------------------------------

def profile_insights(store: Store, profile: dict[str, Any], *, fresh: bool = False) -> ApiResponse:
    """What the dashboard's profile card shows besides the profile view: needs, named segments, stages."""
    if fresh:
        refresh_profile(store, profile["id"])
        profile = store.container("profiles").read_item(profile["id"], profile["id"])
    names = {s["id"]: s["name"] for s in segments.list_segments(store)}
    return ApiResponse({
        "profile_id": profile["id"], "needs": profile.get("needs"), "measures": profile.get("measures"),
        "segments": [{"id": s, "name": names.get(s, s)} for s in profile.get("segments") or []],
        "journey_stage": profile.get("journey_stage") or {},
    })
