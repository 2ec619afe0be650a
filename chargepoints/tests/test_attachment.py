"""A handshake's one database call: admission, presence and the state the connection keeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chargepoints import services
from chargepoints.models import ChargePoint, ChargerModelProfile, LifecycleState, Strictness
from chargepoints.selectors import ChargerProfile
from chargepoints.services.attachment import SUPERSEDED, charge_point_attach


def attach(charge_point_id: str = "CP-1", password: str | None = None, channel_name: str = "ch-new"):
    return charge_point_attach(
        charge_point_id=charge_point_id, password=password, ocpp_version="1.6", channel_name=channel_name
    )


def test_a_known_charger_is_attached_with_its_state(register_charge_point):
    register_charge_point("CP-1", heartbeat_interval=120)
    ChargePoint.objects.filter(charge_point_id="CP-1").update(
        vendor="Acme", model="A1", firmware_version="1.2.3", connection_channel="ch-old"
    )
    ChargerModelProfile.objects.create(vendor="acme", model="a1", strictness=Strictness.LENIENT, quirks=["x"])
    attachment = attach()
    assert not isinstance(attachment, str)
    assert attachment.replaced_channel == "ch-old"
    assert (attachment.heartbeat_interval, attachment.commissioned) == (120, True)
    assert attachment.profile.lenient and attachment.profile.quirks == ("x",)
    assert ChargePoint.objects.filter(charge_point_id="CP-1", connection_channel="ch-new", connected=True).exists()


def test_a_pending_charger_is_attached_not_commissioned(register_charge_point):
    register_charge_point("CP-1", lifecycle_state=LifecycleState.PENDING)
    attachment = attach()
    assert not isinstance(attachment, str) and not attachment.commissioned and not attachment.profile.lenient


def test_a_refused_handshake_leaves_presence_alone(register_charge_point):
    register_charge_point("CP-1", password="right")
    register_charge_point("CP-OLD", lifecycle_state=LifecycleState.DECOMMISSIONED)
    ChargePoint.objects.update(connection_channel="ch-old")
    assert attach("CP-1", password="wrong") == "wrong password"
    assert attach("CP-OLD") == "decommissioned"
    assert attach("CP-UNKNOWN") == "unknown"
    assert set(ChargePoint.objects.values_list("connection_channel", flat=True)) == {"ch-old"}
    assert not isinstance(attach("CP-1", password="right"), str)


def test_an_older_handshake_s_late_attach_never_takes_presence_from_a_newer_one(register_charge_point):
    """A charger gave up on a slow handshake and opened another socket, attached first: the older
    handshake's attach, however late, is refused and closes nothing; a newer one takes over."""
    register_charge_point("CP-1")
    started = timezone.now()

    def attach_started(offset_s: float, channel_name: str):
        return charge_point_attach(
            charge_point_id="CP-1",
            password=None,
            ocpp_version="1.6",
            channel_name=channel_name,
            handshake_started_at=started + timedelta(seconds=offset_s),
        )

    newer = attach_started(5, "ch-newer")
    assert not isinstance(newer, str) and newer.replaced_channel == ""
    assert attach_started(0, "ch-older") == SUPERSEDED
    assert ChargePoint.objects.get(charge_point_id="CP-1").connection_channel == "ch-newer"
    services.charge_point_disconnect(charge_point_id="CP-1", channel_name="ch-newer")
    assert attach_started(0, "ch-older") == SUPERSEDED  # the newer one held it, even after its socket closed
    newest = attach_started(9, "ch-newest")
    assert not isinstance(newest, str)
    assert ChargePoint.objects.get(charge_point_id="CP-1").connection_channel == "ch-newest"


def test_a_booted_chargers_profile_comes_with_the_presence_write_most_specific_first(register_charge_point):
    register_charge_point("CP-1")
    ChargePoint.objects.filter(charge_point_id="CP-1").update(vendor="Acme", model="A1", firmware_version="2.4.1")
    ChargerModelProfile.objects.create(vendor="ACME", model="", strictness=Strictness.LENIENT, quirks=["vendor"])
    ChargerModelProfile.objects.create(vendor="acme", model="a1", firmware_version_prefix="2.", quirks=["model-2"])
    ChargerModelProfile.objects.create(vendor="acme", model="a1", firmware_version_prefix="2.4", quirks=["model-2.4"])
    ChargerModelProfile.objects.create(vendor="acme", model="a1", firmware_version_prefix="3.", quirks=["model-3"])
    ChargerModelProfile.objects.create(vendor="acme", model="B2", quirks=["other-model"])
    with CaptureQueriesContext(connection) as queries:
        attachment = attach()
    assert not isinstance(attachment, str)
    assert attachment.profile == ChargerProfile(lenient=False, quirks=("model-2.4",))
    profile_reads = [q["sql"] for q in queries if ChargerModelProfile._meta.db_table in q["sql"]]
    assert len(profile_reads) == 1 and profile_reads[0].startswith("WITH")  # the presence write's own
    # Booted as a model no profile names: the vendor's catch-all; never booted: strict.
    ChargePoint.objects.filter(charge_point_id="CP-1").update(model="Z9")
    assert attach(channel_name="ch-2").profile == ChargerProfile(lenient=True, quirks=("vendor",))
    ChargePoint.objects.filter(charge_point_id="CP-1").update(vendor="", model="")
    assert attach(channel_name="ch-3").profile == ChargerProfile()


