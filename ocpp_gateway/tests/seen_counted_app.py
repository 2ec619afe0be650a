"""``csms.asgi``'s application in a daphne that appends a line to the file named by
``CSMS_TEST_SEEN_COUNT_FILE`` for each ``charge_point_seen`` it calls (a test's seam, never in the
product): the last_seen writes a connection makes at once, before it answers a message.
Loaded as ``ocpp_gateway.tests.seen_counted_app:application``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from csms.asgi import application
from ocpp_gateway import consumers

__all__ = ["application"]

_charge_point_seen = consumers.services.charge_point_seen  # chargepoints.services'


def _counted(**kwargs: Any) -> None:
    with Path(os.environ["CSMS_TEST_SEEN_COUNT_FILE"]).open("a") as count:
        count.write(f"{kwargs['charge_point_id']}\n")
    _charge_point_seen(**kwargs)


consumers.services.charge_point_seen = _counted
