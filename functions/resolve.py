"""Queue trigger of identity resolution: customer records from ingestion -> unified profiles; and its safety net."""
import logging

import azure.functions as func

from shared.identity import finish_unfinished_merges, finish_unfinished_splits, mended_anything, repair_window
from shared.identity.worker import handle_resolve_message
from shared.settings import get_settings
from shared.store import open_store

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="msg", queue_name="%UCP_RESOLVE_QUEUE%", connection="AzureWebJobsStorage")
def resolve_queue(msg: func.QueueMessage) -> None:
    settings = get_settings()
    counts = handle_resolve_message(msg.get_body(), store=open_store(settings), settings=settings,
                                    dequeue_count=msg.dequeue_count)
    log.info("resolve message %s (dequeue %s): %s", msg.id, msg.dequeue_count, counts)


@bp.timer_trigger(arg_name="timer", schedule="30 */5 * * * *", run_on_startup=False, use_monitor=False)
def finish_stale_splits(timer: func.TimerRequest) -> None:
    # Safety net: a split whose worker died and whose caller never asked again (the next reader of the profile
    # would finish it, but its record's identifiers lead to the wrong profile until then).
    _sweep(finish_unfinished_splits, "splits")


@bp.timer_trigger(arg_name="timer", schedule="45 */5 * * * *", run_on_startup=False, use_monitor=False)
def finish_stale_merges(timer: func.TimerRequest) -> None:
    # Safety net: a merge whose worker died and whose profiles no later resolve touched (its delivery's retry found
    # the record done): their records are in both profiles until the saga completes.
    _sweep(finish_unfinished_merges, "merges")


@bp.timer_trigger(arg_name="timer", schedule="0 10 * * * *", run_on_startup=False, use_monitor=True)
def repair_recent_index(timer: func.TimerRequest) -> None:
    # Safety net: index documents that races of workers (two versions of one record at once, a death) left behind
    # and no later attempt comes back to, over the documents written in the last UCP_REPAIR_WINDOW_SECONDS.
    settings = get_settings()
    counts = repair_window(open_store(settings), settings=settings)
    if counts is not None:
        # A warning when it mended something, so an alert can watch how often races leave residue.
        log.log(logging.WARNING if mended_anything(counts) else logging.INFO, "index repair over the last %d s: %s",
                settings.repair_window_seconds, counts)
    if counts and counts["cut_short"]:
        log.warning("index repair cut short by its time budget: run `ucp repair-index --since-seconds %d`",
                    settings.repair_window_seconds)


def _sweep(finish, what: str) -> None:
    settings = get_settings()
    settled = finish(open_store(settings), settings=settings)
    if settled:
        log.info("finished %d %s cut off: %s", len(settled), what, settled)
