"""Profile API: 360 view, lookup by identifier, merges, split, export, erase."""
import azure.functions as func

from functions._http import json_body, respond
from shared.api import profiles as api
from shared.api.errors import ApiResponse
from shared.privacy import erase_profile, export_profile
from shared.settings import get_settings
from shared.store import open_store

bp = func.Blueprint()


@bp.route(route="profiles/{profile_id}", methods=["GET"])
def get_profile(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.get_profile_view(open_store(), req.route_params["profile_id"]))


@bp.route(route="profiles", methods=["GET"])
def lookup_profile(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.lookup(open_store(), dict(req.params), get_settings()))


@bp.route(route="profiles/lookup", methods=["POST"])
def lookup_profile_by_body(req: func.HttpRequest) -> func.HttpResponse:
    """The lookup of GET /profiles with its parameters in a JSON body: no identifier in the URL (access logs,
    proxies) and no URL length limit. GET /profiles/lookup is still the profile with id "lookup" (another method)."""
    return respond(req, lambda: api.lookup(open_store(), api.lookup_params(json_body(req)), get_settings(),
                                           too_large_status=413))


@bp.route(route="profiles/{profile_id}/merges", methods=["GET"])
def get_profile_merges(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.merges(open_store(), req.route_params["profile_id"]))


@bp.route(route="profiles/{profile_id}/split", methods=["POST"])
def split_profile(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.split(open_store(), req.route_params["profile_id"], json_body(req), get_settings()))


@bp.route(route="profiles/{profile_id}/export", methods=["GET"])
def export_profile_data(req: func.HttpRequest) -> func.HttpResponse:
    def handler() -> ApiResponse:
        store = open_store()
        return ApiResponse(export_profile(store, api.load_profile(store, req.route_params["profile_id"])))

    return respond(req, handler)


@bp.route(route="profiles/{profile_id}", methods=["DELETE"])
def erase_profile_data(req: func.HttpRequest) -> func.HttpResponse:
    def handler() -> ApiResponse:
        store = open_store()
        profile = api.load_profile(store, req.route_params["profile_id"])
        return ApiResponse({"erased": profile["id"], "deleted": erase_profile(store, profile)})

    return respond(req, handler)
