"""Nightly enrichment of every profile (derived attributes), runnable now through the host's admin endpoint."""
import azure.functions as func

from shared.enrichment import run_enrichment
from shared.store import open_store

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%UCP_ENRICHMENT_SCHEDULE%", run_on_startup=False, use_monitor=True)
def enrich_profiles(timer: func.TimerRequest) -> None:
    run_enrichment(open_store())  # logs its figures
