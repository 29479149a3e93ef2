"""Ingestion: the landing-container blob trigger and the ingestion reports API."""
import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from functions._http import respond
from shared.api import ApiError, ApiResponse
from shared.ingest import IngestionBusy, get_ingestion, ingest_blob, list_ingestions, resume_stale_ingestions
from shared.settings import get_settings
from shared.store import open_store

bp = func.Blueprint()
log = logging.getLogger("ucp.ingest")
MAX_PAGE = 200


@bp.function_name("ingest_blob")
@bp.blob_trigger(arg_name="client", path="%UCP_LANDING_CONTAINER%/{name}", connection="AzureWebJobsStorage",
                 source=func.BlobSource.EVENT_GRID)
def ingest_landed_blob(client: blob.BlobClient) -> None:
    # An SDK-type binding: the host hands over the blob's name, never its bytes (with func.InputStream the Python
    # worker receives the whole file in memory); shared.ingest streams it in chunks.
    settings = get_settings()
    try:
        ingest_blob(f"{client.container_name}/{client.blob_name}", settings=settings, store=open_store(settings))
    except IngestionBusy as busy:
        log.info("%s; the event will be retried", busy)
        raise  # fail this invocation: the host redelivers, and the retry finds the file done or the lease expired


@bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False, use_monitor=False)
def resume_stale_ingestion(timer: func.TimerRequest) -> None:
    # Safety net: a worker that died after the host's last retry leaves its file `processing`; finish it.
    settings = get_settings()
    resumed = resume_stale_ingestions(settings=settings, store=open_store(settings))
    if resumed:
        log.info("resumed %d stale ingestions: %s", len(resumed), [r["id"] for r in resumed])


@bp.route(route="ingestions/{ingestion_id}", methods=["GET"])
def get_ingestion_report(req: func.HttpRequest) -> func.HttpResponse:
    def handler() -> ApiResponse:
        report = get_ingestion(open_store(), req.route_params["ingestion_id"])
        if report is None:
            raise ApiError(404, "no ingestion with this id")
        return ApiResponse(report)

    return respond(req, handler)


@bp.route(route="ingestions", methods=["GET"])
def list_ingestion_reports(req: func.HttpRequest) -> func.HttpResponse:
    def handler() -> ApiResponse:
        try:
            page_size = int(req.params.get("limit", "50"))
        except ValueError:
            raise ApiError(400, "limit must be an integer") from None
        if not 1 <= page_size <= MAX_PAGE:
            raise ApiError(400, f"limit must be between 1 and {MAX_PAGE}")
        items, token = list_ingestions(open_store(), page_size=page_size,
                                       continuation=req.params.get("continuation") or None,
                                       status=req.params.get("status") or None,
                                       source=req.params.get("source") or None)
        return ApiResponse({"items": items, "continuation": token})

    return respond(req, handler)
