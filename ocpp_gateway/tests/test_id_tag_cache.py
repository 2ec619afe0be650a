"""Authorize answers from the gateway process's id tag cache (ocpp_gateway.id_tags), on a real daphne
process with the cache on: a change saved through the ORM anywhere is answered at once (published
on commit), an update that sends no signal waits for the TTL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
from asgiref.sync import sync_to_async
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from chargepoints.models import ChargePoint
from charging import selectors
from charging.models import AuthorizationStatus, IdTag
from conftest import DaphneServer, ahttp, eventually, ocpp_charger
from ocpp_gateway import id_tags

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def caching_daphne(daphne_factory: Callable[..., DaphneServer], transactional_db: None) -> Iterator[DaphneServer]:
    """A server that keeps id tags for an hour; like ``daphne``, the test's chargers are gone after it."""
    yield daphne_factory(CSMS_ID_TAG_CACHE_SECONDS="3600")
    deadline = time.monotonic() + 10
    while ChargePoint.objects.exclude(connection_channel="").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


async def test_a_change_saved_by_any_process_is_answered_at_once_a_silent_update_after_the_ttl(caching_daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CP-CACHE-16", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="RFID-CACHED")

    async def status(tag: str) -> str:
        return (await charger.call(call16.Authorize(id_tag=tag))).id_tag_info["status"]

    async with ocpp_charger(caching_daphne, "1.6", "CP-CACHE-16") as charger:
        assert (await status("RFID-CACHED"), await status("RFID-LATER")) == ("Accepted", "Invalid")
        await asyncio.sleep(0.5)  # the server's subscription to changes is confirmed: it keeps rows

        # Saved by this (another) process: published on commit, the server reads the tags again.
        await IdTag.objects.acreate(id_tag="RFID-LATER")

        async def later_accepted() -> bool:
            return await status("RFID-LATER") == "Accepted"

        await eventually(later_accepted, timeout=1)  # a Redis publish away, not the TTL (an hour)

        # An update that sends no signal: the server answers from what it read (for the TTL).
        assert await status("RFID-CACHED") == "Accepted"  # read again after the change above
        await IdTag.objects.filter(id_tag="RFID-CACHED").aupdate(status=AuthorizationStatus.BLOCKED)
        assert await status("RFID-CACHED") == "Accepted"

        # Saved through the server's own API: its cache is emptied, every tag read again.
        url = f"{caching_daphne.http_url}/api/v1/id-tags/RFID-CACHED/"
        changed, _ = await ahttp(url, method="PATCH", api_key=api_key, body={"status": "Expired"})
        assert changed == 200
        assert (await status("RFID-CACHED"), await status("RFID-LATER")) == ("Expired", "Accepted")


async def test_a_cached_token_still_matches_only_its_own_type(caching_daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-CACHE-201", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="TOKEN-TYPED", token_type="ISO14443")

    async with ocpp_charger(caching_daphne, "2.0.1", "CP-CACHE-201") as charger:
        answers = [
            (await charger.call(call201.Authorize(id_token={"id_token": "TOKEN-TYPED", "type": kind}))).id_token_info[
                "status"
            ]
            for kind in ("ISO14443", "eMAID", "ISO14443")
        ]
        assert answers == ["Accepted", "Unknown", "Accepted"]  # an eMAID TOKEN-TYPED is not registered


async def test_authorizes_that_arrive_together_share_one_read_and_a_change_saved_here_is_read_again(settings):
    settings.CSMS_ID_TAG_CACHE_SECONDS = 3600
    id_tags.forget_all()
    tag = await IdTag.objects.acreate(id_tag="RFID-TOGETHER")
    authorizes = [asyncio.ensure_future(id_tags.id_tag_authorize(id_tag="rfid-together")) for _ in range(20)]
    await asyncio.sleep(0)  # every one has asked
    assert list(id_tags._reads) == ["rfid-together"]
    assert {info.status for info in await asyncio.gather(*authorizes)} == {"Accepted"}

    tag.status = AuthorizationStatus.BLOCKED
    await tag.asave()  # in this process: the cache is emptied
    assert (await id_tags.id_tag_authorize(id_tag="RFID-TOGETHER")).status == "Blocked"
    id_tags.forget_all()


# "İ": Python's str.lower folds it to "i" + U+0307, the database's LOWER to "i" (``id_tag_find``). A
# tag sent as "karte-i" + U+0307 + "1" is then not KARTE-İ1 for the database, but was for the cache,
# keyed by str.lower: whichever spelling came first answered for the other.
REGISTERED, OTHER = "KARTE-İ1", "karte-i\u03071"


async def test_the_cache_answers_two_spellings_as_the_database_does_whichever_comes_first(settings):
    settings.CSMS_ID_TAG_CACHE_SECONDS = 3600
    await IdTag.objects.acreate(id_tag=REGISTERED)
    assert await sync_to_async(selectors.id_tag_find)(id_tag=OTHER) is None  # not the tag, for the database
    for spellings in ((OTHER, REGISTERED), (REGISTERED, OTHER)):
        id_tags.forget_all()
        answers = {tag: (await id_tags.id_tag_authorize(id_tag=tag)).status for tag in spellings}
        assert answers == {REGISTERED: "Accepted", OTHER: "Invalid"}
    id_tags.forget_all()
