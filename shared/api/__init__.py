"""HTTP API logic, independent of azure.functions: handlers take plain values and return ApiResponse or
raise ApiError; the blueprints in functions/ translate to and from HttpRequest/HttpResponse."""
from .errors import ApiError, ApiResponse

__all__ = ["ApiError", "ApiResponse"]
