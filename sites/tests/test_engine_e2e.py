"""A single-phase 32 A site at 230 V with four real chargers: ``ocpp``-package 1.6 clients over a real
daphne that apply the profiles they receive and report MeterValues of what their cars draw."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import transaction
from ocpp.routing import on
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as V201Client
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from chargepoints.models import ChargePoint, OcppMessage
from charging.models import IdTag, Transaction
from commands.models import Command, CommandState
from conftest import DaphneServer, ahttp, eventually, ocpp_charger
from sites.models import AllocationSnapshot, SessionLimit, Site, SiteMember

pytestmark = pytest.mark.django_db(transaction=True)

NOW = "2026-05-01T10:00:00Z"


class Car(V16Client):
    """A charger with a car that draws ``demand_a`` or its limit, whichever is lower."""

    demand_a: float = 32.0
    transaction_id: int | None = None
    tx_limits: dict[int, Decimal]
    default_limit: Decimal | None = None
    answer: str = "Accepted"

    @on("SetChargingProfile")
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        if not hasattr(self, "tx_limits"):
            self.tx_limits = {}
        if self.answer == "Accepted":
            limit = cs_charging_profiles["charging_schedule"]["charging_schedule_period"][0]["limit"]
            if cs_charging_profiles["charging_profile_purpose"] == "TxProfile":
                self.tx_limits[cs_charging_profiles["transaction_id"]] = limit
            else:
                self.default_limit = limit
        return result16.SetChargingProfile(status=self.answer)

    @on("ClearChargingProfile")
    def on_clear_charging_profile(self, **criteria: Any) -> Any:
        """Forgets every profile (the tests clear with no criteria)."""
        self.tx_limits, self.default_limit = {}, None
        return result16.ClearChargingProfile(status="Accepted")

    @property
    def limit(self) -> Decimal | None:
        held = getattr(self, "tx_limits", {}).get(self.transaction_id) if self.transaction_id else None
        return held if held is not None else self.default_limit

    @property
    def draw(self) -> float:
        return min(self.demand_a, float(self.limit or 0))

    async def begin(self, id_tag: str) -> None:
        answer = await self.call(call16.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=0, timestamp=NOW))
        self.transaction_id = answer.transaction_id

    async def report(self) -> None:
        await self.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=self.transaction_id,
                meter_value=[
                    {
                        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "sampled_value": [{"value": f"{self.draw:.1f}", "measurand": "Current.Import", "unit": "A"}],
                    }
                ],
            )
        )

    async def end(self) -> None:
        await self.call(call16.StopTransaction(transaction_id=self.transaction_id, meter_stop=1000, timestamp=NOW))
        self.transaction_id = None


class RejectingCar(Car):
    """A charger that rejects every charging profile, its boot's failsafe too."""

    answer = "Rejected"


@asynccontextmanager
async def _booted(server: DaphneServer, ids: list[str], *classes: type[Car]) -> AsyncIterator[Any]:
    """The 1.6 chargers ``ids`` connected (the i-th a ``classes[i]``, a ``Car`` past them) and booted in
    order; yields them as a list, closed in the reverse order."""
    async with AsyncExitStack() as stack:
        cars = []
        for i, charge_point_id in enumerate(ids):
            client_class = classes[i] if i < len(classes) else Car
            cars.append(
                await stack.enter_async_context(ocpp_charger(server, "1.6", charge_point_id, client_class=client_class))
            )
        for car in cars:
            await car.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        yield cars


@pytest.fixture(scope="module")
def site_daphne_server(daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    """A daphne that sends every change at once (no hysteresis, no interval between profiles), with
    TxProfiles valid for 60 s."""
    return daphne_factory(
        CSMS_SITES_PROFILE_MIN_INTERVAL="0",
        CSMS_SITES_HYSTERESIS_A="0",
        CSMS_SITES_PROFILE_VALIDITY="60",
        CSMS_SITES_RECOMPUTE_INTERVAL="15",
    )


@pytest.fixture
def site_daphne(site_daphne_server: DaphneServer, servers_done: None) -> DaphneServer:
    """As conftest's ``daphne``: the server is done with the test's chargers before the flush."""
    return site_daphne_server


async def _site_with_members(server: DaphneServer, api_key: str, ids: list[str]) -> int:
    status, site = await ahttp(
        f"{server.http_url}/api/v1/sites/",
        method="POST",
        api_key=api_key,
        body={"name": "Depot", "phases": 1, "voltage_v": "230", "capacity_a": "32"},
    )
    assert status == 201, site
    for charge_point_id in ids:
        await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)
        status, body = await ahttp(
            f"{server.http_url}/api/v1/sites/{site['id']}/members",
            method="POST",
            api_key=api_key,
            body={"charge_point_id": charge_point_id, "max_current_a": "32"},
        )
        assert status == 201, body
    return site["id"]


def _tx_profile_sums_in_message_log() -> list[float]:
    """Walk the message log in order: after each TxProfile sent, the sum of the latest TxProfile
    limit of every session still open (a StopTransaction closes it)."""
    held: dict[tuple[int, int], float] = {}
    sums = []
    for message in OcppMessage.objects.order_by("created_at", "pk"):
        frame = json.loads(message.frame)
        if message.direction == "out" and frame[0] == 2 and frame[2] == "SetChargingProfile":
            profile = frame[3]["csChargingProfiles"]
            if profile["chargingProfilePurpose"] == "TxProfile":
                limit = profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
                held[(message.charge_point_id, profile["transactionId"])] = limit
                sums.append(sum(held.values()))
        elif message.direction == "in" and frame[0] == 2 and frame[2] == "StopTransaction":
            held.pop((message.charge_point_id, frame[3]["transactionId"]), None)
    return sums


async def _limits(cars: list[Car], expected: list[float | None]) -> None:
    """Wait until the cars hold the expected limits (A); the ``ocpp`` package reads them as Decimal."""
    wanted = [Decimal(str(value)) for value in expected]
    try:
        await eventually(lambda: [car.limit for car in cars] == wanted, timeout=15)
    except AssertionError:
        raise AssertionError(f"limits {[car.limit for car in cars]}, expected {expected}") from None


