"""What the CSMS keeps of a command it sends, without the secrets the charger alone needs.

Two kinds, kept nowhere in plain text (the command's recorded request, the message log's frame;
``Command.request`` and the log are read by read-only API keys and by support staff, who may not
command a charger):

- a charger's password (``charger_passwords``: its own rules, its follow-ups);
- the secret of a file location (1.6 UpdateFirmware and GetDiagnostics ``location``, 2.0.1
  UpdateFirmware ``firmware.location`` and GetLog ``log.remoteLocation``): the token of the CSMS's
  own links (a signed firmware download, a single-use diagnostics upload: ``maintenance.links``),
  redacted as in the logs (``kernel.log_format.links_redacted``), and the password of a location's
  user information (an operator's ``ftp://user:password@host/``). Nothing the CSMS does later reads
  them: a download checks its signature, an upload its token's hash.

The charger is sent the real values: the caller redacts what it records, not what it sends.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from commands import charger_passwords
from kernel.log_format import REDACTED, links_redacted

# Where a location is, by action: paths into the payload, snake_case (a recorded request) or
# camelCase (a frame); a path the payload does not have (the other version's) is passed over.
_LOCATIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "UpdateFirmware": (("location",), ("firmware", "location")),  # 1.6; 2.0.1
    "GetDiagnostics": (("location",),),
    "GetLog": (("log", "remote_location"), ("log", "remoteLocation")),
}
# The password of a URL's user information (RFC 3986 §3.2.1: ``user:password@``, deprecated, yet
# what an FTP location carries): up to the authority's last ``@``.
_USERINFO_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^/?#:@]*):[^/?#]*@")


def location_redacted(location: str) -> str:
    """``location`` with the token of a CSMS link and the password of its user information replaced
    by ``[redacted]``; itself if it has neither."""
    return _USERINFO_PASSWORD.sub(lambda match: f"{match.group(1)}:{REDACTED}@", links_redacted(location))


def request_redacted(version: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    """A command's body (snake_case, as sent) as it is recorded: a charger password it sets and the
    secret of a location it names replaced (a copy); ``body`` itself when it carries neither."""
    body = charger_passwords.body_redacted(version, body)
    paths = _LOCATIONS.get(action)
    return body if paths is None else _locations_redacted(body, paths)


def call_frame_redacted(version: str, action: str, text: str) -> str:
    """An outbound CALL's text for the message log, without the secrets ``request_redacted`` takes
    out (a frame that carries none is the same text)."""
    paths = _LOCATIONS.get(action)
    if paths is None:
        return charger_passwords.frame_redacted(version, action, text)
    try:
        frame = json.loads(text)
        payload = frame[3]
    except (ValueError, LookupError, TypeError):
        return text
    redacted = _locations_redacted(payload, paths)
    if redacted is payload:
        return text
    frame[3] = redacted
    return json.dumps(frame, separators=(",", ":"))


# The actions whose recorded request or logged frame may hold a secret (a location's, a charger's
# password); 1.6's own actions named for the version a frame does not record.
SECRET_ACTIONS = frozenset({*_LOCATIONS, *charger_passwords.REDACTED_ACTIONS})
_V16_ONLY = frozenset({"ChangeConfiguration", "GetConfiguration", "GetDiagnostics"})


def logged_frame_redacted(*, action: str, outbound_call: bool, text: str) -> str:
    """A message log frame of ``action`` written before its secrets were redacted there (round 46),
    as it would be logged now: an outbound CALL as ``call_frame_redacted`` does it, any other frame
    (an answer, an inbound CALL) as the gateway does a charger's (``charger_passwords.frame_redacted``).
    The version, which the log does not keep, is read from the action (1.6's own, else 2.0.1: only
    1.6's ChangeConfiguration depends on it)."""
    version = "1.6" if action in _V16_ONLY else "2.0.1"
    if outbound_call:
        return call_frame_redacted(version, action, text)
    return charger_passwords.frame_redacted(version, action, text)


def _locations_redacted(payload: Any, paths: tuple[tuple[str, ...], ...]) -> Any:
    """``payload`` with the location at each of ``paths`` redacted (a copy if any is)."""
    redacted = payload
    for *parents, field in paths:
        holder = _at(payload, parents)
        location = holder.get(field) if isinstance(holder, dict) else None
        hidden = location_redacted(location) if isinstance(location, str) else location
        if hidden == location:
            continue
        if redacted is payload:
            redacted = copy.deepcopy(payload)
        _at(redacted, parents)[field] = hidden
    return redacted


def _at(payload: Any, keys: list[str]) -> Any:
    for key in keys:
        payload = payload.get(key) if isinstance(payload, dict) else None
    return payload
