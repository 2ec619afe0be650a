"""The routes of the commands the CSMS sends, declared beside the inbound handlers (MaEVe's
``CallResultRoutes``; docs/architecture.md, "A command").

In a block's handler class, a static method marked ``@answer(Action.reserve_now)`` handles the
charger's answer to that command, one marked ``@answers_together(Action.get_configuration)`` stores
the answers of several such commands at once as the first stores each (a group-commit batch's), and
one marked ``@request_check(Action.set_charging_profile)`` gives the warnings about a request
before it is sent; one marked ``@before_sending(Action.get_base_report)`` changes what the request
itself changes once it is recorded, before its CALL leaves, and one marked
``@unanswered(Action.set_variables)`` what a CALL that left and was not answered in time may have
changed, and one marked ``@unsent(Action.set_variables)`` what a request that never reached the
charger, or that it refused with a CALLERROR, undoes. Each translates the version's snake_case
payload and calls a version-neutral service.
``version_routes`` collects a router's marks; ``OcppGatewayConfig.ready`` installs each version's in
``commands.routes``, which runs them in whichever process completes the command (API, Celery worker
or gateway).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

from chargepoints.models import ChargePoint
from commands.models import Command, CommandState
from commands.routes import VersionRoutes

Handler = TypeVar("Handler", bound=Callable[..., Any])
_ANSWERS = "_answers_actions"
_CHECKS = "_checks_actions"
_ANSWERS_TOGETHER = "_answers_together_actions"
_BEFORE_SENDING = "_before_sending_actions"
_UNANSWERED = "_unanswered_actions"
_UNSENT = "_unsent_actions"


def answer(*actions: str) -> Callable[[Handler], Handler]:
    """Mark the handler of the answers to ``actions`` (OCPP action names); it takes the ``Command``."""
    return _marker(_ANSWERS, actions)


def answers_together(*actions: str) -> Callable[[Handler], Handler]:
    """Mark the handler of many answers to ``actions`` at once; it takes a sequence of ``Command``s
    (one per charger) and stores what the action's ``@answer`` handler stores for each."""
    return _marker(_ANSWERS_TOGETHER, actions)


def request_check(*actions: str) -> Callable[[Handler], Handler]:
    """Mark the warnings of a request for ``actions``; it takes ``charge_point=`` and ``body=``."""
    return _marker(_CHECKS, actions)


def before_sending(*actions: str) -> Callable[[Handler], Handler]:
    """Mark what a request for ``actions`` changes before it is sent; it takes the recorded ``Command``."""
    return _marker(_BEFORE_SENDING, actions)


def unanswered(*actions: str) -> Callable[[Handler], Handler]:
    """Mark what a CALL of ``actions`` that left and was not answered in time (``timeout``) may have
    changed; it takes the ``Command``."""
    return _marker(_UNANSWERED, actions)


def unsent(*actions: str) -> Callable[[Handler], Handler]:
    """Mark what a request for ``actions`` that never reached the charger (``not_connected``), or that
    it answered with a CALLERROR (``call_error``: not carried out), undoes of what its
    ``@before_sending`` handler changed; it takes the ``Command``."""
    return _marker(_UNSENT, actions)


def _marker(attribute: str, actions: tuple[str, ...]) -> Callable[[Handler], Handler]:
    def mark(handler: Handler) -> Handler:
        setattr(handler, attribute, (*getattr(handler, attribute, ()), *map(str, actions)))
        return handler

    return mark


def version_routes(router: type) -> VersionRoutes:
    """The routes a router's handler classes declare, by action; an action marked twice is a mistake."""
    return VersionRoutes(
        answers=_marked(router, _ANSWERS),
        request_checks=_marked(router, _CHECKS),
        answers_together=_marked(router, _ANSWERS_TOGETHER),
        before_sending=_marked(router, _BEFORE_SENDING),
        unanswered=_marked(router, _UNANSWERED),
        unsent=_marked(router, _UNSENT),
    )


def _marked(router: type, attribute: str) -> dict[str, Callable[..., Any]]:
    routes: dict[str, Callable[..., Any]] = {}
    for name in dir(router):
        handler = getattr(router, name)
        for action in getattr(handler, attribute, ()):
            if action in routes:
                raise ImproperlyConfigured(f"{router.__name__}: two handlers for {action} ({attribute[1:]}).")
            routes[action] = handler
    return routes


def answering_charge_point(command: Command) -> ChargePoint:
    """The charger that answered ``command`` (answers are routed only for a known charger)."""
    assert command.charge_point is not None
    return command.charge_point


def answer_status(command: Command) -> str:
    """The ``status`` of the charger's answer ("" when it has none)."""
    return str((command.response or {}).get("status", ""))


def answer_accepted(command: Command) -> bool:
    """Whether the command ended accepted (every status in the answer accepting it, each one the
    spec lists: ``commands.outcomes.state_for``)."""
    return command.state == CommandState.ACCEPTED
