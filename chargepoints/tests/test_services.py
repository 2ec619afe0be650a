from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.hashers import check_password
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chargepoints import selectors, services
from chargepoints.models import ChargePoint, Connector, Heartbeat, LifecycleState, OcppMessage, SchemaViolation
from kernel import sweeps
from webhooks.models import WebhookDelivery, WebhookSubscription
from webhooks.services import webhook_subscription_create

pytestmark = pytest.mark.django_db


def test_a_disconnect_clears_presence_and_goes_offline_in_one_statement(register_charge_point):
    """A reconnect storm disconnects every handshake its chargers gave up on (issue 15)."""
    register_charge_point("CP-1")
    services.charge_point_connect(charge_point_id="CP-1", ocpp_version="1.6", channel_name="a")

    with CaptureQueriesContext(connection) as captured:
        assert services.charge_point_disconnect(charge_point_id="CP-1", channel_name="a") is True

    writes = [q["sql"] for q in captured.captured_queries if "chargepoints_chargepoint" in q["sql"]]
    assert len(writes) == 1, writes  # the offline event's subscriber check aside
    charge_point = ChargePoint.objects.get(charge_point_id="CP-1")
    assert (charge_point.connected, charge_point.connection_channel) == (False, "")
    assert charge_point.offline_since is not None and charge_point.updated_at >= charge_point.offline_since


@pytest.mark.parametrize("path", ["plain", "orm"])
def test_a_disconnect_emits_offline_once_and_keeps_an_earlier_offline_since(
    register_charge_point, monkeypatch, settings, path
):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["charge_point.offline"])
    if path == "orm":
        monkeypatch.setattr(connection, "vendor", "other")
    register_charge_point("CP-1")
    register_charge_point("CP-2")
    services.charge_point_connect(charge_point_id="CP-1", ocpp_version="1.6", channel_name="a")
    services.charge_point_connect(charge_point_id="CP-2", ocpp_version="1.6", channel_name="b")
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ChargePoint.objects.filter(charge_point_id="CP-2").update(connected=False, offline_since=since)  # the sweep's

    assert services.charge_point_disconnect(charge_point_id="CP-1", channel_name="a") is True
    assert services.charge_point_disconnect(charge_point_id="CP-2", channel_name="b") is True
    assert services.charge_point_disconnect(charge_point_id="CP-1", channel_name="a") is False  # held by nobody now

    rows = {cp.charge_point_id: cp for cp in ChargePoint.objects.filter(charge_point_id__in=["CP-1", "CP-2"])}
    assert (rows["CP-1"].connected, rows["CP-1"].connection_channel) == (False, "")
    assert rows["CP-1"].offline_since is not None and rows["CP-1"].offline_since != since
    assert (rows["CP-2"].connected, rows["CP-2"].connection_channel, rows["CP-2"].offline_since) == (False, "", since)
    bodies = list(WebhookDelivery.objects.values_list("body", flat=True))
    assert len(bodies) == 1 and '"CP-1"' in bodies[0]


def test_registering_an_existing_id_raises(register_charge_point):
    register_charge_point("CP-1")
    with pytest.raises(services.ChargePointAlreadyExists):
        register_charge_point("CP-1")


def test_connect_returns_the_channel_it_replaces(register_charge_point):
    register_charge_point("CP-1")
    first = services.charge_point_connect(charge_point_id="CP-1", ocpp_version="1.6", channel_name="a")
    second = services.charge_point_connect(charge_point_id="CP-1", ocpp_version="2.0.1", channel_name="b")
    assert (first.replaced_channel, second.replaced_channel) == ("", "a")
    assert second.heartbeat_interval == 60
    charge_point = ChargePoint.objects.get(charge_point_id="CP-1")
    assert (charge_point.connection_channel, charge_point.ocpp_version, charge_point.connected) == ("b", "2.0.1", True)


def test_a_replaced_connection_closing_late_does_not_clear_the_new_presence(register_charge_point):
    register_charge_point("CP-1")
    services.charge_point_connect(charge_point_id="CP-1", ocpp_version="1.6", channel_name="old")
    services.charge_point_connect(charge_point_id="CP-1", ocpp_version="1.6", channel_name="new")

    assert services.charge_point_disconnect(charge_point_id="CP-1", channel_name="old") is False
    assert ChargePoint.objects.get(charge_point_id="CP-1").connected is True

    assert services.charge_point_disconnect(charge_point_id="CP-1", channel_name="new") is True
    charge_point = ChargePoint.objects.get(charge_point_id="CP-1")
    assert (charge_point.connected, charge_point.connection_channel) == (False, "")
    assert charge_point.offline_since is not None


