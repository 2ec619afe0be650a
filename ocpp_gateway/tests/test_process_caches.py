"""Per-process caches emptied over Redis (``kernel.cache_changes``): whether anyone subscribed to a
webhook event, the tariffs a stop is priced with, the site members, the charger profiles and the
pks the message log writes its chargers' frames with, kept by a gateway process
while it listens, forgotten when one is saved or deleted in any process."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import redis
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from ocpp.messages import Call
from ocpp.v16 import call

from billing import selectors as billing_selectors
from billing.models import BillingRecord, Tariff
from billing.services import tariff_save
from chargepoints import selectors as chargepoints_selectors
from chargepoints.models import ChargePoint, ChargerModelProfile, OcppMessage, Strictness
from chargepoints.selectors import STRICT_PROFILE, ChargerProfile
from chargepoints.services import LoggedFrame, charge_point_update, fleet, ocpp_messages_record
from charging.models import IdTag, Transaction
from conftest import eventually, ocpp_charger
from kernel import cache_changes
from ocpp_gateway.v16.router import V16Router
from sites import triggers
from sites.models import Site, SiteMember
from webhooks import services
from webhooks.models import EventType, WebhookDelivery, WebhookSubscription

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="asked plainly on PostgreSQL only"),
]

STATUS_CHANGED = EventType.CONNECTOR_STATUS_CHANGED


def _asked(event_type: str) -> tuple[bool, int]:
    """The answer and the statements it took, in this thread."""
    with CaptureQueriesContext(connection) as statements:
        answer = services.webhook_event_may_have_subscribers(event_type=event_type)
    return answer, len(statements)


_HEARD = "tests:own-notices-heard"
_heard = threading.Event()
cache_changes.forgetter_register(_HEARD, _heard.set)


async def own_notices_heard() -> None:
    """Wait until this process's listener heard every notice this process published so far: a
    set-up's saves forget the caches once more when their notices land, a Redis publish later
    (one publisher connection: its notices arrive in order)."""
    _heard.clear()
    await sync_to_async(cache_changes._publisher().publish)(cache_changes.CHANNEL, _HEARD)
    await eventually(_heard.is_set, timeout=5)


@pytest.fixture
async def listening() -> AsyncIterator[None]:
    """This process subscribed to the changes, as a gateway process is; unsubscribed after."""
    cache_changes.listener_started()
    await eventually(cache_changes.listening, timeout=5)
    yield
    assert cache_changes._listener is not None
    cache_changes._listener.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cache_changes._listener
    assert not cache_changes.listening()


async def test_a_listening_process_asks_once_and_again_after_a_change_saved_anywhere(listening, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    asked = sync_to_async(_asked)
    assert await asked(STATUS_CHANGED) == (False, 1)
    assert await asked(STATUS_CHANGED) == (False, 0)  # kept: no statement

    subscription = await sync_to_async(services.webhook_subscription_create)(
        url="http://127.0.0.1:9/hooks", events=[STATUS_CHANGED]
    )  # saved in this process: forgotten at once
    assert await asked(STATUS_CHANGED) == (True, 1)
    assert await asked(EventType.CHARGE_POINT_OFFLINE) == (False, 1)

    # Another process's change without a signal, then its publish: forgotten when it arrives.
    await WebhookSubscription.objects.filter(pk=subscription.pk).aupdate(active=False)
    assert await asked(STATUS_CHANGED) == (True, 0)
    redis.Redis.from_url(settings.REDIS_URL).publish(cache_changes.CHANNEL, services.SUBSCRIPTIONS_TOPIC)

    async def forgotten() -> bool:
        return await asked(STATUS_CHANGED) == (False, 1)

    await eventually(forgotten, timeout=2)
    await subscription.adelete()
    assert await asked(STATUS_CHANGED) == (False, 1)


async def test_a_change_whose_notice_is_lost_is_seen_once_the_answer_expires(listening, settings, monkeypatch):
    """A subscription saved elsewhere whose publish never arrives (its process lost Redis or died
    before publishing) delays events no longer than the answer is kept."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    monkeypatch.setattr(services, "SUBSCRIBERS_KEPT_SECONDS", 0.5)
    asked = sync_to_async(_asked)
    assert await asked(STATUS_CHANGED) == (False, 1)
    await sync_to_async(WebhookSubscription.objects.bulk_create)(  # no signal: no notice
        [WebhookSubscription(url="http://127.0.0.1:9/hooks", events=[STATUS_CHANGED], secret="s" * 32)]
    )
    assert await asked(STATUS_CHANGED) == (False, 0)  # kept
    await asyncio.sleep(0.6)
    assert await asked(STATUS_CHANGED) == (True, 1)


