"""Wrong charger passwords cost nothing and lock nobody out (issue 14 B7): a real daphne
process on PostgreSQL, real WebSocket handshakes with HTTP Basic credentials."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import time

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from ocpp.v16 import call as call16
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chargepoints.models import ChargePoint
from chargepoints.services import charge_point_delete, charge_point_register, charge_point_update
from chargepoints.services.attachment import Attachment
from conftest import SUBPROTOCOL, ahttp, eventually, ocpp_charger
from ocpp_gateway.consumers import basic_auth_password
from ocpp_gateway.group_commit import UnitAbandoned
from ocpp_gateway.handshake_auth import BEING_CHECKED, _hashing_for, _hashing_slot, handshake_attach

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "the-right-password-16"


def basic(charge_point_id: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{charge_point_id}:{password}".encode()).decode()}


async def register(charge_point_id: str, password: str | None = PASSWORD) -> ChargePoint:
    return await asyncio.to_thread(
        charge_point_register, charge_point_id=charge_point_id, heartbeat_interval=60, password=password
    )


async def handshake_status(server, charge_point_id: str, password: str, from_address: str = "127.0.0.1") -> int:
    """101 if the handshake succeeded, else the HTTP status it was refused with; ``from_address``:
    the loopback address the client connects from."""
    try:
        async with connect(
            server.ws_url("1.6", charge_point_id),
            subprotocols=[SUBPROTOCOL["1.6"]],
            additional_headers=basic(charge_point_id, password),
            open_timeout=20,
            local_addr=(from_address, 0),
        ):
            return 101
    except InvalidStatus as refusal:
        return refusal.response.status_code


@pytest.fixture(scope="module")
def strict_server(daphne_factory):
    """A process of its own: its failure counters start at zero and count only this module's handshakes."""
    return daphne_factory(
        CSMS_CHARGER_AUTH_FAILURES_PER_ID="3",
        CSMS_CHARGER_AUTH_FAILURES_PER_IP="1000",
        CSMS_CHARGER_AUTH_FAILURE_WINDOW_SECONDS="600",
    )


async def test_past_the_identity_limit_guesses_are_refused_without_hashing_and_the_charger_still_connects(
    strict_server, daphne
):
    await register("CP-GUESSED")
    assert await handshake_status(strict_server, "CP-GUESSED", PASSWORD) == 101
    for attempt in range(3):
        assert await handshake_status(strict_server, "CP-GUESSED", f"wrong-guess-{attempt:06}") == 403
    assert "CP-GUESSED: refused, too many failed password checks" not in strict_server.log()
    # Throttled: refused unchecked, told to retry later (503), not that the password is wrong.
    assert await handshake_status(strict_server, "CP-GUESSED", "wrong-guess-999999") == 503
    assert "CP-GUESSED: refused, too many failed password checks (throttled: not hashed)" in strict_server.log()
    assert await handshake_status(strict_server, "CP-GUESSED", PASSWORD) == 101


async def test_guesses_from_another_address_do_not_lock_out_a_charger_this_process_never_verified(
    strict_server, daphne
):
    """After a restart, a password change, or on another worker, the charger's password is new to
    the process: guesses from elsewhere throttle their own address, not the charger's."""
    await register("CP-TARGET")
    for attempt in range(3):
        assert await handshake_status(strict_server, "CP-TARGET", f"wrong-guess-{attempt:06}", "127.0.0.2") == 403
    assert await handshake_status(strict_server, "CP-TARGET", "wrong-guess-000003", "127.0.0.2") == 503
    assert "CP-TARGET: refused, too many failed password checks (throttled: not hashed)" in strict_server.log()
    assert await handshake_status(strict_server, "CP-TARGET", PASSWORD, "127.0.0.3") == 101
    assert await handshake_status(strict_server, "CP-TARGET", "wrong-guess-999999", "127.0.0.2") == 503


async def test_forty_concurrent_wrong_passwords_are_all_refused_and_a_legit_charger_connects_meanwhile(
    strict_server, daphne
):
    await register("CP-ATTACKED")
    await register("CP-LEGIT")
    guesses = [handshake_status(strict_server, "CP-ATTACKED", f"guess-{n:012}") for n in range(40)]
    legit = ocpp_charger(strict_server, "1.6", "CP-LEGIT", additional_headers=basic("CP-LEGIT", PASSWORD))

    async def legit_boots() -> str:
        async with legit as charger:
            return (await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))).status

    *statuses, boot = await asyncio.gather(*guesses, legit_boots())
    # Each hashed guess 403; one while another is hashed 503 (told to retry, unhashed): none admitted.
    assert set(statuses) <= {403, 503} and 403 in statuses, statuses
    assert boot == "Accepted"


