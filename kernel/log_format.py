"""One log format for daphne, Django and Celery: plain lines, or JSON with ``CSMS_LOG_FORMAT=json``.

- Whatever a message carries from outside (a charger id from a URL, a frame) cannot forge a line:
  control characters are escaped (plain) or encoded (JSON).
- Lines logged while a charger's connection or message is handled carry its charge point id,
  action and unique id (context variables, set by the gateway), as fields in JSON.
- Expected client errors (a 403 for a staff member without the permission) are logged without
  the traceback Django attaches to them.
- A failure because PostgreSQL or Redis is away or busy (unreachable, restarting, the pool's
  timeout, a lock wait timed out) is logged as one line naming the error, without its traceback: an
  outage is logged by every charger, task and loop that meets it, and their tracebacks were a storm.
- Celery's routine lines about the beat's frequent ticks (a schedule under a minute, such as the
  webhook wake-up every second) are logged once, then once per ten minutes per task; every other
  task, and anything a tick logs itself (a failure), stays as it is.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime

from django.conf import settings

from kernel.outages import dependency_outage

charge_point_id_var: ContextVar[str] = ContextVar("charge_point_id", default="")
action_var: ContextVar[str] = ContextVar("action", default="")
unique_id_var: ContextVar[str] = ContextVar("unique_id", default="")

_CONTEXT_FIELDS = {"charge_point_id": charge_point_id_var, "action": action_var, "unique_id": unique_id_var}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# The secret path segment of a charger's link: a signed firmware download's token, a diagnostics
# upload's single-use token (``maintenance.charger_urls``), as sent or percent-encoded.
_LINK_TOKEN = re.compile(r"(/firmware/download/|/diagnostics/upload/)[^/\s\"'?#]+")
REDACTED = "[redacted]"


def links_redacted(text: str) -> str:
    """``text`` (a request line, a path) with the tokens of chargers' links replaced by ``[redacted]``:
    whoever reads the logs cannot download a firmware image or upload in a charger's place."""
    if "/firmware/download/" not in text and "/diagnostics/upload/" not in text:
        return text
    return _LINK_TOKEN.sub(lambda match: match.group(1) + REDACTED, text)


def bind_message(*, action: str, unique_id: str) -> None:
    """Name the OCPP message being handled in the log lines that follow (same task and its threads)."""
    action_var.set(action)
    unique_id_var.set(unique_id)


def _escaped(text: str) -> str:
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