async def test_four_chargers_share_a_32_a_site(site_daphne, api_key):
    ids = ["SITE-A", "SITE-B", "SITE-C", "SITE-D"]
    await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(site_daphne, ids) as cars:
        a, b, c, d = cars

        await a.begin("CAR")  # one session: the whole connection; every member holds its 8 A failsafe
        await _limits(cars, [32, 8, 8, 8])
        assert [car.default_limit for car in cars] == [8, 8, 8, 8]

        for car in (b, c, d):
            await car.begin("CAR")
        await _limits(cars, [8, 8, 8, 8])  # d holds its failsafe default: 8 A already

        for car in cars:  # a, b, c draw what they are offered; d's car takes only 4 A
            car.demand_a = 4.0 if car is d else 32.0
            await car.report()
        await _limits(cars, [8.6, 8.6, 8.6, 6])  # d: its draw + 1 A margin, raised to the 6 A minimum

        for car in (b, c, d):
            await car.report()
        await a.end()
        await _limits([b, c, d], [13, 13, 6])  # the stop hands a's share on

    sums = await database_sync_to_async(_tx_profile_sums_in_message_log)()
    assert sums and max(sums) <= 32, sums


async def test_a_charger_made_a_member_in_another_process_is_steered_at_its_next_draw_change(site_daphne, api_key):
    """The server keeps the site members, so a charger on no site queues no recompute; a member
    saved in another process (here the ORM's save alone: no recompute of its own) is a Redis
    publish away, and the charger's next readings recompute its site."""
    site_id = await _site_with_members(site_daphne, api_key, [])
    charge_point = await ChargePoint.objects.acreate(charge_point_id="LATE-A", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="CAR")
    async with ocpp_charger(site_daphne, "1.6", "LATE-A", client_class=Car) as car:
        await car.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await car.begin("CAR")
        await car.report()  # on no site: nothing to steer
        await SiteMember.objects.acreate(site_id=site_id, charge_point=charge_point, max_current_a=Decimal(32))

        async def steered() -> bool:
            await car.report()
            return car.limit == 32  # the whole connection: it is the site's one session

        await eventually(steered, timeout=5)


async def test_a_charger_that_rejects_profiles_is_counted_at_its_maximum_and_flagged(site_daphne, api_key):
    ids = ["REJ-A", "REJ-B"]
    await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    await SiteMember.objects.filter(charge_point__charge_point_id="REJ-B").aupdate(max_current_a=Decimal(20))
    async with _booted(site_daphne, ids, Car, RejectingCar) as (a, b):
        await b.begin("CAR")
        flagged = SiteMember.objects.filter(charge_point__charge_point_id="REJ-B").exclude(smart_charging_flag="")
        await eventually(flagged.aexists, timeout=15)
        await a.begin("CAR")
        await _limits([a], [12])  # 32 A less b's 20 A maximum


async def test_an_offline_chargers_share_is_kept_for_it(site_daphne, api_key):
    ids = ["OFF-A", "OFF-B"]
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with ocpp_charger(site_daphne, "1.6", ids[0], client_class=Car) as a:
        async with ocpp_charger(site_daphne, "1.6", ids[1], client_class=Car) as b:
            for car in (a, b):
                await car.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
            await a.begin("CAR")
            await b.begin("CAR")
            await _limits([a, b], [16, 16])
        await eventually(lambda: ChargePoint.objects.filter(charge_point_id="OFF-B", connection_channel="").aexists())
        # b went away mid-session holding 16 A: a 4 A base load comes out of a's share, not b's
        status, _ = await ahttp(
            f"{site_daphne.http_url}/api/v1/sites/{site_id}/base-load",
            method="POST",
            api_key=api_key,
            body={"load_a": ["4"]},
        )
        assert status == 200
        await _limits([a], [12])


async def test_a_charger_made_a_member_while_away_mid_session_is_counted_at_its_maximum(site_daphne, api_key):
    """Probe: a charger on no site lost its connection mid-session (a network outage: its car goes on
    charging) and was made a member meanwhile; it holds no profile of the site's, yet the site counted
    its session at the failsafe its members hold (32 / 2 = 16 A) and gave a's new session the other
    16 A: 36 A on the 32 A connection with b's car at its 20 A maximum. Nothing limits b's car but
    its charger until it is back: a gets the 12 A left."""
    site_id = await _site_with_members(site_daphne, api_key, ["AWAY-A"])
    await ChargePoint.objects.acreate(charge_point_id="AWAY-B", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(site_daphne, ["AWAY-B"]) as (b,):
        await b.begin("CAR")
    await eventually(lambda: ChargePoint.objects.filter(charge_point_id="AWAY-B", connection_channel="").aexists())
    status, body = await ahttp(
        f"{site_daphne.http_url}/api/v1/sites/{site_id}/members",
        method="POST",
        api_key=api_key,
        body={"charge_point_id": "AWAY-B", "max_current_a": "20"},
    )
    assert status == 201, body
    async with _booted(site_daphne, ["AWAY-A"]) as (a,):
        await a.begin("CAR")
        await _limits([a], [12])
    await _site_settled(site_id)


class Station(V201Client):
    """A 2.0.1 station that records the charging profiles it accepts."""

    profiles: list[tuple[int, dict[str, Any]]]

    @on("SetChargingProfile")
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        self.profiles = [*getattr(self, "profiles", []), (evse_id, charging_profile)]
        return result201.SetChargingProfile(status="Accepted")


async def test_a_201_session_gets_a_tx_profile_with_its_transaction_id(site_daphne, api_key):
    await _site_with_members(site_daphne, api_key, ["V201-A", "V201-B"])
    async with ocpp_charger(site_daphne, "2.0.1", "V201-A", client_class=Station) as station:
        await station.call(
            call201.BootNotification(charging_station={"model": "M", "vendorName": "V"}, reason="PowerUp")
        )
        await station.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=NOW,
                trigger_reason="CablePluggedIn",
                seq_no=0,
                transaction_info={"transactionId": "TX-SITE"},
                evse={"id": 1, "connectorId": 1},
            )
        )

        def tx_profiles() -> list[tuple[int, dict[str, Any]]]:
            return [p for p in getattr(station, "profiles", []) if p[1]["charging_profile_purpose"] == "TxProfile"]

        await eventually(tx_profiles, timeout=15)
        evse_id, profile = tx_profiles()[0]
        assert evse_id == 1 and profile["transaction_id"] == "TX-SITE"
        valid_to = datetime.fromisoformat(profile["valid_to"].replace("Z", "+00:00"))
        assert 0 < (valid_to - datetime.now(UTC)).total_seconds() <= 60  # then it falls back to the failsafe
        assert profile["charging_schedule"][0]["charging_schedule_period"][0]["limit"] == 32
        failsafe = [p for p in station.profiles if p[1]["charging_profile_purpose"] == "TxDefaultProfile"]
        assert failsafe == [(0, failsafe[0][1])] and failsafe[0][1]["stack_level"] == 0
        assert failsafe[0][1]["charging_schedule"][0]["charging_schedule_period"][0]["limit"] == 16


