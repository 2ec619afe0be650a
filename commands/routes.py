"""Command routes: what each OCPP version's router does around a command the CSMS sends.

Per OCPP version and action (``ReserveNow``), a router may declare (docs/architecture.md, "A command"):

- a request check, the warnings about a request body given before it is sent (``Command.warnings``);
- an answer handler, which lets charger state follow the charger's answer (reservations, local
  lists, installed charging profiles, configuration);
- a handler of many answers at once, which stores what the answer handler stores for each of
  several commands of the action by one statement (a group-commit batch's completions written ahead,
  ``commands.outcome_writes``);
- a handler before sending, which lets charger state follow the request itself once it is recorded
  and before its CALL leaves (a report asked again under its requestId starts afresh);
- a handler of a CALL that left and whose answer did not come back (``timeout``): the charger may
  have acted on it (a password it may have taken);
- a handler of a request that never reached the charger (``not_connected``): what its handler
  before sending changed is undone (a password's candidate dropped).

The handlers live beside the version's inbound handlers, in ``ocpp_gateway/v16`` and ``v201``, and
``OcppGatewayConfig.ready`` installs them here, so ``commands`` calls them without importing the
gateway (the layers in pyproject.toml). A command without a route has no warnings, and its answer
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chargepoints.models import ChargePoint
from commands.models import Command

# Called with the answered command (its snake_case ``request`` and ``response``, its ``state``).
AnswerHandler = Callable[[Command], None]
# Called with answered commands of one action, one per charger: what ``AnswerHandler`` does for each.
AnswersHandler = Callable[[Sequence[Command]], None]
# Called with ``charge_point=`` and the snake_case request ``body=``; the warnings, in English.
RequestCheck = Callable[..., list[str]]
# Called with the recorded command (its charger, its snake_case ``request``) before its CALL leaves.
BeforeSending = Callable[[Command], None]
# Called with a command whose CALL left and whose answer did not come back in time (``timeout``),
# or (``unsent``) one that never reached the charger (``not_connected``).
UnansweredHandler = Callable[[Command], None]


@dataclass(frozen=True)
class VersionRoutes:
    """One OCPP version's routes, by OCPP action (``ReserveNow``)."""

    answers: Mapping[str, AnswerHandler] = field(default_factory=dict)
    request_checks: Mapping[str, RequestCheck] = field(default_factory=dict)
    answers_together: Mapping[str, AnswersHandler] = field(default_factory=dict)
    before_sending: Mapping[str, BeforeSending] = field(default_factory=dict)
    unanswered: Mapping[str, UnansweredHandler] = field(default_factory=dict)
    unsent: Mapping[str, UnansweredHandler] = field(default_factory=dict)


_ROUTES: dict[str, VersionRoutes] = {}


def command_routes_install(*, ocpp_version: str, routes: VersionRoutes) -> None:
    """Install (or replace) the routes of ``ocpp_version`` (``1.6``, ``2.0.1``)."""
    _ROUTES[ocpp_version] = routes


def command_routes(ocpp_version: str) -> VersionRoutes:
    """The installed routes of ``ocpp_version``; none for a version without a router."""
    return _ROUTES.get(ocpp_version, VersionRoutes())


def request_warnings(*, charge_point: ChargePoint, ocpp_version: str, action: str, body: dict[str, Any]) -> list[str]:
    """The route's warnings about a validated request ``body`` (snake_case); [] without a check."""
    check = command_routes(ocpp_version).request_checks.get(action)
    return check(charge_point=charge_point, body=body) if check else []


def request_has_check(*, ocpp_version: str, action: str) -> bool:
    """Whether ``action``'s requests get warnings from a check (which reads the charge point)."""
    return action in command_routes(ocpp_version).request_checks


def request_before_sending(command: Command) -> None:
    """Let charger state follow the recorded request ``command`` before its CALL leaves, through its
    route; no route, no change."""
    handler = command_routes(command.ocpp_version).before_sending.get(command.action)
    if handler is not None and command.charge_point is not None:
        handler(command)


def unanswered_route(command: Command) -> UnansweredHandler | None:
    """The handler of ``command``'s CALL left unanswered (a ``timeout``), or None when its action has none."""
    return command_routes(command.ocpp_version).unanswered.get(command.action)


def unsent_route(command: Command) -> UnansweredHandler | None:
    """The handler of ``command``'s request that never reached the charger (``not_connected``) or
    that the charger refused with a CALLERROR (``call_error``: not carried out), or None when its
    action has none."""
    return command_routes(command.ocpp_version).unsent.get(command.action)


def answer_has_route(command: Command) -> bool:
    """Whether an answer to ``command`` may change charger state (its action has an answer handler)."""
    return command.action in command_routes(command.ocpp_version).answers


def answers_together_of(command: Command) -> AnswersHandler | None:
    """The handler storing many answers of ``command``'s action at once (as its answer handler
    stores each), or None when its action has none."""
    routes = command_routes(command.ocpp_version)
    if command.action not in routes.answers:
        return None
    return routes.answers_together.get(command.action)


def answer_follow(command: Command) -> None:
    """Let charger state follow the answer to ``command`` through its route; no route, no change."""
    handler = command_routes(command.ocpp_version).answers.get(command.action)
    if handler is not None:
        handler(command)
