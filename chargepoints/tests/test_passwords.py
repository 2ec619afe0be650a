"""A charger password is hashed at most once per presented password and stored hash."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password

from chargepoints.passwords import PasswordNeedsHashing, charger_password_matches

RIGHT = "correct-horse-battery"


def check(password: str, password_hash: str, *, may_hash: bool = True) -> bool:
    return charger_password_matches(
        charge_point_id="CP-PW", password=password, password_hash=password_hash, may_hash=may_hash
    )


def test_a_verified_password_and_a_repeated_wrong_one_are_answered_without_hashing():
    password_hash = make_password(RIGHT)
    with pytest.raises(PasswordNeedsHashing):
        check(RIGHT, password_hash, may_hash=False)
    assert check(RIGHT, password_hash) is True
    assert check("wrong-password-1", password_hash) is False
    assert check(RIGHT, password_hash, may_hash=False) is True
    assert check("wrong-password-1", password_hash, may_hash=False) is False
    with pytest.raises(PasswordNeedsHashing):
        check("wrong-password-2", password_hash, may_hash=False)


def test_a_rotated_password_forgets_the_old_one():
    old_hash = make_password(RIGHT)
    assert check(RIGHT, old_hash) is True
    new_hash = make_password("the-new-password-16")
    with pytest.raises(PasswordNeedsHashing):
        check(RIGHT, new_hash, may_hash=False)
    assert check(RIGHT, new_hash) is False
    assert check("the-new-password-16", new_hash) is True


def test_the_same_password_of_another_charger_is_not_taken_as_verified():
    password_hash = make_password(RIGHT)
    assert check(RIGHT, password_hash) is True
    with pytest.raises(PasswordNeedsHashing):
        charger_password_matches(
            charge_point_id="CP-OTHER", password=RIGHT, password_hash=password_hash, may_hash=False
        )


def test_a_guess_checked_against_a_candidate_does_not_evict_the_verified_password():
    """Review: one hash was remembered per charger, so a wrong password checked against the current
    hash and then the candidate's (stored before a password command leaves) evicted the verified
    password: the real charger's next reconnect needed hashing, which the gateway throttles."""
    current, candidate = make_password(RIGHT), make_password("the-candidate-pw-17")
    assert check(RIGHT, current) is True
    assert check("a-guess-of-sixteen", current) is False
    assert check("a-guess-of-sixteen", candidate) is False
    assert check(RIGHT, current, may_hash=False) is True


def test_a_third_hash_evicts_one_that_verified_nothing_before_the_verified_password():
    """Second review: the remembered hashes were evicted in the order they came, so a guess checked
    against a second and then a third candidate evicted the verified password."""
    current = make_password(RIGHT)
    assert check(RIGHT, current) is True
    for candidate in (make_password("the-candidate-pw-17"), make_password("the-candidate-pw-18")):
        assert check("a-guess-of-sixteen", candidate) is False
    assert check(RIGHT, current, may_hash=False) is True
