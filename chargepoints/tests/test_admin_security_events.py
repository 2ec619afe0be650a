"""The security events' list at a fleet's size: counted to a cap, in an index's order, filtered and
searched without scanning every event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chargepoints.models import ChargePoint, SecurityEvent

pytestmark = pytest.mark.django_db

EVENTS = "/admin/chargepoints/securityevent/"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_the_security_event_list_never_counts_sorts_or_scans_every_event(admin_client):
    """A fleet's events are millions: the list counted them all, sorted them all by timestamp (no
    index serves it), read the filter's types with a SELECT DISTINCT, and searched with an ILIKE of
    each column through the join (1.0 s a page at 1,000,000 events, 1.5 s searched). Now the count is
    capped, the order is the primary key's, the types are OCPP's and the search goes by indexes."""
    chargers = [ChargePoint.objects.create(charge_point_id=f"SEC-{n}", heartbeat_interval=60) for n in (1, 2)]
    for n, (charger, event_type, tech_info) in enumerate(
        [
            (chargers[0], "StartupOfTheDevice", ""),
            (chargers[0], "ResetOrReboot", "watchdog"),
            (chargers[1], "TamperDetectionActivated", "lid opened"),
        ]
    ):
        SecurityEvent.objects.create(
            charge_point=charger, event_type=event_type, timestamp=T0 + timedelta(minutes=n), tech_info=tech_info
        )
    for query, found in (
        ("", 3),
        ("q=sec-1", 2),
        ("q=reboot", 1),
        ("q=lid", 1),
        ("q=nowhere", 0),
        ("event_type=TamperDetectionActivated", 1),
        ("event_type=VendorOwnEvent", 0),
    ):
        with CaptureQueriesContext(connection) as queries:
            page = admin_client.get(f"{EVENTS}?{query}")
        assert page.status_code == 200 and len(page.context["cl"].result_list) == found, query
        listed = [q["sql"] for q in queries.captured_queries if 'FROM "chargepoints_securityevent"' in q["sql"]]
        assert not [sql for sql in listed if "DISTINCT" in sql], listed
        counts = [sql for sql in listed if "COUNT(" in sql]
        assert len(counts) == 1 and "LIMIT 10000" in counts[0], counts
        assert not [sql for sql in listed if '"timestamp" DESC' in sql.partition("ORDER BY")[2]], listed
        if query.startswith("q="):  # the chargers looked up first: no ILIKE through the join to them
            assert not [sql for sql in listed if 'UPPER("chargepoints_chargepoint"' in sql], listed
    newest_first = [event.tech_info for event in admin_client.get(EVENTS).context["cl"].result_list]
    assert newest_first == ["lid opened", "watchdog", ""]
