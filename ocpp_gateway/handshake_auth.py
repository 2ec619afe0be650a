"""Charger admission at the handshake, with passwords that cost the process nothing to guess.

1. Admission and attachment (``services.charge_point_attach``) are asked without hashing: a known
   charger without a password, one presenting the password this process verified before, or a
   guess it refused before, is answered at once (``chargepoints.passwords``).
2. A password new to this process waits (on the event loop, at no cost) for one of
   ``CSMS_CHARGER_PASSWORD_HASHES_IN_FLIGHT`` hashing slots; the hash runs on a database thread.
   One identity has at most one password hashed at a time; a concurrent one is refused (the
   gateway answers it 503 with a Retry-After: it may be the charger's own retry of a slow handshake).
3. Failures are counted per identity and client address, and per client address (this
   process): past ``CSMS_CHARGER_AUTH_FAILURES_PER_ID`` or ``CSMS_CHARGER_AUTH_FAILURES_PER_IP``
   within ``CSMS_CHARGER_AUTH_FAILURE_WINDOW_SECONDS`` a new password is refused without hashing
   (the gateway answers 503 with a Retry-After: unchecked, it may be a neighbour's behind the
   guesser's NAT), checked again once a slot is free; a password verified before is still accepted (step 1).
   A refusal that checked no password (step 2's concurrent one, a throttled one) is no failure,
   nor is one that hashed nothing for a password refused from the same address and identity in
   the window already (a charger retrying a stale password behind a site's NAT: no new guess, and
   counted each time it locked its neighbours out; a new guess, or a repeat hashed again, counts).
   Guesses from elsewhere do not lock a charger out, even one this process has not verified yet
   (after a restart, a password change, or on another worker): its own address has no failures
   (unless the guesses come from 10 addresses or more, past 10 times the per-address limit; and
   behind a proxy that hides charger addresses every guess shares the charger's address).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings

from chargepoints.passwords import PasswordNeedsHashing, password_digest
from chargepoints.services.attach_writes import attach_unit_register
from chargepoints.services.attachment import ADMISSION_CHANGED, SUPERSEDED, Attachment, charge_point_attach
from charging.services.open_sessions import open_sessions_condition, open_sessions_load
from ocpp_gateway.db import database_sync_to_async
from ocpp_gateway.group_commit import UnitAbandoned, commit_group

logger = logging.getLogger(__name__)

# Bound on the addresses and identities remembered: past it, windows that ended are forgotten,
# then (if still full) everything; a throttle that forgets is still a throttle.
_MAX_KEYS = 100_000


class FailureCounter:
    """Failures per key in fixed windows of ``window()`` seconds; ``limit()`` per window."""

    def __init__(self, *, limit: Callable[[], int], window: Callable[[], int]) -> None:
        self._limit, self._window = limit, window
        self._counts: dict[str, tuple[float, int]] = {}  # key -> (window start, failures)

    def exceeded(self, key: str) -> bool:
        return self._current(key, time.monotonic())[1] >= self._limit()

    def note(self, key: str) -> None:
        now = time.monotonic()
        if len(self._counts) >= _MAX_KEYS:
            self._forget_ended(now)
        started, failures = self._current(key, now)
        self._counts[key] = (started, failures + 1)

    def _current(self, key: str, now: float) -> tuple[float, int]:
        started, failures = self._counts.get(key, (now, 0))
        return (now, 0) if now - started >= self._window() else (started, failures)

    def _forget_ended(self, now: float) -> None:
        window = self._window()
        self._counts = {key: value for key, value in self._counts.items() if now - value[0] < window}
        if len(self._counts) >= _MAX_KEYS:
            self._counts.clear()


_by_identity = FailureCounter(
    limit=lambda: settings.CSMS_CHARGER_AUTH_FAILURES_PER_ID,
    window=lambda: settings.CSMS_CHARGER_AUTH_FAILURE_WINDOW_SECONDS,
)
# An identity's failures from every address: a guesser spread over many addresses is still held,
# past 10 times the per-address limit (a charger's own address then still locked out; logged).
_by_identity_everywhere = FailureCounter(
    limit=lambda: 10 * settings.CSMS_CHARGER_AUTH_FAILURES_PER_ID,
    window=lambda: settings.CSMS_CHARGER_AUTH_FAILURE_WINDOW_SECONDS,
)
_by_address = FailureCounter(
    limit=lambda: settings.CSMS_CHARGER_AUTH_FAILURES_PER_IP,
    window=lambda: settings.CSMS_CHARGER_AUTH_FAILURE_WINDOW_SECONDS,
)
# The refusals counted in the window, per address, identity and password (its keyed digest): one
# presented again and refused without a hash is not counted again.
_counted = FailureCounter(limit=lambda: 1, window=lambda: settings.CSMS_CHARGER_AUTH_FAILURE_WINDOW_SECONDS)


_hashing_for: set[str] = set()  # identities whose password is being hashed now
# Refusals that checked no password (no hash, none remembered), so no failed check: the charger's
# own retries while its password waits for a slot are no guesses, and must not throttle it.
BEING_CHECKED = "another password for this identity is being checked"
THROTTLED = "too many failed password checks (throttled: not hashed)"
_UNCHECKED = (SUPERSEDED, ADMISSION_CHANGED, BEING_CHECKED, THROTTLED)
_hashing_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


async def handshake_attach(
    *,
    charge_point_id: str,
    password: str | None,
    address: str,
    ocpp_version: str,
    channel_name: str,
    started_at: datetime,
    abandoned: Callable[[], bool],
) -> Attachment | str:
    """The connection's state once admitted and attached (``services.charge_point_attach``), or
    why the handshake is refused, hashing as little as possible; a refusal that presented a
    password counts as a failure (not one that checked none, ``_UNCHECKED``: a newer handshake of
    the charger, one refused while its password is being checked or throttled).

    ``started_at``: when the handshake began (the newest handshake of a charger holds it);
    ``abandoned()``: its socket is gone. An abandoned handshake is neither attached nor hashed
    unless its batch had started (``group_commit.UnitAbandoned`` is raised instead)."""
    asked: dict[str, Any] = {
        "charge_point_id": charge_point_id,
        "password": password,
        "ocpp_version": ocpp_version,
        "channel_name": channel_name,
        "handshake_started_at": started_at,
    }
    may_have_hashed = False
    try:
        # Its arguments as the unit's own: a batch's attaches are written together (``attach_writes``).
        attachment = await commit_group.run(_attached_with_sessions, abandoned=abandoned, may_hash=False, **asked)
    except PasswordNeedsHashing:
        # Hashing takes its own thread, never a batch: the other handshakes do not wait for it.
        hashing_attach = database_sync_to_async(partial(_attached_with_sessions, **asked))
        may_have_hashed = True
        attachment = await _attach_hashing(
            hashing_attach, charge_point_id=charge_point_id, address=address, abandoned=abandoned
        )
    if isinstance(attachment, str) and attachment not in _UNCHECKED and password is not None:
        _failure_noted(charge_point_id=charge_point_id, password=password, address=address, hashed=may_have_hashed)
    return attachment


def _failure_noted(*, charge_point_id: str, password: str, address: str, hashed: bool) -> None:
    """Count a refusal that presented ``password`` as a failure, unless it hashed nothing and the
    same password for the same identity from the same address was counted in the window already:
    a charger retrying its stale password (or a decommissioned one its password) is one failure, not
    one a retry, which behind a site's NAT throttled its neighbours (CSMS_CHARGER_AUTH_FAILURES_PER_IP).
    A repeat that was hashed again (forgotten among newer guesses) counts: hashing stays bounded."""
    repeat = f"{address}|{charge_point_id}|{password_digest(charge_point_id, password).hex()}"
    if not hashed and _counted.exceeded(repeat):
        return
    _counted.note(repeat)
    _by_identity.note(_identity_key(charge_point_id, address))
    _by_identity_everywhere.note(charge_point_id)
    _by_address.note(address)


def _attached_with_sessions(
    *,
    charge_point_id: str,
    password: str | None,
    ocpp_version: str,
    channel_name: str,
    may_hash: bool,
    handshake_started_at: datetime | None = None,
) -> Attachment | str:
    """``charge_point_attach``, and once admitted, the sessions open on the charger loaded onto
    the connection in the same unit (``charging.services.open_sessions.open_sessions_load``): none
    read when the presence write found none open (``open_sessions_condition``)."""
    attachment = charge_point_attach(
        charge_point_id=charge_point_id,
        password=password,
        ocpp_version=ocpp_version,
        channel_name=channel_name,
        handshake_started_at=handshake_started_at,
        may_hash=may_hash,
        condition=open_sessions_condition(),
    )
    if not isinstance(attachment, str):
        open_sessions_load(charge_point_id, any_open=attachment.condition_held)
    return attachment


attach_unit_register(_attached_with_sessions, open_sessions_condition)


async def _attach_hashing(
    attach: Callable[..., Awaitable[Attachment | str]],
    *,
    charge_point_id: str,
    address: str,
    abandoned: Callable[[], bool],
) -> Attachment | str:
    """One hash per identity at a time (a charger has one socket: a second password for it at
    the same moment is a guess), none past the failure throttle, checked again once a slot is free."""
    if charge_point_id in _hashing_for:
        return BEING_CHECKED
    if _throttled(charge_point_id=charge_point_id, address=address):
        return THROTTLED
    _hashing_for.add(charge_point_id)
    try:
        async with _hashing_slot():
            if abandoned():
                raise UnitAbandoned
            if _throttled(charge_point_id=charge_point_id, address=address):
                return THROTTLED
            return await attach(may_hash=True)
    finally:
        _hashing_for.discard(charge_point_id)


def _hashing_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _hashing_slots.get(loop)
    if slots is None:
        slots = _hashing_slots[loop] = asyncio.Semaphore(settings.CSMS_CHARGER_PASSWORD_HASHES_IN_FLIGHT)
    return slots


def _throttled(*, charge_point_id: str, address: str) -> bool:
    return (
        _by_identity.exceeded(_identity_key(charge_point_id, address))
        or _by_identity_everywhere.exceeded(charge_point_id)
        or _by_address.exceeded(address)
    )


def _identity_key(charge_point_id: str, address: str) -> str:
    """An identity's failures are counted per client address: an attacker's guesses throttle the
    attacker's address, not the charger's own."""
    return f"{address}|{charge_point_id}"
