"""Who may charge (id tags), local list versions and reservations."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from charging.models import AuthorizationStatus, IdTag, LocalAuthList, Reservation, ReservationStatus
from charging.selectors import id_tag_authorize, local_list_entries_applied, local_list_key, local_list_key_parts
from charging.services import authorization, charger_state, reservations
from charging.services.start_reads import starts_read_together
from charging.services.transaction_start import StartRequest, start_lookup_of_request, transaction_start

pytestmark = pytest.mark.django_db


def test_unknown_tags_are_invalid_and_known_ones_answer_their_status():
    IdTag.objects.create(id_tag="OK")
    IdTag.objects.create(id_tag="BLOCKED", status=AuthorizationStatus.BLOCKED)
    assert [id_tag_authorize(id_tag=tag).status for tag in ("OK", "ok", "BLOCKED", "NOPE")] == [
        "Accepted",
        "Accepted",
        "Blocked",
        "Invalid",
    ]


def test_an_accepted_tag_past_its_expiry_is_expired():
    IdTag.objects.create(id_tag="OLD", expiry_date=timezone.now() - timedelta(days=1))
    assert id_tag_authorize(id_tag="OLD").status == "Expired"


def test_a_blocked_parent_blocks_its_children_and_is_named_in_the_answer():
    parent = IdTag.objects.create(id_tag="FLEET", status=AuthorizationStatus.BLOCKED)
    IdTag.objects.create(id_tag="CARD-1", parent=parent)
    info = id_tag_authorize(id_tag="CARD-1")
    assert (info.status, info.parent_id_tag) == ("Blocked", "FLEET")


def test_a_tag_registered_with_a_token_type_matches_only_that_type():
    IdTag.objects.create(id_tag="EMAID-1", token_type="eMAID")
    assert id_tag_authorize(id_tag="EMAID-1", token_type="eMAID").status == "Accepted"
    assert id_tag_authorize(id_tag="EMAID-1", token_type="ISO14443").status == "Invalid"


def test_local_list_updates_follow_full_and_differential_semantics(register_charge_point):
    charge_point = register_charge_point("CP-L")
    authorization.local_auth_list_record(
        charge_point=charge_point, version=1, full=True, entries={"A": "Accepted", "B": "Accepted"}
    )
    local_list = authorization.local_auth_list_record(
        charge_point=charge_point, version=2, entries={"B": None, "C": "Blocked"}
    )
    assert (local_list.version, local_list.entries) == (2, {"A": "Accepted", "C": "Blocked"})
    assert authorization.local_auth_list_record(charge_point=charge_point, version=5).entries == local_list.entries
    # IdToken is case-insensitive: an update of "c" is of "C"
    differential = {"a": None, "c": "Accepted"}
    local_list = authorization.local_auth_list_record(charge_point=charge_point, version=6, entries=differential)
    assert local_list.entries == {"c": "Accepted"}
    # A reported version 0 is an empty list, -1 none at all (OCPP 1.6 §5.10)
    for empty in (0, -1):
        assert authorization.local_auth_list_record(charge_point=charge_point, version=empty).entries == {}


def test_a_2_0_1_local_list_entry_is_its_token_with_its_type(register_charge_point):
    """2.0.1 identifies a token by its idToken and type: an update of one type leaves the token's
    entry of another. An entry of no type (1.6's, or a 2.0.1 one recorded before types were kept:
    its type not known) is replaced by an update of any type, and one of no type replaces all."""
    charge_point = register_charge_point("CP-LT")
    LocalAuthList.objects.create(charge_point=charge_point, version=1, entries={"OLD": "Accepted", "1234": "Accepted"})
    local_list = authorization.local_auth_list_record(
        charge_point=charge_point,
        version=2,
        entries={local_list_key("old", "ISO14443"): "Blocked", local_list_key("1234", "KeyCode"): "Accepted"},
    )
    assert local_list.entries == {"old (ISO14443)": "Blocked", "1234 (KeyCode)": "Accepted"}
    local_list = authorization.local_auth_list_record(
        charge_point=charge_point, version=3, entries={local_list_key("1234", "ISO14443"): "Accepted"}
    )
    assert local_list.entries == {
        "old (ISO14443)": "Blocked",
        "1234 (KeyCode)": "Accepted",
        "1234 (ISO14443)": "Accepted",
    }
    local_list = authorization.local_auth_list_record(charge_point=charge_point, version=4, entries={"1234": None})
    assert local_list.entries == {"old (ISO14443)": "Blocked"}
    assert local_list_key_parts("old (ISO14443)") == ("old", "ISO14443")
    assert local_list_key_parts("OLD") == ("OLD", "")
    # Review: only IdTokenEnumType's names make a type; a 1.6 idTag "CARD (1)" is a tag of its own.
    assert local_list_key_parts("CARD (1)") == ("CARD (1)", "")
    assert local_list_entries_applied({"CARD (1)": "Accepted", "CARD": "Accepted"}, {"card": None}) == {
        "CARD (1)": "Accepted"
    }


def test_a_local_list_of_tens_of_thousands_of_tags_is_recorded_in_linear_time(register_charge_point):
    """Each entry scanned the whole list for its tag in any case: a Full list of 20 000 tags (an API
    body of 1 MB, within its 2.5 MB bound) took 23 s of CPU in the process that read its answer, the
    list's row locked meanwhile, and a differential update as much against a large list."""
    charge_point = register_charge_point("CP-BIG")
    tags = [f"TAG-{n:06d}" for n in range(20_000)]
    started = time.monotonic()
    authorization.local_auth_list_record(
        charge_point=charge_point, version=1, full=True, entries=dict.fromkeys(tags, "Accepted")
    )
    differential = {
        **dict.fromkeys((tag.lower() for tag in tags[::2]), "Blocked"),
        "NEW": "Accepted",
        "TAG-000001": None,
    }
    local_list = authorization.local_auth_list_record(charge_point=charge_point, version=2, entries=differential)
    assert time.monotonic() - started < 30  # about 1 s linear, 2 min quadratic: room for a loaded machine
    assert len(local_list.entries) == 20_000
    assert (local_list.entries["tag-000000"], local_list.entries["TAG-000003"]) == ("Blocked", "Accepted")
    assert "TAG-000000" not in local_list.entries and "TAG-000001" not in local_list.entries
    assert local_list.entries["NEW"] == "Accepted"