def test_boot_records_the_charger_and_answers_with_its_interval(register_charge_point):
    register_charge_point("CP-1", heartbeat_interval=77)
    result = services.charge_point_boot(
        charge_point_id="CP-1", vendor="Alfen", model="Eve", serial_number="S1", firmware_version="4.1"
    )
    assert (result.status, result.interval) == ("Accepted", 77)
    charge_point = ChargePoint.objects.get(charge_point_id="CP-1")
    assert (charge_point.vendor, charge_point.model, charge_point.serial_number) == ("Alfen", "Eve", "S1")
    assert charge_point.last_boot_at == result.current_time


def test_a_pending_charger_is_answered_pending(register_charge_point):
    register_charge_point("CP-1", lifecycle_state=LifecycleState.PENDING)
    assert services.charge_point_boot(charge_point_id="CP-1", vendor="V", model="M").status == "Pending"


def test_heartbeat_is_stored_and_refreshes_liveness(register_charge_point):
    register_charge_point("CP-1")
    at = services.charge_point_heartbeat(charge_point_id="CP-1")
    charge_point = ChargePoint.objects.get(charge_point_id="CP-1")
    assert charge_point.last_heartbeat == at == charge_point.last_seen
    assert list(Heartbeat.objects.values_list("received_at", flat=True)) == [at]


def test_status_notification_creates_then_updates_the_connector(register_charge_point):
    register_charge_point("CP-1")
    t0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    services.connector_status_set(charge_point_id="CP-1", connector_id=1, status="Available", timestamp=t0)
    services.connector_status_set(
        charge_point_id="CP-1",
        connector_id=1,
        status="Faulted",
        error_code="GroundFailure",
        timestamp=t0 + timedelta(1),
    )
    connector = Connector.objects.get()
    assert (connector.status, connector.error_code, connector.evse_id) == ("Faulted", "GroundFailure", None)


def test_a_replayed_older_status_does_not_overwrite_a_newer_one(register_charge_point):
    register_charge_point("CP-1")
    newer = datetime(2026, 5, 1, 10, 5, tzinfo=UTC)
    services.connector_status_set(charge_point_id="CP-1", connector_id=1, status="Charging", timestamp=newer)
    services.connector_status_set(
        charge_point_id="CP-1", connector_id=1, status="Available", timestamp=newer - timedelta(minutes=5)
    )
    assert Connector.objects.get().status == "Charging"


def test_connectors_of_2_0_1_are_kept_per_evse(register_charge_point):
    register_charge_point("CP-1")
    for evse_id in (1, 2):
        services.connector_status_set(charge_point_id="CP-1", evse_id=evse_id, connector_id=1, status="Available")
    services.connector_status_set(charge_point_id="CP-1", evse_id=2, connector_id=1, status="Occupied")
    assert sorted(Connector.objects.values_list("evse_id", "connector_id", "status")) == [
        (1, 1, "Available"),
        (2, 1, "Occupied"),
    ]


def test_logged_frames_are_stored_and_frames_of_unknown_chargers_dropped(register_charge_point):
    register_charge_point("CP-1")
    now = datetime(2026, 5, 1, tzinfo=UTC)
    frames = [
        services.LoggedFrame(charge_point_id="CP-1", direction="in", frame="[2]", created_at=now),
        services.LoggedFrame(charge_point_id="GONE", direction="in", frame="[2]", created_at=now),
    ]
    assert services.ocpp_messages_record(frames=frames) == 1
    assert OcppMessage.objects.get().charge_point.charge_point_id == "CP-1"