async def test_a_process_that_does_not_listen_asks_every_time():
    assert not cache_changes.listening()
    asked = sync_to_async(_asked)
    assert await asked(STATUS_CHANGED) == (False, 1)
    assert await asked(STATUS_CHANGED) == (False, 1)


async def test_a_subscription_saved_by_another_process_reaches_a_server_that_kept_nobody(daphne, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    await ChargePoint.objects.acreate(charge_point_id="CP-KEPT-HOOKS", heartbeat_interval=60)
    async with ocpp_charger(daphne, "1.6", "CP-KEPT-HOOKS") as charger:
        await asyncio.sleep(0.5)  # the server's subscription to changes is confirmed: it keeps answers
        for status in ("Available", "Unavailable"):  # nobody subscribed: kept
            await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status=status))
        await sync_to_async(services.webhook_subscription_create)(
            url="http://127.0.0.1:9/hooks", events=[STATUS_CHANGED]
        )

        async def delivered() -> bool:
            await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
            await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Unavailable"))
            return await WebhookDelivery.objects.filter(event_type=STATUS_CHANGED).aexists()

        await eventually(delivered, timeout=2)  # a Redis publish away


JAN = datetime(2026, 1, 1, tzinfo=UTC)


def _tariff_asked(charge_point: ChargePoint, transaction_pk: int | None = None) -> tuple[str | None, int]:
    """The tariff a stop of ``charge_point`` at JAN is priced with, and the statements it took."""
    with CaptureQueriesContext(connection) as statements:
        tariff = billing_selectors.tariff_for(charge_point=charge_point, at=JAN, transaction_pk=transaction_pk)
    return (tariff.name if tariff else None), len(statements)


async def test_a_listening_process_keeps_the_tariffs_and_reads_them_again_after_a_change_saved_anywhere(
    listening, settings
):
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CP-TARIFFS", heartbeat_interval=60)
    await Tariff.objects.acreate(name="default", currency="EUR", is_default=True)
    own = await Tariff.objects.acreate(name="own", currency="EUR")
    await own_notices_heard()
    asked = sync_to_async(_tariff_asked)
    assert await asked(charge_point) == ("default", 3)  # the chargers' own tariffs, every tariff, the sessions' kept
    assert await asked(charge_point) == ("default", 0)  # kept: no statement

    # A charger's tariff changed here (as the API and the admin save it): forgotten at once.
    await sync_to_async(charge_point_update)(charge_point=charge_point, tariff=own)
    assert await asked(charge_point) == ("own", 3)
    await own_notices_heard()
    await sync_to_async(tariff_save)(tariff=own, valid_from=JAN + timedelta(days=1))  # a tariff saved here
    await own_notices_heard()
    assert await asked(charge_point) == ("default", 3)
    await sync_to_async(charge_point_update)(charge_point=charge_point, heartbeat_interval=30)  # not its tariff
    assert await asked(charge_point) == ("default", 0)

    # Another process's change without a signal, then its publish: forgotten when it arrives.
    await Tariff.objects.filter(pk=own.pk).aupdate(valid_from=None)
    assert await asked(charge_point) == ("default", 0)
    redis.Redis.from_url(settings.REDIS_URL).publish(cache_changes.CHANNEL, billing_selectors.TARIFFS_TOPIC)

    async def forgotten() -> bool:
        return await asked(charge_point) == ("own", 3)

    await eventually(forgotten, timeout=2)


