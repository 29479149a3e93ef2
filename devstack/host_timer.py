"""Timer triggers: NCRONTAB (six fields, or five without seconds) or a TimeSpan, in UTC; run_on_startup,
use_monitor, no retries. Expressions NCrontab refuses (day-of-week 7, L, W, #, ?) are refused here too.

With use_monitor, the schedule status (Last, Next, LastUpdated) is kept in the host storage account like the
real host (`azure-webjobs-hosts/timers/<host id>/Host.Functions.<name>/status`); a start that finds `Next` in the
past runs the function at once with `past_due=True`. use_monitor defaults to on, except for schedules more
frequent than once a minute (as the real host decides). Occurrences missed while a run was still going are
skipped; a failed run is not retried.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from datetime import datetime, timedelta, timezone

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.timer import TimerRequest
from croniter import croniter

from .host_config import HostConfigError, StorageConnection, parse_timespan
from .host_invoke import FunctionSpec, InvocationFailed, Invoker

log = logging.getLogger("devstack.host")


# NCRONTAB fields, as the real host parses them (NCrontab): lowest and highest value, names where allowed.
_FIELDS = (("second", 0, 59, ()), ("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day", 1, 31, ()),
           ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
           ("day-of-week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")))
# One item of a field's list: *, a value, a range, each optionally with a step (NCrontab knows no L, W, # or ?).
_ITEM = re.compile(r"(\*|\w+(-\w+)?)(/\d+)?")


class Schedule:
    def __init__(self, expression: str, where: str) -> None:
        self.expression = expression.strip()
        self.interval: float | None = None
        if ":" in self.expression:  # TimeSpan form, e.g. "00:05:00" (App Service plans)
            self.interval = parse_timespan(self.expression, where)
            if self.interval <= 0:
                raise HostConfigError(f"{where}: interval must be positive")
            return
        fields = self.expression.split()
        if len(fields) == 5:  # the real host reads five fields as having no seconds field (CronSchedule)
            fields = ["0", *fields]
        if len(fields) != 6 or not all(_ncrontab_field(f, spec) for f, spec in zip(fields, _FIELDS)) or \
                not croniter.is_valid(" ".join(fields), second_at_beginning=True):
            raise HostConfigError(f"{where}: {self.expression!r} is not an NCRONTAB expression "
                                  "'{second} {minute} {hour} {day} {month} {day-of-week}' (day-of-week 0-6; "
                                  "no L, W, # or ?)")
        self.expression = " ".join(fields)

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + timedelta(seconds=self.interval)
        # NCRONTAB matches day-of-month AND day-of-week when both are given (Vixie cron ORs them)
        return croniter(self.expression, moment, second_at_beginning=True, day_or=False).get_next(datetime)

    def is_frequent(self) -> bool:
        """More often than once a minute: the real host turns the monitor off for these."""
        start = datetime(2026, 1, 1, tzinfo=timezone.utc)
        first = self.next_after(start)
        return (self.next_after(first) - first) < timedelta(minutes=1)


class TimerStatusStore:
    def __init__(self, host_storage: StorageConnection, host_id: str) -> None:
        self.container = host_storage.blob_service.get_container_client("azure-webjobs-hosts")
        self.root = f"timers/{host_id}/"
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass

    def read(self, function: str) -> dict | None:
        try:
            return json.loads(self.container.download_blob(f"{self.root}Host.Functions.{function}/status").readall())
        except (ResourceNotFoundError, ValueError):
            return None

    def write(self, function: str, status: dict) -> None:
        self.container.upload_blob(f"{self.root}Host.Functions.{function}/status", json.dumps(status),
                                   overwrite=True)


def _ncrontab_field(text: str, spec: tuple) -> bool:
    """True when NCrontab accepts the field: items of *, values and ranges in range, each with an optional step."""
    _, low, high, names = spec
    for item in text.split(","):
        if not _ITEM.fullmatch(item):
            return False
        values = item.split("/", 1)[0]
        if values == "*":
            continue
        for value in values.split("-"):
            if value.upper() in names:
                continue
            if not value.isdigit() or not low <= int(value) <= high:
                return False
    return True


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


class TimerRunner:
    """One thread per timer function: sleep until the next occurrence, run, repeat."""

    def __init__(self, spec: FunctionSpec, invoker: Invoker, status_store: TimerStatusStore | None,
                 stopping: threading.Event) -> None:
        self.spec = spec
        self.invoker = invoker
        self.stopping = stopping
        attrs = spec.trigger.attrs
        self.schedule = Schedule(attrs["schedule"], f"function {spec.name} schedule")
        use_monitor = attrs.get("useMonitor")
        self.monitor = status_store if (use_monitor if use_monitor is not None
                                        else not self.schedule.is_frequent()) else None
        self.run_on_startup = bool(attrs.get("runOnStartup"))
        self.running = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"timer-{self.spec.name}", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread:
            self._thread.join(timeout)

    def busy(self) -> bool:
        return self.running.locked()

    def describe(self) -> str:
        return f"timerTrigger ({self.schedule.expression}, UTC)"

    def run_now(self, past_due: bool = False, reason: str = "Timer fired") -> None:
        """Invoke once (also used by the admin endpoint); failures are logged, not retried."""
        now = datetime.now(timezone.utc)
        status = self._read_status() or {}
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": False})
        with self.running:
            try:
                self.invoker.invoke(self.spec, request, {}, reason)
            except InvocationFailed:
                pass  # logged by the invoker; timers are not retried
        if self.monitor:
            nxt = self.schedule.next_after(datetime.now(timezone.utc))
            self._write_status(now, nxt)

    def _read_status(self) -> dict | None:
        if not self.monitor:
            return None
        try:
            return self.monitor.read(self.spec.name)
        except Exception as err:  # a storage hiccup must not stop the timer
            log.warning("timer %s: could not read its schedule status (%s)", self.spec.name, type(err).__name__)
            return None

    def _write_status(self, last: datetime, nxt: datetime) -> None:
        try:
            self.monitor.write(self.spec.name, {"Last": _iso(last), "Next": _iso(nxt),
                                                "LastUpdated": _iso(datetime.now(timezone.utc))})
        except Exception as err:
            log.warning("timer %s: could not save its schedule status (%s)", self.spec.name, type(err).__name__)

    def _loop(self) -> None:
        try:
            self._schedule_loop()
        except Exception as err:  # never stop silently
            log.error("timer %s stopped: %s", self.spec.name, type(err).__name__)

    def _schedule_loop(self) -> None:
        now = datetime.now(timezone.utc)
        past_due = False
        if self.monitor:
            status = self._read_status()
            if status and status.get("Next") and datetime.fromisoformat(status["Next"]) < now:
                past_due = True
            elif not status:
                self._write_status(now, self.schedule.next_after(now))
        if past_due or self.run_on_startup:
            self.run_now(past_due=past_due, reason="Timer fired (past due)" if past_due else "Run on startup")
        due = self.schedule.next_after(datetime.now(timezone.utc))
        while True:
            wait = (due - datetime.now(timezone.utc)).total_seconds()
            if self.stopping.wait(max(0.0, wait)):
                return
            self.run_now(reason=f"Timer fired at {_iso(due)}")
            due = self.schedule.next_after(max(due, datetime.now(timezone.utc)))
