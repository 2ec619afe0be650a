"""docs/conformance.md is the matrix the code and tests produce today."""

from __future__ import annotations

from django.conf import settings

from ocpp_gateway.conformance import conformance_markdown, conformance_matrix, handled_actions
from ocpp_gateway.v16.router import V16Router


def test_the_committed_conformance_matrix_is_current():
    committed = (settings.BASE_DIR / "docs" / "conformance.md").read_text()
    assert committed == conformance_markdown(settings.BASE_DIR), (
        "docs/conformance.md is stale: run `python manage.py conformance_matrix > docs/conformance.md`"
    )


def test_the_matrix_reads_handlers_off_the_router():
    assert {"BootNotification", "Heartbeat", "StartTransaction", "StopTransaction"} <= handled_actions(V16Router)
    rows = {row.action: row for row in conformance_matrix(settings.BASE_DIR)["1.6"]}
    assert rows["BootNotification"].handled and rows["BootNotification"].tests
    assert rows["Reset"].command == "reset" and not rows["Reset"].handled
    assert rows["Reset"].tests


def test_the_matrix_names_the_module_that_handles_each_action():
    rows = {row.action: row for row in conformance_matrix(settings.BASE_DIR)["1.6"]}
    assert rows["StartTransaction"].handler == "ocpp_gateway/v16/transactions.py"
    assert rows["ReserveNow"].handler == "ocpp_gateway/v16/reservations.py"  # the answer's handler
    assert rows["Reset"].handler == ""  # no state follows its answer
    for row in rows.values():
        assert not row.handled or (settings.BASE_DIR / row.handler).is_file(), row