async def test_a_listening_process_keeps_the_tariff_an_open_session_started_under(listening):
    """A charger given another tariff mid-session: its open session is priced from what the process
    keeps with the tariff it started under, the next one with the new tariff."""
    cheap = await Tariff.objects.acreate(name="cheap", currency="EUR")
    dear = await Tariff.objects.acreate(name="dear", currency="EUR")
    charge_point = await sync_to_async(fleet.charge_point_register)(
        charge_point_id="CP-KEPT", heartbeat_interval=60, tariff=cheap
    )
    session = await Transaction.objects.acreate(
        charge_point=charge_point, ocpp_version="1.6", start_key="k", started_at=JAN, connector_id=1
    )
    asked = sync_to_async(_tariff_asked)
    assert await asked(charge_point, session.pk) == ("cheap", 3)
    await sync_to_async(charge_point_update)(charge_point=charge_point, tariff=dear)
    await own_notices_heard()
    assert await asked(charge_point, session.pk) == ("cheap", 3)
    assert await asked(charge_point) == ("dear", 0)


async def test_a_listening_process_keeps_no_tariff_for_a_session_started_under_none(listening):
    """A default created mid-session does not price a session that started without a tariff."""
    charge_point = await sync_to_async(fleet.charge_point_register)(charge_point_id="CP-NONE", heartbeat_interval=60)
    session = await Transaction.objects.acreate(
        charge_point=charge_point, ocpp_version="1.6", start_key="k", started_at=JAN, connector_id=1
    )
    asked = sync_to_async(_tariff_asked)
    assert await asked(charge_point, session.pk) == (None, 3)
    await sync_to_async(tariff_save)(name="default", currency="EUR", is_default=True)
    await own_notices_heard()
    assert await asked(charge_point, session.pk) == (None, 3)
    assert await asked(charge_point) == ("default", 0)


async def test_kept_tariffs_are_forgotten_after_a_migrate_or_a_flush(listening):
    """A flush (each transactional test's) empties the tariffs without a model signal: a kept
    tariff that is gone would fail the billing record's foreign key."""
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CP-TARIFFS", heartbeat_interval=60)
    await Tariff.objects.acreate(name="default", currency="EUR", is_default=True)
    asked = sync_to_async(_tariff_asked)
    assert await asked(charge_point) == ("default", 3)
    await sync_to_async(call_command)("flush", verbosity=0, interactive=False)
    assert await asked(charge_point) == (None, 3)


async def test_a_process_that_does_not_listen_reads_the_tariff_at_every_stop():
    assert not cache_changes.listening()
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CP-TARIFFS", heartbeat_interval=60)
    await Tariff.objects.acreate(name="default", currency="EUR", is_default=True)
    asked = sync_to_async(_tariff_asked)
    assert await asked(charge_point) == ("default", 1)
    assert await asked(charge_point) == ("default", 1)


async def test_a_tariff_changed_by_another_process_prices_the_next_stop_on_a_server_that_kept_tariffs(daphne):
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CP-KEPT-TARIFF", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="TAG-KEPT")
    default = await Tariff.objects.acreate(name="default", currency="EUR", price_per_kwh="0.40", is_default=True)
    own = await Tariff.objects.acreate(name="own", currency="EUR", price_per_kwh="0.20")
    async with ocpp_charger(daphne, "1.6", "CP-KEPT-TARIFF") as charger:
        await asyncio.sleep(0.5)  # the server's subscription to changes is confirmed: it keeps tariffs

        async def session_total() -> Decimal:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            started = await charger.call(
                call.StartTransaction(connector_id=1, id_tag="TAG-KEPT", meter_start=0, timestamp=now)
            )
            await charger.call(
                call.StopTransaction(transaction_id=started.transaction_id, meter_stop=1000, timestamp=now)
            )
            record = await BillingRecord.objects.aget(transaction_id=started.transaction_id)
            return record.total

        assert await session_total() == Decimal("0.40")
        assert await session_total() == Decimal("0.40")  # priced from what the server kept
        await sync_to_async(charge_point_update)(charge_point=charge_point, tariff=own)  # this process: a publish

        async def priced_with_own() -> bool:
            return await session_total() == Decimal("0.20")

        await eventually(priced_with_own, timeout=2)
        # Its prices are fixed once it priced a record: its validity ends, then comes back.
        await sync_to_async(tariff_save)(tariff=own, valid_to=datetime.now(UTC) - timedelta(seconds=1))

        async def priced_with_default() -> bool:
            return await session_total() == Decimal("0.40")

        await eventually(priced_with_default, timeout=2)
        await sync_to_async(tariff_save)(tariff=own, valid_to=None)
        await eventually(priced_with_own, timeout=2)
        await sync_to_async(charge_point_update)(charge_point=charge_point, tariff=None)
        await eventually(priced_with_default, timeout=2)
    assert default.pk