@pytest.fixture
def throttled_by_address(daphne_factory):
    return daphne_factory(CSMS_CHARGER_AUTH_FAILURES_PER_ID="100", CSMS_CHARGER_AUTH_FAILURES_PER_IP="2")


async def test_guesses_across_identities_are_throttled_per_address(throttled_by_address, daphne):
    """Past the limit a handshake is refused without its password checked: 503 with a Retry-After,
    not 403 Forbidden, which told a charger behind the same address (a site's NAT, a VPN
    concentrator) presenting its right password, new to the process (after a restart), that its
    password was wrong, and many back off for long or stop; it retries and is admitted once the
    window ends. The guesses themselves were refused 403 before."""
    for charge_point_id in ("CP-A1", "CP-A2", "CP-A3", "CP-A4"):
        await register(charge_point_id)
    assert await handshake_status(throttled_by_address, "CP-A1", "wrong-password-0001") == 403
    assert await handshake_status(throttled_by_address, "CP-A2", "wrong-password-0002") == 403
    status, retry_after = await handshake_refusal(throttled_by_address, "CP-A3", "wrong-password-0003")
    assert status == 503 and retry_after is not None and int(retry_after) >= 1
    assert "CP-A3: refused, too many failed password checks (throttled: not hashed)" in throttled_by_address.log()
    status, retry_after = await handshake_refusal(throttled_by_address, "CP-A4", PASSWORD)  # the neighbour
    assert status == 503 and retry_after is not None and int(retry_after) >= 1


async def test_a_charger_retrying_a_stale_password_does_not_lock_out_its_neighbours_behind_the_same_address(
    throttled_by_address, daphne
):
    """A site's chargers behind one NAT (or a VPN concentrator, or a proxy hiding their addresses):
    one of them presents a password that is no longer its own (changed in the API while it was
    away) and retries, as chargers do, every few seconds. Each retry presents the same password,
    refused before and remembered (no hash, no new guess), and was counted as a failure of the
    address: past CSMS_CHARGER_AUTH_FAILURES_PER_IP (50 in 5 minutes: one retry every 6 s) every
    neighbour whose password this process had not verified yet (after a restart, on another worker)
    was refused 403 unhashed for the window. A repeated refusal that needed no hash is counted once;
    new guesses still count, each."""
    await register("CP-STALE")
    await register("CP-NEIGHBOUR")
    await register("CP-GUESSED-NAT")
    for _ in range(5):
        assert await handshake_status(throttled_by_address, "CP-STALE", "the-old-password-16") == 403
    assert "too many failed password checks" not in throttled_by_address.log()
    assert await handshake_status(throttled_by_address, "CP-NEIGHBOUR", PASSWORD) == 101
    # Guesses (new passwords) from the address still reach the limit: 1 failure so far, 1 more.
    assert await handshake_status(throttled_by_address, "CP-GUESSED-NAT", "wrong-guess-000001") == 403
    assert await handshake_status(throttled_by_address, "CP-GUESSED-NAT", "wrong-guess-000002") == 503
    assert "CP-GUESSED-NAT: refused, too many failed password checks (throttled: not hashed)" in (
        throttled_by_address.log()
    )


async def test_a_password_set_through_the_api_closes_the_connected_charger(daphne, api_key):
    await register("CP-ROTATE", password=None)
    async with ocpp_charger(daphne, "1.6", "CP-ROTATE") as charger:
        await charger.call(call16.Heartbeat())
        status, _ = await ahttp(
            f"{daphne.http_url}/api/v1/chargepoints/CP-ROTATE",
            method="PATCH",
            api_key=api_key,
            body={"password": PASSWORD},
        )
        assert status == 200
        await asyncio.wait_for(charger._connection.wait_closed(), 5)
    assert await handshake_status(daphne, "CP-ROTATE", PASSWORD) == 101


