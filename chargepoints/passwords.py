"""Checking a charger's HTTP Basic password (OCPP security profile 1/2) cheaply.

Passwords are stored as Django password hashes (PBKDF2): checking one costs about 250 ms of
CPU, on purpose. So a hash is computed at most once per presented password and stored hash:
per charger, this process remembers a keyed digest (HMAC-SHA256 with ``SECRET_KEY``, about a
microsecond) of the last password that verified and of the last few that did not. A charger
reconnecting with its password, or a guesser repeating a wrong one, costs no hashing. Rotating
the password changes the stored hash, which forgets both. The caller decides whether a new
password may be hashed now (the gateway bounds and throttles hashing).
"""

from __future__ import annotations

import hmac
import threading
from collections import deque
from dataclasses import dataclass, field

from django.contrib.auth.hashers import check_password
from django.utils.crypto import salted_hmac

_REFUSED_REMEMBERED = 8


class PasswordNeedsHashing(Exception):
    """The password was not checked against this hash before, and hashing was not allowed."""


@dataclass
class _Remembered:
    password_hash: str
    verified: bytes = b""
    refused: deque[bytes] = field(default_factory=lambda: deque(maxlen=_REFUSED_REMEMBERED))


_remembered: dict[str, _Remembered] = {}
_lock = threading.Lock()


def charger_password_matches(*, charge_point_id: str, password: str, password_hash: str, may_hash: bool = True) -> bool:
    """Whether ``password`` is the one ``password_hash`` stores, hashing only when this process
    has not checked it against that hash before.

    Raises ``PasswordNeedsHashing`` when a hash is needed and ``may_hash`` is False.
    """
    digest = _digest(charge_point_id, password)
    known = _remembered_for(charge_point_id, password_hash)
    with _lock:
        if known.verified and hmac.compare_digest(known.verified, digest):
            return True
        if digest in known.refused:
            return False
    if not may_hash:
        raise PasswordNeedsHashing
    matches = check_password(password, password_hash)
    with _lock:
        if matches:
            known.verified = digest
        else:
            known.refused.append(digest)
    return matches


def password_hash_admitting(*, charge_point_id: str, password: str | None, require_password: bool) -> str | None:
    """The stored hash that admits ``password`` without hashing, for a check made in a statement
    of its own (``services.charge_point_attach``): for no password presented, "" (no password
    set; unless one is required); for one, the hash this process verified it against. None when
    only reading the hash can tell."""
    if password is None:
        return None if require_password else ""
    digest = _digest(charge_point_id, password)
    with _lock:
        known = _remembered.get(charge_point_id)
        if known is not None and known.verified and hmac.compare_digest(known.verified, digest):
            return known.password_hash
    return None


def _digest(charge_point_id: str, password: str) -> bytes:
    return salted_hmac("chargepoints.passwords", f"{charge_point_id}\0{password}", algorithm="sha256").digest()


def _remembered_for(charge_point_id: str, password_hash: str) -> _Remembered:
    with _lock:
        known = _remembered.get(charge_point_id)
        if known is None or known.password_hash != password_hash:
            known = _remembered[charge_point_id] = _Remembered(password_hash=password_hash)
        return known