def _member_asked(charge_point: ChargePoint) -> tuple[bool, bool, int]:
    """Whether the charger may be on a site (by primary key, by identity), and the statements."""
    with CaptureQueriesContext(connection) as statements:
        by_pk = triggers.site_member_may_be(charge_point_pk=charge_point.pk)
        by_identity = triggers.site_member_may_be(charge_point_id=charge_point.charge_point_id)
    return by_pk, by_identity, len(statements)


async def test_a_listening_process_keeps_the_site_members_and_reads_them_again_after_a_change_saved_anywhere(
    listening, settings
):
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CP-SITES", heartbeat_interval=60)
    site = await Site.objects.acreate(name="Depot", capacity_a=32)
    await own_notices_heard()
    asked = sync_to_async(_member_asked)
    assert await asked(charge_point) == (False, False, 1)
    assert await asked(charge_point) == (False, False, 0)  # kept: no statement

    # Saved here: forgotten at once (and once more when this process's own publish lands between
    # the two asks of one call: then two statements, never a stale answer).
    member = await SiteMember.objects.acreate(site=site, charge_point=charge_point)
    by_pk, by_identity, statements = await asked(charge_point)
    assert (by_pk, by_identity) == (True, True) and statements in (1, 2)
    await member.adelete()
    by_pk, by_identity, statements = await asked(charge_point)
    assert (by_pk, by_identity) == (False, False) and statements in (1, 2)

    # Another process's change without a signal, then its publish: forgotten when it arrives.
    await sync_to_async(SiteMember.objects.bulk_create)([SiteMember(site=site, charge_point=charge_point)])
    assert await asked(charge_point) == (False, False, 0)
    redis.Redis.from_url(settings.REDIS_URL).publish(cache_changes.CHANNEL, triggers.MEMBERS_TOPIC)

    async def forgotten() -> bool:  # read again (twice when the publish lands between the two asks)
        by_pk, by_identity, statements = await asked(charge_point)
        return by_pk and by_identity and statements >= 1

    await eventually(forgotten, timeout=2)


async def test_a_process_that_does_not_listen_recomputes_every_charger_s_site():
    assert not cache_changes.listening()
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CP-SITES", heartbeat_interval=60)
    assert await sync_to_async(_member_asked)(charge_point) == (True, True, 0)


def _profile_asked(vendor: str, model: str, firmware_version: str = "") -> tuple[ChargerProfile, int]:
    """The profile of a charger model, and the statements it took, in this thread."""
    with CaptureQueriesContext(connection) as statements:
        profile = chargepoints_selectors.charger_profile_for(
            vendor=vendor, model=model, firmware_version=firmware_version
        )
    return profile, len(statements)


LENIENT = ChargerProfile(lenient=True)