async def test_rises_wait_for_the_profile_interval_and_decreases_do_not(daphne, api_key):
    """Default settings: one TxProfile per charger every 10 s for rises, decreases at once."""
    ids = ["RATE-A", "RATE-B"]
    await _site_with_members(daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(daphne, ids) as (a, b):
        await a.begin("CAR")
        await _limits([a], [32])
        await b.begin("CAR")
        await _limits([a, b], [16, 16])  # a's decrease follows its rise at once
        await b.end()
        await _limits([a], [32])

    tx_profiles = Command.objects.filter(
        charge_point_identity="RATE-A", request__cs_charging_profiles__charging_profile_purpose="TxProfile"
    ).order_by("created_at")
    await eventually(lambda: _count_is(tx_profiles, 3))  # the engine commits after its last answer
    sent = [
        (c.created_at, c.request["cs_charging_profiles"]["charging_schedule"]["charging_schedule_period"][0]["limit"])
        async for c in tx_profiles
    ]
    assert [limit for _, limit in sent] == [32, 16, 32]
    assert (sent[2][0] - sent[1][0]).total_seconds() >= 10


async def _count_is(queryset: Any, count: int) -> bool:
    return await queryset.acount() == count


async def test_a_tx_profile_past_half_its_validity_is_renewed_with_the_same_limit(site_daphne, api_key):
    site_id = await _site_with_members(site_daphne, api_key, ["RENEW-A", "RENEW-B"])  # failsafe 16 A
    await IdTag.objects.acreate(id_tag="CAR")
    async with ocpp_charger(site_daphne, "1.6", "RENEW-A", client_class=Car) as a:
        await a.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await a.begin("CAR")
        await _limits([a], [32])
        tx_profiles = Command.objects.filter(
            charge_point_identity="RENEW-A", request__cs_charging_profiles__charging_profile_purpose="TxProfile"
        )
        await eventually(lambda: _count_is(tx_profiles, 1))
        await SessionLimit.objects.aupdate(sent_at=datetime.now(UTC) - timedelta(seconds=31))
        status, _ = await ahttp(
            f"{site_daphne.http_url}/api/v1/sites/{site_id}/base-load",
            method="POST",
            api_key=api_key,
            body={"load_a": ["0"]},
        )
        assert status == 200
        await eventually(lambda: _count_is(tx_profiles, 2), timeout=15)
    limits = [
        c.request["cs_charging_profiles"]["charging_schedule"]["charging_schedule_period"][0]["limit"]
        async for c in tx_profiles.order_by("created_at")
    ]
    assert limits == [32, 32]


async def test_a_charger_whose_profiles_an_operator_cleared_is_sent_its_limits_again(site_daphne, api_key):
    """Round 43's probe: after an operator's ClearChargingProfile the charger held no profile (its car
    could take 32 A beside the other session's 16 A on a 32 A connection) until some reading came,
    and then only its failsafe default came back: the engine took its TxProfile for still held."""
    ids = ["WIPE-A", "WIPE-B", "WIPE-C"]  # failsafe: 32 / 3 = 10.6 A
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(site_daphne, ids[:2]) as (a, b):
        await a.begin("CAR")
        await b.begin("CAR")
        await _limits([a, b], [16, 16])
        await eventually(lambda: _count_is(SessionLimit.objects.filter(limit_a=16), 2))  # the pass committed
        url = f"{site_daphne.http_url}/api/v1/ocpp16/{ids[0]}/clear_charging_profile"
        status, body = await ahttp(url, method="POST", api_key=api_key, body={})
        assert (status, body["status"]) == (200, "Accepted")
        await _limits([a, b], [16, 16])  # no reading needed: the TxProfile is sent again
        assert a.default_limit == Decimal("10.6")
    await _site_settled(site_id)


async def test_a_session_whose_tx_profile_an_operator_s_profile_replaced_is_sent_its_limit_again(site_daphne, api_key):
    """Round 48's probe: an operator's 1.6 TxProfile of the site's stack level (1) on a session's
    connector replaces the site's (§5.16.2); the charger let its car take 32 A beside the other
    session's 16 A on a 32 A connection until some reading came: no recompute followed the answer."""
    ids = ["OVER-A", "OVER-B", "OVER-C"]  # failsafe: 32 / 3 = 10.6 A
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(site_daphne, ids[:2]) as (a, b):
        await a.begin("CAR")
        await b.begin("CAR")
        await _limits([a, b], [16, 16])
        await eventually(lambda: _count_is(SessionLimit.objects.filter(limit_a=16), 2))  # the pass committed
        profile = {
            "charging_profile_id": 7,
            "stack_level": 1,
            "charging_profile_purpose": "TxProfile",
            "charging_profile_kind": "Relative",
            "transaction_id": a.transaction_id,
            "charging_schedule": {
                "charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": 0, "limit": 32}],
            },
        }
        url = f"{site_daphne.http_url}/api/v1/ocpp16/{ids[0]}/set_charging_profile"
        status, body = await ahttp(
            url, method="POST", api_key=api_key, body={"connector_id": 1, "cs_charging_profiles": profile}
        )
        assert (status, body["status"]) == (200, "Accepted")
        await _limits([a, b], [16, 16])  # no reading needed: the site's TxProfile is sent again
    await _site_settled(site_id)


async def test_the_allocation_history_lists_a_session_charging_under_its_failsafe_default(site_daphne, api_key):
    """Round 43's probe: a session whose share equals the failsafe default is sent no TxProfile, and
    the snapshot (the history, the site.allocation_changed webhook) left it out: b's start recorded
    {a: 16} with limits_sum_a 16 on a 32 A site whose two sessions held 16 A each."""
    ids = ["HIST-A", "HIST-B"]  # failsafe: 32 / 2 = 16 A
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(site_daphne, ids) as (a, b):
        await a.begin("CAR")
        await _limits([a], [32])
        await b.begin("CAR")
        await _limits([a, b], [16, 16])

        async def recorded() -> dict[str, Any]:
            last = await AllocationSnapshot.objects.order_by("-at", "-pk").afirst()
            return {"limits": last.limits, "sum": last.limits_sum_a} if last else {}

        expected = {"limits": {str(a.transaction_id): "16.0", str(b.transaction_id): "16.0"}, "sum": Decimal(32)}
        await eventually(lambda: _equals(recorded, expected), timeout=10)
    await _site_settled(site_id)