def test_the_message_log_has_no_database_check_of_its_charger_and_a_deleted_charger_takes_its_log(
    register_charge_point,
):
    """Issue 15: PostgreSQL checked a logged frame's charger by a locking read of the charger's row per
    frame; the writer keeps only frames of chargers it found, and deleting a charger deletes its log."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, OcppMessage._meta.db_table)
    assert [name for name, constraint in constraints.items() if constraint["foreign_key"]] == []
    gone, kept = register_charge_point("CP-1"), register_charge_point("CP-2")
    now = datetime(2026, 5, 1, tzinfo=UTC)
    frames = [
        services.LoggedFrame(charge_point_id=charge_point_id, direction="in", frame="[2]", created_at=now)
        for charge_point_id in ("CP-1", "CP-2", "CP-1")
    ]
    assert services.ocpp_messages_record(frames=frames) == 3
    services.charge_point_delete(charge_point=gone)
    assert list(OcppMessage.objects.values_list("charge_point_id", flat=True)) == [kept.pk]


def test_update_sets_and_removes_the_password(register_charge_point):
    charge_point = register_charge_point("CP-1")
    services.charge_point_update(charge_point=charge_point, password="a-long-password-123")
    assert charge_point.password_hash.startswith("pbkdf2_")
    services.charge_point_update(charge_point=charge_point, heartbeat_interval=30)
    assert charge_point.password_hash
    services.charge_point_update(charge_point=charge_point, password=None)
    assert ChargePoint.objects.get().password_hash == ""


def _admits(charge_point_id: str, password: str) -> bool:
    """Whether a handshake presenting ``password`` is admitted (a candidate not made current)."""
    return selectors.charge_point_may_connect(charge_point_id=charge_point_id, password=password)


def test_a_rotation_started_twice_keeps_both_candidates_until_each_is_settled(register_charge_point):
    """Probe (h6): one candidate slot. A second password offered while the first was unconfirmed
    replaced it (a charger that took the first for after its reboot was locked out), and a refusal of
    the second put back the first even when the charger had refused that one too."""
    charge_point = register_charge_point("CP-1")
    services.charge_point_update(charge_point=charge_point, password="old-password-12345")
    first = services.charge_point_password_offered(charge_point=charge_point, password="first-password-1234")
    second = services.charge_point_password_offered(charge_point=charge_point, password="second-password-123")
    assert _admits("CP-1", "old-password-12345") and _admits("CP-1", "first-password-1234")
    refused: Any = "refused"
    services.charge_point_password_answered(charge_point=charge_point, password="", offer=first, status=refused)
    services.charge_point_password_answered(charge_point=charge_point, password="", offer=second, status=refused)
    for password in ("first-password-1234", "second-password-123"):  # both refused: neither admits
        assert not _admits("CP-1", password)
    assert _admits("CP-1", "old-password-12345")

    third = services.charge_point_password_offered(charge_point=charge_point, password="third-password-1234")
    services.charge_point_password_offered(charge_point=charge_point, password="fourth-password-123")
    taken: Any = "taken"
    services.charge_point_password_answered(charge_point=charge_point, password="", offer=third, status=taken)
    assert not _admits("CP-1", "old-password-12345")
    assert check_password("third-password-1234", ChargePoint.objects.get().password_hash)
    assert _admits("CP-1", "fourth-password-123")  # offered after the third: may still be taken
    assert services.charge_point_admit(charge_point_id="CP-1", password="fourth-password-123") == ""  # presented
    assert not _admits("CP-1", "third-password-1234")
    stored = ChargePoint.objects.get()
    assert check_password("fourth-password-123", stored.password_hash)
    assert (stored.password_hash_after_reboot, stored.password_hash_after_reboot_earlier) == ("", "")


def test_the_sweep_marks_offline_only_chargers_silent_for_twice_their_interval(register_charge_point):
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    for charge_point_id, interval, silent_for in (("STALE", 10, 21), ("FRESH", 10, 19), ("SLOW", 60, 100)):
        register_charge_point(charge_point_id, heartbeat_interval=interval)
        ChargePoint.objects.filter(charge_point_id=charge_point_id).update(
            connected=True, last_seen=now - timedelta(seconds=silent_for)
        )
    assert services.mark_offline_stale_charge_points(now=now) == ["STALE"]
    assert services.mark_offline_stale_charge_points(now=now) == []  # one transition, reported once
    stale = ChargePoint.objects.get(charge_point_id="STALE")
    assert (stale.connected, stale.offline_since) == (False, now)
    assert ChargePoint.objects.get(charge_point_id="FRESH").connected


def test_a_heartbeat_from_an_offline_charger_brings_it_back_online(register_charge_point):
    register_charge_point("CP-1")
    ChargePoint.objects.update(connected=False, offline_since=datetime(2026, 5, 1, tzinfo=UTC))
    services.charge_point_heartbeat(charge_point_id="CP-1")
    charge_point = ChargePoint.objects.get()
    assert (charge_point.connected, charge_point.offline_since) == (True, None)


def test_pruning_removes_only_rows_older_than_the_retention(register_charge_point):
    charge_point = register_charge_point("CP-1")
    old = datetime(2020, 1, 1, tzinfo=UTC)
    Heartbeat.objects.create(charge_point=charge_point, received_at=old)
    services.charge_point_heartbeat(charge_point_id="CP-1")
    OcppMessage.objects.create(charge_point=charge_point, direction="in", frame="[]", created_at=old)
    assert services.heartbeats_prune(older_than_days=7) == 1
    assert services.ocpp_messages_prune(older_than_days=30) == 1
    assert Heartbeat.objects.count() == 1


def test_pruning_the_message_log_prunes_the_frames_kept_with_schema_violations(register_charge_point):
    """A violation keeps its whole frame (an idTag, a MeterValues' readings): a charger model sending a
    wrong unit in every MeterValues added a row a minute for ever, while the message log's copy of
    the same frame was kept ``CSMS_MESSAGE_LOG_DAYS`` (README: frames contain id tags)."""
    charge_point = register_charge_point("CP-1")
    frame = '[2,"1","Authorize",{"idTag":"04A1B2C3D4E5F6A7B8C9D0E1F2"}]'
    for received_at in (datetime(2020, 1, 1, tzinfo=UTC), timezone.now()):
        SchemaViolation.objects.create(
            charge_point=charge_point,
            action="Authorize",
            path="idTag",
            validator="maxLength",
            value="04A1B2C3D4E5F6A7B8C9D0E1F2",
            frame=frame,
            received_at=received_at,
        )
    services.ocpp_messages_prune(older_than_days=30)
    assert SchemaViolation.objects.get().received_at.year != 2020


@pytest.mark.parametrize("prune", ["heartbeats", "message_log"])
def test_the_retention_prunes_delete_in_bounded_statements_oldest_first(register_charge_point, monkeypatch, prune):
    """Each prune was one DELETE of every row past the retention, in one transaction: an hour of a
    busy log (millions of frames) per run, and after the retention was shortened or the beat was away,
    weeks of it, one transaction holding back every table's vacuum meanwhile. Now at most
    ``kernel.sweeps.PRUNE_CHUNK`` rows a statement, the oldest first, each its own transaction."""
    monkeypatch.setattr(sweeps, "PRUNE_CHUNK", 2)
    charge_point = register_charge_point("CP-1")
    now = timezone.now()
    old = [now - timedelta(days=40, minutes=minutes) for minutes in range(5)]
    recent = now - timedelta(days=1)
    for at in [*old, recent]:
        Heartbeat.objects.create(charge_point=charge_point, received_at=at)
        OcppMessage.objects.create(charge_point=charge_point, direction="in", frame="[]", created_at=at)
        SchemaViolation.objects.create(
            charge_point=charge_point, action="A", path="p", validator="enum", value="v", received_at=at
        )

    with CaptureQueriesContext(connection) as captured:
        if prune == "heartbeats":
            assert services.heartbeats_prune(older_than_days=7) == 5
        else:
            assert services.ocpp_messages_prune(older_than_days=30) == 5
    tables = (
        ["chargepoints_heartbeat"]
        if prune == "heartbeats"
        else [
            "chargepoints_ocppmessage",
            "chargepoints_schemaviolation",
        ]
    )
    for table in tables:
        deletes = [q["sql"] for q in captured.captured_queries if q["sql"].startswith(f'DELETE FROM "{table}"')]
        assert len(deletes) == 3, deletes  # 2, 2, then 1: the last
        chunks = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT") and table in q["sql"]]
        assert len(chunks) == 3 and all(sql.endswith("LIMIT 2") for sql in chunks), chunks
    if prune == "heartbeats":
        assert list(Heartbeat.objects.values_list("received_at", flat=True)) == [recent]
    else:
        assert list(OcppMessage.objects.values_list("created_at", flat=True)) == [recent]
        assert list(SchemaViolation.objects.values_list("received_at", flat=True)) == [recent]


def test_the_message_log_prune_reads_the_schema_violations_it_deletes_by_an_index(register_charge_point):
    """The hourly prune's DELETE of the violations received before the cutoff read the whole table
    (its only index on the time leads with the charger): a lenient model's wrong unit in every
    MeterValues keeps a month of rows, each with its frame, and every hour's prune scanned them all.
    100,000 rows, 1 % of them past the retention: the plan PostgreSQL picks for it."""
    charge_point = register_charge_point("CP-1")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chargepoints_schemaviolation"
            " (charge_point_id, action, path, validator, value, frame, received_at)"
            " SELECT %s, 'MeterValues', 'meterValue/0/sampledValue/0/unit', 'enum', 'kwh', '[]',"
            " now() - make_interval(days => CASE WHEN g <= 1000 THEN 40 ELSE 1 END, secs => g)"
            " FROM generate_series(1, 100000) g",
            [charge_point.pk],
        )
        cursor.execute("ANALYZE chargepoints_schemaviolation")
    with CaptureQueriesContext(connection) as captured:
        services.ocpp_messages_prune(older_than_days=30)
    assert SchemaViolation.objects.count() == 99000
    deletes = [q["sql"] for q in captured.captured_queries if "chargepoints_schemaviolation" in q["sql"]]
    assert deletes
    for sql in deletes:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(line for (line,) in cursor.fetchall())
        assert "Seq Scan" not in plan, plan


def _statuses(charge_point_id: str) -> list[tuple]:
    """A connector's life in StatusNotifications: its first, a newer one, an older one (a replay,
    not written), the same again, a reboot, then an older clock after it (written); the stored
    row and the events after each."""
    t0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
    seen = []
    steps: list[tuple[str, str, datetime] | str] = [
        ("Available", "NoError", t0),
        ("Charging", "NoError", t0 + timedelta(minutes=5)),
        ("Faulted", "GroundFailure", t0 + timedelta(minutes=1)),  # older than what is stored
        ("Charging", "NoError", t0 + timedelta(minutes=5)),
        ("Faulted", "GroundFailure", t0 + timedelta(minutes=6)),
        "boot",
        ("Available", "NoError", t0 - timedelta(days=300)),  # a clock set back by the reboot
    ]
    for step in steps:
        if isinstance(step, str):  # "boot"
            services.charge_point_boot(charge_point_id=charge_point_id, vendor="V", model="M")
            continue
        status, error_code, at = step
        services.connector_status_set(
            charge_point_id=charge_point_id, connector_id=2, status=status, error_code=error_code, timestamp=at
        )
        stored = Connector.objects.get(charge_point__charge_point_id=charge_point_id, connector_id=2)
        events = WebhookDelivery.objects.filter(body__contains=f'"{charge_point_id}"').count()
        seen.append((stored.status, stored.error_code, stored.status_timestamp, events))
    return seen


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement status write is PostgreSQL's")
def test_a_connectors_status_in_one_statement_is_what_the_orm_path_writes(register_charge_point, monkeypatch, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["connector.status_changed"])
    register_charge_point("CP-PLAIN")
    register_charge_point("CP-ORM")
    plain = _statuses("CP-PLAIN")
    with monkeypatch.context() as patched:
        patched.setattr(connection, "vendor", "other")
        orm = _statuses("CP-ORM")
    assert plain == orm
    assert [status for status, *_ in plain] == ["Available", "Charging", "Charging", "Charging", "Faulted", "Available"]
    assert [events for *_, events in plain] == [1, 2, 2, 2, 3, 4]
    with pytest.raises(ChargePoint.DoesNotExist):
        services.connector_status_set(charge_point_id="CP-NONE", connector_id=2, status="Available")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
@pytest.mark.parametrize(("minutes", "stored"), [(10, "Available"), (1, "Charging")])
def test_a_first_status_waiting_for_the_chargers_lock_meets_the_connector_created_meanwhile(
    register_charge_point, behind_a_lock, minutes, stored
):
    """Its statement's snapshot, taken before the lock was granted, misses the row the lock's
    holder created: the INSERT finds it, and the status is judged against it as a known one."""
    register_charge_point("CP-RACE")
    t0 = datetime(2026, 5, 1, 10, tzinfo=UTC)

    def status(name: str, minutes: int) -> Any:
        return services.connector_status_set(
            charge_point_id="CP-RACE", connector_id=1, status=name, timestamp=t0 + timedelta(minutes=minutes)
        )

    # the old connection's first status holds the charger's lock; the new connection's waits
    _, later = behind_a_lock(lambda: status("Charging", 5), lambda: status("Available", minutes))
    assert list(Connector.objects.values_list("status", flat=True)) == [stored]
    assert later.status == stored


def test_the_sweep_costs_the_same_few_statements_however_many_distinct_intervals_the_fleet_has():
    """The sweep ran a transaction (a locking scan of every connected charger) per distinct interval
    the sweep waits for (the stored, previous or reported one): 6,000 connected chargers with 3,000
    distinct intervals (an operator spreading heartbeats by a second each) took 9,000 statements and
    5.6 s every ``CSMS_OFFLINE_CHECK_INTERVAL`` (30 s), growing as chargers x intervals. Now one
    transaction whatever the intervals, each charger still judged by its own (the offline events
    still cost what they cost, one each)."""
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    ChargePoint.objects.bulk_create(
        ChargePoint(
            charge_point_id=f"CP-{i}",
            heartbeat_interval=60 + i,
            connected=True,
            connection_channel="x",
            # one charger in 50 silent just past 2x its own interval, the others just within it
            last_seen=now - timedelta(seconds=2 * (60 + i) + (1 if i % 50 == 1 else -1)),
        )
        for i in range(400)
    )
    ChargePoint.objects.filter(charge_point_id="CP-1").update(previous_heartbeat_interval=600)  # may keep 600 s
    ChargePoint.objects.filter(charge_point_id="CP-51").update(reported_heartbeat_interval=900)  # a read found 900 s
    expected = {f"CP-{i}" for i in range(400) if i % 50 == 1} - {"CP-1", "CP-51"}
    with CaptureQueriesContext(connection) as queries:
        went_offline = services.mark_offline_stale_charge_points(now=now)
    assert len(queries.captured_queries) <= 4 + len(expected)  # 6 offline events; 400 intervals cost nothing more
    assert sorted(went_offline) == sorted(expected)  # each reported once
    assert set(ChargePoint.objects.filter(connected=False).values_list("charge_point_id", flat=True)) == expected
    assert services.mark_offline_stale_charge_points(now=now) == []


@pytest.mark.django_db(transaction=True)
def test_a_mass_offline_sweep_commits_in_chunks_not_holding_every_charger_s_row_to_its_end():
    """5,000 chargers silent at once (a site's uplink down) were marked offline in one transaction
    that held all 5,000 rows locked while it wrote their events (with a subscriber, three statements
    each: 7.5 s), so a reconnecting charger's handshake, boot or status waited behind it past the
    group commit's lock timeout. Now in chunks of ``_SWEEP_CHUNK`` (id order, as the dead-process
    release): the first chunk is committed, seen by another connection, before the last is written,
    and whether anyone subscribed is asked once per chunk, not per event."""
    WebhookSubscription.objects.create(url="http://127.0.0.1:9/hooks", events=["charge_point.offline"], secret="s")
    now = timezone.now()
    chunk = 500  # fleet._SWEEP_CHUNK
    ChargePoint.objects.bulk_create(
        ChargePoint(
            charge_point_id=f"CP-{i}",
            heartbeat_interval=60,
            connected=True,
            connection_channel="x",
            last_seen=now - timedelta(seconds=300),
        )
        for i in range(2 * chunk + 10)
    )
    offline_seen_elsewhere: list[int] = []
    deliveries_written = 0

    def offline_elsewhere() -> None:
        offline_seen_elsewhere.append(ChargePoint.objects.filter(connected=False).count())
        connections["default"].close()  # this thread's

    def watched(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal deliveries_written
        if sql.startswith('INSERT INTO "webhooks_webhookdelivery"'):
            deliveries_written += 1
            if deliveries_written == 2 * chunk + 1:  # the last chunk's first event
                reader = threading.Thread(target=offline_elsewhere)
                reader.start()
                reader.join()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watched), CaptureQueriesContext(connection) as queries:
        went_offline = services.mark_offline_stale_charge_points(now=now)
    assert len(went_offline) == 2 * chunk + 10
    assert offline_seen_elsewhere == [2 * chunk]  # the first two chunks committed
    asked = [
        q for q in queries.captured_queries if '"webhooks_webhooksubscription"' in q["sql"] and "EXISTS" in q["sql"]
    ]
    assert len(asked) == 3
