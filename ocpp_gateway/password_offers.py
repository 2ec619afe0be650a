"""A charger password the CSMS sends (1.6 ``ChangeConfiguration`` of ``AuthorizationKey``, 2.0.1
``SetVariables`` of ``SecurityCtrlr.BasicAuthPassword``): its candidate hash stored before the CALL
leaves (``chargepoints.services.charge_point_password_offered``), and the answer's follow-up
(``charge_point_password_answered``) told which candidate this command stored.

The offer is kept on the command object the sending process holds (the API's, or its copy sent in
the background), never in the database: the recorded request holds the password redacted. A
command read back from the database (the sweep of abandoned commands) has none, and needs none: its
candidate stays stored and admits the charger that took it."""

from __future__ import annotations

from typing import Literal

from chargepoints.services import PasswordOffer, charge_point_password_answered, charge_point_password_offered
from commands.models import Command

_OFFER = "_password_offer"
Answered = Literal["taken", "after_reboot", "refused"]


def password_offered(command: Command, password: str) -> None:
    """The candidate's hash stored before ``command`` leaves, and remembered on it."""
    assert command.charge_point is not None
    setattr(command, _OFFER, charge_point_password_offered(charge_point=command.charge_point, password=password))


def password_answered(command: Command, password: str, status: Answered) -> None:
    """The charger's answer about the password ``command`` sent, settled against its offer."""
    assert command.charge_point is not None
    offer: PasswordOffer | None = getattr(command, _OFFER, None)
    charge_point_password_answered(charge_point=command.charge_point, password=password, offer=offer, status=status)


def password_unanswered(command: Command, password: str) -> None:
    """``command``'s CALL left and its answer did not come back in time: the charger may have taken
    the password, or not. Its candidate, stored before it left, stays beside the old one (one stored
    now when none was: a command sent without its offer)."""
    if getattr(command, _OFFER, None) is None:
        password_answered(command, password, "after_reboot")


def password_unsent(command: Command) -> None:
    """``command`` never reached the charger (``not_connected``), or the charger answered it with a
    CALLERROR (``call_error``: it did not carry it out): the candidate it stored is dropped (the one
    stored before it back), as when the charger refuses it."""
    offer: PasswordOffer | None = getattr(command, _OFFER, None)
    if offer is not None:
        assert command.charge_point is not None
        charge_point_password_answered(charge_point=command.charge_point, password="", offer=offer, status="refused")


def password_answer(status: str) -> Answered:
    """What a charger's answer status about its password settles: Accepted, ``taken``;
    RebootRequired, ``after_reboot``; any other (Rejected, NotSupported, ...), ``refused``."""
    if status == "Accepted":
        return "taken"
    return "after_reboot" if status == "RebootRequired" else "refused"
