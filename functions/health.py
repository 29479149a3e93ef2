import azure.functions as func

from functions._http import respond
from shared.api.errors import ApiResponse
from shared.api.openapi import document

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: ApiResponse({"status": "ok"}))


@bp.route(route="openapi.json", methods=["GET"])
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: ApiResponse(document()))
