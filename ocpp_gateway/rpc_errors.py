"""How a frame that is not a well-formed OCPP message is answered (OCPP-J 1.6 §4; OCPP 2.0.1 part 4 §4).

OCPP 1.6 answers such a frame, with its own error codes, only when it is a CALL whose unique id
can be read (from its head, ``[2,"<id>",``, when it is no JSON: a FormationViolation); a message type
number other than 2, 3 and 4 is ignored (OCPP-J 1.6 §4.1.3). OCPP 2.0.1 answers a CALL that is no
JSON but whose id leads it (``[2,"<id>",``) the same way, a FormatViolation with that id (as one too
large or nested too deep), and adds two RPC framework codes: ``MessageTypeNotSupported`` for a
message type number other than CALL, CALLRESULT and CALLERROR (answered with the frame's id, so a
newer peer can fall back), and ``RpcFrameworkError`` for a frame that is no RPC message at all (not
JSON without such a head, not an array, no number for its type, no readable id), answered with the
message id ``"-1"`` (part 4 §4.3: only when the id cannot be read). An answer (CALLRESULT,
CALLERROR) is never answered.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ocpp.exceptions import FormatViolationError, OCPPError
from ocpp.messages import MessageType

UNREADABLE_ID = "-1"
# The longest id of a CALL refused unread (too large, too deep, no JSON, over the frame rate) that is
# echoed in its CALLERROR, in characters (escapes read: ``\u00e9`` is one). OCPP-J gives ids 36 (1.6
# §4.1.4, 2.0.1 part 4 §4.1.4), yet chargers send longer ones, which a CALL read is answered with whole;
# a CALL refused unread, its id read from its head alone, is answered with one of up to this many, the
# answer bounded however large the frame (one with a longer id goes unanswered, as an unreadable one).
ECHOED_ID_CHARACTERS = 255
# A CALL's id at its start, read without decoding the frame: up to ``ECHOED_ID_CHARACTERS`` escapes
# of six characters (``"a\"b"``), a byte-order mark first too.
_LEADING_CALL_ID = re.compile(rf'\ufeff?\s*\[\s*2\s*,\s*"((?:[^"\\]|\\.){{1,{6 * ECHOED_ID_CHARACTERS}}})"', re.DOTALL)
# A 1.6 CALL's integer id (1.6 echoes one).
_LEADING_CALL_INTEGER_ID = re.compile(r"\ufeff?\s*\[\s*2\s*,\s*(-?\d{1,18})\s*,")
_HEAD_CHARACTERS = 6 * ECHOED_ID_CHARACTERS + 100  # an id of that many escapes (``\u00e9``) and what may lead it
_MESSAGE_TYPES = {MessageType.Call, MessageType.CallResult, MessageType.CallError}
# OCPP 2.0.1 part 4 §4.2.3: a CALLERROR's ErrorDescription is string[0..255] (1.6 sets no bound).
DESCRIPTION_CHARACTERS_201 = 255
_NOT_JSON = "The frame is not valid JSON (RFC 8259: control characters in a string are escaped)."


class RpcFrameworkError(OCPPError):
    code = "RpcFrameworkError"
    default_description = "Content of the call is not a valid RPC Request, for example: MessageId could not be read."


class MessageTypeNotSupportedError(OCPPError):
    code = "MessageTypeNotSupported"
    default_description = "A message with a Message Type Number received that is not supported by this implementation."


def leading_call_id(raw: str, *, ocpp_version: str) -> str | int | None:
    """The id of the CALL that ``raw`` starts as, read from its head without decoding the rest, as
    the connection's version echoes a valid CALL's: a non-empty string (its escapes read), or in 1.6
    an integer too; None when there is none (not a CALL, no id there, a 2.0.1 integer id)."""
    head = raw[:_HEAD_CHARACTERS]
    text = _LEADING_CALL_ID.match(head)
    if text is not None:
        try:
            unique_id = json.loads(f'"{text.group(1)}"') if "\\" in text.group(1) else text.group(1)
        except ValueError:  # an escape JSON does not have (``\x``): no id that can be echoed
            return None
        readable = isinstance(unique_id, str) and 0 < len(unique_id) <= ECHOED_ID_CHARACTERS
        return unique_id if readable else None
    if ocpp_version == "1.6" and (number := _LEADING_CALL_INTEGER_ID.match(head)) is not None:
        return int(number.group(1))
    return None


def description_fitted(description: str, *, ocpp_version: str) -> str:
    """A CALLERROR's ``description`` as the connection's version allows it: cut to 255 characters in 2.0.1."""
    if ocpp_version == "2.0.1" and len(description) > DESCRIPTION_CHARACTERS_201:
        return description[:DESCRIPTION_CHARACTERS_201]
    return description


def _decoded(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None


def _readable_id(frame: list[Any], *, integers: bool = False) -> str | int | None:
    """The frame's message id if it can be echoed: a non-empty string, or with ``integers`` an integer
    too (1.6 echoes one, as it does a valid CALL's)."""
    unique_id = frame[1] if len(frame) > 1 else None
    if (isinstance(unique_id, str) and unique_id) or (integers and type(unique_id) is int):
        return unique_id
    return None


def unparseable_answer(raw: str, error: OCPPError | None, *, ocpp_version: str) -> tuple[str | int, OCPPError] | None:
    """The (unique id, error) to answer a frame that did not unpack with, or None to answer nothing.

    ``error`` is what unpacking raised (None when the frame was nested too deeply to decode).
    """
    frame = _decoded(raw)
    if frame is None:  # a raw control character in a string, cut short, two frames in one
        # its id read (a string in both versions, 1.6 an integer too): the charger can tell which CALL failed
        if (unique_id := leading_call_id(raw, ocpp_version=ocpp_version)) is not None:
            return unique_id, FormatViolationError(description=_NOT_JSON)
        if ocpp_version == "1.6":
            return None
    if ocpp_version == "1.6":
        is_call = isinstance(frame, list) and bool(frame) and frame[0] == MessageType.Call
        unique_id = _readable_id(frame, integers=True) if is_call else None
        return (unique_id, error) if unique_id is not None and error is not None else None
    if not isinstance(frame, list) or not frame or type(frame[0]) is not int:
        cause = "The frame is not a JSON array led by a message type number."
        return UNREADABLE_ID, RpcFrameworkError(details={"cause": cause})
    unique_id = _readable_id(frame)
    if frame[0] not in _MESSAGE_TYPES:
        cause = f"Message type {frame[0]} is none of CALL (2), CALLRESULT (3) and CALLERROR (4)."
        return unique_id or UNREADABLE_ID, MessageTypeNotSupportedError(details={"cause": cause})
    if frame[0] != MessageType.Call:
        return None
    if unique_id is None:
        return UNREADABLE_ID, RpcFrameworkError(details={"cause": "The message id could not be read."})
    return (unique_id, error) if error is not None else None