def test_reservations_past_their_expiry_are_closed_and_reused_ids_replace(register_charge_point):
    charge_point = register_charge_point("CP-R")
    now = datetime(2026, 5, 1, 10, tzinfo=UTC)
    reservations.reservation_record(
        charge_point=charge_point,
        reservation_id=1,
        id_tag="A",
        expiry_date=now - timedelta(minutes=1),
        accepted=True,
        charger_status="Accepted",
        connector_id=1,
    )
    reservations.reservation_record(
        charge_point=charge_point,
        reservation_id=2,
        id_tag="B",
        expiry_date=now + timedelta(hours=1),
        accepted=True,
        charger_status="Accepted",
        connector_id=2,
    )
    assert reservations.reservations_expire(now=now) == 1
    reservations.reservation_record(
        charge_point=charge_point,
        reservation_id=2,
        id_tag="C",
        expiry_date=now + timedelta(hours=2),
        accepted=False,
        charger_status="Occupied",
        connector_id=2,
    )
    # Refused: the charger still holds reservation 2 for B (OCPP 1.6 §5.13), and so does the record
    statuses = dict(Reservation.objects.values_list("reservation_id", "status"))
    assert statuses == {1: ReservationStatus.EXPIRED, 2: ReservationStatus.ACTIVE}
    assert Reservation.objects.get(reservation_id=2).id_tag == "B"
    reservations.reservation_record(
        charge_point=charge_point,
        reservation_id=2,
        id_tag="C",
        expiry_date=now + timedelta(hours=2),
        accepted=True,
        charger_status="Accepted",
        connector_id=2,
    )
    assert Reservation.objects.get(reservation_id=2).id_tag == "C"  # accepted: the reused id replaces


def test_a_card_answers_the_earlier_of_its_own_and_its_group_s_expiry(register_charge_point):
    """A charger's authorization cache keeps a card until the expiry answered: not past its group's."""
    soon = timezone.now() + timedelta(hours=1)
    fleet = IdTag.objects.create(id_tag="FLEET-X", expiry_date=soon)
    IdTag.objects.create(id_tag="CARD-A", parent=fleet)
    IdTag.objects.create(id_tag="CARD-B", parent=fleet, expiry_date=datetime(2030, 1, 1, tzinfo=UTC))
    assert id_tag_authorize(id_tag="CARD-A").expiry_date == soon
    assert id_tag_authorize(id_tag="CARD-B").expiry_date == soon


