"""What the gateway reads of the frames it sends itself, without decoding them again."""

from __future__ import annotations

import json
import re
from typing import Any

# The ocpp package writes frames compactly: ``[3,"<unique id>",{...}]``.
_HEAD = re.compile(r'\[([234]),"((?:[^"\\]|\\.)*)"')


def outgoing_frame(message: str) -> tuple[int, str, list[Any] | None]:
    """(message type, unique id, the decoded frame or None) of an outgoing frame.

    A CALLRESULT, the bulk of what the CSMS sends, is not decoded: only its head is read. A CALL
    or CALLERROR (their action and error code matter) and anything not written compactly are.
    """
    head = _HEAD.match(message)
    if head is not None and head.group(1) == "3":
        unique_id = head.group(2)
        return 3, json.loads(f'"{unique_id}"') if "\\" in unique_id else unique_id, None
    frame = json.loads(message)
    return frame[0], str(frame[1]), frame
