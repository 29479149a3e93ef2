"""The dashboard: an HTML page and its static assets (no CDN). The page needs the function key (?code=), which
its script forwards to the API and its asset URLs carry."""
import azure.functions as func

from functions._http import respond
from shared.api.errors import ApiError, ApiResponse
from shared.api.openapi import register_paths
from shared.dashboard import AssetNotFound, asset, page

bp = func.Blueprint()


def _static(content: tuple[bytes, str, dict[str, str]]) -> ApiResponse:
    body, mimetype, headers = content
    return ApiResponse(body, mimetype=mimetype.split(";")[0], headers=headers)  # charset: utf-8 (the default)


@bp.route(route="dashboard", methods=["GET"])
def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: _static(page(req.params.get("code"))))


@bp.route(route="dashboard/assets/{name}", methods=["GET"])
def dashboard_asset(req: func.HttpRequest) -> func.HttpResponse:
    def handler() -> ApiResponse:
        try:
            return _static(asset(req.route_params.get("name", "")))
        except AssetNotFound:
            raise ApiError(404, "no such dashboard asset") from None

    return respond(req, handler)


def _static_op(summary: str, mimetype: str, *, public: bool = False, params: list | None = None) -> dict:
    op = {"summary": summary, "responses": {"200": {"description": "OK", "content": {mimetype: {"schema": {"type": "string"}}}},
                                            "404": {"$ref": "#/components/responses/Problem"}}}
    if public:
        op["security"] = []
    else:
        op["responses"]["401"] = {"$ref": "#/components/responses/Problem"}
    if params:
        op["parameters"] = params
    return op


register_paths({
    "/dashboard": {"get": _static_op("The dashboard page (open it with ?code=<function key>)", "text/html")},
    "/dashboard/assets/{name}": {"get": _static_op("Dashboard scripts and styles", "text/javascript", params=[
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*\\.(js|css|svg)$"}}])},
})