async def test_a_password_changed_in_the_admin_closes_the_connected_charger(daphne):
    await register("CP-ROTATE")

    def change_password_in_the_admin() -> int:
        admin = Client()
        admin.force_login(User.objects.create_superuser("root", password="pw"))
        charge_point = ChargePoint.objects.get(charge_point_id="CP-ROTATE")
        form = {
            "charge_point_id": "CP-ROTATE",
            "heartbeat_interval": 60,
            "tariff": "",
            "new_password": "another-password-16",
            "connectors-TOTAL_FORMS": "0",
            "connectors-INITIAL_FORMS": "0",
            "connectors-MIN_NUM_FORMS": "0",
            "connectors-MAX_NUM_FORMS": "1000",
        }
        return admin.post(f"/admin/chargepoints/chargepoint/{charge_point.pk}/change/", form).status_code

    async with ocpp_charger(daphne, "1.6", "CP-ROTATE", additional_headers=basic("CP-ROTATE", PASSWORD)) as charger:
        await charger.call(call16.Heartbeat())
        assert await asyncio.to_thread(change_password_in_the_admin) == 302
        await asyncio.wait_for(charger._connection.wait_closed(), 5)
    assert await handshake_status(daphne, "CP-ROTATE", PASSWORD) == 403
    assert await eventually(lambda: _disconnected("CP-ROTATE"))


async def _disconnected(charge_point_id: str) -> bool:
    return not (await ChargePoint.objects.aget(charge_point_id=charge_point_id)).connected


@pytest.mark.parametrize("value", [b"Basic \xe4\xe4", b"Basic \xff\xfe==", b"Basic " + base64.b64encode(b"CP-1:\xff")])
def test_an_unreadable_basic_header_is_no_password_not_an_error(value):
    """Not base64, non-ASCII (round 41's probe: an ERROR traceback and a 403 even for a charger
    without a password), not UTF-8: no password presented."""
    assert basic_auth_password([(b"authorization", value)], "CP-1") is None


@pytest.mark.parametrize("password", ["secret-password-1", "secret-password-12", "secret-password-123"])
def test_basic_credentials_without_base64_padding_are_read(password):
    """Firmware that leaves out the trailing ``=`` of RFC 4648 (each padding length) is not refused
    as unreadable: its password is read as with the padding."""
    encoded = base64.b64encode(f"CP-1:{password}".encode()).rstrip(b"=")
    assert basic_auth_password([(b"authorization", b"Basic " + encoded)], "CP-1") == password


async def test_a_password_change_closes_the_socket_of_a_charger_that_reconnected_since_it_was_read(daphne):
    """The API and the admin read the charger, then hash the new password (a fraction of a second),
    then save: a charger that reconnected meanwhile (to any process) holds another socket, opened
    with the old password, which the change closes too."""
    await register("CP-RECONNECTED")
    headers = basic("CP-RECONNECTED", PASSWORD)
    async with ocpp_charger(daphne, "1.6", "CP-RECONNECTED", additional_headers=headers) as first:
        await first.call(call16.Heartbeat())
        read_before = await ChargePoint.objects.aget(charge_point_id="CP-RECONNECTED")
        async with ocpp_charger(daphne, "1.6", "CP-RECONNECTED", additional_headers=headers) as second:
            await second.call(call16.Heartbeat())
            await asyncio.wait_for(first._connection.wait_closed(), 5)  # replaced by the second
            await asyncio.to_thread(charge_point_update, charge_point=read_before, password="another-password-16")
            await asyncio.wait_for(second._connection.wait_closed(), 5)
    assert await handshake_status(daphne, "CP-RECONNECTED", PASSWORD) == 403


async def test_a_deleted_charger_that_reconnected_since_it_was_read_is_disconnected(daphne):
    await register("CP-GONE")
    headers = basic("CP-GONE", PASSWORD)
    async with ocpp_charger(daphne, "1.6", "CP-GONE", additional_headers=headers) as first:
        await first.call(call16.Heartbeat())
        read_before = await ChargePoint.objects.aget(charge_point_id="CP-GONE")
        async with ocpp_charger(daphne, "1.6", "CP-GONE", additional_headers=headers) as second:
            await second.call(call16.Heartbeat())
            await asyncio.wait_for(first._connection.wait_closed(), 5)
            await asyncio.to_thread(charge_point_delete, charge_point=read_before)
            await asyncio.wait_for(second._connection.wait_closed(), 5)


async def test_a_handshake_admitted_with_the_old_password_while_it_changes_is_refused(daphne):
    """A handshake this process must hash for reads the admission unlocked; the change commits
    before its presence write: that write finds the hash it admitted gone, reads again, refuses."""
    await register("CP-CHANGING")
    loop = asyncio.get_running_loop()

    def change_while_the_handshake_waits() -> concurrent.futures.Future[int]:
        with transaction.atomic():
            charge_point = ChargePoint.objects.get(charge_point_id="CP-CHANGING")
            charge_point_update(charge_point=charge_point, password="another-password-16")
            handshake = asyncio.run_coroutine_threadsafe(handshake_status(daphne, "CP-CHANGING", PASSWORD), loop)
            deadline = time.monotonic() + 20
            while not _a_backend_waits_for_a_lock():
                assert not handshake.done() and time.monotonic() < deadline, "the handshake never waited"
                time.sleep(0.01)
        return handshake

    handshake = await asyncio.to_thread(change_while_the_handshake_waits)
    assert await asyncio.wrap_future(handshake) == 403
    assert "CP-CHANGING: refused, wrong password" in daphne.log()
    assert not (await ChargePoint.objects.aget(charge_point_id="CP-CHANGING")).connected


