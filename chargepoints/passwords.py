"""Checking a charger's HTTP Basic password (OCPP security profile 1/2) cheaply.

Passwords are stored as Django password hashes (PBKDF2): checking one costs about 250 ms of
CPU, on purpose. So a hash is computed at most once per presented password and stored hash:
per charger and stored hash (its current password's and its candidates': the last three hashes checked),
this process remembers a keyed digest (HMAC-SHA256 with ``SECRET_KEY``, about a microsecond) of the
last password that verified and of the last few that did not. A charger reconnecting with its
password, or a guesser repeating a wrong one, costs no hashing, a candidate stored beside the password
included (a guess checked against both no longer evicts the password that verified). Rotating the
password changes the stored hash, which is remembered afresh. The caller decides whether a new
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


# Hashes remembered per charger: its current password's and its two candidates'
# (``services.charge_point_password_offered``)
_HASHES_REMEMBERED = 3

_remembered: dict[str, dict[str, _Remembered]] = {}  # charger id -> stored hash -> what was checked against it
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
            _verified_last(charge_point_id, known)
            return True
        if digest in known.refused:
            return False
    if not may_hash:
        raise PasswordNeedsHashing
    matches = check_password(password, password_hash)
    with _lock:
        if matches:
            known.verified = digest
            _verified_last(charge_point_id, known)
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
        for known in reversed(_remembered.get(charge_point_id, {}).values()):  # the last verified first
            if known.verified and hmac.compare_digest(known.verified, digest):
                return known.password_hash
    return None


def password_digest(charge_point_id: str, password: str) -> bytes:
    """A keyed digest (HMAC-SHA256 with ``SECRET_KEY``) of ``password`` presented for
    ``charge_point_id``: to tell a password presented again without keeping it."""
    return _digest(charge_point_id, password)


def _digest(charge_point_id: str, password: str) -> bytes:
    return salted_hmac("chargepoints.passwords", f"{charge_point_id}\0{password}", algorithm="sha256").digest()


def _verified_last(charge_point_id: str, known: _Remembered) -> None:
    """``known``'s hash verified a password just now: the charger's hash remembered last (held under ``_lock``)."""
    hashes = _remembered.get(charge_point_id)
    if hashes is not None and hashes.get(known.password_hash) is known:
        hashes[known.password_hash] = hashes.pop(known.password_hash)


def _remembered_for(charge_point_id: str, password_hash: str) -> _Remembered:
    with _lock:
        hashes = _remembered.setdefault(charge_point_id, {})
        known = hashes.get(password_hash)
        if known is None:
            if len(hashes) >= _HASHES_REMEMBERED:  # one that verified nothing goes first, then the oldest
                del hashes[next((seen for seen, held in hashes.items() if not held.verified), next(iter(hashes)))]
            known = hashes[password_hash] = _Remembered(password_hash=password_hash)
        return known