class ContextFilter(logging.Filter):
    """Adds the charger's context (``charge_point_id``, ``action``, ``unique_id``) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in _CONTEXT_FIELDS.items():
            if not getattr(record, name, ""):
                setattr(record, name, variable.get())
        return True


class QuietExpectedErrors(logging.Filter):
    """Django logs a 4xx raised as an exception (PermissionDenied) with its traceback: drop it.
    A request Django refuses as suspicious (``django.security.*``, answered 400: a scanner's wrong
    ``Host``, ``DisallowedHost``; too many form fields) is logged at ERROR: it is a ``WARNING``
    (dropped when the logger's level is above it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(("django.request", "django.security")) and getattr(record, "status_code", 500) < 500:
            record.exc_info = None
            record.exc_text = None
            if record.name.startswith("django.security") and record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
                return logging.getLogger(record.name).isEnabledFor(logging.WARNING)
        return True


class RedactedLinks(logging.Filter):
    """Django's and daphne's lines about a request (``Forbidden: /diagnostics/upload/<token>``, the
    access log) name its path: the token of a charger's link in it is redacted (``links_redacted``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(("django.", "daphne.")):
            message = record.getMessage()
            redacted = links_redacted(message)
            if redacted is not message:
                record.msg, record.args = redacted, None
        return True


class QuietOutages(logging.Filter):
    """A record whose exception is a dependency's outage (``dependency_outage``), or was raised from
    one (``raise ... from``: the write-behind buffers' refused rows from a lock wait timed out), keeps
    its message with that outage appended, without the traceback; any other exception keeps its
    traceback."""

    CAUSES = 8  # explicit causes looked through at most

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        for _ in range(self.CAUSES):
            if error is None or dependency_outage(error):
                break
            error = error.__cause__
        if error is not None and dependency_outage(error):
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class QuietFrequentTicks(logging.Filter):
    """Celery's "Sending due task", "received", "succeeded" and "Discarding revoked task" (a tick
    that expired waiting, ``CELERY_BEAT_SCHEDULE``) INFO lines of a beat entry scheduled more often
    than every ``FREQUENT`` s: the first, then at most one per ``EVERY`` s per task."""

    FREQUENT = 60.0
    EVERY = 600.0
    _ROUTINE = {"celery.beat", "celery.worker.strategy", "celery.app.trace", "celery.worker.request"}

    def __init__(self) -> None:
        super().__init__()
        self._last_logged: dict[str, float] = {}
        self._frequent: set[str] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name not in self._ROUTINE or record.levelno != logging.INFO:
            return True
        task = _routine_task(record)
        if task is None or task not in self._frequent_tasks():
            return True
        key = f"{record.name} {task}"
        now = time.monotonic()
        if key in self._last_logged and now - self._last_logged[key] < self.EVERY:
            return False
        self._last_logged[key] = now
        return True

    def _frequent_tasks(self) -> set[str]:
        if self._frequent is None:
            self._frequent = {
                entry["task"]
                for entry in settings.CELERY_BEAT_SCHEDULE.values()
                if isinstance(entry.get("schedule"), int | float) and entry["schedule"] < self.FREQUENT
            }
        return self._frequent


def _routine_task(record: logging.LogRecord) -> str | None:
    """The task a routine line is about: the beat's "Sending due task <entry> (<task>)", or the
    worker's "Task <task>[<id>] received" / "succeeded in ..." (their arguments are a dict), or its
    "Discarding revoked task: <task>[<id>]" of an expired tick."""
    if record.name == "celery.beat" and str(record.msg).startswith("Scheduler: Sending due task"):
        return str(record.args[1]) if isinstance(record.args, tuple) and len(record.args) == 2 else None
    if record.name == "celery.worker.request" and str(record.msg).startswith("Discarding revoked task"):
        return str(record.args[0]) if isinstance(record.args, tuple) and len(record.args) == 2 else None
    if isinstance(record.args, dict) and re.search(r"\] (received|succeeded in)", str(record.msg)):
        return record.args.get("name")
    return None


class PlainFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message>``, the message's control characters escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = _escaped(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, the charger's context, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            if value := getattr(record, name, ""):
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def route_daphne_access_log() -> None:
    """Make daphne's access log (a line per HTTP request and WebSocket step, written to stdout in
    its own format) log records of ``daphne.access`` instead, in the configured format. An access
    log file given with ``--access-log FILE`` is written as before. In both, the token of a
    charger's link in a request's path is redacted (``links_redacted``).

    daphne builds its access logger after importing the application, so ``csms.asgi`` calls this.
    """
    # Not at import: daphne.cli imports daphne.server, which installs Twisted's reactor, and every
    # process (Celery, manage.py) loads this module with the logging settings.
    from daphne import access, cli

    access_logger = logging.getLogger("daphne.access")

    class AccessLog(access.AccessLogGenerator):
        def write_entry(
            self,
            host: str,
            date: datetime,
            request: str,
            status: int | None = None,
            length: int | None = None,
            ident: str | None = None,
            user: str | None = None,
        ) -> None:
            request = links_redacted(request)
            if self.stream is not sys.stdout:
                super().write_entry(host, date, request, status, length, ident, user)
                return
            access_logger.info('%s "%s" %s %s', host, request, status or "-", length or "-")

    cli.AccessLogGenerator = AccessLog
