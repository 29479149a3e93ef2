"""Insights API: segments, journeys and funnels, reports, profile insights; and the scheduled insights refresh."""

import azure.functions as func

from functions._http import json_body, respond
from shared.api.openapi import operation, path_param, query_param, register_paths
from shared.api.profiles import load_profile
from shared.insights import api
from shared.insights.refresh import refresh_all
from shared.settings import get_settings
from shared.store import open_store

bp = func.Blueprint()


def _params(req: func.HttpRequest) -> dict[str, str]:
    return {k: v for k, v in req.params.items() if k != "code"}


# --- segments -------------------------------------------------------------------------------------------

@bp.route(route="segments", methods=["POST"])
def create_segment(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.create_segment(open_store(), json_body(req)))


@bp.route(route="segments", methods=["GET"])
def list_segments(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.list_segments(open_store()))


@bp.route(route="segments/{segment_id}", methods=["GET"])
def get_segment(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.get_segment(open_store(), req.route_params["segment_id"]))


@bp.route(route="segments/{segment_id}", methods=["DELETE"])
def delete_segment(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.delete_segment(open_store(), req.route_params["segment_id"]))


@bp.route(route="segments/{segment_id}/members", methods=["GET"])
def segment_members(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.segment_members(open_store(), req.route_params["segment_id"], _params(req)))


@bp.route(route="segments/{segment_id}/size", methods=["GET"])
def segment_size(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.segment_size(open_store(), req.route_params["segment_id"]))


@bp.route(route="segments/{segment_id}/evaluate", methods=["POST"])
def evaluate_segment(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.evaluate_segment(open_store(), req.route_params["segment_id"]))


@bp.route(route="segments/{segment_id}/export", methods=["POST"])
def export_segment(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.export_segment(open_store(), req.route_params["segment_id"], get_settings()))


# --- journeys -------------------------------------------------------------------------------------------

@bp.route(route="journeys", methods=["POST"])
def create_journey(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.create_journey(open_store(), json_body(req)))


@bp.route(route="journeys", methods=["GET"])
def list_journeys(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.list_journeys(open_store()))


@bp.route(route="journeys/{journey_id}", methods=["GET"])
def get_journey(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.get_journey(open_store(), req.route_params["journey_id"]))


@bp.route(route="journeys/{journey_id}/funnel", methods=["GET"])
def journey_funnel(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.journey_funnel(open_store(), req.route_params["journey_id"], _params(req)))


@bp.route(route="journeys/{journey_id}/profiles/{profile_id}", methods=["GET"])
def journey_stage(req: func.HttpRequest) -> func.HttpResponse:
    def handler():
        store = open_store()
        return api.journey_stage(store, req.route_params["journey_id"], load_profile(store, req.route_params["profile_id"]))

    return respond(req, handler)


# --- reports --------------------------------------------------------------------------------------------

@bp.route(route="reports", methods=["GET"])
def list_reports(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.list_reports(open_store()))


@bp.route(route="reports", methods=["POST"])
def create_report(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.create_report(open_store(), json_body(req)))


@bp.route(route="reports/{report}", methods=["GET"])
def run_report(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.run_report(open_store(), req.route_params["report"], _params(req), get_settings()))


# --- profile insights and the refresh -------------------------------------------------------------------

@bp.route(route="insights/profiles/{profile_id}", methods=["GET"])
def profile_insights(req: func.HttpRequest) -> func.HttpResponse:
    def handler():
        store = open_store()
        return api.profile_insights(store, load_profile(store, req.route_params["profile_id"]))

    return respond(req, handler)


@bp.route(route="insights/profiles/{profile_id}/refresh", methods=["POST"])
def refresh_profile_insights(req: func.HttpRequest) -> func.HttpResponse:
    def handler():
        store = open_store()
        return api.profile_insights(store, load_profile(store, req.route_params["profile_id"]), fresh=True)

    return respond(req, handler)


@bp.timer_trigger(arg_name="timer", schedule="%UCP_INSIGHTS_SCHEDULE%", run_on_startup=False, use_monitor=True)
def refresh_insights(timer: func.TimerRequest) -> None:
    refresh_all(open_store())  # logs its figures


SID, JID, PID = path_param("segment_id"), path_param("journey_id"), path_param("profile_id")
DEFINITION = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
RANGE = [query_param("from", "start of the date range (ISO 8601, UTC)"), query_param("to", "end of the range, exclusive"),
         query_param("channel", "only this channel (web, mobile, store, ...)")]

register_paths({
    "/segments": {
        "post": operation("Create a segment from a rule (evaluated at once)", "201", body={**DEFINITION, "required": ["name", "rule"]},
                    errors=("400", "401", "422")),
        "get": operation("List segment definitions", errors=("401",)),
    },
    "/segments/{segment_id}": {
        "get": operation("A segment definition with its size and last evaluation", params=[SID]),
        "delete": operation("Delete a segment and take it off its members", params=[SID]),
    },
    "/segments/{segment_id}/members": {"get": operation("Members, paginated (continuation token)", params=[
        SID, query_param("page_size", "1 to 1000, default 100"), query_param("continuation", "token from the previous page")])},
    "/segments/{segment_id}/size": {"get": operation("Number of members", params=[SID])},
    "/segments/{segment_id}/evaluate": {"post": operation("Re-evaluate now and update membership", params=[SID])},
    "/segments/{segment_id}/export": {"post": operation("Export members as CSV to Blob Storage for activation", "201", params=[SID])},
    "/journeys": {
        "post": operation("Create a journey (ordered steps)", "201", body={**DEFINITION, "required": ["name", "steps"]},
                    errors=("400", "401", "422")),
        "get": operation("List journeys", errors=("401",)),
    },
    "/journeys/{journey_id}": {"get": operation("A journey definition", params=[JID])},
    "/journeys/{journey_id}/funnel": {"get": operation("Funnel: reached, conversion, drop-off and median time per step",
                                                 params=[JID, *RANGE])},
    "/journeys/{journey_id}/profiles/{profile_id}": {"get": operation("A profile's current stage in the journey",
                                                                params=[JID, PID], errors=("400", "401", "404", "410"))},
    "/reports": {
        "get": operation("Built-in report names and saved custom reports", errors=("401",)),
        "post": operation("Save a custom report (a built-in report with parameters)", "201",
                    body={**DEFINITION, "required": ["name", "report"]}, errors=("400", "401", "422")),
    },
    "/reports/{report}": {"get": operation("Run a built-in report (unification, churn, revenue, analytics, funnel) or a saved "
                                     "one by id; query parameters override saved ones", params=[
                                         path_param("report"), *RANGE, query_param("journey_id", "for the funnel report"),
                                         query_param("conversion_event", "analytics: the conversion event name"),
                                         query_param("top", "analytics: how many top pages and screens")])},
    "/insights/profiles/{profile_id}": {"get": operation("A profile's needs, measures, segments and journey stages",
                                                   params=[PID], errors=("400", "401", "404", "410"))},
    "/insights/profiles/{profile_id}/refresh": {"post": operation(
        "Recompute the profile's measures, needs, journey stages and segment membership now", params=[PID],
        errors=("400", "401", "404", "410"))},
})