def _a_backend_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
        return cursor.fetchone() is not None


async def _handshake_attached(charge_point_id: str, password: str, abandoned=lambda: False):
    """This process's handshake unit for ``charge_point_id`` (``handshake_auth.handshake_attach``), from one address."""
    return await handshake_attach(
        charge_point_id=charge_point_id,
        password=password,
        address="10.9.9.9",
        ocpp_version="1.6",
        channel_name=f"specific.test!{charge_point_id}",
        started_at=timezone.now(),
        abandoned=abandoned,
    )


async def test_a_charger_retrying_while_its_own_password_waits_to_be_hashed_is_not_locked_out(settings):
    """A reconnect storm after a restart: every hashing slot busy, the charger's password (new to the
    process) waits for one; the charger gives up on the slow handshake and retries meanwhile, each
    retry refused as "being checked" without a hash. Those retries checked no password: they are no
    failures, and once its first handshake was abandoned unhashed, its next one is hashed and admitted
    (it was throttled for the failure window, CSMS_CHARGER_AUTH_FAILURE_WINDOW_SECONDS)."""
    settings.CSMS_CHARGER_PASSWORD_HASHES_IN_FLIGHT = 1
    await register("CP-IMPATIENT")
    slot = _hashing_slot()
    await slot.acquire()  # the other chargers' hashes
    gone = asyncio.Event()
    first = asyncio.create_task(_handshake_attached("CP-IMPATIENT", PASSWORD, abandoned=gone.is_set))
    await eventually(lambda: "CP-IMPATIENT" in _hashing_for)
    for _ in range(settings.CSMS_CHARGER_AUTH_FAILURES_PER_ID):
        refusal = await _handshake_attached("CP-IMPATIENT", PASSWORD)
        assert refusal == BEING_CHECKED
    gone.set()  # daphne's connect timeout: the first socket closed
    slot.release()
    with pytest.raises(UnitAbandoned):
        await first
    assert isinstance(await _handshake_attached("CP-IMPATIENT", PASSWORD), Attachment)


async def test_a_charger_s_second_handshake_while_its_password_is_hashed_is_told_to_retry_not_refused(
    daphne_factory, daphne
):
    """A charger that gave up on a slow handshake (its password new to the process, hashing) and opened
    another: that one is refused without a hash, as "being checked". It was answered ``403 Forbidden``,
    which a charger reads as a wrong password; it is ``503`` with a ``Retry-After``: the password is
    being checked, and a retry after it is answered from that check."""
    server = daphne_factory(CSMS_HANDSHAKE_TIMEOUT="60")  # however slow the hash, the first is admitted
    charge_point = await register("CP-TWICE")
    # A stored hash that takes some seconds to check (its iteration count): the first handshake is
    # still hashed when the second comes, whichever of the two gets the hash.
    slow = PBKDF2PasswordHasher().encode(PASSWORD, "slow-salt-1234", iterations=4_000_000)
    await ChargePoint.objects.filter(pk=charge_point.pk).aupdate(password_hash=slow)
    first = asyncio.create_task(handshake_refusal(server, "CP-TWICE", PASSWORD))
    second = asyncio.create_task(handshake_refusal(server, "CP-TWICE", PASSWORD))
    statuses = sorted([(await first)[0], (await second)[0]])
    assert statuses == [101, 503], statuses
    assert "CP-TWICE: refused, another password for this identity is being checked" in server.log()
    retry_after = next(header for status, header in (await first, await second) if status == 503)
    assert int(retry_after) >= 1


async def handshake_refusal(server, charge_point_id: str, password: str) -> tuple[int, str | None]:
    """(101, None) if the handshake succeeded, else the HTTP status it was refused with and its Retry-After."""
    try:
        async with connect(
            server.ws_url("1.6", charge_point_id),
            subprotocols=[SUBPROTOCOL["1.6"]],
            additional_headers=basic(charge_point_id, password),
            open_timeout=30,
        ):
            return 101, None
    except InvalidStatus as refusal:
        return refusal.response.status_code, refusal.response.headers.get("Retry-After")