async def test_a_listening_process_keeps_the_charger_profiles_and_reads_them_again_after_a_change_saved_anywhere(
    listening, settings
):
    profile = await ChargerModelProfile.objects.acreate(vendor="Acme", model="Loose", strictness=Strictness.LENIENT)
    await own_notices_heard()
    asked = sync_to_async(_profile_asked)
    assert await asked("ACME", "loose") == (LENIENT, 1)  # every profile
    assert await asked("acme", "LOOSE") == (LENIENT, 0)  # kept: no statement
    assert await asked("Acme", "Other") == (STRICT_PROFILE, 0)
    # on the event loop, without the database
    assert chargepoints_selectors.charger_profile_kept(vendor="Acme", model="Loose") == LENIENT

    profile.strictness = Strictness.STRICT  # saved here (as the admin saves it): forgotten at once
    await sync_to_async(profile.save)()
    await own_notices_heard()
    assert chargepoints_selectors.charger_profile_kept(vendor="Acme", model="Loose") is None
    assert await asked("Acme", "Loose") == (STRICT_PROFILE, 1)

    # Another process's change without a signal, then its publish: forgotten when it arrives.
    await ChargerModelProfile.objects.filter(pk=profile.pk).aupdate(strictness=Strictness.LENIENT)
    assert await asked("Acme", "Loose") == (STRICT_PROFILE, 0)
    redis.Redis.from_url(settings.REDIS_URL).publish(cache_changes.CHANNEL, chargepoints_selectors.PROFILES_TOPIC)

    async def forgotten() -> bool:
        return await asked("Acme", "Loose") == (LENIENT, 1)

    await eventually(forgotten, timeout=2)


async def test_the_kept_profiles_choose_as_the_statement_does(listening):
    """A named model before the vendor's catch-all, then the longest firmware prefix; case-insensitive."""
    await ChargerModelProfile.objects.acreate(vendor="Acme", model="", quirks=["a"])
    await ChargerModelProfile.objects.acreate(vendor="acme", model="x1", firmware_version_prefix="2.", quirks=["b"])
    await ChargerModelProfile.objects.acreate(vendor="ACME", model="X1", firmware_version_prefix="2.1", quirks=["c"])
    await ChargerModelProfile.objects.acreate(vendor="Other", model="X1", quirks=["d"])
    await own_notices_heard()
    cases = [
        ("Acme", "X1", "2.1.5"),
        ("Acme", "x1", "2.0"),
        ("Acme", "X1", "1.0"),
        ("acme", "Y", "2.1"),
        ("Nobody", "X1", ""),
    ]
    cache_changes._forget(None)
    chosen_by_statement = [await sync_to_async(_profile_asked)(*case) for case in cases]
    assert [profile.quirks for profile, _ in chosen_by_statement] == [("c",), ("b",), ("a",), ("a",), ()]
    assert [profile for profile, _ in chosen_by_statement[1:]] == [
        chargepoints_selectors.charger_profile_kept(vendor=vendor, model=model, firmware_version=firmware)
        for vendor, model, firmware in cases[1:]
    ]  # the first ask kept them all


async def test_a_process_that_does_not_listen_reads_a_boot_s_profile_every_time():
    assert not cache_changes.listening()
    await ChargerModelProfile.objects.acreate(vendor="Acme", model="Loose", strictness=Strictness.LENIENT)
    asked = sync_to_async(_profile_asked)
    assert await asked("Acme", "Loose") == (LENIENT, 1)
    assert await asked("Acme", "Loose") == (LENIENT, 1)
    assert chargepoints_selectors.charger_profile_kept(vendor="Acme", model="Loose") is None