async def _site_settled(site_id: int) -> None:
    """Wait out a recompute of the site still running (it holds the site's row), before the flush."""

    def locked() -> None:
        with transaction.atomic():
            Site.objects.select_for_update().filter(pk=site_id).first()

    await eventually(_none_connected, timeout=10)
    await database_sync_to_async(locked)()


async def _equals(read: Callable[[], Any], expected: Any) -> bool:
    return await read() == expected


class SilentCar(Car):
    """Answers every CALL but SetChargingProfile: firmware that never answers an action it does not
    handle. Its socket stays open, so the CSMS sees it connected."""

    async def route_message(self, raw_msg: str) -> None:
        frame = json.loads(raw_msg)
        if frame[0] == 2 and frame[2] == "SetChargingProfile" and getattr(self, "silent", False):
            return
        await super().route_message(raw_msg)


class MutedCar(SilentCar):
    """A ``SilentCar`` silent from its boot on: it never takes even the site's failsafe."""

    silent = True


@pytest.fixture(scope="module")
def quick_timeout_daphne_server(daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    return daphne_factory(
        CSMS_SITES_PROFILE_MIN_INTERVAL="0",
        CSMS_SITES_HYSTERESIS_A="0",
        CSMS_SITES_PROFILE_VALIDITY="60",
        CSMS_SITES_RECOMPUTE_INTERVAL="15",
        CSMS_OCPP_CALL_TIMEOUT="2",
    )


async def test_a_charger_silent_on_profiles_is_held_at_its_limit_and_the_others_are_lowered(
    quick_timeout_daphne_server, servers_done, api_key
):
    """Round 40's probe: the silent charger's decrease was asked three times a recompute, for ever, and
    no other charger was lowered under a new base load (16 + 16 + 20 A on a 32 A connection)."""
    server = quick_timeout_daphne_server
    ids = ["MUTE-A", "MUTE-B"]
    site_id = await _site_with_members(server, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(server, ids, SilentCar) as (a, b):
        await a.begin("CAR")
        await b.begin("CAR")
        await _limits([a, b], [16, 16])
        a.silent = True
        url = f"{server.http_url}/api/v1/sites/{site_id}/base-load"
        status, _ = await ahttp(url, method="POST", api_key=api_key, body={"load_a": ["10"]})
        assert status == 200
        await _limits([a, b], [16, 6])  # 32 - 10 - a's 16 A held: 6 A, the minimum
        for car in (a, b):
            await car.end()
    await eventually(_none_connected, timeout=10)  # the server is done with them before the flush


async def test_a_charger_silent_on_profiles_does_not_hold_back_the_sessions_decreases(
    quick_timeout_daphne_server, servers_done, api_key
):
    """Round 43's probe: a member that never answers SetChargingProfile never takes its failsafe, a
    decrease from no limit at all that went first at every recompute: a session's start left the
    others at their old limits for the whole call timeout (16 + 16 + 10.6 A on a 32 A site)."""
    server = quick_timeout_daphne_server
    ids = ["HUSH-A", "HUSH-B", "HUSH-S"]  # failsafe: 32 / 3 = 10.6 A
    site_id = await _site_with_members(server, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(server, ids, Car, Car, MutedCar) as (a, b, _silent):
        await a.begin("CAR")
        await _limits([a], [32])
        await b.begin("CAR")
        await _limits([a, b], [16, 16])
    await _site_settled(site_id)
    in_flight = Command.objects.filter(state=CommandState.PENDING)
    await eventually(lambda: _count_is(in_flight, 0), timeout=10)  # the server is done before the flush
    await _site_settled(site_id)

    def first_sent_after_b_started() -> str:
        messages = list(OcppMessage.objects.select_related("charge_point").order_by("created_at", "pk"))
        started = next(
            i
            for i, m in enumerate(messages)
            if m.charge_point.charge_point_id == ids[1] and "StartTransaction" in m.frame
        )
        return next(
            m.charge_point.charge_point_id
            for m in messages[started:]
            if m.direction == "out" and '"SetChargingProfile"' in m.frame
        )

    assert await database_sync_to_async(first_sent_after_b_started)() == ids[0]  # a lowered first


async def test_chargers_silent_on_profiles_are_awaited_together_not_one_after_the_other(
    quick_timeout_daphne_server, servers_done, api_key
):
    """Round 43's probe: a recompute sent its profiles one at a time, each awaited up to the call
    timeout: two members silent on profiles held it (and the worker running it) twice the timeout a
    step, and runs every minute could take every tasks worker, the offline sweep's too. Each step's
    profiles now go out at once: both silent chargers are asked before either's call times out."""
    server = quick_timeout_daphne_server
    ids = ["QUIET-A", "QUIET-S1", "QUIET-S2"]
    site_id = await _site_with_members(server, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(server, ids, Car, MutedCar, MutedCar) as (a, *_silent):
        await a.begin("CAR")
        silent_asked = Command.objects.filter(charge_point_identity__in=ids[1:], command="set_charging_profile")
        await eventually(lambda: _count_is(silent_asked.exclude(state=CommandState.PENDING), 2), timeout=15)
        await a.end()
    await _site_settled(site_id)
    in_flight = Command.objects.filter(state=CommandState.PENDING)
    await eventually(lambda: _count_is(in_flight, 0), timeout=10)  # the server is done before the flush
    await _site_settled(site_id)

    def first_asked() -> list[Command]:
        return [silent_asked.filter(charge_point_identity=i).order_by("created_at").first() for i in ids[1:]]

    firsts = await database_sync_to_async(first_asked)()
    assert all(c is not None and c.state == CommandState.TIMEOUT for c in firsts), firsts
    assert max(c.created_at for c in firsts) < min(c.completed_at for c in firsts)  # both asked, then awaited


async def _none_connected() -> bool:
    return not await ChargePoint.objects.exclude(connection_channel="").aexists()


async def test_a_charger_taken_off_its_site_is_asked_to_forget_the_site_s_failsafe(site_daphne, api_key):
    """Round 40's probe: a member removed kept the site's failsafe TxDefaultProfile (0 A when the
    share was under the minimum), so its sessions off the site were held at it for good."""
    ids = ["LEAVE-A", "LEAVE-B"]
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with ocpp_charger(site_daphne, "1.6", ids[0], client_class=Car) as a:
        await a.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await a.begin("CAR")  # the site recomputes: the session's TxProfile, the charger's failsafe
        await eventually(lambda: a.default_limit is not None, timeout=15)
        url = f"{site_daphne.http_url}/api/v1/sites/{site_id}/members/{ids[0]}"
        status, _ = await ahttp(url, method="DELETE", api_key=api_key)
        assert status == 204
        cleared = Command.objects.filter(
            charge_point_identity=ids[0], action="ClearChargingProfile", request={"id": 1_700_000}
        )
        await eventually(cleared.aexists, timeout=10)


async def test_a_two_connector_chargers_maximum_bounds_its_sessions_together(site_daphne, api_key):
    """``max_current_a`` is the charger's: its two sessions share 32 A on a 64 A site (each was
    offered the charger's whole maximum, 64 A through a 32 A supply)."""
    site_id = await _site_with_members(site_daphne, api_key, ["DUAL-A"])
    await Site.objects.filter(pk=site_id).aupdate(capacity_a=Decimal(64))
    await IdTag.objects.acreate(id_tag="CAR")
    async with ocpp_charger(site_daphne, "1.6", "DUAL-A", client_class=Car) as car:
        await car.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        started = []
        for connector_id in (1, 2):
            preparing = call16.StatusNotification(connector_id=connector_id, error_code="NoError", status="Preparing")
            await car.call(preparing)
            answer = await car.call(
                call16.StartTransaction(connector_id=connector_id, id_tag="CAR", meter_start=0, timestamp=NOW)
            )
            started.append(answer.transaction_id)

        def held() -> list[Decimal | None]:
            return [getattr(car, "tx_limits", {}).get(transaction_id) for transaction_id in started]

        try:
            await eventually(lambda: held() == [Decimal(16), Decimal(16)], timeout=15)
        except AssertionError:
            raise AssertionError(f"limits {held()}, expected [16, 16]") from None


async def test_a_pending_member_is_not_sent_the_site_s_failsafe(site_daphne, api_key):
    """A charger waiting for commissioning (its Boot answered Pending) may be sent only what
    registration allows (1.6 §4.2, 2.0.1 B02.FR.01: reads, configuration, triggers): the site's
    failsafe TxDefaultProfile went to it at every recompute (a 2.0.1 station answers SecurityError,
    and the member was flagged for good). The commissioned member gets its failsafe; the pending one
    nothing until it is commissioned."""
    ids = ["SITE-OK", "SITE-WAIT"]
    await _site_with_members(site_daphne, api_key, ids)
    await ChargePoint.objects.filter(charge_point_id=ids[1]).aupdate(lifecycle_state="pending")
    await IdTag.objects.acreate(id_tag="CAR")
    async with (
        ocpp_charger(site_daphne, "1.6", ids[0], client_class=Car) as a,
        ocpp_charger(site_daphne, "1.6", ids[1], client_class=Car) as b,
    ):
        await a.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        booted = await b.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        assert booted.status == "Pending"
        await a.begin("CAR")  # the site recomputes: the session's TxProfile, the members' failsafe
        await eventually(lambda: a.default_limit is not None, timeout=15)
        await eventually(AllocationSnapshot.objects.aexists, timeout=10)  # the pass is over
    assert b.default_limit is None
    assert not await Command.objects.filter(charge_point_identity=ids[1], action="SetChargingProfile").aexists()
    assert (
        not await SiteMember.objects.filter(charge_point__charge_point_id=ids[1])
        .exclude(smart_charging_flag="")
        .aexists()
    )


async def test_a_pending_charger_taken_off_its_site_is_sent_no_clear(site_daphne, api_key):
    """A member waiting for commissioning (its Boot answered Pending) was never sent the site's
    failsafe, yet taking it off the site sent it a ClearChargingProfile, which registration does not
    allow either (1.6 §4.2, 2.0.1 B02: reads, configuration, triggers; a 2.0.1 station answers
    SecurityError): nothing is sent to it; a profile it may hold from before stays listed, as an
    absent charger's does."""
    ids = ["LEAVE-WAIT", "LEAVE-OK"]
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await ChargePoint.objects.filter(charge_point_id=ids[0]).aupdate(lifecycle_state="pending")
    async with (
        ocpp_charger(site_daphne, "1.6", ids[0], client_class=Car) as waiting,
        ocpp_charger(site_daphne, "1.6", ids[1], client_class=Car) as commissioned,
    ):
        booted = await waiting.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        assert booted.status == "Pending"
        await commissioned.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        for charge_point_id in ids:  # each member's clear, if any, is recorded before its 204
            url = f"{site_daphne.http_url}/api/v1/sites/{site_id}/members/{charge_point_id}"
            status, _ = await ahttp(url, method="DELETE", api_key=api_key)
            assert status == 204
    clears = Command.objects.filter(action="ClearChargingProfile", request={"id": 1_700_000})
    assert [c async for c in clears.values_list("charge_point_identity", flat=True)] == [ids[1]]


class StackedCar(Car):
    """A car whose charger keeps its TxProfiles by stack level and applies the highest (OCPP 1.6
    §3.13.2), and clears one by id."""

    stacked: dict[int, dict[int, tuple[int, Decimal]]]  # transaction id -> stack level -> (profile id, limit)

    @on("SetChargingProfile")
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        profile = cs_charging_profiles
        limit = profile["charging_schedule"]["charging_schedule_period"][0]["limit"]
        if not hasattr(self, "stacked"):
            self.stacked = {}
        if profile["charging_profile_purpose"] != "TxProfile":  # kept under transaction id 0
            self.stacked.setdefault(0, {})[profile["stack_level"]] = (profile["charging_profile_id"], limit)
            defaults = self.stacked[0]
            self.default_limit = defaults[max(defaults)][1]
            return result16.SetChargingProfile(status="Accepted")
        levels = self.stacked.setdefault(profile["transaction_id"], {})
        levels[profile["stack_level"]] = (profile["charging_profile_id"], limit)
        self.tx_limits = {tx: levels[max(levels)][1] for tx, levels in self.stacked.items() if levels}
        return result16.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    def on_clear_charging_profile(self, **criteria: Any) -> Any:
        for levels in getattr(self, "stacked", {}).values():
            for level, (profile_id, _) in list(levels.items()):
                if profile_id == criteria.get("id"):
                    del levels[level]
        self.tx_limits = {tx: levels[max(levels)][1] for tx, levels in self.stacked.items() if levels}
        return result16.ClearChargingProfile(status="Accepted")


async def test_an_operator_s_tx_profile_above_the_site_s_stack_level_is_counted_by_the_site(site_daphne, api_key):
    """Probe: an operator's 1.6 TxProfile at stack level 2 (24 A) on a session of a 32 A site prevails
    over the site's (stack level 1, 16 A; OCPP 1.6 §3.13.2): the site went on allocating as if its 16 A
    held, the other session kept 16 A, and the cars drew 40 A on the 32 A connection. The session now
    counts at the operator's limit (the other is lowered to 8 A), and is steered again once it is cleared."""
    ids = ["STACK-A", "STACK-B", "STACK-C"]  # failsafe: 32 / 3 = 10.6 A
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(site_daphne, ids[:2], StackedCar, StackedCar) as (a, b):
        await a.begin("CAR")
        await b.begin("CAR")
        await _limits([a, b], [16, 16])
        await eventually(lambda: _count_is(SessionLimit.objects.filter(limit_a=16), 2))  # the pass committed
        profile = {
            "charging_profile_id": 7,
            "stack_level": 2,
            "charging_profile_purpose": "TxProfile",
            "charging_profile_kind": "Relative",
            "transaction_id": a.transaction_id,
            "charging_schedule": {
                "charging_rate_unit": "W",
                "charging_schedule_period": [{"start_period": 0, "limit": 5520, "number_phases": 1}],
            },
        }
        url = f"{site_daphne.http_url}/api/v1/ocpp16/{ids[0]}"
        status, body = await ahttp(
            f"{url}/set_charging_profile",
            method="POST",
            api_key=api_key,
            body={"connector_id": 1, "cs_charging_profiles": profile},
        )
        assert (status, body["status"]) == (200, "Accepted")
        await _limits([a, b], [5520, 8])  # 5520 W at 230 V on one phase: 24 A; no reading needed

        async def recorded() -> dict[str, Any]:
            last = await AllocationSnapshot.objects.order_by("-at", "-pk").afirst()
            return last.limits if last else {}

        expected = {str(a.transaction_id): "24.0", str(b.transaction_id): "8.0"}
        await eventually(lambda: _equals(recorded, expected), timeout=10)
        status, body = await ahttp(f"{url}/clear_charging_profile", method="POST", api_key=api_key, body={"id": 7})
        assert (status, body["status"]) == (200, "Accepted")
        await _limits([a, b], [16, 16])
    await _site_settled(site_id)


class StoppingCar(Car):
    """A car whose charger has ended its transaction locally (``stopped``), its StopTransaction not yet
    sent: it rejects a TxProfile of that transaction (no transaction on the connector, 1.6 §3.13.1)."""

    stopped: bool = False

    @on("SetChargingProfile")
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        if self.stopped and cs_charging_profiles["charging_profile_purpose"] == "TxProfile":
            return result16.SetChargingProfile(status="Rejected")
        return super().on_set_charging_profile(connector_id, cs_charging_profiles)


async def test_a_tx_profile_rejected_for_a_transaction_the_charger_just_ended_does_not_flag_it(site_daphne, api_key):
    """Probe: a's car left; its charger ended the transaction, and before its StopTransaction came the
    site lowered a's limit for b's new session. The charger rejected the TxProfile (no transaction
    there) and was flagged for good: counted at its 32 A maximum in every session it ran after, until
    an operator cleared the flag. A first rejection of a session's TxProfile now counts that session at
    its maximum for the run (b waits at 0 A) and flags nothing; b gets the connection once a's stop is in."""
    ids = ["GONE-A", "GONE-B"]  # failsafe: 16 A
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(site_daphne, ids, StoppingCar, StoppingCar) as (a, b):
        await a.begin("CAR")
        await _limits([a], [32])
        a.stopped = True
        await b.begin("CAR")
        rejected = Command.objects.filter(charge_point_identity=ids[0], state=CommandState.REJECTED)
        await eventually(rejected.aexists, timeout=15)
        await a.end()
        await _limits([b], [32])
        await eventually(
            lambda: _count_is(
                SessionLimit.objects.filter(limit_a=32, transaction__charge_point__charge_point_id=ids[1]), 1
            )
        )
    flagged = SiteMember.objects.filter(charge_point__charge_point_id=ids[0]).exclude(smart_charging_flag="")
    assert not await flagged.aexists()
    await _site_settled(site_id)


async def test_a_charger_rejecting_a_running_session_s_tx_profile_twice_is_flagged(site_daphne, api_key):
    """The first rejection is forgiven (its transaction may have just ended); a second one for a
    session still running flags the charger, counted at its maximum from then on."""
    ids = ["TWICE-A", "TWICE-B"]
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with ocpp_charger(site_daphne, "1.6", ids[0], client_class=StoppingCar) as a:
        await a.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        a.stopped = True  # rejects every TxProfile
        await a.begin("CAR")
        rejected = Command.objects.filter(charge_point_identity=ids[0], state=CommandState.REJECTED)
        await eventually(rejected.aexists, timeout=15)
        flagged = SiteMember.objects.filter(charge_point__charge_point_id=ids[0]).exclude(smart_charging_flag="")
        assert not await flagged.aexists()

        async def flagged_after_a_reading() -> bool:
            await a.report()  # a recompute: its TxProfile is sent again
            return await flagged.aexists()

        await eventually(flagged_after_a_reading, timeout=15)
    await _site_settled(site_id)


async def test_a_recompute_out_of_passes_is_retried_so_the_failsafe_decreases_go_out(site_daphne, api_key):
    """Probe: a charger's three sessions had just ended on it (their stops on their way) when the site
    was lowered; each pass's first decrease of them was rejected (forgiven: one a pass), the third pass
    ended the run and nothing was scheduled: the other member kept the failsafe it held above the
    site's new one until the next trigger or the beat's sweep. A run out of passes is tried again."""
    ids = ["TRIO-X", "TRIO-Y"]  # four outlets on 32 A: a failsafe of 8 A each
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(site_daphne, ids, StoppingCar, Car) as (x, y):
        for connector_id in (1, 2, 3):
            await x.call(call16.StatusNotification(connector_id=connector_id, error_code="NoError", status="Preparing"))
        for connector_id in (1, 2, 3):
            await x.call(call16.StartTransaction(connector_id=connector_id, id_tag="CAR", meter_start=0, timestamp=NOW))
        await eventually(lambda: len(getattr(x, "tx_limits", {})) == 3 and y.default_limit == 8, timeout=15)
        x.stopped = True  # its three transactions ended on the charger
        url = f"{site_daphne.http_url}/api/v1/sites/{site_id}/"
        status, _ = await ahttp(url, method="PATCH", api_key=api_key, body={"capacity_a": "24"})
        assert status == 200
        await _limits([y], [6])  # 24 / 4
    await _site_settled(site_id)

    def first_three_rejected() -> set[int]:
        rejected = Command.objects.filter(charge_point_identity=ids[0], state=CommandState.REJECTED)
        return {c.request["cs_charging_profiles"]["transaction_id"] for c in rejected.order_by("created_at")[:3]}

    assert len(await database_sync_to_async(first_three_rejected)()) == 3  # one a pass: the run out of passes


async def test_an_operator_s_tx_default_profile_above_the_failsafe_is_counted_by_the_site(site_daphne, api_key):
    """Probe: an operator's TxDefaultProfile at stack level 1 (32 A) on a member prevails over the site's
    failsafe (stack level 0, 16 A). The site took b's session for one drawing its 16 A failsafe: its
    share was 16 A too, so no TxProfile was sent, and b's car drew 32 A beside a's 16 A on the 32 A
    connection. b's session now counts at what the operator's default lets it draw, and is sent 16 A."""
    ids = ["DEFAULT-A", "DEFAULT-B"]  # failsafe: 32 / 2 = 16 A
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(site_daphne, ids, StackedCar, StackedCar) as (a, b):
        profile = {
            "charging_profile_id": 9,
            "stack_level": 1,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Relative",
            "charging_schedule": {
                "charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": 0, "limit": 32}],
            },
        }
        url = f"{site_daphne.http_url}/api/v1/ocpp16/{ids[1]}/set_charging_profile"
        status, body = await ahttp(
            url, method="POST", api_key=api_key, body={"connector_id": 0, "cs_charging_profiles": profile}
        )
        assert (status, body["status"]) == (200, "Accepted")
        await a.begin("CAR")
        await _limits([a], [32])
        await b.begin("CAR")
        await _limits([a, b], [16, 16])
    await _site_settled(site_id)


class K06Station(V201Client):
    """A 2.0.1 station that accepts a remote start (its TxProfile installed) and rejects a TxProfile
    beside one of another id at the same stack level on its EVSE (K01.FR.06); records what it holds."""

    held: dict[int, tuple[int, Decimal]]  # stack level -> (profile id, limit) of the EVSE's TxProfiles

    @on("RequestStartTransaction")
    def on_request_start_transaction(self, charging_profile: dict[str, Any] | None = None, **_: Any) -> Any:
        if charging_profile:
            limit = charging_profile["charging_schedule"][0]["charging_schedule_period"][0]["limit"]
            self.held = {charging_profile["stack_level"]: (charging_profile["id"], limit)}
        return result201.RequestStartTransaction(status="Accepted")

    @on("SetChargingProfile")
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        if charging_profile["charging_profile_purpose"] != "TxProfile":
            return result201.SetChargingProfile(status="Accepted")
        held = getattr(self, "held", {}).get(charging_profile["stack_level"])
        if held is not None and held[0] != charging_profile["id"]:
            return result201.SetChargingProfile(status="Rejected")
        limit = charging_profile["charging_schedule"][0]["charging_schedule_period"][0]["limit"]
        self.held = {**getattr(self, "held", {}), charging_profile["stack_level"]: (charging_profile["id"], limit)}
        return result201.SetChargingProfile(status="Accepted")


async def test_a_2_0_1_remote_start_s_tx_profile_at_the_site_s_stack_level_is_counted_not_fought(site_daphne, api_key):
    """Probe: a 2.0.1 remote start carrying a TxProfile at stack level 1 (10 A) on a site member: the
    station holds it for the session and rejects the site's TxProfile beside it (same purpose and stack
    level, K01.FR.06). The site sent it at every recompute and flagged the charger for good (counted at
    its 32 A maximum ever after). The session now counts at the operator's 10 A and is sent nothing."""
    ids = ["K06-A", "K06-B"]
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with ocpp_charger(site_daphne, "2.0.1", ids[0], client_class=K06Station) as station:
        await station.call(
            call201.BootNotification(charging_station={"model": "M", "vendorName": "V"}, reason="PowerUp")
        )
        start = {
            "id_token": {"id_token": "CAR", "type": "ISO14443"},
            "remote_start_id": 3,
            "evse_id": 1,
            "charging_profile": {
                "id": 5,
                "stack_level": 1,
                "charging_profile_purpose": "TxProfile",
                "charging_profile_kind": "Relative",
                "charging_schedule": [
                    {"id": 1, "charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 0, "limit": 10}]}
                ],
            },
        }
        url = f"{site_daphne.http_url}/api/v1/ocpp201/{ids[0]}/request_start_transaction"
        status, body = await ahttp(url, method="POST", api_key=api_key, body=start)
        assert (status, body["status"]) == (200, "Accepted")
        for seq_no in range(3):  # the start, then readings: a recompute each
            await station.call(
                call201.TransactionEvent(
                    event_type="Started" if seq_no == 0 else "Updated",
                    timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    trigger_reason="RemoteStart" if seq_no == 0 else "MeterValuePeriodic",
                    seq_no=seq_no,
                    transaction_info={"transactionId": "TX-K06", "remoteStartId": 3},
                    evse={"id": 1, "connectorId": 1},
                    id_token={"idToken": "CAR", "type": "ISO14443"} if seq_no == 0 else None,
                    meter_value=[
                        {
                            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                            "sampledValue": [{"value": 10, "measurand": "Current.Import"}],
                        }
                    ],
                )
            )

        async def recorded() -> dict[str, Any]:
            last = await AllocationSnapshot.objects.order_by("-at", "-pk").afirst()
            return last.limits if last else {}

        session = await database_sync_to_async(lambda: Transaction.objects.get(ocpp_transaction_id="TX-K06"))()
        await eventually(lambda: _equals(recorded, {str(session.pk): "10.0"}), timeout=15)
    flagged = SiteMember.objects.filter(charge_point__charge_point_id=ids[0]).exclude(smart_charging_flag="")
    assert not await flagged.aexists()
    rejected = Command.objects.filter(charge_point_identity=ids[0], state=CommandState.REJECTED)
    assert not await rejected.aexists()
    await _site_settled(site_id)


class PowerOnlyCar(Car):
    """A DC charger that takes charging profiles in W only: it reports
    ``ChargingScheduleAllowedChargingRateUnit`` Power (OCPP 1.6 §9.4) and rejects a profile in A."""

    @on("GetConfiguration")
    def on_get_configuration(self, **_: Any) -> Any:
        key = {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Power"}
        return result16.GetConfiguration(configuration_key=[key])

    @on("SetChargingProfile")
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        if cs_charging_profiles["charging_schedule"]["charging_rate_unit"] != "W":
            return result16.SetChargingProfile(status="Rejected")
        return Car.on_set_charging_profile(self, connector_id, cs_charging_profiles)


def _rate_units_known(charge_point_id: str, units: str) -> Callable[[], Any]:
    return ChargePoint.objects.filter(charge_point_id=charge_point_id, charging_rate_units=units).aexists


async def test_a_charger_taking_profiles_in_w_only_is_sent_them_in_w(site_daphne, api_key):
    """Fails before the change: the site sent its failsafe and TxProfiles in A alone; a DC charger
    reporting ``ChargingScheduleAllowedChargingRateUnit`` Power rejected them, was flagged and counted
    at its 32 A maximum for good (the other member left 0 A). It is now sent them in W (its A limit x
    the site's 230 V x its one phase), and counted at what it holds."""
    ids = ["DC-W", "AC-A"]
    site_id = await _site_with_members(site_daphne, api_key, ids)
    await IdTag.objects.acreate(id_tag="CAR")
    async with _booted(site_daphne, ids, PowerOnlyCar) as (dc, ac):
        url = f"{site_daphne.http_url}/api/v1/ocpp16/{ids[0]}/get_configuration"
        status, body = await ahttp(url, method="POST", api_key=api_key, body={})
        assert status == 200, body
        await eventually(_rate_units_known(ids[0], "W"))  # recorded once the answer's write commits

        await dc.begin("CAR")  # the site's one session: 32 A; each member's failsafe 16 A
        await _limits([dc, ac], [32 * 230, 16])
        assert dc.default_limit == 16 * 230
        await ac.begin("CAR")
        await _limits([dc, ac], [16 * 230, 16])
        for car in (dc, ac):
            await car.report()
        await ac.end()
        await _limits([dc], [32 * 230])
        flagged = SiteMember.objects.exclude(smart_charging_flag="")
        assert not await flagged.aexists()
        failsafes = Command.objects.filter(
            charge_point__charge_point_id=ids[0],
            request__cs_charging_profiles__charging_profile_purpose="TxDefaultProfile",
        )
        assert await failsafes.acount() == 1  # the one it holds, read back in A, is not sent again

        async def recorded() -> dict[str, Any]:
            last = await AllocationSnapshot.objects.order_by("-at", "-pk").afirst()
            return last.limits if last else {}

        session = await Transaction.objects.aget(charge_point__charge_point_id=ids[0])
        await eventually(lambda: _equals(recorded, {str(session.pk): "32.0"}), timeout=10)
    await _site_settled(site_id)


async def test_a_charger_flagged_before_its_units_were_read_is_steered_again_once_it_is_known_to_take_w(
    site_daphne, api_key
):
    """Review: a W-only charger whose session began before its configuration was read (its boot's
    read queued, a car plugged in at boot) was sent its TxProfile in A, rejected it twice and was
    flagged for good, counted at its maximum, though its units read as W a moment later. Once they
    are, its flag is cleared and its site recomputed: it is sent its limits in W."""
    site_id = await _site_with_members(site_daphne, api_key, ["DC-LATE"])
    await IdTag.objects.acreate(id_tag="CAR")
    member = SiteMember.objects.filter(charge_point__charge_point_id="DC-LATE")
    async with ocpp_charger(site_daphne, "1.6", "DC-LATE", client_class=PowerOnlyCar) as dc:
        await dc.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await dc.begin("CAR")  # sent in A before its units are known: refused
        await eventually(member.exclude(smart_charging_flag="").aexists, timeout=20)

        url = f"{site_daphne.http_url}/api/v1/ocpp16/DC-LATE/get_configuration"
        status, body = await ahttp(url, method="POST", api_key=api_key, body={})
        assert status == 200, body
        await eventually(_rate_units_known("DC-LATE", "W"))
        await eventually(lambda: member.filter(smart_charging_flag="").aexists(), timeout=10)
        await _limits([dc], [32 * 230])
    await _site_settled(site_id)


class PowerOnlyStation(Station):
    """A 2.0.1 DC station: ``SmartChargingCtrlr.RateUnit`` W; it rejects a charging profile in A."""

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = [
            {
                "attribute_status": "Accepted",
                "component": d["component"],
                "variable": d["variable"],
                "attribute_value": "W",
            }
            for d in get_variable_data
        ]
        return result201.GetVariables(get_variable_result=results)

    @on("SetChargingProfile")
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        if any(s["charging_rate_unit"] != "W" for s in charging_profile["charging_schedule"]):
            return result201.SetChargingProfile(status="Rejected")
        return Station.on_set_charging_profile(self, evse_id, charging_profile)


async def test_a_2_0_1_station_taking_profiles_in_w_only_is_sent_them_in_w(site_daphne, api_key):
    """As the 1.6 case, for a station whose GetVariables answer gives ``SmartChargingCtrlr.RateUnit`` W."""
    site_id = await _site_with_members(site_daphne, api_key, ["DC-201", "OTHER-201"])
    async with ocpp_charger(site_daphne, "2.0.1", "DC-201", client_class=PowerOnlyStation) as station:
        await station.call(
            call201.BootNotification(charging_station={"model": "M", "vendorName": "V"}, reason="PowerUp")
        )
        asked = {"get_variable_data": [{"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "RateUnit"}}]}
        url = f"{site_daphne.http_url}/api/v1/ocpp201/DC-201/get_variables"
        status, body = await ahttp(url, method="POST", api_key=api_key, body=asked)
        assert status == 200, body
        await eventually(_rate_units_known("DC-201", "W"))
        await station.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=NOW,
                trigger_reason="CablePluggedIn",
                seq_no=0,
                transaction_info={"transactionId": "TX-DC"},
                evse={"id": 1, "connectorId": 1},
            )
        )

        def limits() -> dict[str, Any]:
            held = {p["charging_profile_purpose"]: p for _, p in getattr(station, "profiles", [])}
            return {
                purpose: (
                    p["charging_schedule"][0]["charging_rate_unit"],
                    p["charging_schedule"][0]["charging_schedule_period"][0]["limit"],
                )
                for purpose, p in held.items()
            }

        await eventually(lambda: "TxProfile" in limits(), timeout=15)
        assert limits() == {"TxDefaultProfile": ("W", 16 * 230), "TxProfile": ("W", 32 * 230)}
        assert not await SiteMember.objects.exclude(smart_charging_flag="").aexists()
    await _site_settled(site_id)
