"""Small readers for environment variables that refuse nonsense at start-up.

Every error names the variable, so a typo fails the process at boot instead of at 3 a.m.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

# No setting needs more than a 32-bit integer holds (OCPP's and PostgreSQL's integer), and larger
# values overflowed timedelta, datetime and database arithmetic long after the start.
INT32_MAX = 2**31 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")  # int() also takes "1_000" and non-ASCII digits
# DRF's throttle rates: requests per second, minute, hour or day (DRF reads the period's first letter).
_RATE = re.compile(r"([0-9]+)/([smhd][a-z]*)")  # DRF reads the period by its first letter: 5/hr, 5/minutes
_TRUE = {"1", "true", "yes", "on"}
_SETTINGS = Path(__file__).resolve().parent / "settings.py"
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    """1/0, true/false, yes/no, on/off in any case; unset or empty: the default, as for every setting
    (``CSMS_METRICS_ENABLED=`` from a compose file's ``${CSMS_METRICS_ENABLED:-}`` is not "off")."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no).")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int = INT32_MAX) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    if not _INTEGER.fullmatch(raw.strip()):
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.")
    value = int(raw)
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    if value > maximum:
        raise ImproperlyConfigured(f"{name}={value} must be at most {maximum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Comma-separated items; unset or without any item (empty): the default."""
    raw = os.environ.get(name, "")
    return [item.strip() for item in raw.split(",") if item.strip()] or default


def env_rate(name: str, default: str) -> str:
    """A DRF throttle rate, ``N/period`` (a period DRF reads by its first letter: second, minute, hour,
    day, s, m, h, d, hr, ...), N from 1 to 2^31-1."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    matched = _RATE.fullmatch(raw.strip().lower())
    if not matched or not 1 <= int(matched[1]) <= INT32_MAX:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a rate: N/second, N/minute, N/hour or N/day (or N/s, N/m, N/h, N/d),"
            f" N from 1 to {INT32_MAX}."
        )
    return f"{int(matched[1])}/{matched[2]}"


def env_url(
    name: str, default: str = "", *, schemes: tuple[str, ...], needs_host: bool = False, failover: bool = False
) -> str:
    """A URL with one of ``schemes`` (kombu's ``transport+url`` is judged by its transport); unset or
    empty: the default. ``needs_host``: it must name a host (an absolute URL). ``failover``: it may
    be kombu's list of URLs separated by ``;`` (``sentinel://h1:26379;sentinel://h2:26379``), each
    one's port checked. The refusal does not repeat the URL when it may hold a password."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        parts = urlsplit(raw.partition(";")[0] if failover else raw)
        host = parts.hostname
        # A port that is no number from 0 to 65535 (redis://host:abc, http://host:99999): the clients
        # (redis-py, kombu, a charger fetching firmware) fail on it at their first use, not here.
        for url in raw.split(";") if failover else [raw]:
            _ = urlsplit(url).port
    except ValueError as error:  # an unclosed "[" of an IPv6 address, such a port
        raise ImproperlyConfigured(f"{name} is not a URL ({error}).") from None
    if parts.scheme.partition("+")[0] not in schemes:
        found = f"the scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ImproperlyConfigured(
            f"{name} is not a URL starting with {', '.join(s + '://' for s in schemes)}: it has {found}."
        )
    if needs_host and not host:
        raise ImproperlyConfigured(f"{name}={raw!r} names no host.")
    return raw


def env_redis_url(name: str) -> str:
    """A Redis URL (``redis://``, ``rediss://`` or ``unix://``); unset or empty: none. A ``redis(s)://``
    URL's path is its database number: redis-py reads any other path as database 0 (the channel layer
    on another database than the one meant) and kombu refuses it (the Celery worker stops at start)."""
    url = env_url(name, schemes=("redis", "rediss", "unix"))
    if url and not url.startswith("unix://"):
        database = urlsplit(url).path.removeprefix("/")
        if database and not (database.isascii() and database.isdigit()):
            raise ImproperlyConfigured(
                f"{name}'s database, {database!r}, is not a number (redis://host:6379/0, or no path for 0)."
            )
    return url


def env_dir(name: str, default: Path) -> Path:
    """A directory the process can write in, created when missing; unset or empty: the default."""
    path = Path(os.environ.get(name, "").strip() or default)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ImproperlyConfigured(f"{name}={str(path)!r}: cannot create the directory ({error.strerror}).") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ImproperlyConfigured(f"{name}={str(path)!r} is not a directory this process can write in.")
    return path


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={raw!r} is not one of {', '.join(choices)}.")
    return value


def _raised_by_settings(traceback: TracebackType | None) -> bool:
    """Whether ``traceback`` passes through the settings module (a setting refused at its load)."""
    while traceback is not None:
        if Path(traceback.tb_frame.f_code.co_filename).resolve() == _SETTINGS:
            return True
        traceback = traceback.tb_next
    return False


def settings_errors_in_one_line(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    """``sys.excepthook`` of every process that loads the settings (``make serve``, ``manage.py``,
    Celery, daphne): a setting refused at start stops the process with its one line naming the
    variable (status 1), not a traceback through Django's settings import; anything else as before."""
    if isinstance(error, ImproperlyConfigured) and _raised_by_settings(traceback):
        print(error, file=sys.stderr)
        return
    _previous_excepthook(kind, error, traceback)


_previous_excepthook = sys.excepthook
if sys.excepthook is not settings_errors_in_one_line:
    sys.excepthook = settings_errors_in_one_line