@pytest.mark.parametrize(("answer", "status"), [("Accepted", "cancelled"), ("Rejected", "cancelled")])
def test_a_cancel_the_charger_accepts_or_finds_nothing_to_cancel_ends_the_reservation(
    register_charge_point, answer, status
):
    """Rejected: "no reservation for this id" on the charger (1.6 §7.5); the record was left active."""
    charge_point = register_charge_point("CP-C")
    reservations.reservation_record(
        charge_point=charge_point,
        reservation_id=9,
        id_tag="A",
        expiry_date=timezone.now() + timedelta(hours=1),
        accepted=True,
        charger_status="Accepted",
        connector_id=1,
    )
    charger_state.reservation_cancel_follow(charge_point=charge_point, status=answer, reservation_id=9)
    assert Reservation.objects.get(reservation_id=9).status == status


def test_a_card_is_not_put_in_a_group_that_joined_a_group_since_it_was_checked():
    """The API checks a parent, then saves: another request putting that group in a group between
    the two is seen at the save (its row locked), and the card stays out of a group of a group."""
    group = IdTag.objects.create(id_tag="FLEET")
    card = IdTag.objects.create(id_tag="CARD")
    checked = IdTag.objects.get(pk=group.pk)
    assert authorization.id_tag_parent_refusal(card, checked) is None
    authorization.id_tag_save(tag=group, parent=IdTag.objects.create(id_tag="HOLDING"))
    with pytest.raises(authorization.IdTagParentRefused):
        authorization.id_tag_save(tag=card, parent=checked)
    assert IdTag.objects.get(pk=card.pk).parent_id is None


@pytest.mark.django_db(transaction=True)
def test_a_group_is_not_deleted_from_under_a_card_made_its_child_meanwhile(behind_a_lock):
    """A delete counts the group's cards after the save that adds one commits: refused, as when
    the card was there first (its group's Blocked or Expired status would be lifted)."""
    group = IdTag.objects.create(id_tag="FLEET")
    card = IdTag.objects.create(id_tag="CARD")

    def deleted() -> str:
        try:
            authorization.id_tag_delete(tag=IdTag.objects.get(pk=group.pk))
        except authorization.IdTagIsParent:
            return "refused"
        return "deleted"

    _, outcome = behind_a_lock(lambda: authorization.id_tag_save(tag=card, parent=group), deleted)
    assert outcome == "refused"
    assert IdTag.objects.get(pk=card.pk).parent_id == group.pk


@pytest.mark.django_db(transaction=True)
def test_a_card_blocked_while_another_request_changes_its_description_stays_blocked(behind_a_lock):
    """Two API PATCHes of one card at once, one blocking it (a lost card reported), one changing its
    description: each saved every column as its request read it, and the second put the card's
    status back to Accepted: the lost card charged on. Each sets only its fields, on the row as
    the first left it."""
    IdTag.objects.create(id_tag="CARD", description="fleet card")
    blocking, describing = IdTag.objects.get(id_tag="CARD"), IdTag.objects.get(id_tag="CARD")

    behind_a_lock(
        lambda: authorization.id_tag_save(tag=blocking, status=AuthorizationStatus.BLOCKED),
        lambda: authorization.id_tag_save(tag=describing, description="van 12"),
    )

    card = IdTag.objects.get(id_tag="CARD")
    assert (card.status, card.description) == (AuthorizationStatus.BLOCKED, "van 12")
    assert (describing.status, describing.description) == (AuthorizationStatus.BLOCKED, "van 12")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="starts read together: PostgreSQL")
def test_two_starts_read_together_are_authorized_each_as_the_database_finds_its_own_spelling(register_charge_point):
    """A batch reads its starts' tags in one statement (``start_reads``), each answered by its own
    spelling: "karte-i" + U+0307 + "1" is no registered tag for the database (its LOWER folds "İ" to
    "i"), though Python's str.lower, which keyed the batch's answers, folds KARTE-İ1 to it."""
    IdTag.objects.create(id_tag="KARTE-İ1")
    requests = []
    for number, tag in enumerate(("KARTE-İ1", "karte-i\u03071")):
        register_charge_point(f"CP-FOLD-{number}")
        requests.append(
            StartRequest(
                charge_point_id=f"CP-FOLD-{number}",
                ocpp_version="1.6",
                start_key=f"1|{tag}|0|",
                started_at=timezone.now(),
                connector_id=1,
                id_tag=tag,
                meter_start_wh=Decimal(0),
            )
        )
    lookups = [start_lookup_of_request(request) for request in requests]
    with starts_read_together([lookup for lookup in lookups if lookup is not None]):
        answers = [transaction_start(request).id_tag_info for request in requests]
    assert [answer.status for answer in answers if answer] == ["Accepted", "Invalid"]
