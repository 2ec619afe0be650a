"""Record and replay: a charger's conversation as a trace file, and that trace played back at a gateway.

A trace is JSON Lines. The first line describes it::

    {"trace": "dynamo-csms/1", "charge_point_id": "CP-1", "ocpp_version": "1.6", "exported_at": "..."}

and each further line is one frame as it went over the wire, oldest first::

    {"at": 0.0, "direction": "in", "frame": "[2,\"1\",\"Heartbeat\",{}]"}

(``at``: seconds since the first frame; ``in``: charger to CSMS). Replaying plays the charger:
it sends each inbound frame in order and checks the gateway answers as it answered then. An
answer matches when it is the same kind (CALLRESULT or CALLERROR, with the same error code) and
agrees on the fields that carry a decision (``status`` wherever it occurs); times, transaction
ids and intervals are allowed to differ, because they do between any two runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from chargepoints.models import ChargePoint, MessageDirection, OcppMessage
from ocpp_gateway.consumers import SUBPROTOCOLS

TRACE_FORMAT = "dynamo-csms/1"
_CALL, _CALLRESULT, _CALLERROR = 2, 3, 4


@dataclass(frozen=True)
class TraceFrame:
    at: float
    direction: str
    frame: str

    def parsed(self) -> Any:
        try:
            return json.loads(self.frame)
        except ValueError:
            return None


@dataclass
class Trace:
    charge_point_id: str
    ocpp_version: str
    frames: list[TraceFrame] = field(default_factory=list)
    exported_at: str = ""

    def to_jsonl(self) -> str:
        header = {
            "trace": TRACE_FORMAT,
            "charge_point_id": self.charge_point_id,
            "ocpp_version": self.ocpp_version,
            "exported_at": self.exported_at,
        }
        lines = [json.dumps(header)]
        lines += [json.dumps({"at": f.at, "direction": f.direction, "frame": f.frame}) for f in self.frames]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_jsonl(cls, text: str) -> Trace:
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        if not lines or lines[0].get("trace") != TRACE_FORMAT:
            raise ValueError(f"not a {TRACE_FORMAT} trace")
        header, frames = lines[0], lines[1:]
        return cls(
            charge_point_id=header["charge_point_id"],
            ocpp_version=header["ocpp_version"],
            exported_at=header.get("exported_at", ""),
            frames=[TraceFrame(at=f["at"], direction=f["direction"], frame=f["frame"]) for f in frames],
        )

    def exchanges(self) -> Iterator[tuple[TraceFrame, TraceFrame | None]]:
        """Each inbound frame the charger sent, with the answer the CSMS gave it (None: no answer)."""
        answers: dict[str, TraceFrame] = {}
        for frame in self.frames:
            parsed = frame.parsed()
            if frame.direction == MessageDirection.OUTBOUND and _is_answer(parsed):
                answers.setdefault(parsed[1], frame)
        for frame in self.frames:
            if frame.direction != MessageDirection.INBOUND:
                continue
            parsed = frame.parsed()
            if _is_answer(parsed):
                continue  # the charger answering a CSMS command: replayed only when the gateway asks again
            unique_id = parsed[1] if isinstance(parsed, list) and len(parsed) > 1 else None
            yield frame, answers.get(unique_id) if isinstance(unique_id, str) else None

    def charger_answers(self) -> dict[str, str]:
        """Action -> the charger's recorded answer frame, for CALLs the CSMS sent it."""
        actions: dict[str, str] = {}
        for frame in self.frames:
            parsed = frame.parsed()
            if frame.direction == MessageDirection.OUTBOUND and _is_call(parsed):
                actions[parsed[1]] = parsed[2]
        answers: dict[str, str] = {}
        for frame in self.frames:
            parsed = frame.parsed()
            if frame.direction == MessageDirection.INBOUND and _is_answer(parsed) and parsed[1] in actions:
                answers.setdefault(actions[parsed[1]], frame.frame)
        return answers


def _is_call(parsed: Any) -> bool:
    return isinstance(parsed, list) and len(parsed) == 4 and parsed[0] == _CALL and isinstance(parsed[1], str)


def _is_answer(parsed: Any) -> bool:
    return (
        isinstance(parsed, list)
        and len(parsed) >= 3
        and parsed[0] in (_CALLRESULT, _CALLERROR)
        and isinstance(parsed[1], str)
    )


