"""Queue trigger of identity resolution: customer records from ingestion -> unified profiles."""
import logging

import azure.functions as func

from shared.identity.worker import handle_resolve_message
from shared.settings import get_settings
from shared.store import open_store

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="msg", queue_name="%UCP_RESOLVE_QUEUE%", connection="AzureWebJobsStorage")
def resolve_queue(msg: func.QueueMessage) -> None:
    settings = get_settings()
    counts = handle_resolve_message(msg.get_body(), store=open_store(settings), settings=settings)
    log.info("resolve message %s (dequeue %s): %s", msg.id, msg.dequeue_count, counts)
