"""Billing records as CSV: one row builder for the API export and the admin's download."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from billing.models import BillingRecord
from kernel.money import round_money
from kernel.serializers import wh_number
from webhooks.services import iso_utc

# Records read and rendered per chunk of a streamed export (the API's and the admin's).
CHUNK_ROWS = 2000

COLUMNS = [
    "id",
    "transaction_id",
    "ocpp_transaction_id",
    "charge_point_id",
    "id_tag",
    "tariff",
    "started_at",
    "stopped_at",
    "duration_seconds",
    "charging_seconds",
    "idle_seconds",
    "energy_wh",
    "currency",
    "total",
    "needs_review",
]


def _text(value: str) -> str:
    """Ids and id tags come from chargers: keep a spreadsheet from running one as a formula."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def row(record: BillingRecord) -> list[Any]:
    """One record's cells; the record needs ``transaction`` and ``tariff`` loaded."""
    return [
        record.pk,
        record.transaction_id,
        _text(record.transaction.ocpp_id),
        _text(record.charge_point_identity),
        _text(record.id_tag),
        _text(record.tariff.name) if record.tariff else "",
        iso_utc(record.started_at),
        iso_utc(record.stopped_at),
        record.duration_seconds,
        record.charging_seconds,
        record.idle_seconds,
        wh_number(record.energy_wh),
        record.currency,
        str(round_money(record.total, record.currency or "")),
        "true" if record.needs_review else "false",
    ]


class _Echo:
    """A file for ``csv.writer`` that hands each formatted line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def lines(records: Iterable[BillingRecord]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    for record in records:
        yield writer.writerow(row(record))


def line_chunks(records: Iterable[BillingRecord], rows: int) -> Iterator[str]:
    """``lines`` joined ``rows`` at a time: a streamed answer's parts (``kernel.streaming``)."""
    every = lines(records)
    while chunk := "".join(islice(every, rows)):
        yield chunk
