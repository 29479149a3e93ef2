"""Nightly churn retraining and scoring (schedule: app setting UCP_CHURN_SCHEDULE, six-field NCRONTAB, UTC).
Runnable now through the host's admin endpoint: POST /admin/functions/churn_retrain."""
import logging

import azure.functions as func

from shared.settings import get_settings

bp = func.Blueprint()


@bp.timer_trigger(arg_name="timer", schedule="%UCP_CHURN_SCHEDULE%", run_on_startup=False, use_monitor=True)
def churn_retrain(timer: func.TimerRequest) -> None:
    # Imported here: scikit-learn is only loaded by the worker that runs the nightly job, not by HTTP workers.
    from model_training.churn_job import JobLocked, run_scheduled

    try:
        run_scheduled(get_settings())  # logs its figures
    except JobLocked as err:
        logging.warning("churn_retrain skipped: %s", err)