def _statements(queries: CaptureQueriesContext) -> list[str]:
    """The statements on the charger's row (not the webhook subscription's read of an online event)."""
    return [query["sql"] for query in queries.captured_queries if ChargePoint._meta.db_table in query["sql"]]


def test_a_charger_admitted_without_reading_its_hash_is_attached_in_one_statement(register_charge_point):
    """No password set and none presented, or the password this process verified: the admission
    is checked in the presence write (PostgreSQL)."""
    register_charge_point("CP-OPEN")
    register_charge_point("CP-PW", password="right")
    with CaptureQueriesContext(connection) as open_handshake:
        assert not isinstance(attach("CP-OPEN"), str)
    with CaptureQueriesContext(connection) as first:
        assert not isinstance(attach("CP-PW", password="right"), str)  # hashed: its hash read first
    with CaptureQueriesContext(connection) as reconnect:
        assert not isinstance(attach("CP-PW", password="right", channel_name="ch-2"), str)
    one = 1 if connection.vendor == "postgresql" else 2
    assert (len(_statements(open_handshake)), len(_statements(first)), len(_statements(reconnect))) == (one, 2, one)
    assert ChargePoint.objects.get(charge_point_id="CP-PW").connection_channel == "ch-2"


def test_a_handshake_the_presence_write_does_not_admit_is_refused_for_its_reason(register_charge_point, settings):
    register_charge_point("CP-PW", password="right")
    register_charge_point("CP-OPEN")
    register_charge_point("CP-BARE")
    assert not isinstance(attach("CP-PW", password="right"), str)  # verified by this process
    ChargePoint.objects.update(connection_channel="ch-old")
    ChargePoint.objects.filter(charge_point_id="CP-PW").update(lifecycle_state=LifecycleState.DECOMMISSIONED)
    assert attach("CP-PW", password="right") == "decommissioned"
    ChargePoint.objects.filter(charge_point_id="CP-PW").update(
        lifecycle_state=LifecycleState.COMMISSIONED, password_hash=make_password("rotated")
    )
    assert attach("CP-PW", password="right") == "wrong password"
    ChargePoint.objects.filter(charge_point_id="CP-OPEN").update(password_hash=make_password("set since"))
    assert attach("CP-OPEN") == "no password presented"
    settings.CSMS_REQUIRE_CHARGER_PASSWORD = True
    assert attach("CP-BARE") == "no password set (required)"
    assert set(ChargePoint.objects.values_list("connection_channel", flat=True)) == {"ch-old"}
    settings.CSMS_REQUIRE_CHARGER_PASSWORD, settings.CSMS_AUTO_REGISTER = False, True
    assert attach("CP-NEW") != "unknown"  # registered pending, then attached
    assert ChargePoint.objects.get(charge_point_id="CP-NEW").lifecycle_state == LifecycleState.PENDING


def test_a_charger_whose_password_was_removed_is_admitted_with_the_old_one_it_still_sends(register_charge_point):
    """The operator removed the password (``null`` through the API) of a charger this process had
    verified; the charger still sends it (a password it was configured with). No password is set,
    none required: admitted, as any password is then. It was refused until the process restarted:
    the presence write was asked for the remembered hash, which the row no longer holds."""
    register_charge_point("CP-PW", password="right")
    assert not isinstance(attach("CP-PW", password="right"), str)  # verified and remembered
    services.charge_point_update(charge_point=ChargePoint.objects.get(charge_point_id="CP-PW"), password=None)
    assert ChargePoint.objects.get(charge_point_id="CP-PW").password_hash == ""
    assert not isinstance(attach("CP-PW", password="right", channel_name="ch-2"), str)
    assert ChargePoint.objects.get(charge_point_id="CP-PW").connection_channel == "ch-2"


@pytest.mark.django_db(transaction=True)
def test_a_handshake_the_presence_write_refuses_locks_nothing(register_charge_point, charger_locked_elsewhere):
    """A passwordless handshake naming a charger that has a password (require-password off), or a
    remembered password since rotated: refused in the presence write without taking the row, so
    such handshakes never hold the lock the real charger's writes need, nor hash under it."""
    if connection.vendor != "postgresql":
        pytest.skip("the admission in the presence write is PostgreSQL's")
    register_charge_point("CP-PW", password="right")
    with transaction.atomic():
        assert attach("CP-PW") == "no password presented"
        assert not charger_locked_elsewhere("CP-PW")
    with transaction.atomic():
        refused = services.charge_point_connect(
            charge_point_id="CP-PW", ocpp_version="1.6", channel_name="ch-x", admitted_hash=make_password("old")
        )
        assert refused is False and not charger_locked_elsewhere("CP-PW")
    with transaction.atomic():
        assert not isinstance(attach("CP-PW", password="right"), str)
        assert charger_locked_elsewhere("CP-PW")  # the probe can see a lock