def charge_point_trace(*, charge_point_id: str, since: datetime | None = None, until: datetime | None = None) -> Trace:
    """A charger's logged frames between ``since`` and ``until`` as a trace (ChargePoint.DoesNotExist if unknown)."""
    charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
    messages = OcppMessage.objects.filter(charge_point=charge_point).order_by("created_at", "id")
    if since is not None:
        messages = messages.filter(created_at__gte=since)
    if until is not None:
        messages = messages.filter(created_at__lt=until)
    frames: list[TraceFrame] = []
    start: datetime | None = None
    for message in messages.only("direction", "frame", "created_at").iterator():
        start = start or message.created_at
        at = round((message.created_at - start).total_seconds(), 3)
        frames.append(TraceFrame(at=at, direction=message.direction, frame=message.frame))
    return Trace(
        charge_point_id=charge_point_id,
        ocpp_version=charge_point.ocpp_version,
        frames=frames,
        exported_at=timezone.now().isoformat().replace("+00:00", "Z"),
    )


# --- Replay ---------------------------------------------------------------------------------


def _decisions(value: Any, path: str = "") -> dict[str, Any]:
    """Every ``status`` field in an answer payload, by its path."""
    found: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            inner_path = f"{path}.{key}" if path else key
            if key == "status" and not isinstance(inner, (dict, list)):
                found[inner_path] = inner
            else:
                found.update(_decisions(inner, inner_path))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found.update(_decisions(inner, f"{path}[{index}]"))
    return found


def answer_differences(expected: str, actual: str) -> list[str]:
    """How ``actual`` differs from the recorded answer ``expected`` in what matters; [] when it matches."""
    recorded, got = json.loads(expected), json.loads(actual)
    if recorded[0] != got[0]:
        return [f"message type {got[0]}, recorded {recorded[0]}: {actual}"]
    if recorded[0] == _CALLERROR:
        return [] if recorded[2] == got[2] else [f"error code {got[2]!r}, recorded {recorded[2]!r}"]
    want, have = _decisions(recorded[2]), _decisions(got[2])
    return [f"{key} = {have.get(key)!r}, recorded {value!r}" for key, value in want.items() if have.get(key) != value]


@dataclass
class ReplayResult:
    exchanges: int = 0
    mismatches: list[str] = field(default_factory=list)


async def replay_trace(trace: Trace, *, url: str, timeout: float = 10.0, **connect_kwargs: Any) -> ReplayResult:
    """Play the charger's side of ``trace`` to the gateway at ``url`` (``ws://host:port``).

    Frames are sent in order, each after the previous one is answered, without the recorded
    pauses. A CALL the gateway sends meanwhile is answered with the charger's recorded answer to
    that action, or a NotImplemented CALLERROR.
    """
    result = ReplayResult()
    endpoint = f"{url}/ocpp/{trace.ocpp_version}/{trace.charge_point_id}"
    async with connect(
        endpoint, subprotocols=[Subprotocol(SUBPROTOCOLS[trace.ocpp_version])], compression=None, **connect_kwargs
    ) as websocket:
        charger_answers = trace.charger_answers()
        for sent, recorded in trace.exchanges():
            await websocket.send(sent.frame)
            if recorded is None:
                continue
            result.exchanges += 1
            answer = await _answer_to(websocket, json.loads(recorded.frame)[1], charger_answers, timeout)
            for difference in answer_differences(recorded.frame, answer):
                result.mismatches.append(f"{_describe(sent)}: {difference}")
    return result


async def _answer_to(
    websocket: ClientConnection, unique_id: str, charger_answers: dict[str, str], timeout: float
) -> str:
    async with asyncio.timeout(timeout):
        while True:
            raw = await websocket.recv()
            parsed = json.loads(raw)
            if _is_call(parsed):
                await websocket.send(_charger_answer(parsed, charger_answers))
            elif _is_answer(parsed) and parsed[1] == unique_id:
                return str(raw)


def _charger_answer(call: list[Any], charger_answers: dict[str, str]) -> str:
    recorded = charger_answers.get(call[2])
    if recorded is None:
        return json.dumps([_CALLERROR, call[1], "NotImplemented", "Not in the trace", {}])
    answer = json.loads(recorded)
    answer[1] = call[1]
    return json.dumps(answer)


def _describe(frame: TraceFrame) -> str:
    parsed = frame.parsed()
    if _is_call(parsed):
        return f"{parsed[2]} {parsed[1]}"
    return f"frame {frame.frame[:60]!r}"