async def test_a_boot_s_profile_is_taken_from_the_kept_profiles_on_the_event_loop(listening, monkeypatch):
    """A charger's first boot (no model known at its handshake) looks its model up without a thread
    hop or a statement once the process keeps the profiles."""
    await ChargerModelProfile.objects.acreate(vendor="Acme", model="Loose", strictness=Strictness.LENIENT)
    await own_notices_heard()
    assert (await sync_to_async(_profile_asked)("Acme", "Loose"))[0] == LENIENT  # read and kept

    def read(**_: str) -> ChargerProfile:
        raise AssertionError("read from the database")

    monkeypatch.setattr(chargepoints_selectors, "charger_profile_for", read)
    router = V16Router("CP-KEPT-PROFILE", connection=None)
    router.state_loaded(commissioned=True, profile=STRICT_PROFILE)
    boot = Call("b1", "BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "Loose"})
    assert await router._current_profile(boot) == LENIENT


async def test_the_kept_profiles_leave_names_outside_ascii_to_the_statement(listening):
    """``str.upper`` makes "ß" "SS" where PostgreSQL's UPPER keeps it: a kept row would give an ASCII
    "STRASSE" the profile of "Straße", which the statement does not."""
    await ChargerModelProfile.objects.acreate(vendor="Straße", model="", quirks=["s"])
    await own_notices_heard()
    asked = sync_to_async(_profile_asked)
    assert (await asked("STRASSE", "X"))[0] == STRICT_PROFILE  # read and kept: no match, as in SQL
    assert (await asked("STRASSE", "X"))[0] == STRICT_PROFILE
    assert chargepoints_selectors.charger_profile_kept(vendor="straße", model="X") is None  # to the database
    profile, statements = await asked("straße", "X")
    assert (profile.quirks, statements) == (("s",), 1)


def _frames_logged(*charge_point_ids: str) -> tuple[int, int]:
    """One frame of each charger recorded as the message log's flush records them: the rows
    written, and the statements that read chargers' pks."""
    at = datetime.now(UTC)
    frames = [
        LoggedFrame(charge_point_id=name, direction="in", frame="[2]", created_at=at) for name in charge_point_ids
    ]
    with CaptureQueriesContext(connection) as statements:
        written = ocpp_messages_record(frames=frames)
    return written, sum(" = ANY(" in statement["sql"] for statement in statements.captured_queries)


async def _log_of(charge_point_id: str) -> int:
    return await OcppMessage.objects.filter(charge_point__charge_point_id=charge_point_id).acount()


async def test_a_listening_process_logs_a_known_charger_s_frames_without_reading_its_pk(listening, settings):
    await ChargePoint.objects.acreate(charge_point_id="CP-LOG-A", heartbeat_interval=60)
    await ChargePoint.objects.acreate(charge_point_id="CP-LOG-B", heartbeat_interval=60)
    logged = sync_to_async(_frames_logged)
    assert await logged("CP-LOG-A") == (1, 1)
    assert await logged("CP-LOG-A") == (1, 0)  # kept: no read
    assert await logged("CP-LOG-A", "CP-LOG-B", "CP-LOG-NONE") == (2, 1)  # those not kept are read
    assert await logged("CP-LOG-A", "CP-LOG-B", "CP-LOG-NONE") == (2, 1)  # one not found is not kept
    assert await logged("CP-LOG-A", "CP-LOG-B") == (2, 0)

    # A charger deleted here (the API, the admin) and registered again: its new row has the log.
    await (await ChargePoint.objects.aget(charge_point_id="CP-LOG-A")).adelete()
    assert await logged("CP-LOG-A", "CP-LOG-B") == (1, 1)  # the deleted charger's frame is dropped
    await ChargePoint.objects.acreate(charge_point_id="CP-LOG-A", heartbeat_interval=60)
    assert await logged("CP-LOG-A", "CP-LOG-B") == (2, 1)
    assert await _log_of("CP-LOG-A") == 1

    # Renamed here: the old name's frames are no longer its.
    renamed = await ChargePoint.objects.aget(charge_point_id="CP-LOG-B")
    renamed.charge_point_id = "CP-LOG-C"
    await sync_to_async(renamed.save)(update_fields=["charge_point_id"])
    assert await logged("CP-LOG-B", "CP-LOG-C") == (1, 1)
    assert await _log_of("CP-LOG-C") == 6  # CP-LOG-B's five, and its own

    # A presence or boot save (fields named, not the id) forgets nothing.
    await sync_to_async(renamed.save)(update_fields=["last_seen"])
    assert await logged("CP-LOG-C") == (1, 0)

    # Another process's delete without a signal, then its publish: forgotten when it arrives.
    await sync_to_async(ChargePoint.objects.filter(charge_point_id="CP-LOG-C")._raw_delete)("default")
    assert await logged("CP-LOG-C") == (1, 0)  # kept meanwhile: the orphan outlives it until the prune
    redis.Redis.from_url(settings.REDIS_URL).publish(cache_changes.CHANNEL, fleet.CHARGER_PKS_TOPIC)

    async def forgotten() -> bool:
        return await logged("CP-LOG-C") == (0, 1)

    await eventually(forgotten, timeout=2)


async def test_kept_charger_pks_are_forgotten_after_a_flush_and_when_they_expire(listening, monkeypatch):
    await ChargePoint.objects.acreate(charge_point_id="CP-LOG-A", heartbeat_interval=60)
    logged = sync_to_async(_frames_logged)
    assert await logged("CP-LOG-A") == (1, 1)
    await sync_to_async(call_command)("flush", verbosity=0, interactive=False)
    assert await logged("CP-LOG-A") == (0, 1)

    monkeypatch.setattr(fleet._kept_pks, "_seconds", 1.0)
    await ChargePoint.objects.acreate(charge_point_id="CP-LOG-A", heartbeat_interval=60)
    assert await logged("CP-LOG-A") == (1, 1)
    assert await logged("CP-LOG-A") == (1, 0)
    await asyncio.sleep(1.1)
    assert await logged("CP-LOG-A") == (1, 1)


async def test_a_mapping_read_begun_before_a_forget_is_not_kept(listening):
    """A read that a forget overtook (a charger deleted while the flush read its pk) answers its
    caller but is not kept: the next ask reads again."""
    kept = cache_changes.KeptMapping("test-topic", seconds=60)
    reads: list[set[str]] = []

    def read_overtaken(keys: set[str]) -> dict[str, int]:
        reads.append(keys)
        kept.forget()
        return dict.fromkeys(keys, 1)

    def read(keys: set[str]) -> dict[str, int]:
        reads.append(keys)
        return dict.fromkeys(keys, 2)

    assert kept.found({"a"}, read_overtaken) == {"a": 1}
    assert kept.found({"a"}, read) == {"a": 2}
    assert kept.found({"a"}, read) == {"a": 2}  # kept: not read
    assert reads == [{"a"}, {"a"}]


async def test_a_process_that_does_not_listen_reads_the_chargers_pks_at_every_flush():
    assert not cache_changes.listening()
    await ChargePoint.objects.acreate(charge_point_id="CP-LOG-A", heartbeat_interval=60)
    logged = sync_to_async(_frames_logged)
    assert await logged("CP-LOG-A") == (1, 1)
    assert await logged("CP-LOG-A") == (1, 1)


def _stopped_billed_with(session: Transaction) -> str | None:
    """The session stopped an hour in after 10 kWh, and the name of the tariff its record names."""
    from charging.services.transaction_stop import StopRequest, transaction_stop

    transaction_stop(
        StopRequest(
            charge_point_id=session.charge_point.charge_point_id,
            ocpp_transaction_id=session.ocpp_id,
            stopped_at=JAN + timedelta(hours=1),
            action="StopTransaction",
            payload={},
            meter_stop_wh=Decimal(10000),
        )
    )
    record = BillingRecord.objects.select_related("tariff").get(transaction=session)
    return record.tariff.name if record.tariff else None


async def test_a_listening_process_bills_a_stop_with_the_tariff_its_session_started_under(listening):
    """Probe (round 48): the charger given another tariff mid-session, its stop the first one
    priced after the change (the process's kept tariffs read again in the stop's transaction)."""
    from charging.services.transaction_start import StartRequest, transaction_start

    cheap = await Tariff.objects.acreate(name="cheap", currency="EUR", price_per_kwh=Decimal("0.10"))
    dear = await Tariff.objects.acreate(name="dear", currency="EUR", price_per_kwh=Decimal("0.90"))
    charge_point = await sync_to_async(fleet.charge_point_register)(
        charge_point_id="CP-STOP-KEPT", heartbeat_interval=60, tariff=cheap
    )
    await IdTag.objects.acreate(id_tag="TAG-1")
    started = await sync_to_async(transaction_start)(
        StartRequest(
            charge_point_id="CP-STOP-KEPT",
            ocpp_version="1.6",
            start_key="key-kept",
            started_at=JAN,
            connector_id=1,
            id_tag="TAG-1",
            meter_start_wh=Decimal(0),
        )
    )
    await sync_to_async(charge_point_update)(charge_point=charge_point, tariff=dear)
    await own_notices_heard()
    assert await sync_to_async(_stopped_billed_with)(started.transaction) == "cheap"
